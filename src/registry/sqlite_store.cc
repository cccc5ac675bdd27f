// SQLite registry backend: one database file, WAL mode, writers serialized by
// BEGIN IMMEDIATE (a file lock, so it also holds across processes).
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "registry/store.h"
#include "stratalake/status.h"

namespace stratalake::registry {

namespace {

// How long a connection waits for another process's write lock before giving
// up with "database is locked". Commits are small, so 10 s means something is
// stuck rather than busy.
constexpr int kBusyTimeoutMs = 10000;
constexpr const char* kSchemaVersion = "1";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Values are only ever bound as parameters; `sql` is always a constant.
constexpr const char* kCreateSchemaSql[] = {
    // INTEGER PRIMARY KEY is SQLite's 64-bit rowid alias, i.e. the BIGINT key
    // of the shared schema.
    "CREATE TABLE IF NOT EXISTS sl_registry_versions("
    " version INTEGER PRIMARY KEY, committed_at_ms INTEGER NOT NULL, author TEXT NOT NULL,"
    " message TEXT NOT NULL, num_changes INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sl_registry_objects("
    " kind TEXT NOT NULL, name TEXT NOT NULL, object_version INTEGER NOT NULL,"
    " registry_version INTEGER NOT NULL, deleted INTEGER NOT NULL, spec TEXT NOT NULL,"
    " PRIMARY KEY(kind, name, object_version))",
    "CREATE TABLE IF NOT EXISTS sl_registry_state("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sl_registry_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
};

constexpr const char* kHeadSql = "SELECT COALESCE(MAX(version), 0) FROM sl_registry_versions";

// "Latest row" is by registry_version, as the contract defines it; object_version
// breaks the (not expected) tie of two rows for one object in one commit.
constexpr const char* kObjectsAtSql =
    "SELECT kind, name, object_version, registry_version, deleted, spec FROM ("
    " SELECT kind, name, object_version, registry_version, deleted, spec,"
    "  ROW_NUMBER() OVER (PARTITION BY kind, name"
    "   ORDER BY registry_version DESC, object_version DESC) AS rn"
    " FROM sl_registry_objects WHERE registry_version <= ?1)"
    " WHERE rn = 1 AND deleted = 0 ORDER BY kind, name";

constexpr const char* kHistorySql =
    "SELECT kind, name, object_version, registry_version, deleted, spec"
    " FROM sl_registry_objects WHERE kind = ?1 AND name = ?2"
    " ORDER BY registry_version, object_version";

constexpr const char* kVersionsSql =
    "SELECT version, committed_at_ms, author, message, num_changes"
    " FROM sl_registry_versions ORDER BY version";

constexpr const char* kInsertVersionSql =
    "INSERT INTO sl_registry_versions(version, committed_at_ms, author, message, num_changes)"
    " VALUES(?1, ?2, ?3, ?4, ?5)";

constexpr const char* kInsertObjectSql =
    "INSERT INTO sl_registry_objects(kind, name, object_version, registry_version, deleted, spec)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)";

constexpr const char* kPutStateSql =
    "INSERT INTO sl_registry_state(key, value, updated_at_ms) VALUES(?1, ?2, ?3)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at_ms = "
    "excluded.updated_at_ms";

constexpr const char* kGetStateSql = "SELECT value FROM sl_registry_state WHERE key = ?1";

// A prepared statement. Bind errors are remembered and reported by the next
// Step(), so call sites read as one chain.
class Statement {
 public:
  Statement(sqlite3* db, StmtPtr stmt, std::string where)
      : db_(db), stmt_(std::move(stmt)), where_(std::move(where)) {}

  Statement& Bind(int index, int64_t value) {
    Check(sqlite3_bind_int64(stmt_.get(), index, value));
    return *this;
  }
  Statement& Bind(int index, const std::string& value) {
    // SQLITE_TRANSIENT: SQLite copies, so temporaries are fine.
    Check(sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }

  /// Advances; true when a row is available.
  arrow::Result<bool> Step() {
    ARROW_RETURN_NOT_OK(bind_status_);
    int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(rc);
  }

  /// Runs a statement that returns no rows.
  arrow::Status Run() { return Step().status(); }

  /// Clears bindings and rewinds, to run again with new parameters.
  void Reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }

  int64_t Int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  std::string Text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)))
             : std::string();
  }

  int last_result() const { return last_rc_; }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(rc);
  }
  arrow::Status Error(int rc) {
    last_rc_ = rc;
    std::string hint;
    if ((rc & 0xff) == SQLITE_BUSY) {
      hint = " (another connection is holding the registry's lock; waited up to " +
             std::to_string(kBusyTimeoutMs / 1000) + " s)";
    }
    return arrow::Status::IOError("SQLite registry ", where_, ": ", sqlite3_errmsg(db_), hint);
  }

  sqlite3* db_;
  StmtPtr stmt_;
  std::string where_;
  arrow::Status bind_status_;
  int last_rc_ = SQLITE_OK;
};

