// Ingestion: load CSV, JSON-lines or Parquet files into a Delta table,
// converting every value to the declared schema and rejecting (with reasons)
// the rows that do not convert or fail a declared check.
//
// Contract:
//  - All input files of one call land in ONE Delta commit (or none). The target
//    commit is an append, an overwrite (the table then holds exactly the good rows,
//    even none) or a merge on `merge_keys` (update all columns when matched, insert
//    when not). A missing table is created by the load (with `partition_by`); an
//    append or merge with no good rows writes nothing (IngestReport::version -1).
//  - Columns are matched by name (case-sensitive). Input columns not in the
//    target schema are dropped and listed in IngestReport::ignored_columns.
//    Target columns missing from the input are null (a row is rejected if the
//    column is NOT NULL).
//  - A row is rejected when a value cannot be converted to the column's type
//    (e.g. "abc" for an int64, "2024-13-01" for a timestamp), when a NOT NULL
//    column is null, or when a check does not evaluate to TRUE (NULL fails; write
//    "x IS NULL OR x > 0" to allow nulls). Checks judge only rows whose values all
//    converted. The existing table's CHECK constraints (delta.constraints.NAME) are
//    checks too, named NAME. A CSV record with the wrong number of fields and a JSON
//    line that is not a JSON object are rejected rows as well ("expected 4 fields,
//    found 5", "not valid JSON", "not a JSON object").
//  - Without `quarantine`, any rejected row fails the whole load with
//    ErrorKind::kDataRejected and nothing is written; the message carries the
//    report (count, first examples with file:line, column, value and reason; counts
//    by reason when there are more rejections than examples) and says to fix the
//    rows or pass --quarantine.
//  - With `quarantine`, good rows are written to the target and rejected rows to
//    `quarantine_uri` (created on first use, new input columns added) with every
//    input column kept as text plus _source_file (string, the file as given),
//    _line (int64, 1-based line or row number in the file; for CSV the header is
//    line 1), _reason (string; every failure of the row, "; "-separated) and
//    _ingested_at (timestamp[us, UTC], options.clock). The quarantine is committed
//    first, so a failing target commit never loses rejected rows.
//  - Line numbers: JSON and CSV count physical lines, blank lines included; a CSV
//    record whose quoted field holds line breaks has the line it starts on.
//    Parquet rows are numbered from 1.
//  - Type conversion: strings parse as numbers, booleans (true/false/1/0/yes/no,
//    case-insensitive), dates (YYYY-MM-DD) and timestamps (ISO 8601 with 'T' or
//    ' ', optional fraction, 'Z' or ±hh[:mm] offsets; a value without offset is UTC,
//    a bare date is midnight UTC; epoch numbers are not guessed; digits finer than
//    the column's unit are truncated). Timestamps are stored as the declared type
//    says (the registry declares timestamp[us, tz=UTC]; inferred columns get it).
//    Numeric values narrowing out of range are rejected, never wrapped; decimals
//    must fit the declared precision and scale without rounding. In non-string
//    columns surrounding spaces are ignored and an empty value or null, NULL, NA,
//    N/A, n/a, #N/A is null; in string columns CSV text is kept as it is (an empty
//    field is ""). JSON numbers, booleans, objects and arrays read into a string
//    column as their JSON text. Parquet columns are cast (safely); a column that
//    does not cast is converted value by value so only the bad values reject rows.
//  - When `schema` is null, the existing table's schema is the target; when the
//    table does not exist either, the schema is inferred from the files: CSV and
//    JSON columns from the values of each file's first batch (int64, double,
//    boolean for true/false, date, timestamp[us, UTC], else string), Parquet's own
//    schema; columns in first-seen order, a column typed differently by two files
//    widened (int64 and double to double, date and timestamp to timestamp, else
//    string).
//  - Errors before any data is read: an input file that does not exist (IOError
//    naming it), a file whose format the extension does not tell (pass `format`),
//    merge without keys, `quarantine` without `quarantine_uri`, a check that does
//    not parse. A CSV file with invalid UTF-8 fails the load.
//  - Thread-safety: Ingest may run on several threads; concurrent loads into one
//    table are serialized by Delta's optimistic commits.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/clock.h"

namespace stratalake {

struct IngestTarget {
  std::string name;                       // shown in messages, e.g. "orders"
  std::string table_uri;                  // local path or URI of the Delta table
  std::shared_ptr<arrow::Schema> schema;  // declared schema; null = table's or inferred
  std::vector<std::string> checks;        // predicate expressions (stratalake/expression.h)
  std::vector<std::string> check_names;   // empty, or one per check ("" = unnamed); a named
                                          // check's rejections read "check `NAME` failed"
  std::vector<std::string> partition_by;  // used when the table is created
  std::string quarantine_uri;             // where --quarantine writes rejected rows
};

enum class IngestMode { kAppend, kOverwrite, kMerge };

struct IngestOptions {
  IngestMode mode = IngestMode::kAppend;
  std::vector<std::string> merge_keys;  // required for kMerge: update all on match, else insert
  bool quarantine = false;
  // "csv", "json" (JSON lines; also "jsonl", "ndjson"), "parquet"; "" = by file extension
  // (.csv; .json, .jsonl, .ndjson; .parquet, .pq)
  std::string format;
  int max_examples = 5;          // rejected-row examples kept in the report
  std::shared_ptr<Clock> clock;  // null = Clock::System()
};

struct RejectedRow {
  std::string file;  // as given to Ingest
  int64_t line = 0;
  std::string column;  // the column that did not convert or is NOT NULL; empty for
                       // a failed check or an unreadable row
  std::string value;   // offending value as text; for a failed check the values of the
                       // columns it reads ("amount=-5"); for an unreadable row its start
  std::string reason;  // e.g. "not a valid int64", "out of range for int8",
                       // "column id is NOT NULL", "check `amount >= 0` failed"
};

struct IngestReport {
  std::string table_uri;
  int64_t files = 0;
  int64_t rows_read = 0;
  int64_t rows_written = 0;
  int64_t rows_rejected = 0;
  std::vector<RejectedRow> examples;  // first failure of the first max_examples rejected rows
  // reason -> rows; a conversion failure counts as "column X: REASON", so a row
  // with several failures counts under each of them.
  std::map<std::string, int64_t> reason_counts;
  std::vector<std::string> ignored_columns;
  int64_t version = -1;        // Delta version written (-1: nothing written)
  bool created = false;        // the table was created by this load
  std::string quarantine_uri;  // set when rows were quarantined
  int64_t quarantine_version = -1;

  /// Multi-line human summary (counts, reasons, examples).
  std::string ToString() const;
};

/// Loads `files` into `target` as described above.
arrow::Result<IngestReport> Ingest(const IngestTarget& target,
                                   const std::vector<std::string>& files,
                                   const IngestOptions& options);

/// Reads a whole local JSON-lines file into a table with Arrow's JSON reader
/// (types inferred from the values), for `table write --input x.json`. Unlike
/// Ingest, a bad line fails the read: a line nested deeper than StrataLake
/// accepts (256 levels) is an Invalid error naming the file and line before
/// Arrow's parser sees it; Arrow's own errors are prefixed with the file.
arrow::Result<std::shared_ptr<arrow::Table>> ReadJsonLinesFile(const std::string& path);

}  // namespace stratalake
