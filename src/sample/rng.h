// The sample generators' randomness: xoshiro256** seeded through splitmix64, and
// integer-only draws on top of it, so that the generated files do not depend on the
// standard library's distributions or on floating point (byte-identical on every
// machine for a seed).
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace stratalake::repo {

inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  // One independent stream per purpose, so that tuning one file leaves the others alone.
  Rng(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ULL);
    for (auto& s : s_) s = SplitMix64(&x);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [lo, hi], both inclusive (Lemire's multiply-shift; bias below 2^-40).
  int64_t Uniform(int64_t lo, int64_t hi) {
    const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
    const auto wide = static_cast<unsigned __int128>(Next()) * range;
    return lo + static_cast<int64_t>(static_cast<uint64_t>(wide >> 64));
  }

  /// True with probability per_million / 1e6.
  bool Chance(int64_t per_million) { return Uniform(0, 999999) < per_million; }

  /// An index drawn with the given integer weights.
  size_t Pick(std::span<const int> weights) {
    int64_t total = 0;
    for (int w : weights) total += w;
    int64_t u = Uniform(0, total - 1);
    for (size_t i = 0; i < weights.size(); ++i) {
      if (u < weights[i]) return i;
      u -= weights[i];
    }
    return weights.size() - 1;
  }

  /// Right-skewed, roughly log-normal: base * prod of 5 factors uniform in [1, 4),
  /// redrawn until it lies in [lo, hi]. Integer arithmetic only.
  int64_t Skewed(int64_t base, int64_t lo, int64_t hi) {
    for (;;) {
      int64_t v = base;
      for (int i = 0; i < 5; ++i) v = v * (1024 + Uniform(0, 3071)) / 1024;
      if (v >= lo && v <= hi) return v;
    }
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_;
};

}  // namespace stratalake::repo
