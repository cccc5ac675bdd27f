// `stratalake init`: a new feature repository with the sample shop's definitions
// and generated sample data. Implemented by the `stratalake_sample` library
// (src/sample/), which only what offers `init` links (the CLI, the SDK): the
// core library carries no demo data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/result.h>

namespace stratalake::repo {

struct InitOptions {
  std::string project;  // default: the folder's name
  int64_t customers = 1000;
  uint64_t seed = 42;
};

struct InitResult {
  std::string root;
  std::vector<std::string> files_written;  // relative to root
};

/// Creates a new repository in `dir` (created if missing; must not already
/// hold a stratalake.yaml): stratalake.yaml, definitions/*.yaml for the sample
/// shop, and generated sample data in data/.
arrow::Result<InitResult> InitRepository(const std::string& dir, const InitOptions& options);

}  // namespace stratalake::repo
