// The offline window join (window.h MakeWindowJoin; docs/windows.md "Offline").
//
// Events are kept columnar (key code, time, id, per channel value and valid
// byte). A key code is the 64-bit key hash of asof_keys.h (for one integer key
// a bijection; byte keys also keep their bytes to tell colliding keys apart),
// and its top bits name the key's partition. While the events take at most
// half the memory budget they stay in memory; beyond it they are written, by
// partition, to spill files (blocks of columns), and so is the rest at the
// first Match. Match evaluates partition by partition, num_threads at a time:
// a partition's events are sorted by (key, time, id, values), cut into
// buckets with their partials (exactly as a tile's Bucket::Finish), and the
// entity rows of its keys, sorted by key and time, are evaluated by the shared
// RowEvaluator. A spilled partition too large for its share of the budget is
// split on further key bits first (the events of one key cannot be split).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "common/parallel.h"
#include "retrieval/asof_keys.h"
#include "retrieval/asof_spill.h"
#include "retrieval/window.h"

namespace stratalake::retrieval::window {

using registry::AggregationFunction;

namespace {

uint64_t Bits(double d) {
  if (d == 0) d = 0;  // -0.0 and 0.0 are one value
  if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

// Key columns -> one code per row (and the normalized bytes for byte keys).
struct KeyCodes {
  bool bytes = false;
  std::vector<uint64_t> code;
  std::vector<uint8_t> ok;
  std::shared_ptr<arrow::ArrayData> norm;
  asof::BinaryColumn bin;
  std::string_view Key(int64_t i) const { return bytes ? bin.Get(i) : std::string_view(); }
};

arrow::Result<std::vector<asof::KeyColumnRule>> Rules(
    const std::vector<std::shared_ptr<arrow::DataType>>& types) {
  std::vector<asof::KeyColumnRule> rules;
  for (const auto& t : types) {
    asof::KeyColumnRule r;
    ARROW_ASSIGN_OR_RAISE(r.key_class, asof::KeyClassOf(*t, "key column"));
    rules.push_back(r);
  }
  return rules;
}

arrow::Result<KeyCodes> Codes(const std::vector<std::shared_ptr<arrow::ArrayData>>& cols) {
  std::vector<std::shared_ptr<arrow::DataType>> types;
  for (const auto& c : cols) types.push_back(c->type);
  ARROW_ASSIGN_OR_RAISE(auto rules, Rules(types));
  KeyCodes k;
  ARROW_ASSIGN_OR_RAISE(k.norm, asof::NormalizeKeys(cols, rules));
  const int64_t n = k.norm->length;
  k.code.resize(static_cast<size_t>(n));
  k.ok.resize(static_cast<size_t>(n));
  if (n > 0) asof::HashKeys(*k.norm, k.code.data());
  const uint8_t* validity = k.norm->buffers[0] ? k.norm->buffers[0]->data() : nullptr;
  for (int64_t i = 0; i < n; ++i) k.ok[i] = asof::KeyValid(validity, k.norm->offset, i);
  k.bytes = k.norm->type->id() != arrow::Type::INT64;
  if (k.bytes) k.bin = asof::BinaryColumn::Of(*k.norm);
  return k;
}

std::shared_ptr<arrow::ArrayData> Data(const arrow::ChunkedArray& c) {
  if (c.num_chunks() == 1) return c.chunk(0)->data();
  auto cat = arrow::Concatenate(c.chunks());
  return cat.ok() ? (*cat)->data() : nullptr;
}

// Plain vectors (asof::RecVector, whose freed blocks are kept for reuse, made the
// benchmark's peak 13% higher for no gain).
template <typename T>
using Vec = std::vector<T>;

// Appends `n` values from `from` (a few: a loop, not a memcpy call).
template <typename T>
inline void AppendN(Vec<T>* v, const T* from, size_t n) {
  for (size_t c = 0; c < n; ++c) v->push_back(from[c]);
}

// Room for `extra` more elements, growing geometrically.
template <typename T>
inline void Grow(Vec<T>* v, size_t extra) {
  if (v->size() + extra > v->capacity()) v->reserve(std::max(v->size() + extra, 2 * v->capacity()));
}

// Events, columnar.
struct Events {
  Vec<uint64_t> code;
  Vec<int64_t> time;
  Vec<uint64_t> id;
  Vec<double> value;      // event-major: value[e * channels + c]
  Vec<uint8_t> valid;     // same
  Vec<uint64_t> key_end;  // byte keys: end of event e's key in key_bytes
  std::string key_bytes;

  size_t size() const { return time.size(); }
  std::string_view Key(size_t e) const {
    if (key_end.empty()) return {};
    size_t b = e ? key_end[e - 1] : 0;
    return std::string_view(key_bytes).substr(b, key_end[e] - b);
  }
  int64_t Bytes(size_t C) const {
    return static_cast<int64_t>(size() * (24 + 9 * C) + key_end.size() * 8 + key_bytes.size());
  }
  void Append(const Events& o, size_t e, size_t C) {
    code.push_back(o.code[e]);
    time.push_back(o.time[e]);
    id.push_back(o.id[e]);
    AppendN(&value, o.value.data() + e * C, C);
    AppendN(&valid, o.valid.data() + e * C, C);
    if (!o.key_end.empty()) {
      key_bytes.append(o.Key(e));
      key_end.push_back(key_bytes.size());
    }
  }
  void Clear() { *this = Events{}; }
};

// One partition's events, sorted and cut into buckets, and its keys.
struct Built {
  Vec<int64_t> time;
  Vec<uint64_t> id;
  Vec<double> value;
  Vec<uint8_t> valid;
  std::vector<Partial> partials;
  std::vector<BucketRef> refs;
  std::vector<uint64_t> gcode;    // per key, in (code, bytes) order
  std::vector<std::string> gkey;  // byte keys only
  std::vector<size_t> gfirst;     // per key its first bucket; one more at the end
};

// Sorts events [idx] canonically (key, time, id, values), drops a kafka event
// seen twice (as Bucket::Finish does), and cuts them into buckets with
// partials for buckets of kMinPartialEvents events or more.
std::unique_ptr<Built> Build(const Events& ev, std::vector<uint32_t> idx, const WindowSpec& w,
                             bool bytes) {
  const size_t C = w.num_channels;
  const size_t n = idx.size();
  struct Rec {
    uint64_t code;
    int64_t time;
  };
  auto less = [&](uint32_t x, uint32_t y) {
    if (ev.code[x] != ev.code[y]) return ev.code[x] < ev.code[y];
    if (bytes) {
      std::string_view kx = ev.Key(x), ky = ev.Key(y);
      if (kx != ky) return kx < ky;
    }
    if (ev.time[x] != ev.time[y]) return ev.time[x] < ev.time[y];
    if (ev.id[x] != ev.id[y]) return ev.id[x] < ev.id[y];
    for (size_t ch = 0; ch < C; ++ch) {
      uint8_t vx = ev.valid[x * C + ch], vy = ev.valid[y * C + ch];
      if (vx != vy) return vx < vy;
      uint64_t bx = Bits(ev.value[x * C + ch]), by = Bits(ev.value[y * C + ch]);
      if (bx != by) return bx < by;
    }
    return false;
  };
  {
    // Sort (code, time, index) records: the full comparison only breaks ties.
    std::vector<std::pair<Rec, uint32_t>> recs(n);
    for (size_t i = 0; i < n; ++i) recs[i] = {{ev.code[idx[i]], ev.time[idx[i]]}, idx[i]};
    std::sort(recs.begin(), recs.end(), [&](const auto& a, const auto& b) {
      if (a.first.code != b.first.code) return a.first.code < b.first.code;
      if (!bytes && a.first.time != b.first.time) return a.first.time < b.first.time;
      return less(a.second, b.second);
    });
    for (size_t i = 0; i < n; ++i) idx[i] = recs[i].second;
  }
  auto out = std::make_unique<Built>();
  Built& b = *out;
  b.time.reserve(n);
  b.id.reserve(n);
  b.value.reserve(n * C);
  b.valid.reserve(n * C);
  struct Cut {
    size_t first;  // event
    uint32_t n;
    int64_t index;
  };
  std::vector<Cut> cuts;
  size_t i = 0;
  while (i < n) {
    const uint32_t head = idx[i];
    size_t j = i + 1;
    if (bytes) {
      while (j < n && ev.code[idx[j]] == ev.code[head] && ev.Key(idx[j]) == ev.Key(head)) ++j;
    } else {
      while (j < n && ev.code[idx[j]] == ev.code[head]) ++j;
    }
    b.gcode.push_back(ev.code[head]);
    if (bytes) b.gkey.emplace_back(ev.Key(head));
    b.gfirst.push_back(cuts.size());
    const size_t first_cut = cuts.size();
    for (size_t e = i; e < j; ++e) {
      const uint32_t x = idx[e];
      if (e > i && ev.id[x] != 0 && b.time.back() == ev.time[x] && b.id.back() == ev.id[x])
        continue;
      const int64_t k = BucketOf(ev.time[x], w.bucket_us);
      if (cuts.size() == first_cut || cuts.back().index != k) cuts.push_back({b.time.size(), 0, k});
      ++cuts.back().n;
      b.time.push_back(ev.time[x]);
      b.id.push_back(ev.id[x]);
      AppendN(&b.value, ev.value.data() + x * C, C);
      AppendN(&b.valid, ev.valid.data() + x * C, C);
    }
    i = j;
  }
  b.gfirst.push_back(cuts.size());
  std::vector<int64_t> partial_at(cuts.size(), -1);
  size_t num_partials = 0;
  for (size_t c = 0; c < cuts.size(); ++c) {
    if (cuts[c].n >= kMinPartialEvents) partial_at[c] = static_cast<int64_t>(num_partials++);
  }
  b.partials.assign(num_partials * C, Partial{});
  b.refs.resize(cuts.size());
  for (size_t c = 0; c < cuts.size(); ++c) {
    const Cut& cut = cuts[c];
    BucketRef& r = b.refs[c];
    r.index = cut.index;
    r.n = cut.n;
    r.time = b.time.data() + cut.first;
    r.id = b.id.data() + cut.first;
    r.value = b.value.data() + cut.first * C;
    r.valid = b.valid.data() + cut.first * C;
    if (partial_at[c] >= 0) {
      Partial* p = b.partials.data() + partial_at[c] * static_cast<int64_t>(C);
      FoldPartials(cut.n, r.value, r.valid, C, p);
      r.partial = p;
    }
  }
  return out;
}

// The output columns, written row by row in any order: row-major first (the rows
// come in key order, so one row's values land in one or two cache lines rather
// than one per column), then cut into columns block by block.
struct Outputs {
  size_t A = 0;
  std::vector<uint64_t> vals;                           // row * A + a: int64 or double bits
  std::vector<uint8_t> ok;                              // row * A + a
  std::vector<std::vector<std::vector<double>>> lists;  // last_k only

  static Outputs Make(const WindowSpec& w, int64_t rows) {
    Outputs o;
    o.A = w.aggs.size();
    o.vals.assign(static_cast<size_t>(rows) * o.A, 0);
    o.ok.assign(static_cast<size_t>(rows) * o.A, 0);
    for (const auto& a : w.aggs) {
      o.lists.emplace_back();
      if (a.function == AggregationFunction::kLastK) o.lists.back().resize(rows);
    }
    return o;
  }

  void Write(const WindowSpec& w, const RowEvaluator& ev, int64_t row, int slot = 0) {
    uint64_t* v = vals.data() + static_cast<size_t>(row) * A;
    uint8_t* o = ok.data() + static_cast<size_t>(row) * A;
    for (size_t a = 0; a < A; ++a) {
      switch (w.aggs[a].function) {
        case AggregationFunction::kCount:
        case AggregationFunction::kCountDistinct:
          v[a] = static_cast<uint64_t>(ev.Int(a, slot));
          o[a] = 1;
          break;
        case AggregationFunction::kLastK:
          ev.List(a, &lists[a][row], slot);
          o[a] = 1;
          break;
        default: {
          double d;
          o[a] = ev.Double(a, &d, slot) ? 1 : 0;
          std::memcpy(&v[a], &d, 8);
        }
      }
    }
  }

  arrow::Result<std::shared_ptr<arrow::Table>> Finish(const WindowSpec& w, int64_t rows) {
    std::vector<std::shared_ptr<arrow::Buffer>> data(A), bitmaps(A);
    std::vector<int64_t> nulls(A, 0);
    for (size_t a = 0; a < A; ++a) {
      if (w.aggs[a].function == AggregationFunction::kLastK) continue;
      ARROW_ASSIGN_OR_RAISE(data[a], arrow::AllocateBuffer(rows * 8));
      ARROW_ASSIGN_OR_RAISE(bitmaps[a], arrow::AllocateBitmap(rows));
      std::memset(bitmaps[a]->mutable_data(), 0, static_cast<size_t>(bitmaps[a]->size()));
    }
    constexpr int64_t kBlock = 4096;
    for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
      const int64_t r1 = std::min(rows, r0 + kBlock);
      for (size_t a = 0; a < A; ++a) {
        if (!data[a]) continue;
        uint64_t* col = reinterpret_cast<uint64_t*>(data[a]->mutable_data());
        uint8_t* bits = bitmaps[a]->mutable_data();
        int64_t n = 0;
        for (int64_t r = r0; r < r1; ++r) {
          const size_t at = static_cast<size_t>(r) * A + a;
          col[r] = vals[at];
          n += ok[at] ? 0 : 1;
          if (ok[at]) bits[r >> 3] |= static_cast<uint8_t>(1u << (r & 7));
        }
        nulls[a] += n;
      }
    }
    std::vector<uint64_t>().swap(vals);
    arrow::FieldVector fields;
    arrow::ArrayVector arrays;
    for (size_t a = 0; a < A; ++a) {
      auto type = registry::AggregationType(w.aggs[a]);
      std::shared_ptr<arrow::Array> arr;
      if (!data[a]) {
        ARROW_ASSIGN_OR_RAISE(auto builder, arrow::MakeBuilder(type));
        auto* lb = static_cast<arrow::ListBuilder*>(builder.get());
        auto* vb = static_cast<arrow::DoubleBuilder*>(lb->value_builder());
        for (int64_t r = 0; r < rows; ++r) {
          if (!ok[static_cast<size_t>(r) * A + a]) {
            ARROW_RETURN_NOT_OK(lb->AppendNull());
            continue;
          }
          ARROW_RETURN_NOT_OK(lb->Append());
          ARROW_RETURN_NOT_OK(vb->AppendValues(lists[a][r]));
        }
        ARROW_RETURN_NOT_OK(lb->Finish(&arr));
        std::vector<std::vector<double>>().swap(lists[a]);
      } else {
        if (nulls[a] == 0) bitmaps[a].reset();
        arr = arrow::MakeArray(arrow::ArrayData::Make(type, rows, {bitmaps[a], data[a]}, nulls[a]));
      }
      fields.push_back(arrow::field(w.aggs[a].name, arr->type()));
      arrays.push_back(std::move(arr));
    }
    return arrow::Table::Make(arrow::schema(fields), arrays, rows);
  }
};

// An entity row to evaluate.
struct LeftRow {
  uint64_t code;
  int64_t time;
  int64_t row;
};

// A spilled partition: the keys whose codes lie in [lo, hi].
struct PartFile {
  std::string path;
  uint64_t lo = 0, hi = 0;
  int bits = 0;  // key bits that name it
  int64_t bytes = 0;
  int64_t events = 0;
};

constexpr int kSpillBits = 6;  // 64 spill files
constexpr int kSplitBits = 4;  // an oversized one splits into 16

class FileWriter {
 public:
  ~FileWriter() {
    if (f_) std::fclose(f_);
  }
  arrow::Status Open(const std::string& path) {
    f_ = std::fopen(path.c_str(), "ab");
    if (!f_) return arrow::Status::IOError("window join: cannot write spill file ", path);
    path_ = path;
    return arrow::Status::OK();
  }
  arrow::Status Put(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) {
      return arrow::Status::IOError("window join: writing spill file ", path_,
                                    " failed (disk full?)");
    }
    bytes_ += static_cast<int64_t>(n);
    return arrow::Status::OK();
  }
  arrow::Status Close() {
    if (f_ && std::fclose(f_) != 0) {
      f_ = nullptr;
      return arrow::Status::IOError("window join: closing spill file ", path_, " failed");
    }
    f_ = nullptr;
    return arrow::Status::OK();
  }
  int64_t bytes() const { return bytes_; }

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
  int64_t bytes_ = 0;
};

// A block: [count][codes][times][ids][values][valids] and, for byte keys, [key ends][key bytes
// size][key bytes].
template <typename V>
arrow::Status PutVec(FileWriter* f, const V& v) {
  return f->Put(v.data(), v.size() * sizeof(v[0]));
}

arrow::Status WriteBlock(FileWriter* f, const Events& ev) {
  uint64_t n = ev.size();
  ARROW_RETURN_NOT_OK(f->Put(&n, 8));
  ARROW_RETURN_NOT_OK(PutVec(f, ev.code));
  ARROW_RETURN_NOT_OK(PutVec(f, ev.time));
  ARROW_RETURN_NOT_OK(PutVec(f, ev.id));
  ARROW_RETURN_NOT_OK(PutVec(f, ev.value));
  ARROW_RETURN_NOT_OK(PutVec(f, ev.valid));
  if (!ev.key_end.empty()) {
    ARROW_RETURN_NOT_OK(PutVec(f, ev.key_end));
    uint64_t kb = ev.key_bytes.size();
    ARROW_RETURN_NOT_OK(f->Put(&kb, 8));
    ARROW_RETURN_NOT_OK(f->Put(ev.key_bytes.data(), ev.key_bytes.size()));
  }
  return arrow::Status::OK();
}

class FileReader {
 public:
  ~FileReader() {
    if (f_) std::fclose(f_);
  }
  arrow::Status Open(const std::string& path) {
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) return arrow::Status::IOError("window join: cannot read spill file ", path);
    path_ = path;
    return arrow::Status::OK();
  }
  // Appends the next block to `ev`; false at the end of the file.
  arrow::Result<bool> ReadBlock(size_t C, bool bytes, Events* ev) {
    uint64_t n;
    size_t got = std::fread(&n, 1, 8, f_);
    if (got == 0) return false;
    if (got != 8) return Corrupt();
    ARROW_RETURN_NOT_OK(Get(&ev->code, n));
    ARROW_RETURN_NOT_OK(Get(&ev->time, n));
    ARROW_RETURN_NOT_OK(Get(&ev->id, n));
    ARROW_RETURN_NOT_OK(Get(&ev->value, n * C));
    ARROW_RETURN_NOT_OK(Get(&ev->valid, n * C));
    if (bytes) {
      const size_t at = ev->key_end.size();
      const uint64_t base = ev->key_bytes.size();
      ARROW_RETURN_NOT_OK(Get(&ev->key_end, n));
      for (size_t i = at; i < ev->key_end.size(); ++i) ev->key_end[i] += base;
      uint64_t kb;
      if (std::fread(&kb, 1, 8, f_) != 8) return Corrupt();
      ev->key_bytes.resize(base + kb);
      if (std::fread(ev->key_bytes.data() + base, 1, kb, f_) != kb) return Corrupt();
    }
    return true;
  }

