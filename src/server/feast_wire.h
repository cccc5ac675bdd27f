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
#include <vector>

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

/// What a /get-online-features body asks beyond an online::OnlineRequest.
struct OnlineRequestExtras {
  /// "include_feature_view_version_metadata": true: the response's metadata
  /// lists the feature views answered (AppendOnlineResponse).
  bool include_view_metadata = false;
  /// Fields this server does not know: ignored, as Feast's server ignores
  /// them (the caller logs them at debug level).
  std::vector<std::string> ignored_fields;
};

/// POST /get-online-features: {"features": [...] | "feature_service": "...",
/// "entities": {"key": [values]}, "full_feature_names": bool,
/// "include_feature_view_version_metadata": bool}; a null "feature_service"
/// or "features" is absent; other fields are ignored (listed in `extras`).
/// Thread-safe; parses with per-thread buffers (no allocation for small bodies).
arrow::Status ParseOnlineRequest(std::string_view body, const RequestLimits& limits,
                                 online::OnlineRequest* out, OnlineRequestExtras* extras = nullptr);

struct PushRequest {
  std::string source;
  std::string to = "online";  // as given: online::ParsePushTarget reads it
  int64_t rows = 0;
  /// The "df" columns as text (utf8, nulls kept); the push source's declared
  /// types convert them.
  std::shared_ptr<arrow::Table> table;
};

/// POST /push: {"push_source_name": "...", "df": {"col": [values]}, "to": "..."};
/// Feast's allow_registry_cache and transform_on_write are accepted and have no
/// effect; other fields are ignored (appended to `ignored`, if given).
arrow::Result<PushRequest> ParsePushRequest(std::string_view body,
                                            std::vector<std::string>* ignored = nullptr);

struct WriteToOnlineRequest {
  std::string view;
  int64_t rows = 0;
  /// The "df" columns, typed from their JSON values: int64 (integers), double
  /// (numbers), bool, utf8 (strings, and columns mixing kinds as text), lists
  /// of those; an all-null column is utf8. online::WriteToOnlineStore converts
  /// them to the view's types.
  std::shared_ptr<arrow::Table> table;
};

/// POST /write-to-online-store (what Feast's remote online store sends for
/// FeatureStore.push and write_to_online_store): {"feature_view_name": "...",
/// "df": {"col": [values]}}; Feast's allow_registry_cache and transform_on_write
/// are accepted and have no effect; other fields are ignored (appended to
/// `ignored`, if given).
arrow::Result<WriteToOnlineRequest> ParseWriteToOnlineRequest(
    std::string_view body, std::vector<std::string>* ignored = nullptr);

/// POST /materialize (`incremental` false: start_ts required, unless
/// "disable_event_timestamp": true, which means from the beginning of time to
/// `now_us`) and /materialize-incremental: {"start_ts": ISO, "end_ts": ISO,
/// "feature_views": [...] | null (every view)}. "full_feature_names" is
/// accepted and has no effect; a non-null "version" is refused (no feature view
/// versions here); other fields are ignored (appended to `ignored`, if given).
/// Times without a zone are UTC, as in Feast. `now_us` 0: the system clock.
arrow::Result<online::MaterializeOptions> ParseMaterializeRequest(
    std::string_view body, bool incremental, int64_t now_us = 0,
    std::vector<std::string>* ignored = nullptr);

/// {"error": "<message>"}, the message escaped: valid JSON whatever its bytes.
std::string ErrorJson(std::string_view message);

// ---- errors as Feast's server sends them ------------------------------------------------
//
// Feast's server answers an error with a JSON string that holds
// {"module": "feast.errors", "class": "<exception class>", "message": "..."};
// Feast's client (feast.rest_error_handler) reads it back and raises that
// class with the message. Every error of this server has that shape.

/// The Feast exception class for an error of this server:
/// FeatureViewNotFoundException, FeatureServiceNotFoundException,
/// PushSourceNotFoundException, EntityNotFoundException,
/// FeastObjectNotFoundException (an unknown feature of a known view, or other
/// objects), else FeastError (the base class). Read from the error's kind and
/// the leading words of its message ("unknown feature view '...").
const char* FeastErrorClass(const arrow::Status& status);

/// The body: a JSON string literal holding {"module": "feast.errors", "class":
/// `cls`, "message": `message`}, formatted as Feast's server does (Python's
/// json.dumps inside, JSON-encoded again); valid JSON whatever the bytes.
std::string FeastErrorJson(std::string_view cls, std::string_view message);

// ---- responses ------------------------------------------------------------------------

// AppendOnlineResponse and AppendFieldJson (the response body, one stored
// value): declared in stratalake/server.h, defined in feast_wire.cc.

/// Appends the elements of a JSON list (comma-separated, no brackets): for each
/// row, the encoded field `values[r]` as AppendFieldJson writes it when
/// `statuses[r]` is kPresent, else null. Numbers and booleans are formatted
/// straight into `out` (sized once for the list's widest text).
/// Values are written as Feast's server writes them (its
/// convert_response_to_dict), so Feast's client reads the same Python types,
/// when `feast` (the server's answers): timestamps as integer seconds since
/// the epoch (Feast's UnixTimestamp, truncated toward zero), binary as base64,
/// NaN and infinities as "NaN", "Infinity", "-Infinity", a double that is an
/// integer with ".0" (a float to Python's json, as Feast's "2.0"); dates as
/// "YYYY-MM-DD" and decimals as strings (Feast has neither). Otherwise in the
/// readable form of AppendFieldJson (stratalake/server.h).
void AppendFieldListJson(const arrow::DataType& type, std::span<const std::string_view> values,
                         std::span<const online::FeatureStatus> statuses, std::string* out,
                         bool feast = true);

/// The /get-online-features body as the server answers it: AppendOnlineResponse's
/// layout with the values in Feast's form (AppendFieldListJson), plus
/// "feature_view_metadata": [{"name": view}, ...] in its metadata (each view
/// answered, in order) when `view_metadata`.
void AppendFeastResponse(const online::OnlineResponse& resp, bool view_metadata, std::string* out);

/// Both: `feast` picks the value form.
void AppendResponse(const online::OnlineResponse& resp, bool feast, bool view_metadata,
                    std::string* out);

/// Appends `s` as a JSON string literal (quotes, escapes; bytes >= 0x80 as
/// they are: the stored feature strings were valid UTF-8 when written).
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace stratalake::server
