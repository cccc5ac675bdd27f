// Window tiles in the online store (window_tiles.h).
#include "online/window_tiles.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include <arrow/api.h>

#include "common/errors.h"
#include "online/codec.h"
#include "retrieval/asof_keys.h"
#include "stratalake/delta.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace window = retrieval::window;

namespace {

void AppendFingerprint(uint64_t fp, std::string* out) {
  out->push_back('W');
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((fp >> (8 * i)) & 0xff));
}

std::string TileKey(std::string_view entity_key, uint64_t fp, int64_t bucket) {
  std::string k(entity_key);
  AppendFingerprint(fp, &k);
  window::AppendBucketIndex(bucket, &k);
  return k;
}

}  // namespace

arrow::Status WriteWindowEvents(OnlineStore& store, const registry::Definitions& defs,
                                const registry::FeatureView& view, const std::string& time_column,
                                const arrow::Table& input, bool id_columns,
                                std::optional<std::pair<int64_t, int64_t>> replace) {
  if (input.num_rows() == 0 && !replace) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto spec, window::CompileWindows(view));
  const size_t A = spec.num_channels;
  ARROW_ASSIGN_OR_RAISE(auto data, input.CombineChunks());
  const int64_t n = data->num_rows();
  // Keys.
  std::vector<std::shared_ptr<arrow::Array>> key_cols;
  for (const auto& en : view.entities) {
    const auto* e = defs.FindEntity(en);
    if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
    for (const auto& k : e->join_keys) {
      auto c = data->GetColumnByName(k.name);
      if (!c) {
        return UserError(
            ErrorKind::kSchemaMismatch,
            "feature view '" + view.name + "': the rows have no join key column '" + k.name + "'");
      }
      key_cols.push_back(c->chunk(0));
    }
  }
  auto tcol = data->GetColumnByName(time_column);
  if (!tcol) {
    return UserError(
        ErrorKind::kSchemaMismatch,
        "feature view '" + view.name + "': the rows have no time column '" + time_column + "'");
  }
  std::vector<int64_t> times(static_cast<size_t>(n));
  if (n > 0) retrieval::asof::TimesToMicros(*tcol->chunk(0)->data(), times.data());
  ARROW_ASSIGN_OR_RAISE(auto events, window::ComputeEvents(spec, *data, id_columns));
  // Rows by tile.
  const std::string prefix = ViewKeyPrefix(view.name);
  std::map<std::string, std::vector<int64_t>> by_tile;
  std::map<std::string, int64_t> bucket_of;
  for (int64_t r = 0; r < n; ++r) {
    if (times[r] == retrieval::asof::kNullTime) continue;
    std::string key = prefix;
    bool ok = true;
    for (const auto& c : key_cols) {
      ARROW_ASSIGN_OR_RAISE(bool valid, AppendKeyFromArray(*c, r, &key));
      ok = ok && valid;
    }
    if (!ok) continue;
    int64_t b = window::BucketOf(times[r], spec.bucket_us);
    std::string tk = TileKey(key, spec.fingerprint, b);
    by_tile[tk].push_back(r);
    bucket_of[tk] = b;
  }
  if (by_tile.empty()) return arrow::Status::OK();
  std::vector<std::string_view> keys;
  for (const auto& [k, rows] : by_tile) keys.push_back(k);
  std::vector<std::optional<std::string>> stored;
  ARROW_RETURN_NOT_OK(store.MultiGet(keys, &stored));
  std::vector<KeyValue> writes;
  size_t i = 0;
  for (const auto& [k, rows] : by_tile) {
    const auto& old = stored[i++];
    window::Bucket b;
    int64_t revision = 0;
    if (old && old->size() >= kVersionPrefixSize) {
      revision = PrefixEventMicros(*old);
      ARROW_RETURN_NOT_OK(window::DecodeTile(std::string_view(*old).substr(kVersionPrefixSize), A,
                                             bucket_of[k], &b));
    }
    if (replace) {
      // Keep stored events outside the range, and stream events (deduplicated by Finish).
      window::Bucket kept;
      kept.index = b.index;
      for (size_t e = 0; e < b.size(); ++e) {
        bool in_range = b.time[e] >= replace->first && b.time[e] <= replace->second;
        if (in_range && b.id[e] == 0) continue;
        kept.time.push_back(b.time[e]);
        kept.id.push_back(b.id[e]);
        kept.value.insert(kept.value.end(), b.value.begin() + e * A, b.value.begin() + (e + 1) * A);
        kept.valid.insert(kept.valid.end(), b.valid.begin() + e * A, b.valid.begin() + (e + 1) * A);
      }
      b = std::move(kept);
    }
    b.index = bucket_of[k];
    for (int64_t r : rows) {
      if (replace && (times[r] < replace->first || times[r] > replace->second)) continue;
      b.time.push_back(times[r]);
      b.id.push_back(events.id[r]);
      b.value.insert(b.value.end(), events.value.begin() + r * A,
                     events.value.begin() + (r + 1) * A);
      b.valid.insert(b.valid.end(), events.valid.begin() + r * A,
                     events.valid.begin() + (r + 1) * A);
    }
    b.Finish(A);
    KeyValue kv;
    kv.key = k;
    AppendVersionPrefix(revision + 1, std::nullopt, &kv.value);
    window::EncodeTile(b, A, &kv.value);
    writes.push_back(std::move(kv));
  }
  return store.Write(writes, WriteOptions{});
}

