// Feature repository: stratalake.yaml, definition files, offline-store layout.
#include "stratalake/repo.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <arrow/api.h>
#include <arrow/filesystem/api.h>
#include <arrow/io/api.h>
#include <parquet/arrow/reader.h>
#include <yaml-cpp/yaml.h>

#include "common/compute_init.h"
#include "common/errors.h"
#include "registry/loader.h"
#include "stratalake/delta.h"
#include "stratalake/object_store.h"
#include "stratalake/status.h"

namespace stratalake::repo {

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfigFile = "stratalake.yaml";

arrow::Status DefError(const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError, msg);
}

bool IsUri(const std::string& s) { return s.find("://") != std::string::npos; }

// Replaces ${NAME} with the environment variable NAME (an unset one is an error).
arrow::Result<std::string> ExpandEnv(const std::string& s, const std::string& where) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "${") == 0) {
      size_t end = s.find('}', i);
      if (end == std::string::npos) return DefError(where + ": unterminated ${ in '" + s + "'");
      std::string name = s.substr(i + 2, end - i - 2);
      const char* v = std::getenv(name.c_str());
      if (!v) {
        return DefError(where + ": environment variable " + name +
                        " is not set; export it or write the value directly");
      }
      out += v;
      i = end + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::string Resolve(const std::string& root, const std::string& p) {
  if (p.empty() || IsUri(p) || p[0] == '/') return p;
  return (fs::path(root) / p).lexically_normal().string();
}

arrow::Result<std::string> ReadFileText(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return DefError("cannot read " + path + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return DefError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DefError("cannot read " + path + ": " + std::strerror(errno));
  return ss.str();
}

}  // namespace

namespace {

// The parts of stratalake.yaml; every check names the line (and column).
class ConfigReader {
 public:
  std::string Where(const YAML::Node& n) const {
    if (!n.IsDefined()) return kConfigFile;
    YAML::Mark m = n.Mark();
    if (m.line < 0) return kConfigFile;
    return std::string(kConfigFile) + ":" + std::to_string(m.line + 1) + ":" +
           std::to_string(m.column + 1);
  }

  static const char* KindOf(const YAML::Node& n) {
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a mapping";
    if (n.IsScalar()) return "a single value";
    return "empty";
  }

  // A single value (with ${ENV} expanded), or `dflt` when the key is absent or empty.
  arrow::Result<std::string> Scalar(const YAML::Node& n, const std::string& key,
                                    const std::string& dflt) const {
    if (!n.IsDefined() || n.IsNull()) return dflt;
    if (!n.IsScalar()) {
      return DefError(Where(n) + ": '" + key + "' must be a single value, not " + KindOf(n));
    }
    return ExpandEnv(n.Scalar(), Where(n));
  }

  // Unknown keys of the mapping `n` (the setting `what`) are errors.
  arrow::Status Keys(const YAML::Node& n, const std::string& what,
                     const std::vector<std::string>& known) const {
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.Scalar();
      if (std::find(known.begin(), known.end(), k) == known.end()) {
        return DefError(Where(it->first) + ": unknown " + what + " '" + k + "' (known: " + list +
                        ")");
      }
    }
    return arrow::Status::OK();
  }
};

arrow::Result<RepoConfig> ReadRepoConfig(const fs::path& root, const fs::path& file) {
  const ConfigReader r;
  ARROW_ASSIGN_OR_RAISE(std::string text, ReadFileText(file.string()));
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return DefError(std::string(kConfigFile) + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
  if (!doc.IsMap()) {
    return DefError(std::string(kConfigFile) +
                    ": must be a mapping of settings (key: value lines)");
  }
  std::vector<std::string> problems;
  if (!registry::CheckYamlKeys(doc, kConfigFile, &problems)) {
    std::string msg = problems[0];
    for (size_t i = 1; i < problems.size(); ++i) msg += "\n  " + problems[i];
    return DefError(msg);
  }
  ARROW_RETURN_NOT_OK(r.Keys(doc, "setting",
                             {"project", "offline_store", "online_store", "registry",
                              "compatibility", "defaults", "definitions"}));

  RepoConfig c;
  c.root = root.string();
  ARROW_ASSIGN_OR_RAISE(c.project, r.Scalar(doc["project"], "project", root.filename().string()));

  YAML::Node off = doc["offline_store"];
  std::map<std::string, std::string> off_settings;  // an s3:// store's connection
  std::optional<ObjectStoreOptions> off_options;
  bool off_coordinator_is_registry = false;
  const std::string off_where = r.Where(off);
  if (off.IsMap()) {
    ARROW_RETURN_NOT_OK(r.Keys(
        off, "offline_store key",
        {"path", "uri", "endpoint", "region", "profile", "access_key_id", "secret_access_key",
         "session_token", "allow_unsafe_commits", "commit_coordinator"}));
    for (const char* key : {"endpoint", "region", "profile", "access_key_id", "secret_access_key",
                            "session_token", "allow_unsafe_commits", "commit_coordinator"}) {
      if (!off[key]) continue;
      ARROW_ASSIGN_OR_RAISE(off_settings[key],
                            r.Scalar(off[key], std::string("offline_store.") + key, ""));
    }
    if (off["path"] && off["uri"]) {
      return DefError(r.Where(off) + ": 'offline_store' has both 'path' and 'uri'; keep one");
    }
    if (!off["path"] && !off["uri"]) {
      return DefError(r.Where(off) + ": 'offline_store' needs 'path' (a folder or s3:// URI)");
    }
    off = off["path"] ? off["path"] : off["uri"];
  } else if (off.IsSequence()) {
    return DefError(r.Where(off) +
                    ": 'offline_store' must be a folder, an s3:// URI or a mapping with 'path', "
                    "not a list");
  }
  ARROW_ASSIGN_OR_RAISE(std::string offline, r.Scalar(off, "offline_store", "lake"));
  c.offline_store = Resolve(c.root, offline);
  if (!off_settings.empty()) {
    if (c.offline_store.rfind("s3://", 0) != 0) {
      return DefError(off_where + ": 'offline_store' has " + off_settings.begin()->first +
                      ", which only an s3:// offline store uses; remove it or make 'path' an "
                      "s3:// URI");
    }
    // `commit_coordinator: registry` is the registry database, known further down.
    auto coordinator = off_settings.find("commit_coordinator");
    if (coordinator != off_settings.end() && coordinator->second == "registry") {
      off_coordinator_is_registry = true;
      off_settings.erase(coordinator);
    }
    auto opts = ObjectStoreOptions::FromMap(off_settings);
    if (!opts.ok()) {
      return DefError(off_where + ": offline_store: " + opts.status().message());
    }
    off_options = std::move(*opts);
  }

  YAML::Node on = doc["online_store"];
  std::string on_type = "embedded", on_path = ".stratalake/online";
  bool on_cluster = false;
  if (on.IsSequence()) {
    return DefError(r.Where(on) +
                    ": 'online_store' must be a type (embedded or redis) or a mapping with "
                    "'type' and 'path' or 'url', not a list");
  } else if (on.IsScalar()) {
    ARROW_ASSIGN_OR_RAISE(on_type, r.Scalar(on, "online_store", "embedded"));
  } else if (on.IsMap()) {
    ARROW_RETURN_NOT_OK(r.Keys(on, "online_store key", {"type", "path", "url", "cluster"}));
    if (on["path"] && on["url"]) {
      return DefError(r.Where(on) + ": 'online_store' has both 'path' and 'url'; keep one");
    }
    ARROW_ASSIGN_OR_RAISE(on_type, r.Scalar(on["type"], "online_store.type", "embedded"));
    YAML::Node url = on["path"] ? on["path"] : on["url"];
    if (url.IsSequence()) {
      // Redis Cluster seed nodes.
      if (url.size() == 0) {
        return DefError(r.Where(url) +
                        ": 'online_store.url' is an empty list; give the "
                        "Redis Cluster's nodes, e.g. [redis://10.0.0.1:7000]");
      }
      on_path.clear();
      for (size_t i = 0; i < url.size(); ++i) {
        if (!url[i].IsScalar()) {
          return DefError(r.Where(url[i]) +
                          ": each seed node in 'online_store.url' must be a "
                          "redis:// URL");
        }
        ARROW_ASSIGN_OR_RAISE(std::string seed, r.Scalar(url[i], "online_store.url", ""));
        if (seed.empty() || seed.find(',') != std::string::npos) {
          return DefError(r.Where(url[i]) +
                          ": each seed node in 'online_store.url' must be "
                          "one redis:// URL");
        }
        on_path += (i ? "," : "") + seed;
      }
      on_cluster = true;
    } else {
      ARROW_ASSIGN_OR_RAISE(on_path,
                            r.Scalar(url, "online_store.path",
                                     on_type == "redis" ? "redis://127.0.0.1:6379" : on_path));
    }
    if (on["cluster"]) {
      ARROW_ASSIGN_OR_RAISE(std::string cluster,
                            r.Scalar(on["cluster"], "online_store.cluster", "false"));
      if (cluster != "true" && cluster != "false") {
        return DefError(r.Where(on["cluster"]) +
                        ": 'online_store.cluster' must be true or "
                        "false, not '" +
                        cluster + "'");
      }
      if (cluster == "false" && on_cluster) {
        return DefError(r.Where(on["cluster"]) +
                        ": 'online_store.url' lists several nodes, which is a Redis Cluster; "
                        "set 'cluster: true' (or give one URL)");
      }
      on_cluster = cluster == "true";
    }
    if (on_cluster && on_type != "redis") {
      return DefError(r.Where(on) + ": 'cluster' and a list of URLs are for type: redis, not '" +
                      on_type + "'");
    }
  }
  if (on_type != "embedded" && on_type != "redis") {
    return DefError(r.Where(on.IsMap() ? on["type"] : on) + ": unknown online_store type '" +
                    on_type + "' (use embedded or redis)");
  }
  c.online_store_type = on_type;
  c.online_store_cluster = on_cluster;
  c.online_store = on_type == "embedded" ? Resolve(c.root, on_path) : on_path;

  ARROW_ASSIGN_OR_RAISE(std::string reg,
                        r.Scalar(doc["registry"], "registry", ".stratalake/registry.db"));
  if (const char* env = std::getenv("STRATALAKE_REGISTRY"); env && *env) reg = env;
  c.registry = reg.rfind("postgres", 0) == 0
                   ? reg
                   : Resolve(c.root, reg.rfind("sqlite://", 0) == 0 ? reg.substr(9) : reg);
  if (off_options) {
    if (off_coordinator_is_registry) off_options->commit_coordinator = c.registry;
    ARROW_RETURN_NOT_OK(SetObjectStoreOptions(c.offline_store, std::move(*off_options)));
  }

  ARROW_ASSIGN_OR_RAISE(std::string compat,
                        r.Scalar(doc["compatibility"], "compatibility", "backward"));
  auto policy = registry::ParseCompatibilityPolicy(compat);
  if (!policy.ok()) {
    return DefError(r.Where(doc["compatibility"]) + ": " + policy.status().message());
  }
  c.compatibility = *policy;

  YAML::Node defaults = doc["defaults"];
  if (defaults.IsMap()) {
    ARROW_RETURN_NOT_OK(r.Keys(defaults, "defaults key", {"timestamp_field"}));
    ARROW_ASSIGN_OR_RAISE(c.default_timestamp_field,
                          r.Scalar(defaults["timestamp_field"], "defaults.timestamp_field", ""));
  } else if (defaults.IsDefined() && !defaults.IsNull()) {
    return DefError(r.Where(defaults) +
                    ": 'defaults' must be a mapping (e.g. 'timestamp_field: event_timestamp'), "
                    "not " +
                    ConfigReader::KindOf(defaults));
  }

  YAML::Node defs = doc["definitions"];
  std::vector<std::string> paths;
  if (!defs.IsDefined() || defs.IsNull()) {
    paths.push_back("definitions");
  } else if (defs.IsScalar()) {
    ARROW_ASSIGN_OR_RAISE(auto p, r.Scalar(defs, "definitions", "definitions"));
    paths.push_back(p);
  } else if (defs.IsSequence()) {
    for (const auto& d : defs) {
      if (!d.IsScalar()) {
        return DefError(r.Where(d) +
                        ": every entry of 'definitions' must be a folder or file path, not " +
                        ConfigReader::KindOf(d));
      }
      ARROW_ASSIGN_OR_RAISE(auto p, r.Scalar(d, "definitions", ""));
      paths.push_back(p);
    }
  } else {
    return DefError(r.Where(defs) +
                    ": 'definitions' must be a folder or a list of folders/files, not a mapping");
  }
  for (const auto& p : paths) c.definitions.push_back(Resolve(c.root, p));
  return c;
}

}  // namespace

arrow::Result<RepoConfig> LoadRepoConfig(const std::string& dir) {
  std::error_code ec;
  fs::path root = fs::absolute(dir, ec).lexically_normal();
  if (root.has_filename() == false) root = root.parent_path();
  fs::path file = root / kConfigFile;
  if (!fs::exists(file, ec)) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kObjectNotFound,
                     "no feature repository at " + root.string() + " (no " + kConfigFile +
                         "); create one with " + Mention(Term::kInit) + " or pass " +
                         Mention(Term::kRepo),
                     {Term::kInit, Term::kRepo});
  }
  // yaml-cpp reports misuse by throwing: every exception stops here as a Status.
  try {
    return ReadRepoConfig(root, file);
  } catch (const YAML::Exception& e) {
    return DefError(std::string(kConfigFile) + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return DefError(std::string(kConfigFile) + ": cannot be read: " + e.what());
  }
}

