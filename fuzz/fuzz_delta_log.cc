// libFuzzer entry point for the Delta log parsers, which read untrusted bytes from
// `_delta_log/`: commit JSON (newline-delimited actions), Parquet checkpoints and the
// schemaString of a metaData action. Results are discarded; the parsers must never
// crash, hang or trip a sanitizer, whatever the input.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <arrow/buffer.h>

#include "storage/actions.h"
#include "storage/checkpoint.h"
#include "stratalake/delta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string name = "fuzz/00000000000000000000.json";

  // Commit files (and JSON checkpoints).
  (void)stratalake::delta::ParseLogJson(input, name);
  (void)stratalake::delta::ParseCommitInfo(input, name);

  // Parquet checkpoints and sidecars, held in memory (the buffer does not own `data`,
  // which outlives the call).
  auto buffer = std::make_shared<arrow::Buffer>(data, static_cast<int64_t>(size));
  (void)stratalake::delta::ParseCheckpointParquet(buffer,
                                                  "fuzz/00000000000000000010.checkpoint.parquet");

  // The schemaString of a metaData action.
  (void)stratalake::delta::SchemaFromDeltaJson(std::string(input));
  return 0;
}
