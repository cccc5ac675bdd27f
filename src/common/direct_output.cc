#include "common/direct_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace stratalake {

namespace {

arrow::Status Errno(const char* what, const std::string& path, int err) {
  return arrow::Status::IOError("cannot ", what, " '", path, "': ", std::strerror(err));
}

}  // namespace

void DirectFileOutputStream::FreeAligned::operator()(uint8_t* p) const { std::free(p); }

DirectFileOutputStream::DirectFileOutputStream(std::string path, int fd, bool direct,
                                               uint8_t* stage)
    : path_(std::move(path)), fd_(fd), direct_(direct), stage_(stage) {}

arrow::Result<std::shared_ptr<DirectFileOutputStream>> DirectFileOutputStream::Open(
    const std::string& path, bool direct) {
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  int fd = -1;
  if (direct) {
    fd = ::open(path.c_str(), flags | O_DIRECT, 0666);
    if (fd < 0 && errno == EINVAL) direct = false;  // the file system refuses O_DIRECT
  }
  if (fd < 0) fd = ::open(path.c_str(), flags, 0666);
  if (fd < 0) return Errno("create", path, errno);
  void* stage = nullptr;
  if (::posix_memalign(&stage, static_cast<size_t>(kAlign), static_cast<size_t>(kStageBytes)) !=
      0) {
    ::close(fd);
    return arrow::Status::OutOfMemory("cannot allocate the staging buffer for '", path, "'");
  }
  return std::shared_ptr<DirectFileOutputStream>(
      new DirectFileOutputStream(path, fd, direct, static_cast<uint8_t*>(stage)));
}

DirectFileOutputStream::~DirectFileOutputStream() {
  if (fd_ >= 0) ::close(fd_);
}

arrow::Status DirectFileOutputStream::DropDirect() {
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) < 0) {
    return Errno("change the open flags of", path_, errno);
  }
  direct_ = false;
  return arrow::Status::OK();
}

arrow::Status DirectFileOutputStream::WriteAll(const uint8_t* p, int64_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, static_cast<size_t>(n));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_) {
        // O_DIRECT accepted at open but refused here (an alignment larger
        // than kAlign, or a file system that only checks on write).
        ARROW_RETURN_NOT_OK(DropDirect());
        continue;
      }
      return Errno("write to", path_, errno);
    }
    if (w == 0) return arrow::Status::IOError("cannot write to '", path_, "': no progress");
    p += w;
    n -= w;
    // A short direct write leaves the rest unaligned: finish it buffered.
    if (n > 0 && direct_ && w % kAlign != 0) ARROW_RETURN_NOT_OK(DropDirect());
  }
  return arrow::Status::OK();
}

arrow::Status DirectFileOutputStream::WriteStage(int64_t n) {
  arrow::Status st = WriteAll(stage_.get(), n);
  if (!st.ok()) error_ = st;
  return st;
}

arrow::Status DirectFileOutputStream::Write(const void* data, int64_t nbytes) {
  if (fd_ < 0) return arrow::Status::Invalid("write to a closed file '", path_, "'");
  ARROW_RETURN_NOT_OK(error_);
  const auto* p = static_cast<const uint8_t*>(data);
  while (nbytes > 0) {
    const int64_t take = std::min(nbytes, kStageBytes - staged_);
    std::memcpy(stage_.get() + staged_, p, static_cast<size_t>(take));
    staged_ += take;
    position_ += take;
    p += take;
    nbytes -= take;
    if (staged_ == kStageBytes) {
      ARROW_RETURN_NOT_OK(WriteStage(kStageBytes));
      staged_ = 0;
    }
  }
  return arrow::Status::OK();
}

arrow::Status DirectFileOutputStream::Flush() {
  if (fd_ < 0) return arrow::Status::Invalid("flush of a closed file '", path_, "'");
  ARROW_RETURN_NOT_OK(error_);
  const int64_t whole = direct_ ? staged_ / kAlign * kAlign : staged_;
  if (whole == 0) return arrow::Status::OK();
  ARROW_RETURN_NOT_OK(WriteStage(whole));
  std::memmove(stage_.get(), stage_.get() + whole, static_cast<size_t>(staged_ - whole));
  staged_ -= whole;
  return arrow::Status::OK();
}

arrow::Status DirectFileOutputStream::Close() {
  if (fd_ < 0) return arrow::Status::OK();
  arrow::Status st = error_;
  if (st.ok()) st = Flush();
  if (st.ok() && staged_ > 0) {
    st = DropDirect();  // the last partial block goes through the page cache
    if (st.ok()) st = WriteStage(staged_);
    staged_ = 0;
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && st.ok()) st = Errno("close", path_, errno);
  return st;
}

}  // namespace stratalake
