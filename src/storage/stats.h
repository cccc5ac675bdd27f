// Per-file statistics: collected when a data file is written (numRecords,
// minValues, maxValues, nullCount — Delta's "Per-file Statistics") and used on
// read to skip files that cannot hold rows matching a filter.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>

#include <arrow/compute/expression.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/delta.h"

namespace stratalake::delta {

/// Stats JSON for `data` (the file's rows, partition columns excluded), over the
/// first `num_indexed_cols` leaf columns (-1 = all). Strings are truncated to 32
/// characters (the max gets a tie-breaker so it stays an upper bound); timestamps
/// are written with millisecond precision (readers widen the max by 1 ms).
arrow::Result<std::string> CollectStats(const arrow::Table& data, int num_indexed_cols);

/// What a file's partition values and stats guarantee about its rows, as an
/// expression over the logical schema (e.g. `(a >= 1 and a <= 9) or is_null(a)`),
/// restricted to the top-level columns in `columns`. `literal(true)` when nothing is known.
arrow::Result<arrow::compute::Expression> FileGuarantee(const Snapshot& snapshot,
                                                        const AddFile& file,
                                                        const std::set<std::string>& columns);

/// numRecords from the stats JSON, if present.
std::optional<int64_t> StatsNumRecords(const std::string& stats);

}  // namespace stratalake::delta
