// Pipelines: SQL over the repository's Delta tables and SQL transformations that
// materialize their results into Delta tables (bronze -> silver -> gold).
//
// The SQL engine is an embedded DuckDB (a pinned prebuilt libduckdb, see
// docs/pipelines.md). DuckDB never reads a Delta log: every table a query names
// is read by our Delta reader at one pinned version and handed to DuckDB as an
// Arrow C stream, so each result is reproducible from the versions it records.
// Results come back as Arrow tables.
//
// Thread-safety: a SqlEngine is used by one thread at a time. The free functions
// open their own engine and may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "stratalake/registry.h"
#include "stratalake/repo.h"

namespace stratalake::transform {

/// One in-memory DuckDB database.
class SqlEngine {
 public:
  /// Opens a fresh in-memory database (session time zone UTC).
  static arrow::Result<std::unique_ptr<SqlEngine>> Open();
  ~SqlEngine();
  SqlEngine(const SqlEngine&) = delete;
  SqlEngine& operator=(const SqlEngine&) = delete;

  /// Loads every row of `reader` (drained) into the table `schema_name.table`
  /// (the schema is created when missing). Invalid when the table exists.
  arrow::Status LoadTable(const std::string& schema_name, const std::string& table,
                          const std::shared_ptr<arrow::RecordBatchReader>& reader);

  /// Runs `sql` (one statement, or several separated by ';' of which the last
  /// gives the result) and returns the result as an Arrow table. Invalid with
  /// DuckDB's message when the query does not parse, bind or run.
  arrow::Result<std::shared_ptr<arrow::Table>> Query(const std::string& sql);

  /// The embedded DuckDB's version, e.g. "v1.5.6".
  static std::string LibraryVersion();

