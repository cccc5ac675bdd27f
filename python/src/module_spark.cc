// stratalake._core's entry points for the Spark engine (python/stratalake/spark.py):
// the retrieval plan another engine must follow (retrieval::PlanHistoricalRetrieval),
// a saved dataset made of rows another engine computed (retrieval::DatasetWriter, or
// retrieval::RegisterDataset for a Delta table the executors wrote in place),
// and a materialization watermark recorded after another engine wrote the online
// store (online::RecordMaterialization). Each opens the repository it is given.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>

#include "bindings.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/warnings.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

namespace {

retrieval::HistoricalRequest MakeRequest(const std::string& ts_column,
                                         std::vector<std::string> features,
                                         const std::string& service, bool full_names,
                                         std::optional<int64_t> as_of_ms,
                                         std::optional<int64_t> registry_version,
                                         std::map<std::string, int64_t> source_versions) {
  retrieval::HistoricalRequest r;
  r.timestamp_column = ts_column;
  r.features = std::move(features);
  r.feature_service = service;
  r.full_feature_names = full_names;
  r.as_of_ms = as_of_ms;
  r.registry_version = registry_version;
  r.source_versions = std::move(source_versions);
  return r;
}

nb::list StringList(const std::vector<std::string>& v) {
  nb::list out;
  for (const auto& s : v) out.append(s);
  return out;
}

// The plan as plain Python values; "schema" is an empty table of the output schema.
nb::dict PlanHistorical(const std::string& repo_path, nb::capsule entity_schema,
                        const std::string& ts_column, std::vector<std::string> features,
                        const std::string& service, bool full_names,
                        std::optional<int64_t> as_of_ms, std::optional<int64_t> registry_version,
                        std::map<std::string, int64_t> source_versions) {
  auto schema = ImportTable(std::move(entity_schema))->schema();
  auto req = MakeRequest(ts_column, std::move(features), service, full_names, as_of_ms,
                         registry_version, std::move(source_versions));
  retrieval::HistoricalPlan plan;
  {
    nb::gil_scoped_release release;
    auto repo = Check(repo::FeatureRepository::Open(repo_path));
    plan = Check(retrieval::PlanHistoricalRetrieval(*repo, req, *schema));
  }
  nb::dict out;
  out["registry_version"] = plan.registry_version;
  out["timestamp_column"] = plan.timestamp_column;
  out["feature_refs"] = StringList(plan.feature_refs);
  nb::list views;
  for (const auto& v : plan.views) {
    nb::dict d;
    d["view"] = v.view;
    d["source"] = v.source;
    d["table_uri"] = v.table_uri;
    d["version"] = v.version;
    d["entity_keys"] = StringList(v.entity_keys);
    d["source_keys"] = StringList(v.source_keys);
    d["time_column"] = v.time_column;
    d["created_column"] = v.created_column;
    d["ttl_us"] = v.ttl_us;
    d["features"] = StringList(v.features);
    nb::list names;
    for (const auto& f : v.output_fields) names.append(f->name());
    d["output_names"] = names;
    views.append(d);
  }
  out["views"] = views;
  nb::list order;
  for (const auto& [v, f] : plan.order) order.append(nb::make_tuple(v, f));
  out["order"] = order;
  out["schema"] = ExportTable(arrow::Table::MakeEmpty(plan.schema).ValueOrDie());
  nb::list sources;
  for (const auto& s : plan.sources) {
    nb::dict d;
    d["source"] = s.source;
    d["table_uri"] = s.table_uri;
    d["version"] = s.version;
    sources.append(d);
  }
  out["sources"] = sources;
  nb::list warnings;
  for (const auto& w : plan.warnings) {
    nb::dict d;
    d["code"] = WarningCodeName(w.code);
    d["view"] = w.view;
    d["source"] = w.source;
    d["push_source"] = w.push_source;
    d["rows_read"] = w.rows_read;
    warnings.append(d);
  }
  out["warnings"] = warnings;
  return out;
}

// Saves the rows of `rows` (a stream in the plan's exact schema, read a batch at
// a time) as dataset NAME with a manifest pinning the plan's versions.
nb::object SaveDatasetRows(const std::string& repo_path, const std::string& name, nb::capsule rows,
                           const std::string& ts_column, std::vector<std::string> features,
                           const std::string& service, bool full_names,
                           std::optional<int64_t> as_of_ms, int64_t registry_version,
                           std::vector<std::string> feature_refs,
                           std::map<std::string, int64_t> source_versions,
                           std::map<std::string, std::string> source_uris) {
  auto* stream =
      static_cast<ArrowArrayStream*>(PyCapsule_GetPointer(rows.ptr(), "arrow_array_stream"));
  if (!stream) throw nb::python_error();
  auto req = MakeRequest(ts_column, std::move(features), service, full_names, as_of_ms,
                         registry_version, source_versions);
  retrieval::DatasetManifest m;
  {
    nb::gil_scoped_release release;
    auto reader = Check(arrow::ImportRecordBatchReader(stream));
    auto repo = Check(repo::FeatureRepository::Open(repo_path));
    auto writer = Check(retrieval::DatasetWriter::Open(*repo, name, req));
    Check(writer->Begin(reader->schema()));
    retrieval::HistoricalResult result;
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      Check(reader->ReadNext(&batch));
      if (!batch) break;
      result.rows += batch->num_rows();
      Check(writer->Write(Check(arrow::Table::FromRecordBatches({batch}))));
    }
    result.schema = reader->schema();
    result.registry_version = registry_version;
    result.feature_refs = std::move(feature_refs);
    for (const auto& [source, version] : source_versions) {
      retrieval::SourceRead s;
      s.source = source;
      s.version = version;
      auto uri = source_uris.find(source);
      if (uri != source_uris.end()) s.table_uri = uri->second;
      result.sources.push_back(std::move(s));
    }
    m = Check(writer->Finish(result));
  }
  return nb::module_::import_("json").attr("loads")(retrieval::ManifestToJson(m));
}

