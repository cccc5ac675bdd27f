// Ranged GETs of S3 objects through libcurl, for the data files of s3:// tables
// (docs/object-storage.md, "How data files are read"). Arrow's S3 filesystem
// (the AWS SDK) still lists, reads the Delta log and writes; the bytes of data
// files, the bulk of every scan, come through here: keep-alive connections
// reused across requests (a process-wide pool of curl handles), large receive
// buffers, and the bytes delivered straight into the caller's buffer or sink.
//
// Thread-safety: everything here is thread-safe; an S3DataFile may be read from
// several threads at once (each request takes its own pooled handle).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/io/interfaces.h>

#include "storage/object_store.h"

namespace stratalake {

/// The path-style URL of the object "bucket/key" `path` at `conn`'s endpoint,
/// each path segment percent-encoded (RFC 3986 unreserved characters kept).
std::string S3ObjectUrl(const S3Connection& conn, const std::string& path);

/// "Code: Message" of an S3 error document (its first 200 bytes when it has
/// neither tag), for error messages.
std::string S3ErrorText(const std::string& body);

/// Receives the bytes of a range in order; a failed status stops the request
/// and is returned by S3GetRange.
using RangeSink = std::function<arrow::Status(const uint8_t* data, int64_t n)>;

/// The connection of the S3 filesystem `fs` with credentials filled in: the ones
/// OpenFileSystem resolved, else the AWS SDK's chain as Arrow's filesystem uses
/// it (instance roles, SSO; cached by the SDK). Fails for other filesystems.
arrow::Result<S3Connection> SignedS3Connection(const arrow::fs::FileSystem& fs);

/// GETs bytes [offset, offset + length) of the object "bucket/key" `path` and
/// hands them to `sink`: exactly `length` bytes, or an error. Connection
/// errors, timeouts (no byte for 30 s) and 5xx replies are retried a few times
/// with backoff, resuming after the bytes already delivered. Errors are
/// IOErrors naming the object and the endpoint: a missing object says "does
/// not exist", 403 says to check the credentials, a range past the object's end
/// says so (HTTP 416), an unreachable server asks whether it is running.
arrow::Status S3GetRange(const S3Connection& conn, const std::string& path, int64_t offset,
                         int64_t length, const RangeSink& sink);

/// The size of the object `path` (a HEAD request); errors as S3GetRange's.
arrow::Result<int64_t> S3ObjectSize(const S3Connection& conn, const std::string& path);

/// The reply to one request (S3Send).
struct S3Reply {
  long status = 0;         // 0: no reply (transport error)
  std::string body;        // the reply's body (its first 64 KiB)
  std::string etag;        // the ETag header, quotes kept
  std::string error;       // curl's message when status is 0
  bool sent_body = false;  // the request may have reached the server
};

/// One signed request, not retried, on a pooled keep-alive connection:
/// `method` on the object "bucket/key" `path`, with the query string `query`
/// ("" or e.g. "partNumber=1&uploadId=..."; its values percent-encoded),
/// `body` sent as given (PUT and POST), `headers` added as given. The payload
/// is not hashed into the signature (TLS protects it in transit).
S3Reply S3Send(const S3Connection& conn, const char* method, const std::string& path,
               const std::string& query, std::string_view body,
               const std::vector<std::string>& headers = {});

/// A data file written to an S3 store: bytes are gathered into parts of
/// kUploadPart bytes, and each full part is uploaded (multipart upload) on
/// the I/O context's executor while the writer goes on, at most
/// kPartsInFlight at once per file and 256 MiB of parts waiting or uploading
/// in the whole process (Write and Close wait for room). A file that ends
/// within its first part is one PUT. Close (or CloseAsync) uploads the last
/// part and completes the upload; the object exists, whole, only then. A
/// failed request is retried a few times; a failed upload is aborted (its
/// parts removed) and its error returned by Write or Close. Not thread-safe
/// (one writer), like any Arrow output stream.
class S3UploadStream : public arrow::io::OutputStream {
 public:
  static arrow::Result<std::shared_ptr<S3UploadStream>> Open(S3Connection conn, std::string path,
                                                             arrow::io::IOContext io = {});
  ~S3UploadStream() override;

  arrow::Status Write(const void* data, int64_t nbytes) override;
  arrow::Status Flush() override { return arrow::Status::OK(); }
  arrow::Status Close() override;
  arrow::Future<> CloseAsync() override;
  arrow::Status Abort() override;
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return written_; }

  /// Bytes of parts waiting or uploading now, over all uploads of the process.
  static int64_t PendingBytes();

  static constexpr int64_t kUploadPart = 8 << 20;
  static constexpr int kPartsInFlight = 4;

 private:
  struct Upload;  // shared with the part uploads in flight
  S3UploadStream(std::shared_ptr<Upload> up) : up_(std::move(up)) {}
  arrow::Status SendPart();

  std::shared_ptr<Upload> up_;
  int64_t written_ = 0;
  bool closed_ = false;
};

/// A data file of an S3 store read by range GETs (S3GetRange). A synchronous
/// read is one request; an asynchronous one (Parquet's pre-buffering coalesces
/// the column chunks a read needs and issues the ranges through ReadAsync) is
/// split into requests of at most kReadPart bytes run concurrently on the I/O
/// context's executor, so that one large coalesced range is fetched over
/// several connections (a single connection to a remote store is capped well
/// below the network's bandwidth). The bytes land in a buffer allocated for
/// the read, without another copy. Reads past the end are clamped as for any
/// Arrow file; a read starting past the end is refused.
class S3DataFile : public arrow::io::RandomAccessFile {
 public:
  /// `size` > 0 (the add action's) spares the HEAD request that asks the store.
  static arrow::Result<std::shared_ptr<S3DataFile>> Open(S3Connection conn, std::string path,
                                                         int64_t size = 0);

  /// Streams bytes [offset, offset + length) to `sink` (S3GetRange), for the
  /// read cache, which writes them into its file as they arrive.
  arrow::Status Stream(int64_t offset, int64_t length, const RangeSink& sink) const;

  const std::string& path() const { return path_; }

  arrow::Status Close() override;
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return pos_; }
  arrow::Status Seek(int64_t pos) override;
  arrow::Result<int64_t> GetSize() override { return size_; }
  arrow::Result<int64_t> Read(int64_t n, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t n) override;
  arrow::Result<int64_t> ReadAt(int64_t pos, int64_t n, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t pos, int64_t n) override;
  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(const arrow::io::IOContext& ctx,
                                                          int64_t pos, int64_t n) override;

  /// The largest request an asynchronous read makes.
  static constexpr int64_t kReadPart = 4 << 20;

 private:
  S3DataFile(S3Connection conn, std::string path, int64_t size)
      : conn_(std::move(conn)), path_(std::move(path)), size_(size) {}
  arrow::Result<int64_t> Clamp(int64_t pos, int64_t n) const;

  const S3Connection conn_;
  const std::string path_;
  const int64_t size_;
  int64_t pos_ = 0;
  bool closed_ = false;
};

}  // namespace stratalake
