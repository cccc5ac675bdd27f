// What the files of DeltaTable's operations share (internal to src/storage/):
// the table's state (DeltaTable::Impl) and the helpers more than one operation
// calls. Each operation lives in a file of its own:
//   table.cc               open/create, snapshots, history, restore, properties
//   table_read.cc          Read, Scan, PlanScan
//   table_write.cc         TableWriter, Write/replaceWhere, schema evolution, casts,
//                          constraints
//   table_delete_update.cc Delete, Update and the rewrite plan they share
//   merge/                 Merge (merge.h: its steps)
//   table_maintenance.cc   Vacuum, Optimize (bin-pack, Z-order), Checkpoint, CleanupLog
//
// Every function here is stateless and thread-safe; errors carry the ErrorKind
// callers branch on (status.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/table.h>

#include "storage/actions.h"
#include "storage/log_store.h"
#include "storage/snapshot.h"
#include "storage/writer.h"
#include "stratalake/clock.h"
#include "stratalake/delta.h"

namespace stratalake::delta {

struct DeltaTable::Impl {
  std::shared_ptr<arrow::fs::FileSystem> fs;
  std::shared_ptr<const LogStore> store;
  std::shared_ptr<Clock> clock;
  ExternalPaths external = ExternalPaths::kRefuse;  // TableOpenOptions::allow_external_paths

  arrow::Result<std::shared_ptr<const Snapshot>> Load(std::optional<int64_t> version) const {
    ARROW_ASSIGN_OR_RAISE(auto listing, store->List());
    return SnapshotBuilder::Load(*store, listing, version, external);
  }
};

// ---- table.cc ---------------------------------------------------------------

/// Invalid with ErrorKind::kOperationNotAllowed and `msg`.
arrow::Status NotAllowed(const std::string& msg);
/// Invalid with ErrorKind::kSchemaMismatch and `msg`.
arrow::Status SchemaMismatch(const std::string& msg);
/// `items` as a JSON array of strings.
std::string JsonList(const std::vector<std::string>& items);
/// kOperationNotAllowed naming `op` when the table has delta.appendOnly=true.
arrow::Status CheckAppendOnly(const Snapshot& s, const std::string& op);
/// ASCII case-insensitive equality (Delta column names).
bool EqualsIgnoreCase(const std::string& a, const std::string& b);
/// Whether `e` is the literal `true`.
bool IsTrue(const arrow::compute::Expression& e);
/// 0 .. schema.num_fields() - 1.
std::vector<int> AllFields(const arrow::Schema& schema);
/// The sum of the files' sizes in bytes.
int64_t SumSizes(const std::vector<AddFile>& files);
/// The lowest protocol that a table with `schema` and `props` needs
/// (timestampNtz or delta.enableDeletionVectors=true → 3/7 with those features,
/// CHECK constraints → writer 3).
Protocol ProtocolFor(const arrow::Schema& schema, const std::map<std::string, std::string>& props);
/// The protocol `current` must become to also satisfy `needed`, or nullopt when it
/// already does.
std::optional<Protocol> ProtocolUpgrade(const Protocol& current, const Protocol& needed);
/// The metadata of a new table (or of an overwrite that replaces the schema),
/// after checking properties, partition columns and duplicate column names
/// (kSchemaMismatch).
arrow::Result<Metadata> NewMetadata(const arrow::Schema& schema, const CreateOptions& create,
                                    int64_t now_ms);

// ---- table_write.cc ---------------------------------------------------------

/// `data` fitted to `table_schema`: columns in the table's order (matched by
/// name, case-insensitively as a fallback), missing nullable columns as nulls,
/// types cast safely. kSchemaMismatch for a missing NOT NULL column or values
/// that do not convert.
arrow::Result<std::shared_ptr<arrow::Table>> ConformData(const std::shared_ptr<arrow::Table>& data,
                                                         const arrow::Schema& table_schema);
/// `data` in the types a Delta table stores (timestamps to µs UTC, ...).
arrow::Result<std::shared_ptr<arrow::Table>> ToStorageTypes(
    const std::shared_ptr<arrow::Table>& data);
/// NOT NULL columns, column invariants and CHECK constraints of `md` over
/// `data`; kConstraintViolation naming the first violating row.
arrow::Status EnforceConstraints(const Metadata& md, const arrow::Schema& schema,
                                 const arrow::Table& data);
/// How data files of a table with `md` are written.
DataFileOptions FileOptions(const Metadata& md, int64_t now_ms, const std::string& compression,
                            int64_t max_rows);

// ---- table_delete_update.cc -------------------------------------------------

// The rows of `files` that do / do not match `pred`: used by delete, update and
// replaceWhere. Files the predicate fully covers are removed without being read.
struct RewritePlan {
  std::vector<AddFile> candidates;    // files that may hold matching rows
  std::vector<AddFile> remove_whole;  // every row matches
  std::vector<std::pair<AddFile, std::shared_ptr<arrow::Table>>> partial;  // file, its rows
  std::vector<std::shared_ptr<arrow::ChunkedArray>> masks;  // match mask per partial file
  int64_t matched_rows = 0;
};

/// The files of `snapshot` that `pred` (bound to its schema; nullopt: every row)
/// touches, read when the predicate does not decide a whole file by partition.
/// With `predicate_columns_only` the rows of `partial` hold only the columns
/// `pred` reads (enough for deletion vectors, not for rewriting the file).
arrow::Result<RewritePlan> PlanRewrite(arrow::fs::FileSystem& fs, const Snapshot& snapshot,
                                       const std::optional<arrow::compute::Expression>& pred,
                                       bool predicate_columns_only = false);
/// The rows of `rows` where `mask` is false (`mask` without nulls, as
/// EvaluatePredicate gives).
arrow::Result<std::shared_ptr<arrow::Table>> FilterOut(
    const std::shared_ptr<arrow::Table>& rows, const std::shared_ptr<arrow::ChunkedArray>& mask);

}  // namespace stratalake::delta
