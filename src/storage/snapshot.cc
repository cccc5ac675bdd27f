#include "storage/snapshot.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <sstream>

#include <arrow/type.h>
#include <arrow/util/key_value_metadata.h>
#include <cctype>
#include <set>
#include <unordered_map>

#include "common/parallel.h"
#include "storage/checkpoint.h"
#include "storage/deletion_vector.h"
#include "storage/schema.h"
#include "stratalake/expression.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

std::string DvKey(const std::optional<DeletionVector>& dv) {
  if (!dv) return "";
  std::string key = dv->storage_type + dv->path_or_inline_dv;
  if (dv->offset) key += "@" + std::to_string(*dv->offset);
  return key;
}

std::string FileKey(const std::string& root, const std::string& path,
                    const std::optional<DeletionVector>& dv) {
  return CanonicalFilePath(root, path) + '\0' + DvKey(dv);
}

// Pick a complete checkpoint among the files written for one version.
std::optional<std::vector<LogFile>> CompleteCheckpoint(const std::vector<LogFile>& files) {
  for (const auto& f : files) {
    if (f.kind == LogFile::Kind::kCheckpoint) return std::vector<LogFile>{f};
  }
  for (const auto& f : files) {
    if (f.kind == LogFile::Kind::kV2Checkpoint) return std::vector<LogFile>{f};
  }
  std::map<int, std::map<int, LogFile>> by_total;
  for (const auto& f : files) {
    if (f.kind == LogFile::Kind::kMultiPartCheckpoint) by_total[f.num_parts][f.part] = f;
  }
  for (auto& [total, parts] : by_total) {
    if (static_cast<int>(parts.size()) == total && parts.begin()->first == 1 &&
        parts.rbegin()->first == total) {
      std::vector<LogFile> out;
      for (auto& [_, f] : parts) out.push_back(f);
      return out;
    }
  }
  return std::nullopt;
}

arrow::Result<std::vector<LogActions>> ReadCommits(const LogStore& store,
                                                   const std::vector<const LogFile*>& files) {
  std::vector<arrow::Result<LogActions>> results(files.size(),
                                                 arrow::Status::UnknownError("not read"));
  auto work = [&](size_t i) {
    auto text = store.Read(files[i]->path);
    if (!text.ok()) {
      results[i] = text.status();
      return;
    }
    results[i] = ParseLogJson(*text, files[i]->path);
  };
  // Small files: latency-bound, so more threads than cores once there are many.
  ParallelFor(files.size(), files.size() < 16 ? 1 : 8, work);
  std::vector<LogActions> out;
  out.reserve(files.size());
  for (auto& r : results) {
    ARROW_ASSIGN_OR_RAISE(auto a, std::move(r));
    out.push_back(std::move(a));
  }
  return out;
}

const std::set<std::string>& SupportedReaderFeatures() {
  static const std::set<std::string> kFeatures = {
      "columnMapping",       "deletionVectors", "timestampNtz",        "v2Checkpoint",
      "vacuumProtocolCheck", "typeWidening",    "typeWidening-preview"};
  return kFeatures;
}

const std::set<std::string>& SupportedWriterFeatures() {
  static const std::set<std::string> kFeatures = {
      "appendOnly",      "invariants",     "checkConstraints",   "timestampNtz",
      "deletionVectors", "domainMetadata", "vacuumProtocolCheck"};
  return kFeatures;
}

arrow::Status Unsupported(const std::string& msg) {
  return MakeError(arrow::StatusCode::NotImplemented, ErrorKind::kUnsupportedFeature, msg);
}

}  // namespace

std::string CanonicalFilePath(const std::string& table_root, const std::string& path) {
  std::string p = UrlDecode(path);
  if (p.rfind("file:", 0) == 0) {
    p = p.substr(5);
    if (p.rfind("//", 0) == 0) {
      // file://host/path or file:///path
      auto slash = p.find('/', 2);
      p = slash == std::string::npos ? "/" : p.substr(slash);
    }
    return p;
  }
  if (p.find("://") != std::string::npos) return p;  // s3://... kept as is
  if (!p.empty() && p[0] == '/') return p;
  return table_root + "/" + p;
}

