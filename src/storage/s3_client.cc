#include "storage/s3_client.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/filesystem/s3fs.h>
#include <arrow/util/future.h>
#include <arrow/util/thread_pool.h>

namespace stratalake {

namespace {

// Attempts of one request: the first and up to 4 retries, backing off 50 ms,
// 100 ms, 200 ms, 400 ms (a restarting server or a dropped connection).
constexpr int kAttempts = 5;
// curl's receive buffer: large reads from the socket, few callbacks.
constexpr long kReceiveBuffer = 512 * 1024;
// A request that receives nothing for this long has failed (a hung server).
constexpr long kStallSeconds = 30;
// Idle handles kept (each keeps its keep-alive connection).
constexpr size_t kMaxIdleHandles = 32;

// RFC 3986 percent-encoding of one path segment (unreserved characters kept).
std::string EncodeSegment(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Easy handles kept between requests, so that their connections are reused;
// DNS answers and TLS sessions are shared among them.
class HandlePool {
 public:
  HandlePool() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    share_ = curl_share_init();
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  CURL* Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  void Give(CURL* h) {
    curl_easy_reset(h);  // options go; the connection and its cache stay
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleHandles) {
      idle_.push_back(h);
      return;
    }
    curl_easy_cleanup(h);
  }

  CURLSH* share() const { return share_; }

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<HandlePool*>(user)->locks_[static_cast<size_t>(data) % kLocks].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<HandlePool*>(user)->locks_[static_cast<size_t>(data) % kLocks].unlock();
  }

  static constexpr size_t kLocks = 16;
  std::mutex locks_[kLocks];
  CURLSH* share_ = nullptr;
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

HandlePool& Pool() {
  static auto* p = new HandlePool();  // never destroyed: used until the process exits
  return *p;
}

// One request's state, seen by curl's callbacks.
struct Transfer {
  CURL* handle = nullptr;
  const RangeSink* sink = nullptr;
  int64_t offset = 0;  // where the range starts
  int64_t skip = -1;   // bytes to drop first: set on the first bytes of the reply
  int64_t want = 0;    // bytes wanted
  int64_t content_length = -1;
  int64_t got = 0;
  long status = 0;
  std::string error_body;
  arrow::Status sink_status;
  bool complete = false;  // every wanted byte arrived; the rest was cut off
};

size_t OnData(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  if (t->status == 0) curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status != 200 && t->status != 206) {
    if (t->error_body.size() < 64 * 1024) t->error_body.append(ptr, n);
    return n;
  }
  // A 200 is the whole object (a server that ignored the Range header): skip to the offset.
  if (t->skip < 0) t->skip = t->status == 200 ? t->offset : 0;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(ptr);
  int64_t avail = static_cast<int64_t>(n);
  if (t->skip > 0) {
    int64_t drop = std::min(t->skip, avail);
    t->skip -= drop;
    p += drop;
    avail -= drop;
  }
  int64_t take = std::min(avail, t->want - t->got);
  if (take > 0) {
    arrow::Status st = (*t->sink)(p, take);
    if (!st.ok()) {
      t->sink_status = std::move(st);
      return 0;  // aborts the transfer
    }
    t->got += take;
  }
  if (t->got == t->want && take < avail) {
    t->complete = true;
    return 0;  // more than asked for (no Range support): stop receiving
  }
  return n;
}

size_t CollectBody(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() < 64 * 1024) out->append(ptr, size * nmemb);
  return size * nmemb;
}

// Keeps the ETag header of a reply.
size_t CollectEtag(char* ptr, size_t size, size_t nmemb, void* user) {
  const size_t n = size * nmemb;
  std::string_view line(ptr, n);
  if (line.size() > 5 && strncasecmp(line.data(), "etag:", 5) == 0) {
    line.remove_prefix(5);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) {
      line.remove_suffix(1);
    }
    *static_cast<std::string*>(user) = std::string(line);
  }
  return n;
}

// The text of the first <name> element of an XML reply ("" if none).
std::string XmlTag(const std::string& body, const std::string& name) {
  auto b = body.find("<" + name + ">");
  if (b == std::string::npos) return std::string();
  b += name.size() + 2;
  auto e = body.find("</" + name + ">", b);
  return e == std::string::npos ? std::string() : body.substr(b, e - b);
}

std::string Where(const S3Connection& conn, const std::string& path) {
  return "'s3://" + path + "' (at " + conn.endpoint_url + ")";
}

