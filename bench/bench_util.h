// What the C++ benches print beside their figures: the CPU seconds of this
// process and the load average, and a way to stop on a failed setup step.
// Header-only; benches use only the public API.
#pragma once

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <arrow/status.h>

namespace stratalake::bench {

/// User + system CPU seconds of this process, all its threads so far.
inline double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them.
inline std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

/// Exits with the status on stderr, prefixed by `what`, unless `st` is OK.
inline void Check(const arrow::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace stratalake::bench
