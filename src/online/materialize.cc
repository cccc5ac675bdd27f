// Materialization: source rows in an event-time range -> the online store.
//
// Files are processed in the offline join's tie-break order (Delta
// modificationTime, then path) and rows in file order, and the store keeps the
// value with the largest (event time, created time), the later write on ties —
// so the online value of a key is the row the training-set join would pick at
// the range's end. Each file is read two row groups at a time, encoded and
// written as one bulk batch, so memory is bounded by the chunk size.
//
// Watermark (registry state "materialize/<view>"): {"version": source Delta
// version read, "end_us": range end, "layout": layout fingerprint, "source":
// source name}. An incremental run reads the files added since that version
// (rows up to the new end) and, from files that were already there, only rows
// after the old end (statistics skip most of those files). A changed layout or
// source, or no watermark, means a full read.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/errors.h"
#include "common/json.h"
#include "online/codec.h"
#include "online/key_version_table.h"
#include "online/window_tiles.h"
#include "retrieval/asof_keys.h"
#include "retrieval/window.h"
#include "storage/scan.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

struct Watermark {
  int64_t version = -1;
  int64_t end_us = 0;
  uint64_t layout = 0;
  std::string source;
};

std::string WatermarkKey(const std::string& view) { return "materialize/" + view; }

std::optional<Watermark> ParseWatermark(const std::string& json) {
  rapidjson::Document d;
  if (!json::ParseJson(&d, json).ok() || !d.IsObject()) return std::nullopt;
  Watermark w;
  if (!d.HasMember("version") || !d["version"].IsInt64()) return std::nullopt;
  w.version = d["version"].GetInt64();
  if (d.HasMember("end_us") && d["end_us"].IsInt64()) w.end_us = d["end_us"].GetInt64();
  if (d.HasMember("layout") && d["layout"].IsString()) {
    w.layout = std::strtoull(d["layout"].GetString(), nullptr, 16);
  }
  if (d.HasMember("source") && d["source"].IsString()) w.source = d["source"].GetString();
  return w;
}

std::string FormatWatermark(const Watermark& w, int64_t rows, int64_t now_ms) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> wr(sb);
  char fp[24];
  std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(w.layout));
  wr.StartObject();
  wr.Key("version");
  wr.Int64(w.version);
  wr.Key("end_us");
  wr.Int64(w.end_us);
  wr.Key("layout");
  wr.String(fp);
  wr.Key("source");
  wr.String(w.source.c_str());
  wr.Key("rows_written");
  wr.Int64(rows);
  wr.Key("updated_at_ms");
  wr.Int64(now_ms);
  wr.EndObject();
  return sb.GetString();
}

std::string StoredName(const registry::Source& s, const std::string& mapped) {
  for (const auto& [from, to] : s.field_mapping) {
    if (to == mapped) return from;
  }
  return mapped;
}

// µs since the epoch of every row of a time column (timestamp of any unit, date).
arrow::Result<std::vector<int64_t>> TimesMicros(const arrow::Array& a) {
  if (!retrieval::asof::IsTimeType(*a.type())) {
    return arrow::Status::TypeError("not a time column: ", a.type()->ToString());
  }
  std::vector<int64_t> out(static_cast<size_t>(a.length()), 0);
  retrieval::asof::TimesToMicros(*a.data(), out.data());
  return out;
}

// One file of the read, with the event-time range wanted from it.
struct FileTask {
  delta::AddFile file;
  int64_t lo_us, hi_us;
};

// Online key -> the newest version prefix among the key's deleted rows.
using DeletedKeyMap = KeyVersionTable;

// The offline join's tie-break order: Delta modificationTime, then path.
void SortInArrivalOrder(std::vector<FileTask>* tasks) {
  std::stable_sort(tasks->begin(), tasks->end(), [](const FileTask& a, const FileTask& b) {
    return a.file.modification_time != b.file.modification_time
               ? a.file.modification_time < b.file.modification_time
               : a.file.path < b.file.path;
  });
}

struct Chunk {
  std::shared_ptr<arrow::Table> data;
  bool last_of_file = false;
};

// A hand-off of chunks from the reader thread to the writer, holding at most
// one: the reader blocks until the writer has taken the previous one.
class ChunkPipe {
 public:
  /// Reader: false when the writer has stopped (then the chunk is dropped).
  bool Push(Chunk chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !full_ || stopped_; });
    if (stopped_) return false;
    chunk_ = std::move(chunk);
    full_ = true;
    cv_.notify_all();
    return true;
  }
  /// Reader: ends the stream with an error.
  void Fail(arrow::Status st) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(st);
    cv_.notify_all();
  }
  /// Writer: the next chunk, or the reader's error.
  arrow::Result<Chunk> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return full_ || !error_.ok(); });
    if (!full_) return error_;
    full_ = false;
    cv_.notify_all();
    return std::move(chunk_);
  }
  /// Writer: no more chunks are wanted (the reader ends at its next push).
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Chunk chunk_;
  bool full_ = false;
  bool stopped_ = false;
  arrow::Status error_;
};

class ViewMaterializer {
 public:
  ViewMaterializer(const repo::FeatureRepository& repo, const registry::Definitions& defs,
                   const registry::FeatureView& view, const registry::Source& source,
                   OnlineStore& store, const MaterializeOptions& options)
      : repo_(repo),
        defs_(defs),
        view_(view),
        src_(source),
        store_(store),
        options_(options),
        layout_(MakeLayout(view)),
        max_repair_keys_(options.max_repair_keys) {}

