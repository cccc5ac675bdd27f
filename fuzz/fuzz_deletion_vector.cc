// libFuzzer entry point for the deletion-vector decoders, which read untrusted bytes from
// DV files and Delta log JSON. Beyond "no crash", it checks the parser's output contract.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storage/deletion_vector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using stratalake::delta::DeletionVectorDescriptor;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto rows = stratalake::delta::ParseDeletionVectorBitmap(input);
  if (rows.ok()) {
    // Accepted bitmaps must decode to strictly ascending row indexes.
    for (size_t i = 1; i < rows->size(); ++i) {
      if ((*rows)[i - 1] >= (*rows)[i]) std::abort();
    }
    // What the writer makes of them parses back to the same rows.
    auto again = stratalake::delta::SerializeDeletionVectorBitmap(*rows);
    if (!again.ok()) std::abort();
    auto back = stratalake::delta::ParseDeletionVectorBitmap(*again);
    if (!back.ok() || *back != *rows) std::abort();
  }

  auto decoded = stratalake::delta::Z85Decode(input);
  if (decoded.ok() && decoded->size() != size / 5 * 4) std::abort();
  // Z85 is canonical: encoding what decoded gives the input back.
  if (decoded.ok()) {
    auto encoded = stratalake::delta::Z85Encode(*decoded);
    if (!encoded.ok() || *encoded != input) std::abort();
  }

  // The same text as a descriptor's pathOrInlineDv, for the path decoders.
  DeletionVectorDescriptor dv;
  dv.path_or_inline_dv = std::string(input);
  dv.storage_type = "u";
  (void)stratalake::delta::DeletionVectorPath(dv, "table");
  dv.storage_type = "p";
  (void)stratalake::delta::DeletionVectorPath(dv, "table");
  return 0;
}
