// Feast's HTTP wire format, both directions, in one place.
//
// Requests: the bodies of the feature server's POST endpoints, read from
// untrusted JSON into typed requests: strict (json::Strict(): nesting depth,
// UTF-8, duplicate keys and NUL characters are errors), with messages that
// name the field and say what to send. No store, registry or socket is
// involved, so the fuzzer (fuzz/fuzz_http.cc) runs them as they are.
//
// Errors: arrow::Status::Invalid (answered 400) naming the problem;
// CapacityError (answered 413) for a request over a limit, naming the limit
// and the server option that sets it.
//
// Responses: an online::OnlineResponse as the /get-online-features body,
// rendered straight from the stored value bytes (online/codec.h reads them)
// into one string: numbers are formatted in place, and a view's statuses and
// times, shared by its features, are formatted once.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "stratalake/online.h"
#include "stratalake/server.h"  // AppendOnlineResponse, AppendFieldJson

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

// ---- responses ------------------------------------------------------------------------

// AppendOnlineResponse and AppendFieldJson (the response body, one stored
// value): declared in stratalake/server.h, defined in feast_wire.cc.

/// Appends the elements of a JSON list (comma-separated, no brackets): for each
/// row, the encoded field `values[r]` as AppendFieldJson writes it when
/// `statuses[r]` is kPresent, else null. Numbers and booleans are formatted
/// straight into `out` (sized once for the list's widest text).
void AppendFieldListJson(const arrow::DataType& type, std::span<const std::string_view> values,
                         std::span<const online::FeatureStatus> statuses, std::string* out);

/// Appends `s` as a JSON string literal (quotes, escapes; bytes >= 0x80 as
/// they are: the stored feature strings were valid UTF-8 when written).
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace stratalake::server
