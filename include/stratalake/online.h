// The online store: the latest feature values per entity key, for serving.
//
// Two layers:
//  - OnlineStore: a byte-level key/value store with one rule, "newer wins":
//    every value starts with a 16-byte version prefix (event time, then created
//    time, each big-endian with the sign bit flipped, so byte order == time
//    order) and a write is applied only when its prefix is >= the stored one.
//    Implementations: RocksDB (embedded, the default; a merge operator applies
//    the rule without a read per write) and Redis (a Lua script applies it
//    atomically on the server). Equal prefixes: the later write wins, which is
//    the offline join's "row written last" rule when rows are written in the
//    source's file order.
//  - Codec: how a feature view's row becomes a key and a value (see
//    docs/online-store.md): key = view name, 0x00, then the join key values;
//    value = prefix, format byte, layout fingerprint, null bitmap, then the
//    non-null feature values in the view's Arrow types.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "stratalake/clock.h"
#include "stratalake/progress.h"
#include "stratalake/registry.h"
#include "stratalake/warnings.h"

namespace stratalake::repo {
class FeatureRepository;
}

namespace stratalake::online {

struct Layout;  // a view's (feature, type) list as stored; see src/online/codec.h

/// Bytes of the version prefix every stored value starts with.
constexpr size_t kVersionPrefixSize = 16;

/// Appends the 16-byte version prefix for (event time, created time) in µs;
/// a null created time (nullopt) sorts before every other value (it encodes
/// like INT64_MIN, which no real time reaches).
void AppendVersionPrefix(int64_t event_us, std::optional<int64_t> created_us, std::string* out);
/// Reads them back from a value (which must hold at least kVersionPrefixSize bytes).
int64_t PrefixEventMicros(std::string_view value);

struct KeyValue {
  std::string key;
  std::string value;  // starts with the version prefix
};

/// A correction for a key whose source rows were deleted (materialization):
/// when nothing is stored for `key`, or the stored value's version prefix is at
/// most `bound` (the newest prefix among the deleted rows), the key is set to
/// `value`, or removed when `value` is empty. A stored value newer than
/// `bound` was written since (a push, a later row) and is kept.
struct KeyRepair {
  std::string key;
  std::string bound;  // a version prefix: kVersionPrefixSize bytes
  std::string value;  // the replacement (starts with its own prefix), or "" to remove
};

struct WriteOptions {
  /// Bulk load (materialization): skip the write-ahead log where the backend
  /// has one; the caller must call Sync() before recording progress.
  bool bulk = false;
  /// A write that is not bulk survives a power cut once it returns OK (RocksDB:
  /// its write-ahead log is fsynced; concurrent writes share one fsync). False:
  /// it survives a killed process but may be lost at a power cut or an OS
  /// crash (benchmarks measure the difference). Redis ignores it (its
  /// appendfsync setting decides). Default: true.
  bool sync = true;
};

/// A key/value store where newer values win (see the file comment).
/// Implementations are thread-safe.
class OnlineStore {
 public:
  virtual ~OnlineStore() = default;

  /// Applies every write; each one only if its prefix is >= the stored value's
  /// (otherwise it is dropped). Values shorter than the prefix are an error
  /// (nothing is written). When this returns OK (and bulk is false) the writes
  /// are visible to reads and survive this process being killed, and, with
  /// options.sync, a power cut (Redis: its own crash safety is its
  /// appendonly/appendfsync setting). On an error some
  /// writes may have been applied (Redis; RocksDB applies a batch atomically);
  /// writing the same batch again is always safe.
  virtual arrow::Status Write(std::span<const KeyValue> writes, const WriteOptions& options) = 0;

  /// Looks up `keys`; (*values)[i] is nullopt for a key that is not stored.
  virtual arrow::Status MultiGet(std::span<const std::string_view> keys,
                                 std::vector<std::optional<std::string>>* values) = 0;

  /// As MultiGet, but a failure that concerns only some keys (Redis Cluster: a
  /// node that is down or unreachable) does not fail the call: (*errors)[i] is
  /// key i's error (naming the node) and (*values)[i] nullopt; the other keys
  /// are read. Returns an error only for what concerns every key. The default,
  /// for a store that fails as one unit (RocksDB, one Redis server), is
  /// MultiGet: its error is the call's.
  virtual arrow::Status MultiGetEach(std::span<const std::string_view> keys,
                                     std::vector<std::optional<std::string>>* values,
                                     std::vector<arrow::Status>* errors);

