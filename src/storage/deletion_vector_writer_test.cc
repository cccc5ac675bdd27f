// Writing deletion vectors: the bitmap and file encodings (checked against the
// reader in deletion_vector.cc and against bytes spelled out from the spec), and
// DELETE / UPDATE / MERGE / OPTIMIZE / VACUUM / checkpoints on tables with
// delta.enableDeletionVectors=true, including a power cut mid-delete.
#include "storage/deletion_vector_writer.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/filesystem/localfs.h>
#include <gtest/gtest.h>

#include "storage/deletion_vector.h"
#include "storage/fault_injection_fs.h"
#include "storage/table_test_util.h"

namespace stratalake::delta {
namespace {

using table_test::Rows;
using table_test::TableTest;

std::string LittleEndian(uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return s;
}

TEST(Z85EncodeTest, ZeroMqSpecVectorAndRoundTrip) {
  const std::string bytes = {'\x86', '\x4F', '\xD2', '\x6F', '\xB5', '\x59', '\xF7', '\x5B'};
  auto text = Z85Encode(bytes);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "HelloWorld");
  std::mt19937_64 rng(7);
  for (int n = 0; n < 50; ++n) {
    std::string random(4 * (n % 9), '\0');
    for (auto& c : random) c = static_cast<char>(rng());
    auto encoded = Z85Encode(random);
    ASSERT_TRUE(encoded.ok());
    auto decoded = Z85Decode(*encoded);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, random);
  }
  EXPECT_FALSE(Z85Encode("abc").ok());
}

