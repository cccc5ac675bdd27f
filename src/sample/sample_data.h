// The generated e-commerce sample data that `stratalake init` puts in a new
// repository's data/ folder. Deterministic: the same seed gives byte-identical
// files on every machine (own PRNG and distributions; no std:: distributions)
// for a given anchor date.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <arrow/result.h>

namespace stratalake::repo {

/// 2026-09-01T00:00:00Z (s since the epoch): the anchor the sample's
/// generator is written for (its data covers 2026-01-01 .. 2026-08-31).
constexpr int64_t kSampleReferenceAnchor = 1788220800;

struct SampleDataOptions {
  int64_t customers = 1000;
  uint64_t seed = 42;
  /// The anchor: seconds since the epoch (UTC), rounded down to midnight. The
  /// data ends the day before it (its newest event times are at the anchor's
  /// midnight): every time is the reference data's, shifted by whole days.
  /// Default: kSampleReferenceAnchor (`stratalake init` passes today).
  int64_t anchor_s = kSampleReferenceAnchor;
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