  /// Applies `repairs` (see KeyRepair). Each key's check and change are atomic
  /// against every other write (RocksDB: under the store's write lock, one
  /// batch; Redis: inside one script call). Durable when it returns OK, like Write.
  virtual arrow::Status Repair(std::span<const KeyRepair> repairs) = 0;

  /// Makes bulk writes durable.
  virtual arrow::Status Sync() = 0;

  /// Removes every key that starts with `prefix` (a view being dropped or
  /// rebuilt). An empty prefix is an error, never "everything".
  virtual arrow::Status DeletePrefix(std::string_view prefix) = 0;

  /// Every key starting with `prefix`, in byte order (tests, diagnostics).
  virtual arrow::Result<std::vector<KeyValue>> Scan(std::string_view prefix) = 0;

  /// Calls fn(key, version prefix) for every key starting with `prefix`, a
  /// page at a time, so memory stays bounded however many keys there are. Not
  /// a snapshot: a key written or removed during the scan may or may not be
  /// reported, and Redis may report a key twice; keys are in no set order.
  using VersionCallback = std::function<void(std::string_view key, std::string_view version)>;
  virtual arrow::Status ScanVersions(std::string_view prefix, const VersionCallback& fn) = 0;

  /// "rocksdb:/path", "redis://host:port/db" or "redis-cluster://host:port,...".
  virtual std::string Describe() const = 0;

  /// Adds SST files that OnlineSstWriter wrote, in one atomic step: all of
  /// them or none. Their entries are merge operands, so a stored value with a
  /// newer version prefix wins, as for Write. The files may overlap each
  /// other's key ranges but no key may be in two of them. They are moved into
  /// the store (copied from another file system). Durable when it returns OK.
  /// Only the embedded store has SST files: the default (Redis) returns
  /// NotImplemented.
  virtual arrow::Status IngestSstFiles(const std::vector<std::string>& files);
};

/// Opens (creating if needed) an embedded RocksDB store in `path`. One process
/// at a time may open it for writing; `read_only` opens work beside it (they
/// see what was written before they opened) and never create it.
arrow::Result<std::unique_ptr<OnlineStore>> OpenRocksDbStore(const std::string& path,
                                                             bool read_only = false);

struct RedisOptions {
  int pool_size = 4;  // connections kept open (Redis Cluster: per node)
  int connect_timeout_ms = 2000;
  /// Prepended to every key, so several projects can share one database.
  std::string key_prefix;
  /// Redis Cluster: the URL is one or more comma-separated seed nodes
  /// (redis://[[user]:password@]host[:port], database 0 only); the slot map is
  /// read from them (CLUSTER SLOTS) and followed through MOVED/ASK redirects.
  /// Keys are stored as "{TAG}" + key_prefix + key, where TAG (8 hex digits)
  /// hashes the key's bytes after its first 0x00 (the entity), so every view's
  /// value of one entity lives in one hash slot. See docs/online-store.md.
  bool cluster = false;
};
/// Connects to redis://[:password@]host[:port][/db] (or unix:///path.sock), or,
/// with options.cluster, to the Redis Cluster that the seed URL(s) belong to.
arrow::Result<std::unique_ptr<OnlineStore>> OpenRedisStore(const std::string& url,
                                                           const RedisOptions& options = {});

/// Opens the online store a repository's stratalake.yaml names (embedded:
/// RocksDB in its folder; redis: the URL, keys prefixed with the project name).
arrow::Result<std::unique_ptr<OnlineStore>> OpenRepositoryStore(const repo::FeatureRepository& repo,
                                                                bool read_only = false);

// ---- serving --------------------------------------------------------------------

/// A join key value given by a caller (JSON, CLI, Python): an integer or a string.
using KeyScalar = std::variant<std::monostate, int64_t, std::string>;

/// kUnavailable: the key could not be read because the part of the online
/// store that holds it is down (a Redis Cluster node); the response also
/// carries a kStoreUnavailable warning for the view naming the cause. Other
/// keys of the same request are read as usual.
enum class FeatureStatus { kPresent, kNullValue, kNotFound, kOutsideMaxAge, kUnavailable };
/// "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE" (Feast's names), and
/// "UNAVAILABLE" (Feast's clients read a name they do not know as INVALID).
inline const char* FeatureStatusName(FeatureStatus status) {
  switch (status) {
    case FeatureStatus::kPresent:
      return "PRESENT";
    case FeatureStatus::kNullValue:
      return "NULL_VALUE";
    case FeatureStatus::kNotFound:
      return "NOT_FOUND";
    case FeatureStatus::kOutsideMaxAge:
      return "OUTSIDE_MAX_AGE";
    case FeatureStatus::kUnavailable:
      return "UNAVAILABLE";
  }
  return "NOT_FOUND";
}

struct OnlineRequest {
  /// "view:feature" or "view" (all features); or a feature service.
  std::vector<std::string> features;
  std::string feature_service;
  bool full_feature_names = false;  // "view__feature"
  /// Column-oriented entity rows: join key name -> one value per row.
  std::vector<std::pair<std::string, std::vector<KeyScalar>>> entities;
  /// Request data for on-demand feature views (on_demand.h): request field ->
  /// one value per row, in any type that casts to the field's declared type
  /// (Feast sends them inside `entities`; integer and string request fields
  /// may also be given there). Not echoed in the response.
  std::vector<std::pair<std::string, std::shared_ptr<arrow::Array>>> request_data;
};

/// One output column: a join key (echoed) or a feature. A feature's per-row
/// spans point into the OnlineResponse that holds the column.
struct OnlineColumn {
  std::string name;
  std::string view;  // features: the view's name (or its alias in a feature service)
  bool is_join_key = false;
  std::shared_ptr<arrow::DataType> type;         // features: the view's type
  std::span<FeatureStatus> statuses;             // features only
  std::span<int64_t> event_us;                   // features only; 0 when not found
  std::span<std::string_view> values;            // features only: encoded bytes (codec.h)
  const std::vector<KeyScalar>* keys = nullptr;  // join keys: the request's values
};

/// Move-only: its columns point into its own storage.
struct OnlineResponse {
  OnlineResponse() = default;
  OnlineResponse(OnlineResponse&&) = default;
  OnlineResponse& operator=(OnlineResponse&&) = default;
  OnlineResponse(const OnlineResponse&) = delete;
  OnlineResponse& operator=(const OnlineResponse&) = delete;

