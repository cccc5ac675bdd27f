#include "storage/actions.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

using rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Parsing context: names the file and line in every error.
struct Ctx {
  const std::string& file;
  int64_t line;
  arrow::Status Error(const std::string& what) const {
    return MakeError(
        arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
        "corrupt Delta log file '" + file + "' line " + std::to_string(line) + ": " + what);
  }
};

arrow::Result<std::string> GetString(const Ctx& ctx, const Value& obj, const char* action,
                                     const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) {
    return ctx.Error(std::string(action) + " action has no string field '" + key + "'");
  }
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::optional<std::string> OptString(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::optional<int64_t> OptInt(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return std::nullopt;
  if (it->value.IsInt64()) return it->value.GetInt64();
  if (it->value.IsDouble()) {
    // Only doubles that hold an int64 exactly; anything else is not an integer field.
    double d = it->value.GetDouble();
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == static_cast<double>(static_cast<int64_t>(d))) {
      return static_cast<int64_t>(d);
    }
    return std::nullopt;
  }
  if (it->value.IsString()) {
    try {
      return std::stoll(it->value.GetString());
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

arrow::Result<int64_t> GetInt(const Ctx& ctx, const Value& obj, const char* action,
                              const char* key) {
  auto v = OptInt(obj, key);
  if (!v) return ctx.Error(std::string(action) + " action has no integer field '" + key + "'");
  return *v;
}

std::optional<bool> OptBool(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsBool()) return std::nullopt;
  return it->value.GetBool();
}

std::string ToJson(const Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// Map of string → string, where values may be JSON text of other types.
std::map<std::string, std::string> StringMap(const Value& obj, const char* key) {
  std::map<std::string, std::string> out;
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsObject()) return out;
  for (auto& m : it->value.GetObject()) {
    std::string k(m.name.GetString(), m.name.GetStringLength());
    if (m.value.IsString()) {
      out[k] = std::string(m.value.GetString(), m.value.GetStringLength());
    } else {
      out[k] = ToJson(m.value);
    }
  }
  return out;
}

std::optional<std::vector<std::string>> OptStringList(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsArray()) return std::nullopt;
  std::vector<std::string> out;
  for (auto& v : it->value.GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

arrow::Result<PartitionValues> GetPartitionValues(const Ctx& ctx, const Value& obj,
                                                  const char* action) {
  PartitionValues out;
  auto it = obj.FindMember("partitionValues");
  if (it == obj.MemberEnd() || it->value.IsNull()) return out;
  if (!it->value.IsObject())
    return ctx.Error(std::string(action) + ".partitionValues is not an object");
  for (auto& m : it->value.GetObject()) {
    std::string k(m.name.GetString(), m.name.GetStringLength());
    if (m.value.IsNull()) {
      out[k] = std::nullopt;
    } else if (m.value.IsString()) {
      out[k] = std::string(m.value.GetString(), m.value.GetStringLength());
    } else {
      out[k] = ToJson(m.value);
    }
  }
  return out;
}

arrow::Result<std::optional<DeletionVector>> GetDeletionVector(const Ctx& ctx, const Value& obj) {
  auto it = obj.FindMember("deletionVector");
  if (it == obj.MemberEnd() || it->value.IsNull()) return std::optional<DeletionVector>();
  if (!it->value.IsObject()) return ctx.Error("deletionVector is not an object");
  const Value& dv = it->value;
  DeletionVector out;
  ARROW_ASSIGN_OR_RAISE(out.storage_type, GetString(ctx, dv, "deletionVector", "storageType"));
  ARROW_ASSIGN_OR_RAISE(out.path_or_inline_dv,
                        GetString(ctx, dv, "deletionVector", "pathOrInlineDv"));
  auto off = OptInt(dv, "offset");
  if (off) out.offset = static_cast<int32_t>(*off);
  ARROW_ASSIGN_OR_RAISE(auto size, GetInt(ctx, dv, "deletionVector", "sizeInBytes"));
  out.size_in_bytes = static_cast<int32_t>(size);
  ARROW_ASSIGN_OR_RAISE(out.cardinality, GetInt(ctx, dv, "deletionVector", "cardinality"));
  return std::optional<DeletionVector>(std::move(out));
}

arrow::Status ParseAction(const Ctx& ctx, const Value& doc, LogActions* out) {
  if (!doc.IsObject()) return ctx.Error("line is not a JSON object");
  for (auto& member : doc.GetObject()) {
    std::string_view type(member.name.GetString(), member.name.GetStringLength());
    const Value& v = member.value;
    if (type == "commitInfo") {
      if (!v.IsObject()) return ctx.Error("commitInfo is not an object");
      CommitInfo ci;
      ci.timestamp = OptInt(v, "timestamp").value_or(0);
      ci.operation = OptString(v, "operation").value_or("");
      ci.operation_parameters = StringMap(v, "operationParameters");
      ci.operation_metrics = StringMap(v, "operationMetrics");
      ci.user_metadata = OptString(v, "userMetadata");
      ci.is_blind_append = OptBool(v, "isBlindAppend");
      ci.read_version = OptInt(v, "readVersion");
      ci.engine_info = OptString(v, "engineInfo").value_or("");
      ci.json = ToJson(v);
      out->in_commit_timestamp = OptInt(v, "inCommitTimestamp");
      out->commit_info = std::move(ci);
      continue;
    }
    if (!v.IsObject()) {
      // Unknown or malformed action payload: known action types must be objects.
      if (type == "add" || type == "remove" || type == "metaData" || type == "protocol" ||
          type == "txn") {
        return ctx.Error(std::string(type) + " action is not an object");
      }
      continue;
    }
    if (type == "add") {
      AddFile add;
      ARROW_ASSIGN_OR_RAISE(add.path, GetString(ctx, v, "add", "path"));
      ARROW_ASSIGN_OR_RAISE(add.partition_values, GetPartitionValues(ctx, v, "add"));
      ARROW_ASSIGN_OR_RAISE(add.size, GetInt(ctx, v, "add", "size"));
      add.modification_time = OptInt(v, "modificationTime").value_or(0);
      add.data_change = OptBool(v, "dataChange").value_or(true);
      add.stats = OptString(v, "stats").value_or("");
      add.tags = StringMap(v, "tags");
      ARROW_ASSIGN_OR_RAISE(add.deletion_vector, GetDeletionVector(ctx, v));
      add.base_row_id = OptInt(v, "baseRowId");
      add.default_row_commit_version = OptInt(v, "defaultRowCommitVersion");
      add.clustering_provider = OptString(v, "clusteringProvider");
      out->adds.push_back(std::move(add));
    } else if (type == "remove") {
      RemoveFile rm;
      ARROW_ASSIGN_OR_RAISE(rm.path, GetString(ctx, v, "remove", "path"));
      rm.deletion_timestamp = OptInt(v, "deletionTimestamp");
      rm.data_change = OptBool(v, "dataChange").value_or(true);
      rm.extended_file_metadata = OptBool(v, "extendedFileMetadata");
      if (v.HasMember("partitionValues")) {
        ARROW_ASSIGN_OR_RAISE(auto pv, GetPartitionValues(ctx, v, "remove"));
        rm.partition_values = std::move(pv);
      }
      rm.size = OptInt(v, "size");
      ARROW_ASSIGN_OR_RAISE(rm.deletion_vector, GetDeletionVector(ctx, v));
      rm.base_row_id = OptInt(v, "baseRowId");
      rm.default_row_commit_version = OptInt(v, "defaultRowCommitVersion");
      rm.stats = OptString(v, "stats").value_or("");
      out->removes.push_back(std::move(rm));
    } else if (type == "metaData") {
      Metadata md;
      ARROW_ASSIGN_OR_RAISE(md.id, GetString(ctx, v, "metaData", "id"));
      md.name = OptString(v, "name");
      md.description = OptString(v, "description");
      auto fmt = v.FindMember("format");
      if (fmt != v.MemberEnd() && fmt->value.IsObject()) {
        md.format_provider = OptString(fmt->value, "provider").value_or("parquet");
        md.format_options = StringMap(fmt->value, "options");
      }
      // Early Delta writers left the schema of empty tables unset.
      md.schema_string = OptString(v, "schemaString").value_or(R"({"type":"struct","fields":[]})");
      auto pcols = OptStringList(v, "partitionColumns");
      if (!pcols) return ctx.Error("metaData action has no list field 'partitionColumns'");
      md.partition_columns = std::move(*pcols);
      md.configuration = StringMap(v, "configuration");
      md.created_time = OptInt(v, "createdTime");
      out->metadata = std::move(md);
    } else if (type == "protocol") {
      Protocol p;
      ARROW_ASSIGN_OR_RAISE(auto r, GetInt(ctx, v, "protocol", "minReaderVersion"));
      ARROW_ASSIGN_OR_RAISE(auto w, GetInt(ctx, v, "protocol", "minWriterVersion"));
      p.min_reader_version = static_cast<int32_t>(r);
      p.min_writer_version = static_cast<int32_t>(w);
      p.reader_features = OptStringList(v, "readerFeatures");
      p.writer_features = OptStringList(v, "writerFeatures");
      out->protocol = std::move(p);
    } else if (type == "txn") {
      AppTransaction t;
      ARROW_ASSIGN_OR_RAISE(t.app_id, GetString(ctx, v, "txn", "appId"));
      ARROW_ASSIGN_OR_RAISE(t.version, GetInt(ctx, v, "txn", "version"));
      t.last_updated = OptInt(v, "lastUpdated");
      out->txns.push_back(std::move(t));
    } else if (type == "domainMetadata") {
      DomainMetadata d;
      ARROW_ASSIGN_OR_RAISE(d.domain, GetString(ctx, v, "domainMetadata", "domain"));
      d.configuration = OptString(v, "configuration").value_or("");
      d.removed = OptBool(v, "removed").value_or(false);
      out->domains.push_back(std::move(d));
    } else if (type == "sidecar") {
      Sidecar s;
      ARROW_ASSIGN_OR_RAISE(s.path, GetString(ctx, v, "sidecar", "path"));
      s.size_in_bytes = OptInt(v, "sizeInBytes").value_or(0);
      s.modification_time = OptInt(v, "modificationTime").value_or(0);
      out->sidecars.push_back(std::move(s));
    } else if (type == "checkpointMetadata") {
      out->has_checkpoint_metadata = true;
    }
    // cdc and unknown actions do not affect the snapshot.
  }
  return arrow::Status::OK();
}

void WriteStringMap(Writer& w, const std::map<std::string, std::string>& m) {
  w.StartObject();
  for (const auto& [k, v] : m) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  }
  w.EndObject();
}

void WritePartitionValues(Writer& w, const PartitionValues& pv) {
  w.StartObject();
  for (const auto& [k, v] : pv) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    if (v) {
      w.String(v->data(), static_cast<rapidjson::SizeType>(v->size()));
    } else {
      w.Null();
    }
  }
  w.EndObject();
}

void WriteStr(Writer& w, const char* key, const std::string& v) {
  w.Key(key);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

void WriteDv(Writer& w, const DeletionVector& dv) {
  w.Key("deletionVector");
  w.StartObject();
  WriteStr(w, "storageType", dv.storage_type);
  WriteStr(w, "pathOrInlineDv", dv.path_or_inline_dv);
  if (dv.offset) {
    w.Key("offset");
    w.Int(*dv.offset);
  }
  w.Key("sizeInBytes");
  w.Int(dv.size_in_bytes);
  w.Key("cardinality");
  w.Int64(dv.cardinality);
  w.EndObject();
}

std::string Done(rapidjson::StringBuffer& buf) {
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

arrow::Result<std::optional<CommitInfo>> ParseCommitInfo(std::string_view content,
                                                         const std::string& file_name) {
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find("\"commitInfo\"") == std::string_view::npos) continue;
    rapidjson::Document doc;
    if (!json::ParseJson<rapidjson::kParseStopWhenDoneFlag>(&doc, line).ok()) continue;
    if (!doc.IsObject() || !doc.HasMember("commitInfo")) continue;
    rapidjson::Document only;
    only.SetObject();
    only.AddMember("commitInfo", doc["commitInfo"], only.GetAllocator());
    LogActions out;
    ARROW_RETURN_NOT_OK(ParseAction(Ctx{file_name, line_no}, only, &out));
    if (out.commit_info && out.in_commit_timestamp)
      out.commit_info->timestamp = *out.in_commit_timestamp;
    return out.commit_info;
  }
  return std::optional<CommitInfo>();
}

arrow::Result<LogActions> ParseLogJson(std::string_view content, const std::string& file_name) {
  LogActions out;
  int64_t line_no = 0;
  int64_t actions = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    // Tolerate blank lines and a trailing '\r'.
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    Ctx ctx{file_name, line_no};
    // Nesting no Delta action has (a hostile or damaged line) is refused before
    // RapidJSON's recursive parser sees it.
    arrow::Status deep = json::CheckDepth(line, json::kDefaultMaxDepth);
    if (!deep.ok()) return ctx.Error(deep.message() + " (not a Delta log file)");
    rapidjson::Document doc;
    // No kParseStopWhenDoneFlag: content after the object ("{...}GARBAGE" or two
    // objects on one line) is an error, not silently dropped.
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
    if (doc.HasParseError()) {
      return ctx.Error(std::string("invalid JSON at column ") +
                       std::to_string(doc.GetErrorOffset() + 1) + ": " +
                       rapidjson::GetParseError_En(doc.GetParseError()) +
                       " (the file may be truncated or not a Delta log file)");
    }
    ARROW_RETURN_NOT_OK(ParseAction(ctx, doc, &out));
    ++actions;
  }
  if (actions == 0) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                     "corrupt Delta log file '" + file_name +
                         "': it holds no actions (empty or blank); a commit always has at least "
                         "one action — the file was truncated or not written by a Delta writer");
  }
  return out;
}

