// delta_bench: the StrataLake side of the StrataLake-vs-delta-rs benchmark.
//
// A program that prints numbers (one JSON object per line on stdout), never a
// pass/fail test. It uses only the public API (include/stratalake/delta.h). The
// driver bench/delta_bench.py runs it as a subprocess and times delta-rs in-process
// on the same data; see docs/benchmarks.md.
//
// Every timed command takes --reps N (timed repetitions, default 1) and --warmup N
// (untimed ones first, default 0; printed with a negative "rep"), and reports wall
// seconds and the process's CPU seconds (user + system, all threads).
//
//   delta_bench write SRC.parquet TABLE [--reps N] [--max-rows-per-file N]
//                                       [--compression snappy]
//       Loads SRC into memory (not timed), then per repetition deletes TABLE (not
//       timed) and times DeltaTable::Write of the whole table into a new table.
//       The last repetition's table is kept.
//   delta_bench scan TABLE [--reps N] [--cold-cache DIR]
//       Times ForPath + Read (all columns, latest version) into one arrow::Table.
//       --cold-cache: every repetition (warm-ups too) starts with an empty read
//       cache, the folder DIR/rep-R (ConfigureReadCache, not timed), so that a
//       warm process can be timed reading an S3 table into a cold cache.
//   delta_bench selective TABLE LO HI [--reps N]
//       Times ForPath + Read with filter "id >= LO AND id < HI"; reports the files
//       the scan plan keeps (PlanScan, not timed).
//   delta_bench snapshot TABLE [--reps N]
//       Times ForPath + Latest() (log listing, newest checkpoint, JSON tail).
//   delta_bench make-commits TABLE N [--checkpoint-interval K] [--api]
//       Creates TABLE with versions 0..N, each after the first a one-row append.
//       Default (fast): v0 and v1 go through the API; v2..N reuse v1's commit as a
//       template (same bytes; new file path, txnId and readVersion) and hard-link v1's data
//       file, and DeltaTable::Checkpoint() is called at every multiple of the
//       checkpoint interval, exactly where the engine's post-commit hook would write
//       one. Without --checkpoint-interval the engine's default (10) applies.
//       --api commits every version with DeltaTable::Write instead (slow: every
//       commit lists the log, loads the snapshot and fsyncs).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/initialize.h>
#include <arrow/filesystem/s3fs.h>
#include <arrow/io/api.h>
#include <parquet/arrow/reader.h>

#include "stratalake/delta.h"
#include "stratalake/object_store.h"

namespace {

using stratalake::delta::CreateOptions;
using stratalake::delta::DeltaTable;
using stratalake::delta::ReadOptions;
using stratalake::delta::WriteMode;
using stratalake::delta::WriteOptions;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// User + system CPU seconds of this process (all threads) so far.
double CpuSeconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Times one measured region: wall seconds and CPU seconds.
struct Timer {
  Clock::time_point t0 = Clock::now();
  double c0 = CpuSeconds();
  double wall = 0, cpu = 0;
  void Stop() {
    wall = Seconds(t0, Clock::now());
    cpu = CpuSeconds() - c0;
  }
};

struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opts;
  bool Has(const std::string& k) const { return opts.count(k) > 0; }
  int64_t Int(const std::string& k, int64_t d) const {
    auto it = opts.find(k);
    return it == opts.end() ? d : std::atoll(it->second.c_str());
  }
  std::string Str(const std::string& k, const std::string& d) const {
    auto it = opts.find(k);
    return it == opts.end() ? d : it->second;
  }
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      if (s == "--api") {
        a.opts[s] = "1";
      } else if (i + 1 < argc) {
        a.opts[s] = argv[++i];
      } else {
        throw std::runtime_error("option " + s + " needs a value");
      }
    } else {
      a.pos.push_back(s);
    }
  }
  return a;
}

