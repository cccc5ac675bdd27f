// Saved training datasets: the rows as a Delta table under datasets/, a JSON
// manifest beside it pinning everything needed to rebuild them exactly.
#include <algorithm>

#include <arrow/api.h>
#include <arrow/filesystem/api.h>
#include <arrow/io/api.h>
#include <arrow/ipc/api.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "stratalake/clock.h"
#include "stratalake/delta.h"
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

std::string ManifestPath(const repo::FeatureRepository& repo, const std::string& name) {
  return repo.TableUri("datasets/" + name + ".manifest.json");
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
  w.Key("rows");
  w.Int64(m.rows);
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
  d.Parse(text.data(), text.size());
  auto bad = [&](const std::string& what) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                     "dataset manifest " + where + " is malformed: " + what);
  };
  if (d.HasParseError() || !d.IsObject()) return bad("not a JSON object");
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
  m.rows = i("rows");
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
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return std::string(out);
}

arrow::Result<DatasetManifest> SaveDataset(const repo::FeatureRepository& repo,
                                           const std::string& name,
                                           const HistoricalRequest& request,
                                           const HistoricalResult& result) {
  if (!ValidName(name)) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                     "invalid dataset name '" + name +
                         "': use letters, digits, '_' and '-', starting with a letter");
  }
  DatasetManifest m;
  m.name = name;
  m.table_uri = repo.TableUri("datasets/" + name);
  ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(m.table_uri));
  ARROW_ASSIGN_OR_RAISE(bool exists, table->Exists());
  if (exists) {
    return MakeError(
        arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
        "dataset '" + name + "' already exists (" + m.table_uri + "); choose another name");
  }
  m.created_at_ms = Clock::System()->NowMillis();
  m.registry_version = result.registry_version;
  m.feature_refs = result.feature_refs;
  m.feature_service = request.feature_service;
  m.full_feature_names = request.full_feature_names;
  m.as_of_ms = request.as_of_ms;
  m.timestamp_column =
      request.timestamp_column.empty() ? "event_timestamp" : request.timestamp_column;
  m.entity_columns = request.entities->schema()->field_names();
  m.rows = result.table->num_rows();
  m.sources = result.sources;

  delta::WriteOptions wo;
  wo.mode = delta::WriteMode::kErrorIfExists;
  wo.user_metadata = "stratalake dataset " + name;
  ARROW_ASSIGN_OR_RAISE(auto commit, table->Write(result.table, wo));
  m.table_version = commit.version;
  // The hash covers the entity rows as stored (Delta normalizes e.g. timestamp units).
  delta::ReadOptions ro;
  ro.version = m.table_version;
  ro.columns = m.entity_columns;
  ARROW_ASSIGN_OR_RAISE(auto stored, table->Read(ro));
  ARROW_ASSIGN_OR_RAISE(m.entity_hash, ContentHash(*stored));

  std::string path;
  ARROW_ASSIGN_OR_RAISE(auto fs,
                        arrow::fs::FileSystemFromUriOrPath(ManifestPath(repo, name), &path));
  ARROW_ASSIGN_OR_RAISE(auto out, fs->OpenOutputStream(path));
  std::string json = ManifestToJson(m);
  ARROW_RETURN_NOT_OK(out->Write(json.data(), static_cast<int64_t>(json.size())));
  ARROW_RETURN_NOT_OK(out->Close());
  return m;
}

arrow::Result<DatasetManifest> LoadDatasetManifest(const repo::FeatureRepository& repo,
                                                   const std::string& name) {
  std::string path;
  std::string uri = ManifestPath(repo, name);
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow::fs::FileSystemFromUriOrPath(uri, &path));
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
  ARROW_ASSIGN_OR_RAISE(auto fs,
                        arrow::fs::FileSystemFromUriOrPath(repo.TableUri("datasets"), &base));
  arrow::fs::FileSelector sel;
  sel.base_dir = base;
  sel.allow_not_found = true;
  ARROW_ASSIGN_OR_RAISE(auto infos, fs->GetFileInfo(sel));
  std::vector<DatasetManifest> out;
  const std::string suffix = ".manifest.json";
  for (const auto& i : infos) {
    std::string n = i.base_name();
    if (!i.IsFile() || n.size() <= suffix.size() ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(auto m, LoadDatasetManifest(repo, n.substr(0, n.size() - suffix.size())));
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

arrow::Result<RecreateResult> RecreateDataset(const repo::FeatureRepository& repo,
                                              const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto m, LoadDatasetManifest(repo, name));
  ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::Open(m.table_uri));
  delta::ReadOptions ro;
  ro.version = m.table_version;
  ARROW_ASSIGN_OR_RAISE(auto saved, table->Read(ro));
  ARROW_ASSIGN_OR_RAISE(auto entities, saved->SelectColumns([&] {
    std::vector<int> idx;
    for (const auto& c : m.entity_columns) idx.push_back(saved->schema()->GetFieldIndex(c));
    return idx;
  }()));
  ARROW_ASSIGN_OR_RAISE(auto hash, ContentHash(*entities));
  HistoricalRequest req;
  req.entities = entities;
  req.timestamp_column = m.timestamp_column;
  req.feature_service = m.feature_service;
  if (m.feature_service.empty()) req.features = m.feature_refs;
  req.full_feature_names = m.full_feature_names;
  req.registry_version = m.registry_version;
  for (const auto& s : m.sources) req.source_versions[s.source] = s.version;
  auto rebuilt = GetHistoricalFeatures(repo, req);
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
  RecreateResult r;
  r.table = rebuilt->table;
  ARROW_ASSIGN_OR_RAISE(auto a, saved->CombineChunksToBatch());
  ARROW_ASSIGN_OR_RAISE(auto b, r.table->CombineChunksToBatch());
  if (hash != m.entity_hash) {
    r.difference =
        "the saved entity rows no longer match the manifest's hash (saved table changed?)";
  } else if (a->num_rows() != b->num_rows() || a->num_columns() != b->num_columns()) {
    r.difference = "shape differs: saved " + std::to_string(a->num_rows()) + "x" +
                   std::to_string(a->num_columns()) + ", recreated " +
                   std::to_string(b->num_rows()) + "x" + std::to_string(b->num_columns());
  } else {
    for (int c = 0; c < a->num_columns() && r.difference.empty(); ++c) {
      auto x = a->column(c);
      auto y = b->column(c);
      if (x->Equals(*y)) continue;
      if (!x->type()->Equals(*y->type())) {
        r.difference = "column '" + a->schema()->field(c)->name() + "' type " +
                       x->type()->ToString() + " vs " + y->type()->ToString();
        break;
      }
      for (int64_t i = 0; i < x->length(); ++i) {
        if (!x->RangeEquals(*y, i, i + 1, i)) {
          auto sx = x->GetScalar(i);
          auto sy = y->GetScalar(i);
          r.difference = "row " + std::to_string(i) + " column '" + a->schema()->field(c)->name() +
                         "': saved " + (sx.ok() ? (*sx)->ToString() : "?") + ", recreated " +
                         (sy.ok() ? (*sy)->ToString() : "?");
          break;
        }
      }
    }
  }
  r.identical = r.difference.empty();
  return r;
}

}  // namespace stratalake::retrieval