TEST(SerializeDeletionVectorBitmapTest, BytesFollowTheSpec) {
  auto bytes = SerializeDeletionVectorBitmap({1, 3});
  ASSERT_TRUE(bytes.ok());
  std::string expected = LittleEndian(1681511377, 4) + LittleEndian(1, 8)  // magic, buckets
                         + LittleEndian(0, 4)                              // bucket key
                         + LittleEndian(12346, 4) + LittleEndian(1, 4)     // cookie, containers
                         + LittleEndian(0, 2) + LittleEndian(1, 2)         // key 0, cardinality - 1
                         + LittleEndian(16, 4)                             // offset of container 0
                         + LittleEndian(1, 2) + LittleEndian(3, 2);
  EXPECT_EQ(*bytes, expected);
  auto empty = SerializeDeletionVectorBitmap({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, LittleEndian(1681511377, 4) + LittleEndian(0, 8));
}

TEST(SerializeDeletionVectorBitmapTest, RoundTripsArrayBitmapAndManyBuckets) {
  std::mt19937_64 rng(11);
  std::vector<std::vector<uint64_t>> cases = {{0}, {65535, 65536}, {0xFFFFFFFFull, 1ull << 32}};
  // A dense container (bitmap form), a sparse one (array form), exactly 4096 and
  // 4097 values, and indexes in three 32-bit buckets.
  std::vector<uint64_t> mixed;
  for (uint64_t i = 0; i < 20000; i += 2) mixed.push_back(i);
  for (uint64_t i = 70000; i < 70000 + 4096; ++i) mixed.push_back(i);
  for (uint64_t i = 140000; i < 140000 + 4097; ++i) mixed.push_back(i);
  for (int i = 0; i < 300; ++i) mixed.push_back((1ull << 32) + (rng() % 1000000));
  for (int i = 0; i < 300; ++i) mixed.push_back((5ull << 32) + (rng() % 100));
  std::sort(mixed.begin(), mixed.end());
  mixed.erase(std::unique(mixed.begin(), mixed.end()), mixed.end());
  cases.push_back(mixed);
  for (const auto& rows : cases) {
    auto bytes = SerializeDeletionVectorBitmap(rows);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto parsed = ParseDeletionVectorBitmap(*bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, rows);
  }
  EXPECT_FALSE(SerializeDeletionVectorBitmap({3, 3}).ok());
  EXPECT_FALSE(SerializeDeletionVectorBitmap({4, 2}).ok());
}

// Whatever a corruption of our output does, the parser returns (never crashes,
// never reads out of bounds under ASan).
TEST(SerializeDeletionVectorBitmapTest, ParsingCorruptedOutputIsSafe) {
  std::vector<uint64_t> rows;
  for (uint64_t i = 0; i < 5000; i += 3) rows.push_back(i);
  for (uint64_t i = 65536; i < 65536 + 5000; ++i) rows.push_back(i);
  rows.push_back(1ull << 33);
  auto bytes = SerializeDeletionVectorBitmap(rows);
  ASSERT_TRUE(bytes.ok());
  std::mt19937_64 rng(3);
  for (size_t i = 0; i < bytes->size(); i += 1 + i / 64) {
    std::string bad = *bytes;
    bad[i] = static_cast<char>(bad[i] ^ (1 + rng() % 255));
    (void)ParseDeletionVectorBitmap(bad);
    (void)ParseDeletionVectorBitmap(std::string_view(*bytes).substr(0, i));
  }
}

TEST(BuildDeletionVectorFileTest, LoadsBackWithCrcAndCardinalityChecks) {
  stratalake::testing::TempDir dir;
  auto fs = std::make_shared<arrow::fs::LocalFileSystem>();
  std::vector<std::vector<uint64_t>> dvs = {{2, 5, 9}, {0}, {100000, 100001, 5ull << 32}};
  std::vector<std::string> bitmaps;
  for (const auto& rows : dvs) bitmaps.push_back(*SerializeDeletionVectorBitmap(rows));
  auto file = BuildDeletionVectorFile(bitmaps);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->bytes[0], '\x01');
  EXPECT_EQ(file->offsets[0], 1);
  std::string uuid(16, '\0');
  for (int i = 0; i < 16; ++i) uuid[i] = static_cast<char>(i * 17);
  auto encoded = EncodeDeletionVectorUuid(uuid, "ab");
  ASSERT_TRUE(encoded.ok());
  DeletionVectorDescriptor d{"u", *encoded, 0, 0, 0};
  auto path = DeletionVectorPath(d, dir.path());
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, dir.path() + "/ab/deletion_vector_00112233-4455-6677-8899-aabbccddeeff.bin");
  ASSERT_TRUE(fs->CreateDir(dir.path() + "/ab").ok());
  {
    auto out = fs->OpenOutputStream(*path).ValueOrDie();
    ASSERT_TRUE(out->Write(file->bytes.data(), file->bytes.size()).ok());
    ASSERT_TRUE(out->Close().ok());
  }
  for (size_t i = 0; i < dvs.size(); ++i) {
    d.offset = file->offsets[i];
    d.size_in_bytes = static_cast<int32_t>(bitmaps[i].size());
    d.cardinality = static_cast<int64_t>(dvs[i].size());
    auto rows = LoadDeletionVector(d, *fs, dir.path());
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(*rows, dvs[i]);
    // The CRC after each bitmap is the zlib CRC-32 of its bytes, big-endian.
    const size_t crc_at = file->offsets[i] + 4 + bitmaps[i].size();
    const uint32_t crc = DeletionVectorCrc32(bitmaps[i]);
    EXPECT_EQ(static_cast<uint8_t>(file->bytes[crc_at]), crc >> 24);
    EXPECT_EQ(static_cast<uint8_t>(file->bytes[crc_at + 3]), crc & 0xFF);
  }
  d.cardinality += 1;
  EXPECT_FALSE(LoadDeletionVector(d, *fs, dir.path()).ok());
  EXPECT_EQ(DeletionVectorCrc32("123456789"), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(UnionRowIndexes({1, 4, 9}, {2, 4, 10}), (std::vector<uint64_t>{1, 2, 4, 9, 10}));
}

// ---- tables ------------------------------------------------------------------

class DeletionVectorTableTest : public TableTest {
 protected:
  // 3 files of 4 rows each (ids 0..11, day d<id/4>), deletion vectors enabled.
  void CreateTable() {
    WriteOptions wo;
    wo.create.properties["delta.enableDeletionVectors"] = "true";
    for (int f = 0; f < 3; ++f) {
      std::string ids = "[", names = "[", scores = "[", days = "[";
      for (int i = 0; i < 4; ++i) {
        int id = f * 4 + i;
        const char* sep = i ? "," : "";
        ids += sep + std::to_string(id);
        names += std::string(sep) + "\"n" + std::to_string(id) + "\"";
        scores += sep + std::to_string(id) + ".5";
        days += std::string(sep) + "\"d" + std::to_string(f) + "\"";
      }
      Append(Rows(ids + "]", names + "]", scores + "]", days + "]"), wo);
    }
  }
  std::shared_ptr<const Snapshot> Latest() { return table_->Latest().ValueOrDie(); }
  // A copy: a range-for over Latest()->files() would outlive the snapshot.
  std::vector<AddFile> Files() { return Latest()->files(); }
  std::set<std::string> Paths() {
    std::set<std::string> out;
    for (const auto& f : Files()) out.insert(f.path);
    return out;
  }
  std::vector<std::string> DvFiles() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_.Join("t"))) {
      auto name = e.path().filename().string();
      if (name.rfind("deletion_vector_", 0) == 0) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  int64_t Cardinality() {
    int64_t n = 0;
    for (const auto& f : Files()) {
      if (f.deletion_vector) n += f.deletion_vector->cardinality;
    }
    return n;
  }
  std::vector<std::string> Before(const std::vector<std::string>& all,
                                  const std::function<bool(int)>& keep) {
    std::vector<std::string> out;
    for (const auto& row : all) {
      if (keep(std::stoi(row))) out.push_back(row);
    }
    return out;
  }
};