// A JSON line: {"op":"x","k":v,...}; values are pre-formatted JSON.
class Line {
 public:
  explicit Line(const std::string& op) {
    out_ << "{\"engine\":\"stratalake\",\"op\":\"" << op << '"';
  }
  Line& Num(const std::string& k, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    out_ << ",\"" << k << "\":" << buf;
    return *this;
  }
  Line& Int(const std::string& k, int64_t v) {
    out_ << ",\"" << k << "\":" << v;
    return *this;
  }
  Line& Str(const std::string& k, const std::string& v) {
    out_ << ",\"" << k << "\":\"" << v << '"';
    return *this;
  }
  void Print() {
    out_ << "}";
    std::cout << out_.str() << std::endl;
  }

 private:
  std::ostringstream out_;
};

arrow::Result<std::shared_ptr<arrow::Table>> LoadParquet(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto input, arrow::io::ReadableFile::Open(path));
  ARROW_ASSIGN_OR_RAISE(auto reader, parquet::arrow::OpenFile(input, arrow::default_memory_pool()));
  reader->set_use_threads(true);
  std::shared_ptr<arrow::Table> table;
  ARROW_RETURN_NOT_OK(reader->ReadTable(&table));
  // One contiguous chunk per column, like the table the driver hands to delta-rs.
  return table->CombineChunks();
}

int64_t TableBytes(const arrow::Table& t) {
  int64_t total = 0;
  for (const auto& col : t.columns()) {
    for (const auto& chunk : col->chunks()) {
      for (const auto& buf : chunk->data()->buffers) {
        if (buf) total += buf->size();
      }
    }
  }
  return total;
}

arrow::Status CmdWrite(const Args& a) {
  if (a.pos.size() != 2) return arrow::Status::Invalid("usage: write SRC.parquet TABLE");
  const std::string src = a.pos[0], dst = a.pos[1];
  ARROW_ASSIGN_OR_RAISE(auto data, LoadParquet(src));
  const int64_t warmup = a.Int("--warmup", 0), reps = warmup + a.Int("--reps", 1);
  WriteOptions opts;
  opts.mode = WriteMode::kErrorIfExists;
  opts.compression = a.Str("--compression", "snappy");
  if (a.Has("--max-rows-per-file")) opts.max_rows_per_file = a.Int("--max-rows-per-file", 0);
  for (int64_t r = 0; r < reps; ++r) {
    std::filesystem::remove_all(dst);
    ::sync();  // do not charge this run for the previous one's dirty pages
    Timer t;
    ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::ForPath(dst));
    ARROW_ASSIGN_OR_RAISE(auto result, table->Write(data, opts));
    t.Stop();
    ARROW_ASSIGN_OR_RAISE(auto snap, table->Latest());
    Line("write")
        .Int("rep", r - warmup)
        .Num("seconds", t.wall)
        .Num("cpu_seconds", t.cpu)
        .Int("rows", data->num_rows())
        .Int("in_memory_bytes", TableBytes(*data))
        .Int("files", static_cast<int64_t>(snap->files().size()))
        .Int("bytes", snap->SizeInBytes())
        .Int("version", result.version)
        .Print();
  }
  return arrow::Status::OK();
}

arrow::Status CmdScan(const Args& a) {
  if (a.pos.size() != 1) return arrow::Status::Invalid("usage: scan TABLE");
  const int64_t warmup = a.Int("--warmup", 0), reps = warmup + a.Int("--reps", 1);
  for (int64_t r = 0; r < reps; ++r) {
    if (a.Has("--cold-cache")) {
      stratalake::ReadCacheOptions cache;
      cache.dir = a.Str("--cold-cache", "") + "/rep-" + std::to_string(r);
      ARROW_RETURN_NOT_OK(stratalake::ConfigureReadCache(cache));
    }
    Timer t;
    ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::ForPath(a.pos[0]));
    ARROW_ASSIGN_OR_RAISE(auto data, table->Read(ReadOptions{}));
    t.Stop();
    Line("scan")
        .Int("rep", r - warmup)
        .Num("seconds", t.wall)
        .Num("cpu_seconds", t.cpu)
        .Int("rows", data->num_rows())
        .Int("columns", data->num_columns())
        .Int("in_memory_bytes", TableBytes(*data))
        .Print();
  }
  return arrow::Status::OK();
}