arrow::Status ReadWindowValues(OnlineStore& store, const registry::FeatureView& view,
                               const Layout& layout, std::span<const std::string> keys,
                               int64_t now_us, std::optional<std::string>* values) {
  ARROW_ASSIGN_OR_RAISE(auto spec, window::CompileWindows(view));
  const size_t A = spec.num_channels;
  const int64_t first = window::BucketOf(now_us - spec.max_window_us + 1, spec.bucket_us);
  const int64_t last = window::BucketOf(now_us, spec.bucket_us);
  const size_t per_key = static_cast<size_t>(last - first + 1);
  std::vector<std::string> tile_keys;
  for (const auto& k : keys) {
    if (k.empty()) continue;
    for (int64_t b = first; b <= last; ++b) tile_keys.push_back(TileKey(k, spec.fingerprint, b));
  }
  std::vector<std::string_view> views(tile_keys.begin(), tile_keys.end());
  std::vector<std::optional<std::string>> got;
  if (!views.empty()) ARROW_RETURN_NOT_OK(store.MultiGet(views, &got));
  ARROW_ASSIGN_OR_RAISE(auto builders, window::MakeBuilders(spec));
  size_t at = 0;
  std::vector<window::Bucket> buckets;
  std::vector<window::BucketRef> refs;
  for (const auto& k : keys) {
    if (k.empty()) {
      for (auto& b : builders) ARROW_RETURN_NOT_OK(b->AppendNull());
      continue;
    }
    buckets.clear();
    buckets.reserve(per_key);
    for (size_t j = 0; j < per_key; ++j, ++at) {
      const auto& v = got[at];
      if (!v || v->size() < kVersionPrefixSize) continue;
      buckets.emplace_back();
      ARROW_RETURN_NOT_OK(window::DecodeTile(std::string_view(*v).substr(kVersionPrefixSize), A,
                                             first + static_cast<int64_t>(j), &buckets.back()));
    }
    refs.clear();
    for (const auto& b : buckets) refs.push_back(b.Ref());
    ARROW_RETURN_NOT_OK(window::Evaluate(spec, refs.data(), refs.size(), now_us, &builders));
  }
  std::vector<std::shared_ptr<arrow::Array>> arrays;
  for (auto& b : builders) {
    std::shared_ptr<arrow::Array> arr;
    ARROW_RETURN_NOT_OK(b->Finish(&arr));
    arrays.push_back(std::move(arr));
  }
  RowEncoder encoder(layout);
  ARROW_RETURN_NOT_OK(encoder.Validate(arrays));
  for (size_t r = 0; r < keys.size(); ++r) {
    if (keys[r].empty()) {
      values[r].reset();
      continue;
    }
    std::string out;
    encoder.Encode(arrays, static_cast<int64_t>(r), now_us, std::nullopt, &out);
    values[r] = std::move(out);
  }
  return arrow::Status::OK();
}