TEST_F(DeletionVectorTableTest, CreateSetsTheProtocolFeature) {
  CreateTable();
  auto snap = Latest();
  const auto& p = snap->protocol();
  EXPECT_EQ(p.min_reader_version, 3);
  EXPECT_EQ(p.min_writer_version, 7);
  ASSERT_TRUE(p.reader_features.has_value());
  EXPECT_NE(std::find(p.reader_features->begin(), p.reader_features->end(), "deletionVectors"),
            p.reader_features->end());
  EXPECT_NE(std::find(p.writer_features->begin(), p.writer_features->end(), "deletionVectors"),
            p.writer_features->end());
  EXPECT_TRUE(WritesDeletionVectors(*Latest()));
  EXPECT_FALSE(table_->SetProperties({{"delta.enableDeletionVectors", "yes"}}).ok());
}

TEST_F(DeletionVectorTableTest, SetPropertyUpgradesAnExistingTable) {
  Append(Rows("[1,2,3]", "[\"a\",\"b\",\"c\"]", "[1,2,3]", "[\"x\",\"x\",\"x\"]"));
  EXPECT_FALSE(WritesDeletionVectors(*Latest()));
  ASSERT_TRUE(table_->SetProperties({{"delta.enableDeletionVectors", "true"}}).ok());
  EXPECT_TRUE(WritesDeletionVectors(*Latest()));
  auto paths = Paths();
  ASSERT_TRUE(table_->Delete("id = 2").ok());
  EXPECT_EQ(Paths(), paths);
  EXPECT_EQ(Cardinality(), 1);
  EXPECT_EQ(ReadAll().size(), 2u);
}

TEST_F(DeletionVectorTableTest, DeleteMarksRowsAndKeepsTheDataFiles) {
  CreateTable();
  auto before = ReadAll();
  auto paths = Paths();
  auto r = table_->Delete("id = 1 OR id = 2 OR id = 9");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metrics.at("numDeletedRows"), 3);
  EXPECT_EQ(r->metrics.at("numDeletionVectorsAdded"), 2);
  EXPECT_EQ(r->metrics.at("numAddedFiles"), 0);
  EXPECT_EQ(r->metrics.at("numCopiedRows"), 0);
  EXPECT_EQ(Paths(), paths);  // no data file rewritten
  EXPECT_EQ(DvFiles().size(), 1u);
  EXPECT_EQ(Cardinality(), 3);
  EXPECT_EQ(ReadAll(), Before(before, [](int id) { return id != 1 && id != 2 && id != 9; }));
  EXPECT_EQ(Latest()->NumRecords(), 9);
  for (const auto& f : Files()) {
    if (!f.deletion_vector) continue;
    EXPECT_EQ(f.deletion_vector->storage_type, "u");
    EXPECT_NE(f.stats.find("\"tightBounds\":false"), std::string::npos) << f.stats;
  }
  // A filtered read still sees the right rows (stats are wide bounds now).
  EXPECT_EQ(ReadAll(std::nullopt, "id >= 8").size(), 3u);
  // The old version still reads without the deletion vectors.
  EXPECT_EQ(ReadAll(r->version - 1), before);
}

TEST_F(DeletionVectorTableTest, SecondDeleteUnionsWithTheExistingVector) {
  CreateTable();
  auto before = ReadAll();
  ASSERT_TRUE(table_->Delete("id = 5").ok());
  auto r = table_->Delete("id = 6 OR id = 7");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metrics.at("numDeletionVectorsUpdated"), 1);
  EXPECT_EQ(r->metrics.at("numDeletionVectorsAdded"), 0);
  EXPECT_EQ(Cardinality(), 3);
  int with_dv = 0;
  arrow::fs::LocalFileSystem local;
  for (const auto& f : Files()) {
    if (!f.deletion_vector) continue;
    ++with_dv;
    DeletionVectorDescriptor d{f.deletion_vector->storage_type,
                               f.deletion_vector->path_or_inline_dv, f.deletion_vector->offset,
                               f.deletion_vector->size_in_bytes, f.deletion_vector->cardinality};
    auto rows = LoadDeletionVector(d, local, dir_.Join("t"));
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(*rows, (std::vector<uint64_t>{1, 2, 3}));  // ids 5, 6, 7 of file 1
  }
  EXPECT_EQ(with_dv, 1);
  EXPECT_EQ(ReadAll(), Before(before, [](int id) { return id < 5 || id > 7; }));
  // Deleting the file's last row removes the file.
  ASSERT_TRUE(table_->Delete("id = 4").ok());
  EXPECT_EQ(Latest()->files().size(), 2u);
  EXPECT_EQ(Cardinality(), 0);
}

