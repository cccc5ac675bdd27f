// Window aggregations: tiles, the shared evaluator and the offline window join
// (window.h; docs/windows.md).
#include "retrieval/window.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "retrieval/asof_keys.h"
#include "storage/scan.h"
#include "stratalake/expression.h"
#include "stratalake/status.h"

namespace stratalake::retrieval::window {

using registry::AggregationFunction;

namespace {

// floor(a / b) for b > 0.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

uint64_t Fnv(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= 0xff;
  h *= 1099511628211ULL;
  return h;
}

uint64_t DoubleBits(double d) {
  if (d == 0) d = 0;  // -0.0 and 0.0 are one value
  if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

bool UsesPartials(AggregationFunction f) {
  return f != AggregationFunction::kLastK && f != AggregationFunction::kCountDistinct &&
         f != AggregationFunction::kPercentile;
}

}  // namespace

int64_t ChooseBucketSeconds(const std::vector<int64_t>& windows) {
  static const int64_t kSizes[] = {86400, 43200, 21600, 10800, 7200, 3600, 1800, 900,
                                   600,   300,   60,    30,    15,   10,   5,    1};
  if (windows.empty()) return 1;
  int64_t shortest = *std::min_element(windows.begin(), windows.end());
  for (int64_t b : kSizes) {
    bool divides =
        std::all_of(windows.begin(), windows.end(), [&](int64_t w) { return w % b == 0; });
    if (divides && shortest / b >= 10) return b;
  }
  return 1;
}

uint64_t KafkaEventId(int32_t partition, int64_t offset) {
  return (static_cast<uint64_t>(partition + 1) << 40) | static_cast<uint64_t>(offset);
}

arrow::Result<WindowSpec> CompileWindows(const registry::FeatureView& view) {
  WindowSpec spec;
  if (view.aggregations.empty()) {
    return arrow::Status::Invalid("feature view '", view.name, "' has no aggregations");
  }
  spec.aggs = view.aggregations;
  std::vector<int64_t> windows;
  for (const auto& a : spec.aggs) {
    if (a.window_seconds <= 0) {
      return arrow::Status::Invalid("feature view '", view.name, "' aggregation '", a.name,
                                    "' has no window");
    }
    windows.push_back(a.window_seconds);
    spec.max_window_us = std::max(spec.max_window_us, a.window_seconds * 1000000);
  }
  spec.bucket_us = ChooseBucketSeconds(windows) * 1000000;
  uint64_t h = 1469598103934665603ULL;
  h = Fnv(h, "window-tiles-1");
  h = Fnv(h, std::to_string(spec.bucket_us));
  for (const auto& a : spec.aggs) {
    h = Fnv(h, registry::AggregationFunctionName(a.function));
    h = Fnv(h, a.column);
    h = Fnv(h, std::to_string(a.window_seconds));
    h = Fnv(h, std::to_string(a.k));
    h = Fnv(h, std::to_string(DoubleBits(a.percentile)));
    h = Fnv(h, a.filter);
  }
  spec.fingerprint = h;
  for (size_t a = 0; a < spec.aggs.size(); ++a) {
    size_t c = 0;
    while (c < spec.channel_agg.size() &&
           (spec.aggs[spec.channel_agg[c]].column != spec.aggs[a].column ||
            spec.aggs[spec.channel_agg[c]].filter != spec.aggs[a].filter)) {
      ++c;
    }
    if (c == spec.channel_agg.size()) spec.channel_agg.push_back(a);
    spec.channel_of.push_back(c);
  }
  spec.num_channels = spec.channel_agg.size();
  spec.channel_moments.assign(spec.num_channels, 0);
  for (size_t a = 0; a < spec.aggs.size(); ++a) {
    if (spec.aggs[a].function == AggregationFunction::kStddev)
      spec.channel_moments[spec.channel_of[a]] = 1;
  }
  return spec;
}

// ---- partials and buckets ----------------------------------------------------------

void Bucket::Finish(size_t num_channels) {
  const size_t num_aggs = num_channels;
  const size_t n = size();
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  auto less = [&](uint32_t x, uint32_t y) {
    if (time[x] != time[y]) return time[x] < time[y];
    if (id[x] != id[y]) return id[x] < id[y];
    for (size_t a = 0; a < num_aggs; ++a) {
      uint8_t vx = valid[x * num_aggs + a], vy = valid[y * num_aggs + a];
      if (vx != vy) return vx < vy;
      uint64_t bx = DoubleBits(value[x * num_aggs + a]), by = DoubleBits(value[y * num_aggs + a]);
      if (bx != by) return bx < by;
    }
    return false;
  };
  bool sorted = true;
  for (size_t i = 1; i < n && sorted; ++i) sorted = !less(order[i], order[i - 1]);
  if (!sorted) std::sort(order.begin(), order.end(), less);
  std::vector<int64_t> t2;
  std::vector<uint64_t> id2;
  std::vector<double> v2;
  std::vector<uint8_t> ok2;
  t2.reserve(n);
  id2.reserve(n);
  v2.reserve(n * num_aggs);
  ok2.reserve(n * num_aggs);
  for (size_t i = 0; i < n; ++i) {
    uint32_t e = order[i];
    // The same kafka event seen twice (a stream restart, a materialize over streamed tiles).
    if (!t2.empty() && id[e] != 0 && t2.back() == time[e] && id2.back() == id[e]) continue;
    t2.push_back(time[e]);
    id2.push_back(id[e]);
    for (size_t a = 0; a < num_aggs; ++a) {
      v2.push_back(value[e * num_aggs + a]);
      ok2.push_back(valid[e * num_aggs + a]);
    }
  }
  time = std::move(t2);
  id = std::move(id2);
  value = std::move(v2);
  valid = std::move(ok2);
  partial.assign(num_aggs, Partial{});
  FoldPartials(size(), value.data(), valid.data(), num_aggs, partial.data());
}

void FoldPartials(size_t n, const double* value, const uint8_t* valid, size_t num_channels,
                  Partial* out) {
  for (size_t e = 0; e < n; ++e) {
    for (size_t c = 0; c < num_channels; ++c) {
      if (valid[e * num_channels + c]) out[c].Fold(value[e * num_channels + c]);
    }
  }
}

BucketRef Bucket::Ref() const {
  BucketRef r;
  r.index = index;
  r.n = static_cast<uint32_t>(size());
  r.time = time.data();
  r.id = id.data();
  r.value = value.data();
  r.valid = valid.data();
  r.partial = r.n >= kMinPartialEvents ? partial.data() : nullptr;
  return r;
}

int64_t BucketOf(int64_t us, int64_t bucket_us) { return FloorDiv(us - 1, bucket_us); }

void AppendBucketIndex(int64_t index, std::string* out) {
  uint64_t u = static_cast<uint64_t>(index) ^ (uint64_t{1} << 63);
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

namespace {
template <typename T>
void Put(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}
template <typename T>
bool Get(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}
}  // namespace

void EncodeTile(const Bucket& b, size_t num_channels, std::string* out) {
  const size_t num_aggs = num_channels;
  out->push_back('W');
  Put<uint32_t>(out, static_cast<uint32_t>(num_aggs));
  Put<uint32_t>(out, static_cast<uint32_t>(b.size()));
  for (size_t e = 0; e < b.size(); ++e) {
    Put<int64_t>(out, b.time[e]);
    Put<uint64_t>(out, b.id[e]);
    for (size_t a = 0; a < num_aggs; ++a) {
      out->push_back(static_cast<char>(b.valid[e * num_aggs + a]));
      Put<double>(out, b.value[e * num_aggs + a]);
    }
  }
}

arrow::Status DecodeTile(std::string_view in, size_t num_channels, int64_t index, Bucket* out) {
  const size_t num_aggs = num_channels;
  auto corrupt = [] {
    return arrow::Status::IOError(
        "online store: a window tile is malformed; run `stratalake materialize` for its view");
  };
  uint32_t aggs = 0, n = 0;
  if (in.empty() || in[0] != 'W') return corrupt();
  in.remove_prefix(1);
  if (!Get(&in, &aggs) || !Get(&in, &n) || aggs != num_aggs) return corrupt();
  if (in.size() != static_cast<size_t>(n) * (16 + 9 * num_aggs)) return corrupt();
  *out = Bucket{};
  out->index = index;
  out->time.resize(n);
  out->id.resize(n);
  out->value.resize(static_cast<size_t>(n) * num_aggs);
  out->valid.resize(static_cast<size_t>(n) * num_aggs);
  for (size_t e = 0; e < n; ++e) {
    Get(&in, &out->time[e]);
    Get(&in, &out->id[e]);
    for (size_t a = 0; a < num_aggs; ++a) {
      out->valid[e * num_aggs + a] = static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
      Get(&in, &out->value[e * num_aggs + a]);
    }
  }
  out->Finish(num_aggs);
  return arrow::Status::OK();
}

// ---- evaluation ---------------------------------------------------------------------

arrow::Result<std::vector<std::unique_ptr<arrow::ArrayBuilder>>> MakeBuilders(
    const WindowSpec& spec) {
  std::vector<std::unique_ptr<arrow::ArrayBuilder>> out;
  for (const auto& a : spec.aggs) {
    std::unique_ptr<arrow::ArrayBuilder> b;
    ARROW_ASSIGN_OR_RAISE(b, arrow::MakeBuilder(registry::AggregationType(a)));
    out.push_back(std::move(b));
  }
  return out;
}

RowEvaluator::RowEvaluator(const WindowSpec& spec) : spec_(spec) {
  const size_t A = spec.aggs.size(), C = spec.num_channels;
  // One pass over the buckets per distinct window, for every channel at once: per
  // channel, the partial (for the partial-based functions) and the values (for
  // last_k, count_distinct, percentile) of the window. Each channel's operations
  // and their order are those of a pass of its own.
  std::vector<std::vector<uint8_t>> need_p, need_v;
  pass_of_.assign(A, 0);
  for (size_t a = 0; a < A; ++a) {
    const auto& agg = spec.aggs[a];
    const int64_t w = agg.window_seconds * 1000000;
    size_t i = 0;
    while (i < passes_.size() && passes_[i].window_us != w) ++i;
    if (i == passes_.size()) {
      passes_.emplace_back();
      passes_.back().window_us = w;
      need_p.emplace_back(C, 0);
      need_v.emplace_back(C, 0);
    }
    pass_of_[a] = i;
    (UsesPartials(agg.function) ? need_p : need_v)[i][spec.channel_of[a]] = 1;
  }
  for (size_t i = 0; i < passes_.size(); ++i) {
    Pass& pass = passes_[i];
    for (size_t c = 0; c < C; ++c) {
      if (need_p[i][c]) (spec.channel_moments[c] ? pass.p_moments : pass.p_plain).push_back(c);
      if (need_v[i][c]) pass.v.push_back(c);
    }
    for (int slot = 0; slot < 2; ++slot) {
      pass.p[slot].assign(C, Partial{});
      pass.values[slot].resize(C);
    }
  }
}

namespace {

// One row's walk through one pass's buckets (RowEvaluator::RunPass without values).
struct Walk {
  const BucketRef* b;  // next bucket
  const BucketRef* end;
  int64_t lo, t, k_lo, k_hi;
  Partial* p;
};

Walk StartWalk(const BucketRef* buckets, size_t num_buckets, int64_t t, int64_t window_us,
               int64_t bucket_us, Partial* p) {
  Walk w;
  w.lo = t - window_us;  // excluded
  w.t = t;
  w.k_lo = BucketOf(w.lo + 1, bucket_us);
  w.k_hi = BucketOf(t, bucket_us);
  w.p = p;
  auto by_index = [](const BucketRef& b, int64_t k) { return b.index < k; };
  w.b = std::lower_bound(buckets, buckets + num_buckets, w.k_lo, by_index);
  w.end = buckets + num_buckets;
  return w;
}

// Whether the walk has a bucket left in the window.
inline bool More(const Walk& w) { return w.b != w.end && w.b->index <= w.k_hi; }

// One bucket of a walk: merged partials, or its events (those in the window) folded.
[[gnu::always_inline]] inline void Step(Walk* w, size_t C, const size_t* pm, size_t npm,
                                        const size_t* pp, size_t npp) {
  const BucketRef& b = *w->b++;
  Partial* p = w->p;
  const bool edge = b.index == w->k_lo || b.index == w->k_hi;
  if (!edge && b.partial) {
    for (size_t j = 0; j < npm; ++j) p[pm[j]].MergeT<true>(b.partial[pm[j]]);
    for (size_t j = 0; j < npp; ++j) p[pp[j]].MergeT<false>(b.partial[pp[j]]);
    return;
  }
  for (size_t e = 0; e < b.n; ++e) {
    // Inner buckets lie wholly in the window; only the edges are cut.
    if (edge && (b.time[e] <= w->lo || b.time[e] > w->t)) continue;
    const double* x = b.value + e * C;
    const uint8_t* ok = b.valid + e * C;
    for (size_t j = 0; j < npm; ++j) {
      if (ok[pm[j]]) p[pm[j]].FoldT<true>(x[pm[j]]);
    }
    for (size_t j = 0; j < npp; ++j) {
      if (ok[pp[j]]) p[pp[j]].FoldT<false>(x[pp[j]]);
    }
  }
}

}  // namespace

template <bool kAnyValues>
void RowEvaluator::RunPass(Pass* pass, int slot, const BucketRef* buckets, size_t num_buckets,
                           int64_t t) {
  const size_t C = spec_.num_channels;
  Partial* p = pass->p[slot].data();
  for (size_t c = 0; c < C; ++c) p[c] = Partial{};
  const size_t* pm = pass->p_moments.data();
  const size_t* pp = pass->p_plain.data();
  const size_t npm = pass->p_moments.size(), npp = pass->p_plain.size();
  Walk w = StartWalk(buckets, num_buckets, t, pass->window_us, spec_.bucket_us, p);
  if constexpr (!kAnyValues) {
    while (More(w)) Step(&w, C, pm, npm, pp, npp);
  } else {
    auto& values = pass->values[slot];
    for (auto& v : values) v.clear();
    for (; More(w); ++w.b) {
      const BucketRef& b = *w.b;
      const bool edge = b.index == w.k_lo || b.index == w.k_hi;
      const bool merge = !edge && b.partial;
      if (merge) {
        for (size_t j = 0; j < npm; ++j) p[pm[j]].MergeT<true>(b.partial[pm[j]]);
        for (size_t j = 0; j < npp; ++j) p[pp[j]].MergeT<false>(b.partial[pp[j]]);
      }
      for (size_t e = 0; e < b.n; ++e) {
        if (edge && (b.time[e] <= w.lo || b.time[e] > t)) continue;
        const double* x = b.value + e * C;
        const uint8_t* ok = b.valid + e * C;
        if (!merge) {
          for (size_t j = 0; j < npm; ++j) {
            if (ok[pm[j]]) p[pm[j]].FoldT<true>(x[pm[j]]);
          }
          for (size_t j = 0; j < npp; ++j) {
            if (ok[pp[j]]) p[pp[j]].FoldT<false>(x[pp[j]]);
          }
        }
        for (size_t c : pass->v) {
          if (ok[c]) values[c].push_back(x[c]);
        }
      }
    }
  }
}

void RowEvaluator::Run(const BucketRef* buckets, size_t num_buckets, int64_t t) {
  for (auto& pass : passes_) {
    if (pass.v.empty()) {
      RunPass<false>(&pass, 0, buckets, num_buckets, t);
    } else {
      RunPass<true>(&pass, 0, buckets, num_buckets, t);
    }
  }
}

void RowEvaluator::Run2(const BucketRef* buckets0, size_t num_buckets0, int64_t t0,
                        const BucketRef* buckets1, size_t num_buckets1, int64_t t1) {
  const size_t C = spec_.num_channels;
  for (auto& pass : passes_) {
    if (!pass.v.empty()) {
      RunPass<true>(&pass, 0, buckets0, num_buckets0, t0);
      RunPass<true>(&pass, 1, buckets1, num_buckets1, t1);
      continue;
    }
    // Two independent chains of operations, interleaved: each row's operations
    // and their order are those of Run; the processor overlaps the two.
    Partial* p0 = pass.p[0].data();
    Partial* p1 = pass.p[1].data();
    for (size_t c = 0; c < C; ++c) p0[c] = p1[c] = Partial{};
    const size_t* pm = pass.p_moments.data();
    const size_t* pp = pass.p_plain.data();
    const size_t npm = pass.p_moments.size(), npp = pass.p_plain.size();
    Walk w0 = StartWalk(buckets0, num_buckets0, t0, pass.window_us, spec_.bucket_us, p0);
    Walk w1 = StartWalk(buckets1, num_buckets1, t1, pass.window_us, spec_.bucket_us, p1);
    while (More(w0) && More(w1)) {
      Step(&w0, C, pm, npm, pp, npp);
      Step(&w1, C, pm, npm, pp, npp);
    }
    while (More(w0)) Step(&w0, C, pm, npm, pp, npp);
    while (More(w1)) Step(&w1, C, pm, npm, pp, npp);
  }
}

bool RowEvaluator::Double(size_t a, double* out, int slot) const {
  const auto& agg = spec_.aggs[a];
  const Pass& pass = passes_[pass_of_[a]];
  const size_t c = spec_.channel_of[a];
  const Partial& p = pass.p[slot][c];
  switch (agg.function) {
    case AggregationFunction::kSum:
      *out = p.sum;
      return p.n > 0;
    case AggregationFunction::kMean:
      *out = p.sum / static_cast<double>(p.n);
      return p.n > 0;
    case AggregationFunction::kMin:
      *out = p.min;
      return p.n > 0;
    case AggregationFunction::kMax:
      *out = p.max;
      return p.n > 0;
    case AggregationFunction::kStddev:
      *out = std::sqrt(std::max(p.m2, 0.0) / static_cast<double>(p.n - 1));
      return p.n > 1;
    case AggregationFunction::kLast:
      *out = p.last;
      return p.n > 0;
    case AggregationFunction::kPercentile: {
      const std::vector<double>& vals = pass.values[slot][c];
      if (vals.empty()) {
        *out = 0;
        return false;
      }
      sorted_.assign(vals.begin(), vals.end());
      std::sort(sorted_.begin(), sorted_.end());
      double pos = agg.percentile * static_cast<double>(sorted_.size() - 1);
      size_t fl = static_cast<size_t>(std::floor(pos));
      double frac = pos - static_cast<double>(fl);
      double v = sorted_[fl];
      if (fl + 1 < sorted_.size() && frac > 0) v += (sorted_[fl + 1] - sorted_[fl]) * frac;
      *out = v;
      return true;
    }
    default:
      *out = 0;
      return false;
  }
}

int64_t RowEvaluator::Int(size_t a, int slot) const {
  const auto& agg = spec_.aggs[a];
  const Pass& pass = passes_[pass_of_[a]];
  const size_t c = spec_.channel_of[a];
  if (agg.function == AggregationFunction::kCount) return pass.p[slot][c].n;
  // count_distinct
  const std::vector<double>& vals = pass.values[slot][c];
  bits_.resize(vals.size());
  for (size_t v = 0; v < vals.size(); ++v) bits_[v] = DoubleBits(vals[v]);
  std::sort(bits_.begin(), bits_.end());
  return std::unique(bits_.begin(), bits_.end()) - bits_.begin();
}

void RowEvaluator::List(size_t a, std::vector<double>* out, int slot) const {
  // Newest first: the values were collected oldest first.
  const auto& agg = spec_.aggs[a];
  const std::vector<double>& values = passes_[pass_of_[a]].values[slot][spec_.channel_of[a]];
  size_t take = std::min(values.size(), static_cast<size_t>(std::max(agg.k, 0)));
  out->clear();
  for (size_t v = 0; v < take; ++v) out->push_back(values[values.size() - 1 - v]);
}

arrow::Status Evaluate(const WindowSpec& spec, const BucketRef* buckets, size_t num_buckets,
                       int64_t t, std::vector<std::unique_ptr<arrow::ArrayBuilder>>* builders) {
  RowEvaluator ev(spec);
  ev.Run(buckets, num_buckets, t);
  std::vector<double> list;
  for (size_t a = 0; a < spec.aggs.size(); ++a) {
    arrow::ArrayBuilder* builder = (*builders)[a].get();
    switch (spec.aggs[a].function) {
      case AggregationFunction::kCount:
      case AggregationFunction::kCountDistinct:
        ARROW_RETURN_NOT_OK(static_cast<arrow::Int64Builder*>(builder)->Append(ev.Int(a)));
        break;
      case AggregationFunction::kLastK: {
        auto* lb = static_cast<arrow::ListBuilder*>(builder);
        auto* vb = static_cast<arrow::DoubleBuilder*>(lb->value_builder());
        ARROW_RETURN_NOT_OK(lb->Append());
        ev.List(a, &list);
        ARROW_RETURN_NOT_OK(vb->AppendValues(list));
        break;
      }
      default: {
        double v;
        auto* d = static_cast<arrow::DoubleBuilder*>(builder);
        ARROW_RETURN_NOT_OK(ev.Double(a, &v) ? d->Append(v) : d->AppendNull());
        break;
      }
    }
  }
  return arrow::Status::OK();
}

// ---- events from source rows ----------------------------------------------------------

arrow::Result<EventColumns> ComputeEvents(const WindowSpec& spec, const arrow::Table& data,
                                          bool id_columns) {
  const size_t A = spec.num_channels;
  const int64_t n = data.num_rows();
  EventColumns out;
  out.value.assign(static_cast<size_t>(n) * A, 0.0);
  out.valid.assign(static_cast<size_t>(n) * A, 0);
  out.id.assign(static_cast<size_t>(n), 0);
  arrow::compute::CastOptions cast = arrow::compute::CastOptions::Unsafe(arrow::float64());
  for (size_t a = 0; a < A; ++a) {  // a: the channel
    const auto& agg = spec.aggs[spec.channel_agg[a]];
    auto col = data.GetColumnByName(agg.column);
    if (!col) {
      return arrow::Status::Invalid("window aggregation '", agg.name, "': no column '", agg.column,
                                    "' in the source rows");
    }
    std::shared_ptr<arrow::ChunkedArray> mask;
    if (!agg.filter.empty()) {
      ARROW_ASSIGN_OR_RAISE(auto e, ParseExpression(agg.filter, *data.schema()));
      ARROW_ASSIGN_OR_RAISE(auto bound, e.Bind(*data.schema()));
      ARROW_ASSIGN_OR_RAISE(mask, delta::EvaluatePredicate(bound, data));
    }
    const auto tid = col->type()->id();
    const bool numeric = arrow::is_integer(tid) || arrow::is_floating(tid) ||
                         tid == arrow::Type::BOOL || arrow::is_decimal(tid);
    std::shared_ptr<arrow::ChunkedArray> values = col;
    if (numeric && tid != arrow::Type::DOUBLE) {
      ARROW_ASSIGN_OR_RAISE(auto d, arrow::compute::Cast(col, cast));
      values = d.chunked_array();
    }
    int64_t row = 0;
    for (const auto& chunk : values->chunks()) {
      const int64_t len = chunk->length();
      const double* dv =
          numeric ? static_cast<const arrow::DoubleArray&>(*chunk).raw_values() : nullptr;
      for (int64_t i = 0; i < len; ++i) {
        size_t at = static_cast<size_t>(row + i) * A + a;
        if (chunk->IsNull(i)) continue;
        out.valid[at] = 1;
        out.value[at] = dv ? dv[i] : 0.0;
      }
      row += len;
    }
    if (mask) {
      int64_t r = 0;
      for (const auto& chunk : mask->chunks()) {
        const auto& m = static_cast<const arrow::BooleanArray&>(*chunk);
        for (int64_t i = 0; i < m.length(); ++i, ++r) {
          if (!m.Value(i)) out.valid[static_cast<size_t>(r) * A + a] = 0;
        }
      }
    }
  }
  if (id_columns) {
    auto part = data.GetColumnByName("_kafka_partition");
    auto off = data.GetColumnByName("_kafka_offset");
    if (!part || !off) {
      return arrow::Status::Invalid("window events: no _kafka_partition/_kafka_offset columns");
    }
    ARROW_ASSIGN_OR_RAISE(auto p64, arrow::compute::Cast(part, arrow::int64()));
    ARROW_ASSIGN_OR_RAISE(auto o64, arrow::compute::Cast(off, arrow::int64()));
    auto pc = p64.chunked_array();
    auto oc = o64.chunked_array();
    ARROW_ASSIGN_OR_RAISE(auto pcat, arrow::Concatenate(pc->chunks()));
    ARROW_ASSIGN_OR_RAISE(auto ocat, arrow::Concatenate(oc->chunks()));
    const auto& pa = static_cast<const arrow::Int64Array&>(*pcat);
    const auto& oa = static_cast<const arrow::Int64Array&>(*ocat);
    for (int64_t i = 0; i < n; ++i) {
      if (pa.IsNull(i) || oa.IsNull(i)) continue;
      out.id[static_cast<size_t>(i)] = KafkaEventId(static_cast<int32_t>(pa.Value(i)), oa.Value(i));
    }
  }
  return out;
}

}  // namespace stratalake::retrieval::window
