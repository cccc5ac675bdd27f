// DeltaTable: opening and creating tables, snapshots (latest, by version, by
// timestamp), history, restore and table properties, and the helpers the
// operations share (table_internal.h). The other operations have files of
// their own: table_read.cc, table_write.cc, table_delete_update.cc, merge/,
// table_maintenance.cc.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/filesystem/api.h>

#include "common/compute_init.h"
#include "common/json.h"
#include "storage/actions.h"
#include "storage/log_store.h"
#include "storage/object_store.h"
#include "storage/schema.h"
#include "storage/snapshot.h"
#include "storage/table_internal.h"
#include "storage/transaction.h"
#include "stratalake/delta.h"
#include "stratalake/object_store.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

arrow::Status NotAllowed(const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kOperationNotAllowed, msg);
}

arrow::Status SchemaMismatch(const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kSchemaMismatch, msg);
}

std::string JsonList(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ",";
    s += JsonQuote(items[i]);
  }
  return s + "]";
}

arrow::Status CheckAppendOnly(const Snapshot& s, const std::string& op) {
  if (s.Property("delta.appendOnly", "false") == "true") {
    return NotAllowed(op + " is not allowed: table at '" + s.table_root() +
                      "' is append-only (delta.appendOnly=true); only appends are permitted. "
                      "Unset the property to allow it");
  }
  return arrow::Status::OK();
}