arrow::Result<std::unique_ptr<FeatureRepository>> FeatureRepository::Open(const std::string& dir) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  ARROW_ASSIGN_OR_RAISE(auto config, LoadRepoConfig(dir));
  return std::unique_ptr<FeatureRepository>(new FeatureRepository(std::move(config)));
}

arrow::Result<registry::Definitions> FeatureRepository::LoadDefinitions() const {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& p : config_.definitions) {
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, ec);
           it != fs::recursive_directory_iterator(); ++it) {
        auto ext = it->path().extension().string();
        if (it->is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
          files.push_back(it->path().string());
        }
      }
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      return DefError("definitions path " + p + " (from " + kConfigFile +
                      ") does not exist; create it or fix 'definitions'");
    }
  }
  std::sort(files.begin(), files.end());
  registry::Definitions defs;
  std::vector<std::string> problems;
  for (const auto& f : files) {
    std::string rel = fs::path(f).lexically_relative(config_.root).string();
    auto text = ReadFileText(f);
    if (!text.ok()) {
      problems.push_back(rel + ": " + text.status().message());
      continue;
    }
    registry::ParseDefinitionsYaml(*text, rel, &defs, &problems);
  }
  registry::ResolvePythonSources(config_.root, &defs, &problems);  // python: FILE.py:FUNCTION
  if (!problems.empty()) {
    std::string msg = std::to_string(problems.size()) +
                      (problems.size() == 1 ? " problem" : " problems") +
                      " in the feature definitions";
    for (const auto& p : problems) msg += "\n  " + p;
    return DefError(msg);
  }
  return defs;
}

