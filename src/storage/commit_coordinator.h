// CommitCoordinator: the table of Delta commits in a SQL database that makes
// commits safe on object stores without conditional writes (docs/object-storage.md,
// "Commit coordinator"). It is the external-commit protocol of Delta's
// S3DynamoDBLogStore and delta-rs' DynamoDB LogStore, with the registry database
// (SQLite or PostgreSQL) in DynamoDB's place.
//
// One row per (table, version): the commit's temporary object and whether it
// has been copied into `_delta_log/`. The primary key (table_uri, version) is
// the put-if-absent primitive: of two writers inserting the same version, the
// database lets exactly one succeed, across processes (SQLite: one machine;
// PostgreSQL: any number of machines).
//
//   sl_commit_log(table_uri TEXT, version BIGINT, temp_path TEXT,
//                 complete INTEGER, created_at_ms BIGINT,
//                 PRIMARY KEY(table_uri, version))
//
// created in the database on first use, beside the registry's own tables.
//
// Thread-safety: thread-safe; calls on one coordinator are serialized on its
// one connection (the PostgreSQL one reconnects after the server dropped it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>

namespace stratalake::delta {

struct CommitEntry {
  int64_t version = 0;
  std::string temp_path;  // the commit's bytes, in the table's `_delta_log/.tmp/`
  bool complete = false;  // copied to `_delta_log/NNN.json`
};

class CommitCoordinator {
 public:
  virtual ~CommitCoordinator() = default;

  /// Record (table_uri, version) → temp_path, not complete, only if there is no
  /// entry for that version: Status::AlreadyExists if there is.
  virtual arrow::Status PutIfAbsent(const std::string& table_uri, int64_t version,
                                    const std::string& temp_path) = 0;
  /// The entry of `version`, if any.
  virtual arrow::Result<std::optional<CommitEntry>> Get(const std::string& table_uri,
                                                        int64_t version) = 0;
  /// The entry with the highest version of the table, if any.
  virtual arrow::Result<std::optional<CommitEntry>> Latest(const std::string& table_uri) = 0;
  /// Mark the entry complete (its commit file is in place). Complete entries
  /// more than 1000 versions behind are removed now and then.
  virtual arrow::Status MarkComplete(const std::string& table_uri, int64_t version) = 0;

  /// "sqlite:/path/registry.db" or "postgresql://host:5432/db" (no password).
  virtual std::string Describe() const = 0;
};

/// The coordinator in the database at `uri`: "postgresql://..." or
/// "postgres://..." (libpq URL), "sqlite://PATH" or a plain path (SQLite; the
/// file and its folders are created if missing). Opened once per URI per
/// process and shared.
arrow::Result<std::shared_ptr<CommitCoordinator>> OpenCommitCoordinator(const std::string& uri);

}  // namespace stratalake::delta
