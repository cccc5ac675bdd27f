// PostgreSQL registry backend (libpq). Concurrent commits from the same base
// are decided by the primary key of sl_registry_versions: both transactions
// insert version base+1, the second blocks until the first commits and then
// fails with unique_violation, which we report as kRegistryConflict.
#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "registry/store.h"
#include "stratalake/status.h"

namespace stratalake::registry {

namespace {

constexpr const char* kSchemaVersion = "1";
// Key of the transaction-scoped advisory lock that serializes schema creation
// when several processes open a fresh database at once ("StrataLk" in ASCII).
constexpr const char* kSchemaLockKey = "6013528659396193387";
constexpr const char* kUniqueViolation = "23505";
// Rows per INSERT when writing a commit's objects (6 parameters each; the
// protocol allows 65535 parameters per statement).
constexpr size_t kRowsPerInsert = 1000;

struct ConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultClearer {
  void operator()(PGresult* res) const { PQclear(res); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// Values are only ever passed as parameters; these strings are constants.
constexpr const char* kCreateSchemaSql[] = {
    "CREATE TABLE IF NOT EXISTS sl_registry_versions("
    " version BIGINT PRIMARY KEY, committed_at_ms BIGINT NOT NULL, author TEXT NOT NULL,"
    " message TEXT NOT NULL, num_changes INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sl_registry_objects("
    " kind TEXT NOT NULL, name TEXT NOT NULL, object_version BIGINT NOT NULL,"
    " registry_version BIGINT NOT NULL, deleted INTEGER NOT NULL, spec TEXT NOT NULL,"
    " PRIMARY KEY(kind, name, object_version))",
    "CREATE TABLE IF NOT EXISTS sl_registry_state("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sl_registry_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
};

constexpr const char* kSchemaExistsSql =
    "SELECT to_regclass('sl_registry_versions') IS NOT NULL"
    " AND to_regclass('sl_registry_objects') IS NOT NULL"
    " AND to_regclass('sl_registry_state') IS NOT NULL"
    " AND to_regclass('sl_registry_meta') IS NOT NULL";

constexpr const char* kHeadSql = "SELECT COALESCE(MAX(version), 0) FROM sl_registry_versions";

// COLLATE "C": order by bytes, as SQLite does, whatever the database's locale.
constexpr const char* kObjectsAtSql =
    "SELECT kind, name, object_version, registry_version, deleted, spec FROM ("
    " SELECT kind, name, object_version, registry_version, deleted, spec,"
    "  ROW_NUMBER() OVER (PARTITION BY kind, name"
    "   ORDER BY registry_version DESC, object_version DESC) AS rn"
    " FROM sl_registry_objects WHERE registry_version <= $1) latest"
    " WHERE rn = 1 AND deleted = 0 ORDER BY kind COLLATE \"C\", name COLLATE \"C\"";

constexpr const char* kHistorySql =
    "SELECT kind, name, object_version, registry_version, deleted, spec"
    " FROM sl_registry_objects WHERE kind = $1 AND name = $2"
    " ORDER BY registry_version, object_version";

constexpr const char* kVersionsSql =
    "SELECT version, committed_at_ms, author, message, num_changes"
    " FROM sl_registry_versions ORDER BY version";

constexpr const char* kInsertVersionSql =
    "INSERT INTO sl_registry_versions(version, committed_at_ms, author, message, num_changes)"
    " VALUES($1, $2, $3, $4, $5)";

constexpr const char* kPutStateSql =
    "INSERT INTO sl_registry_state(key, value, updated_at_ms) VALUES($1, $2, $3)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at_ms = "
    "excluded.updated_at_ms";

constexpr const char* kGetStateSql = "SELECT value FROM sl_registry_state WHERE key = $1";

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// `url` without its password: the userinfo's ":password" and any
// password=... query parameter (URL form), or password=... (key=value form).
std::string ElidePassword(const std::string& url) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (!StartsWith(url, scheme)) continue;
    size_t start = scheme.size();
    size_t end = url.find_first_of("/?", start);
    if (end == std::string::npos) end = url.size();
    std::string authority = url.substr(start, end - start);
    size_t at = authority.rfind('@');
    if (at != std::string::npos) {
      size_t colon = authority.find(':');
      if (colon < at) authority.erase(colon, at - colon);
    }
    std::string rest = url.substr(end);
    size_t q = rest.find('?');
    if (q != std::string::npos) {
      std::string query = rest.substr(q + 1);
      std::string kept;
      size_t pos = 0;
      while (pos <= query.size()) {
        size_t amp = query.find('&', pos);
        if (amp == std::string::npos) amp = query.size();
        std::string param = query.substr(pos, amp - pos);
        if (!param.empty() && !StartsWith(param, "password=") && param != "password") {
          if (!kept.empty()) kept += '&';
          kept += param;
        }
        pos = amp + 1;
      }
      rest.resize(q);
      if (!kept.empty()) rest.append("?").append(kept);
    }
    return std::string(scheme).append(authority).append(rest);
  }
  static const std::regex kPasswordParam(R"((^|\s)password\s*=\s*('([^'\\]|\\.)*'|\S*))");
  return std::regex_replace(url, kPasswordParam, "$1password=***");
}

std::string TrimmedError(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void IgnoreNotice(void*, const char*) {}  // e.g. "relation ... already exists, skipping"

std::string SqlState(const PGresult* res) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  return state ? state : "";
}

bool Succeeded(const PGresult* res) {
  if (!res) return false;
  auto status = PQresultStatus(res);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

arrow::Result<int64_t> GetInt64(const PGresult* res, int row, int col) {
  const char* text = PQgetvalue(res, row, col);
  std::string_view s(text, static_cast<size_t>(PQgetlength(res, row, col)));
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return arrow::Status::IOError("PostgreSQL registry returned '", s, "' where an integer ",
                                  "was expected");
  }
  return value;
}

std::string GetText(const PGresult* res, int row, int col) {
  return std::string(PQgetvalue(res, row, col), static_cast<size_t>(PQgetlength(res, row, col)));
}

class PostgresStore : public RegistryStore {
 public:
  PostgresStore(std::string described, ConnPtr conn)
      : described_(std::move(described)), conn_(std::move(conn)) {}