registry::ValidationOptions FeatureRepository::validation_options() const {
  registry::ValidationOptions o;
  o.default_timestamp_field = config_.default_timestamp_field;
  o.resolve_schema = [this](const registry::Source& s) { return SourceSchema(s); };
  return o;
}

arrow::Result<registry::Definitions> FeatureRepository::LoadValidatedDefinitions() const {
  ARROW_ASSIGN_OR_RAISE(auto defs, LoadDefinitions());
  ARROW_RETURN_NOT_OK(registry::Validate(defs, validation_options()));
  return defs;
}

arrow::Result<std::shared_ptr<registry::Registry>> FeatureRepository::registry() const {
  if (!registry_) {
    ARROW_ASSIGN_OR_RAISE(auto r, registry::Registry::Open(config_.registry));
    registry_ = std::move(r);
  }
  return registry_;
}

std::string FeatureRepository::TableUri(const std::string& path) const {
  if (path.empty() || IsUri(path) || path[0] == '/') return path;
  std::string root = config_.offline_store;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return root + "/" + path;
}

namespace {

std::shared_ptr<arrow::Schema> ApplyMapping(const std::shared_ptr<arrow::Schema>& schema,
                                            const std::map<std::string, std::string>& mapping) {
  if (mapping.empty()) return schema;
  arrow::FieldVector fields;
  for (const auto& f : schema->fields()) {
    auto it = mapping.find(f->name());
    fields.push_back(it == mapping.end() ? f : f->WithName(it->second));
  }
  return arrow::schema(fields);
}

arrow::Result<std::shared_ptr<arrow::Schema>> ParquetSchema(const std::string& uri) {
  std::string path;
  ARROW_ASSIGN_OR_RAISE(auto filesystem, OpenFileSystem(uri, &path));
  ARROW_ASSIGN_OR_RAISE(auto info, filesystem->GetFileInfo(path));
  std::string file = path;
  if (info.type() == arrow::fs::FileType::NotFound) return nullptr;
  if (info.type() == arrow::fs::FileType::Directory) {
    arrow::fs::FileSelector sel;
    sel.base_dir = path;
    sel.recursive = true;
    ARROW_ASSIGN_OR_RAISE(auto infos, filesystem->GetFileInfo(sel));
    file.clear();
    std::sort(infos.begin(), infos.end(),
              [](const auto& a, const auto& b) { return a.path() < b.path(); });
    for (const auto& i : infos) {
      if (i.IsFile() && i.extension() == "parquet") {
        file = i.path();
        break;
      }
    }
    if (file.empty()) return nullptr;
  }
  ARROW_ASSIGN_OR_RAISE(auto input, filesystem->OpenInputFile(file));
  ARROW_ASSIGN_OR_RAISE(auto reader, parquet::arrow::OpenFile(input, arrow::default_memory_pool()));
  std::shared_ptr<arrow::Schema> schema;
  ARROW_RETURN_NOT_OK(reader->GetSchema(&schema));
  return schema;
}

arrow::Result<std::shared_ptr<arrow::Schema>> DeclaredSchema(const registry::Source& s) {
  arrow::FieldVector fields;
  for (const auto& f : s.schema) fields.push_back(arrow::field(f.name, f.type, f.nullable));
  return arrow::schema(fields);
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Schema>> FeatureRepository::SourceSchema(
    const registry::Source& source) const {
  std::shared_ptr<arrow::Schema> schema;
  if (!source.schema.empty()) {
    ARROW_ASSIGN_OR_RAISE(schema, DeclaredSchema(source));
  } else if (source.type == registry::SourceType::kParquet) {
    ARROW_ASSIGN_OR_RAISE(schema, ParquetSchema(TableUri(source.path)));
  } else {
    ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(TableUri(source.path)));
    auto snap = table->Latest();
    if (!snap.ok()) {
      if (HasErrorKind(snap.status(), ErrorKind::kTableNotFound)) return nullptr;
      return snap.status();
    }
    schema = (*snap)->schema();
  }
  if (!schema) return schema;
  return ApplyMapping(schema, source.field_mapping);
}

arrow::Result<IngestTarget> FeatureRepository::IngestTargetFor(
    const registry::Source& source) const {
  if (source.type == registry::SourceType::kParquet) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kOperationNotAllowed,
                     "source '" + source.name +
                         "' reads Parquet files in place; ingest into a Delta source instead");
  }
  IngestTarget t;
  t.name = source.name;
  t.table_uri = TableUri(source.path);
  if (!source.schema.empty()) {
    ARROW_ASSIGN_OR_RAISE(t.schema, DeclaredSchema(source));
  }
  for (const auto& c : source.checks) {
    t.checks.push_back(c.expression);
    t.check_names.push_back(c.name);
  }
  t.partition_by = source.partition_by;
  t.quarantine_uri = TableUri("quarantine/" + source.name);
  return t;
}