arrow::Status HttpError(const S3Connection& conn, const std::string& path, int64_t offset,
                        int64_t length, long status, const std::string& body) {
  const std::string text = body.empty() ? std::string() : " " + S3ErrorText(body);
  if (status == 404) {
    return arrow::Status::IOError("object ", Where(conn, path), " does not exist (HTTP 404", text,
                                  ")");
  }
  if (status == 403) {
    return arrow::Status::IOError(
        "cannot read ", Where(conn, path), ": HTTP 403", text,
        "; check the credentials (access_key_id/secret_access_key, AWS_ACCESS_KEY_ID, a "
        "profile) and the region");
  }
  if (status == 416) {
    return arrow::Status::IOError(
        "cannot read bytes ", offset, " to ", offset + length, " of ", Where(conn, path),
        ": the range starts past the end of the object (HTTP 416", text, ")");
  }
  return arrow::Status::IOError("cannot read ", Where(conn, path), ": HTTP ", status, text);
}

bool Retryable(long status) {
  return status == 0 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

// The options of every request: the URL, the shared DNS and TLS caches,
// signing (when there are credentials), `headers`, keep-alive and timeouts
// (connecting: 10 s; no byte for kStallSeconds).
void SetCommonOptions(CURL* h, const S3Connection& conn, const std::string& url,
                      const std::string& sigv4, const std::string& userpwd,
                      struct curl_slist* headers) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_SHARE, Pool().share());
  if (!conn.access_key_id.empty()) {
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(h, CURLOPT_USERPWD, userpwd.c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
}

// One signed request on a pooled handle; `t` gets the reply.
CURLcode Perform(const S3Connection& conn, const std::string& url, bool head, int64_t offset,
                 int64_t length, Transfer* t) {
  HandlePool& pool = Pool();
  CURL* h = pool.Take();
  if (h == nullptr) return CURLE_OUT_OF_MEMORY;
  t->handle = h;
  std::string range =
      "Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  std::string sigv4 = "aws:amz:" + conn.region + ":s3";
  std::string userpwd = conn.access_key_id + ":" + conn.secret_access_key;
  struct curl_slist* list = nullptr;
  if (!head) list = curl_slist_append(list, range.c_str());
  list = curl_slist_append(list, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  if (!conn.session_token.empty()) {
    list = curl_slist_append(list, ("x-amz-security-token: " + conn.session_token).c_str());
  }
  SetCommonOptions(h, conn, url, sigv4, userpwd, list);
  if (head) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, kReceiveBuffer);
  CURLcode rc = curl_easy_perform(h);
  if (t->status == 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t->status);
  curl_off_t content_length = -1;
  if (rc == CURLE_OK &&
      curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &content_length) == CURLE_OK) {
    t->content_length = content_length;
  }
  curl_slist_free_all(list);
  pool.Give(h);
  t->handle = nullptr;
  return rc;
}

}  // namespace

std::string S3ObjectUrl(const S3Connection& conn, const std::string& path) {
  std::string url = conn.endpoint_url;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view seg(path.data() + start,
                         (slash == std::string::npos ? path.size() : slash) - start);
    url += '/';
    url += EncodeSegment(seg);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return url;
}

std::string S3ErrorText(const std::string& body) {
  std::string code = XmlTag(body, "Code"), message = XmlTag(body, "Message");
  if (code.empty() && message.empty()) return body.substr(0, 200);
  return code + (message.empty() ? "" : ": " + message);
}

arrow::Result<S3Connection> SignedS3Connection(const arrow::fs::FileSystem& fs) {
  ARROW_ASSIGN_OR_RAISE(S3Connection c, S3ConnectionOf(fs));
  if (c.access_key_id.empty()) {
    const auto& o = static_cast<const arrow::fs::S3FileSystem&>(fs).options();
    c.access_key_id = o.GetAccessKey();
    c.secret_access_key = o.GetSecretKey();
    c.session_token = o.GetSessionToken();
  }
  return c;
}