arrow::Status CheckDataFilePath(const std::string& table_root, bool local, const std::string& path,
                                ExternalPaths external, const std::string& log_file) {
  // The common case, a plain relative path, costs a few scans.
  if (!path.empty() && path[0] != '/' && path.find_first_of("%:") == std::string::npos &&
      path.find("..") == std::string::npos) {
    return arrow::Status::OK();
  }
  const std::string where = "data file '" + path + "' named in " + log_file;
  auto corrupt = [&](const std::string& why) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                     "corrupt Delta log at '" + table_root + "': " + where + " " + why);
  };
  auto unsupported = [&](const std::string& why) {
    return MakeError(arrow::StatusCode::NotImplemented, ErrorKind::kUnsupportedFeature,
                     where + " " + why);
  };
  const std::string p = UrlDecode(path);
  if (p.empty()) return corrupt("is empty");
  if (p.find('\0') != std::string::npos) return corrupt("holds a NUL character");
  // Classified as CanonicalFilePath/DataFilePath do, which decide what is opened.
  std::string target;  // the path the reader would open, on the table's filesystem
  if (p.rfind("file:", 0) == 0) {
    std::string rest = p.substr(5);
    if (rest.rfind("//", 0) == 0) {
      auto slash = rest.find('/', 2);
      std::string host = rest.substr(2, slash == std::string::npos ? std::string::npos : slash - 2);
      if (!host.empty() && host != "localhost") {
        return unsupported("is on the host '" + host +
                           "': file:// URIs must name a local path (file:///path)");
      }
      rest = slash == std::string::npos ? "/" : rest.substr(slash);
    }
    if (!local) return unsupported("is a local file, but the table is on S3");
    target = rest;
  } else if (auto scheme = p.find("://"); scheme != std::string::npos) {
    std::string name = p.substr(0, scheme);
    if (local || (name != "s3" && name != "s3a")) {
      return unsupported("uses the URI scheme '" + name + "', which the table's " +
                         (local ? "local" : "S3") + " filesystem cannot read");
    }
    target = p.substr(scheme + 3);
  } else if (p[0] == '/') {
    target = p;
  } else {
    // Relative: must stay below the table root whatever the root is.
    int depth = 0;
    size_t i = 0;
    while (i <= p.size()) {
      size_t j = p.find('/', i);
      if (j == std::string::npos) j = p.size();
      std::string seg = p.substr(i, j - i);
      if (seg == "..") {
        if (--depth < 0) return corrupt("leaves the table folder (through '..')");
      } else if (!seg.empty() && seg != ".") {
        ++depth;
      }
      i = j + 1;
    }
    return arrow::Status::OK();
  }
  // Absolute: inside the table, or an external file the opener allowed.
  std::string norm = std::filesystem::path(target).lexically_normal().string();
  std::string root = std::filesystem::path(table_root).lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  bool inside = norm.size() > root.size() + 1 && norm.compare(0, root.size(), root) == 0 &&
                norm[root.size()] == '/';
  if (inside || external == ExternalPaths::kAllow) return arrow::Status::OK();
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kOperationNotAllowed,
                   where + " is outside the table at '" + table_root +
                       "' (a shallow clone?); files outside a table are read only when it is "
                       "opened with allow_external_paths (CLI: --allow-external-paths)");
}

std::string DataFilePath(const std::string& table_root, const std::string& path) {
  std::string p = CanonicalFilePath(table_root, path);
  auto scheme = p.find("://");
  if (scheme != std::string::npos) return p.substr(scheme + 3);  // bucket/key for s3
  return p;
}

arrow::Status CheckReadSupported(const Protocol& p, const std::string& root) {
  if (p.min_reader_version < 1 || p.min_reader_version > 3) {
    return Unsupported("table at '" + root + "' requires Delta reader version " +
                       std::to_string(p.min_reader_version) +
                       "; StrataLake reads reader versions 1 to 3");
  }
  if (p.min_reader_version == 3) {
    if (!p.reader_features) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                       "table at '" + root + "' has reader version 3 but no readerFeatures");
    }
    for (const auto& f : *p.reader_features) {
      if (!SupportedReaderFeatures().count(f)) {
        return Unsupported("table at '" + root + "' requires the reader feature '" + f +
                           "', which StrataLake does not support");
      }
    }
  }
  return arrow::Status::OK();
}

