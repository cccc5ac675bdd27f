// Spill files of the as-of join: a private folder removed with everything in it,
// and Arrow IPC stream files written and read back one partition at a time.
// (The stream format, not the file format, because feature columns may be
// dictionary-encoded with a different dictionary in each batch.) Internal to
// src/retrieval.
//
// Thread-safety: a SpillDir may be used from several threads (it only names
// files); a SpillWriter is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/io/type_fwd.h>
#include <arrow/ipc/type_fwd.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

namespace stratalake::retrieval::asof {

/// A fresh folder "stratalake-asof-*" under a parent folder (created when
/// missing), removed with its contents when the SpillDir is destroyed.
class SpillDir {
 public:
  /// `parent` "" = the system temp folder.
  static arrow::Result<std::unique_ptr<SpillDir>> Create(const std::string& parent);
  ~SpillDir();
  SpillDir(const SpillDir&) = delete;
  SpillDir& operator=(const SpillDir&) = delete;

  const std::string& path() const { return path_; }
  /// A path in the folder for a new file named from `id` (unique per id).
  std::string FilePath(const std::string& id) const;

 private:
  explicit SpillDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

/// Appends record batches of one schema to one IPC stream file.
class SpillWriter {
 public:
  static arrow::Result<std::unique_ptr<SpillWriter>> Open(
      const std::string& path, const std::shared_ptr<arrow::Schema>& schema);
  ~SpillWriter();

  arrow::Status Write(const arrow::RecordBatch& batch);
  /// Finishes the file; rows() and bytes() are final afterwards.
  arrow::Status Close();

  const std::string& path() const { return path_; }
  int64_t rows() const { return rows_; }
  int64_t bytes() const { return bytes_; }

 private:
  SpillWriter() = default;
  std::string path_;
  std::shared_ptr<arrow::io::OutputStream> sink_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> writer_;
  int64_t rows_ = 0;
  int64_t bytes_ = 0;
  bool closed_ = false;
};

/// All batches of a spill file, read with one read: the batches share one buffer.
arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> ReadSpillFile(
    const std::string& path);

/// A reader that reads a spill file batch by batch.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenSpillFile(const std::string& path);

/// Removes one spill file (errors are ignored: the folder goes at the end anyway).
void RemoveSpillFile(const std::string& path);

}  // namespace stratalake::retrieval::asof
