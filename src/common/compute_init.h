// Arrow's compute functions beyond the core ones (min_max, filters on strings,
// sorting, grouping: libarrow_compute) are registered only when
// arrow::compute::Initialize() runs. Every entry point of the library that may
// reach them calls EnsureComputeInitialized() first, so that whether a call
// works never depends on what the program did before (a C++ user, a Python
// user without numpy or pyarrow.compute imported).
#pragma once

#include <arrow/status.h>

namespace stratalake {

/// Runs arrow::compute::Initialize() once per process; its status afterwards.
/// Thread-safe.
arrow::Status EnsureComputeInitialized();

}  // namespace stratalake
