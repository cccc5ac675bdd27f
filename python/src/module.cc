// stratalake._core: the C++ engine for Python (nanobind).
//
// Tables cross the boundary as Arrow C streams (the PyCapsule interface), so
// data is never copied: an input's buffers are read where the producer
// (pyarrow, polars, DuckDB, ...) put them, and results are handed to pyarrow
// as they are. Every call into the engine releases the GIL. Errors become the
// exception classes of stratalake._errors (by ErrorKind). Long calls take a
// progress callable that is also the cancellation point for Ctrl-C.
//
// This module is deliberately thin: the Python package (python/stratalake)
// gives it the public, documented API.
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <arrow/api.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/compute/api.h>

#include "bindings.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/ingest.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {
namespace {

void ReleaseSchemaCapsule(void* p) noexcept {
  auto* schema = static_cast<ArrowSchema*>(p);
  if (schema->release) schema->release(schema);
  std::free(schema);
}

nb::capsule ExportSchema(const arrow::Schema& schema) {
  auto* c = static_cast<ArrowSchema*>(std::malloc(sizeof(ArrowSchema)));
  c->release = nullptr;
  arrow::Status st = arrow::ExportSchema(schema, c);
  if (!st.ok()) {
    std::free(c);
    Raise(st);
  }
  return nb::capsule(c, "arrow_schema", &ReleaseSchemaCapsule);
}

// ---- progress and Ctrl-C ------------------------------------------------------------

// Wraps a Python callable(stage, done, total, rows) into the engine's callback.
// Between units of work it takes the GIL, checks for Ctrl-C (and any other
// pending signal), reports progress, and cancels the call when a signal
// handler raised; the exception is re-raised once the engine has stopped.
class ProgressBridge {
 public:
  explicit ProgressBridge(nb::object callback) : callback_(std::move(callback)) {}

  ProgressCallback Callback() {
    return [this](const Progress& p) -> bool {
      nb::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) {
        error_ = std::make_unique<nb::python_error>();
        return false;
      }
      if (!callback_.is_none()) {
        try {
          callback_(p.stage, p.done, p.total, p.rows);
        } catch (nb::python_error& e) {
          error_ = std::make_unique<nb::python_error>(std::move(e));
          return false;
        }
      }
      return true;
    };
  }

  // After the engine returned: re-raise a Ctrl-C (or a callback's error).
  void RethrowIfInterrupted() {
    if (error_) {
      auto e = std::move(error_);
      e->restore();
      throw nb::python_error();
    }
  }

 private:
  nb::object callback_;
  std::unique_ptr<nb::python_error> error_;
};

template <typename T>
T RunWithProgress(ProgressBridge& bridge, const std::function<arrow::Result<T>()>& fn) {
  arrow::Result<T> r = arrow::Status::UnknownError("not run");
  {
    nb::gil_scoped_release release;
    r = fn();
  }
  bridge.RethrowIfInterrupted();
  return Check(std::move(r));
}

// ---- Delta tables -------------------------------------------------------------------

delta::WriteMode ParseMode(const std::string& mode) {
  if (mode == "append") return delta::WriteMode::kAppend;
  if (mode == "overwrite") return delta::WriteMode::kOverwrite;
  if (mode == "error") return delta::WriteMode::kErrorIfExists;
  if (mode == "ignore") return delta::WriteMode::kIgnore;
  throw nb::value_error(
      ("mode must be 'append', 'overwrite', 'error' or 'ignore', not '" + mode + "'").c_str());
}

nb::dict CommitDict(const delta::CommitResult& r) {
  nb::dict d;
  d["version"] = r.version;
  d["noop"] = r.noop;
  nb::dict m;
  for (const auto& [k, v] : r.metrics) m[nb::str(k.c_str())] = v;
  d["metrics"] = m;
  return d;
}

// A snapshot's files as plain Python values.
nb::list FilesList(const delta::Snapshot& s) {
  nb::list out;
  for (const auto& f : s.files()) {
    nb::dict d;
    d["path"] = f.path;
    d["size"] = f.size;
    d["modification_time"] = f.modification_time;
    nb::dict pv;
    for (const auto& [k, v] : f.partition_values) {
      if (v) {
        pv[nb::str(k.c_str())] = *v;
      } else {
        pv[nb::str(k.c_str())] = nb::none();
      }
    }
    d["partition_values"] = pv;
    d["stats"] = f.stats;
    d["deletion_vector"] = f.deletion_vector.has_value();
    out.append(d);
  }
  return out;
}

class PyTable {
 public:
  explicit PyTable(const std::string& uri)
      : table_(Check(delta::DeltaTable::ForPath(uri))), given_uri_(uri) {}

