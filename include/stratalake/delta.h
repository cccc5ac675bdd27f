// StrataLake's Delta Lake table engine: the public API.
//
// A DeltaTable is a handle on one table (a folder holding `_delta_log/` and data
// files) reached through an arrow::fs::FileSystem (local paths, file:// and s3://
// URIs). Every mutating call is one atomic commit with optimistic concurrency: the
// next log file is created with put-if-absent, and on a race the winning commits are
// checked against the Delta conflict rules — the commit is retried at the next
// version when it does not conflict, and fails with a commit-conflict error
// (see status.h) when it does.
//
// Thread-safety: a DeltaTable may be used from several threads at once; each call
// loads the snapshot it needs. Snapshots are immutable and shared.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "stratalake/clock.h"
#include "stratalake/status.h"

namespace stratalake::delta {

/// A partition value as stored in the log: nullopt is the SQL NULL.
using PartitionValues = std::map<std::string, std::optional<std::string>>;

struct Protocol {
  int32_t min_reader_version = 1;
  int32_t min_writer_version = 2;
  std::optional<std::vector<std::string>> reader_features;  // reader version 3
  std::optional<std::vector<std::string>> writer_features;  // writer version 7
  bool operator==(const Protocol&) const = default;
};

struct Metadata {
  std::string id;
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::string format_provider = "parquet";
  std::map<std::string, std::string> format_options;
  std::string schema_string;  // Delta's JSON schema
  std::vector<std::string> partition_columns;
  std::map<std::string, std::string> configuration;
  std::optional<int64_t> created_time;
  bool operator==(const Metadata&) const = default;
};

struct DeletionVector {
  std::string storage_type;  // "u", "i" or "p"
  std::string path_or_inline_dv;
  std::optional<int32_t> offset;
  int32_t size_in_bytes = 0;
  int64_t cardinality = 0;
  bool operator==(const DeletionVector&) const = default;
};

struct AddFile {
  std::string path;                  // relative (URL-encoded) or absolute URI, as in the log
  PartitionValues partition_values;  // keyed by physical column name
  int64_t size = 0;
  int64_t modification_time = 0;
  bool data_change = true;
  std::string stats;  // JSON text; empty when absent
  std::map<std::string, std::string> tags;
  std::optional<DeletionVector> deletion_vector;
  std::optional<int64_t> base_row_id;
  std::optional<int64_t> default_row_commit_version;
  std::optional<std::string> clustering_provider;
};

struct RemoveFile {
  std::string path;
  std::optional<int64_t> deletion_timestamp;
  bool data_change = true;
  std::optional<bool> extended_file_metadata;
  std::optional<PartitionValues> partition_values;
  std::optional<int64_t> size;
  std::optional<DeletionVector> deletion_vector;
  std::optional<int64_t> base_row_id;
  std::optional<int64_t> default_row_commit_version;
  std::string stats;
};

struct AppTransaction {
  std::string app_id;
  int64_t version = 0;
  std::optional<int64_t> last_updated;
};

struct DomainMetadata {
  std::string domain;
  std::string configuration;
  bool removed = false;
};

/// One entry of `history`: the commitInfo of a version (raw JSON plus the common fields).
struct CommitInfo {
  int64_t version = 0;
  int64_t timestamp = 0;  // commitInfo.timestamp (ms), or the log file's mtime
  std::string operation;
  std::map<std::string, std::string> operation_parameters;  // values as JSON text
  std::map<std::string, std::string> operation_metrics;
  std::optional<std::string> user_metadata;
  std::optional<bool> is_blind_append;
  std::optional<int64_t> read_version;
  std::string engine_info;
  std::string json;  // the whole commitInfo object
};

/// An immutable view of the table at one version. Thread-safe.
class Snapshot {
 public:
  int64_t version() const { return version_; }
  /// When this version was committed (ms since epoch): the in-commit timestamp
  /// when the table records one, else the commit file's modification time.
  int64_t timestamp_ms() const { return timestamp_ms_; }
  const std::string& table_root() const { return table_root_; }
  const Protocol& protocol() const { return protocol_; }
  const Metadata& metadata() const { return metadata_; }
  /// The table's logical schema (field metadata keeps Delta's column metadata).
  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }
  /// The live data files.
  const std::vector<AddFile>& files() const { return files_; }
  /// Removes still within the retention window (for VACUUM and checkpoints).
  const std::vector<RemoveFile>& tombstones() const { return tombstones_; }
  const std::map<std::string, AppTransaction>& app_transactions() const { return txns_; }
  const std::map<std::string, DomainMetadata>& domain_metadata() const { return domains_; }
  /// The latest committed version of `app_id`'s idempotent writes, if any.
  std::optional<int64_t> AppTransactionVersion(const std::string& app_id) const;
  /// A table property with a default.
  std::string Property(const std::string& key, const std::string& default_value) const;
  /// "none", "name" or "id".
  std::string ColumnMappingMode() const;
  int64_t NumRecords() const;  // from stats; -1 when any file lacks stats
  int64_t SizeInBytes() const;