TEST_F(DeletionVectorTableTest, UpdateMarksOldRowsAndWritesOnlyNewOnes) {
  CreateTable();
  auto paths = Paths();
  auto r = table_->Update("id = 3", "name = 'changed'");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metrics.at("numUpdatedRows"), 1);
  EXPECT_EQ(r->metrics.at("numCopiedRows"), 0);
  EXPECT_EQ(r->metrics.at("numDeletionVectorsAdded"), 1);
  EXPECT_EQ(Latest()->files().size(), 4u);  // the 3 files, one with a DV, and the new row
  for (const auto& p : paths) EXPECT_TRUE(Paths().count(p));
  EXPECT_EQ(Cardinality(), 1);
  auto rows = ReadAll(std::nullopt, "id = 3");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NE(rows[0].find("changed"), std::string::npos) << rows[0];
  EXPECT_EQ(ReadAll().size(), 12u);
}

TEST_F(DeletionVectorTableTest, MergeDeletesAndUpdatesThroughVectors) {
  CreateTable();
  auto paths = Paths();
  MergeOptions mo;
  mo.on = {"id"};
  MatchedClause del;
  del.action = MatchedClause::Action::kDelete;
  del.condition = "source.name = 'gone'";
  mo.when_matched = {del, MatchedClause{}};
  mo.when_not_matched = {NotMatchedClause{}};
  auto source = Rows("[2, 10, 11, 50]", "[\"gone\", \"new10\", \"gone\", \"n50\"]", "[0, 0, 0, 0]",
                     "[\"d0\", \"d2\", \"d2\", \"d9\"]");
  auto r = table_->Merge(source, mo);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metrics.at("numTargetRowsDeleted"), 2);
  EXPECT_EQ(r->metrics.at("numTargetRowsUpdated"), 1);
  EXPECT_EQ(r->metrics.at("numTargetRowsInserted"), 1);
  EXPECT_EQ(r->metrics.at("numTargetRowsCopied"), 0);
  EXPECT_EQ(r->metrics.at("numTargetDeletionVectorsAdded"), 2);
  EXPECT_EQ(r->metrics.at("numTargetFilesRemoved"), 0);
  EXPECT_EQ(r->metrics.at("numTargetFilesAdded"), 2);  // the updated row, the inserted row
  for (const auto& p : paths) EXPECT_TRUE(Paths().count(p));
  EXPECT_EQ(Cardinality(), 3);
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 11u);
  EXPECT_EQ(ReadAll(std::nullopt, "id = 2 OR id = 11").size(), 0u);
  auto ten = ReadAll(std::nullopt, "id = 10");
  ASSERT_EQ(ten.size(), 1u);
  EXPECT_NE(ten[0].find("new10"), std::string::npos);
}

TEST_F(DeletionVectorTableTest, ReplaceWhereMarksTheReplacedRows) {
  CreateTable();
  auto before = ReadAll();
  auto paths = Paths();
  WriteOptions wo;
  wo.mode = WriteMode::kOverwrite;
  wo.replace_where = "id = 5 OR id = 6";
  auto r = table_->Write(Rows("[5, 6]", "[\"r5\", \"r6\"]", "[0, 0]", "[\"d1\", \"d1\"]"), wo);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metrics.at("numDeletedRows"), 2);
  EXPECT_EQ(r->metrics.at("numDeletionVectorsAdded"), 1);
  EXPECT_EQ(r->metrics.at("numRemovedFiles"), 0);
  for (const auto& p : paths) EXPECT_TRUE(Paths().count(p));
  EXPECT_EQ(Cardinality(), 2);
  auto rows = ReadAll(std::nullopt, "id = 5 OR id = 6");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_NE(rows[0].find("r5"), std::string::npos);
  EXPECT_EQ(ReadAll().size(), before.size());
}