 private:
  arrow::Status Corrupt() {
    return arrow::Status::IOError("window join: spill file ", path_, " is truncated");
  }
  template <typename T>
  arrow::Status Get(Vec<T>* v, uint64_t n) {
    const size_t at = v->size();
    v->resize(at + n);
    if (std::fread(v->data() + at, sizeof(T), n, f_) != n) return Corrupt();
    return arrow::Status::OK();
  }
  std::FILE* f_ = nullptr;
  std::string path_;
};

class WindowJoin final : public AsOfJoin {
 public:
  WindowJoin(AsOfSpec spec, WindowSpec windows, bool id_columns, bool right_bytes,
             AsOfOptions options)
      : spec_(std::move(spec)),
        w_(std::move(windows)),
        id_columns_(id_columns),
        right_bytes_(right_bytes),
        options_(std::move(options)) {
    budget_ =
        options_.memory_budget_bytes > 0 ? options_.memory_budget_bytes : DefaultMemoryBudget();
    threads_ = options_.num_threads > 0 ? static_cast<size_t>(options_.num_threads)
                                        : static_cast<size_t>(UsableCpus());
  }

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
    ARROW_ASSIGN_OR_RAISE(auto keys, Codes(kcols));
    auto tcol = batch->GetColumnByName(spec_.right_time);
    if (!tcol)
      return arrow::Status::Invalid("window join: no time column '", spec_.right_time, "'");
    const int64_t rows = batch->num_rows();
    std::vector<int64_t> times(static_cast<size_t>(rows));
    asof::TimesToMicros(*tcol->data(), times.data());
    const size_t C = w_.num_channels;
    Events& b = buf_;
    Grow(&b.code, rows);
    Grow(&b.time, rows);
    Grow(&b.id, rows);
    Grow(&b.value, rows * C);
    Grow(&b.valid, rows * C);
    for (int64_t i = 0; i < rows; ++i) {
      if (!keys.ok[i] || times[i] == asof::kNullTime) continue;
      b.code.push_back(keys.code[i]);
      b.time.push_back(times[i]);
      b.id.push_back(ev.id[i]);
      AppendN(&b.value, ev.value.data() + i * C, C);
      AppendN(&b.valid, ev.valid.data() + i * C, C);
      if (keys.bytes) {
        b.key_bytes.append(keys.Key(i));
        b.key_end.push_back(b.key_bytes.size());
      }
    }
    stats_.right_rows += rows;
    const int64_t held = b.Bytes(C);
    stats_.peak_buffered_bytes = std::max(stats_.peak_buffered_bytes, held);
    if (held > budget_ / 2) ARROW_RETURN_NOT_OK(Spill());
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::Table>> Finish(const arrow::Table& left) override {
    return Match(left);
  }

