// libFuzzer entry point for the JSON-lines ingest reader, which reads files a
// user hands to `stratalake ingest`: every line must become a row or an
// unreadable row with a reason, never a crash, a hang or a sanitizer report.
// The file lives in Arrow's in-memory filesystem (no disk I/O per input).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <arrow/filesystem/mockfs.h>
#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>

#include "ingest/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto fs = std::make_shared<arrow::fs::internal::MockFileSystem>(
      arrow::fs::TimePoint(std::chrono::seconds(0)));
  {
    auto out = fs->OpenOutputStream("input.json");
    if (!out.ok()) return 0;
    if (!(*out)->Write(data, static_cast<int64_t>(size)).ok() || !(*out)->Close().ok()) return 0;
  }
  stratalake::ingest::InputFile file;
  file.name = "input.json";
  file.format = stratalake::ingest::Format::kJson;
  file.fs = fs;
  file.path = "input.json";
  file.size = static_cast<int64_t>(size);
  auto reader = stratalake::ingest::OpenRawReader(file);
  if (!reader.ok()) return 0;
  // Each batch consumes input, so the file ends within size + 1 batches.
  for (size_t i = 0; i <= size + 1; ++i) {
    auto batch = (*reader)->Next();
    if (!batch.ok() || batch->rows == nullptr) break;
    (void)batch->rows->ValidateFull();
  }
  return 0;
}
