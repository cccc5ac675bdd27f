// Saved training datasets: the rows as a Delta table under datasets/, a JSON
// manifest beside it pinning everything needed to rebuild them exactly.
#include <algorithm>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/filesystem/api.h>
#include <arrow/io/api.h>
#include <arrow/ipc/api.h>
#include <arrow/util/base64.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "common/batch_queue.h"
#include "common/json.h"
#include "storage/log_store.h"
#include "storage/scan.h"
#include "stratalake/clock.h"
#include "stratalake/delta.h"
#include "stratalake/object_store.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::retrieval {

namespace {

bool ValidName(const std::string& s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// A dataset's name becomes the paths datasets/NAME and datasets/NAME.manifest.json:
// one word, so that it stays inside datasets/ on every command.
arrow::Status CheckName(const std::string& name) {
  if (ValidName(name)) return arrow::Status::OK();
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                   "invalid dataset name '" + name +
                       "': use letters, digits, '_' and '-', starting with a letter");
}

std::string ManifestPath(const repo::FeatureRepository& repo, const std::string& name) {
  return repo.TableUri("datasets/" + name + ".manifest.json");
}

// True when the folder `path` holds a file at any depth (false when it is absent).
arrow::Result<bool> HoldsFiles(arrow::fs::FileSystem& fs, const std::string& path) {
  arrow::fs::FileSelector sel;
  sel.base_dir = path;
  sel.allow_not_found = true;
  sel.recursive = true;
  ARROW_ASSIGN_OR_RAISE(auto infos, fs.GetFileInfo(sel));
  for (const auto& i : infos) {
    if (i.IsFile()) return true;
  }
  return false;
}

}  // namespace

std::string ManifestToJson(const DatasetManifest& m) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  auto str = [&](const std::string& s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("name");
  str(m.name);
  w.Key("table_uri");
  str(m.table_uri);
  w.Key("table_version");
  w.Int64(m.table_version);
  w.Key("created_at_ms");
  w.Int64(m.created_at_ms);
  w.Key("registry_version");
  w.Int64(m.registry_version);
  w.Key("feature_refs");
  w.StartArray();
  for (const auto& f : m.feature_refs) str(f);
  w.EndArray();
  w.Key("feature_service");
  str(m.feature_service);
  w.Key("full_feature_names");
  w.Bool(m.full_feature_names);
  w.Key("as_of_ms");
  if (m.as_of_ms) {
    w.Int64(*m.as_of_ms);
  } else {
    w.Null();
  }
  w.Key("timestamp_column");
  str(m.timestamp_column);
  w.Key("entity_columns");
  w.StartArray();
  for (const auto& c : m.entity_columns) str(c);
  w.EndArray();
  w.Key("entity_hash");
  str(m.entity_hash);
  w.Key("entity_hash_version");
  w.Int(m.entity_hash_version);
  w.Key("rows");
  w.Int64(m.rows);
  if (m.schema) {
    auto ipc = arrow::ipc::SerializeSchema(*m.schema);
    if (ipc.ok()) {
      w.Key("arrow_schema");
      str(arrow::util::base64_encode(std::string_view(reinterpret_cast<const char*>((*ipc)->data()),
                                                      static_cast<size_t>((*ipc)->size()))));
    }
  }
  w.Key("sources");
  w.StartArray();
  for (const auto& s : m.sources) {
    w.StartObject();
    w.Key("source");
    str(s.source);
    w.Key("table_uri");
    str(s.table_uri);
    w.Key("version");
    w.Int64(s.version);
    w.Key("files_read");
    w.Int64(s.files_read);
    w.Key("rows_read");
    w.Int64(s.rows_read);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

namespace {

arrow::Result<DatasetManifest> FromJson(const std::string& text, const std::string& where) {
  rapidjson::Document d;
  auto bad = [&](const std::string& what) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                     "dataset manifest " + where + " is malformed: " + what);
  };
  arrow::Status parsed = json::ParseJson(&d, text);
  if (!parsed.ok()) return bad(parsed.message());
  if (!d.IsObject()) return bad("not a JSON object");
  auto s = [&](const char* k) -> std::string {
    auto it = d.FindMember(k);
    return it != d.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
  };
  auto i = [&](const char* k) -> int64_t {
    auto it = d.FindMember(k);
    return it != d.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : -1;
  };
  auto list = [&](const char* k) {
    std::vector<std::string> out;
    auto it = d.FindMember(k);
    if (it != d.MemberEnd() && it->value.IsArray()) {
      for (const auto& v : it->value.GetArray()) {
        if (v.IsString()) out.push_back(v.GetString());
      }
    }
    return out;
  };
  DatasetManifest m;
  m.name = s("name");
  m.table_uri = s("table_uri");
  m.table_version = i("table_version");
  m.created_at_ms = i("created_at_ms");
  m.registry_version = i("registry_version");
  m.feature_refs = list("feature_refs");
  m.feature_service = s("feature_service");
  auto ffn = d.FindMember("full_feature_names");
  m.full_feature_names = ffn != d.MemberEnd() && ffn->value.IsBool() && ffn->value.GetBool();
  auto asof = d.FindMember("as_of_ms");
  if (asof != d.MemberEnd() && asof->value.IsInt64()) m.as_of_ms = asof->value.GetInt64();
  m.timestamp_column = s("timestamp_column");
  m.entity_columns = list("entity_columns");
  m.entity_hash = s("entity_hash");
  // Manifests written before the streamed hash have no version: the whole-table one.
  auto hv = d.FindMember("entity_hash_version");
  m.entity_hash_version = hv != d.MemberEnd() && hv->value.IsInt() ? hv->value.GetInt() : 1;
  if (m.entity_hash_version != 1 && m.entity_hash_version != 2) {
    return bad("entity_hash_version " + std::to_string(m.entity_hash_version) +
               " is not known to this version of StrataLake (1 or 2)");
  }
  m.rows = i("rows");
  if (std::string b64 = s("arrow_schema"); !b64.empty()) {
    auto bytes = arrow::Buffer::FromString(arrow::util::base64_decode(b64));
    arrow::io::BufferReader reader(bytes);
    arrow::ipc::DictionaryMemo memo;
    auto schema = arrow::ipc::ReadSchema(&reader, &memo);
    if (!schema.ok()) return bad("arrow_schema: " + schema.status().message());
    m.schema = *schema;
  }
  auto srcs = d.FindMember("sources");
  if (srcs == d.MemberEnd() || !srcs->value.IsArray()) return bad("no 'sources' list");
  for (const auto& v : srcs->value.GetArray()) {
    if (!v.IsObject() || !v.HasMember("source") || !v["source"].IsString() ||
        !v.HasMember("version") || !v["version"].IsInt64()) {
      return bad("a 'sources' entry lacks source/version");
    }
    SourceRead r;
    r.source = v["source"].GetString();
    r.version = v["version"].GetInt64();
    if (v.HasMember("table_uri") && v["table_uri"].IsString())
      r.table_uri = v["table_uri"].GetString();
    if (v.HasMember("files_read") && v["files_read"].IsInt64())
      r.files_read = v["files_read"].GetInt64();
    if (v.HasMember("rows_read") && v["rows_read"].IsInt64())
      r.rows_read = v["rows_read"].GetInt64();
    m.sources.push_back(r);
  }
  if (m.name.empty() || m.table_uri.empty() || m.registry_version < 1 || m.entity_columns.empty()) {
    return bad("missing name, table_uri, registry_version or entity_columns");
  }
  return m;
}

std::string Hex128(uint64_t a, uint64_t b) {
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return std::string(out);
}

uint64_t Fnv1a(const uint8_t* p, int64_t n, uint64_t h) {
  for (int64_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

arrow::Result<std::string> ContentHash(const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto combined, table.CombineChunksToBatch());
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(sink, combined->schema()));
  ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*combined));
  ARROW_RETURN_NOT_OK(writer->Close());
  ARROW_ASSIGN_OR_RAISE(auto buf, sink->Finish());
  uint64_t a = Fnv1a(buf->data(), buf->size(), 14695981039346656037ULL);
  uint64_t b =
      Fnv1a(buf->data(), buf->size(), 0x84222325cbf29ce4ULL ^ static_cast<uint64_t>(buf->size()));
  return Hex128(a, b);
}

