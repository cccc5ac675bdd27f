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
#include "stratalake/registry.h"
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

nb::dict LineageDict(const transform::LineageEntry& e) {
  nb::dict d;
  d["table"] = e.table;
  d["version"] = e.version;
  d["timestamp_ms"] = e.timestamp_ms;
  d["operation"] = e.operation;
  d["transformation"] = e.transformation;
  d["query"] = e.query;
  d["inputs"] = e.inputs;
  d["read"] = e.read;
  d["since"] = e.since;
  return d;
}

// A transformation from the SDK's spec dict (python/stratalake/pipelines.py).
registry::Transformation SpecToTransformation(const nb::dict& spec) {
  registry::Transformation t;
  auto str = [&](const char* key) {
    return spec.contains(key) && !spec[key].is_none() ? nb::cast<std::string>(spec[key])
                                                      : std::string();
  };
  auto list = [&](const char* key) {
    return spec.contains(key) && !spec[key].is_none()
               ? nb::cast<std::vector<std::string>>(spec[key])
               : std::vector<std::string>();
  };
  t.name = str("name");
  // Errors name the function's file and line, as they name a definition's.
  t.loc.file = str("file");
  t.loc.line = spec.contains("line") ? nb::cast<int>(spec["line"]) : 0;
  t.sql_loc = t.loc;
  t.output = str("output");
  t.inputs = list("inputs");
  t.keys = list("keys");
  t.order_by = str("order_by");
  t.partition_by = list("partition_by");
  t.code_fingerprint = str("fingerprint");
  t.description = str("description");
  const std::string mode = str("mode");
  if (mode.empty() || mode == "full_refresh") {
    t.mode = registry::TransformMode::kFullRefresh;
  } else if (mode == "append") {
    t.mode = registry::TransformMode::kAppend;
  } else if (mode == "merge") {
    t.mode = registry::TransformMode::kMerge;
  } else {
    throw nb::value_error(
        ("unknown mode '" + mode + "' (use full_refresh, append or merge)").c_str());
  }
  const std::string on_change = str("on_change");
  if (on_change.empty() || on_change == "full_refresh") {
    t.on_change = registry::OnChange::kFullRefresh;
  } else if (on_change == "keys") {
    t.on_change = registry::OnChange::kKeys;
  } else if (on_change == "partitions") {
    t.on_change = registry::OnChange::kPartitions;
  } else if (on_change == "fail") {
    t.on_change = registry::OnChange::kFail;
  } else {
    throw nb::value_error(
        ("unknown on_change '" + on_change + "' (use full_refresh, keys, partitions or fail)")
            .c_str());
  }
  if (spec.contains("input_keys") && !spec["input_keys"].is_none()) {
    for (auto [table, cols] : nb::cast<nb::dict>(spec["input_keys"])) {
      registry::Transformation::InputKeys ik;
      ik.table = nb::cast<std::string>(table);
      if (ik.table.find('/') == std::string::npos) {
        const auto dot = ik.table.find('.');
        if (dot != std::string::npos) ik.table[dot] = '/';
      }
      ik.columns = nb::cast<std::vector<std::string>>(cols);
      ik.loc = t.loc;
      t.input_keys.push_back(std::move(ik));
    }
  }
  if (spec.contains("schema") && !spec["schema"].is_none()) {
    for (auto item : nb::cast<nb::list>(spec["schema"])) {
      auto f = nb::cast<nb::tuple>(item);
      registry::Field field;
      field.name = nb::cast<std::string>(f[0]);
      field.type = Check(registry::ParseFeatureType(nb::cast<std::string>(f[1])));
      field.nullable = nb::cast<bool>(f[2]);
      field.loc = t.loc;
      t.schema.push_back(std::move(field));
    }
  }
  return t;
}

