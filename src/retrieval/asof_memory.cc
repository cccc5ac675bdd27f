#include "retrieval/asof_memory.h"

#include <sys/mman.h>

#include <cstdlib>

#include <arrow/buffer.h>

namespace stratalake::retrieval::asof {

namespace {

constexpr size_t kLargeBytes = size_t{4} << 20;

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
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  ::madvise(p, bytes, MADV_HUGEPAGE);  // advice only: ignored where unsupported
#endif
  return p;
}

void FreeLarge(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kLargeBytes) {
    std::free(p);
  } else {
    ::munmap(p, bytes);
  }
}

arrow::Result<std::shared_ptr<arrow::Buffer>> AllocateOutput(int64_t bytes) {
  if (bytes < static_cast<int64_t>(kLargeBytes)) return arrow::AllocateBuffer(bytes);
  void* p = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return arrow::Status::OutOfMemory("cannot map ", bytes, " bytes");
#ifdef MADV_HUGEPAGE
  ::madvise(p, static_cast<size_t>(bytes), MADV_HUGEPAGE);
#endif
  return std::make_shared<LargeBuffer>(static_cast<uint8_t*>(p), bytes);
}

}  // namespace stratalake::retrieval::asof