arrow::Status S3GetRange(const S3Connection& conn, const std::string& path, int64_t offset,
                         int64_t length, const RangeSink& sink) {
  if (offset < 0 || length < 0) {
    return arrow::Status::Invalid("negative offset or length reading ", Where(conn, path));
  }
  if (length == 0) return arrow::Status::OK();
  const std::string url = S3ObjectUrl(conn, path);
  int64_t done = 0;  // bytes delivered by earlier attempts
  std::string last;  // the last attempt's failure
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(25 << attempt));
    Transfer t;
    t.sink = &sink;
    t.want = length - done;
    t.offset = offset + done;
    CURLcode rc = Perform(conn, url, false, offset + done, length - done, &t);
    done += t.got;
    if (!t.sink_status.ok()) return t.sink_status;
    if (t.complete || (rc == CURLE_OK && (t.status == 200 || t.status == 206))) {
      if (done == length) return arrow::Status::OK();
      if (rc == CURLE_OK) {
        return arrow::Status::IOError(
            "object ", Where(conn, path), " is shorter than expected: ", offset + done,
            " bytes or fewer, and bytes up to ", offset + length, " were asked for");
      }
    }
    if (rc == CURLE_OK && !Retryable(t.status)) {
      return HttpError(conn, path, offset, length, t.status, t.error_body);
    }
    if (rc == CURLE_OK) {
      last = "HTTP " + std::to_string(t.status) +
             (t.error_body.empty() ? "" : " " + S3ErrorText(t.error_body));
    } else {
      last = curl_easy_strerror(rc);
    }
  }
  return arrow::Status::IOError("cannot read ", Where(conn, path), ": ", last, " (", kAttempts,
                                " attempts); is the server running and reachable?");
}

arrow::Result<int64_t> S3ObjectSize(const S3Connection& conn, const std::string& path) {
  const std::string url = S3ObjectUrl(conn, path);
  const RangeSink none = [](const uint8_t*, int64_t) { return arrow::Status::OK(); };
  std::string last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(25 << attempt));
    Transfer t;
    t.sink = &none;
    CURLcode rc = Perform(conn, url, true, 0, 0, &t);
    if (rc == CURLE_OK && t.status == 200) {
      if (t.content_length < 0) {
        return arrow::Status::IOError("the server gave no size for ", Where(conn, path));
      }
      return t.content_length;
    }
    if (rc == CURLE_OK && !Retryable(t.status)) {
      return HttpError(conn, path, 0, 0, t.status, t.error_body);
    }
    last = rc == CURLE_OK ? "HTTP " + std::to_string(t.status) : curl_easy_strerror(rc);
  }
  return arrow::Status::IOError("cannot read ", Where(conn, path), ": ", last, " (", kAttempts,
                                " attempts); is the server running and reachable?");
}

arrow::Result<std::shared_ptr<S3DataFile>> S3DataFile::Open(S3Connection conn, std::string path,
                                                            int64_t size) {
  if (size <= 0) {
    ARROW_ASSIGN_OR_RAISE(size, S3ObjectSize(conn, path));
  }
  return std::shared_ptr<S3DataFile>(new S3DataFile(std::move(conn), std::move(path), size));
}

arrow::Status S3DataFile::Stream(int64_t offset, int64_t length, const RangeSink& sink) const {
  return S3GetRange(conn_, path_, offset, length, sink);
}

arrow::Status S3DataFile::Close() {
  closed_ = true;
  return arrow::Status::OK();
}

arrow::Status S3DataFile::Seek(int64_t pos) {
  if (closed_) return arrow::Status::Invalid("operation on a closed file");
  if (pos < 0) return arrow::Status::Invalid("negative position seeking in 's3://", path_, "'");
  pos_ = pos;
  return arrow::Status::OK();
}

arrow::Result<int64_t> S3DataFile::Clamp(int64_t pos, int64_t n) const {
  if (closed_) return arrow::Status::Invalid("operation on a closed file");
  if (pos < 0 || n < 0) {
    return arrow::Status::Invalid("negative position or length reading 's3://", path_, "'");
  }
  if (pos > size_) {
    return arrow::Status::IOError("cannot read 's3://", path_, "' at byte ", pos,
                                  ": past the end of the file (", size_, " bytes)");
  }
  return std::min(n, size_ - pos);
}

arrow::Result<int64_t> S3DataFile::ReadAt(int64_t pos, int64_t n, void* out) {
  ARROW_ASSIGN_OR_RAISE(n, Clamp(pos, n));
  auto* dest = static_cast<uint8_t*>(out);
  ARROW_RETURN_NOT_OK(S3GetRange(conn_, path_, pos, n, [&](const uint8_t* data, int64_t len) {
    std::memcpy(dest, data, static_cast<size_t>(len));
    dest += len;
    return arrow::Status::OK();
  }));
  return n;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> S3DataFile::ReadAt(int64_t pos, int64_t n) {
  ARROW_ASSIGN_OR_RAISE(n, Clamp(pos, n));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> buf, arrow::AllocateBuffer(n));
  ARROW_RETURN_NOT_OK(ReadAt(pos, n, buf->mutable_data()).status());
  return buf;
}

