// Internals of include/stratalake/object_store.h that the S3 log store needs:
// the resolved connection of an S3 filesystem made by OpenFileSystem.
#pragma once

#include <string>

#include <arrow/filesystem/filesystem.h>

#include "stratalake/object_store.h"

namespace stratalake {

/// How an S3 filesystem reaches its store, fully resolved.
struct S3Connection {
  std::string endpoint_url;  // "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com"
  std::string region;
  std::string access_key_id;  // empty: none given; the AWS SDK's chain finds them
  std::string secret_access_key;
  std::string session_token;
  bool allow_unsafe_commits = false;
  std::string commit_coordinator;  // a database URI; empty: none (conditional PUTs)
};

/// The connection of `fs` when it is an S3 filesystem: the one OpenFileSystem
/// resolved for it, or, for an S3 filesystem made elsewhere, one read from its
/// options. Fails for other filesystems.
arrow::Result<S3Connection> S3ConnectionOf(const arrow::fs::FileSystem& fs);

/// Creates the folder `path` (and its parents) where folders exist. Object
/// stores (s3, gs, abfs) have none: a key's prefix needs no marker object, and
/// Arrow's CreateDir would send a request per level (a bucket check and
/// empty "folder/" objects) that delta-rs and Spark do not send either.
arrow::Status EnsureFolder(arrow::fs::FileSystem& fs, const std::string& path);

}  // namespace stratalake
