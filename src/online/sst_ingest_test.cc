// OnlineSstWriter + IngestOnlineSstFiles (the Spark engine's bulk load of the
// embedded store) against WriteToOnlineStore: the same bytes end up stored, newer
// wins against values stored before, files with overlapping key ranges go in
// together, and stores without SST files say so.
#include <filesystem>
#include <fstream>
#include <random>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <gtest/gtest.h>

#include "../../bench/repo_fixtures.h"
#include "../../tests/test_util.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"

namespace stratalake::online {
namespace {

using stratalake::testing::TempDir;

using fixtures::kHour;
using fixtures::kT0;

const std::string kDefinitions =
    fixtures::CustomerStatsDefinitions(R"(      - {name: tier, type: string}
feature_views:
  - name: stats
    entities: [customer]
    source: stats
    ttl: 0
    features:
      - {name: spend, type: float64}
      - {name: tier, type: string}
  - name: offline_only
    entities: [customer]
    source: stats
    online: false
    features:
      - {name: spend, type: float64}
)");

// Rows over `keys` keys with ties in event time (created time breaks some, null
// in others), null features; `parity` -1: every key, else only keys of it.
std::shared_ptr<arrow::Table> Rows(std::mt19937_64* rng, int rows, int keys, int parity = -1) {
  arrow::Int64Builder id;
  auto ts_type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  arrow::TimestampBuilder ts(ts_type, arrow::default_memory_pool());
  arrow::TimestampBuilder created(ts_type, arrow::default_memory_pool());
  arrow::DoubleBuilder spend;
  arrow::StringBuilder tier;
  std::uniform_int_distribution<int> key(0, keys - 1), hour(0, 12), coin(0, 9);
  for (int i = 0; i < rows; ++i) {
    int k = key(*rng);
    if (parity >= 0 && k % 2 != parity) k = (k + 1) % keys;
    if (parity >= 0 && k % 2 != parity) k = parity;
    (void)id.Append(k);
    (void)ts.Append(kT0 + hour(*rng) * kHour);
    if (coin(*rng) == 0) {
      (void)created.AppendNull();
    } else {
      (void)created.Append(kT0 + coin(*rng));
    }
    if (coin(*rng) == 0) {
      (void)spend.AppendNull();
    } else {
      (void)spend.Append(i * 0.5);
    }
    (void)tier.Append("t" + std::to_string(i));
  }
  auto schema =
      arrow::schema({arrow::field("customer_id", arrow::int64()), arrow::field("event_ts", ts_type),
                     arrow::field("created_ts", ts_type), arrow::field("spend", arrow::float64()),
                     arrow::field("tier", arrow::utf8())});
  return arrow::Table::Make(
      schema, {*id.Finish(), *ts.Finish(), *created.Finish(), *spend.Finish(), *tier.Finish()});
}

class SstIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixtures::WriteRepository(dir_.path(), "t", kDefinitions);
    ASSERT_OK_AND_ASSIGN(repo_, fixtures::OpenAndApply(dir_.path(), "test"));
    ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
    ASSERT_OK_AND_ASSIGN(state_, reg->Load());
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
  std::shared_ptr<const registry::RegistryState> state_;
};

TEST_F(SstIngestTest, IngestedFilesStoreWhatWritesStoreAndNewerWins) {
  std::mt19937_64 rng(11);
  const int kKeys = 200;
  // Both stores hold the same values first: some newer than every row (kept),
  // some older (replaced).
  auto before = Rows(&rng, 150, kKeys);
  ASSERT_OK_AND_ASSIGN(auto a, OpenRocksDbStore(dir_.Join("a")));
  ASSERT_OK_AND_ASSIGN(auto b, OpenRocksDbStore(dir_.Join("b")));
  ASSERT_OK(WriteToOnlineStore(*state_, a.get(), "stats", before).status());
  ASSERT_OK(WriteToOnlineStore(*state_, b.get(), "stats", before).status());
  auto newer = Rows(&rng, 40, kKeys);
  {
    // 40 values 100 hours after every row: a later run must not replace them.
    auto ts = newer->GetColumnByName("event_ts")->chunk(0);
    auto raw = ts->View(arrow::int64()).ValueOrDie();
    auto moved = arrow::compute::Add(raw, arrow::Datum(int64_t{100} * kHour)).ValueOrDie();
    auto back = moved.make_array()->View(ts->type()).ValueOrDie();
    newer =
        newer->SetColumn(1, newer->schema()->field(1), std::make_shared<arrow::ChunkedArray>(back))
            .ValueOrDie();
  }
  ASSERT_OK(WriteToOnlineStore(*state_, a.get(), "stats", newer).status());
  ASSERT_OK(WriteToOnlineStore(*state_, b.get(), "stats", newer).status());

  // Even keys and odd keys: two files whose key ranges overlap, in pieces.
  auto even = Rows(&rng, 900, kKeys, 0);
  auto odd = Rows(&rng, 700, kKeys, 1);
  ASSERT_OK(WriteToOnlineStore(*state_, a.get(), "stats", even).status());
  ASSERT_OK(WriteToOnlineStore(*state_, a.get(), "stats", odd).status());
  std::vector<std::string> files;
  int64_t keys = 0;
  for (const auto& [name, rows] : {std::make_pair("even", even), std::make_pair("odd", odd)}) {
    std::string path = dir_.Join(std::string("sst/") + name + ".sst");
    std::filesystem::create_directories(dir_.Join("sst"));
    ASSERT_OK_AND_ASSIGN(auto w, OnlineSstWriter::Open(state_, "stats", path));
    ASSERT_OK_AND_ASSIGN(int64_t n1, w->Add(rows->Slice(0, 300)));
    ASSERT_OK_AND_ASSIGN(int64_t n2, w->Add(rows->Slice(300)));
    EXPECT_EQ(n1 + n2, rows->num_rows());
    ASSERT_OK_AND_ASSIGN(int64_t k, w->Finish());
    EXPECT_GT(k, 0);
    EXPECT_LE(k, kKeys / 2);
    keys += k;
    files.push_back(path);
  }
  ASSERT_OK(IngestOnlineSstFiles(*state_, b.get(), "stats", files));
  ASSERT_OK_AND_ASSIGN(auto want, a->Scan("stats"));
  ASSERT_OK_AND_ASSIGN(auto got, b->Scan("stats"));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_GT(keys, kKeys / 2);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].key, want[i].key) << i;
    EXPECT_EQ(got[i].value, want[i].value) << i;
  }
  // The files were moved into the store.
  for (const auto& f : files) EXPECT_FALSE(std::filesystem::exists(f)) << f;
}

TEST_F(SstIngestTest, ErrorsAreClear) {
  std::string path = dir_.Join("x.sst");
  auto offline = OnlineSstWriter::Open(state_, "offline_only", path);
  ASSERT_FALSE(offline.ok());
  EXPECT_NE(offline.status().message().find("not served online"), std::string::npos);
  auto unknown = OnlineSstWriter::Open(state_, "nope", path);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown feature view 'nope'"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto w, OnlineSstWriter::Open(state_, "stats", path));
  // A missing feature column: WriteToOnlineStore's error, nothing kept.
  std::mt19937_64 rng(3);
  auto rows = Rows(&rng, 5, 5);
  auto bad = w->Add(rows->RemoveColumn(4).ValueOrDie());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("lacks feature column 'tier'"), std::string::npos);
  // No rows: no file.
  ASSERT_OK_AND_ASSIGN(int64_t keys, w->Finish());
  EXPECT_EQ(keys, 0);
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace stratalake::online