  arrow::Result<ViewMaterialization> Run(registry::Registry& reg, int64_t now_ms) {
    auto started = std::chrono::steady_clock::now();
    ViewMaterialization out;
    out.view = view_.name;
    out.source = src_.name;
    out.end_us = options_.end_us;
    if (src_.type == registry::SourceType::kParquet) {
      return UserError(ErrorKind::kUnsupportedFeature,
                       "feature view '" + view_.name + "' reads Parquet source '" + src_.name +
                           "'; materialization reads Delta sources (ingest the files first)");
    }
    ts_col_ = src_.timestamp_field.empty() ? repo_.config().default_timestamp_field
                                           : src_.timestamp_field;
    for (const auto& en : view_.entities) {
      const registry::Entity* e = defs_.FindEntity(en);
      if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
      for (const auto& k : e->join_keys) keys_.push_back(k.name);
    }

    ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(repo_.TableUri(src_.path)));
    auto latest = table->Latest();
    if (!latest.ok()) {
      if (HasErrorKind(latest.status(), ErrorKind::kTableNotFound)) {
        out.seconds = 0;
        return out;  // nothing ingested yet: nothing to materialize, no watermark
      }
      return latest.status();
    }
    std::shared_ptr<const delta::Snapshot> snap = *latest;
    out.to_version = snap->version();

    // Which files, and which time range of each.
    std::optional<Watermark> wm;
    ARROW_ASSIGN_OR_RAISE(auto wm_text, reg.GetState(WatermarkKey(view_.name)));
    if (wm_text) wm = ParseWatermark(*wm_text);
    int64_t lo = options_.start_us.value_or(INT64_MIN);
    int64_t hi = options_.end_us;
    std::vector<FileTask> tasks;
    bool incremental = options_.incremental && wm && wm->layout == layout_.fingerprint &&
                       wm->source == src_.name && wm->version <= snap->version();
    // Rows deleted from the source since the last run (DELETE, UPDATE, MERGE,
    // overwrite): the keys they held, with the newest deleted version of each,
    // are repaired after the run's writes. More such keys than one map may
    // hold (an overwrite of a large source) are repaired after the writes in
    // passes, a share of the keys (by hash) each. When the deleted rows cannot
    // be known (the log or the files of the watermark's version are gone), the
    // view is rebuilt: the source is read in full and every stored key checked.
    DeletedKeyMap& deleted = deleted_;
    deleted.Clear();
    bool rebuild = false;
    std::shared_ptr<const delta::Snapshot> old_snap;
    int repair_passes = 0;  // > 0: repaired after the writes, in passes (at first this many)
    if (wm && wm->source == src_.name && wm->version < snap->version()) {
      auto old = table->AtVersion(wm->version);
      if (!old.ok()) {
        rebuild = true;
      } else {
        old_snap = *old;
        ARROW_ASSIGN_OR_RAISE(DeletedScan scan,
                              DeletedKeys(*table, *old_snap, *snap, 0, 1, &deleted));
        if (scan.files_gone) {
          rebuild = true;
        } else if (scan.too_many) {
          deleted.Clear();
          // Halves of the keys first; a share that still holds too many is
          // split in two (scanning the removed files' keys again is cheap
          // next to the pass's read of the source).
          repair_passes = 2;
        }
      }
      if (rebuild) {
        // The deleted rows cannot be known: every key stored for the view is
        // checked instead, with its stored version as the bound, against a
        // full read (no key is removed first, so readers keep their values).
        deleted.Clear();
        incremental = false;
        ARROW_ASSIGN_OR_RAISE(DeletedScan scan, StoredKeys(0, 1, &deleted));
        if (scan.too_many) {
          deleted.Clear();
          repair_passes = 2;
        }
      }
    }
    if (options_.incremental && !options_.start_us) {
      lo = view_.ttl_seconds > 0 ? hi - view_.ttl_seconds * 1000000 : INT64_MIN;
    }
    if (incremental) {
      out.from_version = wm->version;
      std::set<std::string> before;
      auto old = table->AtVersion(wm->version);
      if (!old.ok()) {
        incremental = false;  // log cleaned up past the watermark: read everything
      } else {
        for (const auto& f : (*old)->files()) before.insert(f.path);
      }
      if (incremental) {
        ARROW_ASSIGN_OR_RAISE(auto plan_new, Plan(*snap, lo, hi));
        ARROW_ASSIGN_OR_RAISE(auto plan_old, Plan(*snap, std::max(lo, wm->end_us + 1), hi));
        std::set<std::string> taken;
        for (const auto& f : plan_new.files) {
          if (!before.count(f.path)) {
            tasks.push_back({f, lo, hi});
            taken.insert(f.path);
          }
        }
        if (wm->end_us < hi) {
          for (const auto& f : plan_old.files) {
            if (!taken.count(f.path)) tasks.push_back({f, std::max(lo, wm->end_us + 1), hi});
          }
        }
        out.files_total = plan_new.total_files;
      }
    }
    if (!incremental) {
      ARROW_ASSIGN_OR_RAISE(auto plan, Plan(*snap, lo, hi));
      for (const auto& f : plan.files) tasks.push_back({f, lo, hi});
      out.files_total = plan.total_files;
    }
    out.incremental = incremental;
    out.start_us = lo;
    SortInArrivalOrder(&tasks);

    out.rebuilt = rebuild;
    // The layout first, so readers can decode values written with it later.
    {
      std::string v;
      AppendVersionPrefix(0, std::nullopt, &v);
      v += SerializeLayout(layout_);
      std::vector<KeyValue> kv{{LayoutKey(view_.name, layout_.fingerprint), v}};
      ARROW_RETURN_NOT_OK(store_.Write(kv, WriteOptions{}));
    }

