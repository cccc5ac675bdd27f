// Building a Snapshot by replaying the log, and the protocol checks that guard
// reads and writes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <arrow/result.h>

#include "storage/actions.h"
#include "storage/log_store.h"
#include "stratalake/delta.h"

namespace stratalake::delta {

class SnapshotBuilder {
 public:
  /// Load `version` (default: the latest) from the newest usable checkpoint at or
  /// before it plus the JSON commits after it. Errors: kTableNotFound,
  /// kVersionNotFound, kCorruptLog (naming the file), kUnsupportedFeature.
  static arrow::Result<std::shared_ptr<const Snapshot>> Load(const LogStore& store,
                                                             const LogListing& listing,
                                                             std::optional<int64_t> version);
};

/// The version to read for a timestamp: the latest commit at or before it.
arrow::Result<int64_t> VersionAtTimestamp(const LogStore& store, const LogListing& listing,
                                          int64_t timestamp_ms);

/// Reconciliation key of a file path: percent-decoded and absolute, so
/// "file:/t/a%20b", "file:///t/a b" and "a b" (relative to /t) are the same file.
std::string CanonicalFilePath(const std::string& table_root, const std::string& path);
/// The filesystem path to read a data file named `path` in the log.
std::string DataFilePath(const std::string& table_root, const std::string& path);

/// kUnsupportedFeature unless we can read a table with this protocol.
arrow::Status CheckReadSupported(const Protocol& protocol, const std::string& table_root);
/// kUnsupportedFeature unless we can write to this table.
arrow::Status CheckWriteSupported(const Snapshot& snapshot);

/// Parse a Delta interval property ("interval 7 days", "30 days", "1 hour") to ms.
arrow::Result<int64_t> ParseIntervalMs(const std::string& text);

/// An integer table property, or `default_value` when unset or not a valid integer
/// (ValidateTableProperties refuses invalid values when they are set).
int64_t IntProperty(const Metadata& metadata, const std::string& key, int64_t default_value);

/// Check the values of the table properties StrataLake interprets
/// (delta.appendOnly, delta.checkpointInterval, delta.dataSkippingNumIndexedCols,
/// delta.logRetentionDuration, delta.deletedFileRetentionDuration,
/// delta.enableExpiredLogCleanup) and that CHECK constraints parse against `schema`.
arrow::Status ValidateTableProperties(const std::map<std::string, std::string>& properties,
                                      const arrow::Schema& schema);

}  // namespace stratalake::delta