arrow::Result<int64_t> MaterializeWindowView(const repo::FeatureRepository& repo,
                                             OnlineStore& store, const registry::Definitions& defs,
                                             const registry::FeatureView& view,
                                             const registry::Source& src,
                                             std::optional<int64_t> start_us, int64_t end_us) {
  const std::string ts =
      src.timestamp_field.empty() ? repo.config().default_timestamp_field : src.timestamp_field;
  ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(repo.TableUri(src.path)));
  auto latest = table->Latest();
  if (!latest.ok()) {
    if (HasErrorKind(latest.status(), ErrorKind::kTableNotFound)) return 0;
    return latest.status();
  }
  auto stored_name = [&](const std::string& mapped) {
    for (const auto& [from, to] : src.field_mapping) {
      if (to == mapped) return from;
    }
    return mapped;
  };
  delta::ReadOptions ro;
  ro.version = (*latest)->version();
  std::string tsq = "`" + stored_name(ts) + "`";
  ro.filter = tsq + " <= TIMESTAMP '" + FormatRfc3339Micros(end_us) + "'";
  if (start_us)
    ro.filter += " AND " + tsq + " >= TIMESTAMP '" + FormatRfc3339Micros(*start_us) + "'";
  ARROW_ASSIGN_OR_RAISE(auto rows, table->Read(**latest, ro));
  // Views use mapped names.
  arrow::FieldVector fields;
  for (const auto& f : rows->schema()->fields()) {
    auto m = src.field_mapping.find(f->name());
    fields.push_back(f->WithName(m == src.field_mapping.end() ? f->name() : m->second));
  }
  rows = arrow::Table::Make(arrow::schema(fields), rows->columns(), rows->num_rows());
  const bool ids = src.type == registry::SourceType::kKafka &&
                   rows->schema()->GetFieldIndex("_kafka_partition") >= 0 &&
                   rows->schema()->GetFieldIndex("_kafka_offset") >= 0;
  ARROW_RETURN_NOT_OK(WriteWindowEvents(store, defs, view, ts, *rows, ids,
                                        std::make_pair(start_us.value_or(INT64_MIN), end_us)));
  return rows->num_rows();
}

arrow::Result<int64_t> WriteStreamedWindowRows(const repo::FeatureRepository& repo,
                                               const registry::RegistryState& state,
                                               OnlineStore* store, const std::string& kafka_source,
                                               const std::shared_ptr<arrow::Table>& data) {
  const registry::Source* src = state.defs.FindSource(kafka_source);
  if (!src) return UserError(ErrorKind::kObjectNotFound, "unknown source '" + kafka_source + "'");
  int64_t written = 0;
  std::shared_ptr<arrow::Table> mapped;
  for (const auto& v : state.defs.feature_views) {
    if (v.source != src->name || !v.online || v.aggregations.empty()) continue;
    if (!store) return arrow::Status::Invalid("stream: no online store");
    if (!mapped) {
      arrow::FieldVector fields;
      for (const auto& f : data->schema()->fields()) {
        auto m = src->field_mapping.find(f->name());
        fields.push_back(f->WithName(m == src->field_mapping.end() ? f->name() : m->second));
      }
      mapped = arrow::Table::Make(arrow::schema(fields), data->columns(), data->num_rows());
    }
    const std::string ts =
        src->timestamp_field.empty() ? repo.config().default_timestamp_field : src->timestamp_field;
    const bool ids = mapped->schema()->GetFieldIndex("_kafka_partition") >= 0 &&
                     mapped->schema()->GetFieldIndex("_kafka_offset") >= 0;
    ARROW_RETURN_NOT_OK(WriteWindowEvents(*store, state.defs, v, ts, *mapped, ids, std::nullopt));
    ++written;
  }
  return written;
}

}  // namespace stratalake::online
