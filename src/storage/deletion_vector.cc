#include "storage/deletion_vector.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/status.h>

namespace stratalake::delta {
namespace {

// RoaringBitmapArray "portable" serialization, the only format Delta writes.
constexpr uint32_t kPortableMagic = 1681511377;
// Cookies of the standard 32-bit Roaring format (RoaringFormatSpec).
constexpr uint32_t kSerialCookieNoRunContainer = 12346;
constexpr uint32_t kSerialCookie = 12347;
// With the run cookie, the offset header is only written for this many containers or more.
constexpr uint32_t kNoOffsetThreshold = 4;
constexpr uint32_t kMaxContainers = 1u << 16;
constexpr uint32_t kMaxArrayCardinality = 4096;
constexpr size_t kBitmapContainerBytes = 8192;
// The smallest possible bucket: 4-byte high key, 4-byte no-run cookie, 4-byte container
// count of zero. Bounds the bucket count by the input size before anything is reserved.
constexpr size_t kMinBucketBytes = 12;

constexpr size_t kZ85UuidChars = 20;
constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

constexpr std::array<int8_t, 256> MakeZ85DecodeTable() {
  std::array<int8_t, 256> table{};
  for (auto& entry : table) entry = -1;
  for (size_t i = 0; i < kZ85Alphabet.size(); ++i) {
    table[static_cast<unsigned char>(kZ85Alphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr std::array<int8_t, 256> kZ85DecodeTable = MakeZ85DecodeTable();

// CRC-32 as in zlib / IEEE 802.3 (reflected polynomial 0xEDB88320), which is what Delta's
// java.util.zip.CRC32 writes after each DV. Kept local to avoid a zlib dependency.
constexpr std::array<uint32_t, 256> MakeCrc32Table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32Table = MakeCrc32Table();

uint32_t Crc32(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) crc = kCrc32Table[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t LoadBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint16_t LoadLittleEndian16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t LoadLittleEndian32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

uint64_t LoadLittleEndian64(const uint8_t* p) {
  return uint64_t{LoadLittleEndian32(p)} | (uint64_t{LoadLittleEndian32(p + 4)} << 32);
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Sequential bounds-checked reader over the whole serialized DV, so that every error can
// report an absolute byte offset.
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}

  size_t position() const { return position_; }
  size_t remaining() const { return bytes_.size() - position_; }

  arrow::Result<std::string_view> Read(size_t n, std::string_view what) {
    if (n > remaining()) {
      return arrow::Status::Invalid("truncated deletion vector bitmap: ", what, " needs ", n,
                                    " bytes at byte offset ", position_, " but only ", remaining(),
                                    " remain");
    }
    std::string_view out = bytes_.substr(position_, n);
    position_ += n;
    return out;
  }

  arrow::Result<uint16_t> ReadU16(std::string_view what) {
    ARROW_ASSIGN_OR_RAISE(auto b, Read(2, what));
    return LoadLittleEndian16(Bytes(b));
  }
  arrow::Result<uint32_t> ReadU32(std::string_view what) {
    ARROW_ASSIGN_OR_RAISE(auto b, Read(4, what));
    return LoadLittleEndian32(Bytes(b));
  }
  arrow::Result<uint64_t> ReadU64(std::string_view what) {
    ARROW_ASSIGN_OR_RAISE(auto b, Read(8, what));
    return LoadLittleEndian64(Bytes(b));
  }

 private:
  std::string_view bytes_;
  size_t position_ = 0;
};

enum class ContainerKind : uint8_t { kArray, kBitmap, kRun };

// One validated Roaring container; `data` points into the input. Parsing first collects
// these (at most one per 4 input bytes) and sums their cardinalities, so the output is
// reserved once from a verified total rather than from any count read off the wire.
struct Container {
  uint64_t high_bits;  // bucket key << 32 | container key << 16
  ContainerKind kind;
  uint32_t cardinality;
  std::string_view data;
};

arrow::Status InvalidAt(size_t offset, std::string_view what) {
  return arrow::Status::Invalid("malformed deletion vector bitmap: ", what, " at byte offset ",
                                offset);
}

arrow::Status ValidateArray(std::string_view data, size_t offset) {
  const uint8_t* p = Bytes(data);
  for (size_t i = 1; i < data.size() / 2; ++i) {
    if (LoadLittleEndian16(p + 2 * i) <= LoadLittleEndian16(p + 2 * (i - 1))) {
      return InvalidAt(offset + 2 * i, "array container values are not strictly ascending");
    }
  }
  return arrow::Status::OK();
}

arrow::Status ValidateBitmap(std::string_view data, uint32_t cardinality, size_t offset) {
  const uint8_t* p = Bytes(data);
  uint32_t count = 0;
  for (size_t i = 0; i < kBitmapContainerBytes; i += 8) {
    count += static_cast<uint32_t>(std::popcount(LoadLittleEndian64(p + i)));
  }
  if (count != cardinality) {
    return InvalidAt(offset, "bitmap container has " + std::to_string(count) +
                                 " bits set but its header says " + std::to_string(cardinality));
  }
  return arrow::Status::OK();
}

arrow::Status ValidateRuns(std::string_view data, uint32_t cardinality, size_t offset) {
  const uint8_t* p = Bytes(data);
  uint64_t total = 0;
  int64_t previous_end = -1;
  for (size_t i = 0; i < data.size() / 4; ++i) {
    const uint32_t start = LoadLittleEndian16(p + 4 * i);
    const uint32_t end = start + LoadLittleEndian16(p + 4 * i + 2);
    if (end > 0xFFFF) return InvalidAt(offset + 4 * i, "run extends past 65535");
    if (static_cast<int64_t>(start) <= previous_end) {
      return InvalidAt(offset + 4 * i, "runs overlap or are not ascending");
    }
    previous_end = end;
    total += end - start + 1;
  }
  if (total != cardinality) {
    return InvalidAt(offset, "run container covers " + std::to_string(total) +
                                 " values but its header says " + std::to_string(cardinality));
  }
  return arrow::Status::OK();
}

// Parses one standard 32-bit portable Roaring bitmap (the value of one bucket).
arrow::Status ParseRoaring32(ByteReader& reader, uint64_t bucket_key,
                             std::vector<Container>* containers, uint64_t* total_cardinality) {
  const size_t cookie_offset = reader.position();
  ARROW_ASSIGN_OR_RAISE(uint32_t cookie, reader.ReadU32("Roaring cookie"));
  uint32_t count = 0;
  std::string_view run_flags;
  bool has_runs = false;
  if ((cookie & 0xFFFF) == kSerialCookie) {
    has_runs = true;
    count = (cookie >> 16) + 1;
    ARROW_ASSIGN_OR_RAISE(run_flags, reader.Read((count + 7) / 8, "run container bitset"));
  } else if (cookie == kSerialCookieNoRunContainer) {
    ARROW_ASSIGN_OR_RAISE(count, reader.ReadU32("container count"));
    if (count > kMaxContainers) {
      return InvalidAt(cookie_offset + 4,
                       "container count " + std::to_string(count) + " exceeds 65536");
    }
  } else {
    return InvalidAt(cookie_offset, "unknown Roaring cookie " + std::to_string(cookie) +
                                        " (expected 12346 or 12347)");
  }

  // Reading the whole descriptive header first proves `count` is backed by input bytes.
  const size_t header_offset = reader.position();
  ARROW_ASSIGN_OR_RAISE(std::string_view header,
                        reader.Read(size_t{4} * count, "container descriptive header"));
  // The offset header is redundant for sequential decoding; like the reference readers
  // we skip it rather than reject bitmaps whose writer computed it differently.
  if (!has_runs || count >= kNoOffsetThreshold) {
    ARROW_RETURN_NOT_OK(reader.Read(size_t{4} * count, "container offset header").status());
  }

  containers->reserve(containers->size() + count);
  int32_t previous_key = -1;
  for (size_t i = 0; i < count; ++i) {
    const uint16_t key = LoadLittleEndian16(Bytes(header) + 4 * i);
    const uint32_t cardinality = uint32_t{LoadLittleEndian16(Bytes(header) + 4 * i + 2)} + 1;
    if (static_cast<int32_t>(key) <= previous_key) {
      return InvalidAt(header_offset + 4 * i, "container keys are not strictly ascending");
    }
    previous_key = key;

    Container container{
        (bucket_key << 32) | (uint64_t{key} << 16), ContainerKind::kArray, cardinality, {}};
    const size_t data_offset = reader.position();
    const bool is_run = has_runs && ((Bytes(run_flags)[i / 8] >> (i % 8)) & 1);
    if (is_run) {
      container.kind = ContainerKind::kRun;
      ARROW_ASSIGN_OR_RAISE(uint16_t runs, reader.ReadU16("run count"));
      ARROW_ASSIGN_OR_RAISE(container.data, reader.Read(size_t{4} * runs, "run container"));
      ARROW_RETURN_NOT_OK(ValidateRuns(container.data, cardinality, data_offset + 2));
    } else if (cardinality <= kMaxArrayCardinality) {
      ARROW_ASSIGN_OR_RAISE(container.data,
                            reader.Read(size_t{2} * cardinality, "array container"));
      ARROW_RETURN_NOT_OK(ValidateArray(container.data, data_offset));
    } else {
      container.kind = ContainerKind::kBitmap;
      ARROW_ASSIGN_OR_RAISE(container.data, reader.Read(kBitmapContainerBytes, "bitmap container"));
      ARROW_RETURN_NOT_OK(ValidateBitmap(container.data, cardinality, data_offset));
    }
    *total_cardinality += cardinality;
    containers->push_back(container);
  }
  return arrow::Status::OK();
}

void AppendContainer(const Container& c, std::vector<uint64_t>* out) {
  const uint8_t* p = Bytes(c.data);
  switch (c.kind) {
    case ContainerKind::kArray:
      for (size_t i = 0; i < c.data.size(); i += 2) {
        out->push_back(c.high_bits | LoadLittleEndian16(p + i));
      }
      break;
    case ContainerKind::kBitmap:
      for (size_t word = 0; word < kBitmapContainerBytes / 8; ++word) {
        uint64_t bits = LoadLittleEndian64(p + 8 * word);
        while (bits != 0) {
          out->push_back(c.high_bits | (word * 64 + std::countr_zero(bits)));
          bits &= bits - 1;
        }
      }
      break;
    case ContainerKind::kRun:
      for (size_t i = 0; i < c.data.size(); i += 4) {
        const uint32_t start = LoadLittleEndian16(p + i);
        const uint32_t end = start + LoadLittleEndian16(p + i + 2);
        for (uint32_t v = start; v <= end; ++v) out->push_back(c.high_bits | v);
      }
      break;
  }
}

// `expected_cardinality`, when given, is checked before any row index is materialized, so
// a descriptor/bitmap mismatch cannot make us expand a huge bitmap first.
arrow::Result<std::vector<uint64_t>> ParseBitmap(std::string_view bytes,
                                                 std::optional<int64_t> expected_cardinality) {
  ByteReader reader(bytes);
  ARROW_ASSIGN_OR_RAISE(uint32_t magic, reader.ReadU32("magic number"));
  if (magic != kPortableMagic) {
    return InvalidAt(0, "magic number " + std::to_string(magic) +
                            " is not the portable RoaringBitmapArray magic 1681511377");
  }
  ARROW_ASSIGN_OR_RAISE(uint64_t bucket_count, reader.ReadU64("bucket count"));
  if (bucket_count > reader.remaining() / kMinBucketBytes) {
    return InvalidAt(4, "bucket count " + std::to_string(bucket_count) + " cannot fit in the " +
                            std::to_string(reader.remaining()) + " remaining bytes");
  }

  std::vector<Container> containers;
  uint64_t total_cardinality = 0;
  int64_t previous_key = -1;
  for (uint64_t b = 0; b < bucket_count; ++b) {
    const size_t key_offset = reader.position();
    ARROW_ASSIGN_OR_RAISE(uint32_t key, reader.ReadU32("bucket key"));
    if (static_cast<int64_t>(key) <= previous_key) {
      return InvalidAt(key_offset, "bucket keys are not strictly ascending");
    }
    previous_key = key;
    ARROW_RETURN_NOT_OK(ParseRoaring32(reader, key, &containers, &total_cardinality));
  }
  if (reader.remaining() != 0) {
    return InvalidAt(reader.position(),
                     std::to_string(reader.remaining()) + " trailing bytes after the last bucket");
  }
  if (expected_cardinality.has_value() &&
      total_cardinality != static_cast<uint64_t>(*expected_cardinality)) {
    return arrow::Status::Invalid("deletion vector holds ", total_cardinality,
                                  " row indexes but the descriptor's cardinality is ",
                                  *expected_cardinality);
  }

  std::vector<uint64_t> rows;
  rows.reserve(total_cardinality);
  for (const Container& c : containers) AppendContainer(c, &rows);
  return rows;
}

arrow::Result<std::string> PercentDecode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int hi = i + 2 < text.size() ? hex(text[i + 1]) : -1;
    const int lo = i + 2 < text.size() ? hex(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return arrow::Status::Invalid("bad percent escape at offset ", i,
                                    " in deletion vector path '", text, "'");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// Turns the absolute URI of a 'p' descriptor into a path for arrow::fs::FileSystem:
// "file:/x", "file:///x" and "file://localhost/x" become "/x"; "scheme://bucket/key"
// becomes "bucket/key", the form Arrow's object-store filesystems take.
arrow::Result<std::string> AbsoluteUriToPath(std::string_view uri) {
  std::string_view rest = uri;
  if (rest.starts_with("file:")) {
    rest.remove_prefix(5);
    if (rest.starts_with("//")) {
      rest.remove_prefix(2);
      const size_t slash = rest.find('/');
      const std::string_view host = rest.substr(0, slash);
      if (slash == std::string_view::npos || (!host.empty() && host != "localhost")) {
        return arrow::Status::Invalid("unsupported file URI '", uri,
                                      "' for deletion vector: expected file:/// or file:/");
      }
      rest.remove_prefix(slash);
    }
  } else {
    const size_t sep = rest.find("://");
    if (sep != std::string_view::npos && sep > 0) rest.remove_prefix(sep + 3);
  }
  return PercentDecode(rest);
}

std::string FormatUuid(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const auto byte = static_cast<unsigned char>(bytes[i]);
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xF]);
  }
  return out;
}

std::string JoinPath(std::string_view root, std::string_view child) {
  std::string out(root);
  if (!out.empty() && out.back() != '/') out.push_back('/');
  out.append(child);
  return out;
}

arrow::Result<std::vector<uint64_t>> LoadFromFile(const DeletionVectorDescriptor& dv,
                                                  arrow::fs::FileSystem& fs,
                                                  const std::string& path) {
  const int64_t offset = dv.offset.value_or(1);
  if (offset < 0 || dv.size_in_bytes < 0) {
    return arrow::Status::Invalid("deletion vector file '", path, "': negative offset ", offset,
                                  " or size ", dv.size_in_bytes, " in descriptor");
  }
  ARROW_ASSIGN_OR_RAISE(auto file, fs.OpenInputFile(path));
  ARROW_ASSIGN_OR_RAISE(int64_t file_size, file->GetSize());
  // Size prefix + bitmap + CRC. Checked against the file size so that a corrupt descriptor
  // cannot make ReadAt allocate up to 2 GiB.
  const int64_t length = 4 + int64_t{dv.size_in_bytes} + 4;
  if (offset > file_size || length > file_size - offset) {
    return arrow::Status::Invalid("deletion vector file '", path, "' is ", file_size,
                                  " bytes, too short for a ", dv.size_in_bytes,
                                  "-byte deletion vector at offset ", offset);
  }
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> buffer, file->ReadAt(offset, length));
  ARROW_RETURN_NOT_OK(file->Close());
  if (buffer->size() != length) {
    return arrow::Status::IOError("deletion vector file '", path, "': short read of ",
                                  buffer->size(), " of ", length, " bytes at offset ", offset);
  }
  const std::string_view data(reinterpret_cast<const char*>(buffer->data()), length);
  const uint32_t stored_size = LoadBigEndian32(Bytes(data));
  if (stored_size != static_cast<uint32_t>(dv.size_in_bytes)) {
    return arrow::Status::Invalid("deletion vector file '", path, "': size prefix at offset ",
                                  offset, " is ", stored_size, " but the descriptor says ",
                                  dv.size_in_bytes);
  }
  const std::string_view bitmap = data.substr(4, dv.size_in_bytes);
  const uint32_t stored_crc = LoadBigEndian32(Bytes(data) + 4 + dv.size_in_bytes);
  const uint32_t actual_crc = Crc32(bitmap);
  if (stored_crc != actual_crc) {
    return arrow::Status::Invalid("deletion vector file '", path, "': CRC-32 mismatch at offset ",
                                  offset, " (stored ", stored_crc, ", computed ", actual_crc,
                                  "); the file is corrupt");
  }
  auto rows = ParseBitmap(bitmap, dv.cardinality);
  if (!rows.ok()) {
    return rows.status().WithMessage("deletion vector file '", path, "' at offset ", offset, ": ",
                                     rows.status().message());
  }
  return rows;
}

void AppendLittleEndian16(uint16_t v, std::string* out) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>(v >> 8));
}

void AppendLittleEndian32(uint32_t v, std::string* out) {
  for (int shift = 0; shift < 32; shift += 8)
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
}

void AppendBigEndian32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
}

