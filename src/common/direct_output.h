// A local output file written around the page cache (O_DIRECT), for large
// files that are written once and not read back by this process: a training
// set's Parquet output.
//
// Why: a buffered write(2) copies every byte into page-cache pages that the
// kernel must first take from its free memory and clear. On a VM whose free
// memory the host reclaims (virtio-balloon free page reporting, as on the
// machine of docs/benchmarks.md) each such page costs a host fault too:
// writing 2.5 GB through the page cache took 7.9 s of system time there,
// with O_DIRECT 0.5 s (dd, same disk). A direct write also leaves the
// reader's own hot files in the cache.
//
// How: writes are copied into an aligned staging buffer, and whole buffers
// go to the file with O_DIRECT. Close writes the last whole blocks directly
// and the final partial block through the page cache (O_DIRECT dropped with
// fcntl), so the file ends exactly where the data does.
//
// Where the file system refuses O_DIRECT (tmpfs; some network and overlay
// file systems), at open or at the first write, the stream writes through
// the page cache instead, with the same staging: nothing else changes.
//
// Contract: bytes are in the file after Close. Flush writes what fills whole
// blocks; up to one block less a byte stays staged until more data or Close.
// A failed write is returned by that Write, Flush or Close, and the stream
// must then be abandoned (the file's contents are unspecified).
//
// Thread-safety: like any OutputStream, one caller at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/io/interfaces.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace stratalake {

class DirectFileOutputStream final : public arrow::io::OutputStream {
 public:
  /// Creates or truncates `path`. `direct = false` writes through the page
  /// cache from the start (same staging, for comparisons and opt-outs).
  static arrow::Result<std::shared_ptr<DirectFileOutputStream>> Open(const std::string& path,
                                                                     bool direct = true);
  ~DirectFileOutputStream() override;
  DirectFileOutputStream(const DirectFileOutputStream&) = delete;
  DirectFileOutputStream& operator=(const DirectFileOutputStream&) = delete;

  arrow::Status Write(const void* data, int64_t nbytes) override;
  arrow::Status Flush() override;
  arrow::Status Close() override;
  bool closed() const override { return fd_ < 0; }
  arrow::Result<int64_t> Tell() const override { return position_; }

  /// Whether writes still bypass the page cache (false after a fallback).
  bool direct() const { return direct_; }

  /// The staging buffer's size and the alignment of direct writes.
  static constexpr int64_t kStageBytes = int64_t{8} << 20;
  static constexpr int64_t kAlign = 4096;

 private:
  struct FreeAligned {
    void operator()(uint8_t* p) const;
  };

  DirectFileOutputStream(std::string path, int fd, bool direct, uint8_t* stage);
  // Writes stage_[0, n) at the file's end (n a multiple of kAlign while
  // direct_), falling back to the page cache once if O_DIRECT is refused.
  arrow::Status WriteStage(int64_t n);
  arrow::Status WriteAll(const uint8_t* p, int64_t n);
  arrow::Status DropDirect();

  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  std::unique_ptr<uint8_t, FreeAligned> stage_;
  int64_t staged_ = 0;    // bytes in stage_
  int64_t position_ = 0;  // bytes written by the caller
  arrow::Status error_;   // the first failure; every later call returns it
};

}  // namespace stratalake