 private:
  friend class SnapshotBuilder;
  int64_t version_ = -1;
  int64_t timestamp_ms_ = 0;
  std::string table_root_;
  Protocol protocol_;
  Metadata metadata_;
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<AddFile> files_;
  std::vector<RemoveFile> tombstones_;
  std::map<std::string, AppTransaction> txns_;
  std::map<std::string, DomainMetadata> domains_;
};

struct CreateOptions {
  std::shared_ptr<arrow::Schema> schema;
  std::vector<std::string> partition_columns;
  /// Table properties, e.g. delta.appendOnly, delta.checkpointInterval,
  /// delta.constraints.<name>, delta.logRetentionDuration.
  std::map<std::string, std::string> properties;
  std::optional<std::string> name;
  std::optional<std::string> description;
};

enum class WriteMode { kAppend, kOverwrite, kErrorIfExists, kIgnore };

struct WriteOptions {
  WriteMode mode = WriteMode::kAppend;
  /// Partition columns; used when the write creates the table, and must match the
  /// table's partition columns otherwise. Default: none / the table's.
  std::vector<std::string> partition_by;
  /// With kOverwrite: replace only the rows matching this predicate; every new row
  /// must match it too.
  std::string replace_where;
  /// Add new columns of the data (as nullable) to the table schema.
  bool merge_schema = false;
  /// With kOverwrite: replace the schema (and partitioning) too.
  bool overwrite_schema = false;
  /// Idempotent write: skipped when `txn.app_id` has already committed `txn.version`
  /// or a later one.
  std::optional<AppTransaction> txn;
  /// Properties/name/description used when the write creates the table.
  CreateOptions create;
  std::optional<std::string> user_metadata;
  /// Largest number of rows per data file. Default: 4M.
  int64_t max_rows_per_file = 4 << 20;
  /// Parquet compression codec: "snappy" (default), "zstd", "gzip", "lz4", "none".
  std::string compression = "snappy";
};

struct CommitResult {
  int64_t version = -1;
  bool noop = false;  // nothing to commit (e.g. idempotent replay, delete matched nothing)
  std::map<std::string, int64_t> metrics;
};

struct ReadOptions {
  std::optional<int64_t> version;
  std::optional<int64_t> timestamp_ms;  // latest version committed at or before
  std::optional<std::vector<std::string>> columns;
  std::string filter;  // predicate language of expression.h; empty = all rows
};

struct ScanPlan {
  std::vector<AddFile> files;  // files that may hold matching rows
  int64_t total_files = 0;
  int64_t skipped_by_partition = 0;
  int64_t skipped_by_stats = 0;
};

struct MatchedClause {
  enum class Action { kUpdateAll, kUpdate, kDelete };
  Action action = Action::kUpdateAll;
  std::string condition;    // optional; over `source.x`, `target.x` (bare = target)
  std::string assignments;  // kUpdate: "col = source.col + 1, other = 'x'"
};

struct NotMatchedClause {
  std::string condition;  // optional; over source columns (bare or `source.x`)
};

struct MergeOptions {
  /// Key columns; each must exist in source and target under the same name.
  std::vector<std::string> on;
  std::vector<MatchedClause> when_matched;         // first matching clause applies
  std::vector<NotMatchedClause> when_not_matched;  // insert the source row
  bool merge_schema = false;
  /// Recorded in the commit (see WriteOptions::txn); unlike a write, a merge is
  /// not skipped when `txn.app_id` has committed `txn.version` already. With a txn,
  /// a merge that changes no row still commits (the txn and commitInfo only).
  std::optional<AppTransaction> txn;
  std::optional<std::string> user_metadata;  // commitInfo.userMetadata
};

struct VacuumOptions {
  /// Files removed longer ago than this may be deleted.
  /// Default: delta.deletedFileRetentionDuration (7 days).
  std::optional<int64_t> retention_hours;
  bool dry_run = false;
  /// Allow a retention below delta.deletedFileRetentionDuration.
  bool force = false;
};