arrow::Status CmdSelective(const Args& a) {
  if (a.pos.size() != 3) return arrow::Status::Invalid("usage: selective TABLE LO HI");
  const int64_t warmup = a.Int("--warmup", 0), reps = warmup + a.Int("--reps", 1);
  ReadOptions ro;
  ro.filter = "id >= " + a.pos[1] + " AND id < " + a.pos[2];
  for (int64_t r = 0; r < reps; ++r) {
    Timer t;
    ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::ForPath(a.pos[0]));
    ARROW_ASSIGN_OR_RAISE(auto data, table->Read(ro));
    t.Stop();
    ARROW_ASSIGN_OR_RAISE(auto snap, table->Latest());
    ARROW_ASSIGN_OR_RAISE(auto plan, table->PlanScan(*snap, ro.filter));
    Line("selective")
        .Int("rep", r - warmup)
        .Num("seconds", t.wall)
        .Num("cpu_seconds", t.cpu)
        .Int("rows", data->num_rows())
        .Int("files_read", static_cast<int64_t>(plan.files.size()))
        .Int("total_files", plan.total_files)
        .Print();
  }
  return arrow::Status::OK();
}

arrow::Status CmdSnapshot(const Args& a) {
  if (a.pos.size() != 1) return arrow::Status::Invalid("usage: snapshot TABLE");
  const int64_t warmup = a.Int("--warmup", 0), reps = warmup + a.Int("--reps", 1);
  for (int64_t r = 0; r < reps; ++r) {
    Timer t;
    ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::ForPath(a.pos[0]));
    ARROW_ASSIGN_OR_RAISE(auto snap, table->Latest());
    t.Stop();
    // Exists() is one listing of _delta_log: the listing's share of the load.
    Timer lt;
    ARROW_ASSIGN_OR_RAISE(bool exists, table->Exists());
    lt.Stop();
    (void)exists;
    Line("snapshot")
        .Int("rep", r - warmup)
        .Num("seconds", t.wall)
        .Num("cpu_seconds", t.cpu)
        .Num("list_seconds", lt.wall)
        .Int("version", snap->version())
        .Int("files", static_cast<int64_t>(snap->files().size()))
        .Print();
  }
  return arrow::Status::OK();
}

// ---- make-commits --------------------------------------------------------

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RandomHex(std::mt19937_64& rng, int n) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += kHex[rng() & 15];
  return s;
}

std::string NewUuid(std::mt19937_64& rng) {
  return RandomHex(rng, 8) + "-" + RandomHex(rng, 4) + "-4" + RandomHex(rng, 3) + "-a" +
         RandomHex(rng, 3) + "-" + RandomHex(rng, 12);
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

// The string value of "key":"..." in `text` (no escapes expected in our values).
std::string JsonStringValue(const std::string& text, const std::string& key) {
  std::string pat = "\"" + key + "\":\"";
  auto pos = text.find(pat);
  if (pos == std::string::npos) return "";
  pos += pat.size();
  return text.substr(pos, text.find('"', pos) - pos);
}

std::shared_ptr<arrow::Table> OneRow(int64_t id) {
  arrow::Int64Builder ib;
  arrow::DoubleBuilder db;
  (void)ib.Append(id);
  (void)db.Append(static_cast<double>(id) * 0.5);
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("v", arrow::float64())});
  return arrow::Table::Make(schema, {ib.Finish().ValueOrDie(), db.Finish().ValueOrDie()});
}