// ---- EntityHasher ---------------------------------------------------------------

namespace {

// Rows per hashed block: the hash is a function of the rows and this constant
// only, never of how the rows arrive. Changing it, or the encoding below,
// changes every hash (it would be a new entity_hash_version).
constexpr int64_t kHashBlockRows = 65536;

// Two FNV-1a streams over one canonical byte encoding of the values.
struct TwoFnv {
  uint64_t a;
  uint64_t b;
  void Feed(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
      a = (a ^ p[i]) * 1099511628211ULL;
      b = (b ^ p[i]) * 0x100000001b3ULL;
      b ^= b >> 29;
    }
  }
  void FeedByte(uint8_t v) { Feed(&v, 1); }
  void FeedSized(std::string_view v) {
    uint64_t n = v.size();
    Feed(&n, sizeof n);
    Feed(v.data(), v.size());
  }
};

// Strings and binary: a validity byte, then the length and the bytes.
template <typename BinaryArray>
void HashBinary(const BinaryArray& b, TwoFnv* h) {
  for (int64_t i = 0; i < b.length(); ++i) {
    h->FeedByte(b.IsValid(i) ? 1 : 0);
    if (b.IsValid(i)) h->FeedSized(b.GetView(i));
  }
}

// A column's values in a canonical encoding that depends on the values only:
// per row a validity byte, then (when valid) the value — fixed-width values as
// their bytes, binary and strings with their length, anything else as its
// text. Buffer layout, offsets, padding and what lies under nulls never count.
void HashColumn(const arrow::Array& array, TwoFnv* h) {
  const arrow::DataType& type = *array.type();
  const int64_t n = array.length();
  const auto id = type.id();
  if (id == arrow::Type::BOOL) {
    const auto& b = static_cast<const arrow::BooleanArray&>(array);
    for (int64_t i = 0; i < n; ++i) h->FeedByte(b.IsNull(i) ? 0 : (b.Value(i) ? 2 : 1));
    return;
  }
  if (id == arrow::Type::STRING || id == arrow::Type::BINARY) {
    return HashBinary(static_cast<const arrow::BinaryArray&>(array), h);
  }
  if (id == arrow::Type::LARGE_STRING || id == arrow::Type::LARGE_BINARY) {
    return HashBinary(static_cast<const arrow::LargeBinaryArray&>(array), h);
  }
  const auto* fixed = dynamic_cast<const arrow::FixedWidthType*>(&type);
  if (fixed && id != arrow::Type::DICTIONARY && fixed->bit_width() % 8 == 0 &&
      array.data()->buffers.size() > 1 && array.data()->buffers[1]) {
    const int64_t width = fixed->bit_width() / 8;
    const uint8_t* values = array.data()->buffers[1]->data() + array.offset() * width;
    for (int64_t i = 0; i < n; ++i) {
      h->FeedByte(array.IsValid(i) ? 1 : 0);
      if (array.IsValid(i)) h->Feed(values + i * width, static_cast<size_t>(width));
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    h->FeedByte(array.IsValid(i) ? 1 : 0);
    if (!array.IsValid(i)) continue;
    auto scalar = array.GetScalar(i);
    h->FeedSized(scalar.ok() ? (*scalar)->ToString() : std::string("?"));
  }
}

}  // namespace

