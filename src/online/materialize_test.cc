// Materialization and online reads against a small repository written here:
// online values equal the training-set values at "now", incremental runs read
// only new commits, TTL and statuses, schema changes, codec round trips.
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../bench/repo_fixtures.h"
#include "../../tests/test_util.h"
#include "online/codec.h"
#include "server/feast_wire.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::online {
namespace {

using stratalake::testing::TempDir;

// A table from a JSON array of row objects.
std::shared_ptr<arrow::Table> TableFromJson(const std::shared_ptr<arrow::Schema>& schema,
                                            const std::string& rows) {
  auto arr = arrow::json::ArrayFromJSONString(arrow::struct_(schema->fields()), rows);
  EXPECT_TRUE(arr.ok()) << arr.status().ToString();
  auto batch = arrow::RecordBatch::FromStructArray(*arr);
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *arrow::Table::FromRecordBatches({*batch});
}

using fixtures::kHour;
using fixtures::kT0;
using fixtures::WriteFile;

const std::string kDefinitions =
    fixtures::CustomerStatsDefinitions(R"(      - {name: orders, type: int64}
      - {name: tier, type: string}
  - name: clicks
    type: push
    path: bronze/clicks
    timestamp_field: event_ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: page, type: string}
      - {name: event_ts, type: timestamp, nullable: false}
feature_views:
  - name: stats
    entities: [customer]
    source: stats
    ttl: 10h
    features:
      - {name: spend, type: float64}
      - {name: orders, type: int64}
      - {name: tier, type: string}
  - name: clicks
    entities: [customer]
    source: clicks
    ttl: 0
    features:
      - {name: page, type: string}
feature_services:
  - name: model
    features: [stats, clicks]
)");