bool EqualsIgnoreCase(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IsTrue(const cp::Expression& e) {
  if (!e.literal() || !e.literal()->is_scalar()) return false;
  const auto& s = *e.literal()->scalar();
  return s.is_valid && s.type->id() == arrow::Type::BOOL &&
         static_cast<const arrow::BooleanScalar&>(s).value;
}

std::vector<int> AllFields(const arrow::Schema& schema) {
  std::vector<int> v(schema.num_fields());
  for (int i = 0; i < schema.num_fields(); ++i) v[i] = i;
  return v;
}

Protocol ProtocolFor(const arrow::Schema& schema, const std::map<std::string, std::string>& props) {
  bool ntz = false;
  std::function<void(const arrow::DataType&)> visit = [&](const arrow::DataType& t) {
    if (t.id() == arrow::Type::TIMESTAMP &&
        static_cast<const arrow::TimestampType&>(t).timezone().empty()) {
      ntz = true;
    }
    for (const auto& f : t.fields()) visit(*f->type());
  };
  for (const auto& f : schema.fields()) visit(*f->type());
  bool checks = false;
  for (const auto& [k, v] : props) checks |= k.rfind("delta.constraints.", 0) == 0;
  auto dv = props.find("delta.enableDeletionVectors");
  const bool dvs = dv != props.end() && dv->second == "true";
  Protocol p;
  if (ntz || dvs) {
    p.min_reader_version = 3;
    p.min_writer_version = 7;
    p.reader_features = std::vector<std::string>{};
    p.writer_features = std::vector<std::string>{"appendOnly", "invariants"};
    if (ntz) {
      p.reader_features->push_back("timestampNtz");
      p.writer_features->push_back("timestampNtz");
    }
    if (checks) p.writer_features->push_back("checkConstraints");
    if (dvs) {
      p.reader_features->push_back("deletionVectors");
      p.writer_features->push_back("deletionVectors");
    }
  } else {
    p.min_reader_version = 1;
    p.min_writer_version = checks ? 3 : 2;
  }
  return p;
}

// The protocol `current` must become to also satisfy `needed`, or nullopt when it
// already does. Legacy versions imply their features (writer 2: appendOnly,
// invariants; 3: + checkConstraints; 4: + changeDataFeed, generatedColumns;
// 5: + columnMapping; 6: + identityColumns); moving to 3/7 lists them explicitly.
std::optional<Protocol> ProtocolUpgrade(const Protocol& current, const Protocol& needed) {
  auto has = [](const std::optional<std::vector<std::string>>& l, const std::string& f) {
    return l && std::find(l->begin(), l->end(), f) != l->end();
  };
  if (!needed.reader_features && !needed.writer_features) {
    if (current.min_writer_version == 7) {
      if (needed.min_writer_version >= 3 && !has(current.writer_features, "checkConstraints")) {
        Protocol p = current;
        p.writer_features->push_back("checkConstraints");
        return p;
      }
      return std::nullopt;
    }
    if (current.min_writer_version >= needed.min_writer_version) return std::nullopt;
    Protocol p = current;
    p.min_writer_version = needed.min_writer_version;
    return p;
  }
  std::vector<std::string> reader, writer;
  if (current.reader_features) {
    reader = *current.reader_features;
  } else if (current.min_reader_version == 2) {
    reader = {"columnMapping"};
  }
  if (current.writer_features) {
    writer = *current.writer_features;
  } else {
    static const std::vector<std::pair<int, std::string>> kImplied = {
        {2, "appendOnly"},     {2, "invariants"},       {3, "checkConstraints"},
        {4, "changeDataFeed"}, {4, "generatedColumns"}, {5, "columnMapping"},
        {6, "identityColumns"}};
    for (const auto& [v, f] : kImplied) {
      if (current.min_writer_version >= v) writer.push_back(f);
    }
  }
  bool changed = current.min_reader_version != 3 || current.min_writer_version != 7;
  for (const auto& f : needed.reader_features.value_or(std::vector<std::string>{})) {
    if (std::find(reader.begin(), reader.end(), f) == reader.end()) {
      reader.push_back(f);
      changed = true;
    }
  }
  for (const auto& f : needed.writer_features.value_or(std::vector<std::string>{})) {
    if (std::find(writer.begin(), writer.end(), f) == writer.end()) {
      writer.push_back(f);
      changed = true;
    }
  }
  if (!changed) return std::nullopt;
  return Protocol{3, 7, reader, writer};
}

arrow::Result<Metadata> NewMetadata(const arrow::Schema& schema, const CreateOptions& create,
                                    int64_t now_ms) {
  ARROW_RETURN_NOT_OK(ValidateTableProperties(create.properties, schema));
  for (const auto& c : create.partition_columns) {
    auto f = schema.GetFieldByName(c);
    if (!f) {
      return SchemaMismatch("partition column '" + c + "' is not a column of the schema (" +
                            schema.ToString() + ")");
    }
    if (f->type()->num_fields() > 0) {
      return SchemaMismatch("partition column '" + c + "' has nested type " +
                            DeltaTypeName(*f->type()) + "; partition by a primitive column");
    }
  }
  if (static_cast<int>(create.partition_columns.size()) >= schema.num_fields() &&
      schema.num_fields() > 0) {
    return SchemaMismatch("cannot partition by every column; keep at least one data column");
  }
  std::set<std::string> seen;
  for (const auto& f : schema.fields()) {
    std::string lower = f->name();
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (!seen.insert(lower).second) {
      return SchemaMismatch("duplicate column name '" + f->name() +
                            "' (Delta column names are case-insensitive)");
    }
  }
  Metadata md;
  md.id = NewUuid();
  md.name = create.name;
  md.description = create.description;
  ARROW_ASSIGN_OR_RAISE(md.schema_string, SchemaToDeltaJson(schema));
  md.partition_columns = create.partition_columns;
  md.configuration = create.properties;
  md.created_time = now_ms;
  return md;
}

int64_t SumSizes(const std::vector<AddFile>& files) {
  int64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

// ---- construction -----------------------------------------------------------

DeltaTable::DeltaTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeltaTable::~DeltaTable() = default;

arrow::Result<std::unique_ptr<DeltaTable>> DeltaTable::ForPath(const std::string& uri,
                                                               TableOpenOptions options) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  if (options.log_store) {
    auto impl = std::make_unique<Impl>();
    impl->fs = options.log_store->fs();
    impl->store = options.log_store;
    impl->clock = options.clock ? options.clock : Clock::System();
    return std::unique_ptr<DeltaTable>(new DeltaTable(std::move(impl)));
  }
  if (uri.empty()) return arrow::Status::Invalid("table path is empty");
  std::string path;
  std::shared_ptr<arrow::fs::FileSystem> fs;
  ARROW_ASSIGN_OR_RAISE(fs, OpenFileSystem(uri, &path, options.storage_options));
  if (fs->type_name() == "local" && !path.empty() && path[0] != '/') {
    // A relative local path.
    char buf[4096];
    if (getcwd(buf, sizeof buf) == nullptr) return arrow::Status::IOError("cannot get cwd");
    path = std::string(buf) + "/" + path;
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (fs->type_name() == "local") {
    // Normalize "a/./b" and "a/../b" so that log paths compare equal.
    std::error_code ec;
    auto norm = std::filesystem::weakly_canonical(std::filesystem::path(path), ec);
    if (!ec) path = norm.string();
    while (path.size() > 1 && path.back() == '/') path.pop_back();
  }
  auto impl = std::make_unique<Impl>();
  impl->fs = fs;
  impl->store = MakeLogStore(fs, path, options.sync);
  impl->clock = options.clock ? options.clock : Clock::System();
  impl->external = options.allow_external_paths ? ExternalPaths::kAllow : ExternalPaths::kRefuse;
  return std::unique_ptr<DeltaTable>(new DeltaTable(std::move(impl)));
}

arrow::Result<std::unique_ptr<DeltaTable>> DeltaTable::Open(const std::string& uri,
                                                            TableOpenOptions options) {
  ARROW_ASSIGN_OR_RAISE(auto table, ForPath(uri, std::move(options)));
  ARROW_ASSIGN_OR_RAISE(auto listing, table->impl_->store->List());
  if (!listing.log_dir_exists || (listing.commits.empty() && listing.checkpoints.empty())) {
    ARROW_ASSIGN_OR_RAISE(auto info, table->impl_->fs->GetFileInfo(table->root()));
    std::string why = info.type() == arrow::fs::FileType::NotFound
                          ? "the path does not exist"
                          : (!listing.log_dir_exists ? "it has no '_delta_log' folder"
                                                     : "'_delta_log' holds no commits");
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + table->root() + "': " + why);
  }
  return table;
}

arrow::Result<std::unique_ptr<DeltaTable>> DeltaTable::Create(const std::string& uri,
                                                              const CreateOptions& create,
                                                              TableOpenOptions options) {
  ARROW_ASSIGN_OR_RAISE(auto table, ForPath(uri, std::move(options)));
  ARROW_ASSIGN_OR_RAISE(bool exists, table->Exists());
  if (exists) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
                     "a Delta table already exists at '" + table->root() + "'");
  }
  if (!create.schema) return arrow::Status::Invalid("create needs a schema");
  ARROW_ASSIGN_OR_RAISE(auto schema, DeltaStorageSchema(*create.schema));
  auto& impl = *table->impl_;
  ARROW_RETURN_NOT_OK(EnsureFolder(*impl.fs, impl.store->log_dir()));
  Transaction txn(*impl.store, nullptr, impl.clock);
  ARROW_ASSIGN_OR_RAISE(auto md, NewMetadata(*schema, create, impl.clock->NowMillis()));
  txn.SetProtocol(ProtocolFor(*schema, create.properties));
  txn.SetMetadata(md);
  std::vector<std::pair<std::string, std::string>> params = {
      {"isManaged", "false"},
      {"description", create.description.value_or("")},
      {"partitionBy", JsonList(create.partition_columns)},
      {"properties", "{}"}};
  ARROW_RETURN_NOT_OK(txn.Commit("CREATE TABLE", params, {}).status());
  return table;
}

