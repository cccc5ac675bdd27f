// On-demand features served online equal get-historical's for the same rows,
// value for value and null for null (a property test over random data), and
// the Feast wire format carries request data inside `entities`.
#include <random>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../bench/repo_fixtures.h"
#include "../../tests/test_util.h"
#include "server/feast_wire.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::online {
namespace {

using stratalake::testing::TempDir;

using fixtures::kHour;
using fixtures::kT0;

const std::string kDefinitions = fixtures::OnDemandDefinitions("10h", R"yaml(      - name: risk
        type: string
        expression: >-
          CASE WHEN amount > 500 AND tier = 'silver' THEN 'high'
               WHEN amount > 100 THEN 'medium' ELSE 'low' END
      - {name: orders_plus, type: int64, expression: "coalesce(orders, 0) + if(channel = 'web', 1, 0)"}
      - {name: log_amount, type: float32, expression: "round(ln(abs(amount) + 1), 3)"}
  - name: txn_scores
    sources: [txn_features]
    features:
      - {name: score, type: float64, expression: "coalesce(amount_ratio, 0) * 10 + amount_bucket"}
feature_services:
  - name: fraud
    features: [stats:avg_amount, txn_features, txn_scores]
)yaml");

double Uniform(std::mt19937_64* rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(*rng);
}

// Random stats: ties, nulls and zeros in avg_amount, keys 0..keys-1, times in [kT0, kT0 + 48h].
std::shared_ptr<arrow::Table> RandomStats(std::mt19937_64* rng, int rows, int keys) {
  arrow::Int64Builder id, orders;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::DoubleBuilder avg, lat, lon;
  arrow::StringBuilder tier;
  std::uniform_int_distribution<int> key(0, keys - 1), hour(0, 48), coin(0, 9);
  for (int i = 0; i < rows; ++i) {
    (void)id.Append(key(*rng));
    (void)ts.Append(kT0 + hour(*rng) * kHour);
    const int c = coin(*rng);
    if (c == 0) {
      (void)avg.AppendNull();
    } else {
      (void)avg.Append(c == 1 ? 0.0 : Uniform(rng, 1, 900));
    }
    if (coin(*rng) == 0) {
      (void)orders.AppendNull();
    } else {
      (void)orders.Append(static_cast<int64_t>((*rng)() % 50));
    }
    (void)lat.Append(Uniform(rng, -80, 80));
    (void)lon.Append(Uniform(rng, -180, 180));
    (void)tier.Append(coin(*rng) < 5 ? "gold" : "silver");
  }
  arrow::ArrayVector cols(7);
  (void)id.Finish(&cols[0]);
  (void)ts.Finish(&cols[1]);
  (void)avg.Finish(&cols[2]);
  (void)orders.Finish(&cols[3]);
  (void)lat.Finish(&cols[4]);
  (void)lon.Finish(&cols[5]);
  (void)tier.Finish(&cols[6]);
  return arrow::Table::Make(fixtures::OnDemandStatsSchema(), cols, rows);
}

// Collects a streamed retrieval's output.
class TableSink : public retrieval::HistoricalSink {
 public:
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    schema_ = schema;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    parts_.push_back(rows);
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Table() const {
    return arrow::ConcatenateTables(parts_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::Table>> parts_;
};

class OnDemandServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixtures::WriteRepository(dir_.path(), "t", kDefinitions);
    ASSERT_OK_AND_ASSIGN(repo_, fixtures::OpenAndApply(dir_.path(), "test"));
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
};

// Online (the feature server's path) and get-historical (in memory and
// streamed in slices) give the same on-demand values for the same rows at the
// same time: exact equality, nulls (no stored row, TTL, null inputs, x / 0)
// included.
TEST_F(OnDemandServingTest, OnlineEqualsHistoricalForRandomRows) {
  constexpr int kKeys = 200;
  constexpr int kRows = 500;
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("gold/stats")));
    ASSERT_OK(table->Write(RandomStats(&rng, 1500, kKeys), delta::WriteOptions{}).status());
    auto opened = OpenRepositoryStore(*repo_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::shared_ptr<OnlineStore> store(std::move(*opened));
    const int64_t now = kT0 + (20 + 10 * static_cast<int64_t>(seed)) * kHour;
    MaterializeOptions mo;
    mo.end_us = now;
    ASSERT_OK(Materialize(*repo_, *store, mo).status());

    // The request rows: keys (some never written), request data with nulls.
    std::vector<KeyScalar> ids, channels;
    arrow::Int64Builder id_b;
    arrow::DoubleBuilder amount_b, lat_b, lon_b;
    arrow::StringBuilder channel_b;
    std::uniform_int_distribution<int> key(0, kKeys + 20), coin(0, 9);
    for (int i = 0; i < kRows; ++i) {
      int64_t k = key(rng);
      ids.emplace_back(k);
      ASSERT_OK(id_b.Append(k));
      if (coin(rng) == 0) {
        ASSERT_OK(amount_b.AppendNull());
      } else {
        ASSERT_OK(amount_b.Append(coin(rng) == 1 ? 0.0 : Uniform(&rng, -50, 2000)));
      }
      ASSERT_OK(lat_b.Append(Uniform(&rng, -90, 90)));
      ASSERT_OK(lon_b.Append(Uniform(&rng, -180, 180)));
      const int c = coin(rng);
      if (c == 0) {
        channels.emplace_back(std::monostate{});
        ASSERT_OK(channel_b.AppendNull());
      } else {
        channels.emplace_back(std::string(c < 5 ? "web" : "app"));
        ASSERT_OK(channel_b.Append(c < 5 ? "web" : "app"));
      }
    }
    std::shared_ptr<arrow::Array> ids_a, amount, lat, lon, channel;
    ASSERT_OK(id_b.Finish(&ids_a));
    ASSERT_OK(amount_b.Finish(&amount));
    ASSERT_OK(lat_b.Finish(&lat));
    ASSERT_OK(lon_b.Finish(&lon));
    ASSERT_OK(channel_b.Finish(&channel));

    for (bool service : {false, true}) {
      SCOPED_TRACE(service ? "feature service" : "feature list");
      std::vector<std::string> features;
      if (!service) features = {"stats:avg_amount", "txn_features", "txn_scores:score"};
      // Online: channel among the entities (as Feast sends it), the numbers as request data.
      ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
      OnlineService svc(reg, store, std::make_shared<FakeClock>(now / 1000));
      OnlineRequest req;
      req.features = features;
      req.feature_service = service ? "fraud" : "";
      req.entities = {{"customer_id", ids}, {"channel", channels}};
      req.request_data = {{"amount", amount}, {"lat", lat}, {"lon", lon}};
      ASSERT_OK_AND_ASSIGN(auto resp, svc.Get(req));
      ASSERT_OK_AND_ASSIGN(auto online, resp.ToTable());
      std::vector<std::string> names;
      for (const auto& c : resp.columns) names.push_back(c.name);
      EXPECT_EQ(names, (std::vector<std::string>{"customer_id", "channel", "avg_amount",
                                                 "amount_ratio", "distance_km", "amount_bucket",
                                                 "risk", "orders_plus", "log_amount", "score"}));

      // Offline: one entity row per request row, at `now`.
      auto ts =
          std::make_shared<arrow::TimestampArray>(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                                                  kRows, *arrow::AllocateBuffer(kRows * 8));
      auto* t = reinterpret_cast<int64_t*>(ts->values()->mutable_data());
      for (int i = 0; i < kRows; ++i) t[i] = now;
      auto entities = arrow::Table::Make(
          arrow::schema(
              {arrow::field("customer_id", arrow::int64()),
               arrow::field("event_timestamp", ts->type()),
               arrow::field("amount", arrow::float64()), arrow::field("lat", arrow::float64()),
               arrow::field("lon", arrow::float64()), arrow::field("channel", arrow::utf8())}),
          {ids_a, ts, amount, lat, lon, channel}, kRows);
      retrieval::HistoricalRequest hreq;
      hreq.entities = entities;
      hreq.features = features;
      hreq.feature_service = req.feature_service;
      ASSERT_OK_AND_ASSIGN(auto offline, retrieval::GetHistoricalFeatures(*repo_, hreq));
      EXPECT_EQ(offline.feature_refs.back(), "txn_scores:score");
      // Streamed in slices of a small budget: the same rows again.
      hreq.memory_budget_bytes = 64 << 10;
      TableSink sink;
      ASSERT_OK(retrieval::GetHistoricalFeatures(*repo_, hreq, &sink).status());
      ASSERT_OK_AND_ASSIGN(auto streamed, sink.Table());

      int64_t nulls = 0, values = 0;
      for (const char* f : {"avg_amount", "amount_ratio", "distance_km", "amount_bucket", "risk",
                            "orders_plus", "log_amount", "score"}) {
        SCOPED_TRACE(f);
        auto on = online->GetColumnByName(f);
        auto off = offline.table->GetColumnByName(f);
        auto str = streamed->GetColumnByName(f);
        ASSERT_TRUE(on && off && str);
        EXPECT_TRUE(on->type()->Equals(*off->type()))
            << on->type()->ToString() << " vs " << off->type()->ToString();
        const auto exact = arrow::EqualOptions::Defaults().nans_equal(true);
        EXPECT_TRUE(on->Equals(*off, exact))
            << "online: " << on->ToString() << "\noffline: " << off->ToString();
        EXPECT_TRUE(str->Equals(*off, exact));
        nulls += off->null_count();
        values += off->length() - off->null_count();
      }
      // The data exercise both: values and nulls.
      EXPECT_GT(nulls, 100);
      EXPECT_GT(values, 1000);
    }
  }
}

