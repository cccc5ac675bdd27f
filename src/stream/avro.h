// Avro binary decoding for kafka sources of format avro and avro-confluent
// (registry.h, KafkaOptions): each message is one datum of a record schema,
// decoded into a JSON object (rapidjson) so that the stream then reads its
// columns exactly as it reads them from JSON messages (same types, same
// conversions, same dead-letter reasons for values that do not fit).
//
// Supported field types: null, boolean, int, long, float, double, string,
// bytes, enum (its symbol), fixed (its bytes) and unions of these; the logical
// types date (as "YYYY-MM-DD") and timestamp-millis / timestamp-micros (as
// ISO 8601 UTC text with microseconds). Records, arrays and maps inside a
// record, and references to named types, are refused when the schema is read.
//
// Thread-safety: a parsed reader is immutable; Decode may run on any thread.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <arrow/result.h>

namespace stratalake::stream {

class AvroRecordReader {
 public:
  /// Reads a record schema from its JSON text; an error says what is wrong
  /// or not supported, and where (the field).
  static arrow::Result<AvroRecordReader> Parse(const std::string& schema_json);

  /// Decodes one datum of `size` bytes into `out` (an object of every field;
  /// strings are copied into its allocator). With `confluent`, the datum
  /// follows Confluent's 5-byte header (magic byte 0, 4-byte schema id; the
  /// id is not checked). Returns "" or why the bytes are not such a datum.
  std::string Decode(const uint8_t* data, size_t size, bool confluent,
                     rapidjson::Document* out) const;

  bool HasField(const std::string& name) const;
  /// The fields' names, comma-separated (for messages).
  std::string FieldNames() const;

  struct Type {
    enum Kind {
      kNull,
      kBool,
      kInt,
      kLong,
      kFloat,
      kDouble,
      kString,
      kBytes,
      kEnum,
      kFixed,
      kUnion
    };
    enum Logical { kNone, kDate, kTimestampMillis, kTimestampMicros };
    Kind kind = kNull;
    Logical logical = kNone;
    std::vector<std::string> symbols;  // enum
    int64_t size = 0;                  // fixed
    std::vector<Type> branches;        // union
  };
  struct Field {
    std::string name;
    Type type;
  };

 private:
  std::vector<Field> fields_;
};

}  // namespace stratalake::stream
