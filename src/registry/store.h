// RegistryStore: the durable, versioned storage under the feature registry.
//
// The registry is a sequence of versions 1, 2, 3, ... Each version records the
// objects (entities, sources, feature views, feature services) that changed in
// it; an object's state at registry version V is its latest row with
// registry_version <= V (a row with deleted=true means it was removed).
// Commit() appends one version atomically and only if the head is still the
// version the caller planned against, so two concurrent applies can never both
// succeed from the same base: the loser gets ErrorKind::kRegistryConflict.
//
// Two implementations: SQLite (embedded, a file; the default) and PostgreSQL
// (libpq). Both use the same three tables, created on first open:
//   sl_registry_versions(version BIGINT PRIMARY KEY, committed_at_ms BIGINT,
//                        author TEXT, message TEXT, num_changes INTEGER)
//   sl_registry_objects(kind TEXT, name TEXT, object_version BIGINT,
//                       registry_version BIGINT, deleted INTEGER, spec TEXT,
//                       PRIMARY KEY(kind, name, object_version))
//   sl_registry_state(key TEXT PRIMARY KEY, value TEXT, updated_at_ms BIGINT)
// plus sl_registry_meta(key TEXT PRIMARY KEY, value TEXT) holding the schema
// version ("schema_version" = "1").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

namespace stratalake::registry {

/// One row of an object's history. `kind` is "entity", "source",
/// "feature_view" or "feature_service"; `spec` is the object's canonical JSON.
struct StoredObject {
  std::string kind;
  std::string name;
  int64_t object_version = 0;    // 1, 2, ... per (kind, name)
  int64_t registry_version = 0;  // the registry version that wrote this row
  bool deleted = false;
  std::string spec;  // canonical JSON; empty when deleted
};

struct VersionRecord {
  int64_t version = 0;
  int64_t committed_at_ms = 0;
  std::string author;
  std::string message;
  int32_t num_changes = 0;
};

/// Thread-safe: one store holds one database connection and serializes calls
/// on it; open one store per thread for parallel access. Errors other than the
/// kinds named below are IOError with the backend's message. The PostgreSQL
/// store reconnects on the call after the server dropped its connection.
class RegistryStore {
 public:
  virtual ~RegistryStore() = default;

  /// The newest registry version; 0 for a registry nothing was applied to.
  /// Cheap (one indexed query): long-running processes poll it to decide
  /// whether to reload.
  virtual arrow::Result<int64_t> HeadVersion() = 0;

  /// Live objects at registry `version` (latest row per (kind, name) with
  /// registry_version <= version, deleted rows excluded), ordered by kind,
  /// then name. kVersionNotFound if version < 0 or > head.
  virtual arrow::Result<std::vector<StoredObject>> ObjectsAt(int64_t version) = 0;

  /// Every row of one object, oldest first (empty if it never existed).
  virtual arrow::Result<std::vector<StoredObject>> ObjectHistory(const std::string& kind,
                                                                 const std::string& name) = 0;

  /// All versions, oldest first.
  virtual arrow::Result<std::vector<VersionRecord>> Versions() = 0;

  /// Atomically appends version base_version + 1 with `rows` (their
  /// registry_version is set to the new version; object_version must already
  /// be filled in by the caller). Fails with ErrorKind::kRegistryConflict and
  /// writes nothing when the head is no longer `base_version`, including when
  /// another process commits concurrently. Returns the record as stored
  /// (version filled in).
  virtual arrow::Result<VersionRecord> Commit(int64_t base_version, VersionRecord info,
                                              const std::vector<StoredObject>& rows) = 0;

  /// A small key/value table for registry-scoped state that is overwritten in
  /// place (e.g. materialization watermarks): one row per key, never a log.
  virtual arrow::Status PutState(const std::string& key, const std::string& value,
                                 int64_t now_ms) = 0;
  virtual arrow::Result<std::optional<std::string>> GetState(const std::string& key) = 0;

  /// Human-readable location, e.g. "sqlite:/repo/.stratalake/registry.db" or
  /// "postgresql://host:5432/db" (never includes a password).
  virtual std::string Describe() const = 0;
};

/// Opens (creating the schema if needed) the SQLite registry at `path`
/// (parent folders are created).
arrow::Result<std::unique_ptr<RegistryStore>> OpenSqliteStore(const std::string& path);

/// Opens (creating the schema if needed) a PostgreSQL registry at a libpq URL
/// such as postgresql://user:pass@host:5432/dbname. Connection failures are
/// reported with the URL (password elided) and libpq's message.
arrow::Result<std::unique_ptr<RegistryStore>> OpenPostgresStore(const std::string& url);

/// Dispatches on the URI: "postgresql://" or "postgres://" → PostgreSQL;
/// "sqlite://PATH" or a plain path → SQLite.
arrow::Result<std::unique_ptr<RegistryStore>> OpenRegistryStore(const std::string& uri);

}  // namespace stratalake::registry