  // An s3:// URI as given (the root is "bucket/key"); a local table's absolute root.
  std::string uri() const {
    return given_uri_.rfind("s3://", 0) == 0 ? given_uri_ : table_->root();
  }

  bool exists() {
    nb::gil_scoped_release release;
    return Check(table_->Exists());
  }

  // (Snapshots are immutable; nanobind holds them as non-const.)
  std::shared_ptr<delta::Snapshot> Snapshot(std::optional<int64_t> version,
                                            std::optional<int64_t> timestamp_ms) {
    nb::gil_scoped_release release;
    std::shared_ptr<const delta::Snapshot> s;
    if (version) {
      s = Check(table_->AtVersion(*version));
    } else if (timestamp_ms) {
      s = Check(table_->AtTimestamp(*timestamp_ms));
    } else {
      s = Check(table_->Latest());
    }
    return std::const_pointer_cast<delta::Snapshot>(s);
  }

  nb::capsule Read(std::shared_ptr<delta::Snapshot> snap,
                   std::optional<std::vector<std::string>> columns, const std::string& filter) {
    std::shared_ptr<arrow::Table> t;
    {
      nb::gil_scoped_release release;
      delta::ReadOptions o;
      o.columns = columns;
      o.filter = filter;
      t = Check(table_->Read(*snap, o));
    }
    return ExportTable(std::move(t));
  }

  // Streaming: file by file, so memory holds one file's batches at a time.
  nb::capsule ReadBatches(std::shared_ptr<delta::Snapshot> snap,
                          std::optional<std::vector<std::string>> columns,
                          const std::string& filter);

  nb::dict Write(nb::capsule data, const std::string& mode,
                 std::optional<std::vector<std::string>> partition_by,
                 std::optional<std::string> schema_mode, std::optional<std::string> predicate,
                 std::optional<std::map<std::string, std::string>> configuration,
                 std::optional<std::string> name, std::optional<std::string> description) {
    auto t = ImportTable(std::move(data));
    delta::WriteOptions o;
    o.mode = ParseMode(mode);
    if (partition_by) o.partition_by = *partition_by;
    if (schema_mode) {
      if (*schema_mode == "merge") {
        o.merge_schema = true;
      } else if (*schema_mode == "overwrite") {
        o.overwrite_schema = true;
      } else {
        throw nb::value_error("schema_mode must be 'merge' or 'overwrite'");
      }
    }
    if (predicate) o.replace_where = *predicate;
    if (configuration) o.create.properties = *configuration;
    o.create.name = name;
    o.create.description = description;
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = Check(table_->Write(t, o));
    }
    return CommitDict(r);
  }

  nb::dict Delete(const std::string& predicate) {
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = Check(table_->Delete(predicate));
    }
    return CommitDict(r);
  }

  nb::dict Update(const std::string& predicate, const std::string& assignments) {
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = Check(table_->Update(predicate, assignments));
    }
    return CommitDict(r);
  }

  // matched: [(action "update_all"|"update"|"delete", condition, assignments)]
  nb::dict Merge(nb::capsule source, std::vector<std::string> on,
                 std::vector<std::tuple<std::string, std::string, std::string>> matched,
                 std::vector<std::string> not_matched, bool merge_schema) {
    auto src = ImportTable(std::move(source));
    delta::MergeOptions o;
    o.on = std::move(on);
    o.merge_schema = merge_schema;
    for (const auto& [action, condition, assignments] : matched) {
      delta::MatchedClause c;
      c.action = action == "delete"   ? delta::MatchedClause::Action::kDelete
                 : action == "update" ? delta::MatchedClause::Action::kUpdate
                                      : delta::MatchedClause::Action::kUpdateAll;
      c.condition = condition;
      c.assignments = assignments;
      o.when_matched.push_back(c);
    }
    for (const auto& condition : not_matched) o.when_not_matched.push_back({condition});
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = Check(table_->Merge(src, o));
    }
    return CommitDict(r);
  }

  nb::list History(int64_t limit) {
    std::vector<delta::CommitInfo> h;
    {
      nb::gil_scoped_release release;
      h = Check(table_->History(limit));
    }
    nb::list out;
    for (const auto& c : h) {
      nb::dict d;
      d["version"] = c.version;
      d["timestamp"] = c.timestamp;
      d["operation"] = c.operation;
      d["operationParameters"] = c.operation_parameters;
      d["operationMetrics"] = c.operation_metrics;
      if (c.user_metadata) d["userMetadata"] = *c.user_metadata;
      if (c.read_version) d["readVersion"] = *c.read_version;
      if (c.is_blind_append) d["isBlindAppend"] = *c.is_blind_append;
      d["engineInfo"] = c.engine_info;
      d["json"] = c.json;
      out.append(d);
    }
    return out;
  }

  nb::dict Restore(std::optional<int64_t> version, std::optional<int64_t> timestamp_ms) {
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = version ? Check(table_->Restore(*version))
                  : Check(table_->RestoreToTimestamp(timestamp_ms.value_or(0)));
    }
    return CommitDict(r);
  }

  std::vector<std::string> Vacuum(std::optional<int64_t> retention_hours, bool dry_run,
                                  bool enforce_retention_duration) {
    delta::VacuumOptions o;
    o.retention_hours = retention_hours;
    o.dry_run = dry_run;
    o.force = !enforce_retention_duration;
    nb::gil_scoped_release release;
    return Check(table_->Vacuum(o)).files;
  }

  nb::dict Optimize(const std::string& where, std::optional<int64_t> target_size,
                    std::vector<std::string> zorder_by) {
    delta::OptimizeOptions o;
    o.where = where;
    if (target_size) o.target_size = *target_size;
    o.zorder_by = std::move(zorder_by);
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = Check(table_->Optimize(o));
    }
    return CommitDict(r);
  }

  nb::dict SetProperties(std::map<std::string, std::string> props) {
    delta::CommitResult r;
    {
      nb::gil_scoped_release release;
      r = Check(table_->SetProperties(props));
    }
    return CommitDict(r);
  }

 private:
  std::unique_ptr<delta::DeltaTable> table_;
  std::string given_uri_;
};