  arrow::Result<std::shared_ptr<arrow::Table>> Match(const arrow::Table& left) override {
    if (!finished_) ARROW_RETURN_NOT_OK(Prepare());
    finished_ = true;
    const int64_t rows = left.num_rows();
    Outputs out = Outputs::Make(w_, rows);
    std::vector<LeftRow> lrows;
    KeyCodes lk;
    if (rows > 0) {
      std::vector<std::shared_ptr<arrow::ArrayData>> kcols;
      for (const auto& k : spec_.left_keys) {
        auto c = left.GetColumnByName(k);
        if (!c) return arrow::Status::Invalid("no key column '", k, "'");
        kcols.push_back(Data(*c));
      }
      ARROW_ASSIGN_OR_RAISE(lk, Codes(kcols));
      auto tcol = left.GetColumnByName(spec_.left_time);
      if (!tcol) return arrow::Status::Invalid("no time column '", spec_.left_time, "'");
      std::vector<int64_t> times(static_cast<size_t>(rows));
      asof::TimesToMicros(*Data(*tcol), times.data());
      lrows.reserve(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        // A null key or time: every aggregation is null (ok stays 0).
        if (lk.ok[r] && times[r] != asof::kNullTime) lrows.push_back({lk.code[r], times[r], r});
      }
      std::sort(lrows.begin(), lrows.end(), [](const LeftRow& a, const LeftRow& b) {
        return a.code != b.code ? a.code < b.code : a.time < b.time;
      });
    }
    // Keys of another layout (integer against bytes) never match.
    const bool comparable = lk.bytes == right_bytes_;
    // Work items: ranges of the sorted entity rows with the partition to evaluate them against.
    struct Item {
      size_t first, last;  // entity rows
      int part;            // index in built_ or files_, -1: no events
    };
    std::vector<Item> items;
    auto range_of = [&](uint64_t lo, uint64_t hi) {
      auto a = std::lower_bound(lrows.begin(), lrows.end(), lo,
                                [](const LeftRow& r, uint64_t c) { return r.code < c; });
      auto b = std::upper_bound(a, lrows.end(), hi,
                                [](uint64_t c, const LeftRow& r) { return c < r.code; });
      return std::make_pair(static_cast<size_t>(a - lrows.begin()),
                            static_cast<size_t>(b - lrows.begin()));
    };
    std::vector<MemPart> parts = mem_parts_;
    if (spilled_) {
      parts.clear();
      for (const auto& f : files_) parts.push_back({f.lo, f.hi});
    }
    size_t covered = 0;
    if (comparable) {
      for (size_t p = 0; p < parts.size(); ++p) {
        auto [a, b] = range_of(parts[p].lo, parts[p].hi);
        if (a > covered) items.push_back({covered, a, -1});
        // In memory, a partition's rows are cut into pieces for the threads.
        const size_t piece = spilled_ ? b - a : std::max<size_t>(4096, (b - a) / threads_ + 1);
        for (size_t s = a; s < b; s += piece) {
          items.push_back({s, std::min(b, s + piece), static_cast<int>(p)});
        }
        covered = std::max(covered, b);
      }
    }
    if (covered < lrows.size()) items.push_back({covered, lrows.size(), -1});
    stats_.partitions = static_cast<int64_t>(parts.size());
    std::vector<arrow::Status> errors(items.size());
    ParallelFor(items.size(), threads_, [&](size_t i) {
      const Item& it = items[i];
      RowEvaluator ev(w_);
      if (it.part < 0) {
        for (size_t r = it.first; r < it.last; ++r) {
          ev.Run(nullptr, 0, lrows[r].time);
          out.Write(w_, ev, lrows[r].row);
        }
        return;
      }
      const Built* built = nullptr;
      std::unique_ptr<Built> loaded;
      if (spilled_) {
        auto st = Load(files_[it.part], &loaded);
        if (!st.ok()) {
          errors[i] = st;
          return;
        }
        built = loaded.get();
      } else {
        built = built_[it.part].get();
      }
      Evaluate(*built, lk, lrows.data() + it.first, it.last - it.first, &ev, &out);
    });
    for (const auto& st : errors) ARROW_RETURN_NOT_OK(st);
    return out.Finish(w_, rows);
  }

