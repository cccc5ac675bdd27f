#include "common/background_output.h"

#include <cstring>
#include <utility>

namespace stratalake {

BackgroundOutputStream::BackgroundOutputStream(std::shared_ptr<arrow::io::OutputStream> sink,
                                               int64_t max_pending_bytes)
    : sink_(std::move(sink)), max_pending_(max_pending_bytes > 0 ? max_pending_bytes : 1) {
  thread_ = std::thread([this] { Run(); });
}

BackgroundOutputStream::~BackgroundOutputStream() {
  if (!closed_) (void)Close();
}

void BackgroundOutputStream::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    std::shared_ptr<arrow::Buffer> buffer = std::move(queue_.front());
    queue_.pop_front();
    const int64_t size = buffer->size();
    writing_ = true;
    arrow::Status st;
    if (error_.ok()) {
      lock.unlock();
      st = sink_->Write(buffer);
      buffer.reset();
      lock.lock();
      if (!st.ok() && error_.ok()) error_ = st;
    }
    writing_ = false;
    pending_bytes_ -= size;
    changed_.notify_all();
  }
}

arrow::Status BackgroundOutputStream::Write(const std::shared_ptr<arrow::Buffer>& data) {
  if (closed_) return arrow::Status::Invalid("write to a closed stream");
  if (data->size() == 0) return arrow::Status::OK();
  std::unique_lock<std::mutex> lock(mu_);
  // Wait for room, but always let one buffer in: a buffer larger than the
  // limit waits for an empty queue instead.
  changed_.wait(lock, [&] {
    return !error_.ok() || pending_bytes_ == 0 || pending_bytes_ + data->size() <= max_pending_;
  });
  ARROW_RETURN_NOT_OK(error_);
  queue_.push_back(data);
  pending_bytes_ += data->size();
  position_ += data->size();
  changed_.notify_all();
  return arrow::Status::OK();
}

arrow::Status BackgroundOutputStream::Write(const void* data, int64_t nbytes) {
  // The caller may reuse its memory as soon as this returns: queue a copy.
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> copy, arrow::AllocateBuffer(nbytes));
  std::memcpy(copy->mutable_data(), data, static_cast<size_t>(nbytes));
  return Write(copy);
}

arrow::Status BackgroundOutputStream::WaitForQueue() {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return queue_.empty() && !writing_; });
  return error_;
}

arrow::Status BackgroundOutputStream::Flush() {
  if (closed_) return arrow::Status::Invalid("flush of a closed stream");
  ARROW_RETURN_NOT_OK(WaitForQueue());
  return sink_->Flush();
}

arrow::Status BackgroundOutputStream::Close() {
  if (closed_) return arrow::Status::OK();
  closed_ = true;
  arrow::Status st = WaitForQueue();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
  arrow::Status closing = sink_->Close();
  return st.ok() ? closing : st;
}

}  // namespace stratalake
