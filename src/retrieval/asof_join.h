// The point-in-time ("as-of") join engine: for every entity row, the latest
// feature row with the same key whose event time is at or before the entity
// row's time (and not older than a TTL). Pure Arrow in, Arrow out; knows
// nothing about the registry or Delta (retrieval.cc feeds it).
//
// Semantics (docs/training-datasets.md has examples):
//  - match: equal keys (all key columns; a null key never matches) and
//      right_time <= left_time, and, when ttl_us > 0, right_time >= left_time - ttl_us
//      (both bounds inclusive). Times are compared as UTC instants (int64
//      microseconds; any timestamp unit or date32/date64 input is converted; a
//      timestamp without time zone is taken as UTC; nanoseconds are rounded
//      down to the microsecond, so two nanosecond times within the same
//      microsecond compare equal; values beyond the microsecond range of
//      int64 saturate). A null left time or a null right event time never
//      matches.
//  - keys: pairs of columns of the same class compare by value whatever their
//      width or encoding: integers (int8..uint64; a negative value never equals
//      a uint64 value), strings/binary (string, large_string, string_view,
//      binary, large_binary, binary_view, compared as bytes) and dates (date32,
//      date64, compared as instants). Dictionary-encoded keys compare by their
//      values. Other types, or a pair of different classes, are an error.
//  - among several matches, the largest right_time wins; ties go to the
//      largest right_created (a null created time is older than any value);
//      remaining ties go to the row that comes LAST in the order the right
//      rows were added (for Delta sources: the most recently written file).
//  - no match: the feature values are null. Left rows are never dropped or
//      reordered; duplicate left rows each get their match.
//
// Engine: every row's key is normalized once (one int64 for a single integer
// or date key; bytes otherwise) and hashed once; the hash partitions both
// sides. Each partition is sorted by (key hash, time, created, arrival) as
// fixed-size records over contiguous int64s, and one forward merge per
// partition finds every match (no per-row hash lookups of feature rows;
// byte keys with colliding hashes are told apart by their bytes). Partitions
// run in parallel (AsOfOptions::num_threads). The matched feature values are
// then gathered into entity order with typed loops over raw buffers.
//
// Memory: the right side counts as the referenced bytes of its kept columns
// (keys, times, features) plus about 48 bytes per row for its sort record.
// While that stays within memory_budget_bytes, batches are kept as they are
// (zero-copy). Beyond it, rows are hash-partitioned into Arrow IPC stream
// files in a private folder under spill_dir (64-256 partitions, written each
// time half a budget has been buffered); at Finish, partitions too large for
// their share of the budget (budget / threads, at least 256 KiB) are split
// again on further hash bits, then joined num_threads at a time and their
// results gathered into entity order. The folder is removed when Finish
// returns or the AsOfJoin is destroyed, also after an error. Rows of one key
// cannot be split: a single key with more rows than the budget is joined in
// one partition anyway. Not counted: the entity table, about 40 bytes per
// entity row, and the output. To bound those too, match the entity rows in
// slices with Match (retrieval.cc does so when the entity rows and output do
// not fit half the budget): a slice then costs its own rows, records and
// output, and the spilled partitions stay on disk between slices.
//
// The sorted-run/merge machinery (asof_runs.h: records, SortRun, MergeAsOf)
// is meant to be reused by trailing-window aggregations
// (count/sum/mean/min/max/last).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

namespace stratalake::retrieval {

/// What to join. Column names are looked up by exact name.
struct AsOfSpec {
  std::vector<std::string> left_keys;   // entity-side key columns (at least one)
  std::string left_time;                // entity-side timestamp (or date) column
  std::vector<std::string> right_keys;  // feature-side key columns, same count as left_keys
  std::string right_time;               // feature-side event timestamp (or date) column
  std::string right_created;            // optional created timestamp column ("" = none)
  int64_t ttl_us = 0;                   // 0 = unlimited; negative is an error
  std::vector<std::string> features;    // right columns to return (each once; may be keys/times)
};

struct AsOfOptions {
  /// Bytes the right side may hold in memory before partitions spill to disk
  /// (see "Memory" above). Default 0 = a quarter of physical RAM.
  int64_t memory_budget_bytes = 0;
  std::string spill_dir;  // "" = the system temp folder; a private subfolder is created and removed
  int num_threads = 0;    // 0 = all cores (CpuThreads())
};

/// Counters, final after Finish.
struct AsOfStats {
  int64_t right_rows = 0;           // rows passed to AddRight (null keys and times included)
  int64_t partitions = 0;           // partitions joined
  int64_t spilled_partitions = 0;   // partition files written (splits included); 0 = in memory
  int64_t spilled_bytes = 0;        // bytes written to partition files
  int64_t peak_buffered_bytes = 0;  // largest right-side bytes held at once, as estimated above
};

/// Streaming as-of join: add the feature rows batch by batch (they may be far
/// larger than memory), then match the entity table.
///
/// Thread-safety: not thread-safe; call it from one thread at a time (Finish
/// uses num_threads threads internally). The batches added are referenced,
/// not copied, until they are spilled or Finish returns.
class AsOfJoin {
 public:
  /// Validates the spec against `right_schema` (columns exist, time columns are
  /// timestamps/dates, key columns are of a supported type, as many left as
  /// right keys, no feature twice, ttl_us >= 0); errors name the columns.
  /// The left key types are checked against the right ones in Finish.
  static arrow::Result<std::unique_ptr<AsOfJoin>> Make(AsOfSpec spec,
                                                       std::shared_ptr<arrow::Schema> right_schema,
                                                       AsOfOptions options = {});
  virtual ~AsOfJoin() = default;

  /// Adds feature rows (in arrival order). Only key, time, created and feature
  /// columns are kept; they are found by name and must have the types of
  /// `right_schema` (other columns and column order do not matter). May spill.
  virtual arrow::Status AddRight(const std::shared_ptr<arrow::RecordBatch>& batch) = 0;

  /// Matches every row of `left` and returns the feature columns (named as in
  /// spec.features, typed as in the right schema, nullable) aligned with
  /// `left`'s rows (other columns of `left` are ignored). Key columns are
  /// compared by class (see "keys" above); an incompatible pair is an error
  /// naming both columns, as are a missing column and a left time column that
  /// is not a timestamp or date. May be called once; AddRight is an error
  /// afterwards.
  virtual arrow::Result<std::shared_ptr<arrow::Table>> Finish(const arrow::Table& left) = 0;

  /// Like Finish, for one slice of the entity rows, and repeatable: each call
  /// returns the feature columns aligned with that slice's rows, exactly as
  /// Finish would for them. The feature side is kept for further calls: in
  /// memory, or (when it spilled) as partition files split once to their share
  /// of the budget and kept until the AsOfJoin is destroyed. Each call re-sorts
  /// the in-memory feature rows or re-reads the spilled partitions that the
  /// slice's keys hash to, so slices should be large. AddRight and Finish are
  /// errors after the first call.
  virtual arrow::Result<std::shared_ptr<arrow::Table>> Match(const arrow::Table& left) = 0;

  virtual AsOfStats stats() const = 0;
};

/// The engine's default memory budget: a quarter of physical RAM.
int64_t DefaultMemoryBudget();

/// Convenience: one in-memory right table.
arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinTables(const arrow::Table& left,
                                                            const arrow::Table& right,
                                                            const AsOfSpec& spec,
                                                            const AsOfOptions& options = {});

}  // namespace stratalake::retrieval
