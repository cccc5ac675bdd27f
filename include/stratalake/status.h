// Error kinds that callers branch on. The core reports errors as arrow::Status;
// errors a caller may want to handle specifically carry a StrataLakeErrorDetail
// naming their kind. The CLI maps kinds to exit codes and the Python SDK to
// exception classes (TableNotFoundError, CommitConflictError, ...).
#pragma once

#include <memory>
#include <string>

#include <arrow/status.h>

namespace stratalake {

enum class ErrorKind {
  kTableNotFound,           // no Delta table (no _delta_log with commits) at the path
  kTableAlreadyExists,      // create/write with mode=error on an existing table
  kCorruptLog,              // a log/checkpoint file is malformed, missing or inconsistent
  kUnsupportedFeature,      // the table needs a protocol feature we do not implement
  kSchemaMismatch,          // data does not fit the table's schema
  kConstraintViolation,     // CHECK constraint, invariant or NOT NULL violated
  kConcurrentAppend,        // a concurrent commit added files this commit read
  kConcurrentDeleteRead,    // a concurrent commit removed files this commit read
  kConcurrentDeleteDelete,  // a concurrent commit removed files this commit removes
  kMetadataChanged,         // a concurrent commit changed the table's metadata
  kProtocolChanged,         // a concurrent commit changed the table's protocol
  kConcurrentTransaction,   // a concurrent commit used the same application id
  kVersionNotFound,         // time travel to a version/timestamp the log does not have
  kFileNotFound,            // a data file named by the log is missing
  kOperationNotAllowed,     // e.g. delete on an append-only table, vacuum below retention
  kDefinitionError,         // a feature-repository definition or config is invalid
  kIncompatibleChange,      // a registry change breaks the project's compatibility policy
  kRegistryConflict,        // another process committed to the registry first
  kObjectNotFound,          // no entity/source/feature view/service/saved dataset of that name
  kDataRejected,            // ingested rows failed type conversion or declared checks
  kFeatureNotFound,         // a request named an unknown feature view, feature or service
};

/// Name of the kind, e.g. "ConcurrentAppend".
const char* ErrorKindName(ErrorKind kind);

class StrataLakeErrorDetail : public arrow::StatusDetail {
 public:
  explicit StrataLakeErrorDetail(ErrorKind kind) : kind_(kind) {}
  const char* type_id() const override;
  std::string ToString() const override { return ErrorKindName(kind_); }
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

/// Make a Status of `code` that carries `kind`.
arrow::Status MakeError(arrow::StatusCode code, ErrorKind kind, std::string message);

/// The kind carried by `status`, if any.
bool HasErrorKind(const arrow::Status& status, ErrorKind kind);
const StrataLakeErrorDetail* GetErrorDetail(const arrow::Status& status);

/// True for the conflict kinds (kConcurrent*, kMetadataChanged, kProtocolChanged).
bool IsCommitConflict(const arrow::Status& status);

}  // namespace stratalake