// One standard portable 32-bit Roaring bitmap (no run containers) of `lows`, the
// low 32 bits of one bucket's row indexes, ascending.
void AppendRoaring32(const uint64_t* begin, const uint64_t* end, std::string* out) {
  // Split into containers by the high 16 bits of the low 32.
  std::vector<std::pair<const uint64_t*, const uint64_t*>> containers;
  for (const uint64_t* p = begin; p != end;) {
    const uint64_t key = (*p >> 16) & 0xFFFF;
    const uint64_t* q = p;
    while (q != end && ((*q >> 16) & 0xFFFF) == key) ++q;
    containers.emplace_back(p, q);
    p = q;
  }
  const size_t start = out->size();
  AppendLittleEndian32(kSerialCookieNoRunContainer, out);
  AppendLittleEndian32(static_cast<uint32_t>(containers.size()), out);
  for (const auto& [b, e] : containers) {
    AppendLittleEndian16(static_cast<uint16_t>((*b >> 16) & 0xFFFF), out);
    AppendLittleEndian16(static_cast<uint16_t>(e - b - 1), out);
  }
  // Offsets are relative to the start of this bitmap (its cookie).
  size_t offset = out->size() - start + 4 * containers.size();
  for (const auto& [b, e] : containers) {
    AppendLittleEndian32(static_cast<uint32_t>(offset), out);
    const size_t n = static_cast<size_t>(e - b);
    offset += n <= kMaxArrayCardinality ? 2 * n : kBitmapContainerBytes;
  }
  for (const auto& [b, e] : containers) {
    const size_t n = static_cast<size_t>(e - b);
    if (n <= kMaxArrayCardinality) {
      for (const uint64_t* p = b; p != e; ++p) {
        AppendLittleEndian16(static_cast<uint16_t>(*p & 0xFFFF), out);
      }
      continue;
    }
    std::array<uint64_t, kBitmapContainerBytes / 8> words{};
    for (const uint64_t* p = b; p != e; ++p) {
      const uint32_t low = static_cast<uint32_t>(*p & 0xFFFF);
      words[low / 64] |= uint64_t{1} << (low % 64);
    }
    for (uint64_t word : words) {
      AppendLittleEndian32(static_cast<uint32_t>(word), out);
      AppendLittleEndian32(static_cast<uint32_t>(word >> 32), out);
    }
  }
}

}  // namespace

