// Error kinds that callers branch on. The core reports errors as arrow::Status;
// errors a caller may want to handle specifically carry a StrataLakeErrorDetail
// naming their kind. The CLI maps kinds to exit codes and the Python SDK to
// exception classes (TableNotFoundError, CommitConflictError, ...).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

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
  kOnlineStoreLocked,       // another process holds the embedded online store open
};

/// A word of a front end's vocabulary that a core message tells the user to use:
/// an option, a parameter or a command. The core speaks neutrally: it writes
/// Mention(term) ("`timestamp_column`") in the message and names the term in the
/// error's detail; each front end rewords the mentions in its own vocabulary with
/// RewordMessage (the CLI: "`--timestamp-column`"; Python: "`timestamp_column=`").
enum class Term {
  kRepo,              // where the feature repository is (CLI --repo DIR)
  kInit,              // create a feature repository (CLI `stratalake init DIR`)
  kApply,             // register the definitions (CLI `stratalake apply`)
  kPlan,              // show what apply would change (CLI `stratalake plan`)
  kMaterialize,       // load the online store (CLI `stratalake materialize`)
  kTimestampColumn,   // the entity table's time column (CLI --timestamp-column)
  kFullFeatureNames,  // prefix features with their view (CLI --full-feature-names)
  kQuarantine,        // keep rejected rows in a quarantine table (CLI --quarantine)
  kMergeKeys,         // the key columns of an ingest merge (CLI --on)
  kWriteMergeSchema,  // a write may add columns (CLI --merge-schema)
  kMergeMergeSchema,  // a merge may add columns (CLI merge --merge-schema)
};

/// The term's neutral name, e.g. "timestamp_column".
const char* TermName(Term term);

/// How the core writes `term` in a message: its neutral name in backquotes.
std::string Mention(Term term);

/// Name of the kind, e.g. "ConcurrentAppend".
const char* ErrorKindName(ErrorKind kind);

class StrataLakeErrorDetail : public arrow::StatusDetail {
 public:
  explicit StrataLakeErrorDetail(ErrorKind kind, std::vector<Term> terms = {})
      : kind_(kind), terms_(std::move(terms)) {}
  const char* type_id() const override;
  std::string ToString() const override { return ErrorKindName(kind_); }
  ErrorKind kind() const { return kind_; }
  /// The front-end terms the message mentions (see Term).
  const std::vector<Term>& terms() const { return terms_; }

 private:
  ErrorKind kind_;
  std::vector<Term> terms_;
};

/// Make a Status of `code` that carries `kind`.
arrow::Status MakeError(arrow::StatusCode code, ErrorKind kind, std::string message);

/// Make a Status of `code` that carries `kind` and whose message mentions
/// `terms` (each written as Mention(term)).
arrow::Status MakeError(arrow::StatusCode code, ErrorKind kind, std::string message,
                        std::vector<Term> terms);

/// `status.message()` with every mention of its detail's terms replaced by
/// `word(term)` (the front end's words, quotes included); the message as it is
/// when the status names no terms.
std::string RewordMessage(const arrow::Status& status,
                          const std::function<std::string(Term)>& word);

/// The kind carried by `status`, if any.
bool HasErrorKind(const arrow::Status& status, ErrorKind kind);
const StrataLakeErrorDetail* GetErrorDetail(const arrow::Status& status);

/// True for the conflict kinds (kConcurrent*, kMetadataChanged, kProtocolChanged).
bool IsCommitConflict(const arrow::Status& status);

/// "Did you mean ...?" for messages: up to three of `candidates` within
/// max(2, |word|/2) edits (Levenshtein, bytes) of `word`, nearest first (ties in
/// the candidates' order; none more than one edit behind the nearest).
std::vector<std::string> ClosestNames(const std::string& word,
                                      const std::vector<std::string>& candidates);

}  // namespace stratalake
