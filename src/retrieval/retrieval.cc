// get_historical_features: resolves feature references against a registry
// version, reads each source at the right Delta version (projection, file
// pruning on the entity time range), and runs the as-of join per view.
#include "stratalake/retrieval.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <iostream>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/util/bitmap_ops.h>
#include <arrow/util/byte_size.h>

#include "common/batch_queue.h"
#include "common/errors.h"
#include "common/time_units.h"
#include "retrieval/asof_join.h"
#include "retrieval/asof_memory.h"
#include "retrieval/window.h"
#include "storage/scan.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/on_demand.h"
#include "stratalake/status.h"

namespace stratalake::retrieval {

namespace {

using registry::Definitions;
using registry::FeatureService;
using registry::FeatureView;
using registry::Source;

arrow::Result<int64_t> ToMicros(const arrow::Scalar& s) {
  if (!s.is_valid) return arrow::Status::Invalid("null");
  switch (s.type->id()) {
    case arrow::Type::TIMESTAMP: {
      const auto& t = static_cast<const arrow::TimestampType&>(*s.type);
      int64_t v = static_cast<const arrow::TimestampScalar&>(s).value;
      return UnitToMicros(t.unit(), v);
    }
    case arrow::Type::DATE32:
      return static_cast<int64_t>(static_cast<const arrow::Date32Scalar&>(s).value) * 86400000000LL;
    case arrow::Type::DATE64:
      return static_cast<const arrow::Date64Scalar&>(s).value * 1000;
    default:
      return arrow::Status::Invalid("not a time");
  }
}

std::string IsoMicros(int64_t us) {
  int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
  int64_t frac = us - secs * 1000000;
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(frac));
  return out;
}

bool IsTime(const arrow::DataType& t) {
  return t.id() == arrow::Type::TIMESTAMP || t.id() == arrow::Type::DATE32 ||
         t.id() == arrow::Type::DATE64;
}

std::string StoredName(const Source& s, const std::string& mapped) {
  for (const auto& [from, to] : s.field_mapping) {
    if (to == mapped) return from;
  }
  return mapped;
}

struct OpenedSource {
  std::unique_ptr<delta::DeltaTable> table;
  std::shared_ptr<const delta::Snapshot> snapshot;  // null: no table (as of then) = no rows
};

// Opens a source's Delta table at the version the request asks for.
arrow::Result<OpenedSource> OpenSource(const repo::FeatureRepository& repo, const Source& src,
                                       const HistoricalRequest& req, SourceRead* read) {
  read->source = src.name;
  read->table_uri = repo.TableUri(src.path);
  if (src.type == registry::SourceType::kParquet) {
    return UserError(ErrorKind::kUnsupportedFeature,
                     "source '" + src.name +
                         "' is a Parquet source; point-in-time retrieval reads Delta sources "
                         "(ingest the files into a Delta source)");
  }
  OpenedSource o;
  ARROW_ASSIGN_OR_RAISE(o.table, delta::DeltaTable::ForPath(read->table_uri));
  arrow::Result<std::shared_ptr<const delta::Snapshot>> snap;
  auto pinned = req.source_versions.find(src.name);
  if (pinned != req.source_versions.end()) {
    if (pinned->second < 0) return o;  // did not exist when the dataset was saved
    snap = o.table->AtVersion(pinned->second);
  } else if (req.as_of_ms) {
    snap = o.table->AtTimestamp(*req.as_of_ms);
  } else {
    snap = o.table->Latest();
  }
  if (!snap.ok()) {
    // No table yet (or none as of the knowledge time): no feature rows.
    if (HasErrorKind(snap.status(), ErrorKind::kTableNotFound) ||
        (req.as_of_ms && pinned == req.source_versions.end() &&
         HasErrorKind(snap.status(), ErrorKind::kVersionNotFound))) {
      return o;
    }
    if (pinned != req.source_versions.end()) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kVersionNotFound,
                       "source '" + src.name + "' can no longer be read at version " +
                           std::to_string(pinned->second) + ": " + snap.status().message());
    }
    return snap.status();
  }
  o.snapshot = *snap;
  read->version = o.snapshot->version();
  return o;
}

// A read whose time-range mask drops fewer than 1/8 of its rows is not filtered.
constexpr int64_t kKeepUnfilteredDenominator = 8;

// The number of true values of a boolean mask without nulls.
int64_t CountTrue(const arrow::ChunkedArray& mask) {
  int64_t n = 0;
  for (const auto& chunk : mask.chunks()) {
    const arrow::ArrayData& a = *chunk->data();
    if (a.length == 0) continue;
    n += arrow::internal::CountSetBits(a.buffers[1]->data(), a.offset, a.length);
  }
  return n;
}