std::string DatasetTableUri(const std::string& repo_path, const std::string& name) {
  nb::gil_scoped_release release;
  auto repo = Check(repo::FeatureRepository::Open(repo_path));
  return Check(retrieval::DatasetTableUri(*repo, name));
}

// Registers the Delta table the executors wrote at DatasetTableUri(name) as dataset NAME;
// `schema` is an empty table of the plan's exact output schema.
nb::object RegisterDataset(const std::string& repo_path, const std::string& name,
                           nb::capsule schema, int64_t rows, const std::string& ts_column,
                           std::vector<std::string> features, const std::string& service,
                           bool full_names, std::optional<int64_t> as_of_ms,
                           int64_t registry_version, std::vector<std::string> feature_refs,
                           std::map<std::string, int64_t> source_versions,
                           std::map<std::string, std::string> source_uris) {
  auto exact = ImportTable(std::move(schema))->schema();
  auto req = MakeRequest(ts_column, std::move(features), service, full_names, as_of_ms,
                         registry_version, source_versions);
  retrieval::DatasetManifest m;
  {
    nb::gil_scoped_release release;
    auto repo = Check(repo::FeatureRepository::Open(repo_path));
    retrieval::HistoricalResult result;
    result.schema = exact;
    result.rows = rows;
    result.registry_version = registry_version;
    result.feature_refs = std::move(feature_refs);
    for (const auto& [source, version] : source_versions) {
      retrieval::SourceRead s;
      s.source = source;
      s.version = version;
      auto uri = source_uris.find(source);
      if (uri != source_uris.end()) s.table_uri = uri->second;
      result.sources.push_back(std::move(s));
    }
    m = Check(retrieval::RegisterDataset(*repo, name, req, result));
  }
  return nb::module_::import_("json").attr("loads")(retrieval::ManifestToJson(m));
}

void RecordMaterialization(const std::string& repo_path, const std::string& view,
                           int64_t source_version, int64_t end_us, int64_t rows_written) {
  nb::gil_scoped_release release;
  auto repo = Check(repo::FeatureRepository::Open(repo_path));
  Check(online::RecordMaterialization(*repo, view, source_version, end_us, rows_written));
}

}  // namespace

void BindSpark(nb::module_& m) {
  m.def("plan_historical", &PlanHistorical, "repo_path"_a, "entity_schema"_a, "timestamp_column"_a,
        "features"_a, "feature_service"_a, "full_feature_names"_a, "as_of_ms"_a.none(),
        "registry_version"_a.none(), "source_versions"_a,
        "The point-in-time retrieval plan another engine follows (views, keys, versions).");
  m.def("save_dataset_rows", &SaveDatasetRows, "repo_path"_a, "name"_a, "rows"_a,
        "timestamp_column"_a, "features"_a, "feature_service"_a, "full_feature_names"_a,
        "as_of_ms"_a.none(), "registry_version"_a, "feature_refs"_a, "source_versions"_a,
        "source_uris"_a, "Saves rows another engine computed as a reproducible dataset.");
  m.def("dataset_table_uri", &DatasetTableUri, "repo_path"_a, "name"_a,
        "Where a saved dataset's rows go, after checking that the name is free.");
  m.def("register_dataset", &RegisterDataset, "repo_path"_a, "name"_a, "schema"_a, "rows"_a,
        "timestamp_column"_a, "features"_a, "feature_service"_a, "full_feature_names"_a,
        "as_of_ms"_a.none(), "registry_version"_a, "feature_refs"_a, "source_versions"_a,
        "source_uris"_a, "Makes the Delta table another engine wrote a saved dataset.");
  m.def("record_materialization", &RecordMaterialization, "repo_path"_a, "view"_a,
        "source_version"_a, "end_us"_a, "rows_written"_a,
        "Records a view's materialization watermark after another engine wrote it.");
}

}  // namespace stratalake::python
