// Delta Lake deletion vectors (protocol section "Deletion Vectors"): decoding of
// the descriptor's storage forms and of the RoaringBitmapArray ("portable"
// 64-bit Roaring treemap) format into the set of deleted row indexes of one file,
// and the inverse: encoding row indexes into that format and into the bytes of a
// deletion vector file (deletion_vector_writer.h writes such files for a commit).
//
// Thread-safety: all functions are thread-safe; they hold no state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>

namespace stratalake::delta {

/// The `deletionVector` field of an `add`/`remove` action.
struct DeletionVectorDescriptor {
  /// 'u' = relative path derived from a UUID, 'i' = inline, 'p' = absolute path.
  std::string storage_type;
  std::string path_or_inline_dv;
  std::optional<int32_t> offset;  // byte offset in the DV file ('u' and 'p' only)
  int32_t size_in_bytes = 0;
  int64_t cardinality = 0;

  /// The unique id used to reconcile add/remove pairs: storage_type +
  /// path_or_inline_dv [+ "@" + offset].
  std::string UniqueId() const;
};

/// Decode Z85 (ZeroMQ base85) text; the length must be a multiple of 5.
arrow::Result<std::string> Z85Decode(std::string_view text);

/// Parse a serialized deletion vector bitmap: 4-byte little-endian magic 1681511377
/// followed by the portable RoaringBitmapArray encoding (an 8-byte bucket count,
/// then per bucket a 4-byte high key and a standard portable 32-bit Roaring
/// bitmap). Returns the deleted row indexes in ascending order. Malformed input
/// returns Status::Invalid naming what is wrong; never reads out of bounds.
arrow::Result<std::vector<uint64_t>> ParseDeletionVectorBitmap(std::string_view bytes);

/// Resolve the descriptor to the on-disk file path for storage types 'u' and 'p'.
/// 'u': path_or_inline_dv = <random prefix><20 chars Z85 of a 16-byte UUID>;
/// file = table_root/[prefix/]deletion_vector_<uuid>.bin.
arrow::Result<std::string> DeletionVectorPath(const DeletionVectorDescriptor& dv,
                                              const std::string& table_root);

/// Load the deleted row indexes (ascending) of one file. For files, reads
/// `size_in_bytes` of bitmap after the 4-byte big-endian size at `offset`
/// (default 1, after the format version byte) and verifies the 4-byte big-endian
/// CRC-32 that follows. Checks that the result has `cardinality` entries.
/// Errors name the DV file and the problem.
arrow::Result<std::vector<uint64_t>> LoadDeletionVector(const DeletionVectorDescriptor& dv,
                                                        arrow::fs::FileSystem& fs,
                                                        const std::string& table_root);

// ---- Writing ------------------------------------------------------------------

/// Encode `bytes` as Z85; the length must be a multiple of 4 (Invalid otherwise).
arrow::Result<std::string> Z85Encode(std::string_view bytes);

/// Serialize `rows` (strictly ascending row indexes; Invalid otherwise) the way
/// ParseDeletionVectorBitmap reads them: the portable magic, the bucket count and
/// per 32-bit bucket a standard portable Roaring bitmap without run containers
/// (array containers up to 4096 values, bitmap containers above). The result is
/// what Delta's RoaringBitmapArray.serializeAsByteArray(Portable) writes.
arrow::Result<std::string> SerializeDeletionVectorBitmap(const std::vector<uint64_t>& rows);

/// The CRC-32 (zlib/IEEE) Delta stores after each deletion vector in a file.
uint32_t DeletionVectorCrc32(std::string_view data);

/// The bytes of one deletion vector file holding `bitmaps` (each from
/// SerializeDeletionVectorBitmap): the format version byte 1, then per bitmap its
/// 4-byte big-endian size, the bitmap and its 4-byte big-endian CRC-32.
/// `offsets[i]` is where bitmap i's size prefix starts (the descriptor's offset).
struct DeletionVectorFileBytes {
  std::string bytes;
  std::vector<int32_t> offsets;
};
arrow::Result<DeletionVectorFileBytes> BuildDeletionVectorFile(
    const std::vector<std::string>& bitmaps);

/// The pathOrInlineDv of a 'u' descriptor for the 16-byte `uuid` under the
/// optional folder `random_prefix` (alphanumeric): prefix + Z85(uuid).
arrow::Result<std::string> EncodeDeletionVectorUuid(std::string_view uuid,
                                                    std::string_view random_prefix = "");

/// The union of two strictly ascending row index lists, strictly ascending.
std::vector<uint64_t> UnionRowIndexes(const std::vector<uint64_t>& a,
                                      const std::vector<uint64_t>& b);

}  // namespace stratalake::delta