// Reads the needed columns of a source into the join, file group by file group.
arrow::Status FeedSource(const OpenedSource& o, const Source& src,
                         const std::vector<std::string>& columns,  // mapped names
                         std::optional<std::pair<int64_t, int64_t>> time_range_us,
                         const HistoricalRequest& req, AsOfJoin* join, SourceRead* read) {
  if (!o.snapshot) return arrow::Status::OK();
  const delta::Snapshot& s = *o.snapshot;
  const auto& table = o.table;
  std::vector<int> fields;
  for (const auto& c : columns) {
    int i = s.schema()->GetFieldIndex(StoredName(src, c));
    if (i < 0) {
      return UserError(ErrorKind::kSchemaMismatch, "source '" + src.name + "' (" + read->table_uri +
                                                       ", version " + std::to_string(s.version()) +
                                                       ") has no column '" + StoredName(src, c) +
                                                       "'; fix the definition or the table");
    }
    fields.push_back(i);
  }
  std::optional<arrow::compute::Expression> filter;
  std::string ts_stored = StoredName(src, src.timestamp_field);
  auto ts_field = s.schema()->GetFieldByName(ts_stored);
  if (time_range_us && ts_field && ts_field->type()->id() == arrow::Type::TIMESTAMP) {
    std::string pred =
        "`" + ts_stored + "` <= TIMESTAMP '" + IsoMicros(time_range_us->second) + "'";
    if (time_range_us->first != INT64_MIN) {
      pred += " AND `" + ts_stored + "` >= TIMESTAMP '" + IsoMicros(time_range_us->first) + "'";
    }
    ARROW_ASSIGN_OR_RAISE(auto e, ParseExpression(pred, *s.schema()));
    ARROW_ASSIGN_OR_RAISE(filter, e.Bind(*s.schema()));
  }
  ARROW_ASSIGN_OR_RAISE(auto plan, delta::PlanFiles(s, filter));
  read->files_total = plan.total_files;
  // Arrival order for the final tie-break: files by write time, then path.
  std::vector<delta::AddFile> files = plan.files;
  std::stable_sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return a.modification_time != b.modification_time ? a.modification_time < b.modification_time
                                                      : a.path < b.path;
  });
  arrow::FieldVector out_fields;
  for (size_t i = 0; i < columns.size(); ++i) {
    out_fields.push_back(s.schema()->field(fields[i])->WithName(columns[i]));
  }
  auto out_schema = arrow::schema(out_fields);
  bool tty = req.progress && isatty(STDERR_FILENO);
  auto started = std::chrono::steady_clock::now();
  // Read file by file, and big files a few row groups at a time, so memory stays
  // bounded by the join's budget rather than by the size of a source's files.
  ARROW_ASSIGN_OR_RAISE(auto to_read, delta::PlanColumns(s, fields, filter));
  // With an explicit budget, one row group at a time, handed to the join in
  // slices so that it spills every half budget rather than a row group at once.
  const bool bounded = req.memory_budget_bytes > 0;
  const int kRowGroupsPerRead = bounded ? 1 : 2;
  for (const auto& file : files) {
    int groups = 1;
    if (!file.deletion_vector) {
      ARROW_ASSIGN_OR_RAISE(groups, delta::CountRowGroups(*table->filesystem(), s, file));
    }
    for (int first = 0; first < std::max(groups, 1); first += kRowGroupsPerRead) {
      delta::FileReadOptions fo;
      fo.row_group_filter = filter;
      fo.use_threads = true;
      if (!file.deletion_vector)
        fo.row_group_range = std::make_pair(first, first + kRowGroupsPerRead);
      ARROW_ASSIGN_OR_RAISE(auto data,
                            delta::ReadDataFile(*table->filesystem(), s, file, to_read.needed, fo));
      if (to_read.row_filter) {
        // The time range only saves the join memory: rows outside it can never
        // match. Dropping them copies every column, so a read that keeps
        // nearly all of its rows is passed on as it is.
        ARROW_ASSIGN_OR_RAISE(auto mask, delta::EvaluatePredicate(*to_read.row_filter, *data));
        const int64_t rows = data->num_rows();
        if (CountTrue(*mask) < rows - rows / kKeepUnfilteredDenominator) {
          ARROW_ASSIGN_OR_RAISE(auto kept, arrow::compute::Filter(data, mask));
          data = kept.table();
        }
      }
      arrow::ChunkedArrayVector cols;
      for (size_t c = 0; c < fields.size(); ++c) cols.push_back(data->column(static_cast<int>(c)));
      data = arrow::Table::Make(out_schema, cols, data->num_rows());
      read->rows_read += data->num_rows();
      arrow::TableBatchReader reader(*data);
      if (bounded) reader.set_chunksize(int64_t{1} << 16);
      std::shared_ptr<arrow::RecordBatch> batch;
      while (true) {
        ARROW_RETURN_NOT_OK(reader.ReadNext(&batch));
        if (!batch) break;
        ARROW_RETURN_NOT_OK(join->AddRight(batch));
      }
    }
    ++read->files_read;
    if (req.on_progress &&
        !req.on_progress({"reading source " + src.name, read->files_read,
                          static_cast<int64_t>(files.size()), read->rows_read})) {
      return arrow::Status::Cancelled("retrieval cancelled");
    }
    if (tty) {
      double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      double rate = secs > 0 ? static_cast<double>(read->rows_read) / secs : 0;
      double eta = secs * static_cast<double>(files.size() - read->files_read) /
                   static_cast<double>(read->files_read);
      std::fprintf(stderr, "\r  %s: %lld/%lld files, %lld rows, %.0f rows/s, ETA %.0fs   ",
                   src.name.c_str(), static_cast<long long>(read->files_read),
                   static_cast<long long>(files.size()), static_cast<long long>(read->rows_read),
                   rate, eta);
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  return arrow::Status::OK();
}

// One requested view: what its join matches and reads, and its output names.
struct ViewPlan {
  registry::ViewRequest request;
  const Source* src = nullptr;
  AsOfSpec spec;
  std::vector<std::string> columns;    // source columns read (mapped names, each once)
  std::vector<std::string> out_names;  // output column of each of request.features
  bool hidden = false;  // read only as an input of on-demand features (not in the output)
};

// A request resolved against the registry and the entity schema; every check
// that needs no data is done here, before anything is read.
struct RetrievalPlan {
  std::shared_ptr<const registry::RegistryState> state;
  std::string ts_col;
  std::vector<ViewPlan> views;
  // The output's feature columns in request order: views[view].request.features[feature].
  struct FeatureSlot {
    size_t position = 0;
    size_t view = 0;
    size_t feature = 0;
    bool operator<(const FeatureSlot& o) const { return position < o.position; }
  };
  std::vector<FeatureSlot> order;
  int64_t num_features = 0;
  HistoricalResult result;  // registry_version and feature_refs
  /// The on-demand features (after the stored ones; nullptr: none); their
  /// stored inputs are the hidden views.
  std::shared_ptr<const registry::OnDemandPlan> on_demand;
};

arrow::Result<RetrievalPlan> PlanRetrieval(const repo::FeatureRepository& repo,
                                           const HistoricalRequest& req,
                                           const arrow::Schema& entity_schema) {
  RetrievalPlan plan;
  plan.ts_col = req.timestamp_column.empty() ? "event_timestamp" : req.timestamp_column;
  const std::string& ts_col = plan.ts_col;
  auto ts_field = entity_schema.GetFieldByName(ts_col);
  if (!ts_field) {
    return UserError(ErrorKind::kSchemaMismatch,
                     "the entity table has no timestamp column '" + ts_col +
                         "' (columns: " + JoinNames(entity_schema.field_names()) +
                         "); name it with " + Mention(Term::kTimestampColumn),
                     {Term::kTimestampColumn});
  }
  if (!IsTime(*ts_field->type())) {
    return UserError(ErrorKind::kSchemaMismatch,
                     "entity column '" + ts_col + "' has type " + ts_field->type()->ToString() +
                         "; it must be a timestamp or date (naive timestamps are taken as UTC)");
  }

  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  ARROW_ASSIGN_OR_RAISE(plan.state, reg->Load(req.registry_version));
  if (plan.state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry is empty; run " + Mention(Term::kApply) + " first",
                     {Term::kApply});
  }
  const Definitions& defs = plan.state->defs;
  ARROW_ASSIGN_OR_RAISE(auto views,
                        registry::ResolveFeatureRequest(defs, req.features, req.feature_service));
  plan.result.registry_version = plan.state->version;

  // Output names, checked for collisions before any data is read.
  std::map<std::string, std::string> taken;  // output name -> what it is
  for (const auto& name : entity_schema.field_names()) taken[name] = "entity column '" + name + "'";
  auto named = registry::FeatureOutputNames(views, req.full_feature_names, std::move(taken),
                                            "pass " + Mention(Term::kFullFeatureNames) +
                                                " or give one view an alias in a feature service");
  if (!named.ok()) return WithTerms(named.status(), {Term::kFullFeatureNames});
  auto out_names = std::move(named).ValueUnsafe();
  ARROW_ASSIGN_OR_RAISE(plan.on_demand,
                        registry::OnDemandPlan::Make(defs, req.features, req.feature_service,
                                                     req.full_feature_names));
  if (plan.on_demand) {
    const std::vector<std::string> entity_names = entity_schema.field_names();
    std::set<std::string> used(entity_names.begin(), entity_names.end());
    for (const auto& names : out_names) used.insert(names.begin(), names.end());
    for (const auto& o : plan.on_demand->outputs()) {
      if (!used.insert(o.name).second) {
        return UserError(ErrorKind::kDefinitionError,
                         "output column '" + o.name +
                             "' would hold both an entity column or feature and on-demand "
                             "feature '" +
                             o.label + ":" + o.feature + "'; pass " +
                             Mention(Term::kFullFeatureNames),
                         {Term::kFullFeatureNames});
      }
    }
    for (const auto& f : plan.on_demand->request_fields()) {
      if (!entity_schema.GetFieldByName(f.name)) {
        return UserError(ErrorKind::kSchemaMismatch,
                         "the entity table has no column '" + f.name +
                             "', a request field the on-demand features read (columns: " +
                             JoinNames(entity_schema.field_names()) + "); add it");
      }
    }
  }
  // The output's features come in request order, whichever view holds them.
  for (size_t i = 0; i < views.size(); ++i) {
    for (size_t j = 0; j < views[i].features.size(); ++j) {
      plan.order.push_back({views[i].positions[j], i, j});
    }
  }
  std::sort(plan.order.begin(), plan.order.end());
  for (const auto& o : plan.order) {
    plan.result.feature_refs.push_back(views[o.view].view->name + ":" +
                                       views[o.view].features[o.feature]);
  }
  plan.num_features = static_cast<int64_t>(plan.order.size());
  for (size_t i = 0; i < views.size(); ++i) {
    ViewPlan vp;
    vp.out_names = std::move(out_names[i]);
    vp.request = std::move(views[i]);
    plan.views.push_back(std::move(vp));
  }
  if (plan.on_demand) {
    for (const auto& o : plan.on_demand->outputs()) {
      plan.result.feature_refs.push_back(o.view->name + ":" + o.feature);
    }
    plan.num_features += static_cast<int64_t>(plan.on_demand->outputs().size());
    for (const auto& dep : plan.on_demand->dependencies()) {
      ViewPlan vp;
      vp.request = dep;
      for (const auto& f : dep.features) {
        vp.out_names.push_back(registry::OnDemandPlan::DependencyColumn(dep.view->name, f));
      }
      vp.hidden = true;
      plan.views.push_back(std::move(vp));
    }
  }

  for (ViewPlan& vp : plan.views) {
    const registry::ViewRequest& vr = vp.request;
    const FeatureView& v = *vr.view;
    vp.src = defs.FindSource(v.source);
    if (!vp.src)
      return UserError(ErrorKind::kObjectNotFound,
                       "feature view '" + v.name + "' has an unknown source");
    AsOfSpec& spec = vp.spec;
    for (const auto& en : v.entities) {
      const registry::Entity* e = defs.FindEntity(en);
      if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
      for (const auto& k : e->join_keys) {
        auto m = vr.key_map.find(k.name);
        std::string col = m == vr.key_map.end() ? k.name : m->second;
        if (!entity_schema.GetFieldByName(col)) {
          return UserError(ErrorKind::kSchemaMismatch,
                           "the entity table has no column '" + col +
                               "', the join key of feature view '" + v.name +
                               "' (columns: " + JoinNames(entity_schema.field_names()) +
                               "); add it, or map it with join_key_map in a feature service");
        }
        spec.left_keys.push_back(col);
        spec.right_keys.push_back(k.name);
      }
    }
    spec.left_time = ts_col;
    spec.right_time = vp.src->timestamp_field.empty() ? repo.config().default_timestamp_field
                                                      : vp.src->timestamp_field;
    spec.right_created = vp.src->created_timestamp_field;
    spec.ttl_us = v.ttl_seconds * 1000000;
    spec.features = vr.features;
    std::vector<std::string> columns = spec.right_keys;
    columns.push_back(spec.right_time);
    if (!v.aggregations.empty()) {
      // A window view reads the aggregated columns (OpenJoin adds the filters' columns).
      spec.right_created.clear();
      spec.ttl_us = 0;
      for (const auto& a : v.aggregations) columns.push_back(a.column);
    } else {
      if (!spec.right_created.empty()) columns.push_back(spec.right_created);
      for (const auto& f : vr.features) columns.push_back(f);
    }
    // A column may serve twice (e.g. a feature that is also the created time).
    for (const auto& c : columns) {
      if (std::find(vp.columns.begin(), vp.columns.end(), c) == vp.columns.end())
        vp.columns.push_back(c);
    }
  }
  return plan;
}