TEST_F(DeletionVectorTableTest, RestoreBringsBackTheOldVectors) {
  CreateTable();
  ASSERT_TRUE(table_->Delete("id = 1").ok());
  auto one_deleted = ReadAll();
  auto v = Latest()->version();
  ASSERT_TRUE(table_->Delete("id = 2 OR id = 10").ok());
  ASSERT_TRUE(table_->Restore(v).ok());
  EXPECT_EQ(ReadAll(), one_deleted);
  EXPECT_EQ(Cardinality(), 1);
  ASSERT_TRUE(table_->Restore(2).ok());  // before any delete
  EXPECT_EQ(ReadAll().size(), 12u);
  EXPECT_EQ(Cardinality(), 0);
}

TEST_F(DeletionVectorTableTest, CheckpointOptimizeAndVacuum) {
  CreateTable();
  ASSERT_TRUE(table_->Delete("id = 1").ok());
  auto first_dv = DvFiles();
  ASSERT_TRUE(table_->Delete("id = 2").ok());  // the first DV file is now unreferenced
  auto expected = ReadAll();
  ASSERT_TRUE(table_->Checkpoint().ok());
  {
    TableOpenOptions o;
    o.clock = clock_;
    auto reopened = DeltaTable::Open(dir_.Join("t"), o).ValueOrDie();
    auto snap = reopened->Latest().ValueOrDie();
    int64_t n = 0;
    for (const auto& f : snap->files()) n += f.deletion_vector ? f.deletion_vector->cardinality : 0;
    EXPECT_EQ(n, 2);
    EXPECT_EQ(stratalake::testing::SortedRows(reopened->Read(ReadOptions{}).ValueOrDie()),
              expected);
  }
  // VACUUM keeps the DV file live adds reference and deletes the other.
  EXPECT_EQ(DvFiles().size(), 2u);
  VacuumOptions vo;
  vo.retention_hours = 0;
  vo.force = true;
  // Files carry real modification times; move the fake clock past them.
  const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  clock_->Advance(wall_ms - clock_->NowMillis() + 3600 * 1000);
  auto vac = table_->Vacuum(vo);
  ASSERT_TRUE(vac.ok()) << vac.status();
  auto left = DvFiles();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_NE(left[0], first_dv[0]);
  EXPECT_EQ(ReadAll(), expected);
  // OPTIMIZE materialises the deletion vectors away.
  OptimizeOptions oo;
  ASSERT_TRUE(table_->Optimize(oo).ok());
  EXPECT_EQ(Cardinality(), 0);
  for (const auto& f : Files()) EXPECT_FALSE(f.deletion_vector.has_value());
  EXPECT_EQ(ReadAll(), expected);
}

// A power cut at any point of a DELETE leaves the table as before or, once the
// delete was acknowledged, as after.
TEST(DeletionVectorDurabilityTest, PowerCutMidDeleteLeavesTheTableAsBefore) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  arrow::Int64Builder b;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(b.Append(i).ok());
  auto data = arrow::Table::Make(schema, {b.Finish().ValueOrDie()});
  int cut_before = 0, cut_after = 0;
  for (int64_t ops = 0; ops < 40; ++ops) {
    auto fs = std::make_shared<FaultInjectionFileSystem>();
    ASSERT_TRUE(fs->CreateDir("/t", true).ok());
    ASSERT_TRUE(fs->SyncDir("/").ok());
    TableOpenOptions o;
    o.log_store = std::make_shared<FaultInjectionLogStore>(fs, "/t/table");
    {
      auto table = DeltaTable::ForPath("", o).ValueOrDie();
      WriteOptions wo;
      wo.create.properties["delta.enableDeletionVectors"] = "true";
      ASSERT_TRUE(table->Write(data, wo).ok());
      fs->FailAfterOps(ops);
      auto r = table->Delete("id < 10");
      if (!r.ok()) {
        ASSERT_TRUE(fs->power_off()) << r.status();
      }
      bool acknowledged = r.ok();
      if (!fs->power_off()) fs->FailAfterOps(0);
      fs->PowerCut(static_cast<uint64_t>(ops) * 7919);
      auto reopened = DeltaTable::Open("", o).ValueOrDie();
      auto rows = reopened->Read(ReadOptions{});
      ASSERT_TRUE(rows.ok()) << rows.status();
      const int64_t n = (*rows)->num_rows();
      if (acknowledged) {
        EXPECT_EQ(n, 90) << "ops " << ops;
      } else {
        EXPECT_TRUE(n == 100 || n == 90) << "ops " << ops << ": " << n;
      }
      (n == 100 ? cut_before : cut_after)++;
    }
  }
  EXPECT_GT(cut_before, 0);
  EXPECT_GT(cut_after, 0);
}

}  // namespace
}  // namespace stratalake::delta