std::shared_ptr<arrow::Schema> StatsSchema() {
  return arrow::schema({arrow::field("customer_id", arrow::int64()),
                        arrow::field("event_ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
                        arrow::field("created_ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
                        arrow::field("spend", arrow::float64()),
                        arrow::field("orders", arrow::int64()),
                        arrow::field("tier", arrow::utf8())});
}

// Random stats rows: ties in event time (broken by created time, sometimes
// null), nulls in features, keys 0..keys-1, times within [kT0, kT0 + 48h].
std::shared_ptr<arrow::Table> RandomStats(std::mt19937_64* rng, int rows, int keys) {
  arrow::Int64Builder id, orders;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::TimestampBuilder created(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                                  arrow::default_memory_pool());
  arrow::DoubleBuilder spend;
  arrow::StringBuilder tier;
  std::uniform_int_distribution<int> key(0, keys - 1), hour(0, 48), coin(0, 9);
  for (int i = 0; i < rows; ++i) {
    (void)id.Append(key(*rng));
    (void)ts.Append(kT0 + hour(*rng) * kHour);
    if (coin(*rng) == 0) {
      (void)created.AppendNull();
    } else {
      (void)created.Append(kT0 + coin(*rng) * kHour);
    }
    if (coin(*rng) == 0) {
      (void)spend.AppendNull();
    } else {
      (void)spend.Append(static_cast<double>((*rng)() % 100000) / 100.0);
    }
    (void)orders.Append(static_cast<int64_t>((*rng)() % 50));
    (void)tier.Append(coin(*rng) < 5 ? "gold" : "silver");
  }
  arrow::ArrayVector cols(6);
  (void)id.Finish(&cols[0]);
  (void)ts.Finish(&cols[1]);
  (void)created.Finish(&cols[2]);
  (void)spend.Finish(&cols[3]);
  (void)orders.Finish(&cols[4]);
  (void)tier.Finish(&cols[5]);
  return arrow::Table::Make(StatsSchema(), cols, rows);
}

const ViewMaterialization& Stats(const MaterializeReport& r) {
  for (const auto& v : r.views) {
    if (v.view == "stats") return v;
  }
  ADD_FAILURE() << "no report for view stats";
  return r.views.at(0);
}

class MaterializeTest : public ::testing::Test {
 protected:
  void SetUp() override { fixtures::WriteRepository(dir_.path(), "t", kDefinitions); }

  void Apply() { ASSERT_OK_AND_ASSIGN(repo_, fixtures::OpenAndApply(dir_.path(), "test")); }

  void AppendStats(const std::shared_ptr<arrow::Table>& t) {
    ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("gold/stats")));
    ASSERT_OK(table->Write(t, delta::WriteOptions{}).status());
  }

  std::shared_ptr<OnlineStore> OpenStore() {
    auto s = OpenRepositoryStore(*repo_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::shared_ptr<OnlineStore>(std::move(*s));
  }

  arrow::Result<MaterializeReport> Run(OnlineStore& store, int64_t end_us, bool incremental,
                                       std::optional<int64_t> start = std::nullopt,
                                       size_t max_repair_keys = size_t{1} << 22) {
    MaterializeOptions o;
    o.end_us = end_us;
    o.start_us = start;
    o.incremental = incremental;
    o.max_repair_keys = max_repair_keys;
    return Materialize(*repo_, store, o);
  }

  static constexpr int kKeys = 300;

  // The definitions applied, three commits of random stats rows over kKeys
  // keys, and the repository's store.
  std::shared_ptr<OnlineStore> ApplyWithRandomStats(std::mt19937_64* rng) {
    Apply();
    for (int commit = 0; commit < 3; ++commit) AppendStats(RandomStats(rng, 1500, kKeys));
    return OpenStore();
  }

  // Deletes the latest rows of keys < 40 and every row of key 100, updates keys
  // 200..210, and appends new rows of keys 0..49 (written by the next run as usual).
  void DeleteUpdateAndAppend(delta::DeltaTable& table, std::mt19937_64* rng) {
    ASSERT_OK(table.Delete("customer_id < 40 AND event_ts >= '2026-01-02T18:00:00Z'").status());
    ASSERT_OK(table.Delete("customer_id = 100").status());
    ASSERT_OK(table.Update("customer_id BETWEEN 200 AND 210", "spend = 1000").status());
    AppendStats(RandomStats(rng, 100, 50));
  }

  // The online value of every key 0..keys-1 equals the training-set value for
  // an entity row at "now" (the materialization end); the statuses of "spend".
  void ExpectOnlineEqualsTrainingSet(const std::shared_ptr<OnlineStore>& store, int64_t now,
                                     int keys, std::vector<FeatureStatus>* spend_statuses) {
    // Online, with the clock at `now`.
    ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
    auto clock = std::make_shared<FakeClock>(now / 1000);
    OnlineService service(reg, store, clock);
    OnlineRequest req;
    req.features = {"stats:spend", "stats:orders", "stats:tier"};
    std::vector<KeyScalar> ids;
    for (int k = 0; k < keys; ++k) ids.emplace_back(int64_t{k});
    req.entities.emplace_back("customer_id", ids);
    ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
    ASSERT_OK_AND_ASSIGN(auto online, resp.ToTable());
    // Offline, with one entity row per key at `now`.
    std::string rows;
    for (int k = 0; k < keys; ++k) {
      rows += (rows.empty() ? "" : ",") + std::string("{\"customer_id\":") + std::to_string(k) +
              ",\"event_timestamp\":" + std::to_string(now) + "}";
    }
    auto entities = TableFromJson(
        arrow::schema(
            {arrow::field("customer_id", arrow::int64()),
             arrow::field("event_timestamp", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"))}),
        "[" + rows + "]");
    retrieval::HistoricalRequest hreq;
    hreq.entities = entities;
    hreq.features = req.features;
    ASSERT_OK_AND_ASSIGN(auto offline, retrieval::GetHistoricalFeatures(*repo_, hreq));
    for (const char* f : {"spend", "orders", "tier"}) {
      auto on = online->GetColumnByName(f);
      auto off = offline.table->GetColumnByName(f);
      ASSERT_TRUE(on && off) << f;
      EXPECT_TRUE(on->Equals(*off))
          << f << "\nonline: " << on->ToString() << "\noffline: " << off->ToString();
    }
    const auto& spend = resp.columns[1];
    spend_statuses->assign(spend.statuses.begin(), spend.statuses.end());
  }

  // Random stats materialized at `now` and checked against the training set
  // (the statuses of "spend" in *served); then DeleteUpdateAndAppend.
  void MaterializeThenChangeTheSource(uint64_t seed, int64_t now,
                                      std::shared_ptr<OnlineStore>* store,
                                      std::unique_ptr<delta::DeltaTable>* table,
                                      std::vector<FeatureStatus>* served) {
    std::mt19937_64 rng(seed);
    *store = ApplyWithRandomStats(&rng);
    ASSERT_OK(Run(**store, now, true).status());
    ExpectOnlineEqualsTrainingSet(*store, now, kKeys, served);
    ASSERT_OK_AND_ASSIGN(*table, delta::DeltaTable::Open(repo_->TableUri("gold/stats")));
    DeleteUpdateAndAppend(**table, &rng);
  }

  void CheckARebuildKeepsServing(size_t max_repair_keys) {
    const int64_t now = kT0 + 48 * kHour;
    std::shared_ptr<OnlineStore> store;
    std::unique_ptr<delta::DeltaTable> table;
    std::vector<FeatureStatus> before;
    MaterializeThenChangeTheSource(29, now, &store, &table, &before);
    ASSERT_OK(table->Delete("customer_id >= 250").status());
    delta::VacuumOptions vo;
    vo.retention_hours = 0;
    vo.force = true;
    ASSERT_OK(table->Vacuum(vo).status());

    // Keys < 250 other than 100 that were served before keep rows: they must
    // be found at every progress call of the run.
    std::vector<std::string> kept;
    for (int k = 0; k < 250; ++k) {
      if (k == 100 || before[k] == FeatureStatus::kNotFound) continue;
      std::string key = ViewKeyPrefix("stats");
      ASSERT_OK(AppendKey(*arrow::int64(), KeyScalar(int64_t{k}), &key));
      kept.push_back(key);
    }
    ASSERT_GT(kept.size(), 100u);
    int calls = 0;
    MaterializeOptions o;
    o.end_us = now;
    o.incremental = true;
    o.max_repair_keys = max_repair_keys;
    o.on_progress = [&](const Progress&) {
      ++calls;
      std::vector<std::string_view> keys(kept.begin(), kept.end());
      std::vector<std::optional<std::string>> got;
      arrow::Status st = store->MultiGet(keys, &got);
      EXPECT_TRUE(st.ok()) << st.ToString();
      size_t missing = 0;
      for (const auto& v : got) missing += v ? 0 : 1;
      EXPECT_EQ(missing, 0u) << "progress call " << calls;
      return true;
    };
    ASSERT_OK_AND_ASSIGN(auto report, Materialize(*repo_, *store, o));
    EXPECT_GT(calls, 0);
    EXPECT_TRUE(Stats(report).rebuilt);
    EXPECT_FALSE(Stats(report).incremental);
    EXPECT_EQ(Stats(report).repair_passes > 0, max_repair_keys == 16);
    std::vector<FeatureStatus> after;
    ExpectOnlineEqualsTrainingSet(store, now, kKeys, &after);
    EXPECT_EQ(after[100], FeatureStatus::kNotFound);
    for (int k = 250; k < kKeys; ++k) EXPECT_EQ(after[k], FeatureStatus::kNotFound) << k;
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
};

// The online value of every key equals the training-set value for an entity
// row at "now" (the materialization end), including TTL and tie-breaks.
TEST_F(MaterializeTest, OnlineValuesEqualTheTrainingSetAtNow) {
  std::mt19937_64 rng(7);
  auto store = ApplyWithRandomStats(&rng);
  for (int64_t now : {kT0 + 20 * kHour, kT0 + 48 * kHour, kT0 + 70 * kHour}) {
    SCOPED_TRACE(now);
    ASSERT_OK(store->DeletePrefix(ViewKeyPrefix("stats")));
    ASSERT_OK(Run(*store, now, false).status());
    std::vector<FeatureStatus> spend;
    ExpectOnlineEqualsTrainingSet(store, now, kKeys + 5, &spend);
    int expired = 0, missing = 0;
    for (auto st : spend) {
      expired += st == FeatureStatus::kOutsideMaxAge;
      missing += st == FeatureStatus::kNotFound;
    }
    EXPECT_GE(missing, 5);  // keys kKeys.. were never written
    if (now == kT0 + 70 * kHour) {
      EXPECT_EQ(expired, kKeys);  // every value is > 10h old
    }
  }
}

// Rows deleted from the source (DELETE, UPDATE) after a run are repaired by the
// next one: the online value becomes the training set's value again, or
// NOT_FOUND when no row is left; with the old files vacuumed, the view is rebuilt.
TEST_F(MaterializeTest, DeletedSourceRowsAreRepairedOnline) {
  std::mt19937_64 rng(17);
  auto store = ApplyWithRandomStats(&rng);
  const int64_t now = kT0 + 48 * kHour;
  ASSERT_OK_AND_ASSIGN(auto first, Run(*store, now, true));
  EXPECT_EQ(Stats(first).keys_repaired, 0);
  std::vector<FeatureStatus> spend;
  ExpectOnlineEqualsTrainingSet(store, now, kKeys, &spend);

  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::Open(repo_->TableUri("gold/stats")));
  DeleteUpdateAndAppend(*table, &rng);
  ASSERT_OK_AND_ASSIGN(auto second, Run(*store, now, true));
  EXPECT_TRUE(Stats(second).incremental);
  EXPECT_FALSE(Stats(second).rebuilt);
  // The rewritten files hold rows of all 300 keys, but keys that the run wrote
  // a row at least as new as their deleted ones for (rewritten and updated
  // rows in the range) need no repair: about the keys < 40 with a deleted row,
  // key 100, and keys whose newest rewritten row is older than the range.
  EXPECT_GT(Stats(second).keys_repaired, 20);
  EXPECT_LT(Stats(second).keys_repaired, 100);
  ExpectOnlineEqualsTrainingSet(store, now, kKeys, &spend);
  EXPECT_EQ(spend[100], FeatureStatus::kNotFound);
  // Nothing deleted since: nothing repaired.
  ASSERT_OK_AND_ASSIGN(auto third, Run(*store, now, true));
  EXPECT_EQ(Stats(third).keys_repaired, 0);
  EXPECT_FALSE(Stats(third).rebuilt);

  // Deleted, then vacuumed before the next run: the deleted keys cannot be
  // known, so the view is rebuilt from the source as it is.
  ASSERT_OK(table->Delete("customer_id >= 250").status());
  delta::VacuumOptions vo;
  vo.retention_hours = 0;
  vo.force = true;
  ASSERT_OK(table->Vacuum(vo).status());
  ASSERT_OK_AND_ASSIGN(auto fourth, Run(*store, now, true));
  EXPECT_TRUE(Stats(fourth).rebuilt);
  EXPECT_FALSE(Stats(fourth).incremental);
  ExpectOnlineEqualsTrainingSet(store, now, kKeys, &spend);
  for (int k = 250; k < kKeys; ++k) EXPECT_EQ(spend[k], FeatureStatus::kNotFound) << k;
}

TEST_F(MaterializeTest, TooManyDeletedKeysAreRepairedInPassesWithoutARebuild) {
  const int64_t now = kT0 + 48 * kHour;
  std::shared_ptr<OnlineStore> store;
  std::unique_ptr<delta::DeltaTable> table;
  std::vector<FeatureStatus> spend;
  MaterializeThenChangeTheSource(23, now, &store, &table, &spend);
  // The rewritten files hold rows of all 300 keys: with room for 16 keys at a
  // time, they are repaired after the writes in passes, and nothing is rebuilt.
  ASSERT_OK_AND_ASSIGN(auto second, Run(*store, now, true, std::nullopt, /*max_repair_keys=*/16));
  EXPECT_TRUE(Stats(second).incremental);
  EXPECT_FALSE(Stats(second).rebuilt);
  EXPECT_GE(Stats(second).repair_passes, 300 / 16);  // in halves, split until each fits
  EXPECT_LE(Stats(second).repair_passes, 2 * 300 / 16 + 2);
  EXPECT_EQ(Stats(second).keys_repaired, kKeys);  // every key of the removed rows
  ExpectOnlineEqualsTrainingSet(store, now, kKeys, &spend);
  EXPECT_EQ(spend[100], FeatureStatus::kNotFound);

  // A whole-table rewrite (every row deleted and most written again), again in passes.
  ASSERT_OK(table->Delete("customer_id >= 250").status());
  ASSERT_OK(table->Update("customer_id < 10", "tier = 'rewritten'").status());
  ASSERT_OK_AND_ASSIGN(auto third, Run(*store, now, true, std::nullopt, 16));
  EXPECT_FALSE(Stats(third).rebuilt);
  EXPECT_GE(Stats(third).repair_passes, 2);
  ExpectOnlineEqualsTrainingSet(store, now, kKeys, &spend);
  for (int k = 250; k < kKeys; ++k) EXPECT_EQ(spend[k], FeatureStatus::kNotFound) << k;

  // Nothing deleted since: no passes.
  ASSERT_OK_AND_ASSIGN(auto fourth, Run(*store, now, true, std::nullopt, 16));
  EXPECT_EQ(Stats(fourth).repair_passes, 0);
  EXPECT_EQ(Stats(fourth).keys_repaired, 0);
}

// After VACUUM removed the files of deleted rows, the view is read in full and
// every stored key checked against it; no key is removed first, so a key that
// still has rows is readable at every moment of the run.
TEST_F(MaterializeTest, RebuildsKeepServingEveryKeyThatStillHasRows) {
  CheckARebuildKeepsServing(size_t{1} << 22);
}

TEST_F(MaterializeTest, RebuildsInPassesKeepServingEveryKeyThatStillHasRows) {
  CheckARebuildKeepsServing(16);
}

TEST_F(MaterializeTest, MaxRepairKeysMustBePositive) {
  Apply();
  auto store = OpenStore();
  auto r = Run(*store, kT0, true, std::nullopt, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("max_repair_keys must be at least 1"), std::string::npos);
}

TEST_F(MaterializeTest, IncrementalReadsOnlyNewCommits) {
  Apply();
  std::mt19937_64 rng(11);
  AppendStats(RandomStats(&rng, 500, 50));
  AppendStats(RandomStats(&rng, 500, 50));
  auto store = OpenStore();
  int64_t end = kT0 + 50 * kHour;  // the first run reads from end - ttl = 40h
  ASSERT_OK_AND_ASSIGN(auto first, Run(*store, end, true));
  ASSERT_EQ(first.views.size(), 2u);
  EXPECT_FALSE(Stats(first).incremental);  // no watermark yet: a full read
  EXPECT_EQ(Stats(first).files_read, 2);
  // Nothing new: nothing read.
  ASSERT_OK_AND_ASSIGN(auto again, Run(*store, end, true));
  EXPECT_TRUE(Stats(again).incremental);
  EXPECT_EQ(Stats(again).files_read, 0);
  EXPECT_EQ(Stats(again).rows_written, 0);
  // One more commit: only its file is read, and its newer row wins online.
  auto newer = TableFromJson(StatsSchema(), R"([{"customer_id": 3, "event_ts": )" +
                                                std::to_string(kT0 + 49 * kHour) +
                                                R"(, "created_ts": null, "spend": 1.5,
                                                "orders": 99, "tier": "new"}])");
  AppendStats(newer);
  ASSERT_OK_AND_ASSIGN(auto inc, Run(*store, end, true));
  EXPECT_TRUE(Stats(inc).incremental);
  EXPECT_EQ(Stats(inc).from_version, 1);
  EXPECT_EQ(Stats(inc).to_version, 2);
  EXPECT_EQ(Stats(inc).files_read, 1);
  EXPECT_EQ(Stats(inc).rows_written, 1);
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  OnlineService service(reg, store, std::make_shared<FakeClock>((kT0 + 50 * kHour) / 1000));
  OnlineRequest req;
  req.features = {"stats:orders", "stats:tier"};
  req.entities.emplace_back("customer_id", std::vector<KeyScalar>{int64_t{3}});
  ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
  ASSERT_OK_AND_ASSIGN(auto t, resp.ToTable());
  EXPECT_EQ(t->GetColumnByName("orders")->ToString(),
            arrow::ChunkedArray(
                arrow::ArrayVector{*arrow::MakeArrayFromScalar(arrow::Int64Scalar(99), 1)})
                .ToString());
  // The watermark is one small row, overwritten in place.
  ASSERT_OK_AND_ASSIGN(auto wm, reg->GetState("materialize/stats"));
  ASSERT_TRUE(wm.has_value());
  EXPECT_NE(wm->find("\"version\":2"), std::string::npos) << *wm;
  EXPECT_LT(wm->size(), 200u);
}

TEST_F(MaterializeTest, RowsAfterTheLastEndInOldFilesAreNotMissed) {
  Apply();
  std::mt19937_64 rng(3);
  auto t = TableFromJson(StatsSchema(),
                         R"([
    {"customer_id": 1, "event_ts": )" +
                             std::to_string(kT0) +
                             R"(, "created_ts": null, "spend": 1, "orders": 1, "tier": "a"},
    {"customer_id": 1, "event_ts": )" +
                             std::to_string(kT0 + 5 * kHour) +
                             R"(, "created_ts": null, "spend": 2, "orders": 2, "tier": "b"}])");
  AppendStats(t);
  auto store = OpenStore();
  ASSERT_OK(Run(*store, kT0 + kHour, true).status());                // sees only the first row
  ASSERT_OK_AND_ASSIGN(auto r, Run(*store, kT0 + 6 * kHour, true));  // no new commit
  EXPECT_TRUE(Stats(r).incremental);
  EXPECT_EQ(Stats(r).rows_written, 1);  // the row after the old end
  ASSERT_OK_AND_ASSIGN(auto kvs, store->Scan(ViewKeyPrefix("stats")));
  ASSERT_EQ(kvs.size(), 1u);
  EXPECT_EQ(PrefixEventMicros(kvs[0].value), kT0 + 5 * kHour);
}

TEST_F(MaterializeTest, ChangedFeaturesForceAFullReadAndOldValuesStayReadable) {
  Apply();
  std::mt19937_64 rng(5);
  AppendStats(RandomStats(&rng, 200, 20));
  auto store = OpenStore();
  ASSERT_OK(Run(*store, kT0 + 100 * kHour, true).status());
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  OnlineService service(reg, store, std::make_shared<FakeClock>((kT0 + 40 * kHour) / 1000));
  OnlineRequest req;
  req.features = {"stats:tier"};
  std::vector<KeyScalar> ids;
  for (int k = 0; k < 20; ++k) ids.emplace_back(int64_t{k});
  req.entities.emplace_back("customer_id", ids);
  ASSERT_OK_AND_ASSIGN(auto before, service.Get(req));
  std::string before_json;
  server::AppendOnlineResponse(before, &before_json);
  // Drop a feature: the stored values have the old layout, and are read by name.
  std::string defs = kDefinitions;
  defs.erase(defs.rfind("      - {name: orders, type: int64}\n"),
             std::string("      - {name: orders, type: int64}\n").size());
  WriteFile(dir_.Join("definitions/defs.yaml"), defs);
  Apply();
  OnlineService fresh(reg, store, std::make_shared<FakeClock>((kT0 + 40 * kHour) / 1000));
  ASSERT_OK_AND_ASSIGN(auto after_change, fresh.Get(req));
  std::string after_json;
  server::AppendOnlineResponse(after_change, &after_json);
  EXPECT_EQ(after_json, before_json);
  ASSERT_OK_AND_ASSIGN(auto r, Run(*store, kT0 + 100 * kHour, true));
  EXPECT_FALSE(Stats(r).incremental);  // the layout changed: a full read
  ASSERT_OK_AND_ASSIGN(auto rewritten, fresh.Get(req));
  std::string rewritten_json;
  server::AppendOnlineResponse(rewritten, &rewritten_json);
  EXPECT_EQ(rewritten_json, before_json);
}

// ToArrow: the values as ToTable gives them, and each value's status and event
// time as the JSON body states them.
// Issue 23: a view whose source has no table (or no rows) has nothing to
// materialize, and an online read of a view never written to says so.
TEST_F(MaterializeTest, Issue23EmptySourcesAndUnmaterializedViewsAreWarnings) {
  Apply();
  auto store = OpenStore();
  ASSERT_OK_AND_ASSIGN(auto report, Run(*store, kT0 + 100 * kHour, false));
  ASSERT_EQ(report.warnings.size(), 1u);  // the push view's rows come by push: no warning
  EXPECT_EQ(report.warnings[0].code, Warning::Code::kSourceMissing);
  EXPECT_EQ(report.warnings[0].view, "stats");
  EXPECT_EQ(report.warnings[0].source, "stats");

  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  OnlineService service(reg, store, std::make_shared<FakeClock>((kT0 + 40 * kHour) / 1000));
  OnlineRequest req;
  req.feature_service = "model";
  req.entities.emplace_back("customer_id", std::vector<KeyScalar>{int64_t{1}, int64_t{2}});
  {
    ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
    ASSERT_EQ(resp.warnings.size(), 2u);
    EXPECT_EQ(resp.warnings[0].code, Warning::Code::kNotMaterialized);
    EXPECT_EQ(resp.warnings[0].view, "stats");
    EXPECT_FALSE(resp.warnings[0].push_source);
    EXPECT_EQ(resp.warnings[1].view, "clicks");
    EXPECT_TRUE(resp.warnings[1].push_source);
  }

  // An empty table: kSourceEmpty. Rows: no warning, and keys found online.
  std::mt19937_64 rng(23);
  AppendStats(RandomStats(&rng, 0, 1));
  ASSERT_OK_AND_ASSIGN(report, Run(*store, kT0 + 100 * kHour, false));
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_EQ(report.warnings[0].code, Warning::Code::kSourceEmpty);
  AppendStats(RandomStats(&rng, 200, 3));
  ASSERT_OK_AND_ASSIGN(report, Run(*store, kT0 + 100 * kHour, false));
  EXPECT_TRUE(report.warnings.empty());
  req.feature_service.clear();
  req.features = {"stats:spend"};
  ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
  EXPECT_TRUE(resp.warnings.empty());
  // Unknown keys of a materialized view are simply NOT_FOUND.
  req.entities[0].second = {int64_t{1000}};
  ASSERT_OK_AND_ASSIGN(auto unknown, service.Get(req));
  EXPECT_TRUE(unknown.warnings.empty());
}

TEST_F(MaterializeTest, OnlineResponseAsArrowCarriesValuesStatusesAndTimes) {
  Apply();
  std::mt19937_64 rng(9);
  AppendStats(RandomStats(&rng, 200, 20));
  auto store = OpenStore();
  ASSERT_OK(Run(*store, kT0 + 100 * kHour, false).status());
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  OnlineService service(reg, store, std::make_shared<FakeClock>((kT0 + 40 * kHour) / 1000));
  OnlineRequest req;
  req.features = {"stats:spend", "stats:tier"};
  std::vector<KeyScalar> ids;
  for (int k = 0; k < 25; ++k) ids.emplace_back(int64_t{k});  // 20..24: not found
  ids.emplace_back(std::monostate{});
  req.entities.emplace_back("customer_id", ids);
  ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
  ASSERT_OK_AND_ASSIGN(auto batches, resp.ToArrow());
  ASSERT_OK_AND_ASSIGN(auto table, resp.ToTable());
  ASSERT_OK_AND_ASSIGN(auto values, arrow::Table::FromRecordBatches({batches.values}));
  EXPECT_TRUE(values->Equals(*table)) << values->ToString();
  for (const auto& b : {batches.values, batches.statuses, batches.event_timestamps}) {
    ASSERT_OK(b->ValidateFull());
    EXPECT_EQ(b->num_rows(), 26);
    EXPECT_EQ(b->schema()->field_names(),
              (std::vector<std::string>{"customer_id", "spend", "tier"}));
  }
  EXPECT_EQ(batches.statuses->column(0)->type()->ToString(),
            "dictionary<values=string, "
            "indices=int8, ordered=0>");
  EXPECT_EQ(batches.event_timestamps->column(0)->type()->ToString(), "timestamp[us, tz=UTC]");
  // Statuses and times, cell for cell, as the Feast body has them.
  std::string json;
  server::AppendOnlineResponse(resp, &json);
  std::string from_arrow;
  std::set<std::string> seen;
  for (int c = 0; c < 3; ++c) {
    const auto& st = static_cast<const arrow::DictionaryArray&>(*batches.statuses->column(c));
    const auto& ts =
        static_cast<const arrow::TimestampArray&>(*batches.event_timestamps->column(c));
    std::string statuses, times;
    for (int64_t r = 0; r < 26; ++r) {
      ASSERT_OK_AND_ASSIGN(auto name, st.GetScalar(r));
      std::string text = static_cast<const arrow::DictionaryScalar&>(*name)
                             .GetEncodedValue()
                             .ValueOrDie()
                             ->ToString();
      seen.insert(text);
      statuses += (r ? ",\"" : "\"") + text + "\"";
      times += (r ? ",\"" : "\"") + FormatRfc3339Micros(ts.Value(r)) + "\"";
      // A feature is null exactly when its status is not PRESENT; a key when none was given.
      EXPECT_EQ(batches.values->column(c)->IsNull(r), c == 0 ? r == 25 : text != "PRESENT")
          << c << " " << r;
    }
    from_arrow += "\"statuses\":[" + statuses + "],\"event_timestamps\":[" + times + "]";
    EXPECT_NE(json.find(from_arrow), std::string::npos) << c << "\n" << from_arrow << "\n" << json;
    from_arrow.clear();
  }
  EXPECT_TRUE(seen.count("PRESENT") && seen.count("NOT_FOUND")) << json;
}

TEST_F(MaterializeTest, PushOnlineIsVisibleAndOfflineIsAppended) {
  Apply();
  auto store = OpenStore();
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  ASSERT_OK_AND_ASSIGN(auto state, reg->Load());
  auto data = TableFromJson(
      arrow::schema({arrow::field("customer_id", arrow::utf8()),
                     arrow::field("page", arrow::utf8()), arrow::field("event_ts", arrow::utf8())}),
      R"([{"customer_id": "7", "page": "/a", "event_ts": "2026-01-01T10:00:00Z"},
          {"customer_id": "7", "page": "/old", "event_ts": "2026-01-01T09:00:00Z"}])");
  ASSERT_OK_AND_ASSIGN(
      auto res, Push(*repo_, *state, store.get(), "clicks", data, PushTarget::kOnlineAndOffline));
  EXPECT_EQ(res.rows, 2);
  EXPECT_EQ(res.views_written, 1);
  EXPECT_EQ(res.delta_version, 0);
  OnlineService service(reg, store, std::make_shared<FakeClock>(kT0 / 1000));
  OnlineRequest req;
  req.features = {"clicks:page"};
  req.entities.emplace_back("customer_id", std::vector<KeyScalar>{int64_t{7}});
  ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
  std::string json;
  server::AppendOnlineResponse(resp, &json);
  EXPECT_NE(json.find("\"/a\""), std::string::npos) << json;  // the newer event wins
  // Bad values: nothing written anywhere.
  auto bad = TableFromJson(arrow::schema({arrow::field("customer_id", arrow::utf8()),
                                          arrow::field("event_ts", arrow::utf8())}),
                           R"([{"customer_id": "x", "event_ts": "2026-01-01T11:00:00Z"}])");
  auto st = Push(*repo_, *state, store.get(), "clicks", bad, PushTarget::kOnlineAndOffline);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(HasErrorKind(st.status(), ErrorKind::kDataRejected)) << st.status().ToString();
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("bronze/clicks")));
  ASSERT_OK_AND_ASSIGN(auto snap, table->Latest());
  EXPECT_EQ(snap->version(), 0);
  // Not a push source.
  auto wrong = Push(*repo_, *state, store.get(), "stats", data, PushTarget::kOnline);
  EXPECT_TRUE(HasErrorKind(wrong.status(), ErrorKind::kDefinitionError));
}