// A join error, saying which view, and that "left" is the entity table.
arrow::Status ViewJoinError(const arrow::Status& st, const ViewPlan& vp) {
  const std::string& msg = st.message();
  bool key_types = msg.find("cannot be compared") != std::string::npos;
  return st.WithMessage("feature view '", vp.request.view->name, "': ", msg,
                        " (left = the entity table, right = source '", vp.src->name, "')",
                        key_types ? "; convert the entity column to the key's type" : "");
}

// Opens a view's source at the pinned version (pinning it in `pinned_req` for
// later views of the same source) and feeds its rows into a new join. Sets
// the view's output fields.
arrow::Result<std::unique_ptr<AsOfJoin>> OpenJoin(const repo::FeatureRepository& repo,
                                                  const ViewPlan& vp,
                                                  std::optional<std::pair<int64_t, int64_t>> range,
                                                  int64_t budget, HistoricalRequest* pinned_req,
                                                  std::map<std::string, SourceRead>* reads,
                                                  arrow::FieldVector* out_fields,
                                                  std::vector<Warning>* warnings) {
  const FeatureView& v = *vp.request.view;
  const Source* src = vp.src;
  std::optional<std::pair<int64_t, int64_t>> view_range = range;
  if (view_range) {
    view_range->first = v.ttl_seconds > 0 ? view_range->first - vp.spec.ttl_us : INT64_MIN;
  }
  const bool windowed = !v.aggregations.empty();
  window::WindowSpec windows;
  if (windowed) {
    ARROW_ASSIGN_OR_RAISE(windows, window::CompileWindows(v));
    // The oldest window of the earliest entity row starts this far back.
    if (view_range) view_range->first = range->first - windows.max_window_us;
  }
  SourceRead read;
  ARROW_ASSIGN_OR_RAISE(auto opened, OpenSource(repo, *src, *pinned_req, &read));
  pinned_req->source_versions.emplace(src->name, read.version);
  if (!opened.snapshot || opened.snapshot->files().empty()) {
    Warning w;
    w.code = opened.snapshot ? Warning::Code::kSourceEmpty : Warning::Code::kSourceMissing;
    w.view = v.name;
    w.source = src->name;
    w.push_source = src->type == registry::SourceType::kPush;
    warnings->push_back(std::move(w));
  }
  // The join's right schema: the snapshot's columns, else (no table) declared types.
  std::shared_ptr<arrow::Schema> declared;
  if (!opened.snapshot) {
    ARROW_ASSIGN_OR_RAISE(declared, repo.SourceSchema(*src));
  }
  std::vector<std::string> columns = vp.columns;
  bool id_columns = false;
  if (windowed) {
    // The filters' columns, and a kafka source's event ids (partition, offset).
    arrow::FieldVector mapped;
    std::shared_ptr<arrow::Schema> stored = opened.snapshot ? opened.snapshot->schema() : declared;
    for (const auto& f : stored->fields()) {
      std::string name = f->name();
      auto m = src->field_mapping.find(name);
      mapped.push_back(f->WithName(m == src->field_mapping.end() ? name : m->second));
    }
    arrow::Schema mapped_schema(mapped);
    for (const auto& a : v.aggregations) {
      if (a.filter.empty()) continue;
      auto e = ParseExpression(a.filter, mapped_schema);
      if (!e.ok()) {
        return UserError(ErrorKind::kSchemaMismatch, "feature view '" + v.name + "' aggregation '" +
                                                         a.name + "': filter `" + a.filter +
                                                         "`: " + e.status().message());
      }
      for (const auto& c : ReferencedColumns(*e)) {
        if (std::find(columns.begin(), columns.end(), c) == columns.end()) columns.push_back(c);
      }
    }
    if (src->type == registry::SourceType::kKafka && opened.snapshot &&
        stored->GetFieldIndex("_kafka_partition") >= 0 &&
        stored->GetFieldIndex("_kafka_offset") >= 0) {
      columns.push_back("_kafka_partition");
      columns.push_back("_kafka_offset");
      id_columns = true;
    }
  }
  arrow::FieldVector fields;
  for (const auto& c : columns) {
    std::shared_ptr<arrow::Field> f;
    if (opened.snapshot) f = opened.snapshot->schema()->GetFieldByName(StoredName(*src, c));
    if (!f && declared) f = declared->GetFieldByName(c);
    if (!f) {
      return UserError(ErrorKind::kSchemaMismatch, "source '" + src->name + "' has no column '" +
                                                       c + "' needed by feature view '" + v.name +
                                                       "'");
    }
    fields.push_back(f->WithName(c));
  }
  auto right_schema = arrow::schema(fields);
  for (size_t j = 0; j < vp.request.features.size(); ++j) {
    std::shared_ptr<arrow::DataType> type;
    if (windowed) {
      for (const auto& f : v.features) {
        if (f.name == vp.request.features[j]) type = f.type;
      }
    } else {
      type = right_schema->GetFieldByName(vp.request.features[j])->type();
    }
    out_fields->push_back(arrow::field(vp.out_names[j], type));
  }
  AsOfOptions options;
  options.memory_budget_bytes = budget;
  std::unique_ptr<AsOfJoin> join;
  if (windowed) {
    ARROW_ASSIGN_OR_RAISE(
        join, window::MakeWindowJoin(vp.spec, windows, right_schema, id_columns, options));
  } else {
    ARROW_ASSIGN_OR_RAISE(join, AsOfJoin::Make(vp.spec, right_schema, options));
  }
  ARROW_RETURN_NOT_OK(
      FeedSource(opened, *src, columns, view_range, *pinned_req, join.get(), &read));
  if (!reads->count(src->name)) (*reads)[src->name] = read;
  return join;
}