arrow::Future<std::shared_ptr<arrow::Buffer>> S3DataFile::ReadAsync(const arrow::io::IOContext& ctx,
                                                                    int64_t pos, int64_t n) {
  using BufferFuture = arrow::Future<std::shared_ptr<arrow::Buffer>>;
  auto clamped = Clamp(pos, n);
  if (!clamped.ok()) return BufferFuture::MakeFinished(clamped.status());
  n = *clamped;
  auto allocated = arrow::AllocateBuffer(n, ctx.pool());
  if (!allocated.ok()) return BufferFuture::MakeFinished(allocated.status());
  std::shared_ptr<arrow::Buffer> buf = std::move(*allocated);
  if (n == 0) return BufferFuture::MakeFinished(buf);
  std::vector<arrow::Future<>> parts;
  for (int64_t off = 0; off < n; off += kReadPart) {
    const int64_t len = std::min(kReadPart, n - off);
    auto part = ctx.executor()->Submit([conn = conn_, path = path_, at = pos + off, len, buf, off] {
      uint8_t* to = buf->mutable_data() + off;
      return S3GetRange(conn, path, at, len, [&](const uint8_t* data, int64_t got) {
        std::memcpy(to, data, static_cast<size_t>(got));
        to += got;
        return arrow::Status::OK();
      });
    });
    if (!part.ok()) {
      parts.push_back(arrow::Future<>::MakeFinished(part.status()));
      break;
    }
    parts.push_back(std::move(*part));
  }
  // Completes once every part has finished, with an error of one if any.
  return arrow::AllFinished(parts).Then(
      [buf]() -> arrow::Result<std::shared_ptr<arrow::Buffer>> { return buf; });
}

arrow::Result<int64_t> S3DataFile::Read(int64_t n, void* out) {
  ARROW_ASSIGN_OR_RAISE(int64_t got, ReadAt(pos_, n, out));
  pos_ += got;
  return got;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> S3DataFile::Read(int64_t n) {
  ARROW_ASSIGN_OR_RAISE(auto buf, ReadAt(pos_, n));
  pos_ += buf->size();
  return buf;
}

S3Reply S3Send(const S3Connection& conn, const char* method, const std::string& path,
               const std::string& query, std::string_view body,
               const std::vector<std::string>& headers) {
  S3Reply reply;
  HandlePool& pool = Pool();
  CURL* h = pool.Take();
  if (h == nullptr) {
    reply.error = "curl_easy_init failed";
    return reply;
  }
  const std::string url = S3ObjectUrl(conn, path) + (query.empty() ? "" : "?" + query);
  const std::string sigv4 = "aws:amz:" + conn.region + ":s3";
  const std::string userpwd = conn.access_key_id + ":" + conn.secret_access_key;
  const std::string_view verb(method);
  struct curl_slist* list = nullptr;
  for (const auto& header : headers) list = curl_slist_append(list, header.c_str());
  list = curl_slist_append(list, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  // No "Expect:" override: curl would sign the removed header, and servers that check the
  // signature strictly (versitygw before 1.1) refuse it; bodies over 1 MiB use 100-continue.
  if (!conn.session_token.empty()) {
    list = curl_slist_append(list, ("x-amz-security-token: " + conn.session_token).c_str());
  }
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (verb == "PUT" || verb == "POST") {
    if (verb == "PUT") list = curl_slist_append(list, "Content-Type: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else {
    curl_easy_setopt(h, CURLOPT_NOBODY, verb == "HEAD" ? 1L : 0L);
  }
  SetCommonOptions(h, conn, url, sigv4, userpwd, list);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, CollectEtag);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &reply.etag);
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
  } else {
    reply.error = curl_easy_strerror(rc);
    curl_off_t uploaded = 0;
    curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    reply.sent_body = uploaded > 0 || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_RECV_ERROR ||
                      rc == CURLE_GOT_NOTHING;
  }
  curl_slist_free_all(list);
  pool.Give(h);
  return reply;
}

