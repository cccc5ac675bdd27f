// stall_probe: how often this machine takes a CPU away from a running program,
// and for how long. The floor under any latency figure measured here.
//
//   stall_probe [--cpus 0,1] [--seconds 5] [--min-gap-us 50]
//
// One thread per CPU in --cpus, pinned to it, reads CLOCK_MONOTONIC in a tight
// loop for --seconds. Consecutive readings normally differ by tens of
// nanoseconds; a larger gap is time the thread did not run: an interrupt, a
// kernel thread (kswapd, kdamond, RCU), another process, or the hypervisor
// running something else on the virtual CPU (steal). A server answering on
// that CPU would have been stalled for the same time.
//
// Prints one JSON line:
//   {"seconds":5,"cpus":[{"cpu":0,"gaps_50us":..,"gaps_100us":..,"gaps_1ms":..,
//    "gaps_3ms":..,"lost_ms_100us":..,"lost_ms_1ms":..,"max_ms":..},...],
//    "steal_ms":..}
// gaps_X: gaps of at least X; lost_ms_X: their total length; steal_ms: the time
// the hypervisor reported as stolen from all CPUs during the probe (/proc/stat).
// A benchmark, not a test: it only measures.
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

struct CpuResult {
  int cpu = 0;
  int pin_error = 0;  // pthread_setaffinity_np's result
  int64_t gaps_50us = 0, gaps_100us = 0, gaps_1ms = 0, gaps_3ms = 0;
  int64_t lost_ns_100us = 0, lost_ns_1ms = 0, max_ns = 0;
};

void Probe(CpuResult* r, int64_t seconds_ns, int64_t min_gap_ns) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(r->cpu, &set);
  r->pin_error = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (r->pin_error != 0) return;
  int64_t prev = NowNs();
  const int64_t end = prev + seconds_ns;
  while (prev < end) {
    int64_t now = NowNs();
    int64_t gap = now - prev;
    prev = now;
    if (gap < min_gap_ns) continue;
    ++r->gaps_50us;
    r->max_ns = std::max(r->max_ns, gap);
    if (gap >= 100000) {
      ++r->gaps_100us;
      r->lost_ns_100us += gap;
    }
    if (gap >= 1000000) {
      ++r->gaps_1ms;
      r->lost_ns_1ms += gap;
    }
    if (gap >= 3000000) ++r->gaps_3ms;
  }
}

// Steal time of all CPUs since boot, in ms (/proc/stat, 8th value of "cpu").
int64_t StealMs() {
  std::ifstream in("/proc/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  std::istringstream fields(line);
  std::string name;
  int64_t v = 0, steal = -1;
  fields >> name;
  for (int i = 0; i < 8 && (fields >> v); ++i) steal = v;
  return steal < 0 ? -1 : steal * 1000 / sysconf(_SC_CLK_TCK);
}

std::vector<int> ParseCpus(const std::string& spec) {
  std::vector<int> cpus;
  std::stringstream ss(spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    size_t dash = part.find('-');
    int lo = std::atoi(part.substr(0, dash).c_str());
    int hi = dash == std::string::npos ? lo : std::atoi(part.substr(dash + 1).c_str());
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "stall_probe: %s\nusage: stall_probe [--cpus 0,1] [--seconds 5] "
               "[--min-gap-us 50]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string cpus_spec;
  double seconds = 5;
  int64_t min_gap_us = 50;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: stall_probe [--cpus 0,1] [--seconds 5] [--min-gap-us 50]\n"
          "Spins on each CPU (default: every CPU this process may use) and prints, as one\n"
          "JSON line, the gaps in which the machine took the CPU away.\n");
      return 0;
    }
    if (i + 1 >= argc) Usage(("missing value after " + a).c_str());
    if (a == "--cpus") {
      cpus_spec = argv[++i];
    } else if (a == "--seconds") {
      seconds = std::atof(argv[++i]);
    } else if (a == "--min-gap-us") {
      min_gap_us = std::atoll(argv[++i]);
    } else {
      Usage(("unknown option " + a).c_str());
    }
  }
  if (!(seconds > 0 && seconds <= 3600)) Usage("--seconds must be in (0, 3600]");
  if (min_gap_us < 1) Usage("--min-gap-us must be at least 1");
  std::vector<int> cpus;
  if (cpus_spec.empty()) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) Usage("cannot read the CPU affinity");
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  } else {
    cpus = ParseCpus(cpus_spec);
  }
  if (cpus.empty()) Usage("no CPUs to probe");

  std::vector<CpuResult> results(cpus.size());
  std::vector<std::thread> threads;
  const int64_t steal0 = StealMs();
  for (size_t i = 0; i < cpus.size(); ++i) {
    results[i].cpu = cpus[i];
    threads.emplace_back(Probe, &results[i], static_cast<int64_t>(seconds * 1e9),
                         min_gap_us * 1000);
  }
  for (auto& t : threads) t.join();
  const int64_t steal1 = StealMs();

  std::printf("{\"seconds\":%g,\"min_gap_us\":%lld,\"cpus\":[", seconds,
              static_cast<long long>(min_gap_us));
  for (size_t i = 0; i < results.size(); ++i) {
    const CpuResult& r = results[i];
    if (r.pin_error != 0) {
      std::fprintf(stderr, "stall_probe: cannot pin a thread to CPU %d: %s\n", r.cpu,
                   std::strerror(r.pin_error));
      return 1;
    }
    std::printf(
        "%s{\"cpu\":%d,\"gaps_50us\":%lld,\"gaps_100us\":%lld,\"gaps_1ms\":%lld,"
        "\"gaps_3ms\":%lld,\"lost_ms_100us\":%.3f,\"lost_ms_1ms\":%.3f,\"max_ms\":%.3f}",
        i ? "," : "", r.cpu, static_cast<long long>(r.gaps_50us),
        static_cast<long long>(r.gaps_100us), static_cast<long long>(r.gaps_1ms),
        static_cast<long long>(r.gaps_3ms), static_cast<double>(r.lost_ns_100us) / 1e6,
        static_cast<double>(r.lost_ns_1ms) / 1e6, static_cast<double>(r.max_ns) / 1e6);
  }
  std::printf("],\"steal_ms\":%lld}\n",
              static_cast<long long>(steal0 < 0 || steal1 < 0 ? -1 : steal1 - steal0));
  return 0;
}
