// Parsing untrusted JSON safely: every JSON text StrataLake reads (HTTP request
// bodies, Delta log lines, schema and stats strings, JSON-lines ingest, registry
// objects) goes through ParseJson, never through RapidJSON's Parse directly.
//
// What it adds to RapidJSON:
//  - a nesting limit checked before parsing (RapidJSON's parser, its writer and
//    our own walks of a document recurse once per level: 150k '[' would exhaust
//    any thread's stack), reported with the byte offset;
//  - UTF-8 validation (an invalid byte is an error, never echoed raw);
//  - optionally, duplicate object keys and NUL characters inside strings (or
//    keys) as errors: in a request body both are ambiguous, and C string APIs
//    would silently truncate at a NUL.
// Errors are arrow::Status::Invalid with a message that names the problem and
// the byte offset; callers prefix where the text came from.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <arrow/status.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

namespace stratalake::json {

/// Deeper than any JSON StrataLake writes or expects to read: a Delta schema
/// nests about four levels per struct, so this allows some 60 nested structs.
constexpr int kDefaultMaxDepth = 256;

struct ParseOptions {
  int max_depth = kDefaultMaxDepth;
  /// `{"a": 1, "a": 2}` is an error naming the key (RapidJSON keeps both).
  bool reject_duplicate_keys = false;
  /// A string or key holding U+0000 is an error.
  bool reject_nul = false;
};

/// The options for request bodies and other input a user typed: strict.
inline ParseOptions Strict() {
  ParseOptions o;
  o.reject_duplicate_keys = true;
  o.reject_nul = true;
  return o;
}

/// OK if no array or object in `text` is nested deeper than `max_depth`
/// (brackets inside strings do not count). Does not otherwise validate.
arrow::Status CheckDepth(std::string_view text, int max_depth);

/// OK if no object in `value` (recursively) repeats a key and, with
/// `reject_nul`, no string or key holds a NUL.
arrow::Status CheckValue(const rapidjson::Value& value, const ParseOptions& options);

/// The message for a RapidJSON parse error: "malformed JSON at byte N: reason".
std::string ParseErrorMessage(rapidjson::ParseErrorCode code, size_t offset);

/// Parses `text` into `doc` (any RapidJSON document type) with
/// kParseValidateEncodingFlag and the `extra_flags` given (e.g.
/// kParseNumbersAsStringsFlag), after CheckDepth and followed by CheckValue.
template <unsigned kExtraFlags = 0, typename Document>
arrow::Status ParseJson(Document* doc, std::string_view text,
                        const ParseOptions& options = ParseOptions()) {
  ARROW_RETURN_NOT_OK(CheckDepth(text, options.max_depth));
  doc->template Parse<rapidjson::kParseValidateEncodingFlag | kExtraFlags>(text.data(),
                                                                           text.size());
  if (doc->HasParseError()) {
    return arrow::Status::Invalid(ParseErrorMessage(doc->GetParseError(), doc->GetErrorOffset()));
  }
  if (options.reject_duplicate_keys || options.reject_nul) {
    return CheckValue(*doc, options);
  }
  return arrow::Status::OK();
}

/// Appends `text` to `out` as the inside of a JSON string: quotes, backslashes
/// and control characters escaped, invalid UTF-8 replaced by U+FFFD. What error
/// bodies use to quote user input, so that they stay valid JSON.
void AppendEscaped(std::string_view text, std::string* out);

}  // namespace stratalake::json