std::string DeletionVectorDescriptor::UniqueId() const {
  std::string id = storage_type;
  id += path_or_inline_dv;
  if (offset.has_value()) {
    // Appended piecewise: GCC 12 -O3 warns (-Wrestrict, falsely) on "@" + to_string().
    id += '@';
    id += std::to_string(*offset);
  }
  return id;
}

arrow::Result<std::string> Z85Decode(std::string_view text) {
  if (text.size() % 5 != 0) {
    return arrow::Status::Invalid("Z85 text length ", text.size(), " is not a multiple of 5");
  }
  std::string out;
  out.reserve(text.size() / 5 * 4);
  for (size_t i = 0; i < text.size(); i += 5) {
    uint64_t value = 0;
    for (size_t j = i; j < i + 5; ++j) {
      const int8_t digit = kZ85DecodeTable[static_cast<unsigned char>(text[j])];
      if (digit < 0) {
        return arrow::Status::Invalid("invalid Z85 character at offset ", j);
      }
      value = value * 85 + static_cast<uint64_t>(digit);
    }
    if (value > 0xFFFFFFFFu) {
      return arrow::Status::Invalid("Z85 group at offset ", i, " overflows 32 bits");
    }
    out.push_back(static_cast<char>(value >> 24));
    out.push_back(static_cast<char>(value >> 16));
    out.push_back(static_cast<char>(value >> 8));
    out.push_back(static_cast<char>(value));
  }
  return out;
}

