// Small helpers for the errors the layers return to users (one place, not a
// copy per file).
#pragma once

#include <string>
#include <vector>

#include <arrow/status.h>

#include "stratalake/status.h"

namespace stratalake {

/// An Invalid status carrying `kind`: what a user's request or definitions got
/// wrong (unknown feature, bad entity, ...).
inline arrow::Status UserError(ErrorKind kind, const std::string& message) {
  return MakeError(arrow::StatusCode::Invalid, kind, message);
}

/// An Invalid status carrying `kind` whose message mentions `terms` (see Term).
inline arrow::Status UserError(ErrorKind kind, const std::string& message,
                               std::vector<Term> terms) {
  return MakeError(arrow::StatusCode::Invalid, kind, message, std::move(terms));
}

/// `status` (an error) naming `terms` as well: for a message built by a callee
/// from words the caller gave it.
inline arrow::Status WithTerms(const arrow::Status& status, std::vector<Term> terms) {
  const StrataLakeErrorDetail* d = GetErrorDetail(status);
  if (status.ok() || d == nullptr) return status;
  for (Term t : d->terms()) terms.push_back(t);
  return MakeError(status.code(), d->kind(), status.message(), std::move(terms));
}

/// "a, b, c": names for a message.
inline std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace stratalake
