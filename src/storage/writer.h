// Writing data files: split rows by partition values, write Parquet files of
// bounded size in parallel, collect per-file stats, return the `add` actions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "storage/log_store.h"
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
/// the table's root, through `store.fs()`. Returns one add action per file
/// written; none for an empty table. When it returns OK every file and every
/// folder that got a new entry (the partition folders, the root) is durable
/// (LogStore::SyncFile / SyncDir), so a commit naming the files may follow.
/// On an error the message names the file and the OS reason (e.g. "No space
/// left on device (ENOSPC)"), and every file this call created is removed.
arrow::Result<std::vector<AddFile>> WriteDataFiles(const LogStore& store,
                                                   const std::shared_ptr<arrow::Table>& data,
                                                   const DataFileOptions& options);

}  // namespace stratalake::delta