nb::capsule PyTable::ReadBatches(std::shared_ptr<delta::Snapshot> snap,
                                 std::optional<std::vector<std::string>> columns,
                                 const std::string& filter) {
  delta::ReadOptions o;
  o.columns = std::move(columns);
  o.filter = filter;
  return ExportReader(Check(table_->Scan(std::move(snap), o)));
}

// ---- the feature store --------------------------------------------------------------------

nb::object JsonLoads(const std::string& text) {
  return nb::module_::import_("json").attr("loads")(text);
}

// A core warning as a dict; stratalake/_warnings.py words it.
nb::list WarningList(const std::vector<Warning>& warnings) {
  nb::list out;
  for (const auto& w : warnings) {
    nb::dict d;
    d["code"] = WarningCodeName(w.code);
    d["view"] = w.view;
    d["source"] = w.source;
    d["push_source"] = w.push_source;
    d["rows_read"] = w.rows_read;
    d["keys"] = w.keys;
    d["detail"] = w.detail;
    out.append(d);
  }
  return out;
}

nb::dict SourceReadDict(const retrieval::SourceRead& s) {
  nb::dict d;
  d["source"] = s.source;
  d["table_uri"] = s.table_uri;
  d["version"] = s.version;
  d["files_read"] = s.files_read;
  d["files_total"] = s.files_total;
  d["rows_read"] = s.rows_read;
  return d;
}

// A retrieval checked against the registry (every error that needs no data is
// raised by get_historical), run when its rows are asked for: into a table, a
// Parquet file or a saved dataset, each through the streaming entry point, so
// the entity rows and the output stay within the memory budget where they come
// from and go to files. The first run pins the registry and source versions it
// read, so later runs give the same rows.
struct PyRetrieval {
  retrieval::HistoricalRequest request;
  retrieval::HistoricalResult result;   // registry_version, feature_refs; the rest once run
  std::shared_ptr<arrow::Table> table;  // the rows, once collected
  bool ran = false;
};

// Collects a streamed retrieval's pieces into one table.
class CollectSink final : public retrieval::HistoricalSink {
 public:
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    schema_ = schema;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    pieces_.push_back(rows);
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Finish() {
    if (pieces_.empty()) return arrow::Table::MakeEmpty(schema_);
    if (pieces_.size() == 1) return pieces_[0];
    return arrow::ConcatenateTables(pieces_);  // chunks side by side: no copy
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::Table>> pieces_;
};

class PyStore {
 public:
  explicit PyStore(const std::string& path) : repo_(Check(repo::FeatureRepository::Open(path))) {}

  std::string root() const { return repo_->config().root; }
  std::string project() const { return repo_->config().project; }

  nb::dict Config() const {
    const auto& c = repo_->config();
    nb::dict d;
    d["root"] = c.root;
    d["project"] = c.project;
    d["offline_store"] = c.offline_store;
    d["online_store_type"] = c.online_store_type;
    d["online_store"] = c.online_store;
    d["registry"] = c.registry;
    return d;
  }