arrow::Result<IngestTarget> FeatureRepository::ResolveIngestTarget(const std::string& name) const {
  ARROW_ASSIGN_OR_RAISE(auto reg, registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  if (const registry::Source* s = state->defs.FindSource(name)) return IngestTargetFor(*s);
  // Not applied yet: a source in the definition files (which may not validate yet).
  auto local = LoadDefinitions();
  if (local.ok()) {
    if (const registry::Source* s = local->FindSource(name)) return IngestTargetFor(*s);
  }
  if (name.find('/') != std::string::npos) {
    // The table path becomes a folder below the offline store: it must stay there.
    bool below = name[0] != '/' && name.find("://") == std::string::npos;
    for (size_t i = 0; below && i <= name.size();) {
      size_t j = std::min(name.find('/', i), name.size());
      std::string seg = name.substr(i, j - i);
      below = !seg.empty() && seg != "." && seg != "..";
      i = j + 1;
    }
    if (!below) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                       "table path '" + name +
                           "' must name a folder below the offline store, such as bronze/raw "
                           "(relative, without '.', '..' or empty parts)");
    }
    IngestTarget t;
    t.name = name;
    t.table_uri = TableUri(name);
    t.quarantine_uri = TableUri("quarantine/" + name);
    return t;
  }
  std::vector<std::string> names;
  for (const auto& s : state->defs.sources) names.push_back(s.name);
  if (local.ok()) {
    for (const auto& s : local->sources) {
      if (std::find(names.begin(), names.end(), s.name) == names.end()) names.push_back(s.name);
    }
  }
  std::string msg = "no source named '" + name + "' in the registry or the definition files";
  std::vector<std::string> close = ClosestNames(name, names);
  for (size_t i = 0; i < close.size(); ++i) {
    msg += (i == 0 ? "; did you mean '" : i + 1 == close.size() ? "' or '" : "', '") + close[i];
  }
  if (!close.empty()) msg += "'?";
  msg += names.empty() ? " (there are no sources)" : " (sources: " + JoinNames(names) + ")";
  msg += "; name a source, or a table path below the offline store such as bronze/" + name;
  return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound, msg);
}