bool HasValue(const arrow::ChunkedArray& column) { return column.null_count() < column.length(); }

// The on-demand features of the entity rows `entities` (the whole table, or a
// slice), evaluated batch by batch from their request fields and the hidden
// views' columns (`view_columns`, per view and feature), appended as columns.
arrow::Status AppendOnDemand(const RetrievalPlan& plan, const arrow::Table& entities,
                             const std::vector<arrow::ChunkedArrayVector>& view_columns,
                             arrow::ChunkedArrayVector* out_columns, bool* any_value) {
  const registry::OnDemandPlan& od = *plan.on_demand;
  arrow::FieldVector fields;
  arrow::ChunkedArrayVector columns;
  for (const auto& f : od.request_fields()) {
    auto c = entities.GetColumnByName(f.name);
    if (!c) return arrow::Status::Invalid("the entity rows have no column '", f.name, "'");
    fields.push_back(arrow::field(f.name, c->type()));
    columns.push_back(std::move(c));
  }
  for (size_t v = 0; v < plan.views.size(); ++v) {
    const ViewPlan& vp = plan.views[v];
    if (!vp.hidden) continue;
    for (size_t j = 0; j < vp.out_names.size(); ++j) {
      fields.push_back(arrow::field(vp.out_names[j], view_columns[v][j]->type()));
      columns.push_back(view_columns[v][j]);
    }
  }
  const int64_t rows = entities.num_rows();
  const auto& outputs = od.outputs();
  std::vector<arrow::ArrayVector> chunks(outputs.size());
  auto evaluate = [&](const arrow::RecordBatch& batch) -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto results, od.Evaluate(batch));
    for (size_t j = 0; j < results.size(); ++j) chunks[j].push_back(std::move(results[j]));
    return arrow::Status::OK();
  };
  if (fields.empty()) {
    ARROW_RETURN_NOT_OK(
        evaluate(*arrow::RecordBatch::Make(arrow::schema({}), rows, arrow::ArrayVector{})));
  } else {
    auto table = arrow::Table::Make(arrow::schema(fields), std::move(columns), rows);
    arrow::TableBatchReader reader(*table);
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(reader.ReadNext(&batch));
      if (!batch) break;
      ARROW_RETURN_NOT_OK(evaluate(*batch));
    }
  }
  for (size_t j = 0; j < outputs.size(); ++j) {
    auto column = std::make_shared<arrow::ChunkedArray>(std::move(chunks[j]), outputs[j].type);
    *any_value = *any_value || HasValue(*column);
    out_columns->push_back(std::move(column));
  }
  return arrow::Status::OK();
}

