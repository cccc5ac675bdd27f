// Window tiles in the online store (window_tiles.h).
#include "online/window_tiles.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <unordered_map>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/util/hashing.h>

#include "common/errors.h"
#include "online/codec.h"
#include "retrieval/asof_keys.h"
#include "storage/actions.h"
#include "storage/scan.h"
#include "storage/snapshot.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
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

// The 17 bytes after the entity key: 'W', fingerprint, bucket index.
constexpr size_t kTileSuffix = 17;

uint64_t ReadBigEndian(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

// A tile key's fingerprint and bucket; false for a key that is not a tile's.
bool ParseTileKey(std::string_view key, size_t prefix_size, uint64_t* fp, int64_t* bucket) {
  if (key.size() < prefix_size + kTileSuffix) return false;
  std::string_view s = key.substr(key.size() - kTileSuffix);
  if (s[0] != 'W') return false;
  *fp = ReadBigEndian(s.substr(1));
  *bucket = static_cast<int64_t>(ReadBigEndian(s.substr(9)) ^ (uint64_t{1} << 63));
  return true;
}

template <typename T>
void PutRaw(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
bool GetRaw(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

// What a tile records about its writers, between the version prefix and the
// tile bytes (absent in tiles written before it existed: they start with 'W'):
// 'H', the source version and event-time range [start, end] of the
// materialize run that last folded source rows into it (-1 / INT64_MIN: none;
// the tile then holds every row of that version's files in that range), and
// the ids of its last kMaxOps writes, so a writer can tell whether its own
// write was applied.
struct TileMeta {
  int64_t version = -1;
  int64_t start_us = INT64_MIN;
  int64_t end_us = INT64_MIN;
  std::vector<uint64_t> ops;
};
constexpr size_t kMaxOps = 16;

arrow::Status SplitTile(std::string_view value, TileMeta* meta, std::string_view* tile) {
  *meta = TileMeta{};
  if (!value.empty() && value[0] == 'H') {
    value.remove_prefix(1);
    uint8_t n = 0;
    if (!GetRaw(&value, &meta->version) || !GetRaw(&value, &meta->start_us) ||
        !GetRaw(&value, &meta->end_us) || !GetRaw(&value, &n) || n > kMaxOps ||
        value.size() < n * sizeof(uint64_t)) {
      return arrow::Status::IOError(
          "online store: a window tile's header is malformed; run `stratalake materialize` for "
          "its view");
    }
    meta->ops.resize(n);
    for (auto& op : meta->ops) GetRaw(&value, &op);
  }
  *tile = value;
  return arrow::Status::OK();
}

void AppendMeta(const TileMeta& meta, std::string* out) {
  out->push_back('H');
  PutRaw(out, meta.version);
  PutRaw(out, meta.start_us);
  PutRaw(out, meta.end_us);
  PutRaw(out, static_cast<uint8_t>(meta.ops.size()));
  for (uint64_t op : meta.ops) PutRaw(out, op);
}

// An id for one write of tiles (unique with overwhelming probability).
uint64_t NewOpId() {
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd() ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  static std::atomic<uint64_t> counter{0};
  uint64_t x = seed + 0x9e3779b97f4a7c15ULL * (counter.fetch_add(1) + 1);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return (x ^ (x >> 31)) | 1;
}

// Changes one tile: its events (decoded, canonical order) and header. Leaving
// no events removes the tile. Called again on a fresh copy of the tile when
// another writer changed it meanwhile, so it must depend only on its input.
using TileEdit = std::function<arrow::Status(size_t i, TileMeta* meta, window::Bucket* b)>;

struct TileCounts {
  int64_t written = 0, deleted = 0, retries = 0;
};

constexpr size_t kTilesPerRound = 4096;
constexpr int kMaxAttempts = 64;

// Applies `edit` to tiles keys[i] (bucket buckets[i]) as compare-and-set
// updates: each tile is read, edited and written back only if it still holds
// what was read (OnlineStore::Repair with the read version prefix as bound:
// every rewrite raises the tile's revision). A tile another writer changed in
// between is read again and edited again; whether a write was applied is told
// by this write's id in the tile's header (a write applied and then rewritten
// by another writer still has it). So concurrent writers (the stream,
// materialize, push) never lose each other's events.
arrow::Status UpdateTiles(OnlineStore& store, size_t A, const std::vector<std::string>& keys,
                          const std::vector<int64_t>& buckets, const TileEdit& edit,
                          TileCounts* counts) {
  for (size_t from = 0; from < keys.size(); from += kTilesPerRound) {
    const size_t to = std::min(keys.size(), from + kTilesPerRound);
    const uint64_t op = NewOpId();
    std::vector<size_t> pending;
    for (size_t i = from; i < to; ++i) pending.push_back(i);
    std::vector<std::optional<std::string>> current;
    {
      std::vector<std::string_view> ks;
      for (size_t i : pending) ks.push_back(keys[i]);
      ARROW_RETURN_NOT_OK(store.MultiGet(ks, &current));
    }
    for (int attempt = 0; !pending.empty(); ++attempt) {
      if (attempt == kMaxAttempts) {
        return arrow::Status::IOError(
            "online store: window tiles kept being changed by other writers (", pending.size(),
            " tiles after ", kMaxAttempts, " attempts); run the command again");
      }
      if (attempt > 0) counts->retries += static_cast<int64_t>(pending.size());
      std::vector<KeyRepair> repairs;
      std::vector<size_t> sent;  // index into pending
      std::vector<bool> is_delete;
      for (size_t j = 0; j < pending.size(); ++j) {
        const size_t i = pending[j];
        const auto& old = current[j];
        TileMeta meta;
        window::Bucket b;
        b.index = buckets[i];
        int64_t revision = 0;
        std::string bound;
        if (old && old->size() >= kVersionPrefixSize) {
          revision = PrefixEventMicros(*old);
          bound = old->substr(0, kVersionPrefixSize);
          std::string_view tile;
          ARROW_RETURN_NOT_OK(
              SplitTile(std::string_view(*old).substr(kVersionPrefixSize), &meta, &tile));
          ARROW_RETURN_NOT_OK(window::DecodeTile(tile, A, buckets[i], &b));
        } else {
          AppendVersionPrefix(0, std::nullopt, &bound);  // below every stored tile
        }
        ARROW_RETURN_NOT_OK(edit(i, &meta, &b));
        KeyRepair r;
        r.key = keys[i];
        r.bound = std::move(bound);
        if (b.size() == 0) {
          if (!old) continue;  // nothing stored, nothing to store
          is_delete.push_back(true);
        } else {
          b.index = buckets[i];
          b.Finish(A);
          meta.ops.push_back(op);
          if (meta.ops.size() > kMaxOps) meta.ops.erase(meta.ops.begin());
          AppendVersionPrefix(revision + 1, std::nullopt, &r.value);
          AppendMeta(meta, &r.value);
          window::EncodeTile(b, A, &r.value);
          is_delete.push_back(false);
        }
        repairs.push_back(std::move(r));
        sent.push_back(j);
      }
      if (repairs.empty()) break;
      ARROW_RETURN_NOT_OK(store.Repair(repairs));
      std::vector<std::string_view> ks;
      for (const auto& r : repairs) ks.push_back(r.key);
      std::vector<std::optional<std::string>> now;
      ARROW_RETURN_NOT_OK(store.MultiGet(ks, &now));
      std::vector<size_t> next;
      std::vector<std::optional<std::string>> next_current;
      for (size_t s = 0; s < repairs.size(); ++s) {
        bool applied;
        if (is_delete[s]) {
          // Gone: removed (by this write or another). Present: rejected, or
          // removed and written again since; editing the fresh copy again is
          // harmless (removals are of whole ranges or old tiles).
          applied = !now[s].has_value();
        } else {
          applied = false;
          if (now[s] && now[s]->size() >= kVersionPrefixSize) {
            TileMeta m;
            std::string_view tile;
            ARROW_RETURN_NOT_OK(
                SplitTile(std::string_view(*now[s]).substr(kVersionPrefixSize), &m, &tile));
            applied = std::find(m.ops.begin(), m.ops.end(), op) != m.ops.end();
          }
        }
        if (applied) {
          (is_delete[s] ? counts->deleted : counts->written) += 1;
        } else {
          next.push_back(pending[sent[s]]);
          next_current.push_back(std::move(now[s]));
        }
      }
      pending = std::move(next);
      current = std::move(next_current);
    }
  }
  return arrow::Status::OK();
}

// The rows of `data` by tile, for the view's spec.
struct RowsByTile {
  std::vector<std::string> keys;
  std::vector<int64_t> buckets;
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> times;  // per row of the data
  window::EventColumns events;
};

// The join key columns (first chunks, in the view's entity order) and the time
// column of `data`, as the tiles of `view` key and bucket its rows.
struct ViewColumns {
  std::vector<std::shared_ptr<arrow::Array>> keys;
  std::shared_ptr<arrow::ChunkedArray> time;
};

arrow::Result<ViewColumns> ViewColumnsOf(const registry::Definitions& defs,
                                         const registry::FeatureView& view,
                                         const std::string& time_column, const arrow::Table& data) {
  ViewColumns out;
  for (const auto& en : view.entities) {
    const auto* e = defs.FindEntity(en);
    if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
    for (const auto& k : e->join_keys) {
      auto c = data.GetColumnByName(k.name);
      if (!c) {
        return UserError(
            ErrorKind::kSchemaMismatch,
            "feature view '" + view.name + "': the rows have no join key column '" + k.name + "'");
      }
      out.keys.push_back(c->chunk(0));
    }
  }
  out.time = data.GetColumnByName(time_column);
  if (!out.time) {
    return UserError(
        ErrorKind::kSchemaMismatch,
        "feature view '" + view.name + "': the rows have no time column '" + time_column + "'");
  }
  return out;
}

arrow::Result<RowsByTile> GroupRows(const registry::Definitions& defs,
                                    const registry::FeatureView& view,
                                    const window::WindowSpec& spec, const std::string& time_column,
                                    const arrow::Table& data, bool id_columns) {
  RowsByTile out;
  const int64_t n = data.num_rows();
  ARROW_ASSIGN_OR_RAISE(auto columns, ViewColumnsOf(defs, view, time_column, data));
  const auto& key_cols = columns.keys;
  const auto& tcol = columns.time;
  out.times.resize(static_cast<size_t>(n));
  if (n > 0) retrieval::asof::TimesToMicros(*tcol->chunk(0)->data(), out.times.data());
  ARROW_ASSIGN_OR_RAISE(out.events, window::ComputeEvents(spec, data, id_columns));
  const std::string prefix = ViewKeyPrefix(view.name);
  std::map<std::string, std::vector<int64_t>> by_tile;
  std::map<std::string, int64_t> bucket_of;
  for (int64_t r = 0; r < n; ++r) {
    if (out.times[r] == retrieval::asof::kNullTime) continue;
    std::string key = prefix;
    bool ok = true;
    for (const auto& c : key_cols) {
      ARROW_ASSIGN_OR_RAISE(bool valid, AppendKeyFromArray(*c, r, &key));
      ok = ok && valid;
    }
    if (!ok) continue;
    int64_t b = window::BucketOf(out.times[r], spec.bucket_us);
    std::string tk = TileKey(key, spec.fingerprint, b);
    by_tile[tk].push_back(r);
    bucket_of[tk] = b;
  }
  for (auto& [k, rows] : by_tile) {
    out.keys.push_back(k);
    out.buckets.push_back(bucket_of[k]);
    out.rows.push_back(std::move(rows));
  }
  return out;
}

void AppendEvent(const RowsByTile& g, size_t A, int64_t r, window::Bucket* b) {
  b->time.push_back(g.times[r]);
  b->id.push_back(g.events.id[r]);
  b->value.insert(b->value.end(), g.events.value.begin() + r * A,
                  g.events.value.begin() + (r + 1) * A);
  b->valid.insert(b->valid.end(), g.events.valid.begin() + r * A,
                  g.events.valid.begin() + (r + 1) * A);
}

// Keeps the events of `b` for which keep(e) holds.
template <typename Keep>
void FilterEvents(size_t A, window::Bucket* b, Keep keep) {
  window::Bucket kept;
  kept.index = b->index;
  for (size_t e = 0; e < b->size(); ++e) {
    if (!keep(e)) continue;
    kept.time.push_back(b->time[e]);
    kept.id.push_back(b->id[e]);
    kept.value.insert(kept.value.end(), b->value.begin() + e * A, b->value.begin() + (e + 1) * A);
    kept.valid.insert(kept.valid.end(), b->valid.begin() + e * A, b->valid.begin() + (e + 1) * A);
  }
  *b = std::move(kept);
}

}  // namespace

int64_t WindowGcHorizon(const window::WindowSpec& spec, const registry::Source* src,
                        int64_t now_us) {
  const int64_t lateness = src ? src->kafka.allowed_lateness_seconds * 1000000 : 0;
  return now_us - spec.max_window_us - lateness;
}

arrow::Result<TileGcReport> CollectWindowTiles(OnlineStore& store,
                                               const registry::FeatureView& view,
                                               const registry::Source* src, int64_t now_us,
                                               size_t max_deletes, bool stale_fingerprints) {
  ARROW_ASSIGN_OR_RAISE(auto spec, window::CompileWindows(view));
  const int64_t horizon = WindowGcHorizon(spec, src, now_us);
  const std::string prefix = ViewKeyPrefix(view.name);
  TileGcReport out;
  std::vector<KeyRepair> doomed;
  ARROW_RETURN_NOT_OK(
      store.ScanVersions(prefix, [&](std::string_view key, std::string_view version) {
        uint64_t fp;
        int64_t bucket;
        if (!ParseTileKey(key, prefix.size(), &fp, &bucket)) return;
        ++out.tiles_scanned;
        bool expired =
            fp == spec.fingerprint ? (bucket + 1) * spec.bucket_us <= horizon : stale_fingerprints;
        if (!expired) return;
        if (doomed.size() >= max_deletes) {
          out.more = true;
          return;
        }
        // Removed only if unchanged since this scan (a late event written
        // meanwhile keeps it until the next pass).
        doomed.push_back({std::string(key), std::string(version), ""});
      }));
  for (size_t from = 0; from < doomed.size(); from += kTilesPerRound) {
    size_t to = std::min(doomed.size(), from + kTilesPerRound);
    ARROW_RETURN_NOT_OK(store.Repair(std::span<const KeyRepair>(doomed.data() + from, to - from)));
  }
  out.tiles_deleted = static_cast<int64_t>(doomed.size());
  return out;
}

arrow::Status WriteWindowEvents(OnlineStore& store, const registry::Definitions& defs,
                                const registry::FeatureView& view, const std::string& time_column,
                                const arrow::Table& input, bool id_columns,
                                std::optional<std::pair<int64_t, int64_t>> replace) {
  if (input.num_rows() == 0 && !replace) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto spec, window::CompileWindows(view));
  const size_t A = spec.num_channels;
  ARROW_ASSIGN_OR_RAISE(auto data, input.CombineChunks());
  ARROW_ASSIGN_OR_RAISE(auto g, GroupRows(defs, view, spec, time_column, *data, id_columns));
  if (g.keys.empty()) return arrow::Status::OK();
  TileCounts counts;
  return UpdateTiles(
      store, A, g.keys, g.buckets,
      [&](size_t i, TileMeta*, window::Bucket* b) {
        if (replace) {
          // Keep stored events outside the range, and stream events (deduplicated by Finish).
          FilterEvents(A, b, [&](size_t e) {
            bool in_range = b->time[e] >= replace->first && b->time[e] <= replace->second;
            return !in_range || b->id[e] != 0;
          });
        }
        for (int64_t r : g.rows[i]) {
          if (replace && (g.times[r] < replace->first || g.times[r] > replace->second)) continue;
          AppendEvent(g, A, r, b);
        }
        return arrow::Status::OK();
      },
      &counts);
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
      TileMeta meta;
      std::string_view tile;
      ARROW_RETURN_NOT_OK(SplitTile(std::string_view(*v).substr(kVersionPrefixSize), &meta, &tile));
      buckets.emplace_back();
      ARROW_RETURN_NOT_OK(
          window::DecodeTile(tile, A, first + static_cast<int64_t>(j), &buckets.back()));
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

namespace {

// A data file's identity in a snapshot: its path and deletion vector (a DELETE
// with deletion vectors removes and re-adds the same path with a new one).
std::string FileId(const delta::AddFile& f) {
  return f.deletion_vector ? f.path + "#" + f.deletion_vector->path_or_inline_dv : f.path;
}

// Rows of the source, columns renamed by field_mapping, with their origin.
struct SourceRows {
  std::vector<std::shared_ptr<arrow::Table>> tables;
  std::vector<int64_t> tags;  // per table: index of the new file, or -1 (an old file)
};

// A row's 128-bit digest: of its key, time, event id and event values (two
// rows with equal digests make equal events of one tile).
struct RowDigest {
  uint64_t a = 0, b = 0;
  int64_t row = 0;
  bool operator<(const RowDigest& o) const { return a != o.a ? a < o.a : b < o.b; }
};

// The digests of the rows of `data` that have a key and a time (those the
// tiles hold), as GroupRows reads them.
arrow::Result<std::vector<RowDigest>> DigestRows(const registry::Definitions& defs,
                                                 const registry::FeatureView& view,
                                                 const window::WindowSpec& spec,
                                                 const std::string& time_column,
                                                 const arrow::Table& data, bool id_columns) {
  std::vector<RowDigest> out;
  const int64_t n = data.num_rows();
  if (n == 0) return out;
  const size_t A = spec.num_channels;
  ARROW_ASSIGN_OR_RAISE(auto columns, ViewColumnsOf(defs, view, time_column, data));
  const auto& key_cols = columns.keys;
  const auto& tcol = columns.time;
  std::vector<int64_t> times(static_cast<size_t>(n));
  retrieval::asof::TimesToMicros(*tcol->chunk(0)->data(), times.data());
  ARROW_ASSIGN_OR_RAISE(auto events, window::ComputeEvents(spec, data, id_columns));
  out.reserve(static_cast<size_t>(n));
  std::string sig;
  for (int64_t r = 0; r < n; ++r) {
    if (times[r] == retrieval::asof::kNullTime) continue;
    sig.clear();
    bool ok = true;
    for (const auto& c : key_cols) {
      ARROW_ASSIGN_OR_RAISE(bool valid, AppendKeyFromArray(*c, r, &sig));
      ok = ok && valid;
    }
    if (!ok) continue;
    PutRaw(&sig, times[r]);
    PutRaw(&sig, events.id[r]);
    sig.append(reinterpret_cast<const char*>(events.value.data() + r * A), A * sizeof(double));
    for (size_t a = 0; a < A; ++a) sig.push_back(events.valid[r * A + a] ? 1 : 0);
    const auto len = static_cast<int64_t>(sig.size());
    out.push_back({arrow::internal::ComputeStringHash<0>(sig.data(), len),
                   arrow::internal::ComputeStringHash<1>(sig.data(), len), r});
  }
  return out;
}

// Rows `rows` (ascending) of `t`, as one chunk.
arrow::Result<std::shared_ptr<arrow::Table>> TakeRows(const std::shared_ptr<arrow::Table>& t,
                                                      const std::vector<int64_t>& rows) {
  arrow::Int64Builder b;
  ARROW_RETURN_NOT_OK(b.AppendValues(rows));
  std::shared_ptr<arrow::Array> idx;
  ARROW_RETURN_NOT_OK(b.Finish(&idx));
  ARROW_ASSIGN_OR_RAISE(auto taken, arrow::compute::Take(t, idx));
  return taken.table()->CombineChunks();
}

// The rows of a snapshot by its files' statistics (numRecords less the rows
// their deletion vectors delete); -1 when a file has none.
int64_t TableRows(const delta::Snapshot& s) {
  int64_t rows = 0;
  for (const auto& f : s.files()) {
    const auto at = f.stats.find("\"numRecords\":");
    if (at == std::string::npos) return -1;
    rows += std::strtoll(f.stats.c_str() + at + 13, nullptr, 10);
    if (f.deletion_vector) rows -= f.deletion_vector->cardinality;
  }
  return rows;
}

// The registry state naming the source version the last run that wrote a
// view's tiles read (written before its first tile write).
std::string TileRunKey(const std::string& view) { return "materialize-tiles/" + view; }

// What the commits after `from` up to `to` did, from their log entries:
// whether every file they removed was removed with dataChange=false
// (rewritten with the same rows: OPTIMIZE) and every file they added with
// dataChange=true is still live in `now_ids`. nullopt when a commit cannot
// be read.
arrow::Result<std::optional<bool>> OnlyRewrites(const delta::DeltaTable& table,
                                                const delta::Snapshot& snap, int64_t from,
                                                int64_t to, const std::set<std::string>& now_ids) {
  for (int64_t v = from + 1; v <= to; ++v) {
    char name[64];
    std::snprintf(name, sizeof name, "_delta_log/%020lld.json", static_cast<long long>(v));
    const std::string path = delta::DataFilePath(snap.table_root(), name);
    auto in = table.filesystem()->OpenInputFile(path);
    if (!in.ok()) return std::nullopt;
    auto size = (*in)->GetSize();
    if (!size.ok()) return std::nullopt;
    auto buf = (*in)->ReadAt(0, *size);
    if (!buf.ok()) return std::nullopt;
    auto actions = delta::ParseLogJson((*buf)->ToString(), path);
    if (!actions.ok()) return std::nullopt;
    for (const auto& r : actions->removes) {
      if (r.data_change) return false;
    }
    for (const auto& a : actions->adds) {
      if (a.data_change && !now_ids.count(FileId(a))) return false;
    }
  }
  return true;
}

}  // namespace

arrow::Result<WindowMaterialization> MaterializeWindowView(
    const repo::FeatureRepository& repo, OnlineStore& store, const registry::Definitions& defs,
    const registry::FeatureView& view, const registry::Source& src, std::optional<int64_t> start_us,
    int64_t end_us, std::optional<std::pair<int64_t, int64_t>> since, int64_t gc_now_us,
    const WindowRepairLimits& limits) {
  WindowMaterialization out;
  const std::string ts =
      src.timestamp_field.empty() ? repo.config().default_timestamp_field : src.timestamp_field;
  ARROW_ASSIGN_OR_RAISE(auto spec, window::CompileWindows(view));
  const size_t A = spec.num_channels;
  out.fingerprint = spec.fingerprint;
  ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(repo.TableUri(src.path)));
  auto latest = table->Latest();
  if (!latest.ok()) {
    if (HasErrorKind(latest.status(), ErrorKind::kTableNotFound)) return out;
    return latest.status();
  }
  std::shared_ptr<const delta::Snapshot> snap = *latest;
  out.to_version = snap->version();
  out.files_total = static_cast<int64_t>(snap->files().size());
  auto stored_name = [&](const std::string& mapped) {
    for (const auto& [from, to] : src.field_mapping) {
      if (to == mapped) return from;
    }
    return mapped;
  };
  const int64_t lo = start_us.value_or(INT64_MIN);
  const int64_t hi = end_us;
  auto time_filter = [&](int64_t from, int64_t to) {
    std::string tsq = "`" + stored_name(ts) + "`";
    std::string f = tsq + " <= TIMESTAMP '" + FormatRfc3339Micros(to) + "'";
    if (from != INT64_MIN) f += " AND " + tsq + " >= TIMESTAMP '" + FormatRfc3339Micros(from) + "'";
    return f;
  };
  auto rename = [&](std::shared_ptr<arrow::Table> rows) {
    arrow::FieldVector fields;
    for (const auto& f : rows->schema()->fields()) {
      auto m = src.field_mapping.find(f->name());
      fields.push_back(f->WithName(m == src.field_mapping.end() ? f->name() : m->second));
    }
    return arrow::Table::Make(arrow::schema(fields), rows->columns(), rows->num_rows());
  };
  const bool kafka = src.type == registry::SourceType::kKafka;
  auto has_ids = [&](const arrow::Schema& s) {
    return kafka && s.GetFieldIndex("_kafka_partition") >= 0 &&
           s.GetFieldIndex("_kafka_offset") >= 0;
  };
  auto bind_to = [&](const delta::Snapshot& s,
                     const std::string& f) -> arrow::Result<arrow::compute::Expression> {
    ARROW_ASSIGN_OR_RAISE(auto e, ParseExpression(f, *s.schema()));
    return e.Bind(*s.schema());
  };
  auto all_fields_of = [](const delta::Snapshot& s) {
    std::vector<int> f(static_cast<size_t>(s.schema()->num_fields()));
    std::iota(f.begin(), f.end(), 0);
    return f;
  };
  // Before the first tile write: the version this run reads, so that a run
  // after a crash midway knows tiles may hold rows of a later version than
  // the watermark's.
  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  bool marked = false;
  auto mark = [&]() -> arrow::Status {
    if (marked) return arrow::Status::OK();
    marked = true;
    return reg->PutState(TileRunKey(view.name), std::to_string(snap->version()));
  };

  // Incremental: what was committed since the watermark.
  std::set<std::string> old_ids;
  std::vector<delta::AddFile> new_files;
  std::vector<delta::AddFile> removed_files;  // live at the watermark, not now (as they were)
  std::shared_ptr<const delta::Snapshot> old_snap;
  bool incremental = false;
  if (since && src.type == registry::SourceType::kPush) {
    out.note = "push source: pushed rows reach the tiles by push, so its range is rebuilt";
  } else if (since && since->first > snap->version()) {
    out.note = "the source is older than the last run's version: rebuilt";
    out.rebuilt = true;
  } else if (since) {
    auto old = table->AtVersion(since->first);
    if (!old.ok()) {
      out.note = "version " + std::to_string(since->first) +
                 " of the source is no longer readable: rebuilt";
      out.rebuilt = true;
    } else {
      old_snap = *old;
      for (const auto& f : old_snap->files()) old_ids.insert(FileId(f));
      std::set<std::string> now_ids;
      for (const auto& f : snap->files()) {
        now_ids.insert(FileId(f));
        if (!old_ids.count(FileId(f))) new_files.push_back(f);
      }
      for (const auto& f : old_snap->files()) {
        if (!now_ids.count(FileId(f))) removed_files.push_back(f);
      }
      incremental = true;
      if (!removed_files.empty()) {
        // Files removed: repaired key by key unless one of these says the
        // whole range must be rebuilt.
        const std::string removed_text = std::to_string(removed_files.size()) +
                                         " data file(s) removed since version " +
                                         std::to_string(since->first);
        ARROW_ASSIGN_OR_RAISE(auto last_run, reg->GetState(TileRunKey(view.name)));
        int64_t last_version = -1;
        if (last_run) last_version = std::strtoll(last_run->c_str(), nullptr, 10);
        ARROW_ASSIGN_OR_RAISE(auto rewrites,
                              OnlyRewrites(*table, *snap, since->first, snap->version(), now_ids));
        if (last_version > since->first && last_version != snap->version()) {
          out.note = removed_text + ", and an earlier run that read version " +
                     std::to_string(last_version) +
                     " did not finish (its tiles may hold rows the log no longer shows): the "
                     "view was rebuilt";
          incremental = false;
        } else if (rewrites && *rewrites) {
          // OPTIMIZE: the same rows in other files. Only the files added
          // with dataChange=true hold new rows.
          out.files_rewritten = static_cast<int64_t>(removed_files.size());
          out.note = std::to_string(removed_files.size()) +
                     " data file(s) rewritten with the same rows since version " +
                     std::to_string(since->first) +
                     " (dataChange=false: OPTIMIZE): no tile changed";
          // The rewritten files' rows up to the last run's end are in the
          // tiles: they are read as old files (only the rows after it).
          std::vector<delta::AddFile> changed;
          for (auto& f : new_files) {
            if (f.data_change) {
              changed.push_back(std::move(f));
            } else {
              old_ids.insert(FileId(f));
            }
          }
          new_files = std::move(changed);
          removed_files.clear();
        }
        if (!incremental) {
          out.rebuilt = true;
          new_files.clear();
          removed_files.clear();
        }
      }
    }
  }

  bool full = !incremental;
  if (incremental) {
    out.from_version = since->first;
    const int64_t since_end = since->second;
    // The removed files' rows as the watermark's run saw them (those up to its
    // end are in the tiles).
    std::shared_ptr<arrow::Table> removed_rows;
    if (!removed_files.empty()) {
      auto read = [&]() -> arrow::Result<std::shared_ptr<arrow::Table>> {
        ARROW_ASSIGN_OR_RAISE(auto e, bind_to(*old_snap, time_filter(lo, std::min(hi, since_end))));
        ARROW_ASSIGN_OR_RAISE(auto t, delta::ReadFiles(*table->filesystem(), *old_snap,
                                                       removed_files, all_fields_of(*old_snap), e));
        ARROW_ASSIGN_OR_RAISE(t, rename(t)->CombineChunks());
        return t;
      };
      auto got = read();
      if (!got.ok()) {
        out.note = std::to_string(removed_files.size()) + " data file(s) removed since version " +
                   std::to_string(since->first) + " cannot be read as they were (" +
                   got.status().message() + "): the view was rebuilt";
        out.rebuilt = true;
        full = true;
      } else {
        removed_rows = *got;
        out.files_read += static_cast<int64_t>(removed_files.size());
      }
    }
    if (!full) {
      SourceRows got;
      std::optional<arrow::compute::Expression> tf;
      auto tstype = snap->schema()->GetFieldByName(stored_name(ts));
      if (!tstype) {
        return UserError(
            ErrorKind::kSchemaMismatch,
            "source '" + src.name + "' has no timestamp column '" + stored_name(ts) + "'");
      }
      const auto all_fields = all_fields_of(*snap);
      for (size_t i = 0; i < new_files.size(); ++i) {
        if (!tf) {
          ARROW_ASSIGN_OR_RAISE(auto e, bind_to(*snap, time_filter(lo, hi)));
          tf = e;
        }
        ARROW_ASSIGN_OR_RAISE(
            auto t, delta::ReadFiles(*table->filesystem(), *snap, {new_files[i]}, all_fields, tf));
        got.tables.push_back(rename(t));
        got.tags.push_back(static_cast<int64_t>(i));
        ++out.files_read;
      }
      // Rows of older files after the last run's end (statistics skip most files).
      if (since_end < hi) {
        const int64_t from = std::max(lo, since_end == INT64_MAX ? since_end : since_end + 1);
        ARROW_ASSIGN_OR_RAISE(auto e, bind_to(*snap, time_filter(from, hi)));
        ARROW_ASSIGN_OR_RAISE(auto plan, delta::PlanFiles(*snap, e));
        std::vector<delta::AddFile> olds;
        for (const auto& f : plan.files) {
          if (old_ids.count(FileId(f))) olds.push_back(f);
        }
        if (!olds.empty()) {
          ARROW_ASSIGN_OR_RAISE(auto t,
                                delta::ReadFiles(*table->filesystem(), *snap, olds, all_fields, e));
          got.tables.push_back(rename(t));
          got.tags.push_back(-1);
          out.files_read += static_cast<int64_t>(olds.size());
        }
      }
      std::shared_ptr<arrow::Table> rows;
      std::vector<int64_t> tag_of_row;
      if (!got.tables.empty()) {
        for (size_t i = 0; i < got.tables.size(); ++i)
          tag_of_row.insert(tag_of_row.end(), static_cast<size_t>(got.tables[i]->num_rows()),
                            got.tags[i]);
        ARROW_ASSIGN_OR_RAISE(rows, arrow::ConcatenateTables(got.tables));
        ARROW_ASSIGN_OR_RAISE(rows, rows->CombineChunks());
        out.rows_read = rows->num_rows();
      }
      // The removed rows that are really gone: each is cancelled by an added
      // row making the same event of the same key (a row rewritten unchanged:
      // the untouched rows of a rewritten file, the rows a new deletion vector
      // keeps), by 128-bit digests of the rows' events, sorted. The tiles of
      // the rows left are recomputed from the source; the added rows left are
      // folded into the other tiles.
      std::set<std::string> repair;  // tile keys
      std::optional<RowsByTile> gr;
      if (removed_rows) {
        out.rows_read += removed_rows->num_rows();
        ARROW_ASSIGN_OR_RAISE(auto dr, DigestRows(defs, view, spec, ts, *removed_rows,
                                                  has_ids(*removed_rows->schema())));
        std::vector<RowDigest> dn;
        if (rows && rows->num_rows() > 0) {
          ARROW_ASSIGN_OR_RAISE(dn,
                                DigestRows(defs, view, spec, ts, *rows, has_ids(*rows->schema())));
          // An old file's rows after the old end are not in the removed rows.
          std::erase_if(dn, [&](const RowDigest& d) { return tag_of_row[d.row] < 0; });
        }
        std::sort(dr.begin(), dr.end());
        std::sort(dn.begin(), dn.end());
        std::vector<int64_t> gone, cancelled;
        size_t i = 0, j = 0;
        while (i < dr.size()) {
          if (j == dn.size() || dr[i] < dn[j]) {
            gone.push_back(dr[i++].row);
          } else if (dn[j] < dr[i]) {
            ++j;
          } else {
            cancelled.push_back(dn[j].row);
            ++i;
            ++j;
          }
        }
        std::sort(gone.begin(), gone.end());
        ARROW_ASSIGN_OR_RAISE(removed_rows, TakeRows(removed_rows, gone));
        out.rows_removed = removed_rows->num_rows();
        if (!cancelled.empty()) {
          std::sort(cancelled.begin(), cancelled.end());
          std::vector<int64_t> kept;
          std::vector<int64_t> kept_tags;
          size_t c = 0;
          for (int64_t r = 0; r < rows->num_rows(); ++r) {
            if (c < cancelled.size() && cancelled[c] == r) {
              ++c;
              continue;
            }
            kept.push_back(r);
            kept_tags.push_back(tag_of_row[r]);
          }
          ARROW_ASSIGN_OR_RAISE(rows, TakeRows(rows, kept));
          tag_of_row = std::move(kept_tags);
        }
        gr.emplace();
        if (removed_rows->num_rows() > 0) {
          ARROW_ASSIGN_OR_RAISE(
              gr, GroupRows(defs, view, spec, ts, *removed_rows, has_ids(*removed_rows->schema())));
        }
        repair.insert(gr->keys.begin(), gr->keys.end());
        std::set<std::string_view> keys;
        for (const auto& k : repair)
          keys.insert(std::string_view(k).substr(0, k.size() - kTileSuffix));
        out.keys_repaired = static_cast<int64_t>(keys.size());
        const int64_t table_rows = TableRows(*old_snap);
        const std::string removed_text = std::to_string(removed_files.size()) +
                                         " data file(s) removed since version " +
                                         std::to_string(since->first);
        std::string why;
        if (out.keys_repaired > limits.max_keys) {
          why = " with rows of " + std::to_string(out.keys_repaired) + " keys (more than " +
                std::to_string(limits.max_keys) + " to repair one by one)";
        } else if (table_rows > 0 &&
                   static_cast<double>(out.rows_removed) >
                       limits.max_removed_share * static_cast<double>(table_rows)) {
          why = ": " + std::to_string(out.rows_removed) + " of the table's " +
                std::to_string(table_rows) + " rows gone (most of the table rewritten)";
        }
        if (!why.empty()) {
          out.note = removed_text + why + ": the view was rebuilt";
          out.rebuilt = true;
          out.keys_repaired = 0;
          out.rows_removed = 0;
          full = true;
        } else {
          out.keyed_repair = true;
          out.note = removed_text + ": " + std::to_string(out.rows_removed) + " row(s) gone, " +
                     std::to_string(out.keys_repaired) + " key(s) in " +
                     std::to_string(repair.size()) + " tile(s) recomputed from the source";
        }
      }
      std::optional<RowsByTile> g;
      if (!full && rows && rows->num_rows() > 0) {
        ARROW_ASSIGN_OR_RAISE(g, GroupRows(defs, view, spec, ts, *rows, has_ids(*rows->schema())));
      }
      TileCounts counts;
      if (!full && !repair.empty()) {
        // The affected tiles from the source now: the rows of their keys in
        // their buckets' time span.
        std::vector<std::string> tkeys(repair.begin(), repair.end());
        std::vector<int64_t> tbuckets;
        int64_t bmin = INT64_MAX, bmax = INT64_MIN;
        std::vector<int64_t> key_rows;  // a removed row of each affected tile
        for (size_t i = 0; i < gr->keys.size(); ++i) {
          if (repair.count(gr->keys[i])) key_rows.push_back(gr->rows[i].front());
        }
        for (const auto& k : tkeys) {
          uint64_t fp;
          int64_t b;
          ParseTileKey(k, 0, &fp, &b);
          tbuckets.push_back(b);
          bmin = std::min(bmin, b);
          bmax = std::max(bmax, b);
        }
        const int64_t from = std::max(lo, bmin * spec.bucket_us + 1);
        const int64_t to = std::min(hi, (bmax + 1) * spec.bucket_us);
        ARROW_ASSIGN_OR_RAISE(auto filter, bind_to(*snap, time_filter(from, to)));
        {
          arrow::Int64Builder take;
          ARROW_RETURN_NOT_OK(take.AppendValues(key_rows));
          std::shared_ptr<arrow::Array> idx;
          ARROW_RETURN_NOT_OK(take.Finish(&idx));
          for (const auto& en : view.entities) {
            const auto* e = defs.FindEntity(en);
            for (const auto& k : e->join_keys) {
              auto col = removed_rows->GetColumnByName(k.name);
              auto field = snap->schema()->GetFieldByName(stored_name(k.name));
              if (!col || !field) continue;
              ARROW_ASSIGN_OR_RAISE(auto taken, arrow::compute::Take(col->chunk(0), idx));
              ARROW_ASSIGN_OR_RAISE(auto unique, arrow::compute::Unique(taken.make_array()));
              if (!unique->type()->Equals(*field->type())) {
                ARROW_ASSIGN_OR_RAISE(auto cast, arrow::compute::Cast(unique, field->type()));
                unique = cast.make_array();
              }
              auto in = arrow::compute::call(
                  "is_in", {arrow::compute::field_ref(field->name())},
                  arrow::compute::SetLookupOptions(unique, arrow::compute::SetLookupOptions::SKIP));
              ARROW_ASSIGN_OR_RAISE(in, in.Bind(*snap->schema()));
              filter = arrow::compute::and_(filter, in);
            }
          }
          ARROW_ASSIGN_OR_RAISE(filter, filter.Bind(*snap->schema()));
        }
        ARROW_ASSIGN_OR_RAISE(auto plan, delta::PlanFiles(*snap, filter));
        ARROW_ASSIGN_OR_RAISE(auto now_rows, delta::ReadFiles(*table->filesystem(), *snap,
                                                              plan.files, all_fields, filter));
        ARROW_ASSIGN_OR_RAISE(now_rows, rename(now_rows)->CombineChunks());
        out.rows_read += now_rows->num_rows();
        RowsByTile gt;
        if (now_rows->num_rows() > 0) {
          ARROW_ASSIGN_OR_RAISE(
              gt, GroupRows(defs, view, spec, ts, *now_rows, has_ids(*now_rows->schema())));
        }
        std::unordered_map<std::string, size_t> now_tile;
        for (size_t i = 0; i < gt.keys.size(); ++i) now_tile.emplace(gt.keys[i], i);
        ARROW_RETURN_NOT_OK(mark());
        TileCounts repaired;
        ARROW_RETURN_NOT_OK(UpdateTiles(
            store, A, tkeys, tbuckets,
            [&](size_t i, TileMeta* meta, window::Bucket* b) {
              // As a full rebuild: the stored events of the range replaced by
              // the source's rows, except stream events (kept, deduplicated).
              FilterEvents(A, b, [&](size_t e) {
                bool in_range = b->time[e] >= lo && b->time[e] <= hi;
                return !in_range || b->id[e] != 0;
              });
              auto it = now_tile.find(tkeys[i]);
              if (it != now_tile.end()) {
                for (int64_t r : gt.rows[it->second]) {
                  if (gt.times[r] < lo || gt.times[r] > hi) continue;
                  AppendEvent(gt, A, r, b);
                }
              }
              meta->version = snap->version();
              meta->start_us = lo;
              meta->end_us = hi;
              return arrow::Status::OK();
            },
            &repaired));
        out.tiles_repaired = repaired.written + repaired.deleted;
        counts.written += repaired.written;
        counts.deleted += repaired.deleted;
        counts.retries += repaired.retries;
      }
      if (!full && g) {
        // A tile written by an earlier run that stopped before recording its
        // watermark (its header names a version after `since`) already holds
        // that run's rows: those of the files of its version, up to its end.
        std::map<int64_t, std::set<std::string>> files_at;
        auto files_of = [&](int64_t v) -> arrow::Result<const std::set<std::string>*> {
          auto it = files_at.find(v);
          if (it == files_at.end()) {
            std::set<std::string> ids;
            auto s = table->AtVersion(v);
            if (s.ok()) {
              for (const auto& f : (*s)->files()) ids.insert(FileId(f));
            }
            it = files_at.emplace(v, std::move(ids)).first;
          }
          return &it->second;
        };
        // The tiles to fold rows into: not repaired, with a row left.
        std::vector<std::string> fkeys;
        std::vector<int64_t> fbuckets;
        std::vector<size_t> fof;
        for (size_t i = 0; i < g->keys.size(); ++i) {
          if (repair.count(g->keys[i])) continue;
          fkeys.push_back(g->keys[i]);
          fbuckets.push_back(g->buckets[i]);
          fof.push_back(i);
        }
        if (!fkeys.empty()) ARROW_RETURN_NOT_OK(mark());
        TileCounts folded;
        ARROW_RETURN_NOT_OK(UpdateTiles(
            store, A, fkeys, fbuckets,
            [&](size_t j, TileMeta* meta, window::Bucket* b) -> arrow::Status {
              const bool earlier_run =
                  meta->version > since->first && meta->version <= snap->version();
              const std::set<std::string>* had = nullptr;
              if (earlier_run) {
                ARROW_ASSIGN_OR_RAISE(had, files_of(meta->version));
              }
              for (int64_t r : g->rows[fof[j]]) {
                if (earlier_run && g->times[r] >= meta->start_us && g->times[r] <= meta->end_us) {
                  int64_t tag = tag_of_row[r];
                  if (tag < 0 || had->count(FileId(new_files[tag]))) continue;
                }
                AppendEvent(*g, A, r, b);
              }
              meta->version = snap->version();
              meta->start_us = lo;
              meta->end_us = hi;
              return arrow::Status::OK();
            },
            &folded));
        counts.written += folded.written;
        counts.deleted += folded.deleted;
        counts.retries += folded.retries;
      }
      out.tiles_written = counts.written;
      out.tiles_deleted = counts.deleted;
      out.tile_retries = counts.retries;
    }
  }
  out.incremental = !full;
  if (full) {
    // Full: the range's tiles rebuilt from the source's rows, also those
    // stored tiles of the range that no longer have any (rows deleted).
    delta::ReadOptions ro;
    ro.version = snap->version();
    ro.filter = time_filter(lo, hi);
    ARROW_ASSIGN_OR_RAISE(auto rows, table->Read(*snap, ro));
    rows = rename(rows);
    ARROW_ASSIGN_OR_RAISE(rows, rows->CombineChunks());
    out.rows_read = rows->num_rows();
    out.files_read = static_cast<int64_t>(snap->files().size());
    out.from_version = -1;
    ARROW_ASSIGN_OR_RAISE(auto g, GroupRows(defs, view, spec, ts, *rows, has_ids(*rows->schema())));
    {
      std::set<std::string> have(g.keys.begin(), g.keys.end());
      const std::string prefix = ViewKeyPrefix(view.name);
      const int64_t first = lo == INT64_MIN ? INT64_MIN : window::BucketOf(lo, spec.bucket_us);
      const int64_t last = window::BucketOf(hi, spec.bucket_us);
      ARROW_RETURN_NOT_OK(store.ScanVersions(prefix, [&](std::string_view key, std::string_view) {
        uint64_t fp;
        int64_t bucket;
        if (!ParseTileKey(key, prefix.size(), &fp, &bucket)) return;
        if (fp != spec.fingerprint || bucket < first || bucket > last) return;
        std::string k(key);
        if (have.insert(k).second) {
          g.keys.push_back(std::move(k));
          g.buckets.push_back(bucket);
          g.rows.emplace_back();
        }
      }));
    }
    if (!g.keys.empty()) ARROW_RETURN_NOT_OK(mark());
    TileCounts counts;
    ARROW_RETURN_NOT_OK(UpdateTiles(
        store, A, g.keys, g.buckets,
        [&](size_t i, TileMeta* meta, window::Bucket* b) {
          // Stored events of the range are replaced by the source's rows,
          // except stream events (nonzero id), kept and deduplicated by Finish.
          FilterEvents(A, b, [&](size_t e) {
            bool in_range = b->time[e] >= lo && b->time[e] <= hi;
            return !in_range || b->id[e] != 0;
          });
          for (int64_t r : g.rows[i]) {
            if (g.times[r] < lo || g.times[r] > hi) continue;
            AppendEvent(g, A, r, b);
          }
          meta->version = snap->version();
          meta->start_us = lo;
          meta->end_us = hi;
          return arrow::Status::OK();
        },
        &counts));
    out.tiles_written = counts.written;
    out.tiles_deleted = counts.deleted;
    out.tile_retries = counts.retries;
  }
  // Tiles no read at or after now can reach (docs/windows.md, "Tile GC").
  ARROW_ASSIGN_OR_RAISE(auto gc, CollectWindowTiles(store, view, &src, gc_now_us,
                                                    std::numeric_limits<size_t>::max(), true));
  out.tiles_collected = gc.tiles_deleted;
  return out;
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

arrow::Result<int64_t> CollectSourceWindowTiles(const registry::RegistryState& state,
                                                OnlineStore* store, const std::string& source,
                                                int64_t now_us, size_t max_deletes) {
  const registry::Source* src = state.defs.FindSource(source);
  if (!src) return UserError(ErrorKind::kObjectNotFound, "unknown source '" + source + "'");
  int64_t deleted = 0;
  for (const auto& v : state.defs.feature_views) {
    if (v.source != src->name || !v.online || v.aggregations.empty() || !store) continue;
    if (static_cast<size_t>(deleted) >= max_deletes) break;
    ARROW_ASSIGN_OR_RAISE(auto gc,
                          CollectWindowTiles(*store, v, src, now_us,
                                             max_deletes - static_cast<size_t>(deleted), false));
    deleted += gc.tiles_deleted;
  }
  return deleted;
}

}  // namespace stratalake::online
