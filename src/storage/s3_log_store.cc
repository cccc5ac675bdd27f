#include "storage/s3_log_store.h"

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

arrow::Status HttpError(const std::string& what, const std::string& path, const S3Reply& r) {
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
  S3Reply first = S3Send(conn, "PUT", probe, "", "probe", cond);
  if (first.status != 200) {
    if (first.status == 501) {
      // Rejects the header outright: no conditional writes.
      std::lock_guard<std::mutex> lock(cache.mu);
      cache.supported[key] = false;
      return false;
    }
    return HttpError("cannot write", probe, first);
  }
  S3Reply second = S3Send(conn, "PUT", probe, "", "probe", cond);
  S3Send(conn, "DELETE", probe, "", "", {});
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
  S3Reply r;
  for (int attempt = 0; attempt < 6; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    r = S3Send(conn, "PUT", path, "", data, cond);
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
