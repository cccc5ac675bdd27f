// Arrow time units and integer types, the same way everywhere: timestamps are
// compared, keyed and stored as microseconds since the epoch (UTC).
#pragma once

#include <cstdint>

#include <arrow/type.h>

namespace stratalake {

/// `value` in `unit` as microseconds: seconds and milliseconds multiplied,
/// nanoseconds divided rounding down (-1 ns is -1 µs: before the epoch, as the
/// as-of join's keys and the online store's values have it).
inline int64_t UnitToMicros(arrow::TimeUnit::type unit, int64_t value) {
  switch (unit) {
    case arrow::TimeUnit::SECOND:
      return value * 1000000;
    case arrow::TimeUnit::MILLI:
      return value * 1000;
    case arrow::TimeUnit::MICRO:
      return value;
    case arrow::TimeUnit::NANO:
      return value >= 0 ? value / 1000 : -((-value + 999) / 1000);
  }
  return value;
}

/// `micros` in `unit`: the inverse of UnitToMicros (seconds and milliseconds
/// truncated toward zero, nanoseconds multiplied).
inline int64_t MicrosToUnit(arrow::TimeUnit::type unit, int64_t micros) {
  switch (unit) {
    case arrow::TimeUnit::SECOND:
      return micros / 1000000;
    case arrow::TimeUnit::MILLI:
      return micros / 1000;
    case arrow::TimeUnit::MICRO:
      return micros;
    case arrow::TimeUnit::NANO:
      return micros * 1000;
  }
  return micros;
}

/// True for the signed and unsigned integer types of 8 to 64 bits.
inline bool IsIntegerType(arrow::Type::type id) {
  switch (id) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64:
      return true;
    default:
      return false;
  }
}

}  // namespace stratalake
