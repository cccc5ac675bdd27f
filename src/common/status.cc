#include "stratalake/status.h"

#include <algorithm>
#include <utility>

namespace stratalake {

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTableNotFound:
      return "TableNotFound";
    case ErrorKind::kTableAlreadyExists:
      return "TableAlreadyExists";
    case ErrorKind::kCorruptLog:
      return "CorruptLog";
    case ErrorKind::kUnsupportedFeature:
      return "UnsupportedFeature";
    case ErrorKind::kSchemaMismatch:
      return "SchemaMismatch";
    case ErrorKind::kConstraintViolation:
      return "ConstraintViolation";
    case ErrorKind::kConcurrentAppend:
      return "ConcurrentAppend";
    case ErrorKind::kConcurrentDeleteRead:
      return "ConcurrentDeleteRead";
    case ErrorKind::kConcurrentDeleteDelete:
      return "ConcurrentDeleteDelete";
    case ErrorKind::kMetadataChanged:
      return "MetadataChanged";
    case ErrorKind::kProtocolChanged:
      return "ProtocolChanged";
    case ErrorKind::kConcurrentTransaction:
      return "ConcurrentTransaction";
    case ErrorKind::kVersionNotFound:
      return "VersionNotFound";
    case ErrorKind::kFileNotFound:
      return "FileNotFound";
    case ErrorKind::kOperationNotAllowed:
      return "OperationNotAllowed";
    case ErrorKind::kDefinitionError:
      return "DefinitionError";
    case ErrorKind::kIncompatibleChange:
      return "IncompatibleChange";
    case ErrorKind::kRegistryConflict:
      return "RegistryConflict";
    case ErrorKind::kObjectNotFound:
      return "ObjectNotFound";
    case ErrorKind::kDataRejected:
      return "DataRejected";
    case ErrorKind::kFeatureNotFound:
      return "FeatureNotFound";
    case ErrorKind::kOnlineStoreLocked:
      return "OnlineStoreLocked";
  }
  return "Unknown";
}

const char* TermName(Term term) {
  switch (term) {
    case Term::kRepo:
      return "repo";
    case Term::kInit:
      return "init";
    case Term::kApply:
      return "apply";
    case Term::kPlan:
      return "plan";
    case Term::kMaterialize:
      return "materialize";
    case Term::kTimestampColumn:
      return "timestamp_column";
    case Term::kFullFeatureNames:
      return "full_feature_names";
    case Term::kQuarantine:
      return "quarantine";
    case Term::kMergeKeys:
      return "merge_keys";
    case Term::kWriteMergeSchema:
    case Term::kMergeMergeSchema:
      return "merge_schema";
  }
  return "unknown";
}

std::string Mention(Term term) { return std::string("`") + TermName(term) + "`"; }

const char* StrataLakeErrorDetail::type_id() const { return "stratalake::StrataLakeErrorDetail"; }

arrow::Status MakeError(arrow::StatusCode code, ErrorKind kind, std::string message) {
  return arrow::Status(code, std::move(message), std::make_shared<StrataLakeErrorDetail>(kind));
}

arrow::Status MakeError(arrow::StatusCode code, ErrorKind kind, std::string message,
                        std::vector<Term> terms) {
  return arrow::Status(code, std::move(message),
                       std::make_shared<StrataLakeErrorDetail>(kind, std::move(terms)));
}

std::string RewordMessage(const arrow::Status& status,
                          const std::function<std::string(Term)>& word) {
  std::string msg = status.message();
  const StrataLakeErrorDetail* d = GetErrorDetail(status);
  if (d == nullptr) return msg;
  for (Term t : d->terms()) {
    const std::string from = Mention(t);
    const std::string to = word(t);
    for (size_t at = msg.find(from); at != std::string::npos; at = msg.find(from, at + to.size())) {
      msg.replace(at, from.size(), to);
    }
  }
  return msg;
}

const StrataLakeErrorDetail* GetErrorDetail(const arrow::Status& status) {
  if (status.ok() || status.detail() == nullptr) return nullptr;
  if (std::string(status.detail()->type_id()) != "stratalake::StrataLakeErrorDetail")
    return nullptr;
  return static_cast<const StrataLakeErrorDetail*>(status.detail().get());
}

bool HasErrorKind(const arrow::Status& status, ErrorKind kind) {
  const auto* detail = GetErrorDetail(status);
  return detail != nullptr && detail->kind() == kind;
}

bool IsCommitConflict(const arrow::Status& status) {
  const auto* detail = GetErrorDetail(status);
  if (detail == nullptr) return false;
  switch (detail->kind()) {
    case ErrorKind::kConcurrentAppend:
    case ErrorKind::kConcurrentDeleteRead:
    case ErrorKind::kConcurrentDeleteDelete:
    case ErrorKind::kMetadataChanged:
    case ErrorKind::kProtocolChanged:
    case ErrorKind::kConcurrentTransaction:
      return true;
    default:
      return false;
  }
}

namespace {

/// Levenshtein distance between two byte strings.
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::vector<std::string> ClosestNames(const std::string& word,
                                      const std::vector<std::string>& candidates) {
  const size_t most = std::max<size_t>(2, word.size() / 2);
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d <= most) scored.emplace_back(d, c);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (const auto& [d, c] : scored) {
    if (out.size() == 3 || d > scored.front().first + 1) break;
    out.push_back(c);
  }
  return out;
}

}  // namespace stratalake