struct EntityHasher::Pending : BatchQueue {};

EntityHasher::EntityHasher(std::shared_ptr<arrow::Schema> schema)
    : schema_(std::move(schema)),
      pending_(std::make_unique<Pending>()),
      a_(14695981039346656037ULL),
      b_(0x84222325cbf29ce4ULL) {}

EntityHasher::~EntityHasher() = default;

arrow::Status EntityHasher::Add(const std::shared_ptr<arrow::RecordBatch>& rows) {
  if (!rows->schema()->Equals(*schema_, false)) {
    return arrow::Status::Invalid("rows of ", rows->schema()->ToString(), " handed to a hasher of ",
                                  schema_->ToString());
  }
  if (rows->num_rows() == 0) return arrow::Status::OK();
  pending_->Push(rows);
  while (pending_->rows() >= kHashBlockRows) ARROW_RETURN_NOT_OK(HashBlock(kHashBlockRows));
  return arrow::Status::OK();
}

arrow::Status EntityHasher::HashBlock(int64_t rows) {
  // The block's rows, column by column (each column in row order).
  auto parts = pending_->Take(rows);
  TwoFnv h{a_, b_};
  h.Feed(&rows, sizeof rows);
  for (int c = 0; c < schema_->num_fields(); ++c) {
    for (const auto& part : parts) HashColumn(*part->column(c), &h);
  }
  a_ = h.a;
  b_ = h.b;
  return arrow::Status::OK();
}

arrow::Result<std::string> EntityHasher::Finish() {
  if (pending_->rows() > 0) ARROW_RETURN_NOT_OK(HashBlock(pending_->rows()));
  // The columns' names and types last: the same values under another name or
  // type hash differently.
  TwoFnv h{a_, b_};
  for (const auto& f : schema_->fields()) {
    h.FeedSized(f->name());
    h.FeedSized(f->type()->ToString());
  }
  return Hex128(h.a, h.b);
}

// ---- reading a saved dataset back ------------------------------------------------

namespace {

// The rows of a Delta snapshot's files in their log order (the order a dataset
// was written in), one Parquet row group at a time, projected to `fields`.
class SnapshotRowsReader : public arrow::RecordBatchReader {
 public:
  /// `exact` (may be null): the schema the rows were saved from, with a field
  /// per one of `fields`; the stored columns are cast back to it.
  SnapshotRowsReader(std::shared_ptr<arrow::fs::FileSystem> fs,
                     std::shared_ptr<const delta::Snapshot> snapshot, std::vector<int> fields,
                     std::shared_ptr<arrow::Schema> exact = nullptr)
      : fs_(std::move(fs)), snapshot_(std::move(snapshot)), fields_(std::move(fields)) {
    arrow::FieldVector out;
    for (int f : fields_) out.push_back(snapshot_->schema()->field(f));
    schema_ = exact ? std::move(exact) : arrow::schema(out);
    for (int c = 0; c < schema_->num_fields(); ++c) {
      cast_.push_back(!schema_->field(c)->type()->Equals(*out[static_cast<size_t>(c)]->type()));
    }
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    while (true) {
      if (current_) {
        std::shared_ptr<arrow::RecordBatch> next;
        ARROW_RETURN_NOT_OK(current_->ReadNext(&next));
        if (next) {
          arrow::ArrayVector columns = next->columns();
          for (size_t c = 0; c < columns.size(); ++c) {
            if (!cast_[c]) continue;
            // Back from Delta's type to the saved one (a time zone, a unit, a
            // dictionary): the values came from that type, so nothing is lost.
            ARROW_ASSIGN_OR_RAISE(
                columns[c],
                arrow::compute::Cast(*columns[c], schema_->field(static_cast<int>(c))->type()));
          }
          *batch = arrow::RecordBatch::Make(schema_, next->num_rows(), std::move(columns));
          return arrow::Status::OK();
        }
        current_.reset();
        table_.reset();
      }
      const auto& files = snapshot_->files();
      if (file_ >= files.size()) {
        *batch = nullptr;
        return arrow::Status::OK();
      }
      const auto& file = files[file_];
      if (groups_ < 0) {
        groups_ = 1;
        if (!file.deletion_vector) {
          ARROW_ASSIGN_OR_RAISE(groups_, delta::CountRowGroups(*fs_, *snapshot_, file));
        }
      }
      delta::FileReadOptions fo;
      if (!file.deletion_vector) fo.row_group_range = std::make_pair(group_, group_ + 1);
      ARROW_ASSIGN_OR_RAISE(table_, delta::ReadDataFile(*fs_, *snapshot_, file, fields_, fo));
      current_ = std::make_unique<arrow::TableBatchReader>(*table_);
      if (file.deletion_vector || ++group_ >= groups_) {
        ++file_;
        group_ = 0;
        groups_ = -1;
      }
    }
  }