namespace {

// `method` with retries (transport errors, 5xx, 429), for requests that may be
// repeated: creating an upload, a part, completing, a PUT of a whole file.
arrow::Result<S3Reply> SendRetried(const S3Connection& conn, const char* method,
                                   const std::string& path, const std::string& query,
                                   std::string_view body, const char* what) {
  S3Reply r;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(25 << attempt));
    r = S3Send(conn, method, path, query, body);
    if (r.status >= 200 && r.status < 300) {
      // CompleteMultipartUpload may fail after its 200 (the error in the body).
      if (r.body.find("<Error>") == std::string::npos) return r;
      continue;
    }
    if (r.status != 0 && !Retryable(r.status)) break;
  }
  std::string detail =
      r.status == 0 ? r.error : "HTTP " + std::to_string(r.status) + " " + S3ErrorText(r.body);
  std::string hint = r.status == 403 ? "; check the credentials (access_key_id/secret_access_key, "
                                       "AWS_ACCESS_KEY_ID, a profile) and the region"
                     : r.status == 0 ? "; is the server running and reachable?"
                                     : "";
  return arrow::Status::IOError("cannot write ", Where(conn, path), ": ", what, " failed: ", detail,
                                hint);
}

}  // namespace

namespace {

// Bytes of parts queued or being uploaded, over all uploads of the process: a
// writer waits (in Write or Close) while they exceed kUploadMemory, so that an
// encoder faster than its link does not hold the table in memory. One part
// always goes, whatever its size.
class UploadBudget {
 public:
  static constexpr int64_t kUploadMemory = 256 << 20;

  void Acquire(int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return used_ == 0 || used_ + n <= kUploadMemory; });
    used_ += n;
  }
  void Release(int64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    used_ -= n;
    cv_.notify_all();
  }
  int64_t Used() {
    std::lock_guard<std::mutex> lock(mu_);
    return used_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t used_ = 0;
};

UploadBudget& TheUploadBudget() {
  static auto* b = new UploadBudget();
  return *b;
}

}  // namespace

struct S3UploadStream::Upload {
  S3Connection conn;
  std::string path;
  arrow::io::IOContext io;
  std::shared_ptr<arrow::ResizableBuffer> part;  // being filled
  std::string upload_id;                         // once the first part is sent
  std::vector<arrow::Future<>> parts;            // the uploads of the parts
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  std::vector<std::string> etags;  // by part number - 1
  arrow::Status error;             // the first failed part

  arrow::Status Error() {
    std::lock_guard<std::mutex> lock(mu);
    return error;
  }

  arrow::Status Abort() {
    if (upload_id.empty()) return arrow::Status::OK();
    (void)arrow::AllFinished(parts).status();
    auto r = S3Send(conn, "DELETE", path, "uploadId=" + upload_id, {});
    upload_id.clear();
    if (r.status == 204 || r.status == 200 || r.status == 404) return arrow::Status::OK();
    return arrow::Status::IOError("cannot abort the upload of ", Where(conn, path), ": ",
                                  r.status == 0 ? r.error : S3ErrorText(r.body));
  }

  arrow::Status Complete() {
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + etags[i] +
             "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    auto r = SendRetried(conn, "POST", path, "uploadId=" + upload_id, xml, "completing the upload");
    if (!r.ok()) {
      (void)Abort();
      return r.status();
    }
    upload_id.clear();
    return arrow::Status::OK();
  }
};

arrow::Result<std::shared_ptr<S3UploadStream>> S3UploadStream::Open(S3Connection conn,
                                                                    std::string path,
                                                                    arrow::io::IOContext io) {
  auto up = std::make_shared<Upload>();
  up->conn = std::move(conn);
  up->path = std::move(path);
  up->io = io;
  ARROW_ASSIGN_OR_RAISE(up->part, arrow::AllocateResizableBuffer(0, io.pool()));
  ARROW_RETURN_NOT_OK(up->part->Reserve(kUploadPart));
  return std::shared_ptr<S3UploadStream>(new S3UploadStream(std::move(up)));
}

S3UploadStream::~S3UploadStream() {
  if (!closed_) (void)Abort();  // never closed: the object is not created
}

arrow::Status S3UploadStream::Write(const void* data, int64_t nbytes) {
  if (closed_) return arrow::Status::Invalid("operation on a closed file");
  ARROW_RETURN_NOT_OK(up_->Error());
  auto* p = static_cast<const uint8_t*>(data);
  while (nbytes > 0) {
    auto& part = *up_->part;
    const int64_t n = std::min(nbytes, kUploadPart - part.size());
    const int64_t at = part.size();
    ARROW_RETURN_NOT_OK(part.Resize(at + n, /*shrink_to_fit=*/false));
    std::memcpy(part.mutable_data() + at, p, static_cast<size_t>(n));
    p += n;
    nbytes -= n;
    written_ += n;
    if (part.size() == kUploadPart) ARROW_RETURN_NOT_OK(SendPart());
  }
  return arrow::Status::OK();
}