    ARROW_RETURN_NOT_OK(ResolveColumns(*snap));
    bool tty = options_.progress && isatty(STDERR_FILENO);
    // Chunks are read on a second thread, one ahead of encoding and writing:
    // decoding Parquet and building the store's batches overlap, and at most
    // two chunks are in memory.
    ChunkPipe pipe;
    std::thread reader([&] { ReadAll(*table, *snap, tasks, &pipe); });
    struct JoinReader {
      ChunkPipe& pipe;
      std::thread& reader;
      ~JoinReader() {
        pipe.Stop();
        reader.join();
      }
    } join_reader{pipe, reader};
    for (size_t t = 0; t < tasks.size();) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, pipe.Pop());
      if (chunk.data) {
        out.rows_read += chunk.data->num_rows();
        ARROW_RETURN_NOT_OK(WriteRows(*chunk.data, tasks[t], &out));
      }
      if (!chunk.last_of_file) continue;
      ++out.files_read;
      if (options_.on_progress &&
          !options_.on_progress({view_.name + ": materializing from " + src_.name, out.files_read,
                                 static_cast<int64_t>(tasks.size()), out.rows_written})) {
        return arrow::Status::Cancelled("materialization cancelled");
      }
      ++t;
      if (tty) {
        double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        double rate = secs > 0 ? static_cast<double>(out.rows_written) / secs : 0;
        double eta = secs * static_cast<double>(tasks.size() - t) / static_cast<double>(t);
        std::fprintf(stderr, "\r  %s: %zu/%zu files, %lld rows, %.0f rows/s, ETA %.0fs   ",
                     view_.name.c_str(), t, tasks.size(), static_cast<long long>(out.rows_written),
                     rate, eta);
      }
    }
    if (tty && !tasks.empty()) std::fprintf(stderr, "\n");
    // Keys this run wrote a row at least as new as their deleted ones for (a
    // rewritten or updated row) are already right; the rest are recomputed.
    if (!deleted.empty()) {
      deleted.Compact();  // slots for what is left: lookups stay in cache
      ARROW_RETURN_NOT_OK(RepairDeleted(*table, *snap, lo, hi, deleted, &out));
    }
    // Too many keys to track during the writes: every key of the removed files
    // (a rebuild: every stored key) is recomputed, a share at a time. Repair
    // only replaces a value no newer than the noted one, so keys the writes
    // (or pushes) made newer keep their value; a share that still holds too
    // many keys is split in two.
    std::vector<std::pair<int, int>> shares;  // (share, of how many), by key hash
    for (int p = 0; p < repair_passes; ++p) shares.emplace_back(p, repair_passes);
    while (!shares.empty()) {
      auto [share, of] = shares.back();
      shares.pop_back();
      deleted.Clear();
      ARROW_ASSIGN_OR_RAISE(DeletedScan scan,
                            rebuild ? StoredKeys(share, of, &deleted)
                                    : DeletedKeys(*table, *old_snap, *snap, share, of, &deleted));
      if (scan.files_gone) {
        return arrow::Status::IOError(
            "a data file of source '", src_.name, "' removed since version ", old_snap->version(),
            " disappeared during materialization (VACUUM?); nothing is lost: run it again "
            "(the view will be rebuilt)");
      }
      if (scan.too_many) {  // hash % 2n is share or share + n
        if (of > (1 << 20)) {
          return arrow::Status::Invalid("materialization: cannot split the deleted keys of '",
                                        view_.name, "' into shares of max_repair_keys");
        }
        shares.emplace_back(share, 2 * of);
        shares.emplace_back(share + of, 2 * of);
        continue;
      }
      ++out.repair_passes;
      if (!deleted.empty())
        ARROW_RETURN_NOT_OK(RepairDeleted(*table, *snap, lo, hi, deleted, &out));
    }
    deleted.Clear();
    // Durable first, then the watermark.
    ARROW_RETURN_NOT_OK(store_.Sync());
    Watermark next;
    next.version = snap->version();
    next.end_us = wm && wm->end_us > hi && incremental ? wm->end_us : hi;
    next.layout = layout_.fingerprint;
    next.source = src_.name;
    ARROW_RETURN_NOT_OK(
        reg.PutState(WatermarkKey(view_.name), FormatWatermark(next, out.rows_written, now_ms)));
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
  }

 private:
  struct DeletedScan {
    bool files_gone = false;  // a removed file is gone (VACUUM): the keys cannot be known
    bool too_many = false;    // more than max_repair_keys_ keys in this share
  };

  // Every key the store holds for the view whose hash modulo `shares` is
  // `share`, with its stored version prefix (at most max_repair_keys_ of them).
  arrow::Result<DeletedScan> StoredKeys(int share, int shares, DeletedKeyMap* deleted) {
    DeletedScan scan;
    ARROW_RETURN_NOT_OK(store_.ScanVersions(
        ViewKeyPrefix(view_.name), [&](std::string_view key, std::string_view version) {
          if (scan.too_many) return;
          uint64_t h = KeyVersionTable::Hash(key);
          if (shares > 1 && h % static_cast<size_t>(shares) != static_cast<size_t>(share)) return;
          deleted->NoteNewest(key, h, version.data());
          scan.too_many = deleted->size() > max_repair_keys_;
        }));
    return scan;
  }

  // The files live in `old` but not in `now` (removed, or given a new
  // deletion vector), read as they were in `old`: every key they held whose
  // hash modulo `shares` is `share`, with its newest version prefix, into
  // `deleted` (at most max_repair_keys_ of them, so memory stays bounded).
  arrow::Result<DeletedScan> DeletedKeys(const delta::DeltaTable& table, const delta::Snapshot& old,
                                         const delta::Snapshot& now, int share, int shares,
                                         DeletedKeyMap* deleted) {
    DeletedScan scan;
    auto dv_id = [](const delta::AddFile& f) {
      if (!f.deletion_vector) return std::string();
      const auto& dv = *f.deletion_vector;
      return dv.storage_type + dv.path_or_inline_dv + "@" + std::to_string(dv.offset.value_or(-1));
    };
    std::unordered_map<std::string, std::string> live;  // path -> deletion vector id
    for (const auto& f : now.files()) live.emplace(f.path, dv_id(f));
    std::vector<const delta::AddFile*> removed;
    for (const auto& f : old.files()) {
      auto it = live.find(f.path);
      if (it != live.end() && it->second == dv_id(f)) continue;
      removed.push_back(&f);
    }
    std::vector<int> fields;
    bool resolved = false;
    for (const delta::AddFile* file : removed) {
      const delta::AddFile& f = *file;
      if (!resolved) {
        ARROW_ASSIGN_OR_RAISE(fields, KeyAndTimeFields(old));
        resolved = true;
      }
      auto data = delta::ReadDataFile(*table.filesystem(), old, f, fields);
      if (!data.ok()) {
        if (HasErrorKind(data.status(), ErrorKind::kFileNotFound) || data.status().IsIOError()) {
          scan.files_gone = true;  // removed by VACUUM: the deleted keys cannot be known
          return scan;
        }
        return data.status();
      }
      // Keys are noted a block at a time, each slot prefetched a few keys ahead.
      constexpr size_t kBlock = 1024, kAhead = 16;
      std::vector<std::string> keys;
      std::vector<KeyVersionTable::Prefix> prefixes;
      std::vector<uint64_t> hashes;
      auto note = [&] {
        for (size_t i = 0; i < std::min(kAhead, keys.size()); ++i) deleted->Prefetch(hashes[i]);
        for (size_t i = 0; i < keys.size() && !scan.too_many; ++i) {
          if (i + kAhead < keys.size()) deleted->Prefetch(hashes[i + kAhead]);
          deleted->NoteNewest(keys[i], hashes[i], prefixes[i].data());
          scan.too_many = deleted->size() > max_repair_keys_;
        }
        keys.clear();
        prefixes.clear();
        hashes.clear();
      };
      ARROW_RETURN_NOT_OK(
          ForEachKeyVersion(**data, [&](int64_t, std::string&& key, std::string_view prefix) {
            if (scan.too_many) return;  // full: the rest of the file is not kept
            uint64_t h = KeyVersionTable::Hash(key);
            if (shares > 1 && h % static_cast<size_t>(shares) != static_cast<size_t>(share)) {
              return;
            }
            hashes.push_back(h);
            keys.push_back(std::move(key));
            prefixes.emplace_back();
            std::memcpy(prefixes.back().data(), prefix.data(), kVersionPrefixSize);
            if (keys.size() == kBlock) note();
          }));
      note();
      if (scan.too_many) return scan;
    }
    return scan;
  }

  // The join keys, event time and created time of the view's source in `s`.
  arrow::Result<std::vector<int>> KeyAndTimeFields(const delta::Snapshot& s) {
    std::vector<int> out;
    std::vector<std::string> names = keys_;
    names.push_back(ts_col_);
    if (!src_.created_timestamp_field.empty()) names.push_back(src_.created_timestamp_field);
    for (const auto& n : names) {
      int i = s.schema()->GetFieldIndex(StoredName(src_, n));
      if (i < 0) {
        return UserError(ErrorKind::kSchemaMismatch,
                         "source '" + src_.name + "' (version " + std::to_string(s.version()) +
                             ") has no column '" + StoredName(src_, n) + "'");
      }
      out.push_back(i);
    }
    return out;
  }

  // Calls fn(row, online key, version prefix) for every row of `data` (columns:
  // the join keys, the event time, the created time if the source has one,
  // then any others, which are not read) with a time and no null key.
  template <typename Fn>
  arrow::Status ForEachKeyVersion(const arrow::Table& data, Fn&& fn) {
    const size_t nk = keys_.size();
    const bool has_created = !src_.created_timestamp_field.empty();
    std::vector<int> key_and_times(nk + (has_created ? 2 : 1));
    for (size_t i = 0; i < key_and_times.size(); ++i) key_and_times[i] = static_cast<int>(i);
    ARROW_ASSIGN_OR_RAISE(auto columns, data.SelectColumns(key_and_times));
    ARROW_ASSIGN_OR_RAISE(auto batch, columns->CombineChunksToBatch());
    ARROW_ASSIGN_OR_RAISE(auto ts, TimesMicros(*batch->column(static_cast<int>(nk))));
    std::vector<int64_t> created;
    if (has_created) {
      ARROW_ASSIGN_OR_RAISE(created, TimesMicros(*batch->column(static_cast<int>(nk) + 1)));
    }
    const std::string prefix = ViewKeyPrefix(view_.name);
    std::string version;
    for (int64_t r = 0; r < batch->num_rows(); ++r) {
      if (batch->column(static_cast<int>(nk))->IsNull(r)) continue;
      std::string key = prefix;
      bool ok = true;
      for (size_t k = 0; k < nk && ok; ++k) {
        ARROW_ASSIGN_OR_RAISE(ok, AppendKeyFromArray(*batch->column(static_cast<int>(k)), r, &key));
      }
      if (!ok) continue;
      std::optional<int64_t> c;
      if (has_created && !batch->column(static_cast<int>(nk) + 1)->IsNull(r)) c = created[r];
      version.clear();
      AppendVersionPrefix(ts[r], c, &version);
      fn(r, std::move(key), std::string_view(version));
    }
    return arrow::Status::OK();
  }

  // Encodes only the rows of `data` whose key is in `deleted` (a source read
  // holds few of them: matching keys first is cheaper than encoding every row).
  arrow::Status EncodeDeletedKeysRows(const std::shared_ptr<arrow::Table>& data,
                                      const DeletedKeyMap& deleted, int64_t lo, int64_t hi,
                                      std::vector<KeyValue>* out, size_t* count) {
    arrow::Int64Builder rows;
    ARROW_RETURN_NOT_OK(
        ForEachKeyVersion(*data, [&](int64_t row, std::string&& key, std::string_view) {
          if (deleted.Find(key)) (void)rows.Append(row);
        }));
    if (rows.length() == 0) return arrow::Status::OK();
    ARROW_ASSIGN_OR_RAISE(auto take, rows.Finish());
    ARROW_ASSIGN_OR_RAISE(auto picked, arrow::compute::Take(data, take));
    return EncodeViewRows(view_, src_, layout_, keys_.size(), has_created_, *picked.table(), lo, hi,
                          out, count);
  }

  // Recomputes the deleted keys' values from the source as it is now (the
  // rows in [lo, hi], in the join's order: the same winner the writes would
  // pick) and repairs them in the store: the new winner, or no value.
  arrow::Status RepairDeleted(const delta::DeltaTable& table, const delta::Snapshot& s, int64_t lo,
                              int64_t hi, const DeletedKeyMap& deleted, ViewMaterialization* out) {
    ARROW_ASSIGN_OR_RAISE(auto plan, Plan(s, lo, hi));
    std::vector<FileTask> tasks;
    for (const auto& f : plan.files) tasks.push_back({f, lo, hi});
    SortInArrivalOrder(&tasks);
    std::unordered_map<std::string, std::string> winners;
    std::vector<KeyValue> encoded;
    for (const auto& task : tasks) {
      ChunkPipe pipe;
      std::thread reader([&] {
        arrow::Status st = ReadFile(table, s, task, &pipe);
        if (!st.ok()) pipe.Fail(st);
      });
      arrow::Status failed;
      while (true) {
        auto chunk = pipe.Pop();
        if (!chunk.ok()) {
          failed = chunk.status();
          break;
        }
        size_t count = 0;
        if (chunk->data)
          failed = EncodeDeletedKeysRows(chunk->data, deleted, lo, hi, &encoded, &count);
        for (size_t i = 0; i < count && failed.ok(); ++i) {
          KeyValue& kv = encoded[i];
          auto [at, added] = winners.try_emplace(kv.key, kv.value);
          // Ties go to the later row, as in the store.
          if (!added &&
              kv.value.compare(0, kVersionPrefixSize, at->second, 0, kVersionPrefixSize) >= 0) {
            at->second = kv.value;
          }
        }
        if (!failed.ok() || chunk->last_of_file) break;
      }
      pipe.Stop();
      reader.join();
      ARROW_RETURN_NOT_OK(failed);
    }
    std::vector<KeyRepair> repairs;
    repairs.reserve(deleted.size());
    deleted.ForEach([&](std::string_view key, const KeyVersionTable::Prefix& bound) {
      auto it = winners.find(std::string(key));
      repairs.push_back({std::string(key), std::string(bound.data(), bound.size()),
                         it == winners.end() ? std::string() : std::move(it->second)});
    });
    // In key order: deterministic, and sequential for the store.
    std::sort(repairs.begin(), repairs.end(),
              [](const KeyRepair& a, const KeyRepair& b) { return a.key < b.key; });
    constexpr size_t kRepairBatch = 10000;
    for (size_t at = 0; at < repairs.size(); at += kRepairBatch) {
      size_t n = std::min(kRepairBatch, repairs.size() - at);
      ARROW_RETURN_NOT_OK(store_.Repair(std::span<const KeyRepair>(repairs.data() + at, n)));
    }
    out->keys_repaired += static_cast<int64_t>(repairs.size());
    return arrow::Status::OK();
  }

  arrow::Result<delta::ScanPlan> Plan(const delta::Snapshot& s, int64_t lo, int64_t hi) {
    ARROW_ASSIGN_OR_RAISE(auto filter, TimeFilter(s, lo, hi));
    return delta::PlanFiles(s, filter);
  }

  arrow::Result<std::optional<arrow::compute::Expression>> TimeFilter(const delta::Snapshot& s,
                                                                      int64_t lo, int64_t hi) {
    std::string stored = StoredName(src_, ts_col_);
    auto f = s.schema()->GetFieldByName(stored);
    if (!f) {
      return UserError(ErrorKind::kSchemaMismatch,
                       "source '" + src_.name + "' has no timestamp column '" + stored + "'");
    }
    if (f->type()->id() != arrow::Type::TIMESTAMP) return std::nullopt;
    std::string pred = "`" + stored + "` <= TIMESTAMP '" + FormatRfc3339Micros(hi) + "'";
    if (lo != INT64_MIN) {
      pred += " AND `" + stored + "` >= TIMESTAMP '" + FormatRfc3339Micros(lo) + "'";
    }
    ARROW_ASSIGN_OR_RAISE(auto e, ParseExpression(pred, *s.schema()));
    ARROW_ASSIGN_OR_RAISE(auto bound, e.Bind(*s.schema()));
    return std::optional<arrow::compute::Expression>(bound);
  }

  arrow::Status ResolveColumns(const delta::Snapshot& s) {
    auto index = [&](const std::string& mapped) -> arrow::Result<int> {
      int i = s.schema()->GetFieldIndex(StoredName(src_, mapped));
      if (i < 0) {
        return UserError(ErrorKind::kSchemaMismatch,
                         "source '" + src_.name + "' (version " + std::to_string(s.version()) +
                             ") has no column '" + StoredName(src_, mapped) +
                             "' needed by feature view '" + view_.name + "'");
      }
      return i;
    };
    fields_.clear();
    for (const auto& k : keys_) {
      ARROW_ASSIGN_OR_RAISE(int i, index(k));
      fields_.push_back(i);
    }
    ARROW_ASSIGN_OR_RAISE(int ts, index(ts_col_));
    fields_.push_back(ts);
    has_created_ = !src_.created_timestamp_field.empty();
    if (has_created_) {
      ARROW_ASSIGN_OR_RAISE(int c, index(src_.created_timestamp_field));
      fields_.push_back(c);
    }
    for (const auto& f : layout_.names) {
      ARROW_ASSIGN_OR_RAISE(int i, index(f));
      fields_.push_back(i);
    }
    return arrow::Status::OK();
  }

  // The reader thread: every file's chunks (two row groups each) in order, each
  // file's last one marked; an empty file still sends one (empty) last chunk.
  void ReadAll(const delta::DeltaTable& table, const delta::Snapshot& s,
               const std::vector<FileTask>& tasks, ChunkPipe* pipe) {
    for (const auto& task : tasks) {
      arrow::Status st = ReadFile(table, s, task, pipe);
      if (!st.ok()) return pipe->Fail(st);
      if (pipe->stopped()) return;
    }
  }

  arrow::Status ReadFile(const delta::DeltaTable& table, const delta::Snapshot& s,
                         const FileTask& task, ChunkPipe* pipe) {
    ARROW_ASSIGN_OR_RAISE(auto filter, TimeFilter(s, task.lo_us, task.hi_us));
    ARROW_ASSIGN_OR_RAISE(auto to_read, delta::PlanColumns(s, fields_, filter));
    int groups = 1;
    if (!task.file.deletion_vector) {
      ARROW_ASSIGN_OR_RAISE(groups, delta::CountRowGroups(*table.filesystem(), s, task.file));
    }
    const int kRowGroupsPerRead = 2;
    const int end = std::max(groups, 1);
    for (int first = 0; first < end; first += kRowGroupsPerRead) {
      delta::FileReadOptions fo;
      fo.row_group_filter = filter;
      fo.use_threads = true;
      if (!task.file.deletion_vector) {
        fo.row_group_range = std::make_pair(first, first + kRowGroupsPerRead);
      }
      ARROW_ASSIGN_OR_RAISE(
          auto data, delta::ReadDataFile(*table.filesystem(), s, task.file, to_read.needed, fo));
      if (!pipe->Push({std::move(data), first + kRowGroupsPerRead >= end})) break;
    }
    return arrow::Status::OK();
  }

  arrow::Status WriteRows(const arrow::Table& data, const FileTask& task,
                          ViewMaterialization* out) {
    size_t count = 0;  // batch_ is reused chunk after chunk: its strings keep their memory
    ARROW_RETURN_NOT_OK(EncodeViewRows(view_, src_, layout_, keys_.size(), has_created_, data,
                                       task.lo_us, task.hi_us, &batch_, &count));
    WriteOptions wo;
    wo.bulk = true;
    ARROW_RETURN_NOT_OK(store_.Write(std::span<const KeyValue>(batch_.data(), count), wo));
    out->rows_written += static_cast<int64_t>(count);
    // A deleted key that gets a row at least as new as its deleted ones is
    // right already (newer wins in the store): it needs no repair.
    // Hashes first, and each slot prefetched a few rows ahead of its lookup:
    // the table is far larger than the caches.
    if (deleted_.empty()) return arrow::Status::OK();
    hashes_.resize(count);
    for (size_t i = 0; i < count; ++i) hashes_[i] = KeyVersionTable::Hash(batch_[i].key);
    constexpr size_t kAhead = 16;
    for (size_t i = 0; i < std::min(kAhead, count); ++i) deleted_.Prefetch(hashes_[i]);
    for (size_t i = 0; i < count && !deleted_.empty(); ++i) {
      if (i + kAhead < count) deleted_.Prefetch(hashes_[i + kAhead]);
      deleted_.EraseIfNotNewerThan(batch_[i].key, hashes_[i], batch_[i].value.data());
    }
    return arrow::Status::OK();
  }

  const repo::FeatureRepository& repo_;
  const registry::Definitions& defs_;
  const registry::FeatureView& view_;
  const registry::Source& src_;
  OnlineStore& store_;
  const MaterializeOptions& options_;
  Layout layout_;
  std::string ts_col_;
  std::vector<std::string> keys_;
  std::vector<int> fields_;
  bool has_created_ = false;
  std::vector<KeyValue> batch_;
  // Keys whose source rows were deleted since the last run -> the newest
  // deleted version prefix; those still here after the run's writes are repaired.
  DeletedKeyMap deleted_;
  std::vector<uint64_t> hashes_;  // WriteRows: the batch's key hashes
  size_t max_repair_keys_ = 0;    // MaterializeOptions::max_repair_keys
};

}  // namespace

