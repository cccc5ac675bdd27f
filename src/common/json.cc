#include "common/json.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace stratalake::json {

arrow::Status CheckDepth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  const char* p = text.data();
  const char* end = p + text.size();
  for (; p < end; ++p) {
    const char ch = *p;
    if (in_string) {
      if (ch == '\\') {
        ++p;  // the escaped character cannot end the string
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    switch (ch) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return arrow::Status::Invalid("JSON nested deeper than ", max_depth, " levels at byte ",
                                        p - text.data(), " (arrays and objects inside each other)");
        }
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return arrow::Status::OK();
}

namespace {

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  AppendEscaped(s.substr(0, 200), &out);
  if (s.size() > 200) out += "...";
  return out + "\"";
}

arrow::Status CheckString(std::string_view s, const ParseOptions& options, const char* what) {
  if (options.reject_nul && std::memchr(s.data(), 0, s.size()) != nullptr) {
    return arrow::Status::Invalid("a JSON ", what, " holds a NUL character (\\u0000): ", Quoted(s),
                                  "; names and values cannot contain NUL");
  }
  return arrow::Status::OK();
}

std::string_view View(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

}  // namespace

arrow::Status CheckValue(const rapidjson::Value& value, const ParseOptions& options) {
  if (value.IsString()) return CheckString(View(value), options, "string");
  if (value.IsArray()) {
    for (const auto& item : value.GetArray()) ARROW_RETURN_NOT_OK(CheckValue(item, options));
    return arrow::Status::OK();
  }
  if (!value.IsObject()) return arrow::Status::OK();
  const auto n = value.MemberCount();
  if (options.reject_duplicate_keys && n > 1) {
    auto duplicate = [](std::string_view key) {
      return arrow::Status::Invalid("the JSON key ", Quoted(key),
                                    " appears twice in one object; give each key once");
    };
    if (n <= 16) {
      // Request bodies have a handful of keys: compare pairs, allocate nothing.
      for (auto a = value.MemberBegin(); a != value.MemberEnd(); ++a) {
        for (auto b = a + 1; b != value.MemberEnd(); ++b) {
          if (View(a->name) == View(b->name)) return duplicate(View(a->name));
        }
      }
    } else {
      std::vector<std::string_view> keys;
      keys.reserve(n);
      for (const auto& m : value.GetObject()) keys.push_back(View(m.name));
      std::sort(keys.begin(), keys.end());
      auto dup = std::adjacent_find(keys.begin(), keys.end());
      if (dup != keys.end()) return duplicate(*dup);
    }
  }
  for (const auto& m : value.GetObject()) {
    ARROW_RETURN_NOT_OK(CheckString(View(m.name), options, "key"));
    ARROW_RETURN_NOT_OK(CheckValue(m.value, options));
  }
  return arrow::Status::OK();
}

std::string ParseErrorMessage(rapidjson::ParseErrorCode code, size_t offset) {
  return "malformed JSON at byte " + std::to_string(offset) + ": " +
         rapidjson::GetParseError_En(code);
}

void AppendEscaped(std::string_view text, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char ch = *p;
    if (ch < 0x80) {
      if (ch == '"' || ch == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(ch));
      } else if (ch < 0x20) {
        out->append("\\u00");
        out->push_back(kHex[ch >> 4]);
        out->push_back(kHex[ch & 15]);
      } else {
        out->push_back(static_cast<char>(ch));
      }
      ++p;
      continue;
    }
    // A multi-byte sequence: copied when it is well-formed UTF-8, else U+FFFD
    // for its first byte.
    // (0xF5..0xFF never start one.)
    int len = ch >= 0xF0 && ch <= 0xF4  ? 4
              : ch >= 0xE0 && ch < 0xF0 ? 3
              : ch >= 0xC2 && ch < 0xE0 ? 2
                                        : 0;
    bool ok = len > 0 && end - p >= len;
    for (int i = 1; ok && i < len; ++i) ok = (p[i] & 0xC0) == 0x80;
    if (ok && len == 3) {
      ok = !(ch == 0xE0 && p[1] < 0xA0) && !(ch == 0xED && p[1] >= 0xA0);  // overlong, surrogate
    } else if (ok && len == 4) {
      ok = !(ch == 0xF0 && p[1] < 0x90) && !(ch == 0xF4 && p[1] >= 0x90);  // overlong, > U+10FFFF
    }
    if (ok) {
      out->append(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
      p += len;
    } else {
      out->append("\xEF\xBF\xBD");
      ++p;
    }
  }
}

}  // namespace stratalake::json