 private:
  std::shared_ptr<arrow::fs::FileSystem> fs_;
  std::shared_ptr<const delta::Snapshot> snapshot_;
  std::vector<int> fields_;
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<bool> cast_;  // per column: stored in another type than schema_'s
  size_t file_ = 0;
  int group_ = 0;
  int groups_ = -1;
  std::shared_ptr<arrow::Table> table_;
  std::unique_ptr<arrow::TableBatchReader> current_;
};

arrow::Result<std::vector<int>> FieldIndices(const delta::Snapshot& snapshot,
                                             const std::vector<std::string>& names,
                                             const std::string& what) {
  std::vector<int> out;
  for (const auto& n : names) {
    int i = snapshot.schema()->GetFieldIndex(n);
    if (i < 0) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                       what + " has no column '" + n + "' named in its manifest");
    }
    out.push_back(i);
  }
  return out;
}

std::vector<int> AllFields(const delta::Snapshot& snapshot) {
  std::vector<int> out(static_cast<size_t>(snapshot.schema()->num_fields()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int>(i);
  return out;
}

// The entity hash of a saved dataset's stored entity columns, as its manifest's
// entity_hash_version computes it.
arrow::Result<std::string> StoredEntityHash(const delta::DeltaTable& table,
                                            const std::shared_ptr<const delta::Snapshot>& snapshot,
                                            const std::vector<int>& entity_fields,
                                            int hash_version) {
  SnapshotRowsReader reader(table.filesystem(), snapshot, entity_fields);
  if (hash_version == 1) {
    ARROW_ASSIGN_OR_RAISE(auto whole, reader.ToTable());
    return ContentHash(*whole);
  }
  EntityHasher hasher(reader.schema());
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader.ReadNext(&batch));
    if (!batch) break;
    ARROW_RETURN_NOT_OK(hasher.Add(batch));
  }
  return hasher.Finish();
}

}  // namespace

// ---- DatasetWriter ------------------------------------------------------------------

struct DatasetWriter::Impl {
  std::string manifest_uri;
  DatasetManifest manifest;  // the request's part, filled by Open
  std::unique_ptr<delta::DeltaTable> table;
  std::unique_ptr<delta::TableWriter> writer;
  int64_t rows = 0;
  bool finished = false;
  bool committed = false;         // version 0 of datasets/NAME is ours
  bool manifest_started = false;  // we opened the manifest for writing
  bool saved = false;             // Finish succeeded: nothing to clean up

  // Removes what this writer left of a dataset that was not saved, so that a
  // failed --save-as leaves no half-written dataset behind (best effort). A
  // table we did not commit may be another writer's: then only our
  // uncommitted files (TableWriter's destructor) and empty folders go.
  void Discard() {
    if (saved || !table) return;
    writer.reset();
    const auto& fs = table->filesystem();
    if (manifest_started) {
      std::string path;
      if (auto mfs = OpenFileSystem(manifest_uri, &path); mfs.ok()) {
        (void)(*mfs)->DeleteFile(path);
      }
      manifest_started = false;
    }
    auto has_files = HoldsFiles(*fs, table->root());
    if (committed || (has_files.ok() && !*has_files)) {
      auto info = fs->GetFileInfo(table->root());
      if (info.ok() && info->IsDirectory()) (void)fs->DeleteDir(table->root());
    }
    committed = false;
  }
};

DatasetWriter::DatasetWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DatasetWriter::~DatasetWriter() {
  if (impl_) impl_->Discard();
}