  static arrow::Result<std::unique_ptr<RegistryStore>> Open(const std::string& url) {
    // Defaults come first so that the URL (expanded from "dbname") overrides them.
    const char* keywords[] = {"connect_timeout", "client_encoding", "fallback_application_name",
                              "dbname", nullptr};
    const char* values[] = {"10", "UTF8", "stratalake", url.c_str(), nullptr};
    ConnPtr conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
    std::string described = ElidePassword(url);
    if (!conn) {
      return arrow::Status::OutOfMemory("cannot allocate a PostgreSQL connection for ", described);
    }
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      return ConnectError(described, conn.get());
    }
    PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
    auto store = std::make_unique<PostgresStore>(std::move(described), std::move(conn));
    ARROW_RETURN_NOT_OK(store->Initialize());
    return store;
  }

  arrow::Result<int64_t> HeadVersion() override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    return Head();
  }

  arrow::Result<std::vector<StoredObject>> ObjectsAt(int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    // Commits only add rows with registry_version > head, so reading the head
    // and then the rows needs no transaction to be consistent.
    ARROW_ASSIGN_OR_RAISE(int64_t head, Head());
    if (version < 0 || version > head) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kVersionNotFound,
                       "registry version " + std::to_string(version) + " does not exist in " +
                           Describe() + " (versions are 0 to " + std::to_string(head) + ")");
    }
    ARROW_ASSIGN_OR_RAISE(auto res,
                          Exec(kObjectsAtSql, {std::to_string(version)}, "reading objects"));
    return ReadObjects(res.get());
  }

  arrow::Result<std::vector<StoredObject>> ObjectHistory(const std::string& kind,
                                                         const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    ARROW_ASSIGN_OR_RAISE(auto res, Exec(kHistorySql, {kind, name}, "reading object history"));
    return ReadObjects(res.get());
  }

  arrow::Result<std::vector<VersionRecord>> Versions() override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    ARROW_ASSIGN_OR_RAISE(auto res, Exec(kVersionsSql, {}, "reading versions"));
    std::vector<VersionRecord> out;
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      VersionRecord rec;
      ARROW_ASSIGN_OR_RAISE(rec.version, GetInt64(res.get(), r, 0));
      ARROW_ASSIGN_OR_RAISE(rec.committed_at_ms, GetInt64(res.get(), r, 1));
      rec.author = GetText(res.get(), r, 2);
      rec.message = GetText(res.get(), r, 3);
      ARROW_ASSIGN_OR_RAISE(int64_t num_changes, GetInt64(res.get(), r, 4));
      rec.num_changes = static_cast<int32_t>(num_changes);
      out.push_back(std::move(rec));
    }
    return out;
  }

  arrow::Result<VersionRecord> Commit(int64_t base_version, VersionRecord info,
                                      const std::vector<StoredObject>& rows) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    ARROW_RETURN_NOT_OK(Exec("BEGIN", {}, "starting a commit").status());
    RollbackGuard guard(this);
    ARROW_ASSIGN_OR_RAISE(int64_t head, Head());
    if (head != base_version) return ConflictError(head, base_version);

    info.version = base_version + 1;
    ResultPtr res =
        Run(kInsertVersionSql, {std::to_string(info.version), std::to_string(info.committed_at_ms),
                                info.author, info.message, std::to_string(info.num_changes)});
    if (!Succeeded(res.get())) {
      if (SqlState(res.get()) != kUniqueViolation) return ResultError(res.get(), "committing");
      // A concurrent commit from the same base inserted this version first.
      guard.Rollback();
      ARROW_ASSIGN_OR_RAISE(head, Head());
      return ConflictError(head, base_version);
    }

    for (size_t begin = 0; begin < rows.size(); begin += kRowsPerInsert) {
      size_t end = std::min(rows.size(), begin + kRowsPerInsert);
      std::string sql =
          "INSERT INTO sl_registry_objects(kind, name, object_version, registry_version, "
          "deleted, spec) VALUES ";
      std::vector<std::string> params;
      params.reserve((end - begin) * 6);
      for (size_t i = begin; i < end; ++i) {
        const auto& row = rows[i];
        size_t p = params.size();
        sql += (i == begin ? "(" : ",(");
        for (size_t k = 1; k <= 6; ++k) sql += (k == 1 ? "$" : ",$") + std::to_string(p + k);
        sql += ")";
        params.push_back(row.kind);
        params.push_back(row.name);
        params.push_back(std::to_string(row.object_version));
        params.push_back(std::to_string(info.version));
        params.push_back(row.deleted ? "1" : "0");
        params.push_back(row.spec);
      }
      ResultPtr inserted = Run(sql.c_str(), params);
      if (!Succeeded(inserted.get())) {
        if (SqlState(inserted.get()) == kUniqueViolation) {
          const char* detail = PQresultErrorField(inserted.get(), PG_DIAG_MESSAGE_DETAIL);
          return arrow::Status::Invalid("cannot commit to ", Describe(),
                                        ": an object version in the commit already exists (",
                                        TrimmedError(detail), ")");
        }
        return ResultError(inserted.get(), "committing");
      }
    }
    ResultPtr committed = Run("COMMIT", {});
    guard.Release();
    if (!Succeeded(committed.get())) {
      return arrow::Status::IOError(
          "PostgreSQL registry ", Describe(), ": COMMIT of version ", info.version,
          " failed, so it may or may not have been applied (check the registry's head version "
          "before retrying): ",
          TrimmedError(PQerrorMessage(conn_.get())));
    }
    return info;
  }

  arrow::Status PutState(const std::string& key, const std::string& value,
                         int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    return Exec(kPutStateSql, {key, value, std::to_string(now_ms)}, "writing state").status();
  }

  arrow::Result<std::optional<std::string>> GetState(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(EnsureConnected());
    ARROW_ASSIGN_OR_RAISE(auto res, Exec(kGetStateSql, {key}, "reading state"));
    if (PQntuples(res.get()) == 0) return std::optional<std::string>();
    return std::optional<std::string>(GetText(res.get(), 0, 0));
  }

  std::string Describe() const override { return described_; }

 private:
  // Rolls back the open transaction unless released (after COMMIT was sent).
  class RollbackGuard {
   public:
    explicit RollbackGuard(PostgresStore* store) : store_(store) {}
    ~RollbackGuard() { Rollback(); }
    void Rollback() {
      if (store_) store_->Run("ROLLBACK", {});
      store_ = nullptr;
    }
    void Release() { store_ = nullptr; }

   private:
    PostgresStore* store_;
  };

  static arrow::Status ConnectError(const std::string& described, PGconn* conn) {
    return arrow::Status::IOError(
        "cannot connect to the PostgreSQL registry at ", described, ": ",
        TrimmedError(PQerrorMessage(conn)),
        "; check that the server is running and that the URL's host, port, user, password "
        "and database are right (the database must exist: StrataLake creates its tables, "
        "not the database)");
  }

  // Reconnects a connection the server dropped (e.g. a restart), so that
  // long-running processes recover on their next call.
  arrow::Status EnsureConnected() {
    if (PQstatus(conn_.get()) == CONNECTION_OK) return arrow::Status::OK();
    PQreset(conn_.get());
    if (PQstatus(conn_.get()) != CONNECTION_OK) return ConnectError(described_, conn_.get());
    return arrow::Status::OK();
  }

  arrow::Status Initialize() {
    // Skip the DDL when the tables exist, so roles without CREATE privilege
    // can open a registry someone else created.
    ARROW_ASSIGN_OR_RAISE(auto exists, Exec(kSchemaExistsSql, {}, "checking the schema"));
    bool have_schema = GetText(exists.get(), 0, 0) == "t";
    ARROW_RETURN_NOT_OK(Exec("BEGIN", {}, "creating the schema").status());
    RollbackGuard guard(this);
    if (!have_schema) {
      // CREATE TABLE IF NOT EXISTS is not safe against a concurrent creator
      // (both may pass the check and one fails on the catalog's unique index).
      ARROW_RETURN_NOT_OK(
          Exec("SELECT pg_advisory_xact_lock($1::bigint)", {kSchemaLockKey}, "locking the schema")
              .status());
      for (const char* sql : kCreateSchemaSql) {
        ARROW_RETURN_NOT_OK(Exec(sql, {}, "creating the schema").status());
      }
      ARROW_RETURN_NOT_OK(Exec("INSERT INTO sl_registry_meta(key, value)"
                               " VALUES('schema_version', $1) ON CONFLICT(key) DO NOTHING",
                               {kSchemaVersion}, "creating the schema")
                              .status());
    }
    ARROW_ASSIGN_OR_RAISE(
        auto res, Exec("SELECT value FROM sl_registry_meta WHERE key = 'schema_version'", {},
                       "reading the schema version"));
    std::string found = PQntuples(res.get()) > 0 ? GetText(res.get(), 0, 0) : std::string();
    if (found != kSchemaVersion) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kUnsupportedFeature,
                       "registry " + Describe() + " has schema version '" + found +
                           "'; this StrataLake build understands version " + kSchemaVersion +
                           "; use a StrataLake release that matches the registry");
    }
    ARROW_RETURN_NOT_OK(Exec("COMMIT", {}, "creating the schema").status());
    guard.Release();
    return arrow::Status::OK();
  }

  // Runs one statement with text parameters; the caller checks the result.
  ResultPtr Run(const char* sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p.c_str());
    return ResultPtr(PQexecParams(conn_.get(), sql, static_cast<int>(values.size()),
                                  /*paramTypes=*/nullptr, values.data(), /*paramLengths=*/nullptr,
                                  /*paramFormats=*/nullptr, /*resultFormat=*/0));
  }

  arrow::Result<ResultPtr> Exec(const char* sql, const std::vector<std::string>& params,
                                const std::string& what) {
    ResultPtr res = Run(sql, params);
    if (!Succeeded(res.get())) return ResultError(res.get(), what);
    return res;
  }

  arrow::Status ResultError(const PGresult* res, const std::string& what) {
    std::string message =
        TrimmedError(res ? PQresultErrorMessage(res) : PQerrorMessage(conn_.get()));
    if (message.empty()) message = TrimmedError(PQerrorMessage(conn_.get()));
    std::string state = SqlState(res);
    return arrow::Status::IOError("PostgreSQL registry ", Describe(), ": ", what, ": ", message,
                                  state.empty() ? "" : " (SQLSTATE " + state + ")");
  }

  arrow::Result<int64_t> Head() {
    ARROW_ASSIGN_OR_RAISE(auto res, Exec(kHeadSql, {}, "reading the head version"));
    return GetInt64(res.get(), 0, 0);
  }

  arrow::Result<std::vector<StoredObject>> ReadObjects(const PGresult* res) {
    std::vector<StoredObject> out;
    int n = PQntuples(res);
    out.reserve(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      StoredObject obj;
      obj.kind = GetText(res, r, 0);
      obj.name = GetText(res, r, 1);
      ARROW_ASSIGN_OR_RAISE(obj.object_version, GetInt64(res, r, 2));
      ARROW_ASSIGN_OR_RAISE(obj.registry_version, GetInt64(res, r, 3));
      ARROW_ASSIGN_OR_RAISE(int64_t deleted, GetInt64(res, r, 4));
      obj.deleted = deleted != 0;
      obj.spec = GetText(res, r, 5);
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

  const std::string described_;  // the URL without its password
  std::mutex mu_;                // serializes use of conn_
  ConnPtr conn_;
};

}  // namespace

arrow::Result<std::unique_ptr<RegistryStore>> OpenPostgresStore(const std::string& url) {
  return PostgresStore::Open(url);
}

}  // namespace stratalake::registry
