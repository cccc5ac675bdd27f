// stratalake._core: what `plan` shows of the pipelines (the runs `run --all`
// would do, and output schemas that would not fit the feature views reading
// them). FeatureStore.plan() and apply() (python/stratalake/feature_store.py)
// call it beside the registry's plan.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/transform.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

nb::dict PlannedRunDict(const transform::PlannedRun& p) {
  nb::dict d;
  d["name"] = p.name;
  d["output"] = p.output;
  d["mode"] = registry::TransformModeName(p.mode);
  d["inputs"] = p.inputs;
  d["upstream"] = p.upstream;
  d["stale"] = p.stale;
  d["cause"] = p.cause;
  d["reason"] = p.reason;
  return d;
}

void BindPipelinePlan(nb::module_& m) {
  // (text, problems, [run dicts] in dependency order); with refuse, raises
  // IncompatibleChangeError when there are problems (what apply refuses).
  m.def(
      "plan_pipelines",
      [](const std::string& repo_path, bool refuse) {
        transform::PipelinePlan plan;
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          auto defs = Check(repo->LoadValidatedDefinitions());
          plan = Check(transform::PlanPipelines(*repo, defs));
          if (refuse) Check(plan.Refusal());
        }
        nb::list runs;
        for (const auto& p : plan.runs) runs.append(PlannedRunDict(p));
        return nb::make_tuple(plan.ToString(), plan.problems, runs);
      },
      "repo_path"_a, "refuse"_a = false);
}

}  // namespace stratalake::python