// A PythonRunner calling `runner(spec, [capsules])` (python/stratalake/pipelines.py)
// under the GIL; the runner's str result is the function's error.
transform::PythonRunner PythonRunnerOf(nb::object runner) {
  return [runner](const repo::FeatureRepository& repo, const registry::Transformation& t,
                  const std::vector<std::shared_ptr<arrow::Table>>& inputs)
             -> arrow::Result<std::shared_ptr<arrow::Table>> {
    nb::gil_scoped_acquire acquire;
    try {
      nb::dict spec;
      spec["root"] = repo.config().root;
      spec["file"] = t.python_file;
      spec["function"] = t.python_function;
      spec["kind"] = t.kind;
      spec["name"] = t.name;
      nb::list args;
      for (const auto& table : inputs) args.append(ExportTable(table));
      nb::object r = runner(spec, args);
      if (nb::isinstance<nb::str>(r)) return arrow::Status::Invalid(nb::cast<std::string>(r));
      return ImportTable(nb::cast<nb::capsule>(r));
    } catch (const std::exception& e) {
      return arrow::Status::Invalid(e.what());
    }
  };
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
  // python_runner(spec dict, [input capsules]) runs the Python transformations of
  // the definition files in this process; returns a stream capsule or a str (the
  // error it raised). None: the CLI's subprocess (transform::RunPythonWorker).
  m.def(
      "run_transformations",
      [](const std::string& repo_path, std::vector<std::string> names, bool full_refresh,
         nb::object python_runner) {
        std::vector<transform::RunResult> results;
        transform::RunOptions options;
        options.full_refresh = full_refresh;
        if (!python_runner.is_none()) options.python = PythonRunnerOf(python_runner);
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          auto defs = Check(repo->LoadDefinitions());
          results = Check(transform::RunPipeline(*repo, defs, names, options));
        }
        nb::list out;
        for (const auto& r : results) out.append(RunDict(r));
        return out;
      },
      "repo_path"_a, "names"_a, "full_refresh"_a = false, "python_runner"_a = nb::none());
  // One run of a Python transformation: fn({table path: stream capsule}) returns a
  // stream capsule of the result, or a str (the error it raised).
  m.def(
      "run_function_transformation",
      [](const std::string& repo_path, nb::dict spec, nb::callable fn, bool full_refresh) {
        registry::Transformation t = SpecToTransformation(spec);
        transform::TableFunction call =
            [fn](const std::map<std::string, std::shared_ptr<arrow::Table>>& inputs)
            -> arrow::Result<std::shared_ptr<arrow::Table>> {
          nb::gil_scoped_acquire acquire;
          try {
            nb::dict args;
            for (const auto& [path, table] : inputs) args[path.c_str()] = ExportTable(table);
            nb::object r = fn(args);
            if (nb::isinstance<nb::str>(r)) {
              return arrow::Status::Invalid(nb::cast<std::string>(r));
            }
            return ImportTable(nb::cast<nb::capsule>(r));
          } catch (const std::exception& e) {
            // Errors raised here stay in the run's Status (no exception crosses the engine).
            return arrow::Status::Invalid(e.what());
          }
        };
        transform::RunResult result;
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          transform::RunOptions options;
          options.full_refresh = full_refresh;
          result = Check(transform::RunFunctionTransformation(*repo, t, call, options));
        }
        return RunDict(result);
      },
      "repo_path"_a, "spec"_a, "fn"_a, "full_refresh"_a = false);
  // [lineage dicts], newest first (with upstream: the graph behind the latest version)
  m.def(
      "lineage",
      [](const std::string& repo_path, const std::string& table, bool upstream) {
        std::vector<transform::LineageEntry> entries;
        {
          nb::gil_scoped_release release;
          auto repo = Check(repo::FeatureRepository::Open(repo_path));
          entries = Check(transform::Lineage(*repo, table, upstream));
        }
        nb::list out;
        for (const auto& e : entries) out.append(LineageDict(e));
        return out;
      },
      "repo_path"_a, "table"_a, "upstream"_a = false);
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
        for (const auto& p : plan) out.append(PlannedRunDict(p));
        return out;
      },
      "repo_path"_a, "names"_a);
}

}  // namespace stratalake::python