arrow::Status EncodeViewRows(const registry::FeatureView& view, const registry::Source& src,
                             const Layout& layout, size_t num_keys, bool has_created,
                             const arrow::Table& data, int64_t lo_us, int64_t hi_us,
                             std::vector<KeyValue>* out, size_t* count) {
  int64_t n = data.num_rows();
  if (n == 0) return arrow::Status::OK();
  auto col = [&](size_t i) -> arrow::Result<std::shared_ptr<arrow::Array>> {
    const auto& c = data.column(static_cast<int>(i));
    if (c->num_chunks() == 1) return c->chunk(0);
    return arrow::Concatenate(c->chunks());
  };
  std::vector<std::shared_ptr<arrow::Array>> key_cols;
  for (size_t k = 0; k < num_keys; ++k) {
    ARROW_ASSIGN_OR_RAISE(auto a, col(k));
    key_cols.push_back(a);
  }
  ARROW_ASSIGN_OR_RAISE(auto ts_arr, col(num_keys));
  ARROW_ASSIGN_OR_RAISE(auto ts, TimesMicros(*ts_arr));
  std::vector<int64_t> created;
  std::shared_ptr<arrow::Array> created_arr;
  size_t next = num_keys + 1;
  if (has_created) {
    ARROW_ASSIGN_OR_RAISE(created_arr, col(next++));
    ARROW_ASSIGN_OR_RAISE(created, TimesMicros(*created_arr));
  }
  std::vector<std::shared_ptr<arrow::Array>> feats;
  for (size_t f = 0; f < layout.names.size(); ++f) {
    ARROW_ASSIGN_OR_RAISE(auto a, col(next + f));
    if (!a->type()->Equals(*layout.types[f])) {
      arrow::compute::CastOptions co = arrow::compute::CastOptions::Safe(layout.types[f]);
      auto cast = arrow::compute::Cast(*a, layout.types[f], co);
      if (!cast.ok()) {
        return UserError(ErrorKind::kSchemaMismatch,
                         "feature '" + view.name + ":" + layout.names[f] + "' is " +
                             a->type()->ToString() + " in source '" + src.name + "' and " +
                             layout.types[f]->ToString() +
                             " in the view: " + cast.status().message());
      }
      a = *cast;
    }
    feats.push_back(a);
  }
  RowEncoder encoder(layout);
  ARROW_RETURN_NOT_OK(encoder.Validate(feats));
  if (out->size() < *count + static_cast<size_t>(n)) out->resize(*count + static_cast<size_t>(n));
  std::string prefix = ViewKeyPrefix(view.name);
  for (int64_t r = 0; r < n; ++r) {
    if (ts_arr->IsNull(r) || ts[r] < lo_us || ts[r] > hi_us) continue;
    KeyValue& kv = (*out)[*count];
    kv.key.assign(prefix);
    bool ok = true;
    for (size_t k = 0; k < num_keys && ok; ++k) {
      ARROW_ASSIGN_OR_RAISE(ok, AppendKeyFromArray(*key_cols[k], r, &kv.key));
    }
    if (!ok) continue;  // a null key never matches
    std::optional<int64_t> c;
    if (has_created && !created_arr->IsNull(r)) c = created[r];
    kv.value.clear();
    encoder.Encode(feats, r, ts[r], c, &kv.value);
    ++*count;
  }
  return arrow::Status::OK();
}