arrow::Result<std::vector<uint64_t>> ParseDeletionVectorBitmap(std::string_view bytes) {
  return ParseBitmap(bytes, std::nullopt);
}

arrow::Result<std::string> DeletionVectorPath(const DeletionVectorDescriptor& dv,
                                              const std::string& table_root) {
  if (dv.storage_type == "p") return AbsoluteUriToPath(dv.path_or_inline_dv);
  if (dv.storage_type == "i") {
    return arrow::Status::Invalid("inline deletion vector (storageType 'i') has no file");
  }
  if (dv.storage_type != "u") {
    return arrow::Status::Invalid("unknown deletion vector storageType '", dv.storage_type,
                                  "' (expected 'u', 'i' or 'p')");
  }
  const std::string_view encoded = dv.path_or_inline_dv;
  if (encoded.size() < kZ85UuidChars) {
    return arrow::Status::Invalid("deletion vector pathOrInlineDv '", encoded, "' is shorter than ",
                                  kZ85UuidChars, " characters");
  }
  const std::string_view prefix = encoded.substr(0, encoded.size() - kZ85UuidChars);
  // Delta writes an alphanumeric random prefix; refusing separators and dot segments keeps
  // a hostile log from pointing outside the table.
  if (prefix.find_first_of("/\\") != std::string_view::npos || prefix == "." || prefix == "..") {
    return arrow::Status::Invalid("deletion vector path prefix '", prefix,
                                  "' is not a single folder name");
  }
  auto uuid = Z85Decode(encoded.substr(prefix.size()));
  if (!uuid.ok()) {
    return uuid.status().WithMessage("deletion vector pathOrInlineDv '", encoded,
                                     "' does not end in a Z85 UUID: ", uuid.status().message());
  }
  const std::string file_name = "deletion_vector_" + FormatUuid(*uuid) + ".bin";
  const std::string folder = prefix.empty() ? table_root : JoinPath(table_root, prefix);
  return JoinPath(folder, file_name);
}