  AsOfStats stats() const override { return stats_; }

 private:
  struct MemPart {
    uint64_t lo, hi;
  };

  // Evaluates sorted entity rows against one partition, two rows at a time.
  void Evaluate(const Built& b, const KeyCodes& lk, const LeftRow* rows, size_t n, RowEvaluator* ev,
                Outputs* out) const {
    size_t g = static_cast<size_t>(
        std::lower_bound(b.gcode.begin(), b.gcode.end(), n ? rows[0].code : 0) - b.gcode.begin());
    const size_t G = b.gcode.size();
    // The buckets of row r's key (none for a key without events).
    auto buckets_of = [&](const LeftRow& lr) -> std::pair<const BucketRef*, size_t> {
      while (g < G && b.gcode[g] < lr.code) ++g;
      size_t found = G;
      if (g < G && b.gcode[g] == lr.code) {
        if (!right_bytes_) {
          found = g;
        } else {
          std::string_view key = lk.Key(lr.row);
          for (size_t h = g; h < G && b.gcode[h] == lr.code; ++h) {
            if (b.gkey[h] == key) {
              found = h;
              break;
            }
          }
        }
      }
      if (found == G) return {nullptr, 0};
      return {b.refs.data() + b.gfirst[found], b.gfirst[found + 1] - b.gfirst[found]};
    };
    size_t r = 0;
    for (; r + 1 < n; r += 2) {
      auto [b0, n0] = buckets_of(rows[r]);
      auto [b1, n1] = buckets_of(rows[r + 1]);
      ev->Run2(b0, n0, rows[r].time, b1, n1, rows[r + 1].time);
      out->Write(w_, *ev, rows[r].row, 0);
      out->Write(w_, *ev, rows[r + 1].row, 1);
    }
    if (r < n) {
      auto [b0, n0] = buckets_of(rows[r]);
      ev->Run(b0, n0, rows[r].time);
      out->Write(w_, *ev, rows[r].row, 0);
    }
  }

