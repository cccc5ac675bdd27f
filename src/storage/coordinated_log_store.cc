#include "storage/coordinated_log_store.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "common/os_error.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

// The version of a commit file "..../_delta_log/NNNNNNNNNNNNNNNNNNNN.json", or -1.
int64_t CommitVersion(const std::string& log_dir, const std::string& path) {
  if (path.size() != log_dir.size() + 1 + 25 || path.compare(0, log_dir.size(), log_dir) != 0 ||
      path[log_dir.size()] != '/' || path.compare(path.size() - 5, 5, ".json") != 0) {
    return -1;
  }
  int64_t v = 0;
  for (size_t i = log_dir.size() + 1; i < path.size() - 5; ++i) {
    if (path[i] < '0' || path[i] > '9') return -1;
    v = v * 10 + (path[i] - '0');
  }
  return v;
}

}  // namespace

CoordinatedLogStore::CoordinatedLogStore(std::shared_ptr<arrow::fs::FileSystem> fs,
                                         std::string table_root, std::string coordinator_uri)
    : LogStore(std::move(fs), std::move(table_root)),
      coordinator_uri_(std::move(coordinator_uri)) {}

arrow::Result<std::shared_ptr<CommitCoordinator>> CoordinatedLogStore::Coordinator() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!coordinator_) {
    ARROW_ASSIGN_OR_RAISE(coordinator_, OpenCommitCoordinator(coordinator_uri_));
  }
  return coordinator_;
}

arrow::Result<bool> CoordinatedLogStore::Exists(const std::string& path) const {
  auto info = fs()->GetFileInfo(path);
  if (!info.ok()) return IoErrorOnPath(info.status(), "cannot check", "s3://" + path);
  return info->type() != arrow::fs::FileType::NotFound;
}

arrow::Status CoordinatedLogStore::Repair(CommitCoordinator& coordinator,
                                          const CommitEntry& entry) const {
  if (entry.complete) return arrow::Status::OK();
  const std::string target = CommitPath(entry.version);
  ARROW_ASSIGN_OR_RAISE(bool there, Exists(target));
  if (!there) {
    auto st = fs()->CopyFile(entry.temp_path, target);
    if (!st.ok()) {
      // Another repairer (or the owner) may have finished and removed the
      // temporary object meanwhile.
      ARROW_ASSIGN_OR_RAISE(auto now, coordinator.Get(table_uri(), entry.version));
      if (now && now->complete) return arrow::Status::OK();
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                       "version " + std::to_string(entry.version) + " of '" + table_uri() +
                           "' is recorded in the commit coordinator " + coordinator.Describe() +
                           " but its temporary object 's3://" + entry.temp_path +
                           "' cannot be copied to 's3://" + target + "': " + st.message());
    }
  }
  ARROW_RETURN_NOT_OK(coordinator.MarkComplete(table_uri(), entry.version));
  (void)fs()->DeleteFile(entry.temp_path);  // best effort: only space is lost
  return arrow::Status::OK();
}

arrow::Result<LogListing> CoordinatedLogStore::List() const {
  ARROW_ASSIGN_OR_RAISE(auto coordinator, Coordinator());
  ARROW_ASSIGN_OR_RAISE(auto latest, coordinator->Latest(table_uri()));
  if (latest && !latest->complete) ARROW_RETURN_NOT_OK(Repair(*coordinator, *latest));
  return LogStore::List();
}

arrow::Status CoordinatedLogStore::PutIfAbsent(const std::string& path,
                                               std::string_view data) const {
  const int64_t version = CommitVersion(log_dir(), path);
  if (version < 0) {
    // Not a commit (a checkpoint): every writer's file for a version holds the
    // same state, so check-then-write is enough.
    ARROW_ASSIGN_OR_RAISE(bool there, Exists(path));
    if (there) return arrow::Status::AlreadyExists("'s3://", path, "' already exists");
    return PutAtomic(path, data);
  }
  ARROW_ASSIGN_OR_RAISE(auto coordinator, Coordinator());
  ARROW_ASSIGN_OR_RAISE(auto latest, coordinator->Latest(table_uri()));
  if (latest && !latest->complete) ARROW_RETURN_NOT_OK(Repair(*coordinator, *latest));
  ARROW_ASSIGN_OR_RAISE(bool there, Exists(path));
  if (there) return arrow::Status::AlreadyExists("'s3://", path, "' already exists");

  const std::string temp =
      log_dir() + "/.tmp/" + path.substr(log_dir().size() + 1) + "." + NewUuid();
  ARROW_RETURN_NOT_OK(PutAtomic(temp, data));
  auto inserted = coordinator->PutIfAbsent(table_uri(), version, temp);
  if (!inserted.ok()) {
    (void)fs()->DeleteFile(temp);
    if (!inserted.IsAlreadyExists()) return inserted;
    // Another writer owns the version: make sure its commit file is there for
    // the conflict check that follows.
    ARROW_ASSIGN_OR_RAISE(auto winner, coordinator->Get(table_uri(), version));
    if (winner) ARROW_RETURN_NOT_OK(Repair(*coordinator, *winner));
    return arrow::Status::AlreadyExists("'s3://", path, "' already exists");
  }
  // The version is ours and durable (the entry and the temporary object): from
  // here on a failure only delays the copy, which the next reader or writer does.
  if (const char* crash = std::getenv("STRATALAKE_TEST_KILL_AFTER_COMMIT_ENTRY"); crash && *crash) {
    // Tests (tests/python/test_commit_coordinator.py): die as a writer killed
    // between recording the commit and copying it.
    std::raise(SIGKILL);
  }
  arrow::Status copied;
  for (int attempt = 0; attempt < 6; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    copied = PutAtomic(path, data);
    if (copied.ok()) break;
  }
  if (!copied.ok()) return arrow::Status::OK();  // repaired by the next listing
  if (coordinator->MarkComplete(table_uri(), version).ok()) (void)fs()->DeleteFile(temp);
  return arrow::Status::OK();
}

arrow::Status CoordinatedLogStore::PutAtomic(const std::string& path, std::string_view data) const {
  // A PUT replaces an object whole: readers see the old bytes or the new ones.
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto out, fs()->OpenOutputStream(path));
    ARROW_RETURN_NOT_OK(out->Write(data.data(), static_cast<int64_t>(data.size())));
    return out->Close();
  }();
  return IoErrorOnPath(st, "cannot write", "s3://" + path);
}

arrow::Status CoordinatedLogStore::SyncFile(const std::string&) const {
  return arrow::Status::OK();
}
arrow::Status CoordinatedLogStore::SyncDir(const std::string&) const { return arrow::Status::OK(); }

}  // namespace stratalake::delta
