// The generated e-commerce sample data that `stratalake init` puts in a new
// repository's data/ folder. Deterministic: the same seed gives byte-identical
// files on every machine (own PRNG and distributions; no std:: distributions).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <arrow/result.h>

namespace stratalake::repo {

struct SampleDataOptions {
  int64_t customers = 1000;
  uint64_t seed = 42;
};

/// Rows written per file name (e.g. "orders.csv" -> 21234), malformed lines included.
using SampleDataSummary = std::map<std::string, int64_t>;

/// Writes into `data_dir` (created if missing):
///   customers.csv, orders.csv, clicks.jsonl, customer_daily_stats.parquet,
///   churn_labels.parquet
/// See docs/sample-data.md for columns and the
/// late-arriving, corrected and malformed rows they contain.
arrow::Result<SampleDataSummary> WriteSampleData(const std::string& data_dir,
                                                 const SampleDataOptions& options);

}  // namespace stratalake::repo
