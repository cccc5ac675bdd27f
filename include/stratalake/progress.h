// Progress reports from long-running calls (training sets, materialization),
// and cooperative cancellation: a callback that returns false stops the call,
// which then fails with arrow::Status::Cancelled. The Python SDK drives its
// progress bars and Ctrl-C handling through this.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace stratalake {

struct Progress {
  std::string stage;  // e.g. "customer_stats: reading source orders"
  int64_t done = 0;   // units finished (files)
  int64_t total = 0;  // units in all (0 = unknown)
  int64_t rows = 0;   // rows processed so far in this stage
};

/// Called from the thread doing the work, between units of work. Return false
/// to cancel.
using ProgressCallback = std::function<bool(const Progress&)>;

}  // namespace stratalake
