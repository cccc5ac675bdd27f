// The bodies of the feature server's POST endpoints, read from untrusted JSON
// into typed requests: strict (json::Strict(): nesting depth, UTF-8, duplicate
// keys and NUL characters are errors), with messages that name the field and
// say what to send. No store, registry or socket is involved, so the fuzzer
// (fuzz/fuzz_http.cc) runs them as they are.
//
// Errors: arrow::Status::Invalid (answered 400) naming the problem;
// CapacityError (answered 413) for a request over a limit, naming the limit
// and the server option that sets it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "stratalake/online.h"

namespace stratalake::server {

struct RequestLimits {
  /// Entity rows one /get-online-features request may ask for (the length of
  /// each join key's list). Default: 100,000.
  size_t max_entity_rows = 100000;
};

/// POST /get-online-features: {"features": [...] | "feature_service": "...",
/// "entities": {"key": [values]}, "full_feature_names": bool}. Thread-safe;
/// parses with per-thread buffers (no allocation for small bodies).
arrow::Status ParseOnlineRequest(std::string_view body, const RequestLimits& limits,
                                 online::OnlineRequest* out);

struct PushRequest {
  std::string source;
  std::string to = "online";  // as given: online::ParsePushTarget reads it
  int64_t rows = 0;
  /// The "df" columns as text (utf8, nulls kept); the push source's declared
  /// types convert them.
  std::shared_ptr<arrow::Table> table;
};

/// POST /push: {"push_source_name": "...", "df": {"col": [values]}, "to": "..."}.
arrow::Result<PushRequest> ParsePushRequest(std::string_view body);

/// POST /materialize (`incremental` false: start_ts required) and
/// /materialize-incremental: {"start_ts": ISO, "end_ts": ISO, "feature_views": [...]}.
arrow::Result<online::MaterializeOptions> ParseMaterializeRequest(std::string_view body,
                                                                  bool incremental);

/// {"error": "<message>"}, the message escaped: valid JSON whatever its bytes.
std::string ErrorJson(std::string_view message);

}  // namespace stratalake::server