std::string JsonQuote(std::string_view s) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return Done(buf);
}

std::string SerializeProtocol(const Protocol& p) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("protocol");
  w.StartObject();
  w.Key("minReaderVersion");
  w.Int(p.min_reader_version);
  w.Key("minWriterVersion");
  w.Int(p.min_writer_version);
  auto list = [&](const char* key, const std::optional<std::vector<std::string>>& l) {
    if (!l) return;
    w.Key(key);
    w.StartArray();
    for (const auto& f : *l) w.String(f.data(), static_cast<rapidjson::SizeType>(f.size()));
    w.EndArray();
  };
  list("readerFeatures", p.reader_features);
  list("writerFeatures", p.writer_features);
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

std::string SerializeMetadata(const Metadata& md) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("metaData");
  w.StartObject();
  WriteStr(w, "id", md.id);
  if (md.name) WriteStr(w, "name", *md.name);
  if (md.description) WriteStr(w, "description", *md.description);
  w.Key("format");
  w.StartObject();
  WriteStr(w, "provider", md.format_provider);
  w.Key("options");
  WriteStringMap(w, md.format_options);
  w.EndObject();
  WriteStr(w, "schemaString", md.schema_string);
  w.Key("partitionColumns");
  w.StartArray();
  for (const auto& c : md.partition_columns)
    w.String(c.data(), static_cast<rapidjson::SizeType>(c.size()));
  w.EndArray();
  w.Key("configuration");
  WriteStringMap(w, md.configuration);
  if (md.created_time) {
    w.Key("createdTime");
    w.Int64(*md.created_time);
  }
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

