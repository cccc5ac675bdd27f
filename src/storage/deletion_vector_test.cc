#include "storage/deletion_vector.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/filesystem/localfs.h>
#include <arrow/filesystem/mockfs.h>
#include <arrow/status.h>
#include <gtest/gtest.h>

#ifndef STRATALAKE_SOURCE_DIR
#error "STRATALAKE_SOURCE_DIR must name the repository root"
#endif

namespace stratalake::delta {
namespace {

#define DV_CONCAT_INNER(a, b) a##b
#define DV_CONCAT(a, b) DV_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                                   \
  auto DV_CONCAT(result_, __LINE__) = (rexpr);                                             \
  ASSERT_TRUE(DV_CONCAT(result_, __LINE__).ok()) << DV_CONCAT(result_, __LINE__).status(); \
  lhs = std::move(DV_CONCAT(result_, __LINE__)).ValueUnsafe()
#define ASSERT_OK(expr)                      \
  do {                                       \
    ::arrow::Status _st = (expr);            \
    ASSERT_TRUE(_st.ok()) << _st.ToString(); \
  } while (false)

using Rows = std::vector<uint64_t>;

// ---------------------------------------------------------------------------------------
// Byte-level builders. The bitmaps in these tests are spelled out field by field so the
// tests check the parser against the format spec, not against a second serializer.

void PutU16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v));
  s->push_back(static_cast<char>(v >> 8));
}
void PutU32(std::string* s, uint32_t v) {
  PutU16(s, static_cast<uint16_t>(v));
  PutU16(s, static_cast<uint16_t>(v >> 16));
}
void PutU64(std::string* s, uint64_t v) {
  PutU32(s, static_cast<uint32_t>(v));
  PutU32(s, static_cast<uint32_t>(v >> 32));
}
void PutBigEndian32(std::string* s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s->push_back(static_cast<char>(v >> shift));
}

constexpr uint32_t kMagic = 1681511377;
constexpr uint32_t kNoRunCookie = 12346;
constexpr uint32_t kRunCookie = 12347;

// magic + bucket count, the start of every serialized deletion vector.
std::string Header(uint64_t buckets) {
  std::string s;
  PutU32(&s, kMagic);
  PutU64(&s, buckets);
  return s;
}

// Bitwise CRC-32 (zlib polynomial), deliberately a different algorithm from the
// table-driven one under test.
uint32_t ReferenceCrc32(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

// A DV file as Delta writes it: format version byte 1, then per DV a big-endian size,
// the bitmap and a big-endian CRC-32 of the bitmap.
std::string DvFileRecord(std::string_view bitmap) {
  std::string s;
  PutBigEndian32(&s, static_cast<uint32_t>(bitmap.size()));
  s.append(bitmap);
  PutBigEndian32(&s, ReferenceCrc32(bitmap));
  return s;
}

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string Z85Encode(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 4) {
    uint32_t v = 0;
    for (size_t j = i; j < i + 4; ++j) v = (v << 8) | static_cast<unsigned char>(bytes[j]);
    char group[5];
    for (int k = 4; k >= 0; --k) {
      group[k] = kZ85Alphabet[v % 85];
      v /= 85;
    }
    out.append(group, 5);
  }
  return out;
}

// One bucket with a single no-run-cookie array container {1, 5, 65535} under key 0.
std::string ArrayBitmap() {
  std::string s = Header(1);
  PutU32(&s, 0);  // bucket key
  PutU32(&s, kNoRunCookie);
  PutU32(&s, 1);   // containers
  PutU16(&s, 0);   // container key
  PutU16(&s, 2);   // cardinality - 1
  PutU32(&s, 16);  // offset of the container from the cookie
  PutU16(&s, 1);
  PutU16(&s, 5);
  PutU16(&s, 65535);
  return s;
}

// Container key 1 as a bitmap container holding the 5000 even values 0..9998.
std::string BitmapContainerBitmap(Rows* expected) {
  std::string s = Header(1);
  PutU32(&s, 0);
  PutU32(&s, kNoRunCookie);
  PutU32(&s, 1);
  PutU16(&s, 1);
  PutU16(&s, 5000 - 1);
  PutU32(&s, 16);
  std::vector<uint64_t> words(1024, 0);
  for (uint32_t v = 0; v < 10000; v += 2) {
    words[v / 64] |= uint64_t{1} << (v % 64);
    expected->push_back((uint64_t{1} << 16) | v);
  }
  for (uint64_t w : words) PutU64(&s, w);
  return s;
}

// Run cookie with two containers (below NO_OFFSET_THRESHOLD, so no offset header):
// key 0 is a run container {10..14, 100}, key 2 an array container {7}.
std::string RunCookieBitmap() {
  std::string s = Header(1);
  PutU32(&s, 0);
  PutU32(&s, kRunCookie | ((2 - 1) << 16));
  s.push_back(0b01);  // container 0 is a run container
  PutU16(&s, 0);
  PutU16(&s, 6 - 1);
  PutU16(&s, 2);
  PutU16(&s, 1 - 1);
  PutU16(&s, 2);  // two runs
  PutU16(&s, 10);
  PutU16(&s, 4);
  PutU16(&s, 100);
  PutU16(&s, 0);
  PutU16(&s, 7);
  return s;
}

