// stratalake._core: pipelines (SQL over the repository's tables, transformations).
// Bound as module functions taking the repository folder; the Python package
// (stratalake/pipelines.py) gives them their public API.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdlib>
#include <stdexcept>

#include <arrow/api.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>

#include "bindings.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

namespace {

nb::dict RunDict(const transform::RunResult& r) {
  nb::dict d;
  d["name"] = r.name;
  d["output"] = r.output;
  d["noop"] = r.noop;
  d["version"] = r.version;
  d["rows"] = r.rows;
  d["inputs"] = r.inputs;
  d["detail"] = r.detail;
  return d;
}

}  // namespace

void BindTransform(nb::module_& m) {
  // (table capsule, {table: version read})
  m.def(
      "run_sql",
      [](const std::string& repo_path, const std::string& sql) {
        transform::QueryResult r;
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          r = Check(transform::RunSql(*repo, sql));
        }
        return nb::make_tuple(ExportTable(std::move(r.table)), r.inputs);
      },
      "repo_path"_a, "sql"_a);
  // [run dicts] in the order run
  m.def(
      "run_transformations",
      [](const std::string& repo_path, std::vector<std::string> names, bool full_refresh) {
        std::vector<transform::RunResult> results;
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          auto defs = Check(repo->LoadDefinitions());
          transform::RunOptions options;
          options.full_refresh = full_refresh;
          results = Check(transform::RunPipeline(*repo, defs, names, options));
        }
        nb::list out;
        for (const auto& r : results) out.append(RunDict(r));
        return out;
      },
      "repo_path"_a, "names"_a, "full_refresh"_a = false);
  // [plan dicts] in dependency order
  m.def(
      "plan_transformations",
      [](const std::string& repo_path, std::vector<std::string> names) {
        std::vector<transform::PlannedRun> plan;
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          auto defs = Check(repo->LoadDefinitions());
          plan = Check(transform::PlanRuns(*repo, defs, names));
        }
        nb::list out;
        for (const auto& p : plan) {
          nb::dict d;
          d["name"] = p.name;
          d["output"] = p.output;
          d["mode"] = registry::TransformModeName(p.mode);
          d["inputs"] = p.inputs;
          d["upstream"] = p.upstream;
          d["stale"] = p.stale;
          d["reason"] = p.reason;
          out.append(d);
        }
        return out;
      },
      "repo_path"_a, "names"_a);
}

}  // namespace stratalake::python
