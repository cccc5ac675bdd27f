// Window aggregations (docs/windows.md): the one evaluator that both the
// offline retrieval (a training set's entity row at time t) and the online
// store (a read at "now") use, so that their values are equal bit for bit.
//
// Semantics: an aggregation over window W at time t covers the events of its
// key whose event time e satisfies t - W < e <= t (the old end excluded, the
// new end included), whose column value is not null and for which the filter
// holds (a null filter result excludes the row).
//
// Tiles: event time is cut into buckets of B microseconds, bucket k holding
// the times (k*B, (k+1)*B] (the same inclusivity as windows). B divides every
// window of the view (ChooseBucketSeconds), so a window always covers whole
// buckets in its middle and parts of at most two buckets at its ends. A bucket
// keeps its events in a canonical order (time, id, values) and, per
// aggregation, a partial aggregate folded over them in that order. A window's
// value is computed in one fixed order: the events of the oldest edge bucket
// within the window, folded one by one; then the partials of the inner
// buckets, merged in time order; then the events of the newest edge bucket.
// Offline and online hold the same events per bucket, so the same operations
// run on the same doubles in the same order: the results are identical, also
// for floating-point sums and standard deviations.
//
// count_distinct, percentile and last_k are computed from the events of the
// whole window (exact, no sketch).
//
// Internal to src/retrieval and src/online.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "retrieval/asof_join.h"
#include "stratalake/registry.h"

namespace arrow {
class ArrayBuilder;
}

namespace stratalake::retrieval::window {

/// The bucket size for a view's windows (seconds): the largest of 1s, 5s, 10s,
/// 15s, 30s, 1m, 5m, 10m, 15m, 30m, 1h, 2h, 3h, 6h, 12h, 1d that divides every
/// window and leaves the shortest window at least 10 buckets; 1s when none does.
int64_t ChooseBucketSeconds(const std::vector<int64_t>& window_seconds);

/// A window view, compiled.
struct WindowSpec {
  std::vector<registry::Aggregation> aggs;
  int64_t bucket_us = 0;
  int64_t max_window_us = 0;
  /// Names the tile format: bucket size and every aggregation's function,
  /// column, window, k, percentile and filter. Stored tiles of another
  /// fingerprint are never read (a changed definition needs a materialize).
  uint64_t fingerprint = 0;
  /// Events keep one value per channel: a distinct (column, filter) pair of
  /// the aggregations (sum, mean and stddev of one column share a channel).
  size_t num_channels = 0;
  std::vector<size_t> channel_of;        // per aggregation
  std::vector<size_t> channel_agg;       // per channel: its first aggregation (column, filter)
  std::vector<uint8_t> channel_moments;  // per channel: a stddev needs Welford's mean and m2
};
arrow::Result<WindowSpec> CompileWindows(const registry::FeatureView& view);

/// Event ids tell a stream's events apart when a bucket is rebuilt: kafka
/// events have ((partition + 1) << 40) | offset; rows of other sources 0.
uint64_t KafkaEventId(int32_t partition, int64_t offset);

/// A partial aggregate (the fold of some events of one aggregation).
struct Partial {
  int64_t n = 0;
  double sum = 0, mean = 0, m2 = 0;
  double min = 0, max = 0;
  double last = 0;
  /// `moments` = false leaves mean and m2 alone (no channel's stddev needs
  /// them): cheaper, and the same choice online and offline (WindowSpec).
  void Fold(double x, bool moments = true) { moments ? FoldT<true>(x) : FoldT<false>(x); }
  void Merge(const Partial& p, bool moments = true) {
    moments ? MergeT<true>(p) : MergeT<false>(p);
  }
  // The same operations with `moments` fixed at compile time (the evaluator's hot loop).
  template <bool kMoments>
  void FoldT(double x) {
    if (n == 0) {
      min = max = x;
    } else {
      min = x < min ? x : min;  // std::min(min, x)
      max = max < x ? x : max;  // std::max(max, x)
    }
    ++n;
    sum += x;
    last = x;
    if constexpr (kMoments) {
      double delta = x - mean;
      mean += delta / static_cast<double>(n);
      m2 += delta * (x - mean);
    }
  }
  template <bool kMoments>
  void MergeT(const Partial& p) {
    if (p.n == 0) return;
    if (n == 0) {
      *this = p;
      return;
    }
    if constexpr (kMoments) {
      const double na = static_cast<double>(n), nb = static_cast<double>(p.n);
      const double nab = na + nb;
      const double delta = p.mean - mean;
      mean += delta * nb / nab;
      m2 += p.m2 + delta * delta * na * nb / nab;
    }
    sum += p.sum;
    min = p.min < min ? p.min : min;  // std::min(min, p.min)
    max = max < p.max ? p.max : max;  // std::max(max, p.max)
    n += p.n;
    last = p.last;
  }
};

/// A bucket as the evaluator reads it: its events (canonical order) and, for
/// a bucket of at least kMinPartialEvents events, one partial per channel
/// (nullptr otherwise: the evaluator folds its events, whether it is at an
/// edge or inside the window — the same rule online and offline).
struct BucketRef {
  int64_t index = 0;
  uint32_t n = 0;
  const int64_t* time = nullptr;
  const uint64_t* id = nullptr;
  const double* value = nullptr;  // n * channels
  const uint8_t* valid = nullptr;
  const Partial* partial = nullptr;
};
inline constexpr uint32_t kMinPartialEvents = 2;

/// The partials of `n` events in canonical order (one per channel), folded in that order.
void FoldPartials(size_t n, const double* value, const uint8_t* valid, size_t num_channels,
                  Partial* out);

/// The events of one key in one bucket and their partial aggregates.
struct Bucket {
  int64_t index = 0;
  std::vector<int64_t> time;
  std::vector<uint64_t> id;
  std::vector<double> value;     // event-major: value[e * channels + c]
  std::vector<uint8_t> valid;    // 1 = counts for channel c (not null, filter true)
  std::vector<Partial> partial;  // per channel

