#include "storage/checkpoint.h"

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/json/from_string.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/arrow/writer.h>
#include <parquet/exception.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "storage/actions.h"
#include "storage/snapshot.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

arrow::Status CheckpointError(const std::string& path, const std::string& what) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                   "corrupt checkpoint '" + path + "': " + what);
}

// ---- reading Arrow rows -----------------------------------------------------

const arrow::Array* Child(const arrow::StructArray& s, const char* name) {
  auto idx = s.struct_type()->GetFieldIndex(name);
  return idx < 0 ? nullptr : s.field(idx).get();
}

std::optional<std::string> Str(const arrow::Array* a, int64_t i) {
  if (a == nullptr || a->IsNull(i)) return std::nullopt;
  if (a->type_id() == arrow::Type::STRING) {
    return static_cast<const arrow::StringArray*>(a)->GetString(i);
  }
  if (a->type_id() == arrow::Type::LARGE_STRING) {
    return static_cast<const arrow::LargeStringArray*>(a)->GetString(i);
  }
  if (a->type_id() == arrow::Type::BINARY) {
    return static_cast<const arrow::BinaryArray*>(a)->GetString(i);
  }
  return std::nullopt;
}

std::optional<int64_t> Int(const arrow::Array* a, int64_t i) {
  if (a == nullptr || a->IsNull(i)) return std::nullopt;
  switch (a->type_id()) {
    case arrow::Type::INT64:
      return static_cast<const arrow::Int64Array*>(a)->Value(i);
    case arrow::Type::INT32:
      return static_cast<const arrow::Int32Array*>(a)->Value(i);
    case arrow::Type::INT16:
      return static_cast<const arrow::Int16Array*>(a)->Value(i);
    default:
      return std::nullopt;
  }
}

std::optional<bool> Bool(const arrow::Array* a, int64_t i) {
  if (a == nullptr || a->IsNull(i) || a->type_id() != arrow::Type::BOOL) return std::nullopt;
  return static_cast<const arrow::BooleanArray*>(a)->Value(i);
}

// map<string,string> (or the list<struct<key,value>> some writers use).
std::vector<std::pair<std::string, std::optional<std::string>>> Pairs(const arrow::Array* a,
                                                                      int64_t i) {
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  if (a == nullptr || a->IsNull(i)) return out;
  const arrow::Array* keys = nullptr;
  const arrow::Array* items = nullptr;
  int64_t begin = 0, end = 0;
  if (a->type_id() == arrow::Type::MAP) {
    const auto* m = static_cast<const arrow::MapArray*>(a);
    keys = m->keys().get();
    items = m->items().get();
    begin = m->value_offset(i);
    end = begin + m->value_length(i);
  } else if (a->type_id() == arrow::Type::LIST) {
    const auto* l = static_cast<const arrow::ListArray*>(a);
    if (l->values()->type_id() != arrow::Type::STRUCT) return out;
    const auto& s = static_cast<const arrow::StructArray&>(*l->values());
    keys = Child(s, "key");
    items = Child(s, "value");
    begin = l->value_offset(i);
    end = begin + l->value_length(i);
  }
  if (keys == nullptr) return out;
  for (int64_t j = begin; j < end; ++j) {
    auto k = Str(keys, j);
    if (k) out.emplace_back(*k, Str(items, j));
  }
  return out;
}

std::optional<std::vector<std::string>> StrList(const arrow::Array* a, int64_t i) {
  if (a == nullptr || a->IsNull(i) || a->type_id() != arrow::Type::LIST) return std::nullopt;
  const auto* l = static_cast<const arrow::ListArray*>(a);
  std::vector<std::string> out;
  for (int64_t j = l->value_offset(i); j < l->value_offset(i) + l->value_length(i); ++j) {
    auto s = Str(l->values().get(), j);
    if (s) out.push_back(*s);
  }
  return out;
}

