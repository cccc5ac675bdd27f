// stratalake._core's object-storage functions (include/stratalake/object_store.h):
// settings for s3:// URIs under a prefix, and the read cache's configuration and
// counters.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <map>
#include <string>

#include "bindings.h"
#include "stratalake/object_store.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

namespace {

void SetOptions(const std::string& prefix, const std::map<std::string, std::string>& options) {
  auto opts = ObjectStoreOptions::FromMap(options);
  if (!opts.ok()) Raise(opts.status());
  if (auto st = SetObjectStoreOptions(prefix, *opts); !st.ok()) Raise(st);
}

void ConfigureCache(const std::string& dir, int64_t max_bytes) {
  ReadCacheOptions o;
  o.dir = dir;
  o.max_bytes = max_bytes;
  if (auto st = ConfigureReadCache(o); !st.ok()) Raise(st);
}

nb::dict CacheStats() {
  ReadCacheStats s = GetReadCacheStats();
  nb::dict d;
  d["hits"] = s.hits;
  d["misses"] = s.misses;
  d["hit_bytes"] = s.hit_bytes;
  d["miss_bytes"] = s.miss_bytes;
  d["evictions"] = s.evictions;
  d["bytes_cached"] = s.bytes_cached;
  d["max_bytes"] = s.max_bytes;
  d["fetch_memory_bytes"] = s.fetch_memory_bytes;
  return d;
}

}  // namespace

void BindObjectStore(nb::module_& m) {
  m.def("set_object_store_options", &SetOptions, "prefix"_a, "options"_a,
        "Use these settings for every s3:// URI under the prefix.");
  m.def("configure_read_cache", &ConfigureCache, "dir"_a = "", "max_bytes"_a = -1,
        "Configure the local read cache of remote data files.");
  m.def("read_cache_stats", &CacheStats, "The read cache's counters since the process started.");
}

}  // namespace stratalake::python
