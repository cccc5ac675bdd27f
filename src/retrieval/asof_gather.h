// Gathering matched feature values into output order: out[i] = the value at
// locs[i] (asof_runs.h MakeLoc) in a list of chunks. Typed loops over raw
// buffers for fixed-width, boolean and string/binary columns; other types go
// through arrow::compute::Take. Internal to src/retrieval.
//
// Thread-safety: Gather is pure and may run concurrently on different inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace stratalake::retrieval::asof {

/// out[i] = chunks[LocChunk(locs[i])][LocRow(locs[i])], or null where locs[i] is
/// kNoRow. Every chunk has type `type`. The result has one chunk, or several
/// when a 32-bit-offset string/binary column would exceed 2 GiB of values.
/// Uses up to `threads` threads.
arrow::Result<std::shared_ptr<arrow::ChunkedArray>> Gather(
    const std::shared_ptr<arrow::DataType>& type,
    const std::vector<std::shared_ptr<arrow::ArrayData>>& chunks, const uint64_t* locs, int64_t n,
    size_t threads);

}  // namespace stratalake::retrieval::asof