arrow::Result<std::vector<uint64_t>> LoadDeletionVector(const DeletionVectorDescriptor& dv,
                                                        arrow::fs::FileSystem& fs,
                                                        const std::string& table_root) {
  if (dv.cardinality < 0) {
    return arrow::Status::Invalid("deletion vector cardinality ", dv.cardinality, " is negative");
  }
  if (dv.storage_type != "i") {
    ARROW_ASSIGN_OR_RAISE(std::string path, DeletionVectorPath(dv, table_root));
    return LoadFromFile(dv, fs, path);
  }
  auto decoded = Z85Decode(dv.path_or_inline_dv);
  if (!decoded.ok()) {
    return decoded.status().WithMessage("inline deletion vector: ", decoded.status().message());
  }
  // Z85 encodes whole 4-byte groups, so Delta pads the bitmap and records its true length in
  // sizeInBytes; the padding is dropped here.
  if (dv.size_in_bytes < 0 || static_cast<size_t>(dv.size_in_bytes) > decoded->size()) {
    return arrow::Status::Invalid("inline deletion vector decodes to ", decoded->size(),
                                  " bytes, fewer than its sizeInBytes ", dv.size_in_bytes);
  }
  auto rows = ParseBitmap(std::string_view(*decoded).substr(0, dv.size_in_bytes), dv.cardinality);
  if (!rows.ok()) {
    return rows.status().WithMessage("inline deletion vector: ", rows.status().message());
  }
  return rows;
}

