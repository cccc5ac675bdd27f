// `stratalake init`: a new feature repository with the sample shop's definitions
// and generated sample data. Implemented by the `stratalake_sample` library
// (src/sample/), which only what offers `init` links (the CLI, the SDK): the
// core library carries no demo data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "stratalake/clock.h"

namespace stratalake::repo {

struct InitOptions {
  std::string project;  // default: the folder's name
  int64_t customers = 1000;
  uint64_t seed = 42;
  /// The sample data's anchor day (ms since the epoch, UTC; rounded down to
  /// midnight): the data covers the eight months before it and ends the day
  /// before, so that TTLs hold from then on. The same seed and anchor give
  /// byte-identical data. Default: today, by `clock`.
  std::optional<int64_t> as_of_ms;
  /// Where "today" comes from; null = Clock::System().
  std::shared_ptr<Clock> clock;
};

struct InitResult {
  std::string root;
  std::vector<std::string> files_written;  // relative to root
};

/// Creates a new repository in `dir` (created if missing; must not already
/// hold a stratalake.yaml): stratalake.yaml, definitions/*.yaml for the sample
/// shop, and generated sample data in data/ (see docs/sample-data.md).
arrow::Result<InitResult> InitRepository(const std::string& dir, const InitOptions& options);

}  // namespace stratalake::repo