std::optional<DeletionVector> Dv(const arrow::Array* a, int64_t i) {
  if (a == nullptr || a->IsNull(i) || a->type_id() != arrow::Type::STRUCT) return std::nullopt;
  const auto& s = static_cast<const arrow::StructArray&>(*a);
  DeletionVector dv;
  dv.storage_type = Str(Child(s, "storageType"), i).value_or("");
  dv.path_or_inline_dv = Str(Child(s, "pathOrInlineDv"), i).value_or("");
  auto off = Int(Child(s, "offset"), i);
  if (off) dv.offset = static_cast<int32_t>(*off);
  dv.size_in_bytes = static_cast<int32_t>(Int(Child(s, "sizeInBytes"), i).value_or(0));
  dv.cardinality = Int(Child(s, "cardinality"), i).value_or(0);
  return dv;
}

const arrow::StructArray* Column(const arrow::RecordBatch& batch, const char* name) {
  auto col = batch.GetColumnByName(name);
  if (!col || col->type_id() != arrow::Type::STRUCT) return nullptr;
  return static_cast<const arrow::StructArray*>(col.get());
}

arrow::Status ActionsFromBatch(const arrow::RecordBatch& batch, const std::string& path,
                               LogActions* out) {
  const auto* add = Column(batch, "add");
  const auto* remove = Column(batch, "remove");
  const auto* meta = Column(batch, "metaData");
  const auto* protocol = Column(batch, "protocol");
  const auto* txn = Column(batch, "txn");
  const auto* domain = Column(batch, "domainMetadata");
  const auto* sidecar = Column(batch, "sidecar");
  const auto* cpmeta = Column(batch, "checkpointMetadata");
  for (int64_t i = 0; i < batch.num_rows(); ++i) {
    // Some writers store a non-null struct with all-null fields for absent actions:
    // an action is present only when its key field is set.
    if (add && add->IsValid(i) && Str(Child(*add, "path"), i)) {
      AddFile a;
      auto p = Str(Child(*add, "path"), i);
      if (!p) return CheckpointError(path, "add action without path at row " + std::to_string(i));
      a.path = *p;
      for (auto& [k, v] : Pairs(Child(*add, "partitionValues"), i)) a.partition_values[k] = v;
      a.size = Int(Child(*add, "size"), i).value_or(0);
      a.modification_time = Int(Child(*add, "modificationTime"), i).value_or(0);
      a.data_change = Bool(Child(*add, "dataChange"), i).value_or(false);
      a.stats = Str(Child(*add, "stats"), i).value_or("");
      for (auto& [k, v] : Pairs(Child(*add, "tags"), i)) a.tags[k] = v.value_or("");
      a.deletion_vector = Dv(Child(*add, "deletionVector"), i);
      a.base_row_id = Int(Child(*add, "baseRowId"), i);
      a.default_row_commit_version = Int(Child(*add, "defaultRowCommitVersion"), i);
      a.clustering_provider = Str(Child(*add, "clusteringProvider"), i);
      out->adds.push_back(std::move(a));
    }
    if (remove && remove->IsValid(i) && Str(Child(*remove, "path"), i)) {
      RemoveFile r;
      auto p = Str(Child(*remove, "path"), i);
      if (!p)
        return CheckpointError(path, "remove action without path at row " + std::to_string(i));
      r.path = *p;
      r.deletion_timestamp = Int(Child(*remove, "deletionTimestamp"), i);
      r.data_change = Bool(Child(*remove, "dataChange"), i).value_or(false);
      r.extended_file_metadata = Bool(Child(*remove, "extendedFileMetadata"), i);
      r.size = Int(Child(*remove, "size"), i);
      r.deletion_vector = Dv(Child(*remove, "deletionVector"), i);
      out->removes.push_back(std::move(r));
    }
    if (meta && meta->IsValid(i) &&
        (Str(Child(*meta, "id"), i) || Str(Child(*meta, "schemaString"), i))) {
      Metadata m;
      auto id = Str(Child(*meta, "id"), i);
      auto schema = Str(Child(*meta, "schemaString"), i);
      if (!id) return CheckpointError(path, "metaData without id");
      m.id = *id;
      // Early Delta writers left the schema of empty tables unset.
      m.schema_string = schema.value_or(R"({"type":"struct","fields":[]})");
      m.name = Str(Child(*meta, "name"), i);
      m.description = Str(Child(*meta, "description"), i);
      const auto* fmt = Child(*meta, "format");
      if (fmt && fmt->type_id() == arrow::Type::STRUCT && fmt->IsValid(i)) {
        const auto& f = static_cast<const arrow::StructArray&>(*fmt);
        m.format_provider = Str(Child(f, "provider"), i).value_or("parquet");
        for (auto& [k, v] : Pairs(Child(f, "options"), i)) m.format_options[k] = v.value_or("");
      }
      m.partition_columns =
          StrList(Child(*meta, "partitionColumns"), i).value_or(std::vector<std::string>{});
      for (auto& [k, v] : Pairs(Child(*meta, "configuration"), i))
        m.configuration[k] = v.value_or("");
      m.created_time = Int(Child(*meta, "createdTime"), i);
      out->metadata = std::move(m);
    }
    if (protocol && protocol->IsValid(i) && Int(Child(*protocol, "minReaderVersion"), i)) {
      Protocol p;
      auto r = Int(Child(*protocol, "minReaderVersion"), i);
      auto w = Int(Child(*protocol, "minWriterVersion"), i);
      if (!r || !w) return CheckpointError(path, "protocol without reader/writer version");
      p.min_reader_version = static_cast<int32_t>(*r);
      p.min_writer_version = static_cast<int32_t>(*w);
      p.reader_features = StrList(Child(*protocol, "readerFeatures"), i);
      p.writer_features = StrList(Child(*protocol, "writerFeatures"), i);
      out->protocol = std::move(p);
    }
    if (txn && txn->IsValid(i) && Str(Child(*txn, "appId"), i)) {
      AppTransaction t;
      t.app_id = Str(Child(*txn, "appId"), i).value_or("");
      t.version = Int(Child(*txn, "version"), i).value_or(0);
      t.last_updated = Int(Child(*txn, "lastUpdated"), i);
      out->txns.push_back(std::move(t));
    }
    if (domain && domain->IsValid(i) && Str(Child(*domain, "domain"), i)) {
      DomainMetadata d;
      d.domain = Str(Child(*domain, "domain"), i).value_or("");
      d.configuration = Str(Child(*domain, "configuration"), i).value_or("");
      d.removed = Bool(Child(*domain, "removed"), i).value_or(false);
      out->domains.push_back(std::move(d));
    }
    if (sidecar && sidecar->IsValid(i) && Str(Child(*sidecar, "path"), i)) {
      Sidecar s;
      s.path = Str(Child(*sidecar, "path"), i).value_or("");
      s.size_in_bytes = Int(Child(*sidecar, "sizeInBytes"), i).value_or(0);
      s.modification_time = Int(Child(*sidecar, "modificationTime"), i).value_or(0);
      out->sidecars.push_back(std::move(s));
    }
    if (cpmeta && cpmeta->IsValid(i)) out->has_checkpoint_metadata = true;
  }
  return arrow::Status::OK();
}

