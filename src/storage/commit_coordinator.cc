// The commit coordinator's two databases: SQLite (a file; processes of one
// machine) and PostgreSQL (libpq; any number of machines). The registry's
// stores (src/registry/) open the same databases for their own tables.
#include "storage/commit_coordinator.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

// Complete entries this many versions behind the newest are pruned.
constexpr int64_t kKeepVersions = 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- SQLite

constexpr const char* kSqliteCreate =
    "CREATE TABLE IF NOT EXISTS sl_commit_log("
    " table_uri TEXT NOT NULL, version INTEGER NOT NULL, temp_path TEXT NOT NULL,"
    " complete INTEGER NOT NULL, created_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY(table_uri, version))";

class SqliteCoordinator final : public CommitCoordinator {
 public:
  explicit SqliteCoordinator(std::string path) : path_(std::move(path)) {}
  ~SqliteCoordinator() override {
    if (db_) sqlite3_close_v2(db_);
  }

  arrow::Status Open() {
    std::error_code ec;
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    int rc =
        sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) return Error("opening", rc);
    // Commits are tiny; 10 s of waiting for another process's lock means stuck.
    sqlite3_busy_timeout(db_, 10000);
    ARROW_RETURN_NOT_OK(Exec("PRAGMA journal_mode=WAL", "opening"));
    return Exec(kSqliteCreate, "creating sl_commit_log");
  }

  arrow::Status PutIfAbsent(const std::string& table_uri, int64_t version,
                            const std::string& temp_path) override {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_,
                                "INSERT INTO sl_commit_log(table_uri, version, temp_path, "
                                "complete, created_at_ms) VALUES(?1, ?2, ?3, 0, ?4)",
                                -1, &st, nullptr);
    if (rc != SQLITE_OK) return Error("recording a commit", rc);
    sqlite3_bind_text(st, 1, table_uri.data(), static_cast<int>(table_uri.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, version);
    sqlite3_bind_text(st, 3, temp_path.data(), static_cast<int>(temp_path.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, NowMs());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return arrow::Status::OK();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return arrow::Status::AlreadyExists("version ", version, " of '", table_uri,
                                          "' is already recorded in ", Describe());
    }
    return Error("recording a commit", rc);
  }

  arrow::Result<std::optional<CommitEntry>> Get(const std::string& table_uri,
                                                int64_t version) override {
    return Query(
        "SELECT version, temp_path, complete FROM sl_commit_log"
        " WHERE table_uri = ?1 AND version = ?2",
        table_uri, version);
  }

  arrow::Result<std::optional<CommitEntry>> Latest(const std::string& table_uri) override {
    return Query(
        "SELECT version, temp_path, complete FROM sl_commit_log"
        " WHERE table_uri = ?1 ORDER BY version DESC LIMIT 1",
        table_uri, std::nullopt);
  }

  arrow::Status MarkComplete(const std::string& table_uri, int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(
        Modify("UPDATE sl_commit_log SET complete = 1 WHERE table_uri = ?1 AND version = ?2",
               table_uri, version));
    if (version % 100 == 0 && version > kKeepVersions) {
      ARROW_RETURN_NOT_OK(
          Modify("DELETE FROM sl_commit_log WHERE table_uri = ?1 AND version < ?2 AND complete = 1",
                 table_uri, version - kKeepVersions));
    }
    return arrow::Status::OK();
  }

  std::string Describe() const override { return "sqlite:" + path_; }

 private:
  arrow::Status Error(const char* what, int rc) const {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return arrow::Status::IOError("commit coordinator ", Describe(), ": ", what, ": ", msg);
  }

  arrow::Status Exec(const char* sql, const char* what) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return arrow::Status::OK();
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return arrow::Status::IOError("commit coordinator ", Describe(), ": ", what, ": ", msg);
  }

  // Runs an UPDATE/DELETE with (table_uri, version); mu_ held.
  arrow::Status Modify(const char* sql, const std::string& table_uri, int64_t version) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
    if (rc != SQLITE_OK) return Error("updating a commit", rc);
    sqlite3_bind_text(st, 1, table_uri.data(), static_cast<int>(table_uri.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, version);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? arrow::Status::OK() : Error("updating a commit", rc);
  }

  arrow::Result<std::optional<CommitEntry>> Query(const char* sql, const std::string& table_uri,
                                                  std::optional<int64_t> version) {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
    if (rc != SQLITE_OK) return Error("reading commits", rc);
    sqlite3_bind_text(st, 1, table_uri.data(), static_cast<int>(table_uri.size()),
                      SQLITE_TRANSIENT);
    if (version) sqlite3_bind_int64(st, 2, *version);
    rc = sqlite3_step(st);
    std::optional<CommitEntry> out;
    if (rc == SQLITE_ROW) {
      CommitEntry e;
      e.version = sqlite3_column_int64(st, 0);
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
      e.temp_path = text ? text : "";
      e.complete = sqlite3_column_int64(st, 2) != 0;
      out = std::move(e);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("reading commits", rc);
    return out;
  }

  std::string path_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

// ---------------------------------------------------------------- PostgreSQL

// Serializes schema creation when several processes open a fresh database at
// once (CREATE TABLE IF NOT EXISTS alone can fail with a unique violation then).
constexpr const char* kPgCreate[] = {
    "BEGIN",
    "SELECT pg_advisory_xact_lock(6013528659396193388)",
    "CREATE TABLE IF NOT EXISTS sl_commit_log("
    " table_uri TEXT NOT NULL, version BIGINT NOT NULL, temp_path TEXT NOT NULL,"
    " complete INTEGER NOT NULL, created_at_ms BIGINT NOT NULL,"
    " PRIMARY KEY(table_uri, version))",
    "COMMIT",
};

// `url` without the password of its userinfo or a password= parameter.
std::string ElidePassword(const std::string& url) {
  std::string out = url;
  auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    auto start = scheme + 3;
    auto end = out.find_first_of("/?", start);
    if (end == std::string::npos) end = out.size();
    auto at = out.rfind('@', end);
    if (at != std::string::npos && at > start) {
      auto colon = out.find(':', start);
      if (colon < at) out.erase(colon, at - colon);
    }
  }
  auto pw = out.find("password=");
  if (pw != std::string::npos) {
    auto stop = out.find_first_of("& ", pw);
    out.replace(pw, (stop == std::string::npos ? out.size() : stop) - pw, "password=***");
  }
  return out;
}

