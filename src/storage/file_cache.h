// The local read cache of remote data files (include/stratalake/object_store.h,
// ReadCacheOptions): OpenRemoteDataFile serves an immutable data file of a
// non-local filesystem from local disk when it is cached, and otherwise fetches
// it with parallel range requests into the cache first.
//
// Thread-safety: thread-safe. Two threads missing the same file both fetch it;
// the second rename replaces the first's identical copy.
#pragma once

#include <memory>
#include <string>

#include <arrow/filesystem/filesystem.h>
#include <arrow/io/interfaces.h>

namespace stratalake {

/// The data file `path` of `fs` (not a local filesystem), from the cache when it
/// holds it (memory-mapped), else fetched into it; read remotely when the cache
/// is off or the file is too large for it. `size` > 0 (the add action's) spares
/// the request that would ask the store for it.
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenRemoteDataFile(
    arrow::fs::FileSystem& fs, const std::string& path, int64_t size = 0);

}  // namespace stratalake