// Run cookie with four containers, so the offset header is present: run, array, bitmap,
// run, in that order.
std::string RunCookieWithOffsetsBitmap(Rows* expected) {
  std::string s = Header(1);
  PutU32(&s, 0);
  PutU32(&s, kRunCookie | ((4 - 1) << 16));
  s.push_back(0b1001);
  // Descriptive header.
  PutU16(&s, 0);
  PutU16(&s, 3 - 1);  // run 0..2
  PutU16(&s, 1);
  PutU16(&s, 2 - 1);  // array {4, 9}
  PutU16(&s, 3);
  PutU16(&s, 4097 - 1);  // bitmap 0..4096
  PutU16(&s, 9);
  PutU16(&s, 65536 - 1);  // full run 0..65535
  // Offset header, relative to the cookie: 4 + 1 + 16 + 16 = 37.
  PutU32(&s, 37);
  PutU32(&s, 37 + 6);
  PutU32(&s, 37 + 6 + 4);
  PutU32(&s, 37 + 6 + 4 + 8192);
  PutU16(&s, 1);
  PutU16(&s, 0);
  PutU16(&s, 2);
  PutU16(&s, 4);
  PutU16(&s, 9);
  std::vector<uint64_t> words(1024, 0);
  for (uint32_t v = 0; v <= 4096; ++v) words[v / 64] |= uint64_t{1} << (v % 64);
  for (uint64_t w : words) PutU64(&s, w);
  PutU16(&s, 1);
  PutU16(&s, 0);
  PutU16(&s, 65535);

  for (uint64_t v = 0; v <= 2; ++v) expected->push_back(v);
  expected->push_back((1 << 16) | 4);
  expected->push_back((1 << 16) | 9);
  for (uint64_t v = 0; v <= 4096; ++v) expected->push_back((3 << 16) | v);
  for (uint64_t v = 0; v <= 65535; ++v) expected->push_back((9 << 16) | v);
  return s;
}

// Three buckets, as Delta writes row indexes >= 2^32: bucket 0 is empty (Delta serializes
// every bucket below the highest), bucket 1 holds 2^32 + 3, bucket 5 holds the last
// 65536 values of its range as one run.
std::string MultiBucketBitmap() {
  std::string s = Header(3);
  PutU32(&s, 0);
  PutU32(&s, kNoRunCookie);
  PutU32(&s, 0);
  PutU32(&s, 1);
  PutU32(&s, kNoRunCookie);
  PutU32(&s, 1);
  PutU16(&s, 0);
  PutU16(&s, 0);
  PutU32(&s, 16);
  PutU16(&s, 3);
  PutU32(&s, 5);
  PutU32(&s, kRunCookie);  // one container
  s.push_back(0b1);
  PutU16(&s, 0xFFFF);
  PutU16(&s, 0xFFFF);
  PutU16(&s, 1);
  PutU16(&s, 0);
  PutU16(&s, 0xFFFF);
  return s;
}

// ---------------------------------------------------------------------------------------
// Z85

TEST(Z85DecodeTest, ZeroMqSpecVector) {
  ASSERT_OK_AND_ASSIGN(std::string bytes, Z85Decode("HelloWorld"));
  EXPECT_EQ(bytes, std::string("\x86\x4F\xD2\x6F\xB5\x59\xF7\x5B", 8));
}

TEST(Z85DecodeTest, Extremes) {
  ASSERT_OK_AND_ASSIGN(std::string empty, Z85Decode(""));
  EXPECT_EQ(empty, "");
  ASSERT_OK_AND_ASSIGN(std::string zeros, Z85Decode("00000"));
  EXPECT_EQ(zeros, std::string(4, '\0'));
  ASSERT_OK_AND_ASSIGN(std::string ones, Z85Decode("%nSc0"));
  EXPECT_EQ(ones, std::string(4, '\xFF'));
  ASSERT_OK_AND_ASSIGN(std::string counting, Z85Decode("009c61o!#m2NH?C3>iWS"));
  EXPECT_EQ(counting,
            std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16));
}

TEST(Z85DecodeTest, RoundTripsRandomBytes) {
  std::mt19937 rng(42);
  for (int n = 0; n <= 64; n += 4) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    ASSERT_OK_AND_ASSIGN(std::string decoded, Z85Decode(Z85Encode(bytes)));
    EXPECT_EQ(decoded, bytes) << "length " << n;
  }
}

