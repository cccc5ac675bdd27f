#include "retrieval/asof_gather.h"

#include <algorithm>
#include <cstring>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "common/parallel.h"
#include "retrieval/asof_keys.h"
#include "retrieval/asof_memory.h"
#include "retrieval/asof_runs.h"

namespace stratalake::retrieval::asof {

namespace {

// Raw pointers of one source chunk.
struct Source {
  const uint8_t* validity = nullptr;  // bit index offset + row
  int64_t offset = 0;
  const uint8_t* values = nullptr;  // fixed width: offset applied; boolean: bit index offset + row
  BinaryColumn bin;
};

inline void SetBit(uint8_t* bits, int64_t i) {
  bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
}
inline bool GetBit(const uint8_t* bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

// Runs fn(begin, end) over [0, n) in ranges whose starts are multiples of 64, so
// that ranges never share a validity byte. Returns the sum of fn's results.
template <typename Fn>
int64_t ParallelRanges(int64_t n, size_t threads, Fn&& fn) {
  const int64_t min_range = 1 << 16;
  int64_t ranges = std::max<int64_t>(
      1, std::min<int64_t>(static_cast<int64_t>(threads) * 4, (n + min_range - 1) / min_range));
  int64_t step = ((n + ranges - 1) / ranges + 63) / 64 * 64;
  ranges = step == 0 ? 1 : (n + step - 1) / step;
  std::vector<int64_t> sums(ranges, 0);
  ParallelFor(static_cast<size_t>(ranges), threads, [&](size_t r) {
    int64_t b = static_cast<int64_t>(r) * step;
    sums[r] = fn(b, std::min(n, b + step));
  });
  int64_t total = 0;
  for (int64_t s : sums) total += s;
  return total;
}

// Whether the value at loc is present (matched and not null); sets *src / *row.
inline bool Resolve(const std::vector<Source>& sources, uint64_t loc, const Source** src,
                    int64_t* row) {
  if (loc == kNoRow) return false;
  *src = &sources[LocChunk(loc)];
  *row = LocRow(loc);
  return (*src)->validity == nullptr || GetBit((*src)->validity, (*src)->offset + *row);
}

std::shared_ptr<arrow::ChunkedArray> One(std::shared_ptr<arrow::ArrayData> data) {
  return std::make_shared<arrow::ChunkedArray>(arrow::MakeArray(std::move(data)));
}

constexpr int64_t kPrefetchAhead = 16;

// Always inlined: GCC deems a function whose only effect is a prefetch free of
// side effects (pure), and drops calls to it before inlining them.
[[gnu::always_inline]] inline void Prefetch(const std::vector<Source>& sources, uint64_t loc,
                                            int64_t width) {
  if (loc == kNoRow) return;
  const Source& s = sources[LocChunk(loc)];
  __builtin_prefetch(s.values + static_cast<int64_t>(LocRow(loc)) * width);
}

template <int kWidth>
int64_t GatherFixedRange(const std::vector<Source>& sources, const uint64_t* locs, int64_t width,
                         int64_t b, int64_t e, uint8_t* out, uint8_t* bits) {
  const int64_t w = kWidth > 0 ? kWidth : width;
  int64_t nulls = 0;
  for (int64_t i = b; i < e; ++i) {
    // The source rows are scattered: fetch a few rows ahead.
    if (i + kPrefetchAhead < e) Prefetch(sources, locs[i + kPrefetchAhead], w);
    const Source* s;
    int64_t row;
    if (Resolve(sources, locs[i], &s, &row)) {
      std::memcpy(out + i * w, s->values + row * w, w);
      SetBit(bits, i);
    } else {
      std::memset(out + i * w, 0, w);
      ++nulls;
    }
  }
  return nulls;
}

arrow::Result<std::shared_ptr<arrow::ChunkedArray>> GatherFixed(
    const std::shared_ptr<arrow::DataType>& type, const std::vector<Source>& sources,
    const uint64_t* locs, int64_t n, size_t threads, int64_t width) {
  ARROW_ASSIGN_OR_RAISE(auto values, AllocateOutput(n * width));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> bitmap, arrow::AllocateEmptyBitmap(n));
  uint8_t* out = values->mutable_data();
  uint8_t* bits = bitmap->mutable_data();
  int64_t nulls = ParallelRanges(n, threads, [&](int64_t b, int64_t e) {
    switch (width) {
      case 1:
        return GatherFixedRange<1>(sources, locs, width, b, e, out, bits);
      case 2:
        return GatherFixedRange<2>(sources, locs, width, b, e, out, bits);
      case 4:
        return GatherFixedRange<4>(sources, locs, width, b, e, out, bits);
      case 8:
        return GatherFixedRange<8>(sources, locs, width, b, e, out, bits);
      case 16:
        return GatherFixedRange<16>(sources, locs, width, b, e, out, bits);
      default:
        return GatherFixedRange<0>(sources, locs, width, b, e, out, bits);
    }
  });
  if (nulls == 0) bitmap = nullptr;
  return One(arrow::ArrayData::Make(type, n, {std::move(bitmap), std::move(values)}, nulls));
}

arrow::Result<std::shared_ptr<arrow::ChunkedArray>> GatherBoolean(
    const std::shared_ptr<arrow::DataType>& type, const std::vector<Source>& sources,
    const uint64_t* locs, int64_t n, size_t threads) {
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> values, arrow::AllocateEmptyBitmap(n));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> bitmap, arrow::AllocateEmptyBitmap(n));
  uint8_t* out = values->mutable_data();
  uint8_t* bits = bitmap->mutable_data();
  int64_t nulls = ParallelRanges(n, threads, [&](int64_t b, int64_t e) {
    int64_t null_count = 0;
    for (int64_t i = b; i < e; ++i) {
      const Source* s;
      int64_t row;
      if (Resolve(sources, locs[i], &s, &row)) {
        if (GetBit(s->values, s->offset + row)) SetBit(out, i);
        SetBit(bits, i);
      } else {
        ++null_count;
      }
    }
    return null_count;
  });
  if (nulls == 0) bitmap = nullptr;
  return One(arrow::ArrayData::Make(type, n, {std::move(bitmap), std::move(values)}, nulls));
}