struct VacuumResult {
  std::vector<std::string> files;  // deleted (or, on a dry run, to be deleted)
  int64_t bytes = 0;
};

struct OptimizeOptions {
  std::string where;  // restrict to partitions matching a predicate on partition columns
  /// Files smaller than this are compacted; outputs aim at this size. Default 128 MiB.
  int64_t target_size = 128LL << 20;
  std::vector<std::string> zorder_by;
};

/// Storage of one table (src/storage/log_store.h): its filesystem, root,
/// commit primitive and durability hooks.
class LogStore;

struct TableOpenOptions {
  std::shared_ptr<Clock> clock;  // default: Clock::System()
  /// The table's storage, used instead of the one `uri` names (the uri is then
  /// ignored): tests inject faults through it, benchmarks turn syncing off.
  /// Default: null (LocalLogStore for a local path, ObjectStoreLogStore else).
  std::shared_ptr<const LogStore> log_store;
  /// Sync data files, folders and the commit before a commit returns (a commit
  /// that returned survives a power cut). false skips every fsync: only for
  /// scratch tables and benchmarks measuring what syncing costs. Ignored with
  /// `log_store`.
  bool sync = true;
  /// Storage options for object stores (reserved for S3 settings).
  std::map<std::string, std::string> storage_options;
  /// Read data files that the log names by an absolute path or URI outside the
  /// table's folder (shallow clones). When false, loading a version whose live
  /// files include one fails with kOperationNotAllowed naming it. A relative path
  /// that leaves the folder through ".." is a corrupt log (kCorruptLog) and URI
  /// schemes the table's filesystem cannot read are kUnsupportedFeature, whatever
  /// this says. Default: false.
  bool allow_external_paths = false;
};

class DeltaTable;

/// One commit written from rows handed over in pieces, so that a table larger
/// than memory can be written: every Write() encodes its rows into data files at
/// once (at least one file per call; max_rows_per_file still applies), and
/// Commit() makes all of them one table version, with the same schema checks,
/// constraints, conflict rules and commit as DeltaTable::Write. Destroyed
/// before Commit() was called, it deletes the files it wrote (best effort;
/// files left behind, as after a failed commit, are never part of the table
/// and VACUUM removes them).
/// Used from one thread; the DeltaTable must outlive it.
class TableWriter {
 public:
  ~TableWriter();
  TableWriter(const TableWriter&) = delete;
  TableWriter& operator=(const TableWriter&) = delete;

  /// The schema every piece must have: the one OpenWriter was given.
  const std::shared_ptr<arrow::Schema>& input_schema() const;
  /// Write one piece's rows into new data files (not yet part of the table).
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows);
  /// Commit every piece written as one version. Once only.
  arrow::Result<CommitResult> Commit();

  struct Impl;

 private:
  friend class DeltaTable;
  explicit TableWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// One Delta table. Create with Open/Create; see the file comment for thread-safety.
class DeltaTable {
 public:
  ~DeltaTable();

  /// Open the table at `uri` (a local path, file:// or s3:// URI). Fails with
  /// kTableNotFound when there is no table there.
  static arrow::Result<std::unique_ptr<DeltaTable>> Open(const std::string& uri,
                                                         TableOpenOptions options = {});
  /// A handle for `uri` whether or not a table exists there yet (for writes that
  /// create the table).
  static arrow::Result<std::unique_ptr<DeltaTable>> ForPath(const std::string& uri,
                                                            TableOpenOptions options = {});
  /// Create a new, empty table (version 0). Fails with kTableAlreadyExists.
  static arrow::Result<std::unique_ptr<DeltaTable>> Create(const std::string& uri,
                                                           const CreateOptions& create,
                                                           TableOpenOptions options = {});

  const std::string& root() const;
  const std::shared_ptr<arrow::fs::FileSystem>& filesystem() const;
  arrow::Result<bool> Exists() const;

  /// Latest version (listing the log). kTableNotFound if none.
  arrow::Result<std::shared_ptr<const Snapshot>> Latest() const;
  arrow::Result<std::shared_ptr<const Snapshot>> AtVersion(int64_t version) const;
  /// The latest version committed at or before `timestamp_ms`.
  arrow::Result<std::shared_ptr<const Snapshot>> AtTimestamp(int64_t timestamp_ms) const;
  arrow::Result<std::shared_ptr<const Snapshot>> Load(const ReadOptions& options) const;