TEST_F(MaterializeTest, RequestErrorsNameTheProblem) {
  Apply();
  auto store = OpenStore();
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  OnlineService service(reg, store, Clock::System());
  auto get = [&](OnlineRequest r) { return service.Get(r).status(); };
  OnlineRequest ok;
  ok.features = {"stats:spend"};
  ok.entities.emplace_back("customer_id", std::vector<KeyScalar>{int64_t{1}});
  ASSERT_OK(get(ok));
  OnlineRequest unknown = ok;
  unknown.features = {"stats:nope"};
  EXPECT_TRUE(HasErrorKind(get(unknown), ErrorKind::kFeatureNotFound));
  EXPECT_NE(get(unknown).message().find("has no feature 'nope'"), std::string::npos);
  OnlineRequest service_missing = ok;
  service_missing.features.clear();
  service_missing.feature_service = "nope";
  EXPECT_TRUE(HasErrorKind(get(service_missing), ErrorKind::kFeatureNotFound));
  OnlineRequest wrong_type = ok;
  wrong_type.entities[0].second = {std::string("abc")};
  EXPECT_NE(get(wrong_type).message().find("expected an integer"), std::string::npos);
  OnlineRequest missing_key = ok;
  missing_key.entities[0].first = "user_id";
  EXPECT_NE(get(missing_key).message().find("missing join key 'customer_id'"), std::string::npos);
  OnlineRequest ragged = ok;
  ragged.entities.emplace_back("other", std::vector<KeyScalar>{int64_t{1}, int64_t{2}});
  EXPECT_NE(get(ragged).message().find("differ in length"), std::string::npos);
  OnlineRequest collide;
  collide.feature_service = "model";
  collide.entities = ok.entities;
  ASSERT_OK(get(collide));  // spend, orders, tier, page: no collision
}