arrow::Result<std::unique_ptr<DatasetWriter>> DatasetWriter::Open(
    const repo::FeatureRepository& repo, const std::string& name,
    const HistoricalRequest& request) {
  ARROW_RETURN_NOT_OK(CheckName(name));
  auto impl = std::make_unique<Impl>();
  DatasetManifest& m = impl->manifest;
  m.name = name;
  m.table_uri = repo.TableUri("datasets/" + name);
  impl->manifest_uri = ManifestPath(repo, name);
  ARROW_ASSIGN_OR_RAISE(impl->table, delta::DeltaTable::ForPath(m.table_uri));
  ARROW_ASSIGN_OR_RAISE(bool exists, impl->table->Exists());
  if (exists) {
    return MakeError(
        arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
        "dataset '" + name + "' already exists (" + m.table_uri + "); choose another name");
  }
  // Files but no table: a half-written dataset from before cleanup existed, or
  // someone else's files. Refused, so that cleaning up after a failure can
  // never delete them.
  ARROW_ASSIGN_OR_RAISE(bool stray, HoldsFiles(*impl->table->filesystem(), impl->table->root()));
  if (stray) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
                     "dataset folder " + m.table_uri +
                         " holds files but no Delta table (left by a failed save?); remove it "
                         "or choose another name");
  }
  {
    std::string path;
    ARROW_ASSIGN_OR_RAISE(auto mfs, OpenFileSystem(impl->manifest_uri, &path));
    ARROW_ASSIGN_OR_RAISE(auto info, mfs->GetFileInfo(path));
    if (info.type() != arrow::fs::FileType::NotFound) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
                       "dataset '" + name + "' already exists (" + impl->manifest_uri +
                           "); choose another name");
    }
  }
  m.feature_service = request.feature_service;
  m.full_feature_names = request.full_feature_names;
  m.as_of_ms = request.as_of_ms;
  m.timestamp_column =
      request.timestamp_column.empty() ? "event_timestamp" : request.timestamp_column;
  return std::unique_ptr<DatasetWriter>(new DatasetWriter(std::move(impl)));
}

arrow::Status DatasetWriter::Begin(const std::shared_ptr<arrow::Schema>& schema) {
  if (impl_->writer) return arrow::Status::Invalid("DatasetWriter::Begin called twice");
  delta::WriteOptions wo;
  wo.mode = delta::WriteMode::kErrorIfExists;
  wo.user_metadata = "stratalake dataset " + impl_->manifest.name;
  ARROW_ASSIGN_OR_RAISE(impl_->writer, impl_->table->OpenWriter(schema, wo));
  return arrow::Status::OK();
}

arrow::Status DatasetWriter::Write(const std::shared_ptr<arrow::Table>& rows) {
  if (!impl_->writer) return arrow::Status::Invalid("DatasetWriter::Write before Begin");
  ARROW_RETURN_NOT_OK(impl_->writer->Write(rows));
  impl_->rows += rows->num_rows();
  return arrow::Status::OK();
}

namespace {

// Finish() less the cleanup: commit, hash, manifest.
arrow::Result<DatasetManifest> FinishSave(DatasetWriter::Impl& w, const HistoricalResult& result) {
  DatasetManifest m = w.manifest;
  const auto& schema = w.writer->input_schema();
  const int features = static_cast<int>(result.feature_refs.size());
  if (features > schema->num_fields()) {
    return arrow::Status::Invalid("the retrieval result names ", features,
                                  " features but the dataset has ", schema->num_fields(),
                                  " columns");
  }
  for (int i = 0; i < schema->num_fields() - features; ++i) {
    m.entity_columns.push_back(schema->field(i)->name());
  }
  m.created_at_ms = Clock::System()->NowMillis();
  m.registry_version = result.registry_version;
  m.feature_refs = result.feature_refs;
  m.sources = result.sources;
  m.schema = schema;
  m.rows = w.rows;
  ARROW_ASSIGN_OR_RAISE(auto commit, w.writer->Commit());
  w.committed = true;
  m.table_version = commit.version;
  // The hash covers the entity rows as stored (Delta normalizes e.g. timestamp units).
  ARROW_ASSIGN_OR_RAISE(auto snapshot, w.table->AtVersion(m.table_version));
  ARROW_ASSIGN_OR_RAISE(auto entity_fields,
                        FieldIndices(*snapshot, m.entity_columns, "dataset '" + m.name + "'"));
  m.entity_hash_version = 2;
  ARROW_ASSIGN_OR_RAISE(m.entity_hash,
                        StoredEntityHash(*w.table, snapshot, entity_fields, m.entity_hash_version));

  std::string path;
  ARROW_ASSIGN_OR_RAISE(auto fs, OpenFileSystem(w.manifest_uri, &path));
  // Replaced atomically and durably (a temporary file, synced, renamed into
  // place, the folder synced): a manifest is whole or absent, also after a crash.
  w.manifest_started = true;
  auto store = delta::MakeLogStore(fs, delta::ParentDir(path));
  ARROW_RETURN_NOT_OK(store->PutAtomic(path, ManifestToJson(m)));
  return m;
}

}  // namespace

arrow::Result<DatasetManifest> DatasetWriter::Finish(const HistoricalResult& result) {
  Impl& w = *impl_;
  if (!w.writer) return arrow::Status::Invalid("DatasetWriter::Finish before Begin");
  if (w.finished) return arrow::Status::Invalid("DatasetWriter::Finish called twice");
  w.finished = true;
  auto m = FinishSave(w, result);
  if (m.ok()) {
    w.saved = true;
  } else {
    w.Discard();
  }
  return m;
}