arrow::Result<std::vector<TableInfo>> FeatureRepository::ListTables() const {
  std::string base;
  ARROW_ASSIGN_OR_RAISE(auto filesystem, OpenFileSystem(config_.offline_store, &base));
  std::vector<TableInfo> out;
  for (const char* layer : {"bronze", "silver", "gold", "datasets", "quarantine"}) {
    arrow::fs::FileSelector sel;
    sel.base_dir = base + "/" + layer;
    sel.allow_not_found = true;
    sel.recursive = true;
    sel.max_recursion = 4;
    ARROW_ASSIGN_OR_RAISE(auto infos, filesystem->GetFileInfo(sel));
    for (const auto& info : infos) {
      if (!info.IsDirectory() || info.base_name() != "_delta_log") continue;
      std::string dir = info.dir_name();
      TableInfo t;
      t.name = dir.substr(base.size() + 1);
      t.uri = TableUri(t.name);
      ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(t.uri));
      auto snap = table->Latest();
      if (!snap.ok()) {
        if (HasErrorKind(snap.status(), ErrorKind::kTableNotFound)) continue;  // empty log
        return snap.status();
      }
      t.version = (*snap)->version();
      t.rows = (*snap)->NumRecords();
      t.bytes = (*snap)->SizeInBytes();
      t.files = static_cast<int64_t>((*snap)->files().size());
      t.last_commit_ms = (*snap)->timestamp_ms();
      ARROW_ASSIGN_OR_RAISE(auto history, table->History(1));
      if (!history.empty()) t.last_operation = history[0].operation;
      out.push_back(std::move(t));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace stratalake::repo