// The output fields of the on-demand features.
void AppendOnDemandFields(const RetrievalPlan& plan, arrow::FieldVector* out_fields) {
  if (!plan.on_demand) return;
  for (const auto& o : plan.on_demand->outputs()) {
    out_fields->push_back(arrow::field(o.name, o.type));
  }
}

// Adds kAllFeaturesNull when there are rows and no feature value in any of them.
void NoteAllNull(bool any_value, int64_t rows, HistoricalResult* result) {
  if (any_value || rows == 0 || result->feature_refs.empty()) return;
  Warning w;
  w.code = Warning::Code::kAllFeaturesNull;
  for (const auto& s : result->sources) w.rows_read += s.rows_read;
  result->warnings.push_back(std::move(w));
}

// Folds the time column of some entity rows into the [min, max] range (µs).
arrow::Status ExtendRange(const std::shared_ptr<arrow::ChunkedArray>& times,
                          std::optional<std::pair<int64_t, int64_t>>* range) {
  if (times->length() == 0) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto mm, arrow::compute::MinMax(times));
  const auto& st = static_cast<const arrow::StructScalar&>(*mm.scalar());
  auto lo = ToMicros(*st.value[0]);
  auto hi = ToMicros(*st.value[1]);
  if (!lo.ok() || !hi.ok()) return arrow::Status::OK();  // all null
  if (!*range) {
    *range = std::make_pair(*lo, *hi);
  } else {
    (*range)->first = std::min((*range)->first, *lo);
    (*range)->second = std::max((*range)->second, *hi);
  }
  return arrow::Status::OK();
}