TEST(Z85DecodeTest, RejectsMalformedText) {
  EXPECT_TRUE(Z85Decode("Hell").status().IsInvalid());  // not a multiple of 5
  EXPECT_TRUE(Z85Decode("HelloWorl").status().IsInvalid());
  EXPECT_TRUE(Z85Decode("Hel~o").status().IsInvalid());  // '~' is not in the alphabet
  EXPECT_TRUE(Z85Decode("Hel\"o").status().IsInvalid());
  EXPECT_TRUE(Z85Decode(std::string("Hel\0o", 5)).status().IsInvalid());
  EXPECT_TRUE(Z85Decode("Hel\xC3o").status().IsInvalid());
  EXPECT_TRUE(Z85Decode("%nSc1").status().IsInvalid());  // 2^32, one past the max
  EXPECT_TRUE(Z85Decode("#####").status().IsInvalid());  // 85^5 - 1
  auto bad = Z85Decode("HelloWor~d");
  EXPECT_NE(bad.status().message().find("offset 8"), std::string::npos) << bad.status();
}

// ---------------------------------------------------------------------------------------
// Bitmap parsing

TEST(ParseDeletionVectorBitmapTest, Empty) {
  ASSERT_OK_AND_ASSIGN(Rows rows, ParseDeletionVectorBitmap(Header(0)));
  EXPECT_TRUE(rows.empty());
}

TEST(ParseDeletionVectorBitmapTest, ArrayContainer) {
  ASSERT_OK_AND_ASSIGN(Rows rows, ParseDeletionVectorBitmap(ArrayBitmap()));
  EXPECT_EQ(rows, (Rows{1, 5, 65535}));
}

TEST(ParseDeletionVectorBitmapTest, BitmapContainer) {
  Rows expected;
  std::string bytes = BitmapContainerBitmap(&expected);
  ASSERT_OK_AND_ASSIGN(Rows rows, ParseDeletionVectorBitmap(bytes));
  ASSERT_EQ(rows.size(), 5000u);
  EXPECT_EQ(rows.front(), 65536u);
  EXPECT_EQ(rows.back(), 65536u + 9998u);
  EXPECT_EQ(rows, expected);
}

TEST(ParseDeletionVectorBitmapTest, RunCookieWithoutOffsetHeader) {
  ASSERT_OK_AND_ASSIGN(Rows rows, ParseDeletionVectorBitmap(RunCookieBitmap()));
  EXPECT_EQ(rows, (Rows{10, 11, 12, 13, 14, 100, (2u << 16) | 7}));
}

TEST(ParseDeletionVectorBitmapTest, RunCookieWithOffsetHeaderAndAllContainerKinds) {
  Rows expected;
  std::string bytes = RunCookieWithOffsetsBitmap(&expected);
  ASSERT_OK_AND_ASSIGN(Rows rows, ParseDeletionVectorBitmap(bytes));
  ASSERT_EQ(rows.size(), 3u + 2u + 4097u + 65536u);
  EXPECT_EQ(rows, expected);
}

TEST(ParseDeletionVectorBitmapTest, RowIndexesAbove32Bits) {
  ASSERT_OK_AND_ASSIGN(Rows rows, ParseDeletionVectorBitmap(MultiBucketBitmap()));
  ASSERT_EQ(rows.size(), 1u + 65536u);
  EXPECT_EQ(rows[0], (uint64_t{1} << 32) + 3);
  EXPECT_EQ(rows[1], (uint64_t{5} << 32) | 0xFFFF0000u);
  EXPECT_EQ(rows.back(), (uint64_t{5} << 32) | 0xFFFFFFFFu);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
}

TEST(ParseDeletionVectorBitmapTest, EveryTruncationIsAnError) {
  Rows ignored;
  const std::vector<std::string> inputs = {Header(0),
                                           ArrayBitmap(),
                                           BitmapContainerBitmap(&ignored),
                                           RunCookieBitmap(),
                                           RunCookieWithOffsetsBitmap(&ignored),
                                           MultiBucketBitmap()};
  for (const std::string& input : inputs) {
    ASSERT_TRUE(ParseDeletionVectorBitmap(input).ok());
    for (size_t n = 0; n < input.size(); ++n) {
      auto result = ParseDeletionVectorBitmap(std::string_view(input).substr(0, n));
      ASSERT_TRUE(result.status().IsInvalid())
          << "prefix of " << n << " of " << input.size() << " bytes: " << result.status();
    }
  }
}

TEST(ParseDeletionVectorBitmapTest, SurvivesEveryByteCorruption) {
  // Not every flip is detectable (e.g. a changed array value that stays ascending), but
  // none may crash or read out of bounds; run under ASan for the real check.
  Rows ignored;
  const std::vector<std::string> inputs = {
      ArrayBitmap(), RunCookieBitmap(), RunCookieWithOffsetsBitmap(&ignored), MultiBucketBitmap()};
  for (const std::string& input : inputs) {
    for (size_t i = 0; i < input.size(); ++i) {
      for (uint8_t mask : {0x01, 0x80, 0xFF}) {
        std::string corrupt = input;
        corrupt[i] = static_cast<char>(corrupt[i] ^ mask);
        auto result = ParseDeletionVectorBitmap(corrupt);
        if (result.ok()) {
          EXPECT_TRUE(std::is_sorted(result->begin(), result->end()));
          EXPECT_TRUE(std::adjacent_find(result->begin(), result->end()) == result->end());
        }
      }
    }
  }
}