arrow::Status CheckWriteSupported(const Snapshot& s) {
  const auto& p = s.protocol();
  const std::string& root = s.table_root();
  if (p.min_writer_version < 1 || p.min_writer_version > 7) {
    return Unsupported("table at '" + root + "' requires Delta writer version " +
                       std::to_string(p.min_writer_version) +
                       "; StrataLake writes writer versions 1 to 7");
  }
  if (p.min_writer_version == 7 && p.writer_features) {
    for (const auto& f : *p.writer_features) {
      if (!SupportedWriterFeatures().count(f)) {
        return Unsupported("table at '" + root + "' requires the writer feature '" + f +
                           "'; StrataLake can read this table but not write to it");
      }
    }
  }
  if (s.ColumnMappingMode() != "none") {
    return Unsupported("table at '" + root +
                       "' uses column mapping; StrataLake can read it but does not write to "
                       "column-mapped tables yet");
  }
  if (s.Property("delta.enableChangeDataFeed", "false") == "true") {
    return Unsupported("table at '" + root +
                       "' has the change data feed enabled (delta.enableChangeDataFeed); "
                       "StrataLake does not write change data files yet");
  }
  for (const auto& f : s.schema()->fields()) {
    if (f->metadata() && (f->metadata()->Contains(kDeltaFieldMetadataKey))) {
      auto md = f->metadata()->Get(kDeltaFieldMetadataKey).ValueOr("");
      if (md.find("delta.generationExpression") != std::string::npos) {
        return Unsupported("column '" + f->name() +
                           "' is a generated column; StrataLake does not write generated "
                           "columns yet");
      }
      if (md.find("delta.identity") != std::string::npos) {
        return Unsupported("column '" + f->name() +
                           "' is an identity column; StrataLake does not write identity "
                           "columns yet");
      }
    }
  }
  return arrow::Status::OK();
}

arrow::Result<int64_t> ParseIntervalMs(const std::string& text) {
  std::string s;
  for (char c : text) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s.rfind("interval", 0) == 0) s = s.substr(8);
  std::istringstream in(s);
  double n = 0;
  std::string unit;
  if (!(in >> n >> unit)) {
    return arrow::Status::Invalid("cannot parse interval '", text,
                                  "'; write it like 'interval 7 days'");
  }
  if (unit.back() == 's') unit.pop_back();
  double ms;
  if (unit == "millisecond")
    ms = 1;
  else if (unit == "second")
    ms = 1000;
  else if (unit == "minute")
    ms = 60000;
  else if (unit == "hour")
    ms = 3600000;
  else if (unit == "day")
    ms = 86400000;
  else if (unit == "week")
    ms = 7 * 86400000.0;
  else
    return arrow::Status::Invalid("unknown interval unit in '", text, "'");
  return static_cast<int64_t>(n * ms);
}