void NoteJoining(const HistoricalRequest& req, const std::string& view, int64_t entity_rows,
                 int64_t feature_rows, int64_t slices) {
  if (!req.progress || !isatty(STDERR_FILENO)) return;
  std::fprintf(stderr, "  %s: joining %lld entity rows with %lld feature rows", view.c_str(),
               static_cast<long long>(entity_rows), static_cast<long long>(feature_rows));
  if (slices > 1) std::fprintf(stderr, " in %lld slices", static_cast<long long>(slices));
  std::fprintf(stderr, "\n");
}

// The join's freed records and match vectors are kept for the next view (or
// slice) up to a quarter of the budget: fresh memory must be cleared by the
// kernel first, which costs more than filling it.
size_t BlockReuseLimit(const HistoricalRequest& req) {
  const int64_t budget =
      req.memory_budget_bytes > 0 ? req.memory_budget_bytes : DefaultMemoryBudget();
  return static_cast<size_t>(budget / 4);
}

// The in-memory retrieval: one join per view, one view at a time, over the whole entity table.
arrow::Result<HistoricalResult> JoinInMemory(const repo::FeatureRepository& repo,
                                             const HistoricalRequest& req, RetrievalPlan plan,
                                             const std::shared_ptr<arrow::Table>& entities) {
  asof::BlockReuse reuse(BlockReuseLimit(req));
  HistoricalResult result = std::move(plan.result);
  // Entity time range (µs) for file pruning.
  std::optional<std::pair<int64_t, int64_t>> range;
  ARROW_RETURN_NOT_OK(ExtendRange(entities->GetColumnByName(plan.ts_col), &range));

  std::map<std::string, SourceRead> reads;
  // Every view of one source reads the same Delta version: the first open pins it.
  HistoricalRequest pinned_req = req;
  std::vector<arrow::FieldVector> fields(plan.views.size());
  std::vector<arrow::ChunkedArrayVector> columns(plan.views.size());
  for (size_t v = 0; v < plan.views.size(); ++v) {
    const ViewPlan& vp = plan.views[v];
    ARROW_ASSIGN_OR_RAISE(auto join, OpenJoin(repo, vp, range, req.memory_budget_bytes, &pinned_req,
                                              &reads, &fields[v], &result.warnings));
    NoteJoining(req, vp.request.view->name, entities->num_rows(), reads[vp.src->name].rows_read, 1);
    auto joined = join->Finish(*entities);
    if (!joined.ok()) return ViewJoinError(joined.status(), vp);
    std::shared_ptr<arrow::Table> feats = *joined;
    for (const auto& f : vp.request.features) {
      auto col = feats->GetColumnByName(f);
      if (!col) return arrow::Status::UnknownError("join returned no column ", f);
      columns[v].push_back(col);
    }
  }
  // The entity columns as given (fields, metadata and all), then the features in request order.
  arrow::FieldVector out_fields = entities->schema()->fields();
  arrow::ChunkedArrayVector out_columns = entities->columns();
  for (const auto& o : plan.order) {
    out_fields.push_back(fields[o.view][o.feature]);
    out_columns.push_back(columns[o.view][o.feature]);
  }
  bool any_value = false;
  if (plan.on_demand) {
    AppendOnDemandFields(plan, &out_fields);
    ARROW_RETURN_NOT_OK(AppendOnDemand(plan, *entities, columns, &out_columns, &any_value));
  }
  auto out = arrow::Table::Make(arrow::schema(out_fields, entities->schema()->metadata()),
                                std::move(out_columns), entities->num_rows());
  for (auto& [name, r] : reads) result.sources.push_back(r);
  for (const auto& o : plan.order) any_value = any_value || HasValue(*columns[o.view][o.feature]);
  NoteAllNull(any_value, entities->num_rows(), &result);
  result.table = out;
  result.schema = out->schema();
  result.rows = out->num_rows();
  return result;
}

// Per entity row, beyond its own columns: its join records, match and routing
// state (about 64 bytes), and about 16 bytes per output feature (the gathered
// value, and as much again for the previous slice's output that a sink may
// still hold encoded, as the CLI's Parquet writer does).
constexpr int64_t kEntityRowOverhead = 64;
constexpr int64_t kFeatureBytes = 16;
// Streamed slices have at least this many rows (the per-slice work is not free).
constexpr int64_t kMinSliceRows = 4096;