arrow::Status CmdMakeCommits(const Args& a) {
  if (a.pos.size() != 2) return arrow::Status::Invalid("usage: make-commits TABLE N");
  const std::string path = a.pos[0];
  const int64_t n = std::atoll(a.pos[1].c_str());
  if (n < 2) return arrow::Status::Invalid("N must be at least 2");
  std::filesystem::remove_all(path);
  CreateOptions create;
  create.schema = OneRow(0)->schema();
  int64_t interval = 10;  // the engine's default delta.checkpointInterval
  if (a.Has("--checkpoint-interval")) {
    interval = a.Int("--checkpoint-interval", 10);
    create.properties["delta.checkpointInterval"] = std::to_string(interval);
  }
  auto t0 = Clock::now();
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Create(path, create));
  WriteOptions wo;
  wo.mode = WriteMode::kAppend;
  int64_t checkpoints = 0;
  if (a.Has("--api")) {
    for (int64_t v = 1; v <= n; ++v) {
      ARROW_RETURN_NOT_OK(table->Write(OneRow(v), wo).status());
      if (v % 1000 == 0) {
        Line("make-commits-progress")
            .Int("version", v)
            .Num("seconds", Seconds(t0, Clock::now()))
            .Print();
      }
    }
  } else {
    ARROW_RETURN_NOT_OK(table->Write(OneRow(1), wo).status());  // v1, the template
    const std::string root = table->root();
    const std::string log_dir = root + "/_delta_log/";
    auto commit_path = [&](int64_t v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%020lld.json", static_cast<long long>(v));
      return log_dir + buf;
    };
    const std::string tmpl = ReadFileText(commit_path(1));
    const std::string data_rel = JsonStringValue(tmpl, "path");
    const std::string txn_id = JsonStringValue(tmpl, "txnId");
    if (data_rel.empty() || data_rel.find('/') != std::string::npos ||
        data_rel.find('%') != std::string::npos) {
      return arrow::Status::Invalid("unexpected add path in v1: '", data_rel, "'");
    }
    const std::string data_abs = root + "/" + data_rel;
    const std::string ext = data_rel.substr(data_rel.find("-c000"));
    std::mt19937_64 rng(42);
    for (int64_t v = 2; v <= n; ++v) {
      std::string rel = "part-00000-" + NewUuid(rng) + ext;
      if (::link(data_abs.c_str(), (root + "/" + rel).c_str()) != 0) {
        return arrow::Status::IOError("link failed for ", rel);
      }
      std::string text = tmpl;
      ReplaceAll(&text, data_rel, rel);
      if (!txn_id.empty()) ReplaceAll(&text, txn_id, NewUuid(rng));
      ReplaceAll(&text, "\"readVersion\":0", "\"readVersion\":" + std::to_string(v - 1));
      std::string file = commit_path(v);
      int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return arrow::Status::IOError("cannot create ", file);
      bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::close(fd);
      if (!ok) return arrow::Status::IOError("cannot write ", file);
      if (v % interval == 0) {
        ARROW_RETURN_NOT_OK(table->Checkpoint().status());
        ++checkpoints;
      }
    }
  }
  auto t1 = Clock::now();
  ARROW_ASSIGN_OR_RAISE(auto snap, table->Latest());
  Line("make-commits")
      .Num("seconds", Seconds(t0, t1))
      .Int("version", snap->version())
      .Int("files", static_cast<int64_t>(snap->files().size()))
      .Int("checkpoint_interval", interval)
      .Int("checkpoints_written", checkpoints)
      .Print();
  return arrow::Status::OK();
}

const char* kUsage =
    "usage: delta_bench write SRC.parquet TABLE [--max-rows-per-file N] [--compression C]\n"
    "       delta_bench scan TABLE\n"
    "       delta_bench selective TABLE LO HI\n"
    "       delta_bench snapshot TABLE\n"
    "       (each takes [--reps N] [--warmup N])\n"
    "       delta_bench make-commits TABLE N [--checkpoint-interval K] [--api]\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  auto init = arrow::compute::Initialize();
  if (!init.ok()) {
    std::cerr << "error: " << init.ToString() << "\n";
    return 1;
  }
  // s3:// tables (bench/s3_bench.py) start the AWS SDK; it must stop before exit.
  struct S3Finalizer {
    ~S3Finalizer() { (void)arrow::fs::EnsureS3Finalized(); }
  } s3_finalizer;
  try {
    std::string cmd = argv[1];
    Args args = Parse(argc, argv);
    arrow::Status st;
    if (cmd == "write") {
      st = CmdWrite(args);
    } else if (cmd == "scan") {
      st = CmdScan(args);
    } else if (cmd == "selective") {
      st = CmdSelective(args);
    } else if (cmd == "snapshot") {
      st = CmdSnapshot(args);
    } else if (cmd == "make-commits") {
      st = CmdMakeCommits(args);
    } else {
      std::cerr << kUsage;
      return 2;
    }
    if (!st.ok()) {
      std::cerr << "error: " << st.ToString() << "\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