  size_t rows = 0;
  std::vector<OnlineColumn> columns;  // join keys in request order, then features
  int64_t registry_version = 0;
  /// Owns the bytes `values` point into.
  std::vector<std::optional<std::string>> fetched;
  /// The storage of the features' spans (one block of `rows` per feature).
  std::vector<FeatureStatus> status_store;
  std::vector<int64_t> time_store;
  std::vector<std::string_view> value_store;
  /// The encoded values of on-demand features (what their `values` point into).
  std::vector<std::string> computed;
  /// kNotMaterialized per requested view of which no key was found and for
  /// which nothing was ever written to the online store.
  std::vector<Warning> warnings;

  /// One column per output name (features in their views' Arrow types): the
  /// `values` batch of ToArrow() as a table.
  arrow::Result<std::shared_ptr<arrow::Table>> ToTable() const;

  /// The response as typed Arrow data: three record batches of `rows` rows,
  /// each with one column per output name in `columns` order.
  struct Batches {
    /// Join keys (int64, or utf8 when any value is a string; the request's
    /// values, null where none was given), then features in their views'
    /// Arrow types; a value whose status is not PRESENT is null.
    std::shared_ptr<arrow::RecordBatch> values;
    /// Each value's status: dictionary<int8, utf8> whose dictionary is the
    /// FeatureStatusName of every FeatureStatus in enum order (join keys: PRESENT).
    std::shared_ptr<arrow::RecordBatch> statuses;
    /// Each value's event time as timestamp[us, UTC] (join keys, and features
    /// not found: 0, the epoch).
    std::shared_ptr<arrow::RecordBatch> event_timestamps;
  };
  /// Builds them; the arrays own their memory (the response may go away).
  arrow::Result<Batches> ToArrow() const;
};

/// Answers online feature requests from a store, with the registry held in
/// memory (refreshed when its version changes). Thread-safe.
class OnlineService {
 public:
  OnlineService(std::shared_ptr<registry::Registry> registry, std::shared_ptr<OnlineStore> store,
                std::shared_ptr<Clock> clock);
  ~OnlineService();