// The streamed retrieval (see retrieval.h): pass 1 reads the time range, then
// every view's join is fed, then pass 2 matches input-order slices.
arrow::Result<HistoricalResult> JoinStreamed(const repo::FeatureRepository& repo,
                                             const HistoricalRequest& req, RetrievalPlan plan,
                                             const EntityReaderFactory& open,
                                             std::shared_ptr<arrow::RecordBatchReader> first,
                                             std::optional<std::pair<int64_t, int64_t>> range,
                                             int64_t entity_rows, int64_t budget,
                                             int64_t bytes_per_row, HistoricalSink* sink) {
  asof::BlockReuse reuse(BlockReuseLimit(req));
  HistoricalResult result = std::move(plan.result);
  auto entity_schema = first->schema();
  // Pass 1 (the rest of it): the time range and the row count.
  {
    std::shared_ptr<arrow::RecordBatch> batch;
    while (true) {
      ARROW_RETURN_NOT_OK(first->ReadNext(&batch));
      if (!batch) break;
      entity_rows += batch->num_rows();
      ARROW_RETURN_NOT_OK(ExtendRange(
          std::make_shared<arrow::ChunkedArray>(batch->GetColumnByName(plan.ts_col)), &range));
    }
    first.reset();
  }

  // The views share half the budget; the slices take the other half.
  const int64_t views = std::max<int64_t>(static_cast<int64_t>(plan.views.size()), 1);
  const int64_t view_budget = std::max<int64_t>((budget - budget / 2) / views, 1);
  const int64_t slice_rows =
      std::max(kMinSliceRows, (budget / 2) / std::max<int64_t>(bytes_per_row, 1));
  std::map<std::string, SourceRead> reads;
  HistoricalRequest pinned_req = req;
  std::vector<std::unique_ptr<AsOfJoin>> joins;
  std::vector<arrow::FieldVector> view_fields(plan.views.size());
  for (size_t v = 0; v < plan.views.size(); ++v) {
    ARROW_ASSIGN_OR_RAISE(auto join, OpenJoin(repo, plan.views[v], range, view_budget, &pinned_req,
                                              &reads, &view_fields[v], &result.warnings));
    joins.push_back(std::move(join));
  }
  // The entity columns as given, then the features in request order.
  arrow::FieldVector out_fields = entity_schema->fields();
  for (const auto& o : plan.order) out_fields.push_back(view_fields[o.view][o.feature]);
  AppendOnDemandFields(plan, &out_fields);
  auto out_schema = arrow::schema(out_fields, entity_schema->metadata());
  ARROW_RETURN_NOT_OK(sink->Begin(out_schema));

  // Pass 2: slices in input order, each matched by every view and written.
  ARROW_ASSIGN_OR_RAISE(auto reader, open());
  if (!reader->schema()->Equals(*entity_schema)) {
    return arrow::Status::Invalid("the entity rows changed between reads (schema ",
                                  reader->schema()->ToString(), " after ",
                                  entity_schema->ToString(), ")");
  }
  BatchQueue pending;
  int64_t slices = 0;
  bool any_value = false;  // some feature of some row is not null
  auto match_slice = [&](int64_t take) -> arrow::Status {
    auto parts = pending.Take(take);
    ARROW_ASSIGN_OR_RAISE(auto slice, arrow::Table::FromRecordBatches(entity_schema, parts));
    parts.clear();
    std::vector<arrow::ChunkedArrayVector> view_columns(joins.size());
    for (size_t v = 0; v < joins.size(); ++v) {
      const ViewPlan& vp = plan.views[v];
      auto joined = joins[v]->Match(*slice);
      if (!joined.ok()) return ViewJoinError(joined.status(), vp);
      for (const auto& f : vp.request.features) {
        auto col = (*joined)->GetColumnByName(f);
        if (!col) return arrow::Status::UnknownError("join returned no column ", f);
        view_columns[v].push_back(col);
      }
    }
    arrow::ChunkedArrayVector columns = slice->columns();
    for (const auto& o : plan.order) {
      any_value = any_value || HasValue(*view_columns[o.view][o.feature]);
      columns.push_back(view_columns[o.view][o.feature]);
    }
    if (plan.on_demand) {
      ARROW_RETURN_NOT_OK(AppendOnDemand(plan, *slice, view_columns, &columns, &any_value));
    }
    ++slices;
    result.rows += take;
    return sink->Write(arrow::Table::Make(out_schema, std::move(columns), take));
  };
  for (const ViewPlan& vp : plan.views) {
    NoteJoining(req, vp.request.view->name, entity_rows, reads[vp.src->name].rows_read,
                (entity_rows + slice_rows - 1) / slice_rows);
  }
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (!batch) break;
    if (batch->num_rows() == 0) continue;
    pending.Push(std::move(batch));
    while (pending.rows() >= slice_rows) ARROW_RETURN_NOT_OK(match_slice(slice_rows));
  }
  if (pending.rows() > 0) ARROW_RETURN_NOT_OK(match_slice(pending.rows()));
  for (auto& [name, r] : reads) result.sources.push_back(r);
  NoteAllNull(any_value, result.rows, &result);
  result.schema = out_schema;
  return result;
}

}  // namespace

arrow::Result<HistoricalResult> CheckHistoricalRequest(const repo::FeatureRepository& repo,
                                                       const HistoricalRequest& req,
                                                       const arrow::Schema& entity_schema) {
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanRetrieval(repo, req, entity_schema));
  return std::move(plan.result);
}

