// A queue of record batches taken from in row counts that need not match the
// batches' own boundaries (input-order slices, fixed-size blocks).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include <arrow/record_batch.h>

namespace stratalake {

class BatchQueue {
 public:
  void Push(std::shared_ptr<arrow::RecordBatch> batch) {
    rows_ += batch->num_rows();
    batches_.push_back(std::move(batch));
  }

  int64_t rows() const { return rows_; }

  /// The first min(n, rows()) queued rows, in order, as zero-copy slices of the
  /// queued batches; they leave the queue.
  std::vector<std::shared_ptr<arrow::RecordBatch>> Take(int64_t n) {
    std::vector<std::shared_ptr<arrow::RecordBatch>> parts;
    for (int64_t got = 0; got < n && !batches_.empty();) {
      auto& front = batches_.front();
      const int64_t want = n - got;
      if (front->num_rows() <= want) {
        got += front->num_rows();
        parts.push_back(std::move(front));
        batches_.pop_front();
      } else {
        parts.push_back(front->Slice(0, want));
        front = front->Slice(want);
        got = n;
      }
    }
    for (const auto& p : parts) rows_ -= p->num_rows();
    return parts;
  }

 private:
  std::deque<std::shared_ptr<arrow::RecordBatch>> batches_;
  int64_t rows_ = 0;
};

}  // namespace stratalake