  // (plan text, plan as JSON-able dict list, incompatibilities)
  nb::tuple Plan() {
    registry::Plan plan;
    {
      nb::gil_scoped_release release;
      auto defs = Check(repo_->LoadValidatedDefinitions());
      auto reg = Check(repo_->registry());
      plan = Check(reg->PlanChanges(defs, repo_->config().compatibility));
    }
    nb::list changes;
    for (const auto& c : plan.changes) {
      nb::dict d;
      d["kind"] = registry::ObjectKindName(c.kind);
      d["name"] = c.name;
      d["change"] = registry::ChangeTypeName(c.type);
      nb::list fields;
      for (const auto& f : c.fields) {
        nb::dict fd;
        fd["path"] = f.path;
        fd["before"] = f.before ? nb::cast(*f.before) : nb::none();
        fd["after"] = f.after ? nb::cast(*f.after) : nb::none();
        fields.append(fd);
      }
      d["fields"] = fields;
      changes.append(d);
    }
    return nb::make_tuple(plan.ToString(), plan.base_version, changes, plan.incompatibilities);
  }

  nb::dict Apply(const std::string& author, const std::string& message) {
    registry::ApplyResult r;
    {
      nb::gil_scoped_release release;
      auto defs = Check(repo_->LoadValidatedDefinitions());
      auto reg = Check(repo_->registry());
      r = Check(reg->Apply(defs, repo_->config().compatibility, author, message));
      std::lock_guard<std::mutex> lock(mu_);
      if (service_ && r.changed) Check(service_->registry_cache().Refresh());
    }
    nb::dict d;
    d["version"] = r.version;
    d["changed"] = r.changed;
    d["plan"] = r.plan.ToString();
    return d;
  }

  // Canonical JSON of every object of a kind at a registry version.
  nb::list Objects(const std::string& kind, std::optional<int64_t> version) {
    auto state = LoadState(version);
    auto k = Check(registry::ParseObjectKind(kind));
    nb::list out;
    auto add = [&](const std::string& json) { out.append(JsonLoads(json)); };
    switch (k) {
      case registry::ObjectKind::kEntity:
        for (const auto& o : state->defs.entities) add(registry::ToCanonicalJson(o));
        break;
      case registry::ObjectKind::kSource:
        for (const auto& o : state->defs.sources) add(registry::ToCanonicalJson(o));
        break;
      case registry::ObjectKind::kFeatureView:
        for (const auto& o : state->defs.feature_views) add(registry::ToCanonicalJson(o));
        break;
      case registry::ObjectKind::kFeatureService:
        for (const auto& o : state->defs.feature_services) add(registry::ToCanonicalJson(o));
        break;
      case registry::ObjectKind::kRequestSource:
        for (const auto& o : state->defs.request_sources) add(registry::ToCanonicalJson(o));
        break;
      case registry::ObjectKind::kOnDemandFeatureView:
        for (const auto& o : state->defs.on_demand_feature_views) {
          add(registry::ToCanonicalJson(o));
        }
        break;
      case registry::ObjectKind::kTransformation:
        for (const auto& o : state->defs.transformations) add(registry::ToCanonicalJson(o));
        break;
    }
    return out;
  }

  int64_t RegistryVersion() {
    nb::gil_scoped_release release;
    auto reg = Check(repo_->registry());
    return Check(reg->HeadVersion());
  }

  // Entity rows from a stream capsule (collected: it can be read once) or, when
  // `entities_path` is given, a Parquet file read again row group by row group.
  std::unique_ptr<PyRetrieval> GetHistorical(
      std::optional<nb::capsule> entities, const std::string& entities_path,
      const std::string& ts_column, std::vector<std::string> features, const std::string& service,
      bool full_names, std::optional<int64_t> as_of_ms, std::optional<int64_t> registry_version,
      int64_t memory_budget) {
    auto r = std::make_unique<PyRetrieval>();
    if (entities) r->request.entities = ImportTable(std::move(*entities));
    r->request.timestamp_column = ts_column;
    r->request.features = std::move(features);
    r->request.feature_service = service;
    r->request.full_feature_names = full_names;
    r->request.as_of_ms = as_of_ms;
    r->request.registry_version = registry_version;
    r->request.memory_budget_bytes = memory_budget;
    nb::gil_scoped_release release;
    std::shared_ptr<arrow::Schema> schema;
    if (r->request.entities) {
      schema = r->request.entities->schema();
    } else {
      r->request.open_entities = Check(retrieval::ParquetEntityReader(entities_path));
      schema = Check(r->request.open_entities())->schema();
    }
    r->result = Check(retrieval::CheckHistoricalRequest(*repo_, r->request, *schema));
    r->request.registry_version = r->result.registry_version;
    return r;
  }

  // Rows into a table (collected from the stream).
  nb::capsule HistoricalTable(PyRetrieval& r, nb::object progress) {
    if (!r.table) {
      CollectSink sink;
      RunHistorical(r, &sink, std::move(progress));
      nb::gil_scoped_release release;
      r.table = Check(sink.Finish());
    }
    return ExportTable(r.table);
  }

