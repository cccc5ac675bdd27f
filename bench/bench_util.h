// What the C++ benches print beside their figures: the CPU seconds of this
// process and the load average, and a way to stop on a failed setup step;
// and the window benches' view of the tiles in an online store.
// Header-only; benches use only the public API.
#pragma once

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <string_view>

#include <arrow/status.h>

#include "stratalake/online.h"

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

/// The tiles of the window view `view` in `store`: key -> value without its
/// version prefix and writers' header, to compare two materializations.
inline std::map<std::string, std::string> WindowTiles(online::OnlineStore& store,
                                                      const std::string& view) {
  auto all = store.Scan(view + std::string(1, '\0'));
  Check(all.status(), "scan");
  std::map<std::string, std::string> out;
  for (const auto& kv : *all) {
    std::string_view v(kv.value);
    v.remove_prefix(online::kVersionPrefixSize);
    if (!v.empty() && v[0] == 'H') v.remove_prefix(26 + 8 * static_cast<uint8_t>(v[25]));
    out[kv.key] = std::string(v);
  }
  return out;
}

}  // namespace stratalake::bench