template <typename Offset>
arrow::Result<std::shared_ptr<arrow::ChunkedArray>> GatherBinary(
    const std::shared_ptr<arrow::DataType>& type, const std::vector<Source>& sources,
    const uint64_t* locs, int64_t n, size_t threads) {
  // Value lengths first; then the output is cut where 32-bit offsets would overflow.
  RecVector<int64_t> pos(n + 1);
  pos[0] = 0;
  ParallelRanges(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Source* s;
      int64_t row;
      pos[i + 1] = Resolve(sources, locs[i], &s, &row) ? s->bin.Length(row) : 0;
    }
    return int64_t{0};
  });
  for (int64_t i = 0; i < n; ++i) pos[i + 1] += pos[i];
  constexpr int64_t kMaxBytes = std::numeric_limits<Offset>::max();
  arrow::ArrayVector pieces;
  int64_t begin = 0;
  do {
    int64_t end = n;
    if (pos[n] - pos[begin] > kMaxBytes) {
      end = std::upper_bound(pos.begin() + begin, pos.end(), pos[begin] + kMaxBytes) - pos.begin() -
            1;
      if (end == begin) {
        return arrow::Status::CapacityError("a value of ", type->ToString(),
                                            " is too large for one array");
      }
    }
    const int64_t m = end - begin;
    const int64_t base = pos[begin];
    ARROW_ASSIGN_OR_RAISE(auto offsets, AllocateOutput((m + 1) * sizeof(Offset)));
    ARROW_ASSIGN_OR_RAISE(auto data, AllocateOutput(pos[end] - base));
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> bitmap, arrow::AllocateEmptyBitmap(m));
    auto* out_off = reinterpret_cast<Offset*>(offsets->mutable_data());
    uint8_t* out = data->mutable_data();
    uint8_t* bits = bitmap->mutable_data();
    const uint64_t* chunk_locs = locs + begin;
    const int64_t* chunk_pos = pos.data() + begin;
    int64_t nulls = ParallelRanges(m, threads, [&](int64_t b, int64_t e) {
      int64_t null_count = 0;
      for (int64_t i = b; i < e; ++i) {
        out_off[i] = static_cast<Offset>(chunk_pos[i] - base);
        const Source* s;
        int64_t row;
        if (Resolve(sources, chunk_locs[i], &s, &row)) {
          std::string_view v = s->bin.Get(row);
          if (!v.empty()) std::memcpy(out + (chunk_pos[i] - base), v.data(), v.size());
          SetBit(bits, i);
        } else {
          ++null_count;
        }
      }
      return null_count;
    });
    out_off[m] = static_cast<Offset>(pos[end] - base);
    if (nulls == 0) bitmap = nullptr;
    pieces.push_back(arrow::MakeArray(arrow::ArrayData::Make(
        type, m, {std::move(bitmap), std::move(offsets), std::move(data)}, nulls)));
    begin = end;
  } while (begin < n);
  return std::make_shared<arrow::ChunkedArray>(std::move(pieces), type);
}