arrow::Result<DatasetManifest> SaveDataset(const repo::FeatureRepository& repo,
                                           const std::string& name,
                                           const HistoricalRequest& request,
                                           const HistoricalResult& result) {
  if (!result.table) return arrow::Status::Invalid("SaveDataset needs an in-memory result");
  ARROW_ASSIGN_OR_RAISE(auto writer, DatasetWriter::Open(repo, name, request));
  ARROW_RETURN_NOT_OK(writer->Begin(result.table->schema()));
  ARROW_RETURN_NOT_OK(writer->Write(result.table));
  return writer->Finish(result);
}

arrow::Result<DatasetManifest> LoadDatasetManifest(const repo::FeatureRepository& repo,
                                                   const std::string& name) {
  ARROW_RETURN_NOT_OK(CheckName(name));
  std::string path;
  std::string uri = ManifestPath(repo, name);
  ARROW_ASSIGN_OR_RAISE(auto fs, OpenFileSystem(uri, &path));
  ARROW_ASSIGN_OR_RAISE(auto info, fs->GetFileInfo(path));
  if (!info.IsFile()) {
    return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                     "no saved dataset named '" + name + "' (no " + uri +
                         "); `stratalake datasets list` shows the saved ones");
  }
  ARROW_ASSIGN_OR_RAISE(auto in, fs->OpenInputStream(path));
  ARROW_ASSIGN_OR_RAISE(auto buf, in->Read(info.size()));
  return FromJson(buf->ToString(), uri);
}

arrow::Result<std::vector<DatasetManifest>> ListDatasets(const repo::FeatureRepository& repo) {
  std::string base;
  ARROW_ASSIGN_OR_RAISE(auto fs, OpenFileSystem(repo.TableUri("datasets"), &base));
  arrow::fs::FileSelector sel;
  sel.base_dir = base;
  sel.allow_not_found = true;
  ARROW_ASSIGN_OR_RAISE(auto infos, fs->GetFileInfo(sel));
  std::vector<DatasetManifest> out;
  const std::string suffix = ".manifest.json";
  for (const auto& i : infos) {
    std::string n = i.base_name();
    if (!i.IsFile() || n.size() <= suffix.size() ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0 ||
        !ValidName(n.substr(0, n.size() - suffix.size()))) {
      continue;  // not a manifest we wrote
    }
    ARROW_ASSIGN_OR_RAISE(auto m, LoadDatasetManifest(repo, n.substr(0, n.size() - suffix.size())));
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

namespace {

// Compares each rebuilt piece with the saved rows at the same positions (read
// back as the pieces arrive), remembers the first difference, and passes the
// piece on to `out`.
class CompareSink : public HistoricalSink {
 public:
  static constexpr int64_t kCompareRows = int64_t{1} << 16;

  CompareSink(std::unique_ptr<arrow::RecordBatchReader> saved, HistoricalSink* out)
      : saved_(std::move(saved)), out_(out) {}

  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    const auto& a = *saved_->schema();
    if (a.num_fields() != schema->num_fields()) {
      Differ("column count differs: saved " + std::to_string(a.num_fields()) + ", recreated " +
             std::to_string(schema->num_fields()));
    }
    for (int c = 0; c < a.num_fields() && difference_.empty(); ++c) {
      if (!a.field(c)->type()->Equals(*schema->field(c)->type())) {
        Differ("column '" + a.field(c)->name() + "' type " + a.field(c)->type()->ToString() +
               " vs " + schema->field(c)->type()->ToString());
      }
    }
    return out_ ? out_->Begin(schema) : arrow::Status::OK();
  }

  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    // In slices, so that the saved rows read back for comparison stay small
    // even when the whole output comes as one piece (the in-memory retrieval).
    for (int64_t at = 0; at < rows->num_rows() && difference_.empty(); at += kCompareRows) {
      ARROW_RETURN_NOT_OK(Compare(*rows->Slice(at, kCompareRows)));
      compared_ += std::min(kCompareRows, rows->num_rows() - at);
    }
    rows_ += rows->num_rows();
    return out_ ? out_->Write(rows) : arrow::Status::OK();
  }

  // After the last piece: the saved rows must be used up too.
  arrow::Status Finish() {
    if (!difference_.empty()) return arrow::Status::OK();
    int64_t left = pending_.rows();
    while (true) {
      std::shared_ptr<arrow::RecordBatch> b;
      ARROW_RETURN_NOT_OK(saved_->ReadNext(&b));
      if (!b) break;
      left += b->num_rows();
    }
    if (left > 0) {
      Differ("row count differs: saved " + std::to_string(rows_ + left) + ", recreated " +
             std::to_string(rows_));
    }
    return arrow::Status::OK();
  }

  const std::string& difference() const { return difference_; }

 private:
  void Differ(std::string what) {
    if (difference_.empty()) difference_ = std::move(what);
  }

  arrow::Status Compare(const arrow::Table& rebuilt) {
    const int64_t n = rebuilt.num_rows();
    while (pending_.rows() < n) {
      std::shared_ptr<arrow::RecordBatch> b;
      ARROW_RETURN_NOT_OK(saved_->ReadNext(&b));
      if (!b) break;
      pending_.Push(std::move(b));
    }
    const int64_t got = pending_.rows();
    if (got < n) {
      Differ("row count differs: saved " + std::to_string(compared_ + got) +
             ", recreated more (at least " + std::to_string(compared_ + n) + ")");
      return arrow::Status::OK();
    }
    auto parts = pending_.Take(n);
    ARROW_ASSIGN_OR_RAISE(auto saved, arrow::Table::FromRecordBatches(saved_->schema(), parts));
    for (int c = 0; c < saved->num_columns(); ++c) {
      const auto& x = saved->column(c);
      const auto& y = rebuilt.column(c);
      if (x->Equals(*y)) continue;
      ARROW_ASSIGN_OR_RAISE(auto xa, arrow::Concatenate(x->chunks()));
      ARROW_ASSIGN_OR_RAISE(auto ya, arrow::Concatenate(y->chunks()));
      for (int64_t i = 0; i < n; ++i) {
        if (xa->RangeEquals(*ya, i, i + 1, i)) continue;
        auto sx = xa->GetScalar(i);
        auto sy = ya->GetScalar(i);
        Differ("row " + std::to_string(compared_ + i) + " column '" +
               saved->schema()->field(c)->name() + "': saved " +
               (sx.ok() ? (*sx)->ToString() : "?") + ", recreated " +
               (sy.ok() ? (*sy)->ToString() : "?"));
        return arrow::Status::OK();
      }
    }
    return arrow::Status::OK();
  }

  std::unique_ptr<arrow::RecordBatchReader> saved_;
  HistoricalSink* out_;
  BatchQueue pending_;    // saved rows read but not compared yet
  int64_t rows_ = 0;      // rebuilt rows received
  int64_t compared_ = 0;  // of them, compared with the saved rows
  std::string difference_;
};

// The manifest's exact schema when it matches the stored columns (names, in
// order); null for a manifest without one.
arrow::Result<std::shared_ptr<arrow::Schema>> ExactSchema(const DatasetManifest& m,
                                                          const delta::Snapshot& snapshot) {
  if (!m.schema) return nullptr;
  const auto& stored = *snapshot.schema();
  bool same_names = m.schema->num_fields() == stored.num_fields() &&
                    m.schema->num_fields() >= static_cast<int>(m.entity_columns.size());
  for (int c = 0; same_names && c < stored.num_fields(); ++c) {
    same_names = m.schema->field(c)->name() == stored.field(c)->name();
  }
  if (!same_names) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                     "dataset '" + m.name + "': the manifest's arrow_schema (" +
                         m.schema->ToString() + ") does not name the saved table's columns (" +
                         stored.ToString() + ")");
  }
  return m.schema;
}

