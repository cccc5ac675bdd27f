// Reading data files of a snapshot into Arrow: projection, partition values,
// column mapping (name and id), type conformance, deletion vectors, filters.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/filesystem/filesystem.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/delta.h"

namespace stratalake::delta {

/// Files of `snapshot` whose partition values and stats allow a row matching
/// `filter` (bound to the snapshot schema; nullopt = all files).
arrow::Result<ScanPlan> PlanFiles(const Snapshot& snapshot,
                                  const std::optional<arrow::compute::Expression>& filter);

struct FileReadOptions {
  /// Skip row groups whose Parquet statistics prove this filter (bound to the
  /// snapshot schema) false. The rows returned may still include non-matching rows.
  std::optional<arrow::compute::Expression> row_group_filter;
  /// Decode columns on several threads (when few files are read at once).
  bool use_threads = false;
  /// Read only row groups [first, last) of the file (combined with
  /// row_group_filter), so a big file can be read piece by piece. Ignored for
  /// files with a deletion vector, which are always read whole.
  std::optional<std::pair<int, int>> row_group_range;
  /// The file, already opened with OpenDataFile (null: ReadDataFile opens it).
  std::shared_ptr<arrow::io::RandomAccessFile> input;
};

/// The columns to read for `fields` plus those `filter` (bound to the snapshot
/// schema) needs, in that order, and the filter bound to those columns.
struct ColumnsToRead {
  std::vector<int> needed;
  std::optional<arrow::compute::Expression> row_filter;
};
arrow::Result<ColumnsToRead> PlanColumns(const Snapshot& snapshot, const std::vector<int>& fields,
                                         const std::optional<arrow::compute::Expression>& filter);

/// Opens a data file for reading: memory-mapped when local, through the read
/// cache (storage/file_cache.h) when on S3. `size` (the add action's; 0 when
/// unknown) spares an object store the request that would ask for it.
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenDataFile(arrow::fs::FileSystem& fs,
                                                                         const std::string& path,
                                                                         int64_t size);

/// The number of Parquet row groups of one data file (reads its footer).
arrow::Result<int> CountRowGroups(arrow::fs::FileSystem& fs, const Snapshot& snapshot,
                                  const AddFile& file);

/// Read one file's rows as the logical columns `fields` (indices into the snapshot
/// schema, in that order), with its deletion vector applied.
arrow::Result<std::shared_ptr<arrow::Table>> ReadDataFile(arrow::fs::FileSystem& fs,
                                                          const Snapshot& snapshot,
                                                          const AddFile& file,
                                                          const std::vector<int>& fields,
                                                          const FileReadOptions& options = {});

/// Read `files` in parallel and concatenate; keep rows where `filter` is true,
/// then project to `fields`. `filter` must be bound to the snapshot schema.
arrow::Result<std::shared_ptr<arrow::Table>> ReadFiles(
    arrow::fs::FileSystem& fs, const Snapshot& snapshot, const std::vector<AddFile>& files,
    const std::vector<int>& fields, const std::optional<arrow::compute::Expression>& filter);

/// Evaluate a bound predicate on a table; NULL counts as false.
arrow::Result<std::shared_ptr<arrow::ChunkedArray>> EvaluatePredicate(
    const arrow::compute::Expression& bound, const arrow::Table& table);

/// Evaluate a bound value expression on a table.
arrow::Result<std::shared_ptr<arrow::ChunkedArray>> EvaluateExpression(
    const arrow::compute::Expression& bound, const arrow::Table& table);

}  // namespace stratalake::delta
