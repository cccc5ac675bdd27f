#include "storage/object_store.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include <arrow/filesystem/localfs.h>
#include <arrow/filesystem/s3fs.h>

#include "stratalake/status.h"

namespace stratalake {

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

arrow::Result<int> ParseBool(const std::string& key, const std::string& value) {
  std::string v = Lower(value);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return 1;
  if (v == "false" || v == "0" || v == "no" || v == "off" || v.empty()) return 0;
  return arrow::Status::Invalid("storage option '", key, "' must be true or false, not '", value,
                                "'");
}

// Fill every field of `into` that is unset from `from`.
void Overlay(ObjectStoreOptions* into, const ObjectStoreOptions& from) {
  auto fill = [](std::string* a, const std::string& b) {
    if (a->empty()) *a = b;
  };
  fill(&into->endpoint, from.endpoint);
  fill(&into->region, from.region);
  fill(&into->profile, from.profile);
  if (into->access_key_id.empty() && !from.access_key_id.empty()) {
    into->access_key_id = from.access_key_id;
    into->secret_access_key = from.secret_access_key;
    into->session_token = from.session_token;
  }
  if (into->allow_unsafe_commits < 0) into->allow_unsafe_commits = from.allow_unsafe_commits;
  fill(&into->commit_coordinator, from.commit_coordinator);
}

// `key` of `[section]` in an INI-style AWS file ("" if absent).
std::map<std::string, std::string> IniSection(const std::string& file, const std::string& section) {
  std::map<std::string, std::string> out;
  std::ifstream in(file);
  if (!in) return out;
  std::string line, current;
  auto trim = [](std::string s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      current = trim(line.substr(1, line.size() - 2));
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    if (current == section) out[Lower(trim(line.substr(0, eq)))] = trim(line.substr(eq + 1));
  }
  return out;
}

std::string HomeFile(const char* env, const char* rel) {
  std::string v = Env(env);
  if (!v.empty()) return v;
  std::string home = Env("HOME");
  return home.empty() ? std::string() : home + "/" + rel;
}

ObjectStoreOptions FromProfile(const std::string& profile) {
  ObjectStoreOptions o;
  auto creds = IniSection(HomeFile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"), profile);
  auto config = IniSection(HomeFile("AWS_CONFIG_FILE", ".aws/config"),
                           profile == "default" ? profile : "profile " + profile);
  o.access_key_id = creds["aws_access_key_id"];
  o.secret_access_key = creds["aws_secret_access_key"];
  o.session_token = creds["aws_session_token"];
  o.region = config["region"];
  o.endpoint = config["endpoint_url"];
  return o;
}

struct Registered {
  std::mutex mu;
  std::map<std::string, ObjectStoreOptions> by_prefix;
  // Filesystems by their settings, and the connection of each.
  std::map<std::string, std::shared_ptr<arrow::fs::FileSystem>> filesystems;
  std::unordered_map<const arrow::fs::FileSystem*, S3Connection> connections;
};

Registered& Global() {
  static auto* g = new Registered();  // never destroyed: filesystems outlive static teardown
  return *g;
}

struct S3Uri {
  std::string bucket_and_key;  // "bucket/key" without a trailing slash
  std::string user, password;
  std::map<std::string, std::string> query;
};

arrow::Result<S3Uri> ParseS3Uri(const std::string& uri) {
  S3Uri out;
  std::string rest = uri.substr(5);  // after "s3://"
  auto q = rest.find('?');
  if (q != std::string::npos) {
    std::string query = rest.substr(q + 1);
    rest = rest.substr(0, q);
    size_t start = 0;
    while (start <= query.size()) {
      size_t amp = query.find('&', start);
      std::string kv =
          query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      if (!kv.empty()) {
        auto eq = kv.find('=');
        out.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      }
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  auto at = authority.rfind('@');
  if (at != std::string::npos) {
    std::string userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    out.user = userinfo.substr(0, colon);
    if (colon != std::string::npos) out.password = userinfo.substr(colon + 1);
  }
  if (authority.empty()) {
    return arrow::Status::Invalid("'", uri, "' names no bucket: write s3://BUCKET/PATH");
  }
  out.bucket_and_key = authority + (slash == std::string::npos ? "" : rest.substr(slash));
  while (out.bucket_and_key.size() > 1 && out.bucket_and_key.back() == '/') {
    out.bucket_and_key.pop_back();
  }
  return out;
}

// The settings for `uri`, all sources merged (see the header).
arrow::Result<ObjectStoreOptions> Resolve(const std::string& uri, const S3Uri& parsed,
                                          const std::map<std::string, std::string>& call) {
  ARROW_ASSIGN_OR_RAISE(ObjectStoreOptions o, ObjectStoreOptions::FromMap(call));
  {
    auto& g = Global();
    std::lock_guard<std::mutex> lock(g.mu);
    const ObjectStoreOptions* best = nullptr;
    size_t best_len = 0;
    for (const auto& [prefix, opts] : g.by_prefix) {
      bool match = uri.compare(0, prefix.size(), prefix) == 0 &&
                   (uri.size() == prefix.size() || uri[prefix.size()] == '/' ||
                    uri[prefix.size()] == '?' || prefix.back() == '/');
      if (match && prefix.size() >= best_len) {
        best = &opts;
        best_len = prefix.size();
      }
    }
    if (best) Overlay(&o, *best);
  }
  ObjectStoreOptions from_uri;
  for (const auto& [k, v] : parsed.query) {
    if (k == "endpoint_override") {
      auto sch = parsed.query.find("scheme");
      from_uri.endpoint =
          v.find("://") != std::string::npos
              ? v
              : (sch != parsed.query.end() ? sch->second : std::string("https")) + "://" + v;
    } else if (k == "region") {
      from_uri.region = v;
    } else if (k == "scheme") {
      // With endpoint_override.
    } else if (k == "allow_unsafe_commits") {
      ARROW_ASSIGN_OR_RAISE(from_uri.allow_unsafe_commits, ParseBool(k, v));
    } else {
      return arrow::Status::Invalid("'", uri, "': unknown query parameter '", k,
                                    "' (known: endpoint_override, scheme, region, "
                                    "allow_unsafe_commits)");
    }
  }
  if (!parsed.user.empty()) {
    from_uri.access_key_id = parsed.user;
    from_uri.secret_access_key = parsed.password;
  }
  Overlay(&o, from_uri);
  ObjectStoreOptions env;
  env.endpoint = Env("AWS_ENDPOINT_URL_S3");
  if (env.endpoint.empty()) env.endpoint = Env("AWS_ENDPOINT_URL");
  env.region = Env("AWS_REGION");
  if (env.region.empty()) env.region = Env("AWS_DEFAULT_REGION");
  env.profile = Env("AWS_PROFILE");
  env.access_key_id = Env("AWS_ACCESS_KEY_ID");
  env.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  env.session_token = Env("AWS_SESSION_TOKEN");
  env.commit_coordinator = Env("STRATALAKE_S3_COMMIT_COORDINATOR");
  if (!Env("STRATALAKE_S3_ALLOW_UNSAFE_COMMITS").empty()) {
    ARROW_ASSIGN_OR_RAISE(
        env.allow_unsafe_commits,
        ParseBool("STRATALAKE_S3_ALLOW_UNSAFE_COMMITS", Env("STRATALAKE_S3_ALLOW_UNSAFE_COMMITS")));
  }
  // A profile named by the call or the repository beats the environment's keys.
  if (!o.profile.empty()) Overlay(&o, FromProfile(o.profile));
  Overlay(&o, env);
  Overlay(&o, FromProfile(o.profile.empty() ? "default" : o.profile));
  if (o.allow_unsafe_commits < 0) o.allow_unsafe_commits = 0;
  if (!o.access_key_id.empty() && o.secret_access_key.empty()) {
    return arrow::Status::Invalid("S3 access key id '", o.access_key_id,
                                  "' has no secret access key: set secret_access_key "
                                  "(or AWS_SECRET_ACCESS_KEY) too");
  }
  return o;
}

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> OpenS3(
    const std::string& uri, std::string* path, const std::map<std::string, std::string>& call) {
  ARROW_ASSIGN_OR_RAISE(S3Uri parsed, ParseS3Uri(uri));
  ARROW_ASSIGN_OR_RAISE(ObjectStoreOptions o, Resolve(uri, parsed, call));
  *path = parsed.bucket_and_key;
  std::string key = o.endpoint + '\n' + o.region + '\n' + o.access_key_id + '\n' +
                    o.secret_access_key + '\n' + o.session_token + '\n' +
                    std::to_string(o.allow_unsafe_commits) + '\n' + o.commit_coordinator;
  auto& g = Global();
  std::lock_guard<std::mutex> lock(g.mu);
  if (auto it = g.filesystems.find(key); it != g.filesystems.end()) return it->second;

  ARROW_RETURN_NOT_OK(arrow::fs::EnsureS3Initialized());
  arrow::fs::S3Options s3 = arrow::fs::S3Options::Defaults();
  if (!o.access_key_id.empty()) {
    s3.ConfigureAccessKey(o.access_key_id, o.secret_access_key, o.session_token);
  }
  S3Connection conn;
  if (!o.endpoint.empty()) {
    std::string ep = o.endpoint;
    while (!ep.empty() && ep.back() == '/') ep.pop_back();
    auto sep = ep.find("://");
    if (sep == std::string::npos) ep = "https://" + ep, sep = 5;
    s3.scheme = ep.substr(0, sep);
    if (s3.scheme != "http" && s3.scheme != "https") {
      return arrow::Status::Invalid("S3 endpoint '", o.endpoint,
                                    "' must start with http:// or https://");
    }
    s3.endpoint_override = ep.substr(sep + 3);
    conn.endpoint_url = ep;
    s3.region = o.region.empty() ? "us-east-1" : o.region;
  } else if (!o.region.empty()) {
    s3.region = o.region;
  } else {
    std::string bucket = parsed.bucket_and_key.substr(0, parsed.bucket_and_key.find('/'));
    auto region = arrow::fs::ResolveS3BucketRegion(bucket);
    s3.region = region.ok() ? *region : "us-east-1";
  }
  // Delta writes many small objects; leave the directory markers Arrow would
  // check for before each CreateDir alone.
  s3.check_directory_existence_before_creation = false;
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow::fs::S3FileSystem::Make(s3));
  if (conn.endpoint_url.empty()) {
    conn.endpoint_url = "https://s3." + s3.region + ".amazonaws.com";
  }
  conn.region = s3.region;
  conn.access_key_id = o.access_key_id;
  conn.secret_access_key = o.secret_access_key;
  conn.session_token = o.session_token;
  // Without explicit keys the SDK's chain (instance roles, SSO, ...) finds them;
  // S3LogStore asks it when it first commits (asking may take a network call).
  conn.allow_unsafe_commits = o.allow_unsafe_commits > 0;
  conn.commit_coordinator = o.commit_coordinator == "none" ? "" : o.commit_coordinator;
  g.connections[fs.get()] = conn;
  g.filesystems[key] = fs;
  return fs;
}

}  // namespace

arrow::Result<ObjectStoreOptions> ObjectStoreOptions::FromMap(
    const std::map<std::string, std::string>& map) {
  ObjectStoreOptions o;
  for (const auto& [raw_key, value] : map) {
    std::string k = Lower(raw_key);
    if (k == "endpoint" || k == "endpoint_url" || k == "aws_endpoint_url" || k == "aws_endpoint" ||
        k == "aws_endpoint_url_s3") {
      o.endpoint = value;
    } else if (k == "region" || k == "aws_region" || k == "aws_default_region") {
      o.region = value;
    } else if (k == "profile" || k == "aws_profile") {
      o.profile = value;
    } else if (k == "access_key_id" || k == "aws_access_key_id") {
      o.access_key_id = value;
    } else if (k == "secret_access_key" || k == "aws_secret_access_key") {
      o.secret_access_key = value;
    } else if (k == "session_token" || k == "aws_session_token" || k == "token" ||
               k == "aws_token") {
      o.session_token = value;
    } else if (k == "allow_unsafe_commits" || k == "aws_s3_allow_unsafe_rename") {
      ARROW_ASSIGN_OR_RAISE(o.allow_unsafe_commits, ParseBool(raw_key, value));
    } else if (k == "commit_coordinator") {
      if (value == "registry") {
        return arrow::Status::Invalid(
            "storage option commit_coordinator: 'registry' means a repository's registry "
            "database and is only understood in stratalake.yaml's offline_store; give the "
            "database itself (postgresql://user@host:5432/db, sqlite:///path/registry.db)");
      }
      o.commit_coordinator = value.empty() ? "none" : value;
    } else if (k == "aws_allow_http" || k == "allow_http" || k == "conditional_put" ||
               k == "aws_conditional_put" || k == "aws_virtual_hosted_style_request" ||
               k == "aws_s3_locking_provider" || k == "aws_force_credential_load") {
      // delta-rs settings that do not change how we connect.
    } else {
      return arrow::Status::Invalid(
          "unknown storage option '", raw_key,
          "' (known: endpoint, region, profile, access_key_id, secret_access_key, "
          "session_token, allow_unsafe_commits, commit_coordinator, or their AWS_* names as "
          "delta-rs spells them)");
    }
  }
  return o;
}

arrow::Status SetObjectStoreOptions(const std::string& uri_prefix, ObjectStoreOptions options) {
  if (uri_prefix.rfind("s3://", 0) != 0) {
    return arrow::Status::Invalid("object store options are for s3:// URIs, not '", uri_prefix,
                                  "'");
  }
  std::string prefix = uri_prefix;
  while (prefix.size() > 5 && prefix.back() == '/') prefix.pop_back();
  auto& g = Global();
  std::lock_guard<std::mutex> lock(g.mu);
  g.by_prefix[prefix] = std::move(options);
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> OpenFileSystem(
    const std::string& uri, std::string* path,
    const std::map<std::string, std::string>& storage_options) {
  if (uri.rfind("s3://", 0) == 0 || uri.rfind("S3://", 0) == 0) {
    return OpenS3("s3://" + uri.substr(5), path, storage_options);
  }
  if (uri.find("://") == std::string::npos) {
    *path = uri;
    return std::make_shared<arrow::fs::LocalFileSystem>();
  }
  return arrow::fs::FileSystemFromUriOrPath(uri, path);
}

arrow::Status EnsureFolder(arrow::fs::FileSystem& fs, const std::string& path) {
  const std::string type = fs.type_name();
  if (type == "s3" || type == "gcs" || type == "abfs") return arrow::Status::OK();
  return fs.CreateDir(path, /*recursive=*/true);
}

arrow::Result<S3Connection> S3ConnectionOf(const arrow::fs::FileSystem& fs) {
  if (fs.type_name() != "s3") {
    return arrow::Status::Invalid("not an S3 filesystem: ", fs.type_name());
  }
  {
    auto& g = Global();
    std::lock_guard<std::mutex> lock(g.mu);
    if (auto it = g.connections.find(&fs); it != g.connections.end()) return it->second;
  }
  const auto& s3 = static_cast<const arrow::fs::S3FileSystem&>(fs);
  S3Connection c;
  const auto& o = s3.options();
  c.endpoint_url = o.endpoint_override.empty() ? "https://s3." + s3.region() + ".amazonaws.com"
                                               : o.scheme + "://" + o.endpoint_override;
  c.region = s3.region();
  if (o.credentials_kind == arrow::fs::S3CredentialsKind::Explicit) {
    c.access_key_id = o.GetAccessKey();
    c.secret_access_key = o.GetSecretKey();
    c.session_token = o.GetSessionToken();
  }
  return c;
}

}  // namespace stratalake