  // Rows into a Parquet file, written as they come.
  void HistoricalToParquet(PyRetrieval& r, const std::string& path, nb::object progress) {
    retrieval::ParquetFileSink sink(path);
    RunHistorical(r, &sink, std::move(progress));
    nb::gil_scoped_release release;
    arrow::Status closed = sink.Close();
    if (!closed.ok()) Raise(closed);
  }

  // Saved as datasets/NAME: the collected rows, or streamed into the dataset.
  nb::dict SaveDataset(PyRetrieval& r, const std::string& name, nb::object progress) {
    retrieval::DatasetManifest m;
    if (r.table) {
      nb::gil_scoped_release release;
      retrieval::HistoricalResult result = r.result;
      result.table = r.table;
      m = Check(retrieval::SaveDataset(*repo_, name, r.request, result));
    } else {
      std::unique_ptr<retrieval::DatasetWriter> writer;
      {
        nb::gil_scoped_release release;
        writer = Check(retrieval::DatasetWriter::Open(*repo_, name, r.request));
      }
      RunHistorical(r, writer.get(), std::move(progress));
      nb::gil_scoped_release release;
      m = Check(writer->Finish(r.result));
    }
    return nb::cast<nb::dict>(JsonLoads(retrieval::ManifestToJson(m)));
  }

  nb::list ListDatasets() {
    std::vector<retrieval::DatasetManifest> ms;
    {
      nb::gil_scoped_release release;
      ms = Check(retrieval::ListDatasets(*repo_));
    }
    nb::list out;
    for (const auto& m : ms) out.append(JsonLoads(retrieval::ManifestToJson(m)));
    return out;
  }

  nb::dict DescribeDataset(const std::string& name) {
    retrieval::DatasetManifest m;
    {
      nb::gil_scoped_release release;
      m = Check(retrieval::LoadDatasetManifest(*repo_, name));
    }
    return nb::cast<nb::dict>(JsonLoads(retrieval::ManifestToJson(m)));
  }

  // The saved rows in the exact schema they were saved from.
  nb::capsule ReadDataset(const std::string& name) {
    std::shared_ptr<arrow::RecordBatchReader> reader;
    {
      nb::gil_scoped_release release;
      reader = Check(retrieval::ReadDataset(*repo_, name));
    }
    return ExportReader(std::move(reader));
  }

  nb::tuple RecreateDataset(const std::string& name) {
    retrieval::RecreateResult r;
    {
      nb::gil_scoped_release release;
      r = Check(retrieval::RecreateDataset(*repo_, name));
    }
    return nb::make_tuple(ExportTable(r.table), r.identical, r.difference);
  }

  // (the views' reports, the warnings)
  nb::tuple Materialize(std::optional<int64_t> start_us, int64_t end_us,
                        std::vector<std::string> views, bool incremental, nb::object progress) {
    online::MaterializeOptions o;
    o.start_us = start_us;
    o.end_us = end_us;
    o.views = std::move(views);
    o.incremental = incremental;
    ProgressBridge bridge(std::move(progress));
    o.on_progress = bridge.Callback();
    auto store = Store();
    auto report = RunWithProgress<online::MaterializeReport>(
        bridge, [&] { return online::Materialize(*repo_, *store, o); });
    nb::list out;
    for (const auto& v : report.views) {
      nb::dict d;
      d["view"] = v.view;
      d["source"] = v.source;
      d["incremental"] = v.incremental;
      d["from_version"] = v.from_version;
      d["to_version"] = v.to_version;
      d["files_read"] = v.files_read;
      d["files_total"] = v.files_total;
      d["rows_read"] = v.rows_read;
      d["rows_written"] = v.rows_written;
      d["keys_repaired"] = v.keys_repaired;
      d["repair_passes"] = v.repair_passes;
      d["rebuilt"] = v.rebuilt;
      d["tiles_written"] = v.tiles_written;
      d["tiles_deleted"] = v.tiles_deleted;
      d["tiles_collected"] = v.tiles_collected;
      d["tile_retries"] = v.tile_retries;
      d["keyed_repair"] = v.keyed_repair;
      d["tiles_repaired"] = v.tiles_repaired;
      d["rows_removed"] = v.rows_removed;
      d["files_rewritten"] = v.files_rewritten;
      d["note"] = v.note;
      d["seconds"] = v.seconds;
      out.append(d);
    }
    return nb::make_tuple(out, WarningList(report.warnings));
  }

  // Feast's teardown: the views' online values and watermarks removed.
  std::vector<std::string> Teardown(std::vector<std::string> views) {
    nb::gil_scoped_release release;
    auto store = Store();
    return Check(online::Teardown(*repo_, *store, views)).views;
  }

