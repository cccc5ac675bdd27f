// What every read of a DeltaTable decides before it touches a data file: which
// columns (by name, case-insensitively as Delta resolves them) and which rows
// (a predicate of expression.h bound to the table's schema). Shared by
// DeltaTable::Read (one table) and DeltaTable::Scan (a stream, file by file).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "stratalake/delta.h"

namespace stratalake::delta {

/// `text` parsed and bound to `schema`; Invalid naming the predicate when it does
/// not parse or bind, or is not boolean.
arrow::Result<arrow::compute::Expression> BindPredicate(const std::string& text,
                                                        const arrow::Schema& schema);

/// Indices into `schema` of `columns` in the order given (every field when
/// unset). An exact name wins; otherwise a case-insensitive match. Invalid
/// "unknown column 'c' (columns: a, b)" for a name the schema lacks.
arrow::Result<std::vector<int>> ResolveColumns(
    const arrow::Schema& schema, const std::optional<std::vector<std::string>>& columns);

/// A reader over `files` of `snapshot` that decodes one data file at a time
/// (columns on several threads), applies `filter` (bound to the snapshot schema)
/// and yields the columns `fields` in batches of at most one file's rows.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> MakeFileByFileReader(
    std::shared_ptr<arrow::fs::FileSystem> fs, std::shared_ptr<const Snapshot> snapshot,
    std::vector<AddFile> files, std::vector<int> fields,
    std::optional<arrow::compute::Expression> filter);

}  // namespace stratalake::delta