arrow::Result<std::shared_ptr<const Snapshot>> SnapshotBuilder::Load(const LogStore& store,
                                                                     const LogListing& listing,
                                                                     std::optional<int64_t> version,
                                                                     ExternalPaths external) {
  const std::string& root = store.root();
  if (!listing.log_dir_exists) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + root + "': '_delta_log' does not exist");
  }
  if (listing.commits.empty() && listing.checkpoints.empty()) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + root + "': '_delta_log' holds no commits");
  }
  int64_t latest = -1;
  if (!listing.commits.empty()) latest = listing.commits.rbegin()->first;
  if (!listing.checkpoints.empty()) latest = std::max(latest, listing.checkpoints.rbegin()->first);
  int64_t target = version.value_or(latest);
  if (target < 0 || target > latest) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kVersionNotFound,
                     "table at '" + root + "' has no version " + std::to_string(target) +
                         "; the latest version is " + std::to_string(latest));
  }

  std::optional<std::vector<LogFile>> checkpoint;
  int64_t cp_version = -1;
  for (auto it = listing.checkpoints.upper_bound(target); it != listing.checkpoints.begin();) {
    --it;
    auto parts = CompleteCheckpoint(it->second);
    if (parts) {
      checkpoint = std::move(parts);
      cp_version = it->first;
      break;
    }
  }
  std::vector<const LogFile*> tail;
  for (int64_t v = cp_version + 1; v <= target; ++v) {
    auto it = listing.commits.find(v);
    if (it == listing.commits.end()) {
      if (cp_version < 0 && (listing.commits.empty() || listing.commits.begin()->first > v)) {
        return MakeError(
            arrow::StatusCode::Invalid, ErrorKind::kVersionNotFound,
            "cannot load version " + std::to_string(target) + " of '" + root +
                "': the log starts at version " +
                (listing.commits.empty() ? std::string("?")
                                         : std::to_string(listing.commits.begin()->first)) +
                " and no checkpoint covers the versions before it (log cleanup "
                "removed them)");
      }
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                       "corrupt Delta log at '" + root + "': versions are not contiguous, " +
                           store.CommitPath(v) + " is missing");
    }
    tail.push_back(&it->second);
  }

  auto snap = std::make_shared<Snapshot>();
  snap->version_ = target;
  snap->table_root_ = root;
  std::unordered_map<std::string, size_t> live_index;
  std::vector<std::optional<AddFile>> live;
  std::unordered_map<std::string, RemoveFile> tombstones;
  std::optional<Protocol> protocol;
  std::optional<Metadata> metadata;

  auto apply = [&](LogActions& a) {
    if (a.protocol) protocol = std::move(a.protocol);
    if (a.metadata) metadata = std::move(a.metadata);
    for (auto& t : a.txns) snap->txns_[t.app_id] = std::move(t);
    for (auto& d : a.domains) {
      if (d.removed) {
        snap->domains_.erase(d.domain);
      } else {
        snap->domains_[d.domain] = std::move(d);
      }
    }
    for (auto& r : a.removes) {
      std::string key = FileKey(root, r.path, r.deletion_vector);
      auto it = live_index.find(key);
      if (it != live_index.end()) {
        live[it->second].reset();
        live_index.erase(it);
      }
      tombstones[key] = std::move(r);
    }
    for (auto& add : a.adds) {
      std::string key = FileKey(root, add.path, add.deletion_vector);
      tombstones.erase(key);
      auto it = live_index.find(key);
      if (it != live_index.end()) {
        live[it->second] = std::move(add);
      } else {
        live_index.emplace(std::move(key), live.size());
        live.emplace_back(std::move(add));
      }
    }
  };

  // The first added path that may not be read; reported after the protocol and
  // metadata checks, which say more about a broken log.
  arrow::Status path_error;
  auto check_paths = [&](const LogActions& a, const std::string& log_file) {
    for (const auto& add : a.adds) {
      if (!path_error.ok()) return;
      path_error = CheckDataFilePath(root, store.fs()->type_name() == "local", add.path,
                                     ExternalPaths::kAllow, log_file);
    }
  };

  int64_t timestamp = 0;
  if (checkpoint) {
    ARROW_ASSIGN_OR_RAISE(auto actions, ReadCheckpoint(store, *checkpoint));
    check_paths(actions, checkpoint->front().path);
    apply(actions);
    auto it = listing.commits.find(cp_version);
    ARROW_ASSIGN_OR_RAISE(
        timestamp,
        store.ModificationTime(it != listing.commits.end() ? it->second : checkpoint->front()));
  }
  ARROW_ASSIGN_OR_RAISE(auto commits, ReadCommits(store, tail));
  for (size_t i = 0; i < commits.size(); ++i) {
    check_paths(commits[i], tail[i]->path);
    apply(commits[i]);
    if (i + 1 == commits.size()) {
      if (commits[i].in_commit_timestamp) {
        timestamp = *commits[i].in_commit_timestamp;
      } else {
        ARROW_ASSIGN_OR_RAISE(timestamp, store.ModificationTime(*tail[i]));
      }
    }
  }
  if (!protocol) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                     "corrupt Delta log at '" + root + "': no protocol action found in " +
                         (checkpoint ? "the checkpoint at version " + std::to_string(cp_version) +
                                           " or the commits after it"
                                     : std::string("the commits")));
  }
  if (!metadata) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                     "corrupt Delta log at '" + root + "': no metaData action found in " +
                         (checkpoint ? "the checkpoint at version " + std::to_string(cp_version) +
                                           " or the commits after it"
                                     : std::string("the commits")));
  }
  ARROW_RETURN_NOT_OK(CheckReadSupported(*protocol, root));
  ARROW_RETURN_NOT_OK(path_error);
  snap->protocol_ = std::move(*protocol);
  snap->metadata_ = std::move(*metadata);
  auto schema = SchemaFromDeltaJson(snap->metadata_.schema_string);
  if (!schema.ok()) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                     "table at '" + root + "': " + schema.status().message());
  }
  snap->schema_ = *schema;
  snap->timestamp_ms_ = timestamp;
  snap->files_.reserve(live_index.size());
  for (auto& f : live) {
    if (!f) continue;
    // Files outside the table matter only while they are part of it.
    if (external == ExternalPaths::kRefuse) {
      ARROW_RETURN_NOT_OK(CheckDataFilePath(root, store.fs()->type_name() == "local", f->path,
                                            external,
                                            "the log of version " + std::to_string(target)));
    }
    snap->files_.push_back(std::move(*f));
  }
  snap->tombstones_.reserve(tombstones.size());
  for (auto& [_, r] : tombstones) snap->tombstones_.push_back(std::move(r));
  std::sort(snap->tombstones_.begin(), snap->tombstones_.end(),
            [](const RemoveFile& a, const RemoveFile& b) { return a.path < b.path; });
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

