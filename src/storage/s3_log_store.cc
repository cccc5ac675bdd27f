#include "storage/s3_log_store.h"

#include <curl/curl.h>

#include <arrow/buffer.h>
#include <arrow/filesystem/s3fs.h>

#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "common/os_error.h"
#include "storage/s3_client.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

void EnsureCurlInitialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct HttpReply {
  long status = 0;         // 0: no reply (transport error)
  std::string body;        // the reply's body (an S3 error document)
  std::string error;       // curl's message when status is 0
  bool sent_body = false;  // the request may have reached the server
};

size_t CollectBody(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() < 64 * 1024) out->append(ptr, size * nmemb);
  return size * nmemb;
}

// One signed request. `headers` are added as given.
HttpReply Send(const S3Connection& conn, const char* method, const std::string& path,
               std::string_view body, const std::vector<std::string>& headers) {
  EnsureCurlInitialized();
  HttpReply reply;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    reply.error = "curl_easy_init failed";
    return reply;
  }
  std::string url = S3ObjectUrl(conn, path);
  std::string sigv4 = "aws:amz:" + conn.region + ":s3";
  std::string userpwd = conn.access_key_id + ":" + conn.secret_access_key;
  struct curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  // The payload is not hashed into the signature (TLS protects it in transit).
  list = curl_slist_append(list, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  // No "Expect:" override: curl would sign the removed header, and servers that check the
  // signature strictly (versitygw before 1.1) refuse it; bodies over 1 MiB use 100-continue.
  if (!conn.session_token.empty()) {
    list = curl_slist_append(list, ("x-amz-security-token: " + conn.session_token).c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  if (std::string_view(method) == "PUT") {
    list = curl_slist_append(list, "Content-Type: application/octet-stream");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else {
    curl_easy_setopt(curl, CURLOPT_NOBODY, std::string_view(method) == "HEAD" ? 1L : 0L);
  }
  if (!conn.access_key_id.empty()) {
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120000L);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  } else {
    reply.error = curl_easy_strerror(rc);
    curl_off_t uploaded = 0;
    curl_easy_getinfo(curl, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    reply.sent_body = uploaded > 0 || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_RECV_ERROR ||
                      rc == CURLE_GOT_NOTHING;
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return reply;
}

arrow::Status HttpError(const std::string& what, const std::string& path, const HttpReply& r) {
  if (r.status == 0) {
    return arrow::Status::IOError(what, " 's3://", path, "': ", r.error);
  }
  std::string hint;
  if (r.status == 403) {
    hint =
        "; check the credentials (access_key_id/secret_access_key, AWS_ACCESS_KEY_ID, "
        "a profile) and the region";
  }
  return arrow::Status::IOError(what, " 's3://", path, "': HTTP ", r.status, " ",
                                S3ErrorText(r.body), hint);
}

struct ProbeCache {
  std::mutex mu;
  std::map<std::string, bool> supported;  // by endpoint + bucket
};

ProbeCache& Probes() {
  static auto* p = new ProbeCache();
  return *p;
}

}  // namespace

S3LogStore::S3LogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root,
                       S3Connection connection)
    : LogStore(std::move(fs), std::move(table_root)), conn_(std::move(connection)) {}

S3Connection S3LogStore::Signed() const {
  S3Connection c = conn_;
  if (c.access_key_id.empty() && fs()->type_name() == "s3") {
    // The AWS SDK's credential chain, as Arrow's filesystem uses it (cached by the SDK).
    const auto& o = static_cast<const arrow::fs::S3FileSystem&>(*fs()).options();
    c.access_key_id = o.GetAccessKey();
    c.secret_access_key = o.GetSecretKey();
    c.session_token = o.GetSessionToken();
  }
  return c;
}

arrow::Result<bool> S3LogStore::SupportsConditionalPut() const {
  std::string bucket = root().substr(0, root().find('/'));
  std::string key = conn_.endpoint_url + "\n" + bucket;
  auto& cache = Probes();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    if (auto it = cache.supported.find(key); it != cache.supported.end()) return it->second;
  }
  // A hidden name in the log folder: readers skip it, and a writer may write there.
  std::string probe = log_dir() + "/.stratalake-probe-" + NewUuid();
  const std::vector<std::string> cond = {"If-None-Match: *"};
  const S3Connection conn = Signed();
  HttpReply first = Send(conn, "PUT", probe, "probe", cond);
  if (first.status != 200) {
    if (first.status == 501) {
      // Rejects the header outright: no conditional writes.
      std::lock_guard<std::mutex> lock(cache.mu);
      cache.supported[key] = false;
      return false;
    }
    return HttpError("cannot write", probe, first);
  }
  HttpReply second = Send(conn, "PUT", probe, "probe", cond);
  Send(conn, "DELETE", probe, "", {});
  bool supported;
  if (second.status == 412) {
    supported = true;
  } else if (second.status == 200 || second.status == 501 || second.status == 400) {
    supported = false;
  } else {
    return HttpError("cannot write", probe, second);
  }
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.supported[key] = supported;
  return supported;
}

arrow::Status S3LogStore::ConditionalPut(const std::string& path, std::string_view data) const {
  const std::vector<std::string> cond = {"If-None-Match: *"};
  const S3Connection conn = Signed();
  bool maybe_landed = false;  // an earlier attempt may have created the object
  HttpReply r;
  for (int attempt = 0; attempt < 6; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    r = Send(conn, "PUT", path, data, cond);
    if (r.status == 200) return arrow::Status::OK();
    if (r.status == 412) {
      if (maybe_landed) {
        // Ours, from an attempt whose reply was lost? Same bytes: it is.
        auto file = fs()->OpenInputFile(path);
        if (file.ok()) {
          auto size = (*file)->GetSize();
          if (size.ok() && *size == static_cast<int64_t>(data.size())) {
            auto buf = (*file)->ReadAt(0, *size);
            if (buf.ok() && (*buf)->ToString() == data) return arrow::Status::OK();
          }
        }
      }
      return arrow::Status::AlreadyExists("'s3://", path, "' already exists");
    }
    // 409 ConditionalRequestConflict: another conditional write of the key is in
    // flight; retrying gives 412 or 200. 5xx and transport errors: retried too.
    bool retry = r.status == 409 || r.status >= 500 || r.status == 0;
    if (!retry || r.status == 501) break;
    if (r.status >= 500 || r.sent_body) maybe_landed = true;
  }
  return HttpError("cannot commit", path, r);
}

arrow::Status S3LogStore::PutIfAbsent(const std::string& path, std::string_view data) const {
  ARROW_ASSIGN_OR_RAISE(bool conditional, SupportsConditionalPut());
  if (conditional) return ConditionalPut(path, data);
  if (!conn_.allow_unsafe_commits) {
    return MakeError(
        arrow::StatusCode::NotImplemented, ErrorKind::kOperationNotAllowed,
        "the object store at " + conn_.endpoint_url +
            " ignores conditional writes (PUT If-None-Match: *), so two writers committing "
            "to 's3://" +
            root() +
            "' at once could both win a version and one commit would be lost; set "
            "commit_coordinator: registry in the offline_store settings (safe with any number "
            "of writers: commits are decided in the registry database; storage option "
            "commit_coordinator=<database URI>) or allow_unsafe_commits: true (one writer "
            "only; storage option allow_unsafe_commits=true, or "
            "STRATALAKE_S3_ALLOW_UNSAFE_COMMITS=1); see docs/object-storage.md");
  }
  // The user accepted the race: check, then write.
  ARROW_ASSIGN_OR_RAISE(auto info, fs()->GetFileInfo(path));
  if (info.type() != arrow::fs::FileType::NotFound) {
    return arrow::Status::AlreadyExists("'s3://", path, "' already exists");
  }
  return PutAtomic(path, data);
}

arrow::Status S3LogStore::PutAtomic(const std::string& path, std::string_view data) const {
  // A PUT replaces an object whole: readers see the old bytes or the new ones.
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto out, fs()->OpenOutputStream(path));
    ARROW_RETURN_NOT_OK(out->Write(data.data(), static_cast<int64_t>(data.size())));
    return out->Close();
  }();
  return IoErrorOnPath(st, "cannot write", "s3://" + path);
}

arrow::Status S3LogStore::SyncFile(const std::string&) const { return arrow::Status::OK(); }
arrow::Status S3LogStore::SyncDir(const std::string&) const { return arrow::Status::OK(); }

}  // namespace stratalake::delta
