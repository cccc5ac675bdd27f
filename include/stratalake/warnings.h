// Warnings: results that are complete and correct but probably not what the
// caller wanted, because the data behind them is missing (a source never
// ingested, nothing materialized). The core reports them as values; each front
// end (CLI, Python) words them in its own vocabulary, with what to run.
#pragma once

#include <cstdint>
#include <string>

namespace stratalake {

struct Warning {
  enum class Code {
    /// A feature view's source has no Delta table yet (nothing was ingested);
    /// the view contributed no rows.
    kSourceMissing,
    /// The source's table exists but holds no rows (at the version read).
    kSourceEmpty,
    /// get_historical_features: every requested feature is null in every
    /// output row. `rows_read` says whether the sources had rows at all.
    kAllFeaturesNull,
    /// Online read: nothing was ever written to the online store for the view
    /// (not materialized, nor pushed to), so every key came back NOT_FOUND.
    kNotMaterialized,
    /// Online read: `keys` of the view's keys could not be read because part
    /// of the online store is down (a Redis Cluster node); their values have
    /// status UNAVAILABLE and `detail` is the first error (naming the node).
    /// Not about missing data: retry, or bring the node back.
    kStoreUnavailable,
  };
  Code code = Code::kSourceMissing;
  std::string view;          // the feature view ("" for kAllFeaturesNull)
  std::string source;        // its source ("" for kAllFeaturesNull)
  bool push_source = false;  // the source is a push source (rows arrive by push)
  int64_t rows_read = 0;     // kAllFeaturesNull: feature rows read from all sources
  int64_t keys = 0;          // kStoreUnavailable: the view's keys that could not be read
  std::string detail;        // kStoreUnavailable: the store's error for the first of them
};

/// "source_missing", "source_empty", "all_features_null", "not_materialized",
/// "store_unavailable".
const char* WarningCodeName(Warning::Code code);

}  // namespace stratalake