void ExpectInvalid(const std::string& bytes, std::string_view message_part) {
  auto result = ParseDeletionVectorBitmap(bytes);
  ASSERT_TRUE(result.status().IsInvalid()) << result.status();
  EXPECT_NE(result.status().message().find(message_part), std::string::npos) << result.status();
}

TEST(ParseDeletionVectorBitmapTest, RejectsStructuralErrors) {
  {
    std::string s = ArrayBitmap();
    s[0] ^= 1;
    ExpectInvalid(s, "magic number");
  }
  {
    std::string s = Header(0);
    s.push_back('x');
    ExpectInvalid(s, "1 trailing bytes after the last bucket at byte offset 12");
  }
  {
    std::string s = Header(uint64_t{1} << 62);  // must not reserve anything
    ExpectInvalid(s, "bucket count");
  }
  {
    std::string s = Header(1);
    PutU32(&s, 0);
    PutU32(&s, 12345);
    PutU32(&s, 0);
    ExpectInvalid(s, "unknown Roaring cookie 12345 (expected 12346 or 12347) at byte offset 16");
  }
  {
    std::string s = Header(1);
    PutU32(&s, 0);
    PutU32(&s, kNoRunCookie | (1u << 16));  // the no-run cookie has no count bits
    PutU32(&s, 0);
    ExpectInvalid(s, "unknown Roaring cookie");
  }
  {
    std::string s = Header(1);
    PutU32(&s, 0);
    PutU32(&s, kNoRunCookie);
    PutU32(&s, 0xFFFFFFFFu);
    ExpectInvalid(s, "container count 4294967295 exceeds 65536");
  }
  {
    std::string s = Header(1);
    PutU32(&s, 0);
    PutU32(&s, kNoRunCookie);
    PutU32(&s, 65536);  // plausible count, but no bytes behind it
    ExpectInvalid(s, "container descriptive header needs 262144 bytes at byte offset 24");
  }
  {
    std::string s = Header(2);
    for (int i = 0; i < 2; ++i) {
      PutU32(&s, 7);  // same bucket key twice
      PutU32(&s, kNoRunCookie);
      PutU32(&s, 0);
    }
    ExpectInvalid(s, "bucket keys are not strictly ascending at byte offset 24");
  }
}

TEST(ParseDeletionVectorBitmapTest, RejectsContainerErrors) {
  {
    std::string s = Header(1);
    PutU32(&s, 0);
    PutU32(&s, kNoRunCookie);
    PutU32(&s, 2);
    PutU16(&s, 3);
    PutU16(&s, 0);
    PutU16(&s, 3);  // repeated container key
    PutU16(&s, 0);
    PutU32(&s, 0);
    PutU32(&s, 0);
    PutU16(&s, 1);
    PutU16(&s, 1);
    ExpectInvalid(s, "container keys are not strictly ascending at byte offset 28");
  }
  {
    std::string s = ArrayBitmap();
    s[s.size() - 4] = 1;  // {1, 5, 65535} -> {1, 1, 65535}
    s[s.size() - 3] = 0;
    ExpectInvalid(s, "array container values are not strictly ascending at byte offset 34");
  }
  {
    Rows ignored;
    std::string s = BitmapContainerBitmap(&ignored);
    s[s.size() - 1] = 1;  // one bit more than the header's cardinality
    ExpectInvalid(s, "bitmap container has 5001 bits set but its header says 5000");
  }
  {
    std::string s = RunCookieBitmap();
    s[s.size() - 6] = 12;  // second run now starts at 12, overlapping 10..14
    ExpectInvalid(s, "runs overlap or are not ascending");
  }
  {
    std::string s = RunCookieBitmap();
    s[s.size() - 4] = 1;  // second run 100..101: covers 7 values, header says 6
    ExpectInvalid(s, "run container covers 7 values but its header says 6");
  }
  {
    std::string s = MultiBucketBitmap();
    s[s.size() - 4] = 1;  // run 1..65536
    ExpectInvalid(s, "run extends past 65535");
  }
}

// ---------------------------------------------------------------------------------------
// Descriptors and paths

DeletionVectorDescriptor Descriptor(std::string type, std::string path,
                                    std::optional<int32_t> offset, int32_t size,
                                    int64_t cardinality) {
  DeletionVectorDescriptor dv;
  dv.storage_type = std::move(type);
  dv.path_or_inline_dv = std::move(path);
  dv.offset = offset;
  dv.size_in_bytes = size;
  dv.cardinality = cardinality;
  return dv;
}

TEST(DeletionVectorDescriptorTest, UniqueId) {
  EXPECT_EQ(Descriptor("u", "ab^-aqEH.-t@S}K{vb[*k^", 1, 34, 1).UniqueId(),
            "uab^-aqEH.-t@S}K{vb[*k^@1");
  EXPECT_EQ(Descriptor("u", "ab^-aqEH.-t@S}K{vb[*k^", 0, 34, 1).UniqueId(),
            "uab^-aqEH.-t@S}K{vb[*k^@0");
  EXPECT_EQ(
      Descriptor("i", "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", std::nullopt, 40, 6)
          .UniqueId(),
      "iwi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L");
}