  // At the first Match: builds the in-memory partitions, or spills the rest.
  arrow::Status Prepare() {
    if (spilled_) {
      ARROW_RETURN_NOT_OK(Spill());
      for (auto& w : writers_) ARROW_RETURN_NOT_OK(w->Close());
      for (size_t p = 0; p < files_.size(); ++p) {
        files_[p].bytes = writers_[p]->bytes();
      }
      writers_.clear();
      // Partitions too large for their share of the budget are split on further key bits.
      const int64_t share =
          std::max<int64_t>(budget_ / static_cast<int64_t>(2 * threads_), int64_t{256} << 10);
      std::vector<PartFile> done;
      std::vector<PartFile> todo(files_.rbegin(), files_.rend());
      while (!todo.empty()) {
        PartFile f = std::move(todo.back());
        todo.pop_back();
        if (f.bytes == 0) {
          asof::RemoveSpillFile(f.path);
          continue;
        }
        if (f.bytes <= share || f.bits + kSplitBits > 64) {
          done.push_back(std::move(f));
          continue;
        }
        std::vector<PartFile> kids;
        ARROW_RETURN_NOT_OK(Split(f, &kids));
        for (auto k = kids.rbegin(); k != kids.rend(); ++k) todo.push_back(std::move(*k));
      }
      files_ = std::move(done);
      return arrow::Status::OK();
    }
    // In memory: cut into partitions by the top key bits, built in parallel.
    const size_t n = buf_.size();
    const int bits = n < (size_t{1} << 16) ? 0 : 4;
    const size_t P = size_t{1} << bits;
    std::vector<std::vector<uint32_t>> idx(P);
    for (size_t e = 0; e < n; ++e) {
      idx[bits ? buf_.code[e] >> (64 - bits) : 0].push_back(static_cast<uint32_t>(e));
    }
    built_.resize(P);
    for (size_t p = 0; p < P; ++p) {
      uint64_t lo = bits ? uint64_t{p} << (64 - bits) : 0;
      uint64_t hi = bits ? lo | (~uint64_t{0} >> bits) : ~uint64_t{0};
      mem_parts_.push_back({lo, hi});
    }
    const bool bytes = right_bytes_;
    ParallelFor(P, threads_,
                [&](size_t p) { built_[p] = Build(buf_, std::move(idx[p]), w_, bytes); });
    buf_.Clear();
    return arrow::Status::OK();
  }