class SqliteStore : public RegistryStore {
 public:
  SqliteStore(std::string path, DbPtr db) : path_(std::move(path)), db_(std::move(db)) {}

  static arrow::Result<std::unique_ptr<RegistryStore>> Open(const std::string& path) {
    if (path.empty()) return arrow::Status::Invalid("SQLite registry path is empty");
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        return arrow::Status::IOError("cannot create the folder for the SQLite registry at ", path,
                                      ": ", ec.message());
      }
    }
    sqlite3* raw = nullptr;
    // NOMUTEX: SqliteStore serializes calls itself (mu_).
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr db(raw);  // sqlite3_open_v2 returns a handle even on failure
    if (rc != SQLITE_OK) {
      return arrow::Status::IOError("cannot open the SQLite registry at ", path, ": ",
                                    raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    }
    sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
    sqlite3_extended_result_codes(db.get(), 1);
    auto store = std::make_unique<SqliteStore>(path, std::move(db));
    ARROW_RETURN_NOT_OK(store->Initialize());
    return store;
  }

  arrow::Result<int64_t> HeadVersion() override {
    std::lock_guard<std::mutex> lock(mu_);
    return Head();
  }

  arrow::Result<std::vector<StoredObject>> ObjectsAt(int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    // Commits only add rows with registry_version > head, so reading the head
    // and then the rows needs no transaction to be consistent.
    ARROW_ASSIGN_OR_RAISE(int64_t head, Head());
    if (version < 0 || version > head) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kVersionNotFound,
                       "registry version " + std::to_string(version) + " does not exist in " +
                           Describe() + " (versions are 0 to " + std::to_string(head) + ")");
    }
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(kObjectsAtSql, "reading objects"));
    stmt.Bind(1, version);
    return ReadObjects(stmt);
  }

  arrow::Result<std::vector<StoredObject>> ObjectHistory(const std::string& kind,
                                                         const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(kHistorySql, "reading object history"));
    stmt.Bind(1, kind).Bind(2, name);
    return ReadObjects(stmt);
  }

  arrow::Result<std::vector<VersionRecord>> Versions() override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(kVersionsSql, "reading versions"));
    std::vector<VersionRecord> out;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(bool row, stmt.Step());
      if (!row) break;
      VersionRecord rec;
      rec.version = stmt.Int64(0);
      rec.committed_at_ms = stmt.Int64(1);
      rec.author = stmt.Text(2);
      rec.message = stmt.Text(3);
      rec.num_changes = static_cast<int32_t>(stmt.Int64(4));
      out.push_back(std::move(rec));
    }
    return out;
  }

  arrow::Result<VersionRecord> Commit(int64_t base_version, VersionRecord info,
                                      const std::vector<StoredObject>& rows) override {
    std::lock_guard<std::mutex> lock(mu_);
    // IMMEDIATE takes the write lock now (waiting up to the busy timeout), so
    // the head check below cannot be invalidated before COMMIT.
    ARROW_RETURN_NOT_OK(Exec("BEGIN IMMEDIATE", "starting a commit"));
    RollbackGuard guard(db_.get());
    ARROW_ASSIGN_OR_RAISE(int64_t head, Head());
    if (head != base_version) return ConflictError(head, base_version);

    info.version = base_version + 1;
    ARROW_ASSIGN_OR_RAISE(auto version_stmt, Prepare(kInsertVersionSql, "committing"));
    version_stmt.Bind(1, info.version)
        .Bind(2, info.committed_at_ms)
        .Bind(3, info.author)
        .Bind(4, info.message)
        .Bind(5, static_cast<int64_t>(info.num_changes));
    ARROW_RETURN_NOT_OK(version_stmt.Run());

    ARROW_ASSIGN_OR_RAISE(auto object_stmt, Prepare(kInsertObjectSql, "committing"));
    for (const auto& row : rows) {
      object_stmt.Reset();
      object_stmt.Bind(1, row.kind)
          .Bind(2, row.name)
          .Bind(3, row.object_version)
          .Bind(4, info.version)
          .Bind(5, static_cast<int64_t>(row.deleted ? 1 : 0))
          .Bind(6, row.spec);
      auto st = object_stmt.Run();
      if (!st.ok()) {
        if (object_stmt.last_result() == SQLITE_CONSTRAINT_PRIMARYKEY) {
          return arrow::Status::Invalid("cannot commit to ", Describe(), ": ", row.kind, " '",
                                        row.name, "' already has object version ",
                                        row.object_version);
        }
        return st;
      }
    }
    ARROW_RETURN_NOT_OK(Exec("COMMIT", "committing"));
    guard.Release();
    return info;
  }

  arrow::Status PutState(const std::string& key, const std::string& value,
                         int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(kPutStateSql, "writing state"));
    stmt.Bind(1, key).Bind(2, value).Bind(3, now_ms);
    return stmt.Run();
  }

  arrow::Result<std::optional<std::string>> GetState(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(kGetStateSql, "reading state"));
    stmt.Bind(1, key);
    ARROW_ASSIGN_OR_RAISE(bool row, stmt.Step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(stmt.Text(0));
  }

  std::string Describe() const override { return "sqlite:" + path_; }

 private:
  // Rolls back an open transaction unless released (after COMMIT).
  class RollbackGuard {
   public:
    explicit RollbackGuard(sqlite3* db) : db_(db) {}
    ~RollbackGuard() {
      if (db_ && !sqlite3_get_autocommit(db_)) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }
    void Release() { db_ = nullptr; }

   private:
    sqlite3* db_;
  };

  arrow::Status Initialize() {
    ARROW_RETURN_NOT_OK(EnableWal());
    ARROW_RETURN_NOT_OK(Exec("PRAGMA synchronous=FULL", "setting synchronous mode"));
    ARROW_RETURN_NOT_OK(Exec("BEGIN IMMEDIATE", "creating the schema"));
    RollbackGuard guard(db_.get());
    for (const char* sql : kCreateSchemaSql) {
      ARROW_RETURN_NOT_OK(Exec(sql, "creating the schema"));
    }
    {
      ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare("INSERT OR IGNORE INTO sl_registry_meta(key, value)"
                                               " VALUES('schema_version', ?1)",
                                               "creating the schema"));
      stmt.Bind(1, std::string(kSchemaVersion));
      ARROW_RETURN_NOT_OK(stmt.Run());
    }
    ARROW_ASSIGN_OR_RAISE(auto stmt,
                          Prepare("SELECT value FROM sl_registry_meta WHERE key = 'schema_version'",
                                  "reading the schema version"));
    ARROW_ASSIGN_OR_RAISE(bool row, stmt.Step());
    std::string found = row ? stmt.Text(0) : std::string();
    if (found != kSchemaVersion) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kUnsupportedFeature,
                       "registry " + Describe() + " has schema version '" + found +
                           "'; this StrataLake build understands version " + kSchemaVersion +
                           "; use a StrataLake release that matches the registry");
    }
    ARROW_RETURN_NOT_OK(Exec("COMMIT", "creating the schema"));
    guard.Release();
    return arrow::Status::OK();
  }

  // WAL lets readers (e.g. a serving process polling HeadVersion) proceed
  // while a commit is in flight; the mode is stored in the file. Switching a
  // new file to WAL needs an exclusive lock, and when another connection holds
  // it (several processes opening a new registry together) SQLite fails at
  // once with SQLITE_BUSY instead of calling the busy handler, so retry here.
  arrow::Status EnableWal() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare("PRAGMA journal_mode=WAL", "enabling WAL"));
      auto st = stmt.Step().status();
      if (st.ok() || (stmt.last_result() & 0xff) != SQLITE_BUSY ||
          std::chrono::steady_clock::now() > deadline) {
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  arrow::Result<Statement> Prepare(const char* sql, const std::string& what) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), sql, -1, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) {
      return arrow::Status::IOError("SQLite registry ", Describe(), ": ", what, ": ",
                                    sqlite3_errmsg(db_.get()));
    }
    return Statement(db_.get(), std::move(stmt), Describe() + ": " + what);
  }

  arrow::Status Exec(const char* sql, const std::string& what) {
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(sql, what));
    return stmt.Run();
  }

  arrow::Result<int64_t> Head() {
    ARROW_ASSIGN_OR_RAISE(auto stmt, Prepare(kHeadSql, "reading the head version"));
    ARROW_ASSIGN_OR_RAISE(bool row, stmt.Step());
    return row ? stmt.Int64(0) : 0;
  }

  arrow::Result<std::vector<StoredObject>> ReadObjects(Statement& stmt) {
    std::vector<StoredObject> out;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(bool row, stmt.Step());
      if (!row) break;
      StoredObject obj;
      obj.kind = stmt.Text(0);
      obj.name = stmt.Text(1);
      obj.object_version = stmt.Int64(2);
      obj.registry_version = stmt.Int64(3);
      obj.deleted = stmt.Int64(4) != 0;
      obj.spec = stmt.Text(5);
      out.push_back(std::move(obj));
    }
    return out;
  }

  arrow::Status ConflictError(int64_t head, int64_t base) const {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kRegistryConflict,
                     "another apply committed to " + Describe() + " first: registry is now at " +
                         "version " + std::to_string(head) + ", planned against " +
                         std::to_string(base) +
                         "; re-run `stratalake plan` to see the changes against the new "
                         "version, then apply again");
  }

  const std::string path_;
  std::mutex mu_;  // serializes use of db_
  DbPtr db_;
};

}  // namespace

arrow::Result<std::unique_ptr<RegistryStore>> OpenSqliteStore(const std::string& path) {
  return SqliteStore::Open(path);
}

}  // namespace stratalake::registry