TEST(DeletionVectorPathTest, UuidWithoutPrefix) {
  ASSERT_OK_AND_ASSIGN(
      std::string path,
      DeletionVectorPath(Descriptor("u", "009c61o!#m2NH?C3>iWS", 1, 34, 1), "/data/table"));
  EXPECT_EQ(path, "/data/table/deletion_vector_00010203-0405-0607-0809-0a0b0c0d0e0f.bin");
  ASSERT_OK_AND_ASSIGN(
      std::string slashed,
      DeletionVectorPath(Descriptor("u", "009c61o!#m2NH?C3>iWS", 1, 34, 1), "/data/table/"));
  EXPECT_EQ(slashed, path);
}

TEST(DeletionVectorPathTest, UuidWithPrefix) {
  ASSERT_OK_AND_ASSIGN(
      std::string path,
      DeletionVectorPath(Descriptor("u", "ab009c61o!#m2NH?C3>iWS", 1, 34, 1), "bucket/table"));
  EXPECT_EQ(path, "bucket/table/ab/deletion_vector_00010203-0405-0607-0809-0a0b0c0d0e0f.bin");
}

TEST(DeletionVectorPathTest, RejectsBadUuidForms) {
  const std::string root = "/t";
  EXPECT_TRUE(DeletionVectorPath(Descriptor("u", "009c61o!#m2NH?C3>iW", 1, 34, 1), root)
                  .status()
                  .IsInvalid());  // 19 characters
  EXPECT_TRUE(DeletionVectorPath(Descriptor("u", "009c61o!#m2NH?C3>iW~", 1, 34, 1), root)
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(DeletionVectorPath(Descriptor("u", "ab#####1o!#m2NH?C3>iWS", 1, 34, 1), root)
                  .status()
                  .IsInvalid());  // first Z85 group overflows 32 bits
  EXPECT_TRUE(DeletionVectorPath(Descriptor("u", "../009c61o!#m2NH?C3>iWS", 1, 34, 1), root)
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(DeletionVectorPath(Descriptor("u", "..009c61o!#m2NH?C3>iWS", 1, 34, 1), root)
                  .status()
                  .IsInvalid());
}

TEST(DeletionVectorPathTest, AbsolutePaths) {
  auto path = [](std::string uri) {
    return DeletionVectorPath(Descriptor("p", std::move(uri), 1, 34, 1), "/ignored");
  };
  ASSERT_OK_AND_ASSIGN(std::string a, path("file:/tmp/dv%20dir/dv.bin"));
  EXPECT_EQ(a, "/tmp/dv dir/dv.bin");
  ASSERT_OK_AND_ASSIGN(std::string b, path("file:///tmp/x%3Dy/dv.bin"));
  EXPECT_EQ(b, "/tmp/x=y/dv.bin");
  ASSERT_OK_AND_ASSIGN(std::string c, path("file://localhost/tmp/dv.bin"));
  EXPECT_EQ(c, "/tmp/dv.bin");
  ASSERT_OK_AND_ASSIGN(std::string d, path("/tmp/plain.bin"));
  EXPECT_EQ(d, "/tmp/plain.bin");
  ASSERT_OK_AND_ASSIGN(std::string e, path("s3://bucket/table/part%3D1/dv.bin"));
  EXPECT_EQ(e, "bucket/table/part=1/dv.bin");
  EXPECT_TRUE(path("file://otherhost/tmp/dv.bin").status().IsInvalid());
  EXPECT_TRUE(path("file:/tmp/%zzdv.bin").status().IsInvalid());
  EXPECT_TRUE(path("file:/tmp/dv.bin%2").status().IsInvalid());
}

TEST(DeletionVectorPathTest, InlineAndUnknownTypesHaveNoFile) {
  EXPECT_TRUE(
      DeletionVectorPath(Descriptor("i", "00000", std::nullopt, 4, 0), "/t").status().IsInvalid());
  EXPECT_TRUE(DeletionVectorPath(Descriptor("x", "009c61o!#m2NH?C3>iWS", 1, 34, 1), "/t")
                  .status()
                  .IsInvalid());
}

// ---------------------------------------------------------------------------------------
// Loading

class LoadDeletionVectorTest : public ::testing::Test {
 protected:
  arrow::fs::internal::MockFileSystem fs_{arrow::fs::TimePoint{}};
  const std::string uuid_z85_ = "009c61o!#m2NH?C3>iWS";
  const std::string file_ = "table/deletion_vector_00010203-0405-0607-0809-0a0b0c0d0e0f.bin";
};

TEST_F(LoadDeletionVectorTest, SeveralDvsInOneFile) {
  const std::string first = ArrayBitmap();
  const std::string second = RunCookieBitmap();
  std::string file = "\x01" + DvFileRecord(first);
  const int32_t second_offset = static_cast<int32_t>(file.size());
  file += DvFileRecord(second);
  ASSERT_OK(fs_.CreateFile(file_, file, /*recursive=*/true));

  auto one = Descriptor("u", uuid_z85_, std::nullopt, static_cast<int32_t>(first.size()), 3);
  ASSERT_OK_AND_ASSIGN(Rows rows1, LoadDeletionVector(one, fs_, "table"));
  EXPECT_EQ(rows1, (Rows{1, 5, 65535}));

  auto two = Descriptor("u", uuid_z85_, second_offset, static_cast<int32_t>(second.size()), 7);
  ASSERT_OK_AND_ASSIGN(Rows rows2, LoadDeletionVector(two, fs_, "table"));
  EXPECT_EQ(rows2, (Rows{10, 11, 12, 13, 14, 100, (2u << 16) | 7}));
}

TEST_F(LoadDeletionVectorTest, FileErrorsNameTheFile) {
  const std::string bitmap = ArrayBitmap();
  const int32_t size = static_cast<int32_t>(bitmap.size());
  const std::string good = "\x01" + DvFileRecord(bitmap);
  auto expect_error = [&](const std::string& contents, const DeletionVectorDescriptor& dv,
                          std::string_view message_part) {
    ASSERT_OK(fs_.CreateFile(file_, contents, /*recursive=*/true));
    auto result = LoadDeletionVector(dv, fs_, "table");
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.status().message().find(file_), std::string::npos) << result.status();
    EXPECT_NE(result.status().message().find(message_part), std::string::npos) << result.status();
  };

  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 1] ^= 1;
  expect_error(bad_crc, Descriptor("u", uuid_z85_, 1, size, 3), "CRC-32 mismatch");
  std::string bad_data = good;
  bad_data[30] ^= 1;
  expect_error(bad_data, Descriptor("u", uuid_z85_, 1, size, 3), "CRC-32 mismatch");
  expect_error(good, Descriptor("u", uuid_z85_, 1, size - 2, 3), "size prefix");
  expect_error(good, Descriptor("u", uuid_z85_, 1, size + 1, 3), "too short");
  expect_error(good, Descriptor("u", uuid_z85_, 1, 0x7FFFFFFF, 3), "too short");
  expect_error(good, Descriptor("u", uuid_z85_, 1000, size, 3), "too short");
  expect_error(good, Descriptor("u", uuid_z85_, -1, size, 3), "negative offset");
  expect_error(good, Descriptor("u", uuid_z85_, 1, size, 4),
               "holds 3 row indexes but the descriptor's cardinality is 4");
  expect_error(good.substr(0, good.size() - 1), Descriptor("u", uuid_z85_, 1, size, 3),
               "too short");

  // A well-formed record around a malformed bitmap: the CRC matches, the parser objects.
  std::string malformed = bitmap;
  malformed[0] ^= 1;
  expect_error("\x01" + DvFileRecord(malformed), Descriptor("u", uuid_z85_, 1, size, 3),
               "magic number");

  auto missing = LoadDeletionVector(Descriptor("u", "ab" + uuid_z85_, 1, size, 3), fs_, "table");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("table/ab/deletion_vector_"), std::string::npos)
      << missing.status();
}