  // The response as typed Arrow: (values, statuses, event times) stream capsules
  // (OnlineResponse::ToArrow); feature_store.py renders Feast's dict from them.
  nb::tuple GetOnline(std::vector<std::string> features, const std::string& service,
                      std::vector<std::pair<std::string, std::vector<online::KeyScalar>>> entities,
                      bool full_names, std::optional<nb::capsule> request_data) {
    online::OnlineRequest req;
    req.features = std::move(features);
    req.feature_service = service;
    req.full_feature_names = full_names;
    req.entities = std::move(entities);
    if (request_data) {  // request fields for on-demand features (numbers, booleans)
      auto t = ImportTable(std::move(*request_data));
      for (int i = 0; i < t->num_columns(); ++i) {
        auto column = t->column(i);
        std::shared_ptr<arrow::Array> array;
        if (column->num_chunks() == 1) {
          array = column->chunk(0);
        } else {
          array = Check(arrow::Concatenate(column->chunks()));
        }
        req.request_data.emplace_back(t->field(i)->name(), std::move(array));
      }
    }
    online::OnlineResponse::Batches batches;
    std::vector<Warning> warnings;
    {
      nb::gil_scoped_release release;
      auto svc = Service();
      // A long-lived FeatureStore (a notebook's) must see what was applied since,
      // from this object or another process: one cheap head-version check per
      // call (a single-row query); the registry is re-read only when it moved.
      // A failed check is not an error here: the cache keeps the state it holds
      // (its contract), and Get reports a failure when it holds none.
      arrow::Status refreshed = svc->registry_cache().Refresh();
      static_cast<void>(refreshed);
      auto resp = Check(svc->Get(req));
      batches = Check(resp.ToArrow());
      warnings = std::move(resp.warnings);
    }
    auto one = [](const std::shared_ptr<arrow::RecordBatch>& b) {
      return ExportReader(Check(arrow::RecordBatchReader::Make({b}, b->schema())));
    };
    return nb::make_tuple(one(batches.values), one(batches.statuses), one(batches.event_timestamps),
                          WarningList(warnings));
  }

  nb::dict Push(const std::string& source, nb::capsule data, const std::string& to) {
    auto t = ImportTable(std::move(data));
    online::PushResult r;
    {
      nb::gil_scoped_release release;
      auto target = Check(online::ParsePushTarget(to));
      auto reg = Check(repo_->registry());
      auto state = Check(reg->Load());
      std::shared_ptr<online::OnlineStore> store;
      if (target != online::PushTarget::kOffline) store = Store();
      r = Check(online::Push(*repo_, *state, store.get(), source, t, target));
    }
    nb::dict d;
    d["rows"] = r.rows;
    d["views_written"] = r.views_written;
    d["delta_version"] = r.delta_version ? nb::cast(*r.delta_version) : nb::none();
    return d;
  }

  nb::dict Ingest(const std::string& source_or_table, std::vector<std::string> files,
                  const std::string& mode, std::vector<std::string> merge_keys, bool quarantine,
                  const std::string& format) {
    IngestReport r;
    {
      nb::gil_scoped_release release;
      IngestTarget target = Check(repo_->ResolveIngestTarget(source_or_table));
      IngestOptions o;
      o.mode = mode == "overwrite" ? IngestMode::kOverwrite
               : mode == "merge"   ? IngestMode::kMerge
                                   : IngestMode::kAppend;
      o.merge_keys = std::move(merge_keys);
      o.quarantine = quarantine;
      o.format = format;
      r = Check(stratalake::Ingest(target, files, o));
    }
    nb::dict d;
    d["table_uri"] = r.table_uri;
    d["rows_read"] = r.rows_read;
    d["rows_written"] = r.rows_written;
    d["rows_rejected"] = r.rows_rejected;
    d["version"] = r.version;
    d["summary"] = r.ToString();
    return d;
  }

  // Rows of one view straight into the online store (Feast's write_to_online_store).
  int64_t WriteOnline(const std::string& view, nb::capsule data) {
    auto t = ImportTable(std::move(data));
    nb::gil_scoped_release release;
    auto reg = Check(repo_->registry());
    auto state = Check(reg->Load());
    auto store = Store();
    return Check(online::WriteToOnlineStore(*state, store.get(), view, t)).rows;
  }

  // Re-reads the registry now for online reads (they also check before each call).
  void RefreshRegistry() {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    if (service_) Check(service_->registry_cache().Refresh());
  }

  // Drops this object's hold on the online store (closed once no FeatureStore
  // of this process holds it, so another process may open it).
  void Close() {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    service_.reset();
    store_.reset();
  }

