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

/// "a, b, c": names for a message.
inline std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace stratalake