  // Writes the buffered events to the spill files, by partition.
  arrow::Status Spill() {
    if (!spilled_) {
      ARROW_ASSIGN_OR_RAISE(dir_, asof::SpillDir::Create(options_.spill_dir));
      const size_t P = size_t{1} << kSpillBits;
      for (size_t p = 0; p < P; ++p) {
        PartFile f;
        f.path = dir_->FilePath("window-" + std::to_string(next_file_++));
        f.bits = kSpillBits;
        f.lo = uint64_t{p} << (64 - kSpillBits);
        f.hi = f.lo | (~uint64_t{0} >> kSpillBits);
        files_.push_back(f);
        writers_.push_back(std::make_unique<FileWriter>());
        ARROW_RETURN_NOT_OK(writers_.back()->Open(f.path));
      }
      spilled_ = true;
    }
    ARROW_RETURN_NOT_OK(Distribute(buf_, kSpillBits, 0, &writers_, &files_));
    buf_.Clear();
    return arrow::Status::OK();
  }

  // Appends the events to the writers by their key bits [shift, shift + bits) from the top.
  arrow::Status Distribute(const Events& ev, int bits, int shift,
                           std::vector<std::unique_ptr<FileWriter>>* writers,
                           std::vector<PartFile>* files) {
    const size_t C = w_.num_channels;
    const size_t P = size_t{1} << bits;
    std::vector<std::vector<uint32_t>> idx(P);
    for (size_t e = 0; e < ev.size(); ++e) {
      idx[(ev.code[e] << shift) >> (64 - bits)].push_back(static_cast<uint32_t>(e));
    }
    Events part;
    for (size_t p = 0; p < P; ++p) {
      if (idx[p].empty()) continue;
      part.Clear();
      for (uint32_t e : idx[p]) part.Append(ev, e, C);
      ARROW_RETURN_NOT_OK(WriteBlock((*writers)[p].get(), part));
      (*files)[p].events += static_cast<int64_t>(idx[p].size());
      ++stats_.spilled_partitions;
      std::vector<uint32_t>().swap(idx[p]);
    }
    stats_.spilled_bytes += ev.Bytes(C);
    return arrow::Status::OK();
  }

