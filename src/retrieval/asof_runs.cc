#include "retrieval/asof_runs.h"

#include <algorithm>

namespace stratalake::retrieval::asof {

namespace {

inline bool Less(const RightRec& a, const RightRec& b) {
  if (a.hash != b.hash) return a.hash < b.hash;
  if (a.time != b.time) return a.time < b.time;
  if (a.created != b.created) return a.created < b.created;
  return a.loc < b.loc;
}

inline bool Less(const LeftRec& a, const LeftRec& b) {
  if (a.hash != b.hash) return a.hash < b.hash;
  if (a.time != b.time) return a.time < b.time;
  return a.loc < b.loc;
}

// One most-significant-digit radix pass on the hash bits below the partition
// prefix spreads the run into buckets of about 16 records (into `scratch`),
// then each bucket is sorted by the full order while it sits in cache. A
// skewed key (one hot entity) ends up in one bucket and is sorted by std::sort
// alone.
template <typename Rec>
std::span<Rec> BucketSort(std::span<Rec> recs, int prefix_bits, RecVector<Rec>* scratch) {
  const size_t n = recs.size();
  int bits = 0;
  while (bits < 16 && (size_t{16} << bits) < n) ++bits;
  bits = std::min(bits, 64 - prefix_bits);
  auto less = [](const Rec& a, const Rec& b) { return Less(a, b); };
  if (bits <= 0 || n <= 64) {
    std::sort(recs.begin(), recs.end(), less);
    return recs;
  }
  const size_t buckets = size_t{1} << bits;
  auto bucket_of = [&](uint64_t h) {
    return static_cast<size_t>((h << prefix_bits) >> (64 - bits));
  };
  std::vector<size_t> start(buckets + 1, 0);
  for (const Rec& r : recs) ++start[bucket_of(r.hash) + 1];
  for (size_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  if (scratch->size() < n) scratch->resize(n);
  Rec* sorted = scratch->data();
  {
    std::vector<size_t> next(start.begin(), start.end() - 1);
    for (const Rec& r : recs) sorted[next[bucket_of(r.hash)]++] = r;
  }
  for (size_t b = 0; b < buckets; ++b) {
    if (start[b + 1] - start[b] > 1) std::sort(sorted + start[b], sorted + start[b + 1], less);
  }
  return {sorted, n};
}

// Rows with equal hashes and different key bytes (a 64-bit hash collision) are
// re-sorted by bytes first, so that every key forms one contiguous group.
template <typename Rec>
void SeparateCollisions(std::span<Rec> v, const KeyBytes& bytes) {
  const size_t n = v.size();
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && v[j].hash == v[i].hash) ++j;
    if (j - i > 1) {
      std::string_view head = bytes.Get(v[i].loc);
      bool collision = false;
      for (size_t k = i + 1; k < j && !collision; ++k) collision = bytes.Get(v[k].loc) != head;
      if (collision) {
        std::sort(v.begin() + i, v.begin() + j, [&](const Rec& a, const Rec& b) {
          std::string_view ka = bytes.Get(a.loc);
          std::string_view kb = bytes.Get(b.loc);
          if (ka != kb) return ka < kb;
          return Less(a, b);
        });
      }
    }
    i = j;
  }
}

template <typename Rec>
std::span<Rec> SortRunImpl(std::span<Rec> recs, int prefix_bits, const KeyBytes* bytes,
                           RecVector<Rec>* scratch) {
  std::span<Rec> sorted = BucketSort(recs, prefix_bits, scratch);
  if (bytes != nullptr) SeparateCollisions(sorted, *bytes);
  return sorted;
}

}  // namespace

std::span<RightRec> SortRun(std::span<RightRec> recs, int prefix_bits, const KeyBytes* bytes,
                            RecVector<RightRec>* scratch) {
  return SortRunImpl(recs, prefix_bits, bytes, scratch);
}

std::span<LeftRec> SortRun(std::span<LeftRec> recs, int prefix_bits, const KeyBytes* bytes,
                           RecVector<LeftRec>* scratch) {
  return SortRunImpl(recs, prefix_bits, bytes, scratch);
}

}  // namespace stratalake::retrieval::asof