 private:
  void RunHistorical(PyRetrieval& r, retrieval::HistoricalSink* sink, nb::object progress) {
    ProgressBridge bridge(std::move(progress));
    r.request.on_progress = bridge.Callback();
    const repo::FeatureRepository& repo = *repo_;
    auto result = RunWithProgress<retrieval::HistoricalResult>(
        bridge, [&] { return retrieval::GetHistoricalFeatures(repo, r.request, sink); });
    r.request.on_progress = nullptr;
    r.result = std::move(result);
    r.ran = true;
    for (const auto& src : r.result.sources) {  // later runs read the same versions
      if (src.version >= 0) r.request.source_versions[src.source] = src.version;
    }
  }

  std::shared_ptr<const registry::RegistryState> LoadState(std::optional<int64_t> version) {
    nb::gil_scoped_release release;
    auto reg = Check(repo_->registry());
    return Check(reg->Load(version));
  }

  // The online store, opened once per repository and process: FeatureStore
  // objects on one repository share the handle (an embedded RocksDB store can
  // be open only once); it closes when the last of them lets it go. Called
  // without the GIL.
  std::shared_ptr<online::OnlineStore> Store() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!store_) store_ = SharedStore(*repo_);
    return store_;
  }

  static std::shared_ptr<online::OnlineStore> SharedStore(const repo::FeatureRepository& repo) {
    return SharedOnlineStore(repo);
  }

  std::shared_ptr<online::OnlineService> Service() {
    auto store = Store();
    std::lock_guard<std::mutex> lock(mu_);
    if (!service_) {
      service_ =
          std::make_shared<online::OnlineService>(Check(repo_->registry()), store, Clock::System());
    }
    return service_;
  }

  std::unique_ptr<repo::FeatureRepository> repo_;
  std::mutex mu_;
  std::shared_ptr<online::OnlineStore> store_;
  std::shared_ptr<online::OnlineService> service_;
};

}  // namespace

std::shared_ptr<online::OnlineStore> SharedOnlineStore(const repo::FeatureRepository& repo) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<online::OnlineStore>> open;
  std::lock_guard<std::mutex> lock(mu);
  std::weak_ptr<online::OnlineStore>& slot = open[repo.config().root];
  std::shared_ptr<online::OnlineStore> store = slot.lock();
  if (!store) {
    store = Check(online::OpenRepositoryStore(repo));
    slot = store;
  }
  return store;
}

}  // namespace stratalake::python

namespace stratalake::python {}  // namespace stratalake::python