const std::string& DeltaTable::root() const { return impl_->store->root(); }
const std::shared_ptr<arrow::fs::FileSystem>& DeltaTable::filesystem() const { return impl_->fs; }

arrow::Result<bool> DeltaTable::Exists() const {
  ARROW_ASSIGN_OR_RAISE(auto listing, impl_->store->List());
  return listing.log_dir_exists && (!listing.commits.empty() || !listing.checkpoints.empty());
}

// ---- snapshots --------------------------------------------------------------

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::Latest() const {
  return impl_->Load(std::nullopt);
}

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::AtVersion(int64_t version) const {
  return impl_->Load(version);
}

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::AtTimestamp(int64_t timestamp_ms) const {
  ARROW_ASSIGN_OR_RAISE(auto listing, impl_->store->List());
  ARROW_ASSIGN_OR_RAISE(auto version, VersionAtTimestamp(*impl_->store, listing, timestamp_ms));
  return SnapshotBuilder::Load(*impl_->store, listing, version, impl_->external);
}

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::Load(const ReadOptions& options) const {
  if (options.version && options.timestamp_ms) {
    return arrow::Status::Invalid("give a version or a timestamp to read, not both");
  }
  if (options.version) return AtVersion(*options.version);
  if (options.timestamp_ms) return AtTimestamp(*options.timestamp_ms);
  return Latest();
}

// ---- history, restore -------------------------------------------------------

arrow::Result<std::vector<CommitInfo>> DeltaTable::History(int64_t limit) const {
  ARROW_ASSIGN_OR_RAISE(auto listing, impl_->store->List());
  if (!listing.log_dir_exists || (listing.commits.empty() && listing.checkpoints.empty())) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + root() + "'");
  }
  std::vector<CommitInfo> out;
  for (auto it = listing.commits.rbegin(); it != listing.commits.rend(); ++it) {
    if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    ARROW_ASSIGN_OR_RAISE(auto text, impl_->store->Read(it->second.path));
    ARROW_ASSIGN_OR_RAISE(auto info, ParseCommitInfo(text, it->second.path));
    CommitInfo ci = info.value_or(CommitInfo{});
    ci.version = it->first;
    if (ci.timestamp == 0) {
      ARROW_ASSIGN_OR_RAISE(ci.timestamp, impl_->store->ModificationTime(it->second));
    }
    if (ci.json.empty()) ci.json = "{}";
    out.push_back(std::move(ci));
  }
  return out;
}