void IgnoreNotice(void*, const char*) {}

class PostgresCoordinator final : public CommitCoordinator {
 public:
  explicit PostgresCoordinator(std::string url)
      : url_(std::move(url)), described_(ElidePassword(url_)) {}
  ~PostgresCoordinator() override {
    if (conn_) PQfinish(conn_);
  }

  arrow::Status Open() {
    const char* keywords[] = {"connect_timeout", "client_encoding", "fallback_application_name",
                              "dbname", nullptr};
    const char* values[] = {"10", "UTF8", "stratalake", url_.c_str(), nullptr};
    conn_ = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      return arrow::Status::IOError("commit coordinator: cannot connect to ", described_, ": ",
                                    Trimmed(conn_ ? PQerrorMessage(conn_) : "out of memory"));
    }
    PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
    for (const char* sql : kPgCreate) {
      PGresult* res = PQexec(conn_, sql);
      bool ok = res &&
                (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);
      std::string err = ok ? "" : Trimmed(PQerrorMessage(conn_));
      PQclear(res);
      if (!ok) {
        PQclear(PQexec(conn_, "ROLLBACK"));
        return arrow::Status::IOError("commit coordinator ", described_,
                                      ": creating sl_commit_log: ", err);
      }
    }
    return arrow::Status::OK();
  }

  arrow::Status PutIfAbsent(const std::string& table_uri, int64_t version,
                            const std::string& temp_path) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(
        auto res, Run("INSERT INTO sl_commit_log(table_uri, version, temp_path, complete,"
                      " created_at_ms) VALUES($1, $2, $3, 0, $4)"
                      " ON CONFLICT (table_uri, version) DO NOTHING",
                      {table_uri, std::to_string(version), temp_path, std::to_string(NowMs())},
                      "recording a commit"));
    std::string inserted = PQcmdTuples(res.get());
    if (inserted == "1") return arrow::Status::OK();
    return arrow::Status::AlreadyExists("version ", version, " of '", table_uri,
                                        "' is already recorded in ", described_);
  }

  arrow::Result<std::optional<CommitEntry>> Get(const std::string& table_uri,
                                                int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(auto res, Run("SELECT version, temp_path, complete FROM sl_commit_log"
                                        " WHERE table_uri = $1 AND version = $2",
                                        {table_uri, std::to_string(version)}, "reading commits"));
    return Entry(res.get());
  }

  arrow::Result<std::optional<CommitEntry>> Latest(const std::string& table_uri) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(auto res, Run("SELECT version, temp_path, complete FROM sl_commit_log"
                                        " WHERE table_uri = $1 ORDER BY version DESC LIMIT 1",
                                        {table_uri}, "reading commits"));
    return Entry(res.get());
  }

  arrow::Status MarkComplete(const std::string& table_uri, int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(Run("UPDATE sl_commit_log SET complete = 1"
                            " WHERE table_uri = $1 AND version = $2",
                            {table_uri, std::to_string(version)}, "updating a commit")
                            .status());
    if (version % 100 == 0 && version > kKeepVersions) {
      ARROW_RETURN_NOT_OK(Run("DELETE FROM sl_commit_log"
                              " WHERE table_uri = $1 AND version < $2 AND complete = 1",
                              {table_uri, std::to_string(version - kKeepVersions)},
                              "pruning commits")
                              .status());
    }
    return arrow::Status::OK();
  }

  std::string Describe() const override { return described_; }

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  using ResultPtr = std::unique_ptr<PGresult, Clear>;

  static std::string Trimmed(const char* m) {
    std::string s = m ? m : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  // One parameterized statement, reconnecting once when the connection was lost.
  arrow::Result<ResultPtr> Run(const char* sql, const std::vector<std::string>& params,
                               const char* what) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (PQstatus(conn_) != CONNECTION_OK) PQreset(conn_);
      ResultPtr res(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
      auto status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return res;
      if (attempt == 0 && PQstatus(conn_) != CONNECTION_OK) continue;
      return arrow::Status::IOError("commit coordinator ", described_, ": ", what, ": ",
                                    Trimmed(PQerrorMessage(conn_)));
    }
    return arrow::Status::IOError("commit coordinator ", described_, ": ", what,
                                  ": connection lost");
  }

  static arrow::Result<std::optional<CommitEntry>> Entry(PGresult* res) {
    if (PQntuples(res) == 0) return std::nullopt;
    CommitEntry e;
    e.version = std::stoll(PQgetvalue(res, 0, 0));
    e.temp_path = PQgetvalue(res, 0, 1);
    e.complete = std::string_view(PQgetvalue(res, 0, 2)) != "0";
    return e;
  }

  std::string url_, described_;
  std::mutex mu_;
  PGconn* conn_ = nullptr;
};

}  // namespace

