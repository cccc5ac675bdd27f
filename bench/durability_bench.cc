// durability_bench: what "acknowledged means on disk" costs, synced against
// unsynced, measured in the same run and interleaved (round by round) so that
// the machine's swings hit both sides alike.
//
// A program that prints numbers, never a pass/fail test.
//
//   durability_bench DIR [--rounds N] [--commits N] [--rows N] [--pushes N] [--threads N]
//
// Delta: `commits` appends of `rows` rows (3 partitions, so 3 data files and 4
// folders per commit) to a table under DIR, with TableOpenOptions::sync
// syncing on (every data file, every touched folder, the commit file and
// `_delta_log/` fsynced) and off. Online: `pushes` one-entity writes to a
// RocksDB store under DIR from 1 and from `threads` threads, with
// WriteOptions::sync on (the WAL fsynced; concurrent writers share an fsync) and
// off. Prints one JSON object: per case the best round's rate and the
// synced/unsynced ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/initialize.h>

#include "stratalake/delta.h"
#include "stratalake/online.h"

namespace {

using namespace stratalake;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Check(const arrow::Status& st, const char* what) {
  if (!st.ok()) {
    std::cerr << what << ": " << st.ToString() << "\n";
    std::exit(1);
  }
}

std::shared_ptr<arrow::Table> Rows(int64_t first, int64_t n) {
  arrow::Int64Builder id, val, p;
  for (int64_t i = first; i < first + n; ++i) {
    (void)id.Append(i);
    (void)val.Append(i * 7);
    (void)p.Append(i % 3);
  }
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("val", arrow::int64()),
                     arrow::field("p", arrow::int64())});
  return arrow::Table::Make(
      schema, {id.Finish().ValueOrDie(), val.Finish().ValueOrDie(), p.Finish().ValueOrDie()});
}

// Commits per second for `commits` appends.
double DeltaRound(const std::string& root, bool sync, int commits, int64_t rows) {
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  delta::TableOpenOptions opts;
  opts.sync = sync;
  auto table = delta::DeltaTable::ForPath(root, opts).ValueOrDie();
  delta::WriteOptions wo;
  wo.partition_by = {"p"};
  Check(table->Write(Rows(0, rows), wo).status(), "create");
  auto t0 = Clock::now();
  for (int c = 0; c < commits; ++c) {
    Check(table->Write(Rows((c + 1) * rows, rows), wo).status(), "append");
  }
  return commits / Seconds(t0, Clock::now());
}

// Writes per second: `pushes` one-key writes spread over `threads` threads.
double PushRound(const std::string& path, bool sync, int pushes, int threads) {
  std::filesystem::remove_all(path);
  auto store = online::OpenRocksDbStore(path).ValueOrDie();
  std::string value;
  online::AppendVersionPrefix(1, std::nullopt, &value);
  value.append(200, 'v');
  auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      online::WriteOptions wo;
      wo.sync = sync;
      for (int i = t; i < pushes; i += threads) {
        online::KeyValue kv{"entity:" + std::to_string(i), value};
        Check(store->Write(std::span<const online::KeyValue>(&kv, 1), wo), "push");
      }
    });
  }
  for (auto& w : workers) w.join();
  return pushes / Seconds(t0, Clock::now());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: durability_bench DIR [--rounds N] [--commits N] [--rows N] "
                 "[--pushes N] [--threads N]\n";
    return 2;
  }
  Check(arrow::compute::Initialize(), "arrow compute");
  std::string dir = std::filesystem::absolute(argv[1]).string();
  int rounds = 5, commits = 50, pushes = 2000, threads = 4;
  int64_t rows = 3000;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--rounds") rounds = v;
    if (a == "--commits") commits = v;
    if (a == "--rows") rows = v;
    if (a == "--pushes") pushes = v;
    if (a == "--threads") threads = v;
  }
  // Best round of each case (the least disturbed by other work on the machine).
  double delta_sync = 0, delta_nosync = 0, push1_sync = 0, push1_nosync = 0, pushn_sync = 0,
         pushn_nosync = 0;
  for (int r = 0; r < rounds; ++r) {
    delta_nosync = std::max(delta_nosync, DeltaRound(dir + "/table", false, commits, rows));
    delta_sync = std::max(delta_sync, DeltaRound(dir + "/table", true, commits, rows));
    push1_nosync = std::max(push1_nosync, PushRound(dir + "/online", false, pushes, 1));
    push1_sync = std::max(push1_sync, PushRound(dir + "/online", true, pushes, 1));
    pushn_nosync = std::max(pushn_nosync, PushRound(dir + "/online", false, pushes, threads));
    pushn_sync = std::max(pushn_sync, PushRound(dir + "/online", true, pushes, threads));
  }
  std::filesystem::remove_all(dir + "/table");
  std::filesystem::remove_all(dir + "/online");
  std::printf(
      "{\"rounds\": %d, \"rows_per_commit\": %lld,\n"
      " \"delta_commits_per_s\": {\"synced\": %.1f, \"unsynced\": %.1f, \"ratio\": %.3f},\n"
      " \"push_1_thread_per_s\": {\"synced\": %.0f, \"unsynced\": %.0f, \"ratio\": %.4f},\n"
      " \"push_%d_threads_per_s\": {\"synced\": %.0f, \"unsynced\": %.0f, \"ratio\": %.4f}}\n",
      rounds, static_cast<long long>(rows), delta_sync, delta_nosync, delta_sync / delta_nosync,
      push1_sync, push1_nosync, push1_sync / push1_nosync, threads, pushn_sync, pushn_nosync,
      pushn_sync / pushn_nosync);
  return 0;
}