  /// Files of `snapshot` that may hold rows matching `filter` (partition pruning
  /// and statistics-based skipping).
  arrow::Result<ScanPlan> PlanScan(const Snapshot& snapshot, const std::string& filter) const;
  /// Read rows into one table (projection, pruning, skipping, filter).
  arrow::Result<std::shared_ptr<arrow::Table>> Read(const ReadOptions& options) const;
  arrow::Result<std::shared_ptr<arrow::Table>> Read(const Snapshot& snapshot,
                                                    const ReadOptions& options) const;
  /// The same rows as Read, streamed: one data file is decoded at a time (its
  /// columns on several threads), so memory holds about one file, not the table.
  /// Batches come in the snapshot's file order, at most one file's rows each.
  /// Column and filter errors are returned here, before any file is read.
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Scan(const ReadOptions& options) const;
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Scan(
      std::shared_ptr<const Snapshot> snapshot, const ReadOptions& options) const;

  /// Append / overwrite / replaceWhere; creates the table when missing.
  arrow::Result<CommitResult> Write(const std::shared_ptr<arrow::Table>& data,
                                    const WriteOptions& options);
  /// The same write with its rows handed over in pieces of `schema` (see
  /// TableWriter). Mode, schema and existence checks happen here, before any
  /// rows; a replaceWhere is checked on every piece and applied at Commit().
  arrow::Result<std::unique_ptr<TableWriter>> OpenWriter(
      const std::shared_ptr<arrow::Schema>& schema, const WriteOptions& options);
  /// Delete the rows matching `predicate` (rows where it is NULL are kept).
  arrow::Result<CommitResult> Delete(const std::string& predicate);
  /// Set `assignments` on the rows matching `predicate` (empty predicate = all rows).
  arrow::Result<CommitResult> Update(const std::string& predicate, const std::string& assignments);
  /// Upsert `source` into the table on key columns.
  arrow::Result<CommitResult> Merge(const std::shared_ptr<arrow::Table>& source,
                                    const MergeOptions& options);
  /// Newest first; `limit` 0 = all.
  arrow::Result<std::vector<CommitInfo>> History(int64_t limit = 0) const;
  /// Make the latest version's content equal to `version`'s (one new commit).
  arrow::Result<CommitResult> Restore(int64_t version);
  arrow::Result<CommitResult> RestoreToTimestamp(int64_t timestamp_ms);
  arrow::Result<VacuumResult> Vacuum(const VacuumOptions& options);
  arrow::Result<CommitResult> Optimize(const OptimizeOptions& options);
  /// Write a classic checkpoint of the latest version; returns its version.
  arrow::Result<int64_t> Checkpoint();
  /// Delete log files older than delta.logRetentionDuration that precede a
  /// checkpoint (so every retained version still loads). Returns files deleted.
  arrow::Result<int64_t> CleanupLog();
  /// Add or replace table properties (a SET TBLPROPERTIES commit).
  arrow::Result<CommitResult> SetProperties(const std::map<std::string, std::string>& props);

  struct Impl;

 private:
  explicit DeltaTable(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Convert between Delta's JSON schema and Arrow. Delta column metadata is kept
/// in the Arrow field metadata.
arrow::Result<std::shared_ptr<arrow::Schema>> SchemaFromDeltaJson(const std::string& json);
arrow::Result<std::string> SchemaToDeltaJson(const arrow::Schema& schema);

/// Delta's name for a type, e.g. "long", "decimal(10,2)", "struct<a:int>".
std::string DeltaTypeName(const arrow::DataType& type);

/// A schema written as text, "id:long not null,name:string,amount:decimal(10,2)":
/// comma-separated NAME:TYPE entries (commas inside parentheses belong to the
/// type), TYPE a Delta primitive type name, optionally followed by " not null".
/// Errors (Invalid): an entry without ':', naming it; an unknown type, naming
/// the column and listing the types.
arrow::Result<std::shared_ptr<arrow::Schema>> ParseSchemaSpec(const std::string& spec);

/// A point in time as text: milliseconds since the epoch (digits only), or
/// ISO 8601 (UTC when it has no offset). Returns ms since the epoch; Invalid
/// naming the text otherwise.
arrow::Result<int64_t> ParseTimestampText(const std::string& text);

/// Reads the commit file of `version` and parses every line of it: kCorruptLog
/// naming the file when a line is not a valid action (History() lists what it
/// can read of each commit; this says whether one is whole).
arrow::Status VerifyCommitFile(const DeltaTable& table, int64_t version);

}  // namespace stratalake::delta
