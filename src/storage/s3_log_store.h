// The log store for tables on S3 and S3-compatible servers: commits are
// conditional PUTs (If-None-Match: *), so that of two writers racing for one
// version exactly one wins (docs/object-storage.md).
//
// Arrow's S3 filesystem has no conditional write, so the commit PUT is sent
// with libcurl, signed with AWS Signature V4 (CURLOPT_AWS_SIGV4), to the same
// endpoint with the same credentials. Everything else (listing, reading, data
// files, _last_checkpoint) goes through the Arrow filesystem.
//
// Before its first commit the store checks once per endpoint and bucket that
// the server honours the condition (a second conditional PUT of a probe object
// must fail with 412). Where it does not, PutIfAbsent refuses to commit unless
// the connection allows unsafe commits, and then falls back to check-then-write.
//
// Thread-safety: immutable after construction and thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "storage/log_store.h"
#include "storage/object_store.h"

namespace stratalake::delta {

class S3LogStore final : public LogStore {
 public:
  S3LogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root,
             S3Connection connection);

  arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const override;
  arrow::Status PutAtomic(const std::string& path, std::string_view data) const override;
  arrow::Status SyncFile(const std::string& path) const override;
  arrow::Status SyncDir(const std::string& dir) const override;

  /// Whether the server rejects a second conditional PUT of one key (probed
  /// once per endpoint and bucket per process; cached).
  arrow::Result<bool> SupportsConditionalPut() const;

 private:
  arrow::Status ConditionalPut(const std::string& path, std::string_view data) const;
  /// conn_ with credentials, from the AWS SDK's chain when none were given.
  S3Connection Signed() const;

  S3Connection conn_;
};

}  // namespace stratalake::delta