arrow::Status RecordMaterialization(const repo::FeatureRepository& repo, const std::string& view,
                                    int64_t source_version, int64_t end_us, int64_t rows_written) {
  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  if (state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry is empty; run " + Mention(Term::kApply) + " first",
                     {Term::kApply});
  }
  const auto* v = state->defs.FindFeatureView(view);
  if (!v) return UserError(ErrorKind::kFeatureNotFound, "unknown feature view '" + view + "'");
  if (!v->online) {
    return UserError(ErrorKind::kDefinitionError,
                     "feature view '" + view + "' has online: false; nothing to materialize");
  }
  Watermark w;
  w.version = source_version;
  w.end_us = end_us;
  w.layout = MakeLayout(*v).fingerprint;
  w.source = v->source;
  return reg->PutState(WatermarkKey(view),
                       FormatWatermark(w, rows_written, Clock::System()->NowMillis()));
}

arrow::Result<std::optional<MaterializationWatermark>> ReadMaterializationWatermark(
    const repo::FeatureRepository& repo, const std::string& view) {
  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  const auto* v = state->defs.FindFeatureView(view);
  if (!v) return UserError(ErrorKind::kFeatureNotFound, "unknown feature view '" + view + "'");
  ARROW_ASSIGN_OR_RAISE(auto text, reg->GetState(WatermarkKey(view)));
  if (!text) return std::nullopt;
  auto w = ParseWatermark(*text);
  if (!w) return std::nullopt;
  MaterializationWatermark out;
  out.source_version = w->version;
  out.end_us = w->end_us;
  out.source = w->source;
  out.current = w->layout == MakeLayout(*v).fingerprint && w->source == v->source;
  return out;
}

