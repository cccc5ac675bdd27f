// Times as text: µs since the epoch as RFC 3339 (UTC, "Z"), the form the
// Feast wire format, the CLI and error messages use.
#pragma once

#include <cstdint>
#include <string>

#include "stratalake/clock.h"

namespace stratalake {

/// Appends µs since the epoch as "2026-11-21T17:26:11.123456Z" (the fraction
/// omitted when 0; years outside 0..9999 as the C library prints them).
void AppendRfc3339Micros(int64_t us, std::string* out);
// FormatRfc3339Micros (the same as a string): declared in stratalake/clock.h.

}  // namespace stratalake