  size_t size() const { return time.size(); }
  /// Sorts the events canonically, drops repeated kafka events (same time and
  /// nonzero id: one event read twice) and computes the partials.
  void Finish(size_t num_channels);
  BucketRef Ref() const;
};

/// 8-byte big-endian bucket index with the sign bit flipped (byte order = order).
void AppendBucketIndex(int64_t index, std::string* out);
/// The bucket of event time `us`: floor((us - 1) / bucket_us).
int64_t BucketOf(int64_t us, int64_t bucket_us);

/// Tile value bytes (after the store's 16-byte version prefix): format byte 'W',
/// channel count, event count, then per event time, id, and per channel a
/// valid byte and the value (partials are recomputed on decode).
void EncodeTile(const Bucket& b, size_t num_channels, std::string* out);
/// Decodes what EncodeTile wrote (the prefix already removed); corrupt input is an error.
arrow::Status DecodeTile(std::string_view bytes, size_t num_channels, int64_t index, Bucket* out);

/// One builder per aggregation (of AggregationType).
arrow::Result<std::vector<std::unique_ptr<arrow::ArrayBuilder>>> MakeBuilders(
    const WindowSpec& spec);

/// Appends every aggregation's value at time `t` to `builders`, computed from
/// `buckets` (the key's buckets, sorted by index, any range: those outside
/// the window are skipped). nullptr / 0 buckets: a key without events.
arrow::Status Evaluate(const WindowSpec& spec, const BucketRef* buckets, size_t num_buckets,
                       int64_t t, std::vector<std::unique_ptr<arrow::ArrayBuilder>>* builders);

/// The evaluator without Arrow builders, for many rows (the offline join): Run
/// computes every aggregation at time t exactly as Evaluate does (the same
/// operations in the same order), and the results are read per aggregation.
/// Holds its scratch space; one per thread.
class RowEvaluator {
 public:
  explicit RowEvaluator(const WindowSpec& spec);