std::string SerializeAdd(const AddFile& a) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("add");
  w.StartObject();
  WriteStr(w, "path", a.path);
  w.Key("partitionValues");
  WritePartitionValues(w, a.partition_values);
  w.Key("size");
  w.Int64(a.size);
  w.Key("modificationTime");
  w.Int64(a.modification_time);
  w.Key("dataChange");
  w.Bool(a.data_change);
  if (!a.stats.empty()) WriteStr(w, "stats", a.stats);
  if (!a.tags.empty()) {
    w.Key("tags");
    WriteStringMap(w, a.tags);
  }
  if (a.deletion_vector) WriteDv(w, *a.deletion_vector);
  if (a.base_row_id) {
    w.Key("baseRowId");
    w.Int64(*a.base_row_id);
  }
  if (a.default_row_commit_version) {
    w.Key("defaultRowCommitVersion");
    w.Int64(*a.default_row_commit_version);
  }
  if (a.clustering_provider) WriteStr(w, "clusteringProvider", *a.clustering_provider);
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

std::string SerializeRemove(const RemoveFile& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("remove");
  w.StartObject();
  WriteStr(w, "path", r.path);
  if (r.deletion_timestamp) {
    w.Key("deletionTimestamp");
    w.Int64(*r.deletion_timestamp);
  }
  w.Key("dataChange");
  w.Bool(r.data_change);
  if (r.extended_file_metadata) {
    w.Key("extendedFileMetadata");
    w.Bool(*r.extended_file_metadata);
  }
  if (r.partition_values) {
    w.Key("partitionValues");
    WritePartitionValues(w, *r.partition_values);
  }
  if (r.size) {
    w.Key("size");
    w.Int64(*r.size);
  }
  if (r.deletion_vector) WriteDv(w, *r.deletion_vector);
  if (r.base_row_id) {
    w.Key("baseRowId");
    w.Int64(*r.base_row_id);
  }
  if (r.default_row_commit_version) {
    w.Key("defaultRowCommitVersion");
    w.Int64(*r.default_row_commit_version);
  }
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

std::string SerializeTxn(const AppTransaction& t) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("txn");
  w.StartObject();
  WriteStr(w, "appId", t.app_id);
  w.Key("version");
  w.Int64(t.version);
  if (t.last_updated) {
    w.Key("lastUpdated");
    w.Int64(*t.last_updated);
  }
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

std::string SerializeDomainMetadata(const DomainMetadata& d) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("domainMetadata");
  w.StartObject();
  WriteStr(w, "domain", d.domain);
  WriteStr(w, "configuration", d.configuration);
  w.Key("removed");
  w.Bool(d.removed);
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

std::string SerializeCommitInfo(const CommitInfoToWrite& info) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("commitInfo");
  w.StartObject();
  w.Key("timestamp");
  w.Int64(info.timestamp);
  WriteStr(w, "operation", info.operation);
  w.Key("operationParameters");
  w.StartObject();
  for (const auto& [k, v] : info.parameters) {
    // Spark stores every parameter as a string holding JSON text or a plain value.
    WriteStr(w, k.c_str(), v);
  }
  w.EndObject();
  if (info.read_version) {
    w.Key("readVersion");
    w.Int64(*info.read_version);
  }
  WriteStr(w, "isolationLevel", info.isolation_level);
  if (info.is_blind_append) {
    w.Key("isBlindAppend");
    w.Bool(*info.is_blind_append);
  }
  w.Key("operationMetrics");
  w.StartObject();
  for (const auto& [k, v] : info.metrics) {
    WriteStr(w, k.c_str(), std::to_string(v));
  }
  w.EndObject();
  if (info.user_metadata) WriteStr(w, "userMetadata", *info.user_metadata);
  WriteStr(w, "engineInfo", "StrataLake/0.1.0");
  WriteStr(w, "txnId", info.txn_id);
  w.EndObject();
  w.EndObject();
  return Done(buf);
}

}  // namespace stratalake::delta