arrow::Result<CommitResult> DeltaTable::Restore(int64_t version) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto current, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*current));
  ARROW_ASSIGN_OR_RAISE(auto target, AtVersion(version));
  auto key = [&](const AddFile& f) {
    std::string k = CanonicalFilePath(root(), f.path);
    if (f.deletion_vector)
      k += "#" + f.deletion_vector->storage_type + f.deletion_vector->path_or_inline_dv;
    return k;
  };
  std::set<std::string> cur_keys, target_keys;
  for (const auto& f : current->files()) cur_keys.insert(key(f));
  for (const auto& f : target->files()) target_keys.insert(key(f));
  Transaction txn(*impl.store, current, impl.clock);
  txn.ReadWholeTable();
  txn.ReadFiles(current->files());
  int64_t restored_size = 0, removed_size = 0;
  for (const auto& f : target->files()) {
    if (cur_keys.count(key(f))) continue;
    std::string path = DataFilePath(root(), f.path);
    ARROW_ASSIGN_OR_RAISE(auto info, impl.fs->GetFileInfo(path));
    if (info.type() == arrow::fs::FileType::NotFound) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kFileNotFound,
                       "cannot restore to version " + std::to_string(version) +
                           ": its data file '" + path + "' no longer exists (removed by VACUUM)");
    }
    AddFile a = f;
    a.data_change = true;
    restored_size += a.size;
    txn.Add(std::move(a));
  }
  for (const auto& f : current->files()) {
    if (target_keys.count(key(f))) continue;
    removed_size += f.size;
    txn.Remove(f, true);
  }
  if (!(target->metadata() == current->metadata())) txn.SetMetadata(target->metadata());
  if (!(target->protocol() == current->protocol()) &&
      target->protocol().min_writer_version >= current->protocol().min_writer_version) {
    txn.SetProtocol(target->protocol());
  }
  std::map<std::string, int64_t> metrics = {
      {"numRestoredFiles", static_cast<int64_t>(txn.adds().size())},
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"restoredFilesSize", restored_size},
      {"removedFilesSize", removed_size},
      {"numOfFilesAfterRestore", static_cast<int64_t>(target->files().size())},
      {"tableSizeAfterRestore", target->SizeInBytes()}};
  ARROW_ASSIGN_OR_RAISE(
      auto v, txn.Commit("RESTORE", {{"version", std::to_string(version)}, {"timestamp", "null"}},
                         metrics));
  return CommitResult{v, false, metrics};
}

arrow::Result<CommitResult> DeltaTable::RestoreToTimestamp(int64_t timestamp_ms) {
  ARROW_ASSIGN_OR_RAISE(auto snap, AtTimestamp(timestamp_ms));
  return Restore(snap->version());
}

// ---- properties -------------------------------------------------------------

arrow::Result<CommitResult> DeltaTable::SetProperties(
    const std::map<std::string, std::string>& props) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  Metadata md = snapshot->metadata();
  ARROW_RETURN_NOT_OK(ValidateTableProperties(props, *snapshot->schema()));
  for (const auto& [k, v] : props) md.configuration[k] = v;
  Transaction txn(*impl.store, snapshot, impl.clock);
  // New CHECK constraints must hold for the existing rows.
  bool new_checks = false;
  for (const auto& [k, v] : props) new_checks |= k.rfind("delta.constraints.", 0) == 0;
  if (new_checks) {
    ARROW_ASSIGN_OR_RAISE(auto rows, Read(*snapshot, ReadOptions{}));
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, *snapshot->schema(), *rows));
    txn.ReadWholeTable();
    txn.ReadFiles(snapshot->files());
  }
  // CHECK constraints and delta.enableDeletionVectors may need a newer protocol.
  if (auto up = ProtocolUpgrade(snapshot->protocol(),
                                ProtocolFor(*snapshot->schema(), md.configuration))) {
    txn.SetProtocol(*up);
  }
  txn.SetMetadata(md);
  std::string json = "{";
  for (const auto& [k, v] : props)
    json += (json.size() > 1 ? "," : "") + JsonQuote(k) + ":" + JsonQuote(v);
  json += "}";
  ARROW_ASSIGN_OR_RAISE(auto v, txn.Commit("SET TBLPROPERTIES", {{"properties", json}}, {}));
  return CommitResult{v, false, {}};
}

arrow::Status VerifyCommitFile(const DeltaTable& table, int64_t version) {
  char name[32];
  std::snprintf(name, sizeof name, "%020lld.json", static_cast<long long>(version));
  const std::string path = table.root() + "/_delta_log/" + name;
  ARROW_ASSIGN_OR_RAISE(auto in, table.filesystem()->OpenInputStream(path));
  std::string text;
  for (;;) {
    ARROW_ASSIGN_OR_RAISE(auto buf, in->Read(1 << 20));
    if (buf->size() == 0) break;
    text.append(reinterpret_cast<const char*>(buf->data()), buf->size());
  }
  return ParseLogJson(text, path).status();
}

}  // namespace stratalake::delta