NB_MODULE(_core, m) {
  using namespace stratalake::python;
  using stratalake::delta::Snapshot;
  m.doc() = "StrataLake's C++ engine (internal; use the stratalake package).";
  // Arrow's compute functions beyond the core ones (min_max, ...) are registered on
  // request, as the CLI does in main(); the engine must not depend on whether
  // pyarrow.compute was imported first.
  if (arrow::Status st = arrow::compute::Initialize(); !st.ok()) Raise(st);

  RegisterErrorTranslator();
  BindTransform(m);

  BindInit(m);
  BindObjectStore(m);
  BindSpark(m);
  BindPipelinePlan(m);
  BindOnlineSst(m);

  nb::class_<Snapshot>(m, "Snapshot")
      .def_prop_ro("version", &Snapshot::version)
      .def_prop_ro("timestamp_ms", &Snapshot::timestamp_ms)
      .def_prop_ro("table_root", [](const Snapshot& s) { return s.table_root(); })
      .def("schema_capsule", [](const Snapshot& s) { return ExportSchema(*s.schema()); })
      .def("files", [](const Snapshot& s) { return FilesList(s); })
      .def("metadata", [](const Snapshot& s) {
        const auto& md = s.metadata();
        nb::dict d;
        d["id"] = md.id;
        d["name"] = md.name ? nb::cast(*md.name) : nb::none();
        d["description"] = md.description ? nb::cast(*md.description) : nb::none();
        d["partition_columns"] = md.partition_columns;
        d["configuration"] = md.configuration;
        d["schema_string"] = md.schema_string;
        d["created_time"] = md.created_time ? nb::cast(*md.created_time) : nb::none();
        d["min_reader_version"] = s.protocol().min_reader_version;
        d["min_writer_version"] = s.protocol().min_writer_version;
        d["reader_features"] = s.protocol().reader_features;
        d["writer_features"] = s.protocol().writer_features;
        d["num_records"] = s.NumRecords();
        d["size_in_bytes"] = s.SizeInBytes();
        return d;
      });

  nb::class_<PyTable>(m, "Table")
      .def(nb::init<const std::string&>(), "uri"_a)
      .def_prop_ro("uri", &PyTable::uri)
      .def("exists", &PyTable::exists)
      .def("snapshot", &PyTable::Snapshot, "version"_a.none() = nb::none(),
           "timestamp_ms"_a.none() = nb::none())
      .def("read", &PyTable::Read, "snapshot"_a, "columns"_a.none() = nb::none(), "filter"_a = "")
      .def("read_batches", &PyTable::ReadBatches, "snapshot"_a, "columns"_a.none() = nb::none(),
           "filter"_a = "")
      .def("write", &PyTable::Write, "data"_a, "mode"_a, "partition_by"_a.none() = nb::none(),
           "schema_mode"_a.none() = nb::none(), "predicate"_a.none() = nb::none(),
           "configuration"_a.none() = nb::none(), "name"_a.none() = nb::none(),
           "description"_a.none() = nb::none())
      .def("delete", &PyTable::Delete, "predicate"_a)
      .def("update", &PyTable::Update, "predicate"_a, "assignments"_a)
      .def("merge", &PyTable::Merge, "source"_a, "on"_a, "matched"_a, "not_matched"_a,
           "merge_schema"_a = false)
      .def("history", &PyTable::History, "limit"_a = 0)
      .def("restore", &PyTable::Restore, "version"_a.none() = nb::none(),
           "timestamp_ms"_a.none() = nb::none())
      .def("vacuum", &PyTable::Vacuum, "retention_hours"_a.none() = nb::none(), "dry_run"_a = true,
           "enforce_retention_duration"_a = true)
      .def("optimize", &PyTable::Optimize, "where"_a = "", "target_size"_a.none() = nb::none(),
           "zorder_by"_a = std::vector<std::string>{})
      .def("set_properties", &PyTable::SetProperties, "properties"_a);

  nb::class_<PyRetrieval>(m, "Retrieval")
      .def_prop_ro("registry_version", [](PyRetrieval& r) { return r.result.registry_version; })
      .def_prop_ro("feature_refs", [](PyRetrieval& r) { return r.result.feature_refs; })
      .def_prop_ro("ran", [](PyRetrieval& r) { return r.ran; })
      .def("warnings", [](PyRetrieval& r) { return WarningList(r.result.warnings); })
      .def("sources", [](PyRetrieval& r) {
        nb::list out;
        for (const auto& s : r.result.sources) out.append(SourceReadDict(s));
        return out;
      });

  nb::class_<PyStore>(m, "Store")
      .def(nb::init<const std::string&>(), "repo_path"_a)
      .def_prop_ro("root", &PyStore::root)
      .def_prop_ro("project", &PyStore::project)
      .def("config", &PyStore::Config)
      .def("plan", &PyStore::Plan)
      .def("apply", &PyStore::Apply, "author"_a, "message"_a)
      .def("objects", &PyStore::Objects, "kind"_a, "version"_a.none() = nb::none())
      .def("registry_version", &PyStore::RegistryVersion)
      .def("get_historical", &PyStore::GetHistorical, "entities"_a.none(), "entities_path"_a,
           "timestamp_column"_a, "features"_a, "feature_service"_a, "full_feature_names"_a,
           "as_of_ms"_a.none(), "registry_version"_a.none(), "memory_budget"_a)
      .def("historical_table", &PyStore::HistoricalTable, "retrieval"_a, "progress"_a.none())
      .def("historical_to_parquet", &PyStore::HistoricalToParquet, "retrieval"_a, "path"_a,
           "progress"_a.none())
      .def("save_dataset", &PyStore::SaveDataset, "retrieval"_a, "name"_a, "progress"_a.none())
      .def("list_datasets", &PyStore::ListDatasets)
      .def("describe_dataset", &PyStore::DescribeDataset, "name"_a)
      .def("recreate_dataset", &PyStore::RecreateDataset, "name"_a)
      .def("read_dataset", &PyStore::ReadDataset, "name"_a)
      .def("materialize", &PyStore::Materialize, "start_us"_a.none(), "end_us"_a, "views"_a,
           "incremental"_a, "progress"_a.none())
      .def("teardown", &PyStore::Teardown, "views"_a)
      .def("get_online", &PyStore::GetOnline, "features"_a, "feature_service"_a, "entities"_a,
           "full_feature_names"_a, "request_data"_a.none() = nb::none())
      .def("push", &PyStore::Push, "source"_a, "data"_a, "to"_a)
      .def("ingest", &PyStore::Ingest, "source"_a, "files"_a, "mode"_a, "merge_keys"_a,
           "quarantine"_a, "format"_a)
      .def("write_online", &PyStore::WriteOnline, "feature_view"_a, "data"_a)
      .def("refresh_registry", &PyStore::RefreshRegistry)
      .def("close", &PyStore::Close);
}