 private:
  struct Impl;
  explicit SqlEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The repository tables `sql` names, as paths below the offline store root
/// ("bronze/orders" for bronze.orders), sorted and unique. A name counts when it
/// is `LAYER.TABLE` outside string literals and comments, LAYER being one of the
/// offline store's layer folders (bronze, silver, gold, datasets, quarantine);
/// either part may be double-quoted. Matching is case-insensitive (names are
/// returned in lower case unless quoted).
std::vector<std::string> ReferencedTables(const std::string& sql);

/// The columns of a table with `schema` that `sql` may read, in schema order:
/// those whose name appears in it as an identifier (case-insensitively, outside
/// literals and comments), or every column when it selects `*` (`SELECT *`,
/// `t.*`, `DISTINCT *`) or COLUMNS(...). At least the first column, so that
/// `count(*)` still sees every row. Only the projected columns are read from the
/// Delta table and handed to DuckDB (projection pushdown); a superset of what
/// the query needs is harmless. Not detected: a table alias used as a struct of
/// its row (`SELECT o FROM bronze.orders o`); write `SELECT o.*` or name columns.
std::vector<std::string> ProjectedColumns(const std::string& sql, const arrow::Schema& schema);

/// The result of a query over repository tables.
struct QueryResult {
  std::shared_ptr<arrow::Table> table;
  /// Each table the query read -> the Delta version it was read at.
  std::map<std::string, int64_t> inputs;
};

/// Runs `sql` over the repository's Delta tables: only the tables it names
/// (ReferencedTables) are read, each at its latest version or at
/// `versions[path]` when given. A named table that does not exist is left to
/// DuckDB, whose error is extended with the tables the repository has.
arrow::Result<QueryResult> RunSql(const repo::FeatureRepository& repo, const std::string& sql,
                                  const std::map<std::string, int64_t>& versions = {});

// ---- transformations (the `transformations:` of the definition files) ----------

/// One transformation in dependency order, and whether it would run.
struct PlannedRun {
  std::string name;
  std::string output;  // table path, e.g. "silver/orders"
  registry::TransformMode mode = registry::TransformMode::kFullRefresh;
  std::vector<std::string> inputs;    // tables its SQL reads
  std::vector<std::string> upstream;  // transformations that write those tables
  bool stale = true;
  /// Why it would run ("never run", "bronze/orders changed: version 3 -> 5",
  /// "upstream silver_orders runs first", "query changed") or "up to date".
  std::string reason;
};

/// The transformations `names` (every one when empty) in topological order of
/// the tables they read and write, with what a run would do. Errors name the
/// definition (file:line): an unknown name, a cycle, two transformations
/// writing one table.
arrow::Result<std::vector<PlannedRun>> PlanRuns(const repo::FeatureRepository& repo,
                                                const registry::Definitions& defs,
                                                const std::vector<std::string>& names = {});

struct RunOptions {
  /// Recompute from the whole inputs even when they did not change; in append
  /// mode, replace the output's rows instead of appending.
  bool full_refresh = false;
};

struct RunResult {
  std::string name;
  std::string output;
  bool noop = false;     // inputs and query unchanged since the last run: nothing written
  int64_t version = -1;  // the output table's version after the run
  int64_t rows = 0;      // rows the query produced (0 when noop)
  std::map<std::string, int64_t> inputs;  // table -> version read
  std::string detail;                     // e.g. "merged: 2 inserted, 1 updated"
};

/// Runs one transformation: reads its inputs at their latest versions, runs its
/// SQL and lands the result in its output table as ONE Delta commit (so a run
/// killed midway leaves the table as it was). The commit records the input
/// versions and a fingerprint of the query (commitInfo.userMetadata and the
/// app transaction "stratalake.pipeline/NAME"); when neither changed since the
/// last run, the run is a no-op.
///
/// Incremental runs (append and merge modes over one input, query unchanged):
/// when the input only gained files since the recorded version, only those rows
/// are read (appended, or upserted newest-wins). When rows of it were updated or
/// deleted, the transformation's on_change decides: recompute the whole table
/// (full_refresh), the keys those rows had or have (keys), the partitions they
/// lie in (partitions), or fail saying to use full_refresh (fail). Every
/// variant gives the table a full refresh would give, for queries that are
/// row-wise (append), key-local (merge) or partition-local (partitions); see
/// docs/pipelines.md. A query over several tables with on_change keys or
/// partitions recomputes, on every change of its inputs, the keys (partitions)
/// the changed rows of any input had or have, from every input filtered to them
/// (each input's columns for them: its input_keys, or the same names); when a
/// changed input maps to none it recomputes the whole table and says why in
/// `detail` (and PlanRuns in `reason`). With another on_change it is
/// recomputed whole.
/// Errors of the query, and a result that does not match the declared schema,
/// name the definition's file and line.
arrow::Result<RunResult> RunTransformation(const repo::FeatureRepository& repo,
                                           const registry::Definitions& defs,
                                           const std::string& name, const RunOptions& options = {});

/// A transformation's computation given as a function (Python transformations of
/// the SDK): the rows of each input for this run (table path -> rows; the whole
/// table, or what changed on an incremental run, as for SQL) -> the result.
using TableFunction = std::function<arrow::Result<std::shared_ptr<arrow::Table>>(
    const std::map<std::string, std::shared_ptr<arrow::Table>>& inputs)>;

/// RunTransformation for a transformation computed by `fn` instead of SQL:
/// `t.inputs` names the tables it reads ("bronze.orders" or "bronze/orders"),
/// `t.code_fingerprint` stands for the query in the run record (a changed
/// function reruns in full), and the modes, on_change, schema, no-op re-runs
/// and the one-commit write are those of SQL transformations. A merge's
/// deduplication (latest row per key by order_by) is applied to fn's result.
arrow::Result<RunResult> RunFunctionTransformation(const repo::FeatureRepository& repo,
                                                   const registry::Transformation& t,
                                                   const TableFunction& fn,
                                                   const RunOptions& options = {});

/// One version of a table that a transformation wrote: which tables at which
/// versions produced it (the lineage record, read back from the commit).
struct LineageEntry {
  std::string table;  // "gold/customer_value"
  int64_t version = -1;
  int64_t timestamp_ms = 0;
  std::string operation;                  // the commit's operation: WRITE, MERGE...
  std::string transformation;             // the transformation that wrote it
  std::string query;                      // fingerprint of the query (or function) and mode
  std::map<std::string, int64_t> inputs;  // table -> version read
  /// How the inputs were read: "all", "new_rows", "keys" or "partitions"; with
  /// `since` the version each input was read from (exclusive) on incremental runs.
  std::string read;
  std::map<std::string, int64_t> since;
};

/// The versions of `table` ("gold.customer_value" or "gold/customer_value")
/// written by transformations, newest first. With `upstream`, also the lineage
/// of each input at the version read, recursively (each table version once),
/// so the result is the whole graph that produced the table's latest version.
/// NotFound when the table does not exist.
arrow::Result<std::vector<LineageEntry>> Lineage(const repo::FeatureRepository& repo,
                                                 const std::string& table, bool upstream = false);

/// PlanRuns(names), then RunTransformation of each in order (a no-op where
/// nothing changed). Stops at the first failure.
arrow::Result<std::vector<RunResult>> RunPipeline(const repo::FeatureRepository& repo,
                                                  const registry::Definitions& defs,
                                                  const std::vector<std::string>& names = {},
                                                  const RunOptions& options = {});

}  // namespace stratalake::transform
