// Memory for the as-of join's large, short-lived arrays (records, match
// vectors, gathered output): their own mappings with transparent huge pages,
// returned to the system as soon as they are freed. With 4 KiB pages, first
// touching a few GiB of fresh records costs more page faults than the join
// itself takes to sort them. Internal to src/retrieval.
//
// Thread-safety: the functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace stratalake::retrieval::asof {

/// Allocates `bytes` (malloc below a few MiB, else an anonymous mapping with
/// huge pages advised). Throws std::bad_alloc when out of memory, like new.
void* AllocateLarge(size_t bytes);
/// Frees what AllocateLarge returned for the same `bytes`.
void FreeLarge(void* p, size_t bytes) noexcept;

/// An Arrow buffer of `bytes` from AllocateLarge (contents uninitialized),
/// freed when the last reference goes.
arrow::Result<std::shared_ptr<arrow::Buffer>> AllocateOutput(int64_t bytes);

/// An allocator over AllocateLarge that leaves elements uninitialized on
/// resize: the vectors are written in full right after they are sized.
template <typename T>
struct DefaultInitAllocator {
  using value_type = T;
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(AllocateLarge(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { FreeLarge(p, n * sizeof(T)); }
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const DefaultInitAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename T>
using RecVector = std::vector<T, DefaultInitAllocator<T>>;

}  // namespace stratalake::retrieval::asof
