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

#include "stratalake/repo.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

namespace {

// An engine error of these bindings; translated like module.cc's errors.
struct TransformError : std::runtime_error {
  TransformError(std::string kind, std::string code, const std::string& message)
      : std::runtime_error(message), kind(std::move(kind)), code(std::move(code)) {}
  std::string kind;
  std::string code;
};

[[noreturn]] void Raise(const arrow::Status& st) {
  const StrataLakeErrorDetail* d = GetErrorDetail(st);
  throw TransformError(d ? ErrorKindName(d->kind()) : "", st.CodeAsString(), st.message());
}

template <typename T>
T Check(arrow::Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).ValueUnsafe();
}

void ReleaseStream(void* p) noexcept {
  auto* stream = static_cast<ArrowArrayStream*>(p);
  if (stream->release) stream->release(stream);
  std::free(stream);
}

nb::capsule ExportTable(std::shared_ptr<arrow::Table> table) {
  auto* stream = static_cast<ArrowArrayStream*>(std::malloc(sizeof(ArrowArrayStream)));
  stream->release = nullptr;
  arrow::Status st = arrow::ExportRecordBatchReader(
      std::make_shared<arrow::TableBatchReader>(std::move(table)), stream);
  if (!st.ok()) {
    std::free(stream);
    Raise(st);
  }
  return nb::capsule(stream, "arrow_array_stream", &ReleaseStream);
}

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
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const TransformError& e) {
      nb::object cls = nb::module_::import_("stratalake._errors").attr("class_for")(e.kind, e.code);
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
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
