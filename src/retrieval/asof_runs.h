// Sorted runs and the as-of merge cursor: the core of the point-in-time join,
// kept apart from partitioning, spilling and gathering so that trailing-window
// aggregations can reuse it. Internal to src/retrieval.
//
// A run is the rows of one partition as fixed-size records over contiguous
// int64s. Keys are represented by a 64-bit hash (asof_keys.h HashKeys): for
// int64 keys it is a bijection, so hash order is a total key order; for byte
// keys rows with equal hashes are also compared by their bytes, so colliding
// keys still form separate groups. The key order is therefore arbitrary but the
// same on both sides, which is all a merge needs.
//
// Thread-safety: the functions are pure; different runs may be sorted and
// merged concurrently.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include <arrow/type_fwd.h>

#include "retrieval/asof_keys.h"
#include "retrieval/asof_memory.h"

namespace stratalake::retrieval::asof {

/// A row's location: (chunk index << 32) | row within the chunk. Chunks are
/// numbered in arrival order, so loc order is arrival order.
inline constexpr uint64_t kNoRow = ~uint64_t{0};
inline uint64_t MakeLoc(uint64_t chunk, uint64_t row) { return (chunk << 32) | row; }
inline uint32_t LocChunk(uint64_t loc) { return static_cast<uint32_t>(loc >> 32); }
inline uint32_t LocRow(uint64_t loc) { return static_cast<uint32_t>(loc); }
/// Chunks handed to the join are cut to at most this many rows.
inline constexpr int64_t kMaxChunkRows = int64_t{1} << 31;

/// A feature row: key hash, event time, created time (kNullTime when null or
/// absent), location. Sorted by (key, time, created, loc).
struct RightRec {
  uint64_t hash;
  int64_t time;
  int64_t created;
  uint64_t loc;
};

/// An entity row: key hash, time, location. Sorted by (key, time, loc).
struct LeftRec {
  uint64_t hash;
  int64_t time;
  uint64_t loc;
};

/// The normalized key bytes of rows by loc (bytes layout only; one chunk per
/// AddChunk call, in loc chunk order). Does not own the arrays.
class KeyBytes {
 public:
  void AddChunk(const arrow::ArrayData& keys) { chunks_.push_back(BinaryColumn::Of(keys)); }
  std::string_view Get(uint64_t loc) const { return chunks_[LocChunk(loc)].Get(LocRow(loc)); }

 private:
  std::vector<BinaryColumn> chunks_;
};

/// Sorts a run by key, then time, created and loc, and returns the sorted
/// records: in `scratch` (grown as needed, reusable across runs) or, for short
/// runs, in place in `recs`. `prefix_bits` high bits of every hash are known
/// to be equal (the partition number), so the radix pass uses the bits below
/// them. `bytes` is null for int64 keys.
std::span<RightRec> SortRun(std::span<RightRec> recs, int prefix_bits, const KeyBytes* bytes,
                            RecVector<RightRec>* scratch);
std::span<LeftRec> SortRun(std::span<LeftRec> recs, int prefix_bits, const KeyBytes* bytes,
                           RecVector<LeftRec>* scratch);

/// The lower TTL bound for a left time: left_time - ttl_us, saturating.
inline int64_t TtlLowerBound(int64_t left_time, int64_t ttl_us) {
  if (ttl_us <= 0) return std::numeric_limits<int64_t>::min();
  if (left_time < std::numeric_limits<int64_t>::min() + ttl_us) {
    return std::numeric_limits<int64_t>::min();
  }
  return left_time - ttl_us;
}

/// The forward merge of two sorted runs: calls `emit(left_loc, right_loc)` for
/// every left record with a match (equal key, right time <= left time, within
/// the TTL; the last such right record in sort order wins, which is the
/// largest time, then created, then arrival). Left records without a match are
/// not reported. `lbytes`/`rbytes` are null for int64 keys.
template <typename Emit>
void MergeAsOf(std::span<const LeftRec> left, const KeyBytes* lbytes,
               std::span<const RightRec> right, const KeyBytes* rbytes, int64_t ttl_us,
               Emit&& emit) {
  const size_t nl = left.size();
  const size_t nr = right.size();
  size_t li = 0;
  size_t ri = 0;
  while (li < nl && ri < nr) {
    const uint64_t lh = left[li].hash;
    const uint64_t rh = right[ri].hash;
    if (lh < rh) {
      ++li;
      continue;
    }
    if (lh > rh) {
      ++ri;
      continue;
    }
    size_t lend = li + 1;
    size_t rend = ri + 1;
    if (lbytes == nullptr) {
      while (lend < nl && left[lend].hash == lh) ++lend;
      while (rend < nr && right[rend].hash == rh) ++rend;
    } else {
      std::string_view lk = lbytes->Get(left[li].loc);
      std::string_view rk = rbytes->Get(right[ri].loc);
      if (lk != rk) {
        // Equal hashes, different keys: groups within an equal hash are ordered by bytes.
        if (lk < rk) {
          ++li;
        } else {
          ++ri;
        }
        continue;
      }
      while (lend < nl && left[lend].hash == lh && lbytes->Get(left[lend].loc) == lk) ++lend;
      while (rend < nr && right[rend].hash == rh && rbytes->Get(right[rend].loc) == rk) ++rend;
    }
    size_t k = ri;
    for (size_t l = li; l < lend; ++l) {
      const int64_t t = left[l].time;
      while (k < rend && right[k].time <= t) ++k;
      if (k > ri && right[k - 1].time >= TtlLowerBound(t, ttl_us))
        emit(left[l].loc, right[k - 1].loc);
    }
    li = lend;
    ri = rend;
  }
}

}  // namespace stratalake::retrieval::asof