  /// The response's join key columns point into `request`: keep it alive
  /// while the response is used.
  /// Errors: unknown view/feature/service -> kObjectNotFound; a missing join
  /// key, wrong key type or ragged entity columns -> kSchemaMismatch /
  /// Invalid with a message naming the key.
  arrow::Result<OnlineResponse> Get(const OnlineRequest& request);

  OnlineStore& store() { return *store_; }
  registry::RegistryCache& registry_cache() { return cache_; }

 private:
  struct Impl;
  arrow::Result<std::shared_ptr<const Layout>> StoredLayout(const std::string& view,
                                                            uint64_t fingerprint);
  std::shared_ptr<OnlineStore> store_;
  std::shared_ptr<Clock> clock_;
  registry::RegistryCache cache_;
  std::unique_ptr<Impl> impl_;
};

// ---- materialization ---------------------------------------------------------------

struct MaterializeOptions {
  /// Event-time range, µs since the epoch, both inclusive. start: nullopt =
  /// from the beginning of time.
  std::optional<int64_t> start_us;
  int64_t end_us = 0;
  std::vector<std::string> views;  // empty = every online view
  /// Read only what was committed since the view's last run (its watermark),
  /// plus rows of older files whose event time lies after the last end.
  bool incremental = false;
  bool progress = false;  // progress line on stderr when it is a terminal
  /// Called after every chunk written; returning false cancels the run (the
  /// watermark does not move; what was written stays, and is rewritten by the
  /// next run).
  ProgressCallback on_progress;
  /// Keys of rows deleted from a source since the last run that are tracked in
  /// memory at once (about 100 bytes each). More (an overwrite of a large
  /// source) are repaired after the run's writes in passes over a share of the
  /// keys each; the view keeps serving meanwhile.
  size_t max_repair_keys = size_t{1} << 22;
  /// Window views: rows removed from the source since the last run are
  /// repaired key by key (docs/windows.md) while they touch at most this many
  /// keys and are at most `max_window_repair_share` of the table's rows;
  /// beyond either the view's range is rebuilt.
  int64_t max_window_repair_keys = 100000;
  double max_window_repair_share = 0.5;
  /// "Now" for window views' tile GC (docs/windows.md): tiles no read at now
  /// or later needs are removed. null = Clock::System().
  std::shared_ptr<Clock> clock;
};

struct ViewMaterialization {
  std::string view;
  std::string source;
  int64_t from_version = -1;  // incremental: the watermark's source version (-1: none)
  int64_t to_version = -1;    // the source version read
  int64_t start_us = 0, end_us = 0;
  bool incremental = false;  // false when a full read was needed
  int64_t files_read = 0, files_total = 0;
  int64_t rows_read = 0, rows_written = 0;
  /// Keys whose newest source rows were deleted since the last run (and not
  /// rewritten), set to their value in the source as it is now (or removed
  /// when no row is left). With repair_passes > 0, every key of the removed
  /// rows is counted (the run could not track which ones it rewrote).
  int64_t keys_repaired = 0;
  /// More deleted keys than MaterializeOptions::max_repair_keys: they were
  /// repaired after the writes in this many passes (0: none needed).
  int64_t repair_passes = 0;
  /// The deleted rows could not be known (the log or files of the last run's
  /// version are gone): the source was read in full and every key stored for
  /// the view checked against it, with its stored version as the repair
  /// bound. No key is removed first: readers keep a value until it is fixed.
  bool rebuilt = false;
  /// Window views: tiles written, tiles removed by GC, and why a run asked to
  /// be incremental was not (files removed from the source since the last run, ...).
  int64_t tiles_written = 0, tiles_collected = 0;
  /// Window views: tiles removed because their rows are gone from the source,
  /// and tile writes redone because another writer (the stream, push) changed
  /// the tile in between.
  int64_t tiles_deleted = 0, tile_retries = 0;
  /// Window views, rows removed from the source since the last run (DELETE,
  /// UPDATE, MERGE, a deletion vector): repaired key by key (keys_repaired
  /// counts the keys, tiles_repaired the tiles recomputed from the source,
  /// rows_removed the removed rows not rewritten unchanged), or, beyond the
  /// limits, `rebuilt`; `note` says which and why. files_rewritten: files
  /// rewritten with the same rows (OPTIMIZE), which change no tile.
  bool keyed_repair = false;
  int64_t tiles_repaired = 0, rows_removed = 0, files_rewritten = 0;
  std::string note;
  double seconds = 0;
};

struct MaterializeReport {
  std::vector<ViewMaterialization> views;
  /// kSourceMissing / kSourceEmpty per view whose (non-push) source had no
  /// table or no rows: nothing could be materialized for it.
  std::vector<Warning> warnings;
};

/// Reads each view's source (chunk by chunk, bounded memory), writes the rows
/// in the range to the store (newer wins, so the latest row per key stays),
/// makes them durable, then records the view's watermark in the registry
/// (key "materialize/<view>", overwritten in place). A run that crashed is
/// simply run again: writes are idempotent and the watermark only moves after
/// the data is durable.
arrow::Result<MaterializeReport> Materialize(const repo::FeatureRepository& repo,
                                             OnlineStore& store, const MaterializeOptions& options);

/// For a materialization done by another engine (the Spark engine writes the
/// winning row of every key with WriteToOnlineStore, in parallel): records the
/// view's watermark exactly as Materialize does at the end of a full run that
/// read the source at `source_version` up to `end_us`, so a later
/// `materialize_incremental` (local or Spark) continues from it. Call it only
/// once every write is durable. Errors: an empty registry, an unknown or
/// offline-only view (kFeatureNotFound / kDefinitionError).
arrow::Status RecordMaterialization(const repo::FeatureRepository& repo, const std::string& view,
                                    int64_t source_version, int64_t end_us, int64_t rows_written);

/// Writes the rows of one feature view as an SST file for the embedded store,
/// so that many writers (the Spark engine's executors, one per partition) can
/// prepare a bulk load that one process then adds with IngestOnlineSstFiles.
/// Rows are encoded exactly as WriteToOnlineStore encodes them (same columns,
/// conversions and errors); each key's entry is the newest of its rows (the
/// later added on equal versions), stored as a merge operand so that newer
/// wins against the store. Rows are kept in memory, encoded, until Finish.
/// Not thread-safe.
class OnlineSstWriter {
 public:
  /// Errors: unknown or offline-only view (as WriteToOnlineStore).
  static arrow::Result<std::unique_ptr<OnlineSstWriter>> Open(
      std::shared_ptr<const registry::RegistryState> state, const std::string& view,
      std::string path);
  ~OnlineSstWriter();