// Any other type: Arrow's Take over the chunks.
arrow::Result<std::shared_ptr<arrow::ChunkedArray>> GatherWithTake(
    const std::shared_ptr<arrow::DataType>& type,
    const std::vector<std::shared_ptr<arrow::ArrayData>>& chunks, const uint64_t* locs, int64_t n) {
  std::vector<int64_t> starts(chunks.size() + 1, 0);
  arrow::ArrayVector arrays;
  for (size_t c = 0; c < chunks.size(); ++c) {
    starts[c + 1] = starts[c] + chunks[c]->length;
    arrays.push_back(arrow::MakeArray(chunks[c]));
  }
  ARROW_ASSIGN_OR_RAISE(auto indices, arrow::AllocateBuffer(n * sizeof(int64_t)));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> bitmap, arrow::AllocateEmptyBitmap(n));
  auto* idx = reinterpret_cast<int64_t*>(indices->mutable_data());
  int64_t nulls = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (locs[i] == kNoRow) {
      idx[i] = 0;
      ++nulls;
    } else {
      idx[i] = starts[LocChunk(locs[i])] + LocRow(locs[i]);
      SetBit(bitmap->mutable_data(), i);
    }
  }
  auto index_array = arrow::MakeArray(
      arrow::ArrayData::Make(arrow::int64(), n, {std::move(bitmap), std::move(indices)}, nulls));
  auto values = std::make_shared<arrow::ChunkedArray>(std::move(arrays), type);
  ARROW_ASSIGN_OR_RAISE(arrow::Datum taken, arrow::compute::Take(values, index_array));
  if (taken.is_array()) return One(taken.array());
  return taken.chunked_array();
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::ChunkedArray>> Gather(
    const std::shared_ptr<arrow::DataType>& type,
    const std::vector<std::shared_ptr<arrow::ArrayData>>& chunks, const uint64_t* locs, int64_t n,
    size_t threads) {
  if (type->id() == arrow::Type::NA) {
    return std::make_shared<arrow::ChunkedArray>(std::make_shared<arrow::NullArray>(n));
  }
  if (chunks.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto nulls, arrow::MakeArrayOfNull(type, n));
    return std::make_shared<arrow::ChunkedArray>(nulls);
  }
  std::vector<Source> sources(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    const arrow::ArrayData& a = *chunks[c];
    Source& s = sources[c];
    s.offset = a.offset;
    s.validity = a.null_count == 0 ? nullptr : a.GetValues<uint8_t>(0, 0);
  }
  const auto& layout = type->layout();
  const arrow::Type::type id = type->id();
  // Flat fixed-width types only (a list's offsets also look fixed-width).
  if (id != arrow::Type::DICTIONARY && id != arrow::Type::EXTENSION && type->num_fields() == 0 &&
      layout.buffers.size() == 2 && layout.buffers[1].kind == arrow::DataTypeLayout::FIXED_WIDTH &&
      layout.buffers[1].byte_width > 0) {
    const int64_t width = layout.buffers[1].byte_width;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const arrow::ArrayData& a = *chunks[c];
      if (a.buffers[1]) sources[c].values = a.buffers[1]->data() + a.offset * width;
    }
    return GatherFixed(type, sources, locs, n, threads, width);
  }
  switch (id) {
    case arrow::Type::BOOL:
      for (size_t c = 0; c < chunks.size(); ++c) {
        if (chunks[c]->buffers[1]) sources[c].values = chunks[c]->buffers[1]->data();
      }
      return GatherBoolean(type, sources, locs, n, threads);
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
      for (size_t c = 0; c < chunks.size(); ++c) sources[c].bin = BinaryColumn::Of(*chunks[c]);
      return GatherBinary<int32_t>(type, sources, locs, n, threads);
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY:
      for (size_t c = 0; c < chunks.size(); ++c) sources[c].bin = BinaryColumn::Of(*chunks[c]);
      return GatherBinary<int64_t>(type, sources, locs, n, threads);
    default:
      return GatherWithTake(type, chunks, locs, n);
  }
}

}  // namespace stratalake::retrieval::asof