arrow::Result<MaterializeReport> Materialize(const repo::FeatureRepository& repo,
                                             OnlineStore& store,
                                             const MaterializeOptions& options) {
  if (options.max_repair_keys < 1) {
    return UserError(ErrorKind::kDefinitionError, "max_repair_keys must be at least 1");
  }
  if (options.start_us && *options.start_us > options.end_us) {
    return UserError(ErrorKind::kDefinitionError,
                     "the start " + FormatRfc3339Micros(*options.start_us) + " is after the end " +
                         FormatRfc3339Micros(options.end_us));
  }
  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  if (state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry is empty; run " + Mention(Term::kApply) + " first",
                     {Term::kApply});
  }
  const auto& defs = state->defs;
  std::vector<const registry::FeatureView*> views;
  if (options.views.empty()) {
    for (const auto& v : defs.feature_views) {
      if (v.online) views.push_back(&v);
    }
  } else {
    for (const auto& name : options.views) {
      const auto* v = defs.FindFeatureView(name);
      if (!v) {
        std::string names;
        for (const auto& fv : defs.feature_views) names += (names.empty() ? "" : ", ") + fv.name;
        return UserError(ErrorKind::kFeatureNotFound,
                         "unknown feature view '" + name + "' (feature views: " + names + ")");
      }
      if (!v->online) {
        return UserError(ErrorKind::kDefinitionError,
                         "feature view '" + name + "' has online: false; nothing to materialize");
      }
      views.push_back(v);
    }
  }
  MaterializeReport report;
  auto clock = options.clock ? options.clock : Clock::System();
  int64_t now_ms = clock->NowMillis();
  for (const auto* v : views) {
    const auto* src = defs.FindSource(v->source);
    if (!src) {
      return UserError(ErrorKind::kObjectNotFound,
                       "feature view '" + v->name + "' has an unknown source");
    }
    if (!v->aggregations.empty()) {
      // A window view: its tiles (docs/windows.md), incrementally from the
      // watermark when asked and possible.
      auto started = std::chrono::steady_clock::now();
      ViewMaterialization wm;
      wm.view = v->name;
      wm.source = src->name;
      wm.start_us = options.start_us.value_or(0);
      wm.end_us = options.end_us;
      ARROW_ASSIGN_OR_RAISE(auto spec, retrieval::window::CompileWindows(*v));
      std::optional<std::pair<int64_t, int64_t>> since, last;
      {
        ARROW_ASSIGN_OR_RAISE(auto text, reg->GetState(WatermarkKey(v->name)));
        std::optional<Watermark> w;
        if (text) w = ParseWatermark(*text);
        if (w && w->layout == spec.fingerprint && w->source == src->name) {
          last = std::make_pair(w->version, w->end_us);
        }
      }
      if (options.incremental) since = last;
      WindowRepairLimits limits;
      limits.max_keys = options.max_window_repair_keys;
      limits.max_removed_share = options.max_window_repair_share;
      auto r = MaterializeWindowView(repo, store, defs, *v, *src, options.start_us, options.end_us,
                                     since, clock->NowMillis() * 1000, limits);
      if (!r.ok()) {
        return r.status().WithMessage("materializing '", v->name, "': ", r.status().message());
      }
      wm.rows_read = wm.rows_written = r->rows_read;
      wm.from_version = r->from_version;
      wm.to_version = r->to_version;
      wm.incremental = r->incremental;
      wm.rebuilt = r->rebuilt;
      wm.files_read = r->files_read;
      wm.files_total = r->files_total;
      wm.tiles_written = r->tiles_written;
      wm.tiles_collected = r->tiles_collected;
      wm.tiles_deleted = r->tiles_deleted;
      wm.tile_retries = r->tile_retries;
      wm.keyed_repair = r->keyed_repair;
      wm.keys_repaired = r->keys_repaired;
      wm.tiles_repaired = r->tiles_repaired;
      wm.rows_removed = r->rows_removed;
      wm.files_rewritten = r->files_rewritten;
      wm.note = r->note;
      // A backfill of a range (a start given) leaves the tiles outside it as
      // they were: the last watermark still says what they hold (the tiles of
      // the range record the backfill themselves, so a later incremental run
      // does not add its rows again).
      const bool backfill = options.start_us && !r->incremental && last;
      if (r->to_version >= 0 && !backfill) {
        ARROW_RETURN_NOT_OK(store.Sync());
        Watermark next;
        next.version = r->to_version;
        next.end_us = options.end_us;
        next.layout = spec.fingerprint;  // the tile format: a changed definition rebuilds
        next.source = src->name;
        ARROW_RETURN_NOT_OK(
            reg->PutState(WatermarkKey(v->name), FormatWatermark(next, r->rows_read, now_ms)));
      }
      wm.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      report.views.push_back(wm);
      continue;
    }
    ViewMaterializer m(repo, defs, *v, *src, store, options);
    auto r = m.Run(*reg, now_ms);
    if (!r.ok())
      return r.status().WithMessage("materializing '", v->name, "': ", r.status().message());
    // A push source's rows reach the online store by push; its table may well be empty.
    if (src->type != registry::SourceType::kPush && (r->to_version < 0 || r->files_total == 0)) {
      Warning w;
      w.code = r->to_version < 0 ? Warning::Code::kSourceMissing : Warning::Code::kSourceEmpty;
      w.view = v->name;
      w.source = src->name;
      report.warnings.push_back(std::move(w));
    }
    report.views.push_back(*r);
  }
  return report;
}

