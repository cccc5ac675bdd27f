// Delta checkpoints: reading classic, multi-part and v2 (JSON/Parquet, with
// sidecars) checkpoints into log actions; writing classic Parquet checkpoints.
#pragma once

#include <memory>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "storage/actions.h"
#include "storage/log_store.h"
#include "stratalake/delta.h"

namespace stratalake::delta {

/// Read all parts of one checkpoint (and its sidecars). Errors name the file.
arrow::Result<LogActions> ReadCheckpoint(const LogStore& store, const std::vector<LogFile>& parts);

/// Parse the actions of a Parquet checkpoint (or sidecar) held in memory;
/// `name` is used in error messages. For fuzzing and tests.
arrow::Result<LogActions> ParseCheckpointParquet(std::shared_ptr<arrow::Buffer> bytes,
                                                 const std::string& name);

/// The schema of the checkpoints we write (readable by Spark and delta-rs).
std::shared_ptr<arrow::Schema> CheckpointSchema();

/// The checkpoint rows of `snapshot` as an Arrow table. Tombstones deleted before
/// `tombstone_cutoff_ms` are dropped (they are past delta.deletedFileRetentionDuration).
arrow::Result<std::shared_ptr<arrow::Table>> BuildCheckpointTable(const Snapshot& snapshot,
                                                                  int64_t tombstone_cutoff_ms);

/// Write `<version>.checkpoint.parquet` and `_last_checkpoint`; returns the version.
/// `now_ms` decides which tombstones have expired.
arrow::Result<int64_t> WriteCheckpoint(const LogStore& store, const Snapshot& snapshot,
                                       int64_t now_ms);

}  // namespace stratalake::delta