  // Splits a spill file into 2^kSplitBits files on its next key bits, block by block.
  arrow::Status Split(const PartFile& f, std::vector<PartFile>* kids) {
    const size_t P = size_t{1} << kSplitBits;
    std::vector<std::unique_ptr<FileWriter>> writers;
    for (size_t p = 0; p < P; ++p) {
      PartFile k;
      k.path = dir_->FilePath("window-" + std::to_string(next_file_++));
      k.bits = f.bits + kSplitBits;
      k.lo = f.lo | (uint64_t{p} << (64 - k.bits));
      k.hi = k.lo | (k.bits >= 64 ? 0 : (~uint64_t{0} >> k.bits));
      kids->push_back(k);
      writers.push_back(std::make_unique<FileWriter>());
      ARROW_RETURN_NOT_OK(writers.back()->Open(k.path));
    }
    FileReader in;
    ARROW_RETURN_NOT_OK(in.Open(f.path));
    while (true) {
      Events block;
      ARROW_ASSIGN_OR_RAISE(bool more, in.ReadBlock(w_.num_channels, right_bytes_, &block));
      if (!more) break;
      ARROW_RETURN_NOT_OK(Distribute(block, kSplitBits, f.bits, &writers, kids));
    }
    for (size_t p = 0; p < P; ++p) {
      ARROW_RETURN_NOT_OK(writers[p]->Close());
      (*kids)[p].bytes = writers[p]->bytes();
    }
    asof::RemoveSpillFile(f.path);
    return arrow::Status::OK();
  }