arrow::Result<HistoricalPlan> PlanHistoricalRetrieval(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& req,
                                                      const arrow::Schema& entity_schema) {
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanRetrieval(repo, req, entity_schema));
  HistoricalPlan out;
  out.registry_version = plan.result.registry_version;
  out.feature_refs = plan.result.feature_refs;
  out.timestamp_column = plan.ts_col;
  HistoricalRequest pinned = req;
  std::map<std::string, SourceRead> reads;
  std::vector<arrow::FieldVector> fields(plan.views.size());
  for (size_t v = 0; v < plan.views.size(); ++v) {
    const ViewPlan& vp = plan.views[v];
    const Source& src = *vp.src;
    SourceRead read;
    ARROW_ASSIGN_OR_RAISE(auto opened, OpenSource(repo, src, pinned, &read));
    pinned.source_versions.emplace(src.name, read.version);
    if (!opened.snapshot || opened.snapshot->files().empty()) {
      Warning w;
      w.code = opened.snapshot ? Warning::Code::kSourceEmpty : Warning::Code::kSourceMissing;
      w.view = vp.request.view->name;
      w.source = src.name;
      w.push_source = src.type == registry::SourceType::kPush;
      out.warnings.push_back(std::move(w));
    }
    std::shared_ptr<arrow::Schema> declared;
    if (!opened.snapshot) {
      ARROW_ASSIGN_OR_RAISE(declared, repo.SourceSchema(src));
    }
    ViewReadPlan r;
    r.view = vp.request.view->name;
    r.source = src.name;
    r.table_uri = read.table_uri;
    r.version = read.version;
    r.entity_keys = vp.spec.left_keys;
    for (const auto& k : vp.spec.right_keys) r.source_keys.push_back(StoredName(src, k));
    r.time_column = StoredName(src, vp.spec.right_time);
    if (!vp.spec.right_created.empty()) r.created_column = StoredName(src, vp.spec.right_created);
    r.ttl_us = vp.spec.ttl_us;
    for (size_t j = 0; j < vp.request.features.size(); ++j) {
      const std::string& c = vp.request.features[j];
      std::shared_ptr<arrow::Field> f;
      if (opened.snapshot) f = opened.snapshot->schema()->GetFieldByName(StoredName(src, c));
      if (!f && declared) f = declared->GetFieldByName(c);
      if (!f) {
        return UserError(ErrorKind::kSchemaMismatch, "source '" + src.name + "' has no column '" +
                                                         c + "' needed by feature view '" + r.view +
                                                         "'");
      }
      r.features.push_back(StoredName(src, c));
      r.output_fields.push_back(arrow::field(vp.out_names[j], f->type()));
    }
    if (!reads.count(src.name)) reads[src.name] = read;
    out.views.push_back(std::move(r));
  }
  arrow::FieldVector out_fields = entity_schema.fields();
  for (const auto& o : plan.order) {
    out.order.emplace_back(static_cast<int>(o.view), static_cast<int>(o.feature));
    out_fields.push_back(out.views[o.view].output_fields[o.feature]);
  }
  out.schema = arrow::schema(out_fields, entity_schema.metadata());
  for (auto& [name, r] : reads) out.sources.push_back(r);
  return out;
}

arrow::Result<HistoricalResult> GetHistoricalFeatures(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& req) {
  std::shared_ptr<arrow::Table> entities = req.entities;
  if (!entities && req.open_entities) {
    ARROW_ASSIGN_OR_RAISE(auto reader, req.open_entities());
    ARROW_ASSIGN_OR_RAISE(entities, reader->ToTable());
  }
  if (!entities) return UserError(ErrorKind::kDefinitionError, "no entity table given");
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanRetrieval(repo, req, *entities->schema()));
  return JoinInMemory(repo, req, std::move(plan), entities);
}

arrow::Result<HistoricalResult> GetHistoricalFeatures(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& req,
                                                      HistoricalSink* sink) {
  if (!sink) return arrow::Status::Invalid("no sink given");
  EntityReaderFactory open = req.open_entities;
  if (req.entities) {
    std::shared_ptr<arrow::Table> table = req.entities;
    open = [table]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
      return std::make_shared<arrow::TableBatchReader>(table);
    };
  }
  if (!open) return UserError(ErrorKind::kDefinitionError, "no entity table given");
  const int64_t budget =
      req.memory_budget_bytes > 0 ? req.memory_budget_bytes : DefaultMemoryBudget();

  // Pass 1 starts by reading the entity rows while they (with their output)
  // fit half an explicit budget, or all of the default one: if they all do,
  // this is the in-memory retrieval. (The default budget bounds the feature
  // side; streaming with it would halve that and make every view spill, which
  // costs far more than holding an output that fits.)
  const int64_t in_memory_limit = req.memory_budget_bytes > 0 ? budget / 2 : budget;
  ARROW_ASSIGN_OR_RAISE(auto reader, open());
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanRetrieval(repo, req, *reader->schema()));
  const int64_t extra_per_row = kEntityRowOverhead + kFeatureBytes * plan.num_features;
  std::vector<std::shared_ptr<arrow::RecordBatch>> prefix;
  int64_t prefix_rows = 0;
  int64_t prefix_bytes = 0;
  bool complete = false;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (!batch) {
      complete = true;
      break;
    }
    prefix_rows += batch->num_rows();
    // The referenced ranges (a slice counts its part), or all buffers where Arrow cannot tell.
    auto referenced = arrow::util::ReferencedBufferSize(*batch);
    prefix_bytes += referenced.ok() ? *referenced : arrow::util::TotalBufferSize(*batch);
    prefix.push_back(std::move(batch));
    if (prefix_bytes + prefix_rows * extra_per_row > in_memory_limit) break;
  }
  if (complete) {
    std::shared_ptr<arrow::Table> entities = req.entities;
    if (!entities) {
      ARROW_ASSIGN_OR_RAISE(entities, arrow::Table::FromRecordBatches(reader->schema(), prefix));
    }
    prefix.clear();
    reader.reset();
    ARROW_ASSIGN_OR_RAISE(auto result, JoinInMemory(repo, req, std::move(plan), entities));
    ARROW_RETURN_NOT_OK(sink->Begin(result.table->schema()));
    ARROW_RETURN_NOT_OK(sink->Write(result.table));
    result.table.reset();
    return result;
  }
  std::optional<std::pair<int64_t, int64_t>> range;
  for (const auto& b : prefix) {
    ARROW_RETURN_NOT_OK(ExtendRange(
        std::make_shared<arrow::ChunkedArray>(b->GetColumnByName(plan.ts_col)), &range));
  }
  prefix.clear();
  const int64_t bytes_per_row = prefix_bytes / std::max<int64_t>(prefix_rows, 1) + extra_per_row;
  return JoinStreamed(repo, req, std::move(plan), open, std::move(reader), range, prefix_rows,
                      budget, bytes_per_row, sink);
}

}  // namespace stratalake::retrieval