// Collects a streamed output into one table (the in-memory RecreateDataset).
class CollectSink : public HistoricalSink {
 public:
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    schema_ = schema;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    pieces_.push_back(rows);
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Table() const {
    if (pieces_.empty()) return arrow::Table::MakeEmpty(schema_);
    return arrow::ConcatenateTables(pieces_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::Table>> pieces_;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadDataset(
    const repo::FeatureRepository& repo, const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto m, LoadDatasetManifest(repo, name));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<delta::DeltaTable> table,
                        delta::DeltaTable::Open(repo.TableUri("datasets/" + name)));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<const delta::Snapshot> snapshot,
                        table->AtVersion(m.table_version));
  ARROW_ASSIGN_OR_RAISE(auto exact, ExactSchema(m, *snapshot));
  return std::make_shared<SnapshotRowsReader>(table->filesystem(), snapshot, AllFields(*snapshot),
                                              exact);
}

arrow::Result<RecreateResult> RecreateDataset(const repo::FeatureRepository& repo,
                                              const std::string& name, HistoricalSink* sink,
                                              int64_t memory_budget_bytes) {
  ARROW_ASSIGN_OR_RAISE(auto m, LoadDatasetManifest(repo, name));
  // The rows are where the name puts them, whatever the manifest's table_uri
  // says (it is informational: the repository may have moved since).
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<delta::DeltaTable> table,
                        delta::DeltaTable::Open(repo.TableUri("datasets/" + name)));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<const delta::Snapshot> snapshot,
                        table->AtVersion(m.table_version));
  ARROW_ASSIGN_OR_RAISE(auto entity_fields,
                        FieldIndices(*snapshot, m.entity_columns, "saved dataset '" + name + "'"));
  ARROW_ASSIGN_OR_RAISE(auto hash,
                        StoredEntityHash(*table, snapshot, entity_fields, m.entity_hash_version));

  HistoricalRequest req;
  auto fs = table->filesystem();
  // The entity rows as they were given, so that the rebuilt rows have the saved schema.
  ARROW_ASSIGN_OR_RAISE(auto exact, ExactSchema(m, *snapshot));
  std::shared_ptr<arrow::Schema> entity_schema;
  if (exact) {
    arrow::FieldVector fields(exact->fields().begin(),
                              exact->fields().begin() + static_cast<long>(entity_fields.size()));
    entity_schema = arrow::schema(fields, exact->metadata());
  }
  req.open_entities =
      [fs, snapshot, entity_fields,
       entity_schema]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
    return std::make_shared<SnapshotRowsReader>(fs, snapshot, entity_fields, entity_schema);
  };
  req.timestamp_column = m.timestamp_column;
  req.feature_service = m.feature_service;
  if (m.feature_service.empty()) req.features = m.feature_refs;
  req.full_feature_names = m.full_feature_names;
  req.registry_version = m.registry_version;
  req.memory_budget_bytes = memory_budget_bytes;
  for (const auto& s : m.sources) req.source_versions[s.source] = s.version;
  CompareSink compare(
      std::make_unique<SnapshotRowsReader>(fs, snapshot, AllFields(*snapshot), exact), sink);
  auto rebuilt = GetHistoricalFeatures(repo, req, &compare);
  if (!rebuilt.ok()) {
    if (HasErrorKind(rebuilt.status(), ErrorKind::kFileNotFound) ||
        HasErrorKind(rebuilt.status(), ErrorKind::kVersionNotFound)) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
                       "dataset '" + name +
                           "' cannot be recreated: a source version it was built from is no "
                           "longer readable (removed by VACUUM or log cleanup?): " +
                           rebuilt.status().message());
    }
    return rebuilt.status();
  }
  ARROW_RETURN_NOT_OK(compare.Finish());
  RecreateResult r;
  r.rows = rebuilt->rows;
  if (hash != m.entity_hash) {
    r.difference =
        "the saved entity rows no longer match the manifest's hash (saved table changed?)";
  } else {
    r.difference = compare.difference();
  }
  r.identical = r.difference.empty();
  return r;
}