// A one-chunk table's column names, types and arrays, as codec functions take them.
struct SplitTable {
  std::vector<std::string> names;
  std::vector<std::shared_ptr<arrow::DataType>> types;
  std::vector<std::shared_ptr<arrow::Array>> cols;
};
SplitTable SplitColumns(const arrow::Table& t) {
  SplitTable out;
  for (int i = 0; i < t.num_columns(); ++i) {
    out.names.push_back(t.schema()->field(i)->name());
    out.types.push_back(t.schema()->field(i)->type());
    out.cols.push_back(t.column(i)->chunk(0));
  }
  return out;
}

TEST(CodecTest, EveryTypeRoundTripsThroughJsonAndArrow) {
  auto schema = arrow::schema(
      {arrow::field("b", arrow::boolean()), arrow::field("i8", arrow::int8()),
       arrow::field("i16", arrow::int16()), arrow::field("i32", arrow::int32()),
       arrow::field("i64", arrow::int64()), arrow::field("f", arrow::float32()),
       arrow::field("d", arrow::float64()), arrow::field("s", arrow::utf8()),
       arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
       arrow::field("day", arrow::date32()), arrow::field("dec", arrow::decimal128(10, 2)),
       arrow::field("l", arrow::list(arrow::float64()))});
  auto t = TableFromJson(schema, R"([
    {"b": true, "i8": -5, "i16": 300, "i32": -70000, "i64": 9007199254740993, "f": 1.5,
     "d": 0.1, "s": "a\"b\\c\n", "ts": 1767225600123456, "day": 20454, "dec": "12.34",
     "l": [1.25, null, 3]},
    {"b": null, "i8": null, "i16": null, "i32": null, "i64": null, "f": null, "d": null,
     "s": null, "ts": null, "day": null, "dec": null, "l": null}])");
  auto [names, types, cols] = SplitColumns(*t);
  Layout layout = MakeLayout(names, types);
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseLayout(SerializeLayout(layout)));
  EXPECT_EQ(parsed.fingerprint, layout.fingerprint);
  RowEncoder enc(layout);
  ASSERT_OK(enc.Validate(cols));
  std::vector<std::unique_ptr<arrow::ArrayBuilder>> builders;
  for (const auto& ty : types) builders.push_back(*arrow::MakeBuilder(ty));
  std::string json;
  for (int64_t r = 0; r < 2; ++r) {
    std::string v;
    enc.Encode(cols, r, kT0, std::nullopt, &v);
    DecodedValue d;
    ASSERT_OK(DecodeValue(v, layout, &d));
    EXPECT_EQ(d.event_us, kT0);
    for (size_t i = 0; i < names.size(); ++i) {
      ASSERT_OK(AppendFieldToBuilder(*types[i], d.fields[i], d.null[i], builders[i].get()));
      if (r == 0) {
        json += (i ? "," : "");
        server::AppendFieldJson(*types[i], d.fields[i], &json);
      }
    }
    // Truncated values are an error, never a crash.
    for (size_t cut = 0; cut < v.size(); ++cut) {
      DecodedValue bad;
      EXPECT_FALSE(DecodeValue(std::string_view(v).substr(0, cut), layout, &bad).ok()) << cut;
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(auto arr, builders[i]->Finish());
    EXPECT_TRUE(arr->Equals(*cols[i])) << names[i] << ": " << arr->ToString();
  }
  EXPECT_EQ(json,
            "true,-5,300,-70000,9007199254740993,1.5,0.1,\"a\\\"b\\\\c\\n\","
            "\"2026-01-01T00:00:00.123456Z\",\"2026-01-01\",\"12.34\",[1.25,null,3]");
}

