// Readers of ingestion input files: CSV, JSON lines and Parquet, each yielding the
// rows of a file batch by batch with the 1-based line (CSV, JSON) or row (Parquet)
// number of every row, so that rejections can point at the input.
//
// Thread-safety: a reader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace stratalake::ingest {

enum class Format { kCsv, kJson, kParquet };

/// One input file, located and checked to exist.
struct InputFile {
  std::string name;  // as the caller gave it; used in messages and _source_file
  Format format = Format::kCsv;
  std::shared_ptr<arrow::fs::FileSystem> fs;
  std::string path;  // on `fs`
  int64_t size = 0;
};

/// A row of the input that could not be split into columns at all (a line that is
/// not valid JSON, a CSV record with the wrong number of fields).
struct UnreadableRow {
  int64_t line = 0;
  std::string text;    // the start of the row, for messages
  std::string reason;  // e.g. "not valid JSON"
};

struct RawBatch {
  /// Input columns as read: utf8 for CSV and JSON (the raw text; a JSON number,
  /// boolean, object or array as its JSON text), the file's own types for Parquet.
  /// Null at the end of the file. A JSON batch has the keys seen in its rows, in
  /// first-seen order.
  std::shared_ptr<arrow::RecordBatch> rows;
  std::vector<int64_t> lines;  // per row of `rows`
  /// Rows that were skipped before `rows` was formed, and those after its last row.
  std::vector<UnreadableRow> unreadable;
};

class RawReader {
 public:
  virtual ~RawReader() = default;
  /// The next batch; `rows` is null once the file is exhausted.
  virtual arrow::Result<RawBatch> Next() = 0;
};

/// Open `file` for reading. CSV: the first record is the header (line 1 when the
/// file does not start with blank lines); blank lines are skipped; quoted fields may
/// hold delimiters, doubled quotes and line breaks (a record's line is the line it
/// starts on). JSON: one object per line; blank lines are skipped.
arrow::Result<std::unique_ptr<RawReader>> OpenRawReader(const InputFile& file);

}  // namespace stratalake::ingest