  arrow::Status Load(const PartFile& f, std::unique_ptr<Built>* out) const {
    FileReader in;
    ARROW_RETURN_NOT_OK(in.Open(f.path));
    Events ev;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(bool more, in.ReadBlock(w_.num_channels, right_bytes_, &ev));
      if (!more) break;
    }
    std::vector<uint32_t> idx(ev.size());
    std::iota(idx.begin(), idx.end(), 0u);
    *out = Build(ev, std::move(idx), w_, right_bytes_);
    return arrow::Status::OK();
  }

  AsOfSpec spec_;
  WindowSpec w_;
  bool id_columns_;
  bool right_bytes_;
  AsOfOptions options_;
  int64_t budget_ = 0;
  size_t threads_ = 1;
  bool finished_ = false;
  Events buf_;  // events not yet spilled or built
  // In memory, after the first Match:
  std::vector<MemPart> mem_parts_;
  std::vector<std::unique_ptr<Built>> built_;
  // Spilled:
  bool spilled_ = false;
  std::unique_ptr<asof::SpillDir> dir_;
  std::vector<PartFile> files_;
  std::vector<std::unique_ptr<FileWriter>> writers_;
  int64_t next_file_ = 0;
  AsOfStats stats_;
};

}  // namespace

arrow::Result<std::unique_ptr<AsOfJoin>> MakeWindowJoin(AsOfSpec spec, WindowSpec windows,
                                                        std::shared_ptr<arrow::Schema> right_schema,
                                                        bool id_columns, AsOfOptions options) {
  std::vector<std::shared_ptr<arrow::DataType>> types;
  for (const auto& k : spec.right_keys) {
    auto f = right_schema->GetFieldByName(k);
    if (!f) return arrow::Status::Invalid("no key column '", k, "'");
    ARROW_RETURN_NOT_OK(asof::KeyClassOf(*f->type(), "right key column '" + k + "'").status());
    types.push_back(f->type());
  }
  ARROW_ASSIGN_OR_RAISE(auto rules, Rules(types));
  const bool bytes = asof::UsesBytesLayout(rules);
  return std::unique_ptr<AsOfJoin>(
      new WindowJoin(std::move(spec), std::move(windows), id_columns, bytes, std::move(options)));
}

arrow::Result<std::unique_ptr<AsOfJoin>> MakeWindowJoin(AsOfSpec spec, WindowSpec windows,
                                                        std::shared_ptr<arrow::Schema> right_schema,
                                                        bool id_columns) {
  return MakeWindowJoin(std::move(spec), std::move(windows), std::move(right_schema), id_columns,
                        AsOfOptions{});
}

}  // namespace stratalake::retrieval::window
