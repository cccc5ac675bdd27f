// Delta schema ⇄ Arrow, partition value text ⇄ Arrow scalars, column mapping.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/delta.h"  // DeltaTypeName

namespace stratalake::delta {

/// Arrow field metadata keys carrying Delta column metadata.
inline constexpr const char* kDeltaFieldMetadataKey = "delta.metadata";  // whole JSON object
inline constexpr const char* kPhysicalNameKey = "delta.columnMapping.physicalName";
inline constexpr const char* kColumnIdKey = "delta.columnMapping.id";

/// The column's name in data files and stats: its physical name under column
/// mapping, else its logical name.
std::string PhysicalName(const arrow::Field& field, const std::string& mapping_mode);
/// The column-mapping id, if any.
std::optional<int64_t> ColumnId(const arrow::Field& field);

/// Parse a partition value (as written in the log) into a scalar of `type`.
/// nullopt and "" (for non-string types) are NULL. Timestamps without an offset
/// are UTC instants.
arrow::Result<std::shared_ptr<arrow::Scalar>> ParsePartitionValue(
    const std::optional<std::string>& value, const std::shared_ptr<arrow::DataType>& type);
/// Format a scalar as a partition value (nullopt for NULL).
arrow::Result<std::optional<std::string>> FormatPartitionValue(const arrow::Scalar& scalar);

/// The Arrow type data of `type` is stored as in a Delta table (e.g. large_utf8 →
/// utf8, timestamp[ns, tz] → timestamp[us, UTC], uint16 → int32). Errors for types
/// Delta cannot store.
arrow::Result<std::shared_ptr<arrow::DataType>> DeltaStorageType(
    const std::shared_ptr<arrow::DataType>& type);
/// The same for a whole schema (fields keep their names, nullability and metadata).
arrow::Result<std::shared_ptr<arrow::Schema>> DeltaStorageSchema(const arrow::Schema& schema);

/// DeltaTypeName: declared in stratalake/delta.h.

/// Hadoop-style escaping of a partition folder name component; URL-encoding of a
/// relative path for the log; and the reverse.
std::string EscapePartitionComponent(const std::string& s);
std::string UrlEncodePath(const std::string& path);
std::string UrlDecode(const std::string& s);

}  // namespace stratalake::delta
