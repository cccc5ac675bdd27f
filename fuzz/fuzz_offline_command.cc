// libFuzzer entry point for the commands of Feast's remote offline store
// protocol (the JSON in a Flight descriptor, stratalake serve-offline): every
// input must end as a parsed command or an error, never a crash, a hang or a
// sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "flight/offline_command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)stratalake::flight::ParseOfflineCommand(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
