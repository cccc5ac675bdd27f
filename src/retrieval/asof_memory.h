// Memory for the as-of join's large, short-lived arrays (records, match
// vectors, gathered output): anonymous mappings of their own, so that freed
// ones can be kept and reused whole.
//
// Fresh pages are what a big retrieval pays for most on a VM: the kernel
// clears them, and where the host takes back the guest's free memory
// (virtio-balloon free page reporting) the host must back each one again
// first. Pages freed and touched again within seconds are cheap (9 GB/s in
// a test program on the machine of docs/benchmarks.md; 0.4-0.9 GB/s for
// never-touched 2 MiB pages, 2.2 GB/s for 4 KiB ones). So while a BlockReuse
// is alive, freed blocks are kept for the next allocations (the next view's
// records reuse the last one's) up to its byte limit; the blocks go back to
// the system when the last BlockReuse ends. Without one, a freed block is
// unmapped at once. Transparent huge pages are not requested: free page
// reporting returns exactly the large free blocks they are made of, and with
// them the retrieval of docs/benchmarks.md spent twice the system time.
// Internal to src/retrieval.
//
// Thread-safety: the functions and BlockReuse are thread-safe.
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

/// Allocates `bytes` (malloc below a few MiB, else an anonymous mapping or a
/// kept block). Throws std::bad_alloc when out of memory, like new.
void* AllocateLarge(size_t bytes);
/// Frees what AllocateLarge returned for the same `bytes`.
void FreeLarge(void* p, size_t bytes) noexcept;

/// Keeps freed large blocks for reuse while it lives (see above), holding at
/// most `limit_bytes` of them. With several alive (nested, or on other
/// threads), the largest limit applies.
class BlockReuse {
 public:
  explicit BlockReuse(size_t limit_bytes);
  ~BlockReuse();
  BlockReuse(const BlockReuse&) = delete;
  BlockReuse& operator=(const BlockReuse&) = delete;

 private:
  size_t limit_;
};

/// Bytes of freed blocks held for reuse now (for tests).
size_t ReusableBytes();

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