  /// Evaluates every aggregation at time `t` over `buckets` (as Evaluate).
  void Run(const BucketRef* buckets, size_t num_buckets, int64_t t);
  /// Two rows at once (results in slots 0 and 1), each exactly as Run would
  /// compute it; interleaving the two rows' operations lets the processor
  /// overlap them.
  void Run2(const BucketRef* buckets0, size_t num_buckets0, int64_t t0, const BucketRef* buckets1,
            size_t num_buckets1, int64_t t1);

  /// After Run: aggregation `a`'s value as a double (sum, mean, min, max,
  /// stddev, last, percentile; false = null), as an int64 (count,
  /// count_distinct), or its list (last_k, newest first, into `out`).
  bool Double(size_t a, double* out, int slot = 0) const;
  int64_t Int(size_t a, int slot = 0) const;
  void List(size_t a, std::vector<double>* out, int slot = 0) const;

 private:
  struct Pass {
    int64_t window_us = 0;
    std::vector<size_t> p_moments, p_plain, v;   // channels per kind of work
    std::vector<Partial> p[2];                   // per slot and channel
    std::vector<std::vector<double>> values[2];  // per slot and channel
  };
  template <bool kAnyValues>
  void RunPass(Pass* pass, int slot, const BucketRef* buckets, size_t num_buckets, int64_t t);

  const WindowSpec& spec_;
  std::vector<Pass> passes_;
  std::vector<size_t> pass_of_;  // per aggregation
  mutable std::vector<double> sorted_;
  mutable std::vector<uint64_t> bits_;
};

/// Events of a batch of source rows: the value and validity of every
/// channel (filters evaluated), ready to be put into buckets. `data` has the spec's columns by name
/// (and, when `id_columns`, the kafka partition and offset columns).
struct EventColumns {
  std::vector<double> value;   // row-major: value[row * channels + c]
  std::vector<uint8_t> valid;  // same
  std::vector<uint64_t> id;    // per row
};
arrow::Result<EventColumns> ComputeEvents(const WindowSpec& spec, const arrow::Table& data,
                                          bool id_columns);

/// The offline half: an AsOfJoin (same contract as asof_join.h: AddRight the
/// source rows, then Finish / Match the entity rows) whose output per entity
/// row is every aggregation's value over the window ending at the row's time.
/// `spec.right_keys`/`right_time` name the key and time columns; features are
/// the aggregation names. Memory and threads as AsOfOptions{} (the default
/// budget, all cores): see the overload below.
arrow::Result<std::unique_ptr<AsOfJoin>> MakeWindowJoin(AsOfSpec spec, WindowSpec windows,
                                                        std::shared_ptr<arrow::Schema> right_schema,
                                                        bool id_columns);
/// The same, within `options.memory_budget_bytes` (0 = DefaultMemoryBudget())
/// on `options.num_threads` threads (0 = all usable cores). Events take 24 + 9
/// bytes per channel (plus the key bytes of a string key) while buffered; once
/// they exceed half the budget they are written to spill files under
/// `options.spill_dir` by key partition (64, split on further key bits at the
/// first Match while one is larger than budget / (2 * threads), at least 256
/// KiB; one key's events are never split), and evaluated a partition at a
/// time per thread. Values are the same, bit for bit, in memory or spilled,
/// on any number of threads and for any slicing of the entity rows (Match).
/// Not counted: the entity rows and their output (about 24 bytes per row and 9 per
/// aggregation per row while staged, 8 once output), which retrieval.cc
/// bounds by matching in slices.
arrow::Result<std::unique_ptr<AsOfJoin>> MakeWindowJoin(AsOfSpec spec, WindowSpec windows,
                                                        std::shared_ptr<arrow::Schema> right_schema,
                                                        bool id_columns, AsOfOptions options);

}  // namespace stratalake::retrieval::window
