// libFuzzer entry point for the YAML a user writes in a feature repository:
// definition files (entities, sources, feature views, services) and
// stratalake.yaml. Every input must end as definitions or as problems/errors
// with a location: never a crash, an uncaught yaml-cpp exception, a hang or a
// sanitizer report.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "registry/loader.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"

namespace {

// A folder of our own for stratalake.yaml, made once per process.
const std::string& ConfigDir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/stratalake-fuzz-yaml-XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (made == nullptr) std::abort();
    return std::string(made);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  // A definitions file; what parses is validated too (cross-object rules).
  stratalake::registry::Definitions defs;
  std::vector<std::string> problems;
  stratalake::registry::ParseDefinitionsYaml(text, "definitions/fuzz.yaml", &defs, &problems);
  if (problems.empty())
    (void)stratalake::registry::Validate(defs, stratalake::registry::ValidationOptions());

  // The same bytes as the repository's stratalake.yaml.
  {
    std::ofstream out(ConfigDir() + "/stratalake.yaml", std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  (void)stratalake::repo::LoadRepoConfig(ConfigDir());
  return 0;
}