arrow::Result<TeardownReport> Teardown(const repo::FeatureRepository& repo, OnlineStore& store,
                                       const std::vector<std::string>& views) {
  ARROW_ASSIGN_OR_RAISE(auto reg, repo.registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  if (state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry is empty; run " + Mention(Term::kApply) + " first",
                     {Term::kApply});
  }
  const auto& defs = state->defs;
  TeardownReport report;
  if (views.empty()) {
    for (const auto& v : defs.feature_views) report.views.push_back(v.name);
  } else {
    for (const auto& name : views) {
      if (!defs.FindFeatureView(name)) {
        std::vector<std::string> names;
        for (const auto& fv : defs.feature_views) names.push_back(fv.name);
        return UserError(
            ErrorKind::kFeatureNotFound,
            "unknown feature view '" + name + "' (feature views: " + JoinNames(names) + ")");
      }
      report.views.push_back(name);
    }
  }
  for (const auto& name : report.views) {
    // An object without "version" reads as no watermark (ParseWatermark).
    ARROW_RETURN_NOT_OK(reg->PutState(WatermarkKey(name), "{}"));
    ARROW_RETURN_NOT_OK(store.DeletePrefix(ViewKeyPrefix(name)));
  }
  ARROW_RETURN_NOT_OK(store.Sync());
  return report;
}

}  // namespace stratalake::online
