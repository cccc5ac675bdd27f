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

/// Whether a snapshot may name data files outside its table (absolute paths or
/// URIs, as shallow clones do): see TableOpenOptions::allow_external_paths.
enum class ExternalPaths { kRefuse, kAllow };

class SnapshotBuilder {
 public:
  /// Load `version` (default: the latest) from the newest usable checkpoint at or
  /// before it plus the JSON commits after it. Errors: kTableNotFound,
  /// kVersionNotFound, kCorruptLog (naming the file), kUnsupportedFeature, and
  /// the errors of CheckDataFilePath for every file added. `external` defaults
  /// to kAllow for callers that open no data files (the commit's checkpoint);
  /// DeltaTable passes its open option.
  static arrow::Result<std::shared_ptr<const Snapshot>> Load(
      const LogStore& store, const LogListing& listing, std::optional<int64_t> version,
      ExternalPaths external = ExternalPaths::kAllow);
};

/// OK when a reader of the table at `table_root` (on a local filesystem when
/// `local`, else S3) may open the data file `path` that the log file `log_file`
/// names. A relative path whose ".." leaves the table is kCorruptLog; a URI
/// scheme the table's filesystem cannot read, and file://HOST/..., are
/// kUnsupportedFeature; an absolute path or URI outside the table is
/// kOperationNotAllowed unless `external` is kAllow. Messages name both files.
arrow::Status CheckDataFilePath(const std::string& table_root, bool local, const std::string& path,
                                ExternalPaths external, const std::string& log_file);

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
