// Writing data files: split rows by partition values, write Parquet files of
// bounded size in parallel, collect per-file stats, return the `add` actions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/delta.h"

namespace stratalake::delta {

struct DataFileOptions {
  std::vector<std::string> partition_columns;
  int64_t max_rows_per_file = 4 << 20;
  std::string compression = "snappy";
  int num_indexed_cols = 32;  // delta.dataSkippingNumIndexedCols
  bool data_change = true;
  int64_t now_ms = 0;  // modificationTime of the new files
};

/// Write `data` (in the table's logical schema, partition columns included) under
/// `root`. Returns one add action per file written; none for an empty table.
arrow::Result<std::vector<AddFile>> WriteDataFiles(arrow::fs::FileSystem& fs,
                                                   const std::string& root,
                                                   const std::shared_ptr<arrow::Table>& data,
                                                   const DataFileOptions& options);

}  // namespace stratalake::delta
