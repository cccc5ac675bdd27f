// A filesystem for crash and disk-full tests, in memory. It keeps what a disk
// keeps: per file, the bytes as last synced (SyncFile) and, per folder, its
// entries as last synced (SyncDir); a simulated power cut (PowerCut) forgets the
// rest. Unsynced folder changes (files created, linked, renamed, removed) are
// each kept or forgotten at random, as a real filesystem may have written
// some of them back; a file kept that way holds only its synced bytes (none if
// it was never synced).
//
// Faults: FailAfterOps(n) lets n more mutating calls (a create, each Write, a
// sync, a link, a rename, a delete) succeed and then turns the power off: every
// later call fails until PowerCut(). SetSpaceLimit(bytes) fails writes past a
// byte budget with ENOSPC, the way arrow's local files report it.
//
// Paths are '/'-separated; empty components are ignored ("/a//b" is "a/b"), so
// absolute and relative spellings name the same file.
//
// Thread-safety: thread-safe (one mutex); streams may be used from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/filesystem/filesystem.h>

#include "storage/log_store.h"

namespace stratalake::delta {

class FaultInjectionFileSystem : public arrow::fs::FileSystem {
 public:
  FaultInjectionFileSystem();
  ~FaultInjectionFileSystem() override;

  using arrow::fs::FileSystem::GetFileInfo;
  using arrow::fs::FileSystem::OpenAppendStream;
  using arrow::fs::FileSystem::OpenInputFile;
  using arrow::fs::FileSystem::OpenInputStream;
  using arrow::fs::FileSystem::OpenOutputStream;

  std::string type_name() const override { return "faultinjection"; }
  bool Equals(const arrow::fs::FileSystem& other) const override { return &other == this; }
  arrow::Result<arrow::fs::FileInfo> GetFileInfo(const std::string& path) override;
  arrow::Result<arrow::fs::FileInfoVector> GetFileInfo(
      const arrow::fs::FileSelector& select) override;
  arrow::Status CreateDir(const std::string& path, bool recursive) override;
  arrow::Status DeleteDir(const std::string& path) override;
  arrow::Status DeleteDirContents(const std::string& path, bool missing_dir_ok) override;
  arrow::Status DeleteRootDirContents() override;
  arrow::Status DeleteFile(const std::string& path) override;
  arrow::Status Move(const std::string& src, const std::string& dest) override;
  arrow::Status CopyFile(const std::string& src, const std::string& dest) override;
  arrow::Result<std::shared_ptr<arrow::io::InputStream>> OpenInputStream(
      const std::string& path) override;
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenInputFile(
      const std::string& path) override;
  arrow::Result<std::shared_ptr<arrow::io::OutputStream>> OpenOutputStream(
      const std::string& path,
      const std::shared_ptr<const arrow::KeyValueMetadata>& metadata) override;
  arrow::Result<std::shared_ptr<arrow::io::OutputStream>> OpenAppendStream(
      const std::string& path,
      const std::shared_ptr<const arrow::KeyValueMetadata>& metadata) override;

  /// fsync: the file's current bytes survive a power cut.
  arrow::Status SyncFile(const std::string& path);
  /// fsync of a folder: its current entries survive a power cut.
  arrow::Status SyncDir(const std::string& path);
  /// link(): a second name for the file at `from`; AlreadyExists if `to` exists.
  arrow::Status Link(const std::string& from, const std::string& to);

  /// After `n` more mutating calls succeed, the power goes off. -1: never (default).
  void FailAfterOps(int64_t n);
  /// Whether the power is off.
  bool power_off() const;
  /// Writes past `bytes` more bytes fail with ENOSPC (the part that fits is
  /// written). -1: no limit (default).
  void SetSpaceLimit(int64_t bytes);
  /// Forget everything unsynced (see the file comment; `seed` picks which
  /// unsynced folder changes are kept) and turn the power back on.
  void PowerCut(uint64_t seed);
  /// Mutating calls so far.
  int64_t ops() const;
  /// Every file path (for tests that look for leftovers), sorted.
  std::vector<std::string> AllFiles() const;

  struct Node;

 private:
  class Stream;
  friend class Stream;
  std::shared_ptr<Node> Find(const std::string& path) const;  // null if absent
  arrow::Result<std::shared_ptr<Node>> ParentOf(const std::string& path, std::string* name) const;
  arrow::Status Tick(const std::string& what, const std::string& path);
  arrow::Status CheckPower(const std::string& what, const std::string& path) const;
  arrow::Status Append(Node& file, const std::string& path, const void* data, int64_t n);

  mutable std::mutex mu_;
  std::shared_ptr<Node> root_;
  int64_t ops_ = 0;
  int64_t ops_left_ = -1;
  int64_t space_left_ = -1;
  bool power_off_ = false;
  int64_t clock_ns_ = 0;
};

/// A LogStore over a FaultInjectionFileSystem that commits the way
/// LocalLogStore does: write a temporary file, sync it, link it into place,
/// sync the folder.
class FaultInjectionLogStore final : public LogStore {
 public:
  FaultInjectionLogStore(std::shared_ptr<FaultInjectionFileSystem> fs, std::string table_root);

  arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const override;
  arrow::Status PutAtomic(const std::string& path, std::string_view data) const override;
  arrow::Status SyncFile(const std::string& path) const override;
  arrow::Status SyncDir(const std::string& dir) const override;

 private:
  arrow::Status WriteSynced(const std::string& path, std::string_view data) const;
  FaultInjectionFileSystem& ffs_;
};

}  // namespace stratalake::delta