// A column's values as one JSON list: the same text per element as
// AppendFieldJson, nulls and non-present statuses as null, widest values whole.
TEST(CodecTest, FieldListsMatchTheirElementsAtTheWidestValues) {
  auto schema =
      arrow::schema({arrow::field("b", arrow::boolean()), arrow::field("i8", arrow::int8()),
                     arrow::field("i16", arrow::int16()), arrow::field("i32", arrow::int32()),
                     arrow::field("i64", arrow::int64()), arrow::field("f", arrow::float32()),
                     arrow::field("d", arrow::float64()), arrow::field("s", arrow::utf8())});
  auto t = TableFromJson(schema, R"([
    {"b": false, "i8": -128, "i16": -32768, "i32": -2147483648, "i64": -9223372036854775808,
     "f": -3.4028234663852886e+38, "d": -2.2250738585072014e-308, "s": "x"},
    {"b": true, "i8": 127, "i16": 32767, "i32": 2147483647, "i64": 9223372036854775807,
     "f": 0.1, "d": -1.7976931348623157e+308, "s": "\"q\""},
    {"b": null, "i8": null, "i16": null, "i32": null, "i64": null, "f": null, "d": null,
     "s": null},
    {"b": true, "i8": 0, "i16": 0, "i32": 0, "i64": 0, "f": 0, "d": 5e-324, "s": ""}])");
  auto [names, types, cols] = SplitColumns(*t);
  Layout layout = MakeLayout(names, types);
  RowEncoder enc(layout);
  ASSERT_OK(enc.Validate(cols));
  const int64_t rows = t->num_rows();
  std::vector<std::string> encoded(static_cast<size_t>(rows));
  std::vector<DecodedValue> decoded(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    enc.Encode(cols, r, kT0, std::nullopt, &encoded[r]);
    ASSERT_OK(DecodeValue(encoded[r], layout, &decoded[r]));
  }
  // The last row is reported as not found: its values are not read.
  const std::vector<FeatureStatus> statuses = {FeatureStatus::kPresent, FeatureStatus::kPresent,
                                               FeatureStatus::kNullValue, FeatureStatus::kNotFound};
  const std::vector<std::string> expected = {
      "false,true,null,null",
      "-128,127,null,null",
      "-32768,32767,null,null",
      "-2147483648,2147483647,null,null",
      "-9223372036854775808,9223372036854775807,null,null",
      "-3.4028234663852886e+38,0.10000000149011612,null,null",
      "-2.2250738585072014e-308,-1.7976931348623157e+308,null,null",
      "\"x\",\"\\\"q\\\"\",null,null"};
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<std::string_view> values;
    std::string by_element = "[";
    for (int64_t r = 0; r < rows; ++r) {
      values.push_back(decoded[r].fields[i]);
      if (r) by_element += ",";
      if (statuses[r] == FeatureStatus::kPresent) {
        server::AppendFieldJson(*types[i], decoded[r].fields[i], &by_element);
      } else {
        by_element += "null";
      }
    }
    std::string list = "[";  // text already there is kept
    server::AppendFieldListJson(*types[i], values, statuses, &list);
    EXPECT_EQ(list, "[" + expected[i]) << names[i];
    EXPECT_EQ(list, by_element) << names[i];
  }
}

TEST(CodecTest, KeysOfAnyIntegerWidthAreTheSame) {
  std::string a, b, c;
  ASSERT_OK(AppendKey(*arrow::int64(), KeyScalar{int64_t{42}}, &a));
  auto i32 = *arrow::MakeArrayFromScalar(arrow::Int32Scalar(42), 1);
  ASSERT_OK_AND_ASSIGN(bool ok, AppendKeyFromArray(*i32, 0, &b));
  EXPECT_TRUE(ok);
  EXPECT_EQ(a, b);
  EXPECT_FALSE(AppendKey(*arrow::int64(), KeyScalar{std::string("42")}, &c).ok());
  EXPECT_FALSE(AppendKey(*arrow::utf8(), KeyScalar{int64_t{42}}, &c).ok());
}

TEST(CodecTest, TimestampsFormatAsRfc3339) {
  EXPECT_EQ(FormatRfc3339Micros(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339Micros(kT0 + 1), "2026-01-01T00:00:00.000001Z");
  EXPECT_EQ(FormatRfc3339Micros(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatRfc3339Micros(951782400LL * 1000000), "2000-02-29T00:00:00Z");
}

}  // namespace
}  // namespace stratalake::online
