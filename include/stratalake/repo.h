// A feature repository: a folder with stratalake.yaml and definition files
// (YAML), plus the offline store (Delta tables in bronze/, silver/, gold/,
// datasets/, quarantine/), the registry and the online store it points at.
// See docs/feature-repository.md for the file formats.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/ingest.h"
#include "stratalake/registry.h"

namespace stratalake::repo {

/// stratalake.yaml, with every path resolved.
struct RepoConfig {
  std::string root;     // absolute path of the repository folder
  std::string project;  // project name
  /// Offline store root: an absolute local path or a URI (s3://bucket/prefix).
  std::string offline_store;
  std::string online_store_type = "embedded";  // "embedded" (RocksDB) or "redis"
  /// embedded: absolute folder; redis: URL (Redis Cluster: seed URLs, comma-separated)
  std::string online_store;
  bool online_store_cluster = false;  // redis: a Redis Cluster (online_store.cluster)
  /// Registry: an absolute SQLite file path or a postgresql:// URL. The
  /// environment variable STRATALAKE_REGISTRY, when set, overrides the file.
  std::string registry;
  registry::CompatibilityPolicy compatibility = registry::CompatibilityPolicy::kBackward;
  std::string default_timestamp_field;   // defaults.timestamp_field
  std::vector<std::string> definitions;  // absolute files or folders holding *.yaml / *.yml
};

/// Reads DIR/stratalake.yaml. Values may use ${ENV_VAR}. Errors name the file
/// and line (kDefinitionError) or say that DIR is not a repository and how to
/// create one (kObjectNotFound).
arrow::Result<RepoConfig> LoadRepoConfig(const std::string& dir);

/// One Delta table of the offline store.
struct TableInfo {
  std::string name;  // path below the offline store root, e.g. "bronze/orders"
  std::string uri;
  int64_t version = -1;
  int64_t rows = -1;  // from file statistics; -1 when unknown
  int64_t bytes = 0;
  int64_t files = 0;
  int64_t last_commit_ms = 0;
  std::string last_operation;
};

class FeatureRepository {
 public:
  static arrow::Result<std::unique_ptr<FeatureRepository>> Open(const std::string& dir);

  const RepoConfig& config() const { return config_; }

  /// Parses every definition file (sorted by path). Structural problems are
  /// all reported together as kDefinitionError ("FILE:LINE:COL: ...").
  arrow::Result<registry::Definitions> LoadDefinitions() const;
  /// LoadDefinitions + registry::Validate against the offline store.
  arrow::Result<registry::Definitions> LoadValidatedDefinitions() const;
  registry::ValidationOptions validation_options() const;

  /// The registry (opened once per FeatureRepository).
  arrow::Result<std::shared_ptr<registry::Registry>> registry() const;

  /// A table path relative to the offline store root -> its URI; absolute
  /// paths and URIs are returned unchanged.
  std::string TableUri(const std::string& path) const;

  /// A source's columns (after field_mapping): its declared schema, else its
  /// table's (Delta) or files' (Parquet) schema; nullptr when neither exists yet.
  arrow::Result<std::shared_ptr<arrow::Schema>> SourceSchema(const registry::Source& source) const;

  /// What `stratalake ingest` loads a source into (table, declared schema,
  /// checks, partitioning, quarantine table "quarantine/<source>").
  arrow::Result<IngestTarget> IngestTargetFor(const registry::Source& source) const;

  /// What an ingest into `name` loads: the applied source of that name, else
  /// the source of that name in the definition files, else — when `name`
  /// holds a '/' — the table at that path below the offline store (its
  /// quarantine table "quarantine/<name>"). Any other name is kObjectNotFound
  /// naming the closest sources (a typo must not create a new table); a path
  /// that leaves the offline store is kDefinitionError.
  arrow::Result<IngestTarget> ResolveIngestTarget(const std::string& name) const;

  /// Every Delta table under the offline store's layer folders (bronze,
  /// silver, gold, datasets, quarantine), sorted by name.
  arrow::Result<std::vector<TableInfo>> ListTables() const;

 private:
  explicit FeatureRepository(RepoConfig config) : config_(std::move(config)) {}
  RepoConfig config_;
  mutable std::shared_ptr<registry::Registry> registry_;
};

}  // namespace stratalake::repo