void CollectLeaves(const parquet::arrow::SchemaField& f, std::vector<int>* out) {
  if (f.children.empty()) {
    if (f.column_index >= 0) out->push_back(f.column_index);
    return;
  }
  for (const auto& c : f.children) CollectLeaves(c, out);
}

arrow::Status ParseParquetActions(std::shared_ptr<arrow::io::RandomAccessFile> file,
                                  const std::string& path, LogActions* out) {
  auto reader = parquet::arrow::OpenFile(file, arrow::default_memory_pool());
  if (!reader.ok()) return CheckpointError(path, reader.status().message());
  // Only the action columns we replay; skips e.g. add.stats_parsed readers don't need.
  std::vector<int> columns;
  const auto& manifest = (*reader)->manifest();
  for (size_t i = 0; i < manifest.schema_fields.size(); ++i) {
    const auto& name = manifest.schema_fields[i].field->name();
    if (name == "add" || name == "remove" || name == "metaData" || name == "protocol" ||
        name == "txn" || name == "domainMetadata" || name == "sidecar" ||
        name == "checkpointMetadata") {
      // Skip children replay does not use. Besides saving work, this avoids
      // remove.partitionValues, which delta-rs declares non-null yet writes nulls to
      // (a file the Arrow reader then refuses).
      for (const auto& child : manifest.schema_fields[i].children) {
        const auto& cname = child.field->name();
        if (cname == "stats_parsed" || cname == "partitionValues_parsed") continue;
        if (name == "remove" &&
            (cname == "partitionValues" || cname == "tags" || cname == "stats")) {
          continue;
        }
        CollectLeaves(child, &columns);
      }
      if (manifest.schema_fields[i].children.empty())
        CollectLeaves(manifest.schema_fields[i], &columns);
    }
  }
  std::shared_ptr<arrow::Table> table;
  auto st = (*reader)->ReadTable(columns, &table);
  if (!st.ok()) return CheckpointError(path, st.message());
  arrow::TableBatchReader batches(*table);
  std::shared_ptr<arrow::RecordBatch> batch;
  while (true) {
    auto next = batches.ReadNext(&batch);
    if (!next.ok()) return CheckpointError(path, next.message());
    if (!batch) break;
    ARROW_RETURN_NOT_OK(ActionsFromBatch(*batch, path, out));
  }
  return arrow::Status::OK();
}