arrow::Result<RecreateResult> RecreateDataset(const repo::FeatureRepository& repo,
                                              const std::string& name) {
  CollectSink collect;
  ARROW_ASSIGN_OR_RAISE(auto r, RecreateDataset(repo, name, &collect));
  ARROW_ASSIGN_OR_RAISE(r.table, collect.Table());
  return r;
}

arrow::Result<std::string> DatasetTableUri(const repo::FeatureRepository& repo,
                                           const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto writer, DatasetWriter::Open(repo, name, HistoricalRequest{}));
  return repo.TableUri("datasets/" + name);
}

arrow::Result<DatasetManifest> RegisterDataset(const repo::FeatureRepository& repo,
                                               const std::string& name,
                                               const HistoricalRequest& request,
                                               const HistoricalResult& result) {
  ARROW_RETURN_NOT_OK(CheckName(name));
  if (!result.schema) return arrow::Status::Invalid("RegisterDataset needs the result's schema");
  DatasetManifest m;
  m.name = name;
  m.table_uri = repo.TableUri("datasets/" + name);
  const std::string manifest_uri = ManifestPath(repo, name);
  std::string path;
  ARROW_ASSIGN_OR_RAISE(auto mfs, OpenFileSystem(manifest_uri, &path));
  ARROW_ASSIGN_OR_RAISE(auto info, mfs->GetFileInfo(path));
  if (info.type() != arrow::fs::FileType::NotFound) {
    return MakeError(
        arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
        "dataset '" + name + "' already exists (" + manifest_uri + "); choose another name");
  }
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<delta::DeltaTable> table,
                        delta::DeltaTable::Open(m.table_uri));
  ARROW_ASSIGN_OR_RAISE(auto snapshot, table->Latest());
  m.table_version = snapshot->version();
  m.feature_service = request.feature_service;
  m.full_feature_names = request.full_feature_names;
  m.as_of_ms = request.as_of_ms;
  m.timestamp_column =
      request.timestamp_column.empty() ? "event_timestamp" : request.timestamp_column;
  const int features = static_cast<int>(result.feature_refs.size());
  if (features > result.schema->num_fields()) {
    return arrow::Status::Invalid("the retrieval result names ", features, " features but has ",
                                  result.schema->num_fields(), " columns");
  }
  for (int i = 0; i < result.schema->num_fields() - features; ++i) {
    m.entity_columns.push_back(result.schema->field(i)->name());
  }
  m.created_at_ms = Clock::System()->NowMillis();
  m.registry_version = result.registry_version;
  m.feature_refs = result.feature_refs;
  m.sources = result.sources;
  m.schema = result.schema;
  m.rows = result.rows;
  ARROW_RETURN_NOT_OK(ExactSchema(m, *snapshot).status());  // the table's columns, in order
  ARROW_ASSIGN_OR_RAISE(auto entity_fields,
                        FieldIndices(*snapshot, m.entity_columns, "dataset '" + m.name + "'"));
  m.entity_hash_version = 2;
  ARROW_ASSIGN_OR_RAISE(m.entity_hash,
                        StoredEntityHash(*table, snapshot, entity_fields, m.entity_hash_version));
  auto store = delta::MakeLogStore(mfs, delta::ParentDir(path));
  ARROW_RETURN_NOT_OK(store->PutAtomic(path, ManifestToJson(m)));
  return m;
}

}  // namespace stratalake::retrieval