// Uploads the part being filled (on the executor) and starts a new one.
arrow::Status S3UploadStream::SendPart() {
  Upload& up = *up_;
  if (up.upload_id.empty()) {
    ARROW_ASSIGN_OR_RAISE(
        S3Reply r,
        // "uploads=": curl signs the query as written, and S3 signs "uploads" as "uploads=".
        SendRetried(up.conn, "POST", up.path, "uploads=", {}, "starting an upload"));
    up.upload_id = XmlTag(r.body, "UploadId");
    if (up.upload_id.empty()) {
      return arrow::Status::IOError("cannot write ", Where(up.conn, up.path),
                                    ": the server started an upload without an UploadId");
    }
  }
  int number = 0;
  {
    std::unique_lock<std::mutex> lock(up.mu);
    up.cv.wait(lock, [&] { return up.in_flight < kPartsInFlight || !up.error.ok(); });
    if (!up.error.ok()) return up.error;
    up.in_flight++;
    up.etags.emplace_back();
    number = static_cast<int>(up.etags.size());
  }
  std::shared_ptr<arrow::Buffer> body = std::move(up.part);
  ARROW_ASSIGN_OR_RAISE(up.part, arrow::AllocateResizableBuffer(0, up.io.pool()));
  ARROW_RETURN_NOT_OK(up.part->Reserve(kUploadPart));
  TheUploadBudget().Acquire(body->size());
  auto shared = up_;
  auto task = up.io.executor()->Submit([shared, body, number]() -> arrow::Status {
    Upload& u = *shared;
    auto r = SendRetried(u.conn, "PUT", u.path,
                         "partNumber=" + std::to_string(number) + "&uploadId=" + u.upload_id,
                         std::string_view(reinterpret_cast<const char*>(body->data()),
                                          static_cast<size_t>(body->size())),
                         "uploading a part");
    TheUploadBudget().Release(body->size());
    std::lock_guard<std::mutex> lock(u.mu);
    u.in_flight--;
    u.cv.notify_all();
    if (r.ok() && r->etag.empty()) {
      r = arrow::Status::IOError("cannot write ", Where(u.conn, u.path),
                                 ": the server gave no ETag for part ", number);
    }
    if (!r.ok()) {
      if (u.error.ok()) u.error = r.status();
      return r.status();
    }
    u.etags[static_cast<size_t>(number - 1)] = r->etag;
    return arrow::Status::OK();
  });
  if (!task.ok()) {
    TheUploadBudget().Release(body->size());
    std::lock_guard<std::mutex> lock(up.mu);
    up.in_flight--;
    if (up.error.ok()) up.error = task.status();
    return task.status();
  }
  up.parts.push_back(std::move(*task));
  return arrow::Status::OK();
}

arrow::Future<> S3UploadStream::CloseAsync() {
  if (closed_) return arrow::Future<>::MakeFinished();
  closed_ = true;
  Upload& up = *up_;
  arrow::Status st = up.Error();
  if (st.ok() && up.upload_id.empty()) {
    // Within one part: a single PUT.
    const int64_t size = up.part->size();
    TheUploadBudget().Acquire(size);
    auto shared = up_;
    auto task = up.io.executor()->Submit([shared, size]() -> arrow::Status {
      Upload& u = *shared;
      auto st = SendRetried(u.conn, "PUT", u.path, "",
                            std::string_view(reinterpret_cast<const char*>(u.part->data()),
                                             static_cast<size_t>(size)),
                            "uploading the file")
                    .status();
      TheUploadBudget().Release(size);
      return st;
    });
    if (!task.ok()) {
      TheUploadBudget().Release(size);
      return arrow::Future<>::MakeFinished(task.status());
    }
    return *task;
  }
  if (st.ok() && up.part->size() > 0) st = SendPart();
  if (!st.ok()) {
    (void)up.Abort();
    return arrow::Future<>::MakeFinished(st);
  }
  auto shared = up_;
  return arrow::AllFinished(up.parts).Then(
      [shared]() -> arrow::Status { return shared->Complete(); },
      [shared](const arrow::Status& failed) -> arrow::Status {
        (void)shared->Abort();
        return failed;
      });
}

arrow::Status S3UploadStream::Close() { return CloseAsync().status(); }

int64_t S3UploadStream::PendingBytes() { return TheUploadBudget().Used(); }

arrow::Status S3UploadStream::Abort() {
  closed_ = true;
  return up_->Abort();
}

}  // namespace stratalake
