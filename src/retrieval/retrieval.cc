// get_historical_features: resolves feature references against a registry
// version, reads each source at the right Delta version (projection, file
// pruning on the entity time range), and runs the as-of join per view.
#include "stratalake/retrieval.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "retrieval/asof_join.h"
#include "storage/scan.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/status.h"

namespace stratalake::retrieval {

namespace {

using registry::Definitions;
using registry::FeatureService;
using registry::FeatureView;
using registry::Source;

arrow::Status UserError(ErrorKind kind, const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, kind, msg);
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

arrow::Result<int64_t> ToMicros(const arrow::Scalar& s) {
  if (!s.is_valid) return arrow::Status::Invalid("null");
  switch (s.type->id()) {
    case arrow::Type::TIMESTAMP: {
      const auto& t = static_cast<const arrow::TimestampType&>(*s.type);
      int64_t v = static_cast<const arrow::TimestampScalar&>(s).value;
      switch (t.unit()) {
        case arrow::TimeUnit::SECOND:
          return v * 1000000;
        case arrow::TimeUnit::MILLI:
          return v * 1000;
        case arrow::TimeUnit::MICRO:
          return v;
        case arrow::TimeUnit::NANO:
          return v / 1000;
      }
      return v;
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
  const int kRowGroupsPerRead = 2;
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
        ARROW_ASSIGN_OR_RAISE(auto mask, delta::EvaluatePredicate(*to_read.row_filter, *data));
        ARROW_ASSIGN_OR_RAISE(auto kept, arrow::compute::Filter(data, mask));
        data = kept.table();
      }
      arrow::ChunkedArrayVector cols;
      for (size_t c = 0; c < fields.size(); ++c) cols.push_back(data->column(static_cast<int>(c)));
      data = arrow::Table::Make(out_schema, cols, data->num_rows());
      read->rows_read += data->num_rows();
      arrow::TableBatchReader reader(*data);
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

}  // namespace

arrow::Result<HistoricalResult> GetHistoricalFeatures(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& req) {
  if (!req.entities) return UserError(ErrorKind::kDefinitionError, "no entity table given");
  const arrow::Table& entities = *req.entities;
  std::string ts_col = req.timestamp_column.empty() ? "event_timestamp" : req.timestamp_column;
  auto ts_field = entities.schema()->GetFieldByName(ts_col);
  if (!ts_field) {
    return UserError(ErrorKind::kSchemaMismatch,
                     "the entity table has no timestamp column '" + ts_col +
                         "' (columns: " + JoinNames(entities.schema()->field_names()) +
                         "); name it with --timestamp-column");
  }
  if (!IsTime(*ts_field->type())) {
    return UserError(ErrorKind::kSchemaMismatch,
                     "entity column '" + ts_col + "' has type " + ts_field->type()->ToString() +
                         "; it must be a timestamp or date (naive timestamps are taken as UTC)");
  }

  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load(req.registry_version));
  if (state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry is empty; run `stratalake apply` first");
  }
  ARROW_ASSIGN_OR_RAISE(
      auto views, registry::ResolveFeatureRequest(state->defs, req.features, req.feature_service));

  HistoricalResult result;
  result.registry_version = state->version;

  // Output names, checked for collisions before any data is read.
  std::map<std::string, std::string> taken;  // output name -> what it is
  for (const auto& name : entities.schema()->field_names())
    taken[name] = "entity column '" + name + "'";
  std::vector<std::vector<std::string>> out_names(views.size());
  for (size_t i = 0; i < views.size(); ++i) {
    for (const auto& f : views[i].features) {
      std::string out = req.full_feature_names ? views[i].label + "__" + f : f;
      std::string what = "feature '" + views[i].label + ":" + f + "'";
      auto [it, fresh] = taken.emplace(out, what);
      if (!fresh) {
        return UserError(ErrorKind::kDefinitionError,
                         "output column '" + out + "' would hold both " + it->second + " and " +
                             what +
                             "; pass --full-feature-names (full_feature_names=True) or give one "
                             "view an alias in a feature service");
      }
      out_names[i].push_back(out);
      result.feature_refs.push_back(views[i].view->name + ":" + f);
    }
  }

  // Entity time range (µs) for file pruning.
  std::optional<std::pair<int64_t, int64_t>> range;
  if (entities.num_rows() > 0) {
    ARROW_ASSIGN_OR_RAISE(auto mm, arrow::compute::MinMax(entities.GetColumnByName(ts_col)));
    const auto& st = static_cast<const arrow::StructScalar&>(*mm.scalar());
    auto lo = ToMicros(*st.value[0]);
    auto hi = ToMicros(*st.value[1]);
    if (lo.ok() && hi.ok()) range = std::make_pair(*lo, *hi);
  }

  std::shared_ptr<arrow::Table> out = req.entities;
  std::map<std::string, SourceRead> reads;
  // Every view of one source reads the same Delta version: the first open pins it.
  HistoricalRequest pinned_req = req;
  for (size_t i = 0; i < views.size(); ++i) {
    const registry::ViewRequest& vr = views[i];
    const FeatureView& v = *vr.view;
    const Source* src = state->defs.FindSource(v.source);
    if (!src)
      return UserError(ErrorKind::kObjectNotFound,
                       "feature view '" + v.name + "' has an unknown source");
    retrieval::AsOfSpec spec;
    for (const auto& en : v.entities) {
      const registry::Entity* e = state->defs.FindEntity(en);
      if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
      for (const auto& k : e->join_keys) {
        auto m = vr.key_map.find(k.name);
        std::string col = m == vr.key_map.end() ? k.name : m->second;
        if (!entities.schema()->GetFieldByName(col)) {
          return UserError(ErrorKind::kSchemaMismatch,
                           "the entity table has no column '" + col +
                               "', the join key of feature view '" + v.name +
                               "' (columns: " + JoinNames(entities.schema()->field_names()) +
                               "); add it, or map it with join_key_map in a feature service");
        }
        spec.left_keys.push_back(col);
        spec.right_keys.push_back(k.name);
      }
    }
    spec.left_time = ts_col;
    spec.right_time =
        src->timestamp_field.empty() ? repo.config().default_timestamp_field : src->timestamp_field;
    spec.right_created = src->created_timestamp_field;
    spec.ttl_us = v.ttl_seconds * 1000000;
    spec.features = vr.features;
    std::vector<std::string> columns = spec.right_keys;
    columns.push_back(spec.right_time);
    if (!spec.right_created.empty()) columns.push_back(spec.right_created);
    for (const auto& f : vr.features) columns.push_back(f);
    // A column may serve twice (e.g. a feature that is also the created time).
    std::vector<std::string> unique;
    for (const auto& c : columns) {
      if (std::find(unique.begin(), unique.end(), c) == unique.end()) unique.push_back(c);
    }
    std::optional<std::pair<int64_t, int64_t>> view_range = range;
    if (view_range) {
      view_range->first = v.ttl_seconds > 0 ? view_range->first - spec.ttl_us : INT64_MIN;
    }
    SourceRead read;
    ARROW_ASSIGN_OR_RAISE(auto opened, OpenSource(repo, *src, pinned_req, &read));
    pinned_req.source_versions.emplace(src->name, read.version);
    // The join's right schema: the snapshot's columns, else (no table) declared types.
    std::shared_ptr<arrow::Schema> declared;
    if (!opened.snapshot) {
      ARROW_ASSIGN_OR_RAISE(declared, repo.SourceSchema(*src));
    }
    arrow::FieldVector fields;
    for (const auto& c : unique) {
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
    retrieval::AsOfOptions options;
    options.memory_budget_bytes = req.memory_budget_bytes;
    ARROW_ASSIGN_OR_RAISE(auto join,
                          retrieval::AsOfJoin::Make(spec, arrow::schema(fields), options));
    ARROW_RETURN_NOT_OK(
        FeedSource(opened, *src, unique, view_range, pinned_req, join.get(), &read));
    if (!reads.count(src->name)) reads[src->name] = read;
    if (req.progress && isatty(STDERR_FILENO)) {
      std::fprintf(stderr, "  %s: joining %lld entity rows with %lld feature rows\n",
                   v.name.c_str(), static_cast<long long>(entities.num_rows()),
                   static_cast<long long>(read.rows_read));
    }
    auto joined = join->Finish(entities);
    if (!joined.ok()) {
      // Say which view, and that "left" is the entity table.
      const std::string& msg = joined.status().message();
      bool key_types = msg.find("cannot be compared") != std::string::npos;
      return joined.status().WithMessage(
          "feature view '", v.name, "': ", msg, " (left = the entity table, right = source '",
          src->name, "')", key_types ? "; convert the entity column to the key's type" : "");
    }
    std::shared_ptr<arrow::Table> feats = *joined;
    for (size_t j = 0; j < vr.features.size(); ++j) {
      auto col = feats->GetColumnByName(vr.features[j]);
      if (!col) return arrow::Status::UnknownError("join returned no column ", vr.features[j]);
      ARROW_ASSIGN_OR_RAISE(
          out, out->AddColumn(out->num_columns(), arrow::field(out_names[i][j], col->type()), col));
    }
  }
  for (auto& [name, r] : reads) result.sources.push_back(r);
  result.table = out;
  return result;
}

}  // namespace stratalake::retrieval