  /// Encodes `data`'s rows; returns how many.
  arrow::Result<int64_t> Add(const std::shared_ptr<arrow::Table>& data);
  /// Writes the file at the path given to Open (keys in byte order); returns
  /// the number of keys. No rows: no file is written and 0 is returned.
  arrow::Result<int64_t> Finish();

 private:
  OnlineSstWriter() = default;
  std::shared_ptr<const registry::RegistryState> state_;
  std::string view_;
  std::string path_;
  std::vector<KeyValue> writes_;
};

/// Adds the SST files OnlineSstWriter wrote for `view` to `store`: the view's
/// layout first (as Materialize writes it), then every file in one atomic
/// OnlineStore::IngestSstFiles. Errors: unknown or offline-only view; a store
/// without SST files (Redis) -> NotImplemented.
arrow::Status IngestOnlineSstFiles(const registry::RegistryState& state, OnlineStore* store,
                                   const std::string& view, const std::vector<std::string>& files);

/// A view's materialization watermark (what RecordMaterialization and
/// Materialize record), for another engine that continues from it.
struct MaterializationWatermark {
  int64_t source_version = -1;  // the source's Delta version read
  int64_t end_us = 0;           // the range's end, µs
  std::string source;           // the source it was read from
  /// The watermark was recorded for the view's current layout and source: an
  /// incremental run may continue from it (otherwise it reads everything).
  bool current = false;
};
/// The view's watermark, nullopt when none is recorded.
arrow::Result<std::optional<MaterializationWatermark>> ReadMaterializationWatermark(
    const repo::FeatureRepository& repo, const std::string& view);

/// What Teardown removed.
struct TeardownReport {
  std::vector<std::string> views;  // the feature views whose online data was removed
};

/// Feast's `teardown`: removes every online key of the registry head's feature
/// views (`views` empty) or of the named ones, and forgets their materialization
/// watermarks, so the next `materialize_incremental` starts from nothing. The
/// offline store (Delta tables) and the registry's definitions are untouched.
/// Each view's watermark is forgotten before its keys are removed: a teardown
/// that stops midway is run again, and never leaves a watermark claiming data the
/// store no longer has. Errors: an empty registry or an unknown view ->
/// kObjectNotFound / kFeatureNotFound.
arrow::Result<TeardownReport> Teardown(const repo::FeatureRepository& repo, OnlineStore& store,
                                       const std::vector<std::string>& views = {});

// ---- push ---------------------------------------------------------------------------

enum class PushTarget { kOnline, kOffline, kOnlineAndOffline };
arrow::Result<PushTarget> ParsePushTarget(const std::string& text);

struct PushResult {
  int64_t rows = 0;
  int64_t views_written = 0;             // online: feature views fed by the source
  std::optional<int64_t> delta_version;  // offline: the commit
};

/// Converts `data` to the push source's declared schema (the same rules as
/// ingestion) and writes it online (every online view on the source) and/or
/// appends it to the source's Delta table.
arrow::Result<PushResult> Push(const repo::FeatureRepository& repo,
                               const registry::RegistryState& state, OnlineStore* store,
                               const std::string& push_source,
                               const std::shared_ptr<arrow::Table>& data, PushTarget to);

/// Push's online half for the rows of a kafka source that `stratalake stream`
/// decoded (stream.h): the same conversion, every online view on the source,
/// newer wins. Other sources are refused (kDefinitionError).
arrow::Result<PushResult> WriteStreamedRows(const repo::FeatureRepository& repo,
                                            const registry::RegistryState& state,
                                            OnlineStore* store, const std::string& kafka_source,
                                            const std::shared_ptr<arrow::Table>& data);

/// The window half of WriteStreamedRows (docs/windows.md): adds a kafka
/// source's decoded rows, with their _kafka_partition and _kafka_offset
/// columns (stream.h), to the tiles of every online window view on the source.
/// A row read twice (a restart before its commit) is kept once. Returns the
/// number of window views written.
arrow::Result<int64_t> WriteStreamedWindowRows(const repo::FeatureRepository& repo,
                                               const registry::RegistryState& state,
                                               OnlineStore* store, const std::string& kafka_source,
                                               const std::shared_ptr<arrow::Table>& data);

/// Tile GC for the online window views on `source` (docs/windows.md): removes
/// at most `max_deletes` tiles that no read at `now_us` or later needs (bucket
/// end at or before now - longest window - the source's allowed lateness).
/// `stratalake stream` calls it once a minute. Returns the tiles removed.
arrow::Result<int64_t> CollectSourceWindowTiles(const registry::RegistryState& state,
                                                OnlineStore* store, const std::string& source,
                                                int64_t now_us, size_t max_deletes);

/// Writes rows straight to one feature view in the online store (Feast's
/// write_to_online_store; the feature server's POST /write-to-online-store).
/// `data` holds the view's join keys and every feature by name, the event time
/// as "event_timestamp" (Feast's name) or the source's timestamp field, and
/// optionally the created time as "created", "created_timestamp" or the
/// source's created field; other columns are ignored. Columns are converted to
/// the view's types with ingestion's rules; integers given for a timestamp are
/// seconds since the epoch (Feast's UnixTimestamp). All or nothing: a bad value
/// refuses the write and says which. Newer wins, as for every write.
/// Errors: unknown or offline-only view -> kFeatureNotFound; a missing column
/// -> kSchemaMismatch; a value that does not convert -> kDataRejected.
arrow::Result<PushResult> WriteToOnlineStore(const registry::RegistryState& state,
                                             OnlineStore* store, const std::string& view,
                                             const std::shared_ptr<arrow::Table>& data);

}  // namespace stratalake::online