arrow::Result<std::shared_ptr<CommitCoordinator>> OpenCommitCoordinator(const std::string& uri) {
  static std::mutex mu;
  static auto* cache = new std::map<std::string, std::shared_ptr<CommitCoordinator>>();
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache->find(uri); it != cache->end()) return it->second;
  std::shared_ptr<CommitCoordinator> out;
  if (uri.rfind("postgresql://", 0) == 0 || uri.rfind("postgres://", 0) == 0) {
    auto pg = std::make_shared<PostgresCoordinator>(uri);
    ARROW_RETURN_NOT_OK(pg->Open());
    out = std::move(pg);
  } else {
    std::string path = uri.rfind("sqlite://", 0) == 0 ? uri.substr(9) : uri;
    if (path.empty() || path.find("://") != std::string::npos) {
      return arrow::Status::Invalid(
          "commit coordinator '", uri,
          "' is not a database: use postgresql://user@host:5432/db, sqlite:///path/registry.db "
          "or a file path (in stratalake.yaml, 'registry' names the repository's registry)");
    }
    auto lite = std::make_shared<SqliteCoordinator>(path);
    ARROW_RETURN_NOT_OK(lite->Open());
    out = std::move(lite);
  }
  (*cache)[uri] = out;
  return out;
}

}  // namespace stratalake::delta
