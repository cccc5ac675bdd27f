#include "retrieval/asof_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include <arrow/buffer.h>

namespace stratalake::retrieval::asof {

namespace {

constexpr size_t kLargeBytes = size_t{4} << 20;
// Mappings are made in whole 2 MiB units, so that freed blocks fit later requests.
constexpr size_t kUnit = size_t{2} << 20;

size_t RoundToUnits(size_t bytes) { return (bytes + kUnit - 1) / kUnit * kUnit; }

// Every live mapping's size, and the freed ones kept for reuse (by size).
class Blocks {
 public:
  static Blocks& Get() {
    static Blocks* blocks = new Blocks();  // never destroyed: buffers may outlive statics
    return *blocks;
  }

  void* Allocate(size_t bytes) {
    const size_t want = RoundToUnits(bytes);
    size_t keep = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest kept block that is large enough. Its pages are resident,
      // so a larger one is split: the rest stays kept, as a block of its own
      // (parts of one mapping are unmapped independently).
      auto it = free_.lower_bound(want);
      if (it == free_.end()) {
        // None fits: a fresh mapping replaces as many kept bytes, so that the
        // kept blocks never add to the peak of what is live.
        keep = free_bytes_ > want ? free_bytes_ - want : 0;
      } else {
        const size_t size = it->first;
        auto* p = static_cast<uint8_t*>(it->second);
        free_.erase(it);
        free_bytes_ -= want;
        if (size > want) free_.emplace(size - want, p + want);
        live_[p] = want;
        return p;
      }
    }
    Trim(keep);
    void* p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      // Out of address space or memory: give the kept blocks back and try once more.
      Trim(0);
      p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return nullptr;
    }
    std::lock_guard<std::mutex> lock(mu_);
    live_[p] = want;
    return p;
  }

  void Free(void* p) {
    size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(p);
      if (it == live_.end()) return;  // not ours: cannot happen
      size = it->second;
      live_.erase(it);
      if (free_bytes_ + size <= Limit()) {
        free_.emplace(size, p);
        free_bytes_ += size;
        return;
      }
    }
    ::munmap(p, size);
  }

  // A BlockReuse scope starts or ends: the limit is the largest of the live
  // scopes' limits (0 when none is), and what is kept beyond it is unmapped.
  void AddScope(size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    scopes_.insert(limit);
  }
  void RemoveScope(size_t limit) {
    size_t now;
    {
      std::lock_guard<std::mutex> lock(mu_);
      scopes_.erase(scopes_.find(limit));
      now = Limit();
    }
    Trim(now);
  }

  size_t FreeBytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_bytes_;
  }

 private:
  // The largest live scope's limit, 0 when none is live (mu_ held).
  size_t Limit() const { return scopes_.empty() ? 0 : *scopes_.rbegin(); }

  // Unmaps kept blocks, largest first, until at most `keep` bytes are kept.
  void Trim(size_t keep) {
    std::vector<std::pair<void*, size_t>> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (free_bytes_ > keep && !free_.empty()) {
        auto last = std::prev(free_.end());
        drop.emplace_back(last->second, last->first);
        free_bytes_ -= last->first;
        free_.erase(last);
      }
    }
    for (auto [p, size] : drop) ::munmap(p, size);
  }

  std::mutex mu_;
  std::unordered_map<void*, size_t> live_;
  std::multimap<size_t, void*> free_;
  size_t free_bytes_ = 0;
  std::multiset<size_t> scopes_;  // the limits of the live BlockReuse scopes
};

// A buffer over an AllocateLarge block.
class LargeBuffer final : public arrow::MutableBuffer {
 public:
  LargeBuffer(uint8_t* data, int64_t size) : arrow::MutableBuffer(data, size) {}
  ~LargeBuffer() override { FreeLarge(mutable_data(), static_cast<size_t>(size())); }
};

}  // namespace

void* AllocateLarge(size_t bytes) {
  if (bytes < kLargeBytes) {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void* p = Blocks::Get().Allocate(bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void FreeLarge(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kLargeBytes) {
    std::free(p);
  } else {
    Blocks::Get().Free(p);
  }
}

BlockReuse::BlockReuse(size_t limit_bytes) : limit_(limit_bytes) { Blocks::Get().AddScope(limit_); }

BlockReuse::~BlockReuse() { Blocks::Get().RemoveScope(limit_); }

size_t ReusableBytes() { return Blocks::Get().FreeBytes(); }

arrow::Result<std::shared_ptr<arrow::Buffer>> AllocateOutput(int64_t bytes) {
  if (bytes < static_cast<int64_t>(kLargeBytes)) return arrow::AllocateBuffer(bytes);
  void* p = Blocks::Get().Allocate(static_cast<size_t>(bytes));
  if (p == nullptr) return arrow::Status::OutOfMemory("cannot map ", bytes, " bytes");
  return std::make_shared<LargeBuffer>(static_cast<uint8_t*>(p), bytes);
}

}  // namespace stratalake::retrieval::asof
