// online_read_bench: the feature server's CPU per request, without the network.
//
// A program that prints numbers, never a pass/fail test. It opens a
// repository's online store read-only (beside a running server is fine), reads
// request bodies in the feature server's JSON (one per line, as
// bench/serving_bench.py writes them), and times, on one thread, what the
// server does per request after parsing it: OnlineService::Get (store reads and
// decoding) and server::AppendOnlineResponse (the reply body). Loopback HTTP and
// the load generator are what this leaves out, so its figures stay steady on a
// machine where the end-to-end benchmark's do not.
//
//   online_read_bench REPO BODIES.jsonl [--iters N] [--warmup N]
//
// Prints one JSON object: requests timed, mean µs per request for Get, for
// AppendOnlineResponse and in all (this thread's CPU time), Get's wall-clock
// mean, p50 and p99 (with a Redis store most of a read is waiting for the
// server), and the mean reply size.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/server.h"

namespace {

using namespace stratalake;

double WallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// One request body: features or feature_service, entities, full_feature_names.
bool ParseBody(const std::string& line, online::OnlineRequest* req, std::string* error) {
  rapidjson::Document d;
  d.Parse(line.data(), line.size());
  if (d.HasParseError() || !d.IsObject()) {
    *error = "not a JSON object";
    return false;
  }
  for (auto m = d.MemberBegin(); m != d.MemberEnd(); ++m) {
    std::string key = m->name.GetString();
    if (key == "features" && m->value.IsArray()) {
      for (const auto& f : m->value.GetArray()) req->features.emplace_back(f.GetString());
    } else if (key == "feature_service" && m->value.IsString()) {
      req->feature_service = m->value.GetString();
    } else if (key == "full_feature_names" && m->value.IsBool()) {
      req->full_feature_names = m->value.GetBool();
    } else if (key == "entities" && m->value.IsObject()) {
      for (auto e = m->value.MemberBegin(); e != m->value.MemberEnd(); ++e) {
        std::vector<online::KeyScalar> values;
        for (const auto& x : e->value.GetArray()) {
          if (x.IsInt64()) {
            values.emplace_back(x.GetInt64());
          } else if (x.IsString()) {
            values.emplace_back(std::string(x.GetString()));
          } else {
            values.emplace_back(std::monostate{});
          }
        }
        req->entities.emplace_back(e->name.GetString(), std::move(values));
      }
    } else {
      *error = "unexpected field " + key;
      return false;
    }
  }
  return true;
}

int Fail(const std::string& msg) {
  std::cerr << "online_read_bench: " << msg << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: online_read_bench REPO BODIES.jsonl [--iters N] [--warmup N]\n";
    return 2;
  }
  std::string repo_dir = argv[1];
  std::string bodies_path = argv[2];
  int64_t iters = 20000, warmup = 2000;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--iters") {
      iters = std::atoll(argv[i + 1]);
    } else if (flag == "--warmup") {
      warmup = std::atoll(argv[i + 1]);
    } else {
      return Fail("unknown option " + flag);
    }
  }
  std::vector<online::OnlineRequest> requests;
  {
    std::ifstream in(bodies_path);
    if (!in) return Fail("cannot read " + bodies_path);
    std::string line, error;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      online::OnlineRequest req;
      if (!ParseBody(line, &req, &error)) return Fail(bodies_path + ": " + error);
      requests.push_back(std::move(req));
    }
  }
  if (requests.empty()) return Fail("no request bodies in " + bodies_path);

  auto repo = repo::FeatureRepository::Open(repo_dir);
  if (!repo.ok()) return Fail(repo.status().ToString());
  auto reg = (*repo)->registry();
  if (!reg.ok()) return Fail(reg.status().ToString());
  auto store = online::OpenRepositoryStore(**repo, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status().ToString());
  online::OnlineService service(*reg, std::shared_ptr<online::OnlineStore>(std::move(*store)),
                                Clock::System());

  std::string json;
  double get_s = 0, json_s = 0;
  std::vector<double> walls;
  walls.reserve(static_cast<size_t>(iters));
  int64_t bytes = 0;
  for (int64_t i = 0; i < warmup + iters; ++i) {
    const auto& req = requests[static_cast<size_t>(i) % requests.size()];
    double w0 = WallSeconds();
    double t0 = ThreadSeconds();
    auto resp = service.Get(req);
    double t1 = ThreadSeconds();
    double w1 = WallSeconds();
    if (!resp.ok()) return Fail(resp.status().ToString());
    json.clear();
    server::AppendOnlineResponse(*resp, &json);
    double t2 = ThreadSeconds();
    if (i >= warmup) {
      get_s += t1 - t0;
      walls.push_back(w1 - w0);
      json_s += t2 - t1;
      bytes += static_cast<int64_t>(json.size());
    }
  }
  const double n = static_cast<double>(iters);
  double wall_s = 0;
  for (double w : walls) wall_s += w;
  std::sort(walls.begin(), walls.end());
  auto pct = [&](double p) {
    return walls.empty()
               ? 0.0
               : walls[std::min(walls.size() - 1,
                                static_cast<size_t>(p * static_cast<double>(walls.size())))];
  };
  std::printf(
      "{\"requests\": %lld, \"get_us\": %.2f, \"json_us\": %.2f, \"total_us\": %.2f, "
      "\"get_wall_us\": %.2f, \"get_wall_p50_us\": %.2f, \"get_wall_p99_us\": %.2f, "
      "\"reply_bytes\": %.0f}\n",
      static_cast<long long>(iters), get_s / n * 1e6, json_s / n * 1e6, (get_s + json_s) / n * 1e6,
      wall_s / n * 1e6, pct(0.5) * 1e6, pct(0.99) * 1e6, static_cast<double>(bytes) / n);
  return 0;
}