uint32_t DeletionVectorCrc32(std::string_view data) { return Crc32(data); }

arrow::Result<std::string> Z85Encode(std::string_view bytes) {
  if (bytes.size() % 4 != 0) {
    return arrow::Status::Invalid("Z85 input length ", bytes.size(), " is not a multiple of 4");
  }
  std::string out;
  out.reserve(bytes.size() / 4 * 5);
  for (size_t i = 0; i < bytes.size(); i += 4) {
    uint32_t value = LoadBigEndian32(Bytes(bytes) + i);
    char group[5];
    for (int j = 4; j >= 0; --j) {
      group[j] = kZ85Alphabet[value % 85];
      value /= 85;
    }
    out.append(group, 5);
  }
  return out;
}

arrow::Result<std::string> SerializeDeletionVectorBitmap(const std::vector<uint64_t>& rows) {
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i] <= rows[i - 1]) {
      return arrow::Status::Invalid("deletion vector row indexes must be strictly ascending: ",
                                    rows[i], " follows ", rows[i - 1], " at position ", i);
    }
  }
  std::string out;
  // Array containers take 2 bytes a value: a sensible first guess.
  out.reserve(16 + 2 * rows.size());
  AppendLittleEndian32(kPortableMagic, &out);
  size_t buckets = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i == 0 || (rows[i] >> 32) != (rows[i - 1] >> 32)) ++buckets;
  }
  AppendLittleEndian32(static_cast<uint32_t>(buckets), &out);
  AppendLittleEndian32(static_cast<uint32_t>(uint64_t{buckets} >> 32), &out);
  const uint64_t* data = rows.data();
  for (size_t i = 0; i < rows.size();) {
    const uint64_t key = rows[i] >> 32;
    size_t j = i;
    while (j < rows.size() && (rows[j] >> 32) == key) ++j;
    AppendLittleEndian32(static_cast<uint32_t>(key), &out);
    AppendRoaring32(data + i, data + j, &out);
    i = j;
  }
  return out;
}