TEST_F(LoadDeletionVectorTest, AbsolutePathOnLocalFileSystem) {
  char dir_template[] = "/tmp/stratalake_dv_test_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::filesystem::path dir = std::filesystem::path(dir_template) / "a dir";
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "my dv.bin", std::ios::binary);
    out << '\x01' << DvFileRecord(ArrayBitmap());
  }
  arrow::fs::LocalFileSystem local;
  const std::string uri = "file:" + std::string(dir_template) + "/a%20dir/my%20dv.bin";
  auto dv = Descriptor("p", uri, 1, static_cast<int32_t>(ArrayBitmap().size()), 3);
  auto rows = LoadDeletionVector(dv, local, "/unused");
  std::filesystem::remove_all(dir_template);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, (Rows{1, 5, 65535}));
}

TEST_F(LoadDeletionVectorTest, Inline) {
  // Delta pads inline bitmaps to whole Z85 groups; sizeInBytes gives the real length.
  const std::string bitmap = ArrayBitmap();  // 30 bytes, padded to 32
  ASSERT_EQ(bitmap.size() % 4, 2u);
  const std::string encoded = Z85Encode(bitmap + std::string(2, '\0'));
  const int32_t size = static_cast<int32_t>(bitmap.size());

  ASSERT_OK_AND_ASSIGN(
      Rows rows, LoadDeletionVector(Descriptor("i", encoded, std::nullopt, size, 3), fs_, ""));
  EXPECT_EQ(rows, (Rows{1, 5, 65535}));

  auto wrong_count = LoadDeletionVector(Descriptor("i", encoded, std::nullopt, size, 2), fs_, "");
  EXPECT_TRUE(wrong_count.status().IsInvalid());
  EXPECT_NE(wrong_count.status().message().find("inline deletion vector"), std::string::npos);
  // Without trimming the padding the bitmap has trailing bytes.
  EXPECT_TRUE(LoadDeletionVector(Descriptor("i", encoded, std::nullopt, size + 2, 3), fs_, "")
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(LoadDeletionVector(Descriptor("i", encoded, std::nullopt, size + 3, 3), fs_, "")
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(LoadDeletionVector(Descriptor("i", encoded + "~~~~~", std::nullopt, size, 3), fs_, "")
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(LoadDeletionVector(Descriptor("i", encoded, std::nullopt, size, -1), fs_, "")
                  .status()
                  .IsInvalid());
}

// ---------------------------------------------------------------------------------------
// Real deletion vectors written by Spark / Delta Lake (conformance corpus).

// Reads the flat `"deletionVector":{...}` objects out of Delta log lines. Values are plain
// strings (Z85 contains no quote or backslash) and integers, so a small scanner suffices.
struct LoggedDv {
  DeletionVectorDescriptor dv;
  std::string action;        // "add" or "remove"
  int64_t num_records = -1;  // from the add's stats, -1 when absent
};

std::vector<LoggedDv> ReadLoggedDvs(const std::filesystem::path& log_dir) {
  std::vector<LoggedDv> out;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(log_dir)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      const size_t at = line.find("\"deletionVector\":{");
      if (at == std::string::npos) continue;
      LoggedDv logged;
      logged.action = line.starts_with("{\"add\"") ? "add" : "remove";
      size_t i = at + std::string_view("\"deletionVector\":{").size();
      while (i < line.size() && line[i] != '}') {
        const size_t key_end = line.find('"', i + 1);
        const std::string key = line.substr(i + 1, key_end - i - 1);
        i = key_end + 2;  // past the closing quote and the colon
        std::string value;
        if (line[i] == '"') {
          const size_t value_end = line.find('"', i + 1);
          value = line.substr(i + 1, value_end - i - 1);
          i = value_end + 1;
        } else {
          const size_t value_end = line.find_first_of(",}", i);
          value = line.substr(i, value_end - i);
          i = value_end;
        }
        if (key == "storageType") logged.dv.storage_type = value;
        if (key == "pathOrInlineDv") logged.dv.path_or_inline_dv = value;
        if (key == "offset") logged.dv.offset = std::stoi(value);
        if (key == "sizeInBytes") logged.dv.size_in_bytes = std::stoi(value);
        if (key == "cardinality") logged.dv.cardinality = std::stoll(value);
        if (line[i] == ',') ++i;
      }
      const size_t records = line.find("numRecords\\\":");
      if (records != std::string::npos) {
        logged.num_records =
            std::stoll(line.substr(records + std::string_view("numRecords\\\":").size()));
      }
      out.push_back(std::move(logged));
    }
  }
  return out;
}

class GoldenDeletionVectorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::filesystem::path corpus = std::filesystem::path(STRATALAKE_SOURCE_DIR) / ".." /
                                         "shared" / "conformance" / "delta-golden";
    char dir_template[] = "/tmp/stratalake_dv_golden_XXXXXX";
    if (mkdtemp(dir_template) == nullptr) {
      *setup_error_ = "cannot create a temporary directory";
      return;
    }
    *root_ = dir_template;
    for (const char* table :
         {"dv-with-columnmapping", "dv-partitioned-with-checkpoint", "log-replay-dv-key-cases"}) {
      const std::filesystem::path archive = corpus / (std::string(table) + ".tar.zst");
      if (!std::filesystem::exists(archive)) {
        *setup_error_ = "conformance corpus archive missing: " + archive.string() +
                        " (expected the Delta golden tables next to the repository)";
        return;
      }
      const std::string command =
          "tar --zstd -xf '" + archive.string() + "' -C '" + root_->string() + "'";
      if (std::system(command.c_str()) != 0) {
        *setup_error_ = "extracting the conformance corpus failed: " + command;
        return;
      }
    }
  }

  static void TearDownTestSuite() {
    if (!root_->empty()) std::filesystem::remove_all(*root_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static std::string TableRoot(const std::string& table) {
    return (*root_ / table / "delta").string();
  }

  // Loads every distinct DV logged by `table`, checking each against its descriptor and
  // the add's row count; returns them keyed by pathOrInlineDv.
  static std::map<std::string, Rows> LoadAll(const std::string& table, size_t expected_distinct) {
    std::map<std::string, Rows> loaded;
    arrow::fs::LocalFileSystem fs;
    const std::vector<LoggedDv> logged = ReadLoggedDvs(*root_ / table / "delta" / "_delta_log");
    EXPECT_FALSE(logged.empty()) << table;
    for (const LoggedDv& entry : logged) {
      const DeletionVectorDescriptor& dv = entry.dv;
      EXPECT_EQ(dv.storage_type, "u");
      auto rows = LoadDeletionVector(dv, fs, TableRoot(table));
      if (!rows.ok()) {
        ADD_FAILURE() << table << " " << dv.UniqueId() << ": " << rows.status();
        continue;
      }
      EXPECT_EQ(static_cast<int64_t>(rows->size()), dv.cardinality) << dv.UniqueId();
      EXPECT_TRUE(std::adjacent_find(rows->begin(), rows->end(), std::greater_equal<>()) ==
                  rows->end())
          << dv.UniqueId() << " is not strictly ascending";
      if (entry.num_records >= 0 && !rows->empty()) {
        EXPECT_LT(rows->back(), static_cast<uint64_t>(entry.num_records)) << dv.UniqueId();
      }
      loaded[dv.path_or_inline_dv] = *rows;
    }
    EXPECT_EQ(loaded.size(), expected_distinct) << table;
    return loaded;
  }

  static inline std::string* setup_error_ = new std::string;
  static inline std::filesystem::path* root_ = new std::filesystem::path;
};

TEST_F(GoldenDeletionVectorTest, LogReplayDvKeyCases) {
  // The table's single file has ids 0..49 in row order; expected/ lacks ids 0, 7 and 14,
  // and the three commits delete one of them each.
  std::map<std::string, Rows> dvs = LoadAll("log-replay-dv-key-cases", 3);
  EXPECT_EQ(dvs["h{&8fAg]=QYJvl-}c!yH"], (Rows{0}));
  EXPECT_EQ(dvs["j=hZPftg7qJYIw^L+Oz9"], (Rows{0, 7}));
  EXPECT_EQ(dvs["^jP?.<zvDfIGb{C.FPij"], (Rows{0, 7, 14}));

  ASSERT_OK_AND_ASSIGN(std::string path,
                       DeletionVectorPath(Descriptor("u", "^jP?.<zvDfIGb{C.FPij", 1, 38, 3),
                                          TableRoot("log-replay-dv-key-cases")));
  EXPECT_EQ(path, TableRoot("log-replay-dv-key-cases") +
                      "/deletion_vector_d12e7d16-e46d-48c9-8a71-b222c26dfc3b.bin");
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST_F(GoldenDeletionVectorTest, DvPartitionedWithCheckpoint) {
  std::map<std::string, Rows> dvs = LoadAll("dv-partitioned-with-checkpoint", 10);
  // Live at the latest version: part=6 and part=8 second files, whose first row
  // (col1 = 26 and 28) is missing from expected/.
  EXPECT_EQ(dvs["]g#Gi8g29gLy&KMkGJr?"], (Rows{0}));
  EXPECT_EQ(dvs["7NnC4LX-RqU.S:B4VD9n"], (Rows{0}));
  // part=0 first file: a first DELETE marks row 0, a second marks rows 0 and 1.
  EXPECT_EQ(dvs["0X9F0q2<2yJ-f)Gm2!e0"], (Rows{0}));
  EXPECT_EQ(dvs["Zcq?bs*HKQWCB[Sjf[.o"], (Rows{0, 1}));
  EXPECT_EQ(dvs["+V9Oq([R6mTaoM.}Isa)"], (Rows{0, 1}));
}

TEST_F(GoldenDeletionVectorTest, DvWithColumnMapping) {
  std::map<std::string, Rows> dvs = LoadAll("dv-with-columnmapping", 10);
  EXPECT_EQ(dvs["^wV}@i>E%:Tv:EZ=7q>&"], (Rows{0}));
  EXPECT_EQ(dvs["*Cr(.vsy[nS2z}u{${-v"], (Rows{0}));
  EXPECT_EQ(dvs["5DxE90SCJoMhWOS&LEbJ"], (Rows{0}));
  EXPECT_EQ(dvs["0Mb{.bIUQYOtd%By%1f@"], (Rows{0, 1}));
  EXPECT_EQ(dvs["kqleN6eh%pR:{MHoS{Q]"], (Rows{0, 1}));
}

TEST_F(GoldenDeletionVectorTest, CorruptedRealFileIsRejected) {
  const std::string table = "log-replay-dv-key-cases";
  const std::filesystem::path file =
      *root_ / table / "delta" / "deletion_vector_d12e7d16-e46d-48c9-8a71-b222c26dfc3b.bin";
  std::string contents;
  {
    std::ifstream in(file, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    contents = buffer.str();
  }
  ASSERT_EQ(contents.size(), 47u);  // version byte + 4 + 38 + 4
  arrow::fs::LocalFileSystem fs;
  const auto dv = Descriptor("u", "^jP?.<zvDfIGb{C.FPij", 1, 38, 3);
  for (size_t i = 1; i < contents.size(); ++i) {
    std::string corrupt = contents;
    corrupt[i] ^= 0x10;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << corrupt;
    auto rows = LoadDeletionVector(dv, fs, TableRoot(table));
    EXPECT_FALSE(rows.ok()) << "byte " << i;
    if (!rows.ok()) {
      EXPECT_NE(rows.status().message().find(file.string()), std::string::npos) << rows.status();
    }
  }
  std::ofstream(file, std::ios::binary | std::ios::trunc) << contents;
}

}  // namespace
}  // namespace stratalake::delta
