// The local read cache of remote data files (include/stratalake/object_store.h,
// ReadCacheOptions): OpenRemoteDataFile serves an immutable data file of a
// non-local filesystem from local disk when it is cached, and otherwise starts
// fetching it into the cache and returns at once: the file's bytes land in the
// cache file by parallel range requests, and reads are answered as soon as the
// ranges they need have landed (those are requested first), without waiting
// for the whole file.
//
// Thread-safety: thread-safe. Readers of a file that is being fetched (in this
// process) share the one fetch. A failed fetch leaves nothing in the cache:
// reads that needed the missing ranges fail with its error, and the next open
// fetches the file again. The bound holds at all times, counting the files
// being fetched.
#pragma once

#include <memory>
#include <string>

#include <arrow/filesystem/filesystem.h>
#include <arrow/io/interfaces.h>

namespace stratalake {

/// The data file `path` of `fs` (not a local filesystem), from the cache when it
/// holds it (memory-mapped), else being fetched into it (readable while it
/// lands); read remotely when the cache is off, the file is too large for it,
/// or the cache disk has no room. `size` > 0 (the add action's) spares
/// the request that would ask the store for it.
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenRemoteDataFile(
    arrow::fs::FileSystem& fs, const std::string& path, int64_t size = 0);

/// Whether the read cache is on (configured from the environment if it was
/// not yet): remote files are then fetched on their own threads when opened.
bool ReadCacheEnabled();

}  // namespace stratalake