arrow::Result<DeletionVectorFileBytes> BuildDeletionVectorFile(
    const std::vector<std::string>& bitmaps) {
  DeletionVectorFileBytes file;
  file.bytes.push_back(static_cast<char>(1));  // format version
  for (const auto& bitmap : bitmaps) {
    // Descriptors hold 32-bit offsets and sizes.
    if (bitmap.size() > 0x7FFFFFF0u || file.bytes.size() > 0x7FFFFFF0u - bitmap.size()) {
      return arrow::Status::Invalid("deletion vector file would exceed 2 GiB");
    }
    file.offsets.push_back(static_cast<int32_t>(file.bytes.size()));
    AppendBigEndian32(static_cast<uint32_t>(bitmap.size()), &file.bytes);
    file.bytes += bitmap;
    AppendBigEndian32(Crc32(bitmap), &file.bytes);
  }
  return file;
}

arrow::Result<std::string> EncodeDeletionVectorUuid(std::string_view uuid,
                                                    std::string_view random_prefix) {
  if (uuid.size() != 16) {
    return arrow::Status::Invalid("deletion vector UUID must be 16 bytes, got ", uuid.size());
  }
  for (char c : random_prefix) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      return arrow::Status::Invalid("deletion vector random prefix '", random_prefix,
                                    "' must be alphanumeric");
    }
  }
  ARROW_ASSIGN_OR_RAISE(std::string encoded, Z85Encode(uuid));
  return std::string(random_prefix) + encoded;
}

std::vector<uint64_t> UnionRowIndexes(const std::vector<uint64_t>& a,
                                      const std::vector<uint64_t>& b) {
  std::vector<uint64_t> out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace stratalake::delta
