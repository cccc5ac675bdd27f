// KeyVersionTable: online key -> the newest 16-byte version prefix noted for
// it. Materialization notes every key of the rows deleted from a source (often
// millions), then looks up every row it writes: a flat, open-addressing table
// whose slots hold the key's hash and its prefix, with the key bytes in one
// arena, so a lookup costs one cache miss for the slot (and one for the key
// bytes when the hashes match), not a walk through allocated nodes.
//
// Not thread-safe. Keys are compared byte for byte: the hash only picks the
// slot and rejects most mismatches early.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "stratalake/online.h"

namespace stratalake::online {

class KeyVersionTable {
 public:
  using Prefix = std::array<char, kVersionPrefixSize>;

  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }

  /// Room for `n` keys without growing.
  void Reserve(size_t n) {
    if (SlotsFor(n) > slots_.size()) Rehash(SlotsFor(n));
  }

  /// Forgets every key (the memory is kept for the next use).
  void Clear() {
    for (Slot& s : slots_) s.state = kEmpty;
    arena_.clear();
    used_ = live_ = 0;
  }

  /// Notes `key` with `prefix` (compared as unsigned bytes): a key seen before
  /// keeps the greater of its prefixes.
  void NoteNewest(std::string_view key, const char* prefix) { NoteNewest(key, Hash(key), prefix); }
  /// The same, with `hash` = Hash(key) computed by the caller (to prefetch).
  void NoteNewest(std::string_view key, uint64_t h, const char* prefix) {
    // At half full (tombstones included): twice the slots, or as many again
    // without the tombstones when most of the used slots are erased ones.
    if (SlotsFor(used_ + 1) > slots_.size()) Rehash(std::max<size_t>(SlotsFor(live_ + 1), 16));
    Slot* s = Probe(key, h);
    if (s->state == kLive) {
      if (std::memcmp(prefix, s->prefix.data(), kVersionPrefixSize) > 0) {
        std::memcpy(s->prefix.data(), prefix, kVersionPrefixSize);
      }
      return;
    }
    if (s->state == kEmpty) ++used_;
    s->state = kLive;
    s->hash = h;
    s->key_len = static_cast<uint32_t>(key.size());
    if (key.size() <= kInlineKey) {
      std::memcpy(s->key.bytes, key.data(), key.size());
    } else {
      s->key.at = arena_.size();
      arena_.append(key);
    }
    std::memcpy(s->prefix.data(), prefix, kVersionPrefixSize);
    ++live_;
  }

  /// The prefix noted for `key`, or nullptr. `hash` must be Hash(key).
  const Prefix* Find(std::string_view key, uint64_t hash) const {
    if (live_ == 0) return nullptr;
    const Slot* s = const_cast<KeyVersionTable*>(this)->Probe(key, hash);
    return s->state == kLive ? &s->prefix : nullptr;
  }
  const Prefix* Find(std::string_view key) const { return Find(key, Hash(key)); }

  /// Forgets `key` if its noted prefix is no greater than `prefix`; returns
  /// whether it did. `hash` must be Hash(key).
  bool EraseIfNotNewerThan(std::string_view key, uint64_t hash, const char* prefix) {
    if (live_ == 0) return false;
    Slot* s = Probe(key, hash);
    if (s->state != kLive || std::memcmp(prefix, s->prefix.data(), kVersionPrefixSize) < 0) {
      return false;
    }
    s->state = kErased;  // a tombstone: later keys of the probe run stay reachable
    --live_;
    return true;
  }

  /// Starts loading the slot a lookup of `hash` reads first. Always inlined:
  /// GCC judges a separate function whose only effect is a prefetch free of
  /// side effects and deletes the calls.
  [[gnu::always_inline]] void Prefetch(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & (slots_.size() - 1)]);
  }

  /// Calls fn(key, prefix) for every key, in no particular order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (s.state == kLive) fn(KeyOf(s), s.prefix);
    }
  }

  /// Rebuilds the table at the size its live keys need (after many erasures:
  /// fewer slots to miss in, no tombstones, the arena without erased keys).
  void Compact() {
    KeyVersionTable t;
    t.Reserve(live_);
    ForEach([&](std::string_view key, const Prefix& p) { t.NoteNewest(key, p.data()); });
    *this = std::move(t);
  }

 private:
  enum State : uint8_t { kEmpty = 0, kLive = 1, kErased = 2 };
  // Keys this long (most online keys: a view name and an integer) live in
  // their slot: a lookup then reads nothing else.
  static constexpr size_t kInlineKey = 16;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_len = 0;
    State state = kEmpty;
    union {
      char bytes[kInlineKey];  // key_len <= kInlineKey
      uint64_t at;             // else: offset of the key's bytes in arena_
    } key{};
    Prefix prefix{};
  };

  std::string_view KeyOf(const Slot& s) const {
    return s.key_len <= kInlineKey ? std::string_view(s.key.bytes, s.key_len)
                                   : std::string_view(arena_).substr(s.key.at, s.key_len);
  }

  // Power-of-two slot counts, at most half full (tombstones included).
  static size_t SlotsFor(size_t keys) {
    size_t n = 16;
    while (n < keys * 2) n *= 2;
    return n;
  }

  // The slot holding `key`, or the one a new `key` goes to: the first
  // tombstone of its probe run, else the empty slot that ends it.
  Slot* Probe(std::string_view key, uint64_t h) {
    const size_t mask = slots_.size() - 1;
    Slot* reuse = nullptr;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.state == kEmpty) return reuse ? reuse : &s;
      if (s.state == kErased) {
        if (!reuse) reuse = &s;
      } else if (s.hash == h && s.key_len == key.size() && KeyOf(s) == key) {
        return &s;
      }
    }
  }

  void Rehash(size_t slots) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(slots, Slot{});
    used_ = live_;
    const size_t mask = slots - 1;
    for (const Slot& s : old) {
      if (s.state != kLive) continue;
      size_t i = s.hash & mask;
      while (slots_[i].state != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t used_ = 0;  // live and erased slots (what probing has to walk)
  size_t live_ = 0;
};

}  // namespace stratalake::online
