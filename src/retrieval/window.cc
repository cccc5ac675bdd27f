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

void Partial::Fold(double x, bool moments) {
  if (n == 0) {
    min = max = x;
  } else {
    min = std::min(min, x);
    max = std::max(max, x);
  }
  ++n;
  sum += x;
  last = x;
  if (!moments) return;
  double delta = x - mean;
  mean += delta / static_cast<double>(n);
  m2 += delta * (x - mean);
}

void Partial::Merge(const Partial& p, bool moments) {
  if (p.n == 0) return;
  if (n == 0) {
    *this = p;
    return;
  }
  if (moments) {
    const double na = static_cast<double>(n), nb = static_cast<double>(p.n);
    const double nab = na + nb;
    const double delta = p.mean - mean;
    mean += delta * nb / nab;
    m2 += p.m2 + delta * delta * na * nb / nab;
  }
  sum += p.sum;
  min = std::min(min, p.min);
  max = std::max(max, p.max);
  n += p.n;
  last = p.last;
}

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

arrow::Status Evaluate(const WindowSpec& spec, const BucketRef* buckets, size_t num_buckets,
                       int64_t t, std::vector<std::unique_ptr<arrow::ArrayBuilder>>* builders) {
  const size_t A = spec.aggs.size(), C = spec.num_channels;
  // One pass over the buckets per distinct window, for every channel at once: per
  // channel, the partial (for the partial-based functions) and the values (for
  // last_k, count_distinct, percentile) of the window. Each channel's operations
  // and their order are those of a pass of its own.
  struct Pass {
    int64_t window;
    std::vector<uint8_t> need_p, need_v;  // per channel
    std::vector<Partial> p;
    std::vector<std::vector<double>> values;
  };
  // Reused between calls (one per row of a training set): no allocation once warm.
  static thread_local std::vector<Pass> pass_store;
  static thread_local std::vector<size_t> pass_of;
  size_t num_passes = 0;
  pass_of.assign(A, 0);
  for (size_t a = 0; a < A; ++a) {
    const auto& agg = spec.aggs[a];
    size_t i = 0;
    while (i < num_passes && pass_store[i].window != agg.window_seconds) ++i;
    if (i == num_passes) {
      if (pass_store.size() == num_passes) pass_store.emplace_back();
      Pass& np = pass_store[num_passes++];
      np.window = agg.window_seconds;
      np.need_p.assign(C, 0);
      np.need_v.assign(C, 0);
      np.p.assign(C, Partial{});
      np.values.resize(C);
      for (auto& v : np.values) v.clear();
    }
    pass_of[a] = i;
    Pass& pass = pass_store[i];
    (UsesPartials(agg.function) ? pass.need_p : pass.need_v)[spec.channel_of[a]] = 1;
  }
  for (size_t pi = 0; pi < num_passes; ++pi) {
    Pass& pass = pass_store[pi];
    const int64_t lo = t - pass.window * 1000000;  // excluded
    const int64_t k_lo = BucketOf(lo + 1, spec.bucket_us);
    const int64_t k_hi = BucketOf(t, spec.bucket_us);
    bool any_v = false;
    for (size_t c = 0; c < C; ++c) any_v = any_v || pass.need_v[c];
    // First bucket at or after k_lo.
    size_t i = static_cast<size_t>(
        std::lower_bound(buckets, buckets + num_buckets, k_lo,
                         [](const BucketRef& b, int64_t k) { return b.index < k; }) -
        buckets);
    for (; i < num_buckets && buckets[i].index <= k_hi; ++i) {
      const BucketRef& b = buckets[i];
      const bool edge = b.index == k_lo || b.index == k_hi;
      const bool merge = !edge && b.partial;
      if (merge) {
        for (size_t c = 0; c < C; ++c) {
          if (pass.need_p[c]) pass.p[c].Merge(b.partial[c], spec.channel_moments[c] != 0);
        }
        if (!any_v) continue;
      }
      for (size_t e = 0; e < b.n; ++e) {
        if (b.time[e] <= lo || b.time[e] > t) continue;
        for (size_t c = 0; c < C; ++c) {
          if (!b.valid[e * C + c]) continue;
          const double x = b.value[e * C + c];
          if (pass.need_p[c] && !merge) pass.p[c].Fold(x, spec.channel_moments[c] != 0);
          if (pass.need_v[c]) pass.values[c].push_back(x);
        }
      }
    }
  }
  for (size_t a = 0; a < A; ++a) {
    const auto& agg = spec.aggs[a];
    Pass& pass = pass_store[pass_of[a]];
    const size_t c = spec.channel_of[a];
    std::vector<double>& vals = pass.values[c];
    const Partial& p = pass.p[c];
    arrow::ArrayBuilder* builder = (*builders)[a].get();
    auto dbl = [&](bool has, double v) {
      auto* d = static_cast<arrow::DoubleBuilder*>(builder);
      return has ? d->Append(v) : d->AppendNull();
    };
    switch (agg.function) {
      case AggregationFunction::kCount:
        ARROW_RETURN_NOT_OK(static_cast<arrow::Int64Builder*>(builder)->Append(p.n));
        break;
      case AggregationFunction::kSum:
        ARROW_RETURN_NOT_OK(dbl(p.n > 0, p.sum));
        break;
      case AggregationFunction::kMean:
        ARROW_RETURN_NOT_OK(dbl(p.n > 0, p.sum / static_cast<double>(p.n)));
        break;
      case AggregationFunction::kMin:
        ARROW_RETURN_NOT_OK(dbl(p.n > 0, p.min));
        break;
      case AggregationFunction::kMax:
        ARROW_RETURN_NOT_OK(dbl(p.n > 0, p.max));
        break;
      case AggregationFunction::kStddev:
        ARROW_RETURN_NOT_OK(
            dbl(p.n > 1, std::sqrt(std::max(p.m2, 0.0) / static_cast<double>(p.n - 1))));
        break;
      case AggregationFunction::kLast:
        ARROW_RETURN_NOT_OK(dbl(p.n > 0, p.last));
        break;
      case AggregationFunction::kCountDistinct: {
        std::vector<uint64_t> bits(vals.size());
        for (size_t v = 0; v < vals.size(); ++v) bits[v] = DoubleBits(vals[v]);
        std::sort(bits.begin(), bits.end());
        int64_t distinct = std::unique(bits.begin(), bits.end()) - bits.begin();
        ARROW_RETURN_NOT_OK(static_cast<arrow::Int64Builder*>(builder)->Append(distinct));
        break;
      }
      case AggregationFunction::kPercentile: {
        if (vals.empty()) {
          ARROW_RETURN_NOT_OK(dbl(false, 0));
          break;
        }
        std::vector<double> values = vals;
        std::sort(values.begin(), values.end());
        double pos = agg.percentile * static_cast<double>(values.size() - 1);
        size_t fl = static_cast<size_t>(std::floor(pos));
        double frac = pos - static_cast<double>(fl);
        double v = values[fl];
        if (fl + 1 < values.size() && frac > 0) v += (values[fl + 1] - values[fl]) * frac;
        ARROW_RETURN_NOT_OK(dbl(true, v));
        break;
      }
      case AggregationFunction::kLastK: {
        // Newest first: the values were collected oldest first.
        auto* lb = static_cast<arrow::ListBuilder*>(builder);
        auto* vb = static_cast<arrow::DoubleBuilder*>(lb->value_builder());
        ARROW_RETURN_NOT_OK(lb->Append());
        const auto& values = vals;
        size_t take = std::min(values.size(), static_cast<size_t>(std::max(agg.k, 0)));
        for (size_t v = 0; v < take; ++v) {
          ARROW_RETURN_NOT_OK(vb->Append(values[values.size() - 1 - v]));
        }
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

// ---- the offline window join -----------------------------------------------------------

namespace {

// Key columns of a batch -> one std::string per row (empty optional = null key).
arrow::Status KeyStrings(const std::vector<std::shared_ptr<arrow::ArrayData>>& cols,
                         std::vector<std::string>* out, std::vector<uint8_t>* ok) {
  std::vector<asof::KeyColumnRule> rules;
  std::vector<std::shared_ptr<arrow::DataType>> types;
  for (const auto& c : cols) {
    asof::KeyColumnRule r;
    ARROW_ASSIGN_OR_RAISE(r.key_class, asof::KeyClassOf(*c->type, "key column"));
    rules.push_back(r);
  }
  ARROW_ASSIGN_OR_RAISE(auto norm, asof::NormalizeKeys(cols, rules));
  const int64_t n = norm->length;
  const uint8_t* validity = norm->buffers[0] ? norm->buffers[0]->data() : nullptr;
  if (norm->type->id() == arrow::Type::INT64) {
    const int64_t* v = norm->GetValues<int64_t>(1);
    for (int64_t i = 0; i < n; ++i) {
      bool valid = asof::KeyValid(validity, norm->offset, i);
      ok->push_back(valid);
      out->emplace_back(reinterpret_cast<const char*>(&v[i]), valid ? 8 : 0);
    }
  } else {
    auto bin = asof::BinaryColumn::Of(*norm);
    for (int64_t i = 0; i < n; ++i) {
      bool valid = asof::KeyValid(validity, norm->offset, i);
      ok->push_back(valid);
      out->emplace_back(valid ? std::string(bin.Get(i)) : std::string());
    }
  }
  return arrow::Status::OK();
}

std::shared_ptr<arrow::ArrayData> Data(const arrow::ChunkedArray& c) {
  if (c.num_chunks() == 1) return c.chunk(0)->data();
  auto cat = arrow::Concatenate(c.chunks());
  return cat.ok() ? (*cat)->data() : nullptr;
}

class WindowJoin final : public AsOfJoin {
 public:
  WindowJoin(AsOfSpec spec, WindowSpec windows, bool id_columns)
      : spec_(std::move(spec)), w_(std::move(windows)), id_columns_(id_columns) {}

  arrow::Status AddRight(const std::shared_ptr<arrow::RecordBatch>& batch) override {
    if (finished_) return arrow::Status::Invalid("window join: AddRight after Finish");
    ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches({batch}));
    ARROW_ASSIGN_OR_RAISE(auto ev, ComputeEvents(w_, *table, id_columns_));
    std::vector<std::shared_ptr<arrow::ArrayData>> kcols;
    for (const auto& k : spec_.right_keys) {
      auto c = batch->GetColumnByName(k);
      if (!c) return arrow::Status::Invalid("window join: no key column '", k, "'");
      kcols.push_back(c->data());
    }
    std::vector<std::string> keys;
    std::vector<uint8_t> ok;
    ARROW_RETURN_NOT_OK(KeyStrings(kcols, &keys, &ok));
    auto tcol = batch->GetColumnByName(spec_.right_time);
    if (!tcol)
      return arrow::Status::Invalid("window join: no time column '", spec_.right_time, "'");
    std::vector<int64_t> times(static_cast<size_t>(batch->num_rows()));
    asof::TimesToMicros(*tcol->data(), times.data());
    const size_t A = w_.num_channels;
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      if (!ok[i] || times[i] == asof::kNullTime) continue;
      auto ins = key_ids_.try_emplace(std::move(keys[i]), static_cast<uint32_t>(key_ids_.size()));
      key_.push_back(ins.first->second);
      time_.push_back(times[i]);
      id_.push_back(ev.id[i]);
      value_.insert(value_.end(), ev.value.begin() + i * A, ev.value.begin() + (i + 1) * A);
      valid_.insert(valid_.end(), ev.valid.begin() + i * A, ev.valid.begin() + (i + 1) * A);
    }
    stats_.right_rows += batch->num_rows();
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::Table>> Finish(const arrow::Table& left) override {
    return Match(left);
  }

  arrow::Result<std::shared_ptr<arrow::Table>> Match(const arrow::Table& left) override {
    if (!finished_) Build();
    finished_ = true;
    std::vector<std::shared_ptr<arrow::ArrayData>> kcols;
    for (const auto& k : spec_.left_keys) {
      auto c = left.GetColumnByName(k);
      if (!c) return arrow::Status::Invalid("no key column '", k, "'");
      kcols.push_back(Data(*c));
    }
    std::vector<std::string> keys;
    std::vector<uint8_t> ok;
    if (left.num_rows() > 0) ARROW_RETURN_NOT_OK(KeyStrings(kcols, &keys, &ok));
    auto tcol = left.GetColumnByName(spec_.left_time);
    if (!tcol) return arrow::Status::Invalid("no time column '", spec_.left_time, "'");
    std::vector<int64_t> times(static_cast<size_t>(left.num_rows()));
    if (left.num_rows() > 0) asof::TimesToMicros(*Data(*tcol), times.data());
    ARROW_ASSIGN_OR_RAISE(auto builders, MakeBuilders(w_));
    const size_t A = w_.aggs.size();
    for (int64_t r = 0; r < left.num_rows(); ++r) {
      if (!ok[r] || times[r] == asof::kNullTime) {
        for (size_t a = 0; a < A; ++a) ARROW_RETURN_NOT_OK(builders[a]->AppendNull());
        continue;
      }
      auto it = key_ids_.find(keys[r]);
      if (it == key_ids_.end()) {
        ARROW_RETURN_NOT_OK(Evaluate(w_, nullptr, 0, times[r], &builders));
      } else {
        const auto& range = ranges_[it->second];
        ARROW_RETURN_NOT_OK(
            Evaluate(w_, refs_.data() + range.first, range.second, times[r], &builders));
      }
    }
    arrow::FieldVector fields;
    arrow::ArrayVector arrays;
    for (size_t a = 0; a < A; ++a) {
      std::shared_ptr<arrow::Array> arr;
      ARROW_RETURN_NOT_OK(builders[a]->Finish(&arr));
      fields.push_back(arrow::field(w_.aggs[a].name, arr->type()));
      arrays.push_back(std::move(arr));
    }
    return arrow::Table::Make(arrow::schema(fields), arrays, left.num_rows());
  }

  AsOfStats stats() const override { return stats_; }

 private:
  // Sorts the events canonically (key, time, id, values), drops a kafka event
  // seen twice (as Bucket::Finish does), and cuts them into buckets: flat
  // arrays, one BucketRef per bucket, partials for buckets of
  // kMinPartialEvents events or more.
  void Build() {
    const size_t n = time_.size(), C = w_.num_channels;
    std::vector<uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
      if (key_[x] != key_[y]) return key_[x] < key_[y];
      if (time_[x] != time_[y]) return time_[x] < time_[y];
      if (id_[x] != id_[y]) return id_[x] < id_[y];
      for (size_t ch = 0; ch < C; ++ch) {
        uint8_t vx = valid_[x * C + ch], vy = valid_[y * C + ch];
        if (vx != vy) return vx < vy;
        uint64_t bx = DoubleBits(value_[x * C + ch]), by = DoubleBits(value_[y * C + ch]);
        if (bx != by) return bx < by;
      }
      return false;
    });
    std::vector<int64_t> time;
    std::vector<uint64_t> id;
    std::vector<double> value;
    std::vector<uint8_t> valid;
    time.reserve(n);
    id.reserve(n);
    value.reserve(n * C);
    valid.reserve(n * C);
    struct Cut {
      size_t first;  // event
      uint32_t n;
      int64_t index;
      int64_t partial;  // -1: none
    };
    std::vector<Cut> cuts;
    std::vector<Partial> partials;
    ranges_.assign(key_ids_.size(), {0, 0});
    size_t i = 0;
    while (i < n) {
      size_t j = i;
      while (j < n && key_[order[j]] == key_[order[i]]) ++j;
      size_t first_cut = cuts.size();
      for (size_t e = i; e < j; ++e) {
        uint32_t x = order[e];
        if (e > i && id_[x] != 0 && time.back() == time_[x] && id.back() == id_[x]) continue;
        int64_t k = BucketOf(time_[x], w_.bucket_us);
        if (cuts.size() == first_cut || cuts.back().index != k) {
          cuts.push_back({time.size(), 0, k, -1});
        }
        ++cuts.back().n;
        time.push_back(time_[x]);
        id.push_back(id_[x]);
        value.insert(value.end(), value_.begin() + x * C, value_.begin() + (x + 1) * C);
        valid.insert(valid.end(), valid_.begin() + x * C, valid_.begin() + (x + 1) * C);
      }
      ranges_[key_[order[i]]] = {first_cut, cuts.size() - first_cut};
      i = j;
    }
    // The unsorted copies go before the partials are made.
    std::vector<uint32_t>().swap(key_);
    std::vector<int64_t>().swap(time_);
    std::vector<uint64_t>().swap(id_);
    std::vector<double>().swap(value_);
    std::vector<uint8_t>().swap(valid_);
    std::vector<uint32_t>().swap(order);
    for (auto& cut : cuts) {
      if (cut.n < kMinPartialEvents) continue;
      cut.partial = static_cast<int64_t>(partials.size());
      partials.resize(partials.size() + C);
      FoldPartials(cut.n, value.data() + cut.first * C, valid.data() + cut.first * C, C,
                   partials.data() + cut.partial);
    }
    time_ = std::move(time);
    id_ = std::move(id);
    value_ = std::move(value);
    valid_ = std::move(valid);
    partials_ = std::move(partials);
    refs_.reserve(cuts.size());
    for (const auto& cut : cuts) {
      BucketRef r;
      r.index = cut.index;
      r.n = cut.n;
      r.time = time_.data() + cut.first;
      r.id = id_.data() + cut.first;
      r.value = value_.data() + cut.first * C;
      r.valid = valid_.data() + cut.first * C;
      r.partial = cut.partial >= 0 ? partials_.data() + cut.partial : nullptr;
      refs_.push_back(r);
    }
  }

  AsOfSpec spec_;
  WindowSpec w_;
  bool id_columns_;
  bool finished_ = false;
  // Events as added; after Build, sorted and cut into buckets (refs_).
  std::vector<uint32_t> key_;  // dense key ids (key_ids_)
  std::vector<int64_t> time_;
  std::vector<uint64_t> id_;
  std::vector<double> value_;
  std::vector<uint8_t> valid_;
  std::vector<Partial> partials_;
  std::vector<BucketRef> refs_;
  std::unordered_map<std::string, uint32_t> key_ids_;
  std::vector<std::pair<size_t, size_t>> ranges_;  // per key id: its first bucket, count
  AsOfStats stats_;
};

}  // namespace

arrow::Result<std::unique_ptr<AsOfJoin>> MakeWindowJoin(AsOfSpec spec, WindowSpec windows,
                                                        std::shared_ptr<arrow::Schema> right_schema,
                                                        bool id_columns) {
  for (const auto& k : spec.right_keys) {
    auto f = right_schema->GetFieldByName(k);
    if (!f) return arrow::Status::Invalid("no key column '", k, "'");
    ARROW_RETURN_NOT_OK(asof::KeyClassOf(*f->type(), "right key column '" + k + "'").status());
  }
  return std::unique_ptr<AsOfJoin>(new WindowJoin(std::move(spec), std::move(windows), id_columns));
}

}  // namespace stratalake::retrieval::window