arrow::Status ReadParquetActions(const LogStore& store, const std::string& path, LogActions* out) {
  auto file = store.fs()->OpenInputFile(path);
  if (!file.ok()) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                     "cannot open checkpoint '" + path + "': " + file.status().message());
  }
  return ParseParquetActions(*file, path, out);
}

void Append(LogActions* into, LogActions&& from) {
  if (from.protocol) into->protocol = std::move(from.protocol);
  if (from.metadata) into->metadata = std::move(from.metadata);
  for (auto& a : from.adds) into->adds.push_back(std::move(a));
  for (auto& r : from.removes) into->removes.push_back(std::move(r));
  for (auto& t : from.txns) into->txns.push_back(std::move(t));
  for (auto& d : from.domains) into->domains.push_back(std::move(d));
  for (auto& s : from.sidecars) into->sidecars.push_back(std::move(s));
  into->has_checkpoint_metadata |= from.has_checkpoint_metadata;
}

// ---- writing ----------------------------------------------------------------

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void PairsJson(Writer& w, const std::map<std::string, std::string>& m) {
  w.StartArray();
  for (const auto& [k, v] : m) {
    w.StartArray();
    w.String(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    w.EndArray();
  }
  w.EndArray();
}

void PartitionJson(Writer& w, const PartitionValues& m) {
  w.StartArray();
  for (const auto& [k, v] : m) {
    w.StartArray();
    w.String(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
    if (v) {
      w.String(v->c_str(), static_cast<rapidjson::SizeType>(v->size()));
    } else {
      w.Null();
    }
    w.EndArray();
  }
  w.EndArray();
}

void DvJson(Writer& w, const std::optional<DeletionVector>& dv) {
  if (!dv) {
    w.Null();
    return;
  }
  w.StartObject();
  w.Key("storageType");
  w.String(dv->storage_type.c_str());
  w.Key("pathOrInlineDv");
  w.String(dv->path_or_inline_dv.c_str());
  w.Key("offset");
  if (dv->offset) {
    w.Int(*dv->offset);
  } else {
    w.Null();
  }
  w.Key("sizeInBytes");
  w.Int(dv->size_in_bytes);
  w.Key("cardinality");
  w.Int64(dv->cardinality);
  w.EndObject();
}

void OptInt64(Writer& w, const std::optional<int64_t>& v) {
  if (v) {
    w.Int64(*v);
  } else {
    w.Null();
  }
}

std::shared_ptr<arrow::DataType> StrMap() { return arrow::map(arrow::utf8(), arrow::utf8()); }

std::shared_ptr<arrow::DataType> DvType() {
  return arrow::struct_(
      {arrow::field("storageType", arrow::utf8()), arrow::field("pathOrInlineDv", arrow::utf8()),
       arrow::field("offset", arrow::int32()), arrow::field("sizeInBytes", arrow::int32()),
       arrow::field("cardinality", arrow::int64())});
}

}  // namespace

arrow::Result<LogActions> ParseCheckpointParquet(std::shared_ptr<arrow::Buffer> bytes,
                                                 const std::string& name) {
  LogActions out;
  ARROW_RETURN_NOT_OK(
      ParseParquetActions(std::make_shared<arrow::io::BufferReader>(std::move(bytes)), name, &out));
  return out;
}

std::shared_ptr<arrow::Schema> CheckpointSchema() {
  auto str = arrow::utf8();
  auto i64 = arrow::int64();
  return arrow::schema({
      arrow::field("txn", arrow::struct_({arrow::field("appId", str), arrow::field("version", i64),
                                          arrow::field("lastUpdated", i64)})),
      arrow::field(
          "add",
          arrow::struct_({arrow::field("path", str), arrow::field("partitionValues", StrMap()),
                          arrow::field("size", i64), arrow::field("modificationTime", i64),
                          arrow::field("dataChange", arrow::boolean()), arrow::field("stats", str),
                          arrow::field("tags", StrMap()), arrow::field("deletionVector", DvType()),
                          arrow::field("baseRowId", i64),
                          arrow::field("defaultRowCommitVersion", i64)})),
      arrow::field(
          "remove",
          arrow::struct_({arrow::field("path", str), arrow::field("deletionTimestamp", i64),
                          arrow::field("dataChange", arrow::boolean()),
                          arrow::field("extendedFileMetadata", arrow::boolean()),
                          arrow::field("partitionValues", StrMap()), arrow::field("size", i64),
                          arrow::field("deletionVector", DvType()), arrow::field("baseRowId", i64),
                          arrow::field("defaultRowCommitVersion", i64)})),
      arrow::field(
          "metaData",
          arrow::struct_(
              {arrow::field("id", str), arrow::field("name", str), arrow::field("description", str),
               arrow::field("format", arrow::struct_({arrow::field("provider", str),
                                                      arrow::field("options", StrMap())})),
               arrow::field("schemaString", str),
               arrow::field("partitionColumns", arrow::list(str)),
               arrow::field("configuration", StrMap()), arrow::field("createdTime", i64)})),
      arrow::field("protocol", arrow::struct_({arrow::field("minReaderVersion", arrow::int32()),
                                               arrow::field("minWriterVersion", arrow::int32()),
                                               arrow::field("readerFeatures", arrow::list(str)),
                                               arrow::field("writerFeatures", arrow::list(str))})),
      arrow::field("domainMetadata",
                   arrow::struct_({arrow::field("domain", str), arrow::field("configuration", str),
                                   arrow::field("removed", arrow::boolean())})),
  });
}

arrow::Result<LogActions> ReadCheckpoint(const LogStore& store, const std::vector<LogFile>& parts) {
  LogActions out;
  for (const auto& part : parts) {
    if (part.path.ends_with(".json")) {
      ARROW_ASSIGN_OR_RAISE(auto text, store.Read(part.path));
      ARROW_ASSIGN_OR_RAISE(auto actions, ParseLogJson(text, part.path));
      Append(&out, std::move(actions));
    } else {
      ARROW_RETURN_NOT_OK(ReadParquetActions(store, part.path, &out));
    }
  }
  // V2 checkpoints may keep file actions in sidecar files.
  auto sidecars = std::move(out.sidecars);
  out.sidecars.clear();
  for (const auto& s : sidecars) {
    std::string path = s.path.find("://") != std::string::npos || s.path.starts_with("/")
                           ? s.path
                           : store.log_dir() + "/_sidecars/" + s.path;
    LogActions sc;
    ARROW_RETURN_NOT_OK(ReadParquetActions(store, path, &sc));
    Append(&out, std::move(sc));
  }
  return out;
}

arrow::Result<std::shared_ptr<arrow::Table>> BuildCheckpointTable(const Snapshot& snapshot,
                                                                  int64_t tombstone_cutoff_ms) {
  auto schema = CheckpointSchema();
  // One JSON array per column, one element per action row; ArrayFromJSONString
  // builds the nested arrays (maps as [[k, v], ...]).
  std::vector<rapidjson::StringBuffer> bufs(schema->num_fields());
  std::vector<std::unique_ptr<Writer>> w;
  for (auto& b : bufs) {
    w.push_back(std::make_unique<Writer>(b));
    w.back()->StartArray();
  }
  enum { kTxn, kAdd, kRemove, kMeta, kProtocol, kDomain };
  auto row = [&](int col) {
    for (int c = 0; c < static_cast<int>(w.size()); ++c) {
      if (c != col) w[c]->Null();
    }
    return w[col].get();
  };
  {
    Writer* x = row(kProtocol);
    const auto& p = snapshot.protocol();
    x->StartObject();
    x->Key("minReaderVersion");
    x->Int(p.min_reader_version);
    x->Key("minWriterVersion");
    x->Int(p.min_writer_version);
    auto list = [&](const char* key, const std::optional<std::vector<std::string>>& l) {
      x->Key(key);
      if (!l) {
        x->Null();
        return;
      }
      x->StartArray();
      for (const auto& f : *l) x->String(f.c_str());
      x->EndArray();
    };
    list("readerFeatures", p.reader_features);
    list("writerFeatures", p.writer_features);
    x->EndObject();
  }
  {
    Writer* x = row(kMeta);
    const auto& m = snapshot.metadata();
    x->StartObject();
    x->Key("id");
    x->String(m.id.c_str());
    x->Key("name");
    if (m.name)
      x->String(m.name->c_str());
    else
      x->Null();
    x->Key("description");
    if (m.description)
      x->String(m.description->c_str());
    else
      x->Null();
    x->Key("format");
    x->StartObject();
    x->Key("provider");
    x->String(m.format_provider.c_str());
    x->Key("options");
    PairsJson(*x, m.format_options);
    x->EndObject();
    x->Key("schemaString");
    x->String(m.schema_string.c_str(), static_cast<rapidjson::SizeType>(m.schema_string.size()));
    x->Key("partitionColumns");
    x->StartArray();
    for (const auto& c : m.partition_columns) x->String(c.c_str());
    x->EndArray();
    x->Key("configuration");
    PairsJson(*x, m.configuration);
    x->Key("createdTime");
    OptInt64(*x, m.created_time);
    x->EndObject();
  }
  for (const auto& [app, t] : snapshot.app_transactions()) {
    Writer* x = row(kTxn);
    x->StartObject();
    x->Key("appId");
    x->String(t.app_id.c_str());
    x->Key("version");
    x->Int64(t.version);
    x->Key("lastUpdated");
    OptInt64(*x, t.last_updated);
    x->EndObject();
  }
  for (const auto& [name, d] : snapshot.domain_metadata()) {
    Writer* x = row(kDomain);
    x->StartObject();
    x->Key("domain");
    x->String(d.domain.c_str());
    x->Key("configuration");
    x->String(d.configuration.c_str());
    x->Key("removed");
    x->Bool(false);
    x->EndObject();
  }
  for (const auto& a : snapshot.files()) {
    Writer* x = row(kAdd);
    x->StartObject();
    x->Key("path");
    x->String(a.path.c_str(), static_cast<rapidjson::SizeType>(a.path.size()));
    x->Key("partitionValues");
    PartitionJson(*x, a.partition_values);
    x->Key("size");
    x->Int64(a.size);
    x->Key("modificationTime");
    x->Int64(a.modification_time);
    x->Key("dataChange");
    x->Bool(false);  // checkpoints record the state, not a change
    x->Key("stats");
    if (a.stats.empty()) {
      x->Null();
    } else {
      x->String(a.stats.c_str(), static_cast<rapidjson::SizeType>(a.stats.size()));
    }
    x->Key("tags");
    if (a.tags.empty())
      x->Null();
    else
      PairsJson(*x, a.tags);
    x->Key("deletionVector");
    DvJson(*x, a.deletion_vector);
    x->Key("baseRowId");
    OptInt64(*x, a.base_row_id);
    x->Key("defaultRowCommitVersion");
    OptInt64(*x, a.default_row_commit_version);
    x->EndObject();
  }
  for (const auto& r : snapshot.tombstones()) {
    if (r.deletion_timestamp.value_or(0) < tombstone_cutoff_ms) continue;
    Writer* x = row(kRemove);
    x->StartObject();
    x->Key("path");
    x->String(r.path.c_str(), static_cast<rapidjson::SizeType>(r.path.size()));
    x->Key("deletionTimestamp");
    OptInt64(*x, r.deletion_timestamp);
    x->Key("dataChange");
    x->Bool(false);
    x->Key("extendedFileMetadata");
    if (r.extended_file_metadata)
      x->Bool(*r.extended_file_metadata);
    else
      x->Null();
    x->Key("partitionValues");
    if (r.partition_values)
      PartitionJson(*x, *r.partition_values);
    else
      x->Null();
    x->Key("size");
    OptInt64(*x, r.size);
    x->Key("deletionVector");
    DvJson(*x, r.deletion_vector);
    x->Key("baseRowId");
    OptInt64(*x, r.base_row_id);
    x->Key("defaultRowCommitVersion");
    OptInt64(*x, r.default_row_commit_version);
    x->EndObject();
  }
  arrow::ArrayVector columns;
  for (int c = 0; c < schema->num_fields(); ++c) {
    w[c]->EndArray();
    ARROW_ASSIGN_OR_RAISE(auto arr, arrow::json::ArrayFromJSONString(
                                        schema->field(c)->type(),
                                        std::string_view(bufs[c].GetString(), bufs[c].GetSize())));
    columns.push_back(std::move(arr));
  }
  return arrow::Table::Make(schema, columns);
}

arrow::Result<int64_t> WriteCheckpoint(const LogStore& store, const Snapshot& snapshot,
                                       int64_t now_ms) {
  ARROW_ASSIGN_OR_RAISE(
      int64_t retention,
      ParseIntervalMs(snapshot.Property("delta.deletedFileRetentionDuration", "interval 1 week")));
  ARROW_ASSIGN_OR_RAISE(auto table, BuildCheckpointTable(snapshot, now_ms - retention));
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  auto props =
      parquet::WriterProperties::Builder().compression(parquet::Compression::SNAPPY)->build();
  ARROW_RETURN_NOT_OK(
      parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), sink, 1 << 20, props));
  ARROW_ASSIGN_OR_RAISE(auto buf, sink->Finish());
  char name[64];
  std::snprintf(name, sizeof name, "%020lld.checkpoint.parquet",
                static_cast<long long>(snapshot.version()));
  std::string path = store.log_dir() + "/" + name;
  // Another writer may have checkpointed the same version already: same content.
  auto st = store.PutIfAbsent(path, buf->ToString());
  if (!st.ok() && !st.IsAlreadyExists()) return st;
  std::string last = "{\"version\":" + std::to_string(snapshot.version()) +
                     ",\"size\":" + std::to_string(table->num_rows()) +
                     ",\"sizeInBytes\":" + std::to_string(buf->size()) +
                     ",\"numOfAddFiles\":" + std::to_string(snapshot.files().size()) + "}";
  ARROW_RETURN_NOT_OK(store.PutAtomic(store.log_dir() + "/_last_checkpoint", last));
  return snapshot.version();
}

}  // namespace stratalake::delta