TEST_F(OnDemandServingTest, RequestErrorsNameWhatIsMissing) {
  auto opened = OpenRepositoryStore(*repo_);
  ASSERT_TRUE(opened.ok());
  std::shared_ptr<OnlineStore> store(std::move(*opened));
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  OnlineService svc(reg, store, std::make_shared<FakeClock>(kT0 / 1000));
  OnlineRequest req;
  req.features = {"txn_features:amount_ratio"};
  req.entities = {{"customer_id", {KeyScalar(int64_t{1})}}};
  auto r = svc.Get(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing request field 'amount' for on-demand features"),
            std::string::npos)
      << r.status().message();
  // A request field given as a string converts to its declared type.
  req.entities.push_back({"amount", {KeyScalar(std::string("12.5"))}});
  ASSERT_OK_AND_ASSIGN(auto resp, svc.Get(req));
  ASSERT_EQ(resp.columns.back().name, "amount_ratio");
  EXPECT_EQ(resp.columns.back().statuses[0], FeatureStatus::kNullValue);  // no stats row
  req.entities.back().second = {KeyScalar(std::string("lots"))};
  r = svc.Get(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("input 'amount' is string and does not convert"),
            std::string::npos)
      << r.status().message();
}

TEST(OnDemandWire, FeastRequestDataTravelsInsideEntities) {
  OnlineRequest req;
  ASSERT_OK(server::ParseOnlineRequest(
      R"({"features": ["txn_features:risk"], "entities": {"customer_id": [1, 2],
          "amount": [12.5, 3], "flag": [true, null], "channel": ["web", null]}})",
      server::RequestLimits{}, &req, nullptr));
  ASSERT_EQ(req.entities.size(), 2u);
  EXPECT_EQ(req.entities[0].first, "customer_id");
  EXPECT_EQ(req.entities[1].first, "channel");
  ASSERT_EQ(req.request_data.size(), 2u);
  EXPECT_EQ(req.request_data[0].first, "amount");
  EXPECT_EQ(
      req.request_data[0].second->ToString(),
      arrow::json::ArrayFromJSONString(arrow::float64(), "[12.5, 3]").ValueOrDie()->ToString());
  EXPECT_EQ(req.request_data[1].second->type()->id(), arrow::Type::BOOL);
}

}  // namespace
}  // namespace stratalake::online