arrow::Result<int64_t> VersionAtTimestamp(const LogStore& store, const LogListing& listing,
                                          int64_t timestamp_ms) {
  if (listing.commits.empty()) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + store.root() + "'");
  }
  // Commit timestamps are file modification times, made monotonic as Spark does:
  // a commit is never older than the one before it.
  int64_t prev_ts = INT64_MIN;
  std::optional<int64_t> found;
  for (const auto& [v, f] : listing.commits) {
    ARROW_ASSIGN_OR_RAISE(int64_t mtime, store.ModificationTime(f));
    int64_t ts = std::max(mtime, prev_ts == INT64_MIN ? mtime : prev_ts + 1);
    prev_ts = ts;
    if (ts <= timestamp_ms) found = v;
  }
  if (!found) {
    const auto& first = *listing.commits.begin();
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kVersionNotFound,
                     "timestamp " + std::to_string(timestamp_ms) +
                         " is before the earliest available version " +
                         std::to_string(first.first) + " of '" + store.root() + "' (committed at " +
                         std::to_string(store.ModificationTime(first.second).ValueOr(-1)) + ")");
  }
  return *found;
}

namespace {
std::optional<int64_t> StrictInt(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

arrow::Status BadProperty(const std::string& key, const std::string& value,
                          const std::string& want) {
  return arrow::Status::Invalid("table property ", key, "='", value, "' is invalid: it must be ",
                                want);
}
}  // namespace

int64_t IntProperty(const Metadata& metadata, const std::string& key, int64_t default_value) {
  auto it = metadata.configuration.find(key);
  if (it == metadata.configuration.end()) return default_value;
  return StrictInt(it->second).value_or(default_value);
}

arrow::Status ValidateTableProperties(const std::map<std::string, std::string>& properties,
                                      const arrow::Schema& schema) {
  for (const auto& [key, value] : properties) {
    if (key == "delta.appendOnly" || key == "delta.enableExpiredLogCleanup" ||
        key == "delta.enableDeletionVectors") {
      if (value != "true" && value != "false") return BadProperty(key, value, "true or false");
    } else if (key == "delta.checkpointInterval") {
      auto v = StrictInt(value);
      if (!v || *v < 1) return BadProperty(key, value, "a positive integer");
    } else if (key == "delta.dataSkippingNumIndexedCols") {
      auto v = StrictInt(value);
      if (!v || *v < -1) return BadProperty(key, value, "an integer >= -1 (-1 = all columns)");
    } else if (key == "delta.logRetentionDuration" || key == "delta.deletedFileRetentionDuration") {
      auto v = ParseIntervalMs(value);
      if (!v.ok() || *v < 0) return BadProperty(key, value, "an interval like 'interval 7 days'");
    } else if (key.rfind("delta.constraints.", 0) == 0) {
      auto expr = ParseExpression(value, schema);
      if (!expr.ok()) {
        return arrow::Status::Invalid("CHECK constraint ", key.substr(18), ": ",
                                      expr.status().message());
      }
      auto bound = expr->Bind(schema);
      if (!bound.ok() || bound->type()->id() != arrow::Type::BOOL) {
        return arrow::Status::Invalid("CHECK constraint ", key.substr(18), " (", value,
                                      ") is not a boolean condition over the table's columns");
      }
    }
  }
  return arrow::Status::OK();
}

// ---- Snapshot accessors -----------------------------------------------------

std::optional<int64_t> Snapshot::AppTransactionVersion(const std::string& app_id) const {
  auto it = txns_.find(app_id);
  if (it == txns_.end()) return std::nullopt;
  return it->second.version;
}

std::string Snapshot::Property(const std::string& key, const std::string& default_value) const {
  auto it = metadata_.configuration.find(key);
  return it == metadata_.configuration.end() ? default_value : it->second;
}

std::string Snapshot::ColumnMappingMode() const {
  return Property("delta.columnMapping.mode", "none");
}

int64_t Snapshot::NumRecords() const {
  int64_t total = 0;
  for (const auto& f : files_) {
    auto pos = f.stats.find("\"numRecords\":");
    if (pos == std::string::npos) return -1;
    int64_t n = std::strtoll(f.stats.c_str() + pos + 13, nullptr, 10);
    if (f.deletion_vector) n -= f.deletion_vector->cardinality;
    total += n;
  }
  return total;
}

int64_t Snapshot::SizeInBytes() const {
  int64_t total = 0;
  for (const auto& f : files_) total += f.size;
  return total;
}

}  // namespace stratalake::delta
