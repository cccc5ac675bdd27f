// Tables, saved datasets and quarantine folders on object storage: how an
// s3:// URI becomes an arrow::fs::FileSystem, and where its endpoint, region
// and credentials come from (docs/object-storage.md).
//
// For an s3:// URI each setting is taken from the first of:
//   1. the storage options of the call (TableOpenOptions::storage_options,
//      Python's storage_options=...);
//   2. the options registered for the longest matching URI prefix with
//      SetObjectStoreOptions (a repository registers its offline_store's
//      settings from stratalake.yaml when it is opened);
//   3. the URI's query (?endpoint_override=host:port&scheme=http&region=...);
//   4. the environment: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION /
//      AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
//      AWS_SESSION_TOKEN, AWS_PROFILE, STRATALAKE_S3_ALLOW_UNSAFE_COMMITS,
//      STRATALAKE_S3_COMMIT_COORDINATOR;
//   5. the profile (AWS_PROFILE or "default") in ~/.aws/credentials and
//      ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE);
//   6. defaults: AWS's endpoint for the region, region us-east-1 with a custom
//      endpoint, else the bucket's region; the AWS SDK's credential chain.
// With an endpoint, buckets are addressed path-style (http://host:port/bucket/key),
// as S3-compatible servers expect.
//
// Thread-safety: all functions are thread-safe. Filesystems are cached per
// distinct setting set and live until the process exits.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace stratalake {

struct ObjectStoreOptions {
  /// "http://127.0.0.1:9000", "https://s3.example.com" or "host:port" (https).
  /// Empty: not set here.
  std::string endpoint;
  std::string region;
  /// A profile of ~/.aws/credentials (and ~/.aws/config).
  std::string profile;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  /// Commit with check-then-write where the store ignores conditional writes
  /// (PUT If-None-Match: *). Two writers racing for one version may then both
  /// "win" it and one commit is silently lost: set only when a single writer
  /// ever commits to the tables. Unset (-1) means "not said here"; 0 / 1.
  int allow_unsafe_commits = -1;
  /// The database that decides commits (docs/object-storage.md, "Commit
  /// coordinator"): "postgresql://user@host:5432/db", "sqlite:///path/registry.db"
  /// or a file path. Set, every commit goes through it (whatever the store
  /// supports), which is safe with any number of writers as long as all of them
  /// use it. Empty: not set here ("none" turns it off). In stratalake.yaml,
  /// `commit_coordinator: registry` names the repository's registry database.
  std::string commit_coordinator;

  /// Options from a key/value map. Keys are case-insensitive and may be ours
  /// (endpoint, region, profile, access_key_id, secret_access_key,
  /// session_token, allow_unsafe_commits, commit_coordinator) or delta-rs's / object_store's
  /// (AWS_ENDPOINT_URL, AWS_ENDPOINT, AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID,
  /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_S3_ALLOW_UNSAFE_RENAME); those
  /// that do not change how we connect (AWS_ALLOW_HTTP, conditional_put, ...)
  /// are accepted and ignored. An unknown key is an error naming the known ones.
  static arrow::Result<ObjectStoreOptions> FromMap(const std::map<std::string, std::string>& map);
};

/// Use `options` for every s3:// URI that starts with `uri_prefix` (e.g.
/// "s3://bucket/lake"); a later call for the same prefix replaces the earlier.
/// Fails when the prefix is not an s3:// URI.
arrow::Status SetObjectStoreOptions(const std::string& uri_prefix, ObjectStoreOptions options);

/// The filesystem for a local path, a file:// URI or an s3:// URI, with the
/// path inside it in `*path` ("bucket/key" for S3). `storage_options` (see
/// ObjectStoreOptions::FromMap) come first for S3. A relative local path is
/// returned as is (relative to the working folder).
arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> OpenFileSystem(
    const std::string& uri, std::string* path,
    const std::map<std::string, std::string>& storage_options = {});

}  // namespace stratalake

namespace stratalake {

/// The local read cache of remote data files (docs/object-storage.md, "Read
/// cache"): whole Parquet data files of s3:// tables kept on local disk, least
/// recently used evicted first, shared by everything in the process (the
/// feature server, retrieval, materialization, table reads). Data files never
/// change once written, so a cached copy is never stale.
struct ReadCacheOptions {
  /// The folder; created if missing. Empty: the default,
  /// $STRATALAKE_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/stratalake/files.
  std::string dir;
  /// Bound on the bytes kept; 0 turns the cache off. -1: the default,
  /// $STRATALAKE_CACHE_SIZE (bytes, or with a K/M/G suffix), else 4 GiB. A
  /// file larger than a quarter of the bound is read remotely, not cached.
  int64_t max_bytes = -1;
  /// Bound on the memory that files being fetched into the cache land in
  /// (readers are served from it, and the cache file is written from it with
  /// O_DIRECT, not through the page cache). -1: the default,
  /// $STRATALAKE_CACHE_FETCH_MEMORY (bytes, or with a K/M/G suffix), else
  /// 512 MiB. A fetch that does not fit lands straight in its cache file and
  /// is read through a mapping of it (0: every fetch does).
  int64_t fetch_memory = -1;
};

/// Configure the process's read cache (until then it is configured from the
/// environment on first use). Files already cached in `dir` are kept (up to
/// the bound).
arrow::Status ConfigureReadCache(const ReadCacheOptions& options);

struct ReadCacheStats {
  uint64_t hits = 0;               // data files opened from the cache
  uint64_t misses = 0;             // data files fetched from the store
  uint64_t hit_bytes = 0;          // bytes of the files opened from the cache
  uint64_t miss_bytes = 0;         // bytes fetched from the store into the cache (or past it)
  uint64_t evictions = 0;          // files evicted to stay under the bound
  int64_t bytes_cached = 0;        // bytes held now
  int64_t max_bytes = 0;           // the bound (0: off)
  int64_t fetch_memory_bytes = 0;  // memory holding files being fetched now
};
/// The counters since the process started.
ReadCacheStats GetReadCacheStats();

}  // namespace stratalake
