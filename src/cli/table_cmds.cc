// The Delta table commands of the `stratalake` CLI: create, write, read,
// merge, delete, update, history, describe, files, restore, vacuum, optimize,
// checkpoint, cleanup-log, set-property (`stratalake [table] COMMAND PATH`).
// Errors exit by kind: 1 other, 2 usage, 3 table/version not found, 4 commit
// conflict, 5 schema/constraint, 6 unsupported feature, 7 corrupt log.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/api.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "commands.h"
#include "stratalake/delta.h"
#include "stratalake/ingest.h"
#include "stratalake/status.h"

namespace stratalake::cli {

namespace {

using namespace stratalake::delta;

const char* kUsage = R"USAGE(usage: stratalake table COMMAND PATH [options]

Commands (PATH is a local path, file:// or s3:// URI):
  create   PATH --schema "id:long not null,name:string,ts:timestamp" [--partition-by a,b]
                [--property k=v]... [--name N] [--description D]
  write    PATH --input FILE(.parquet|.csv|.json) [--mode append|overwrite|error|ignore]
                [--partition-by a,b] [--where PRED] [--merge-schema] [--overwrite-schema]
                [--app-id ID --app-version N] [--compression snappy|zstd|gzip|lz4|none]
                [--max-rows-per-file N] [--user-metadata TEXT]
  read     PATH [--version N | --timestamp TS] [--columns a,b] [--filter PRED]
                [--output FILE(.parquet|.csv)] [--limit N]
  merge    PATH --source FILE --on k1[,k2] [--delete-when COND] [--update-all | --update-set SETS]
                [--update-when COND] [--insert] [--insert-when COND] [--merge-schema]
  delete   PATH [--where PRED]
  update   PATH --set "a = a + 1, b = 'x'" [--where PRED]
  history  PATH [--limit N]
  describe PATH [--version N | --timestamp TS]
  files    PATH [--version N] [--filter PRED]
  restore  PATH (--version N | --timestamp TS)
  vacuum   PATH [--retention-hours N] [--dry-run] [--force]
  optimize PATH [--where PRED] [--target-size BYTES] [--zorder-by a,b]
  checkpoint PATH | cleanup-log PATH | set-property PATH k=v [k=v...]
Every command takes --json for machine-readable output, and --allow-external-paths to
  read data files the log names outside the table's folder (shallow clones).
Predicates: comparisons, IN, BETWEEN, IS [NOT] NULL, LIKE, AND/OR/NOT, + - * /,
  e.g. "ts >= '2024-01-01' AND country IN ('DE', 'FR')". Timestamps: ISO 8601 (UTC if no
  offset) or milliseconds since the epoch.
)USAGE";

arrow::Result<int64_t> ParseInt(const std::string& what, const std::string& s) {
  if (auto v = ParseInteger(s)) return *v;
  return UsageError(what + " must be an integer, got '" + s + "'");
}

// The length in bytes of the longest line of the file at `path`.
arrow::Result<int64_t> LongestLine(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto in, arrow::io::ReadableFile::Open(path));
  int64_t longest = 0, current = 0;
  for (;;) {
    ARROW_ASSIGN_OR_RAISE(auto buf, in->Read(1 << 20));
    if (buf->size() == 0) break;
    const char* p = reinterpret_cast<const char*>(buf->data());
    for (int64_t i = 0; i < buf->size(); ++i) {
      if (p[i] == '\n') {
        longest = std::max(longest, current);
        current = 0;
      } else {
        ++current;
      }
    }
  }
  return std::max(longest, current);
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadCsv(const std::string& path,
                                                     arrow::csv::ReadOptions read_options) {
  ARROW_ASSIGN_OR_RAISE(auto input, arrow::io::ReadableFile::Open(path));
  ARROW_ASSIGN_OR_RAISE(
      auto reader, arrow::csv::TableReader::Make(arrow::io::default_io_context(), input,
                                                 read_options, arrow::csv::ParseOptions::Defaults(),
                                                 arrow::csv::ConvertOptions::Defaults()));
  return reader->Read();
}

// A CSV file as one table. Arrow's reader parses in blocks (1 MiB) and fails on
// a line longer than a block ("Empty CSV file or block" for the header,
// "straddling object" for a row); the block then grows to fit the longest line.
// It reads on this thread: the threaded reader can hang in the thread pool's
// shutdown when a row is longer than a block (apache/arrow#38676 and kin;
// pyarrow 22 still has it), a process that never exits.
arrow::Result<std::shared_ptr<arrow::Table>> ReadCsvInput(const std::string& path) {
  auto read_options = arrow::csv::ReadOptions::Defaults();
  read_options.use_threads = false;
  auto table = ReadCsv(path, read_options);
  if (table.ok()) return table;
  const std::string& msg = table.status().message();
  if (msg.find("Empty CSV file") == std::string::npos &&
      msg.find("straddles two block boundaries") == std::string::npos) {
    return table;
  }
  ARROW_ASSIGN_OR_RAISE(int64_t longest, LongestLine(path));
  if (longest == 0) {
    return arrow::Status::Invalid(
        "the file is empty: a CSV input needs a header line naming "
        "the columns");
  }
  constexpr int64_t kMaxBlock = 1LL << 30;
  if (longest + 2 > kMaxBlock) {
    return arrow::Status::Invalid(
        "a line of the file is ", longest,
        " bytes long, longer than the CSV reader's largest "
        "block (1 GiB); convert the file to Parquet or split its columns");
  }
  if (longest + 2 <= read_options.block_size) return table;  // not a block size problem
  read_options.block_size = static_cast<int32_t>(longest + 2);
  return ReadCsv(path, read_options);
}

// A column name with a NUL would be cut at it by the C strings of the Delta
// log's readers; refused, naming the column (NUL written as \0).
arrow::Status CheckColumnNames(const arrow::Schema& schema) {
  for (const auto& f : schema.fields()) {
    if (f->name().find('\0') == std::string::npos) continue;
    std::string shown;
    for (char c : f->name()) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kSchemaMismatch,
                     "column name '" + shown +
                         "' holds a NUL character, which Delta column names cannot hold; "
                         "rename the column");
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadInputFileUnnamed(const std::string& path) {
  auto ends = [&](const char* ext) {
    return path.size() >= strlen(ext) &&
           path.compare(path.size() - strlen(ext), strlen(ext), ext) == 0;
  };
  std::shared_ptr<arrow::Table> t;
  if (ends(".parquet")) {
    ARROW_ASSIGN_OR_RAISE(auto input, arrow::io::ReadableFile::Open(path));
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          parquet::arrow::OpenFile(input, arrow::default_memory_pool()));
    ARROW_RETURN_NOT_OK(reader->ReadTable(&t));
  } else if (ends(".csv")) {
    ARROW_ASSIGN_OR_RAISE(t, ReadCsvInput(path));
  } else if (ends(".json") || ends(".jsonl") || ends(".ndjson")) {
    // Names the file itself (and the line nested too deep).
    ARROW_ASSIGN_OR_RAISE(t, ReadJsonLinesFile(path));
  } else {
    return arrow::Status::Invalid("the name must end in .parquet, .csv or .json");
  }
  ARROW_RETURN_NOT_OK(CheckColumnNames(*t->schema()));
  return t;
}

// Every error names the input file ("input 'x.parquet': ...").
arrow::Result<std::shared_ptr<arrow::Table>> ReadInputFile(const std::string& path) {
  try {
    auto t = ReadInputFileUnnamed(path);
    if (t.ok()) return t;
    const std::string named = "input '" + path + "'";
    if (t.status().message().rfind(named, 0) == 0) return t;  // named already
    return t.status().WithMessage(named, ": ", t.status().message());
  } catch (const std::exception& e) {  // parquet reports some corruption by throwing
    return arrow::Status::IOError("input '", path, "': ", e.what());
  }
}

// `s` as a JSON string literal.
std::string Json(const std::string& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(buf.GetString(), buf.GetSize());
}

std::string FormatTime(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(ms % 1000));
  return out;
}

void PrintTable(const arrow::Table& table, int64_t limit) {
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> width(table.num_columns());
  std::vector<std::string> header;
  for (int c = 0; c < table.num_columns(); ++c) {
    header.push_back(table.field(c)->name());
    width[c] = header.back().size();
  }
  int64_t n = std::min<int64_t>(table.num_rows(), limit);
  for (int64_t r = 0; r < n; ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < table.num_columns(); ++c) {
      auto s = table.column(c)->GetScalar(r);
      std::string text = !s.ok() ? "?" : ((*s)->is_valid ? (*s)->ToString() : "null");
      if (text.size() > 40) text = text.substr(0, 37) + "...";
      width[c] = std::max(width[c], text.size());
      row.push_back(text);
    }
    cells.push_back(std::move(row));
  }
  auto line = [&](const std::vector<std::string>& v) {
    std::string s;
    for (size_t c = 0; c < v.size(); ++c) {
      s += (c ? " | " : "") + v[c] + std::string(width[c] - v[c].size(), ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  std::string sep;
  for (size_t c = 0; c < width.size(); ++c) sep += (c ? "-+-" : "") + std::string(width[c], '-');
  std::cout << sep << "\n";
  for (const auto& r : cells) line(r);
  std::cout << "(" << table.num_rows() << " row" << (table.num_rows() == 1 ? "" : "s");
  if (n < table.num_rows()) std::cout << ", " << n << " shown";
  std::cout << ")\n";
}

arrow::Status WriteOutput(const arrow::Table& table, const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::io::FileOutputStream::Open(path));
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0) {
    ARROW_RETURN_NOT_OK(
        arrow::csv::WriteCSV(table, arrow::csv::WriteOptions::Defaults(), out.get()));
  } else if (path.size() >= 8 && path.compare(path.size() - 8, 8, ".parquet") == 0) {
    ARROW_RETURN_NOT_OK(
        parquet::arrow::WriteTable(table, arrow::default_memory_pool(), out, 1 << 20));
  } else {
    return arrow::Status::Invalid("--output '", path, "' must end in .parquet or .csv");
  }
  return out->Close();
}

void PrintCommit(const CommitResult& r, bool json, const std::string& what) {
  if (json) {
    std::cout << "{\"version\":" << r.version << ",\"noop\":" << (r.noop ? "true" : "false")
              << ",\"metrics\":{";
    bool first = true;
    for (const auto& [k, v] : r.metrics) {
      std::cout << (first ? "" : ",") << Json(k) << ":" << v;
      first = false;
    }
    std::cout << "}}\n";
    return;
  }
  if (r.noop) {
    std::cout << what << ": nothing to commit (table stays at version " << r.version << ")\n";
    return;
  }
  std::cout << what << ": committed version " << r.version;
  if (!r.metrics.empty()) {
    std::cout << " (";
    bool first = true;
    for (const auto& [k, v] : r.metrics) {
      std::cout << (first ? "" : ", ") << k << "=" << v;
      first = false;
    }
    std::cout << ")";
  }
  std::cout << "\n";
}

arrow::Result<ReadOptions> VersionOptions(const Args& a) {
  ReadOptions ro;
  if (auto v = a.Get("--version")) {
    ARROW_ASSIGN_OR_RAISE(ro.version, ParseInt("--version", *v));
  }
  if (auto t = a.Get("--timestamp")) {
    auto ms = ParseTimestampText(*t);
    if (!ms.ok()) return UsageError("--timestamp: " + ms.status().message());
    ro.timestamp_ms = *ms;
  }
  return ro;
}

TableOpenOptions OpenOptions(const Args& a) {
  TableOpenOptions o;
  o.allow_external_paths = a.Has("--allow-external-paths");
  return o;
}

arrow::Status CmdCreate(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  auto spec = a.Get("--schema");
  if (!spec) return UsageError("create needs --schema");
  CreateOptions co;
  ARROW_ASSIGN_OR_RAISE(co.schema, ParseSchemaSpec(*spec));
  if (auto p = a.Get("--partition-by")) co.partition_columns = SplitList(*p);
  if (a.opts.count("--property")) {
    for (const auto& kv : a.GetAll("--property")) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) return UsageError("--property must be key=value");
      co.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  if (auto n = a.Get("--name")) co.name = *n;
  if (auto d = a.Get("--description")) co.description = *d;
  ARROW_ASSIGN_OR_RAISE(auto t, DeltaTable::Create(path, co));
  if (json) {
    std::cout << "{\"version\":0}\n";
  } else {
    std::cout << "created Delta table at " << t->root() << " (version 0)\n";
  }
  return arrow::Status::OK();
}

arrow::Status CmdWrite(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  auto input = a.Get("--input");
  if (!input) return UsageError("write needs --input FILE");
  ARROW_ASSIGN_OR_RAISE(auto data, ReadInputFile(*input));
  WriteOptions wo;
  std::string mode = a.GetOr("--mode", "append");
  if (mode == "append")
    wo.mode = WriteMode::kAppend;
  else if (mode == "overwrite")
    wo.mode = WriteMode::kOverwrite;
  else if (mode == "error")
    wo.mode = WriteMode::kErrorIfExists;
  else if (mode == "ignore")
    wo.mode = WriteMode::kIgnore;
  else
    return UsageError("--mode must be append, overwrite, error or ignore");
  if (auto p = a.Get("--partition-by")) wo.partition_by = SplitList(*p);
  wo.replace_where = a.GetOr("--where", "");
  wo.merge_schema = a.Has("--merge-schema");
  wo.overwrite_schema = a.Has("--overwrite-schema");
  if (auto c = a.Get("--compression")) wo.compression = *c;
  if (auto m = a.Get("--max-rows-per-file")) {
    ARROW_ASSIGN_OR_RAISE(wo.max_rows_per_file, ParseInt("--max-rows-per-file", *m));
  }
  if (auto u = a.Get("--user-metadata")) wo.user_metadata = *u;
  if (a.Has("--app-id") != a.Has("--app-version"))
    return UsageError("--app-id and --app-version go together");
  if (auto id = a.Get("--app-id")) {
    ARROW_ASSIGN_OR_RAISE(int64_t app_version, ParseInt("--app-version", *a.Get("--app-version")));
    wo.txn = AppTransaction{*id, app_version, std::nullopt};
  }
  ARROW_ASSIGN_OR_RAISE(auto t, DeltaTable::ForPath(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(auto r, t->Write(data, wo));
  PrintCommit(r, json, "write");
  return arrow::Status::OK();
}

arrow::Status CmdRead(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(ReadOptions ro, VersionOptions(a));
  if (auto c = a.Get("--columns")) ro.columns = SplitList(*c);
  ro.filter = a.GetOr("--filter", "");
  ARROW_ASSIGN_OR_RAISE(auto rows, table->Read(ro));
  if (auto out = a.Get("--output")) {
    ARROW_RETURN_NOT_OK(WriteOutput(*rows, *out));
    if (json) {
      std::cout << "{\"rows\":" << rows->num_rows() << ",\"output\":" << Json(*out) << "}\n";
    } else {
      std::cout << "wrote " << rows->num_rows() << " rows to " << *out << "\n";
    }
  } else {
    ARROW_ASSIGN_OR_RAISE(int64_t limit, ParseInt("--limit", a.GetOr("--limit", "50")));
    PrintTable(*rows, limit);
  }
  return arrow::Status::OK();
}

arrow::Status CmdMerge(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  auto src = a.Get("--source");
  auto on = a.Get("--on");
  if (!src || !on) return UsageError("merge needs --source FILE and --on KEYS");
  ARROW_ASSIGN_OR_RAISE(auto source, ReadInputFile(*src));
  MergeOptions mo;
  mo.on = SplitList(*on);
  mo.merge_schema = a.Has("--merge-schema");
  if (auto d = a.Get("--delete-when"))
    mo.when_matched.push_back({MatchedClause::Action::kDelete, *d, ""});
  if (a.Has("--update-all")) {
    mo.when_matched.push_back(
        {MatchedClause::Action::kUpdateAll, a.GetOr("--update-when", ""), ""});
  } else if (auto s = a.Get("--update-set")) {
    mo.when_matched.push_back({MatchedClause::Action::kUpdate, a.GetOr("--update-when", ""), *s});
  }
  if (a.Has("--insert") || a.Has("--insert-when"))
    mo.when_not_matched.push_back({a.GetOr("--insert-when", "")});
  if (mo.when_matched.empty() && mo.when_not_matched.empty()) {
    return UsageError(
        "merge needs at least one of --update-all, --update-set, --delete-when, --insert");
  }
  ARROW_ASSIGN_OR_RAISE(auto r, table->Merge(source, mo));
  PrintCommit(r, json, "merge");
  return arrow::Status::OK();
}

arrow::Status CmdDelete(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(auto r, table->Delete(a.GetOr("--where", "")));
  PrintCommit(r, json, "delete");
  return arrow::Status::OK();
}

arrow::Status CmdUpdate(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  auto set = a.Get("--set");
  if (!set) return UsageError("update needs --set");
  ARROW_ASSIGN_OR_RAISE(auto r, table->Update(a.GetOr("--where", ""), *set));
  PrintCommit(r, json, "update");
  return arrow::Status::OK();
}

arrow::Status CmdHistory(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(int64_t limit, ParseInt("--limit", a.GetOr("--limit", "0")));
  ARROW_ASSIGN_OR_RAISE(auto hist, table->History(limit));
  if (!hist.empty()) {
    // History shows what it can read of each commit; the newest commit must
    // parse whole, or the table's latest version is unreadable and history says
    // so (kCorruptLog naming the file) instead of listing it as if all were well.
    ARROW_RETURN_NOT_OK(VerifyCommitFile(*table, hist[0].version));
  }
  if (json) {
    std::cout << "[";
    for (size_t i = 0; i < hist.size(); ++i) {
      const auto& h = hist[i];
      std::cout << (i ? "," : "") << "{\"version\":" << h.version
                << ",\"timestamp\":" << h.timestamp << ",\"operation\":" << Json(h.operation)
                << ",\"commitInfo\":" << h.json << "}";
    }
    std::cout << "]\n";
  } else {
    for (const auto& h : hist) {
      std::cout << "version " << h.version << "  " << FormatTime(h.timestamp) << "  "
                << h.operation;
      for (const auto& [k, v] : h.operation_parameters) std::cout << "  " << k << "=" << v;
      if (!h.operation_metrics.empty()) {
        std::cout << "  [";
        bool first = true;
        for (const auto& [k, v] : h.operation_metrics) {
          std::cout << (first ? "" : ", ") << k << "=" << v;
          first = false;
        }
        std::cout << "]";
      }
      if (h.user_metadata) std::cout << "  userMetadata=" << *h.user_metadata;
      std::cout << "\n";
    }
  }
  return arrow::Status::OK();
}

arrow::Status CmdDescribeOrFiles(const Args& a, const std::string& path, bool files) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(auto version, VersionOptions(a));
  ARROW_ASSIGN_OR_RAISE(auto snap, table->Load(version));
  if (files) {
    ARROW_ASSIGN_OR_RAISE(auto plan, table->PlanScan(*snap, a.GetOr("--filter", "")));
    if (json) {
      std::cout << "{\"version\":" << snap->version() << ",\"total_files\":" << plan.total_files
                << ",\"skipped_by_partition\":" << plan.skipped_by_partition
                << ",\"skipped_by_stats\":" << plan.skipped_by_stats << ",\"files\":[";
      for (size_t i = 0; i < plan.files.size(); ++i) {
        const auto& f = plan.files[i];
        std::cout << (i ? "," : "") << "{\"path\":" << Json(f.path) << ",\"size\":" << f.size
                  << ",\"modification_time\":" << f.modification_time
                  << ",\"has_deletion_vector\":" << (f.deletion_vector ? "true" : "false")
                  << ",\"partition_values\":{";
        bool first = true;
        for (const auto& [k, v] : f.partition_values) {
          std::cout << (first ? "" : ",") << Json(k) << ":" << (v ? Json(*v) : "null");
          first = false;
        }
        std::cout << "}}";
      }
      std::cout << "]}\n";
    } else {
      for (const auto& f : plan.files) std::cout << f.path << "  " << f.size << " bytes\n";
      std::cout << plan.files.size() << " of " << plan.total_files << " files ("
                << plan.skipped_by_partition << " pruned by partition, " << plan.skipped_by_stats
                << " skipped by statistics)\n";
    }
    return arrow::Status::OK();
  }
  const auto& md = snap->metadata();
  const auto& p = snap->protocol();
  if (json) {
    std::cout << "{\"path\":" << Json(table->root()) << ",\"version\":" << snap->version()
              << ",\"timestamp\":" << snap->timestamp_ms() << ",\"id\":" << Json(md.id)
              << ",\"name\":" << (md.name ? Json(*md.name) : "null")
              << ",\"description\":" << (md.description ? Json(*md.description) : "null")
              << ",\"schema\":" << md.schema_string << ",\"partition_columns\":[";
    for (size_t i = 0; i < md.partition_columns.size(); ++i)
      std::cout << (i ? "," : "") << Json(md.partition_columns[i]);
    std::cout << "],\"properties\":{";
    bool first = true;
    for (const auto& [k, v] : md.configuration) {
      std::cout << (first ? "" : ",") << Json(k) << ":" << Json(v);
      first = false;
    }
    std::cout << "},\"min_reader_version\":" << p.min_reader_version
              << ",\"min_writer_version\":" << p.min_writer_version
              << ",\"num_files\":" << snap->files().size()
              << ",\"size_bytes\":" << snap->SizeInBytes()
              << ",\"num_records\":" << snap->NumRecords() << ",\"app_transactions\":{";
    first = true;
    for (const auto& [app, t] : snap->app_transactions()) {
      std::cout << (first ? "" : ",") << Json(app) << ":" << t.version;
      first = false;
    }
    std::cout << "}}\n";
  } else {
    std::cout << "table:       " << table->root() << "\n"
              << "version:     " << snap->version() << " (" << FormatTime(snap->timestamp_ms())
              << ")\n";
    if (md.name) std::cout << "name:        " << *md.name << "\n";
    if (md.description) std::cout << "description: " << *md.description << "\n";
    std::cout << "protocol:    reader " << p.min_reader_version << ", writer "
              << p.min_writer_version << "\n";
    std::cout << "files:       " << snap->files().size() << " (" << snap->SizeInBytes()
              << " bytes, " << snap->NumRecords() << " rows)\n";
    std::cout << "partitioned: ";
    for (const auto& c : md.partition_columns) std::cout << c << " ";
    std::cout << (md.partition_columns.empty() ? "no\n" : "\n");
    std::cout << "schema:\n";
    for (const auto& f : snap->schema()->fields()) {
      std::cout << "  " << f->name() << ": " << DeltaTypeName(*f->type())
                << (f->nullable() ? "" : " not null") << "\n";
    }
    if (!md.configuration.empty()) {
      std::cout << "properties:\n";
      for (const auto& [k, v] : md.configuration) std::cout << "  " << k << " = " << v << "\n";
    }
  }
  return arrow::Status::OK();
}

arrow::Status CmdRestore(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  CommitResult r;
  if (auto v = a.Get("--version")) {
    ARROW_ASSIGN_OR_RAISE(int64_t version, ParseInt("--version", *v));
    ARROW_ASSIGN_OR_RAISE(r, table->Restore(version));
  } else if (auto t = a.Get("--timestamp")) {
    ARROW_ASSIGN_OR_RAISE(auto ms, ParseTimestampText(*t));
    ARROW_ASSIGN_OR_RAISE(r, table->RestoreToTimestamp(ms));
  } else {
    return UsageError("restore needs --version or --timestamp");
  }
  PrintCommit(r, json, "restore");
  return arrow::Status::OK();
}

arrow::Status CmdVacuum(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  VacuumOptions vo;
  if (auto h = a.Get("--retention-hours")) {
    ARROW_ASSIGN_OR_RAISE(vo.retention_hours, ParseInt("--retention-hours", *h));
  }
  vo.dry_run = a.Has("--dry-run");
  vo.force = a.Has("--force");
  ARROW_ASSIGN_OR_RAISE(auto r, table->Vacuum(vo));
  if (json) {
    std::cout << "{\"dry_run\":" << (vo.dry_run ? "true" : "false") << ",\"bytes\":" << r.bytes
              << ",\"files\":[";
    for (size_t i = 0; i < r.files.size(); ++i) std::cout << (i ? "," : "") << Json(r.files[i]);
    std::cout << "]}\n";
  } else {
    for (const auto& f : r.files)
      std::cout << (vo.dry_run ? "would delete " : "deleted ") << f << "\n";
    std::cout << (vo.dry_run ? "vacuum (dry run): " : "vacuum: ") << r.files.size() << " files, "
              << r.bytes << " bytes" << (vo.dry_run ? " would be deleted\n" : " deleted\n");
  }
  return arrow::Status::OK();
}

arrow::Status CmdOptimize(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  OptimizeOptions oo;
  oo.where = a.GetOr("--where", "");
  if (auto s = a.Get("--target-size")) {
    ARROW_ASSIGN_OR_RAISE(oo.target_size, ParseInt("--target-size", *s));
  }
  if (auto z = a.Get("--zorder-by")) oo.zorder_by = SplitList(*z);
  ARROW_ASSIGN_OR_RAISE(auto r, table->Optimize(oo));
  PrintCommit(r, json, "optimize");
  return arrow::Status::OK();
}

arrow::Status CmdCheckpoint(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(auto v, table->Checkpoint());
  std::cout << (json ? "{\"checkpoint\":" + std::to_string(v) + "}"
                     : "checkpoint written at version " + std::to_string(v))
            << "\n";
  return arrow::Status::OK();
}

arrow::Status CmdCleanupLog(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  ARROW_ASSIGN_OR_RAISE(auto n, table->CleanupLog());
  std::cout << (json ? "{\"deleted\":" + std::to_string(n) + "}"
                     : "deleted " + std::to_string(n) + " expired log files")
            << "\n";
  return arrow::Status::OK();
}

arrow::Status CmdSetProperty(const Args& a, const std::string& path) {
  const bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open(path, OpenOptions(a)));
  std::map<std::string, std::string> props;
  for (size_t i = 1; i < a.positional.size(); ++i) {
    const std::string& kv = a.positional[i];
    auto eq = kv.find('=');
    if (eq == std::string::npos) return UsageError("set-property takes key=value pairs");
    props[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (props.empty()) return UsageError("set-property needs key=value");
  ARROW_ASSIGN_OR_RAISE(auto r, table->SetProperties(props));
  PrintCommit(r, json, "set-property");
  return arrow::Status::OK();
}

// A table command: PATH first (a usage error without it), then `run`.
Command TableCommand(std::string name, std::set<std::string> options, std::set<std::string> flags,
                     std::function<arrow::Status(const Args&, const std::string&)> run) {
  Command c;
  c.name = std::move(name);
  c.options = std::move(options);
  flags.insert("--allow-external-paths");
  c.flags = std::move(flags);
  c.help = kUsage;
  c.exit_code_by_kind = true;
  c.run = [run = std::move(run)](const Args& a) -> arrow::Status {
    if (a.positional.empty()) return UsageError("missing table PATH");
    return run(a, a.positional[0]);
  };
  return c;
}

}  // namespace

const std::string& TableUsage() {
  static const std::string usage = kUsage;
  return usage;
}

std::vector<Command> TableCommands() {
  const std::set<std::string> version = {"--version", "--timestamp"};
  return {
      TableCommand("create",
                   {"--schema", "--partition-by", "--property", "--name", "--description"}, {},
                   CmdCreate),
      TableCommand("write",
                   {"--input", "--mode", "--partition-by", "--where", "--app-id", "--app-version",
                    "--compression", "--max-rows-per-file", "--user-metadata"},
                   {"--merge-schema", "--overwrite-schema"}, CmdWrite),
      TableCommand("read",
                   {"--version", "--timestamp", "--columns", "--filter", "--output", "--limit"}, {},
                   CmdRead),
      TableCommand(
          "merge",
          {"--source", "--on", "--delete-when", "--update-set", "--update-when", "--insert-when"},
          {"--update-all", "--insert", "--merge-schema"}, CmdMerge),
      TableCommand("delete", {"--where"}, {}, CmdDelete),
      TableCommand("update", {"--set", "--where"}, {}, CmdUpdate),
      TableCommand("history", {"--limit"}, {}, CmdHistory),
      TableCommand("describe", version, {},
                   [](const Args& a, const std::string& path) {
                     return CmdDescribeOrFiles(a, path, false);
                   }),
      TableCommand(
          "files", {"--version", "--timestamp", "--filter"}, {},
          [](const Args& a, const std::string& path) { return CmdDescribeOrFiles(a, path, true); }),
      TableCommand("restore", version, {}, CmdRestore),
      TableCommand("vacuum", {"--retention-hours"}, {"--dry-run", "--force"}, CmdVacuum),
      TableCommand("optimize", {"--where", "--target-size", "--zorder-by"}, {}, CmdOptimize),
      TableCommand("checkpoint", {}, {}, CmdCheckpoint),
      TableCommand("cleanup-log", {}, {}, CmdCleanupLog),
      TableCommand("set-property", {}, {}, CmdSetProperty),
  };
}

}  // namespace stratalake::cli
