// Pipelines: SQL over the repository's Delta tables and SQL transformations that
// materialize their results into Delta tables (bronze -> silver -> gold).
//
// The SQL engine is an embedded DuckDB (a pinned prebuilt libduckdb, see
// docs/pipelines.md). DuckDB never reads a Delta log: every table a query names
// is read by our Delta reader at one pinned version and handed to DuckDB as
// Arrow arrays while the query runs (a table function over our scan: no copy
// into DuckDB, only the columns the query uses, row groups on DuckDB's threads),
// so each result is reproducible from the versions it records. Results come back
// as Arrow tables.
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

#include "stratalake/delta.h"
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

  /// Makes the rows of `reader` the table `schema_name.table` (the schema is
  /// created when missing; Invalid when the table exists). Nothing is read here:
  /// the first scan of the table reads `reader` and keeps its batches (Arrow
  /// buffers, shared, not copied) for later scans, so a query may read the table
  /// several times. An error of `reader` fails the query that reads it, and
  /// Query returns that error as it was.
  arrow::Status LoadTable(const std::string& schema_name, const std::string& table,
                          const std::shared_ptr<arrow::RecordBatchReader>& reader);

  /// Makes the Delta table `table` at `snapshot` the table
  /// `schema_name.table_name` without reading it. Every scan of it in a query
  /// reads the snapshot's data files anew (a query that reads it twice, or runs
  /// while another writer commits, sees the same rows): only the columns the
  /// query uses (DuckDB's projection pushdown), its row groups on DuckDB's
  /// threads, handed to DuckDB as Arrow arrays without a copy into the database.
  /// The data files must not be vacuumed away while queries run.
  arrow::Status AttachDeltaTable(const std::string& schema_name, const std::string& table_name,
                                 std::shared_ptr<const delta::DeltaTable> table,
                                 std::shared_ptr<const delta::Snapshot> snapshot);

  /// One scan of a table made by LoadTable or AttachDeltaTable, as it ran.
  struct ScanRecord {
    std::string table;                 // "bronze.orders"
    std::vector<std::string> columns;  // the columns read (projection pushdown)
    int64_t parts = 0;                 // pieces handed out (Delta: row groups or files)
    int64_t rows = 0;                  // rows handed to DuckDB
  };
  /// The scans of every query run so far, in the order they started.
  std::vector<ScanRecord> Scans() const;

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
/// `count(*)` still sees every row. Transformations read only these columns of
/// their inputs (RunSql needs no guess: DuckDB tells each scan its columns); a
/// superset of what the query needs is harmless. Not detected: a table alias used as a struct of
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
  /// The reason's kind, for programs: "never_run", "definition_changed" (the
  /// query, mode, keys, order_by or input_keys differ from the last run's), "inputs_changed"
  /// (an input's version moved, or it is read for the first time),
  /// "input_missing", "upstream" (an upstream transformation runs first) or
  /// "up_to_date".
  std::string cause;
};

/// The transformations `names` (every one when empty) in topological order of
/// the tables they read and write, with what a run would do. Errors name the
/// definition (file:line): an unknown name, a cycle, two transformations
/// writing one table.
arrow::Result<std::vector<PlannedRun>> PlanRuns(const repo::FeatureRepository& repo,
                                                const registry::Definitions& defs,
                                                const std::vector<std::string>& names = {});

/// The check a run makes before it writes `t`'s result of `schema`: every
/// feature view whose source reads t's output table must find each feature
/// (after the source's field_mapping) among the columns, with a type the
/// repository's compatibility policy accepts as a change from the declared
/// one (registry::ClassifyTypeChange). Every problem at once, as one
/// kDefinitionError at t's location; OK under policy `none`.
arrow::Status CheckOutputSchema(const repo::FeatureRepository& repo,
                                const registry::Definitions& defs,
                                const registry::Transformation& t, const arrow::Schema& schema);

/// The schema a run of `t` would write, known without reading a row: its
/// declared `schema`, else the result's schema of its SQL over empty inputs
/// (each input table's current columns; for a table not created yet, its
/// schema in `planned`, keyed by table path, when a transformation upstream
/// will write it). nullptr when it cannot be known yet: an input that neither
/// exists nor is planned, a query that fails on them, or no SQL.
arrow::Result<std::shared_ptr<arrow::Schema>> PredictOutputSchema(
    const repo::FeatureRepository& repo, const registry::Transformation& t,
    const std::map<std::string, std::shared_ptr<arrow::Schema>>& planned = {});

/// What `stratalake plan` shows of the pipelines beside the registry's changes.
struct PipelinePlan {
  /// Every transformation in dependency order, stale or not (PlanRuns).
  std::vector<PlannedRun> runs;
  /// Outputs that would not fit the feature views that read them
  /// (CheckOutputSchema over PredictOutputSchema): one message per
  /// transformation. `apply` refuses them, as a run would.
  std::vector<std::string> problems;
  /// "! PROBLEM" lines, then the runs `run --all` would do, in order:
  /// "Pipeline runs (`stratalake run --all`): 2 to run, 1 up to date" and one
  /// line per run "  run NAME -> TABLE (MODE): REASON". Empty when there are
  /// no transformations.
  std::string ToString() const;
  /// kIncompatibleChange listing the problems ("N incompatible change(s);
  /// nothing was applied"), or OK when there are none.
  arrow::Status Refusal() const;
};

/// PlanRuns over every transformation of `defs`, and the output schema each
/// would write checked against the feature views that read it. Reads table
/// logs and schemas only: no query runs over data and nothing is written.
/// Errors are PlanRuns' (a cycle, two writers of one table).
arrow::Result<PipelinePlan> PlanPipelines(const repo::FeatureRepository& repo,
                                          const registry::Definitions& defs);

/// Runs the function of a Python transformation of the definition files
/// (`t.python_file`, `t.python_function`, `t.kind`) on the rows of its inputs
/// for this run, in `t.inputs` order, and returns its result. An error of the
/// function comes back as Invalid with its text ("ValueError: ...").
using PythonRunner = std::function<arrow::Result<std::shared_ptr<arrow::Table>>(
    const repo::FeatureRepository& repo, const registry::Transformation& t,
    const std::vector<std::shared_ptr<arrow::Table>>& inputs)>;

struct RunOptions {
  /// Recompute from the whole inputs even when they did not change; in append
  /// mode, replace the output's rows instead of appending.
  bool full_refresh = false;
  /// How Python transformations (`python: FILE.py:FUNCTION`) are run; empty:
  /// RunPythonWorker (a subprocess). The Python SDK runs them in its process.
  PythonRunner python = nullptr;
};

/// A PythonRunner that runs the function in a Python subprocess: the
/// interpreter of $STRATALAKE_PYTHON, else `python3` on PATH, runs
/// `-m stratalake.transform_worker DIR` with the inputs written to DIR (a fresh
/// temporary folder, removed after) as Arrow IPC files; the worker imports the
/// file (the repository root on sys.path), calls the function with pandas,
/// Polars or pyarrow frames, and writes the result as an Arrow IPC file. Invalid
/// saying to install the stratalake Python package or set STRATALAKE_PYTHON when
/// the interpreter cannot be run or cannot import stratalake. The function's
/// standard output goes to this process's standard error.
arrow::Result<std::shared_ptr<arrow::Table>> RunPythonWorker(
    const repo::FeatureRepository& repo, const registry::Transformation& t,
    const std::vector<std::shared_ptr<arrow::Table>>& inputs);

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
