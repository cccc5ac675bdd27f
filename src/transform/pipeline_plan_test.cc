// Tests of what `plan` shows of the pipelines: the runs `run --all` would do
// (with their cause), and output schemas predicted without running a query
// over data and checked against the feature views that read them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "stratalake/delta.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace stratalake::transform {
namespace {

using stratalake::testing::TableFromJson;
using stratalake::testing::TempDir;

constexpr const char* kPipelines = R"(transformations:
  - name: gold_spend
    output: gold.customer_spend
    sql: |
      SELECT customer_id, sum(amount) AS spend, count(*) AS orders
      FROM silver.orders GROUP BY customer_id
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: ts
    sql: SELECT order_id, customer_id, amount, ts FROM bronze.orders
)";

// A feature view over gold.customer_spend declaring `spend` as SPEND_TYPE.
std::string Views(const std::string& spend_type) {
  return R"(entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: spend
    path: gold/customer_spend
feature_views:
  - name: customer_spend
    entities: [customer]
    source: spend
    features:
      - {name: spend, type: )" +
         spend_type + R"(}
      - {name: orders, type: int64}
)";
}

class PipelinePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.Join("stratalake.yaml"))
        << "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n";
    std::filesystem::create_directories(dir_.Join("definitions"));
    std::ofstream(dir_.Join("definitions/pipelines.yaml")) << kPipelines;
    ASSERT_OK_AND_ASSIGN(repo_, repo::FeatureRepository::Open(dir_.path()));
  }

  void DefineViews(const std::string& yaml) {
    std::ofstream(dir_.Join("definitions/views.yaml")) << yaml;
  }

  registry::Definitions Defs() {
    auto d = repo_->LoadDefinitions();
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : registry::Definitions{};
  }

  void AppendOrders(const std::string& ids, const std::string& amounts) {
    auto schema = arrow::schema(
        {arrow::field("order_id", arrow::int64()), arrow::field("customer_id", arrow::int64()),
         arrow::field("amount", arrow::float64()),
         arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
         arrow::field("note", arrow::utf8())});
    auto t = delta::DeltaTable::ForPath(repo_->TableUri("bronze/orders")).ValueOrDie();
    const size_t n = std::count(ids.begin(), ids.end(), ',') + 1;
    std::string customers = "[", ts = "[", notes = "[";
    for (size_t i = 0; i < n; ++i) {
      customers += std::string(i ? ", " : "") + "10";
      ts += std::string(i ? ", " : "") + "\"2026-01-01 00:00:00\"";
      notes += std::string(i ? ", " : "") + "\"x\"";
    }
    ASSERT_OK(
        t->Write(TableFromJson(schema, {ids, customers + "]", amounts, ts + "]", notes + "]"}),
                 delta::WriteOptions{})
            .status());
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
};

TEST_F(PipelinePlanTest, PredictsOutputSchemasThroughTablesNotCreatedYet) {
  AppendOrders("[1, 2]", "[5.0, 7.0]");
  auto defs = Defs();
  // silver/orders does not exist: gold's schema follows from silver's prediction.
  ASSERT_OK_AND_ASSIGN(auto silver,
                       PredictOutputSchema(*repo_, *defs.FindTransformation("silver_orders")));
  ASSERT_NE(silver, nullptr);
  EXPECT_EQ(silver->ToString(),
            "order_id: int64\ncustomer_id: int64\namount: double\nts: timestamp[us, tz=UTC]");
  const auto& gold = *defs.FindTransformation("gold_spend");
  ASSERT_OK_AND_ASSIGN(auto unknown, PredictOutputSchema(*repo_, gold));
  EXPECT_EQ(unknown, nullptr);  // its input neither exists nor is planned
  ASSERT_OK_AND_ASSIGN(auto predicted,
                       PredictOutputSchema(*repo_, gold, {{"silver/orders", silver}}));
  ASSERT_NE(predicted, nullptr);
  // sum() of integers would be a 128-bit integer: runs give int64, and so does the prediction.
  EXPECT_EQ(predicted->ToString(), "customer_id: int64\nspend: double\norders: int64");

  // The prediction is what a run writes.
  ASSERT_OK_AND_ASSIGN(auto runs, RunPipeline(*repo_, defs));
  auto written = delta::DeltaTable::Open(repo_->TableUri("gold/customer_spend"))
                     .ValueOrDie()
                     ->Latest()
                     .ValueOrDie()
                     ->schema();
  EXPECT_EQ(written->ToString(), predicted->ToString());
}

TEST_F(PipelinePlanTest, ListsWhatRunAllWouldRunWithTheCause) {
  AppendOrders("[1, 2]", "[5.0, 7.0]");
  DefineViews(Views("float64"));
  ASSERT_OK_AND_ASSIGN(auto plan, PlanPipelines(*repo_, Defs()));
  EXPECT_TRUE(plan.problems.empty()) << plan.problems[0];
  ASSERT_EQ(plan.runs.size(), 2u);
  EXPECT_EQ(plan.runs[0].cause, "never_run");
  EXPECT_EQ(plan.runs[1].cause, "never_run");
  EXPECT_EQ(plan.ToString(),
            "Pipeline runs (`stratalake run --all`): 2 to run, 0 up to date\n"
            "  run silver_orders -> silver/orders (merge): never run\n"
            "  run gold_spend -> gold/customer_spend (full_refresh): never run\n");
  ASSERT_OK(plan.Refusal());

  ASSERT_OK(RunPipeline(*repo_, Defs()).status());
  ASSERT_OK_AND_ASSIGN(plan, PlanPipelines(*repo_, Defs()));
  EXPECT_EQ(plan.ToString(), "Pipeline runs (`stratalake run --all`): none to run, 2 up to date\n");
  EXPECT_EQ(plan.runs[1].cause, "up_to_date");

  AppendOrders("[3]", "[1.5]");
  ASSERT_OK_AND_ASSIGN(plan, PlanPipelines(*repo_, Defs()));
  EXPECT_EQ(plan.runs[0].cause, "inputs_changed");
  EXPECT_EQ(plan.runs[1].cause, "upstream");
  EXPECT_EQ(plan.ToString(),
            "Pipeline runs (`stratalake run --all`): 2 to run, 0 up to date\n"
            "  run silver_orders -> silver/orders (merge): bronze/orders changed: version 0 -> 1\n"
            "  run gold_spend -> gold/customer_spend (full_refresh): upstream silver_orders runs "
            "first\n");
  ASSERT_OK(RunPipeline(*repo_, Defs()).status());

  std::string changed = kPipelines;
  changed.replace(changed.find("count(*) AS orders"), 18, "count(order_id) AS orders");
  std::ofstream(dir_.Join("definitions/pipelines.yaml")) << changed;
  ASSERT_OK_AND_ASSIGN(plan, PlanPipelines(*repo_, Defs()));
  EXPECT_FALSE(plan.runs[0].stale);
  EXPECT_EQ(plan.runs[1].cause, "definition_changed");
  EXPECT_EQ(plan.runs[1].reason, "query changed");
}

TEST_F(PipelinePlanTest, OutputsThatDoNotFitTheirReadersAreProblemsBeforeAnyRun) {
  AppendOrders("[1, 2]", "[5.0, 7.0]");
  DefineViews(Views("string"));
  ASSERT_OK_AND_ASSIGN(auto plan, PlanPipelines(*repo_, Defs()));
  const std::string problem =
      "definitions/pipelines.yaml:2:5: transformation 'gold_spend': its result does not match "
      "the feature views that read gold/customer_spend:\n"
      "  feature view 'customer_spend' (definitions/views.yaml:8:5) declares feature 'spend' as "
      "string but the result's column 'spend' is float64, which the 'backward' compatibility "
      "policy refuses\n"
      "cast the columns in the query (or declare them in its schema), or change the features' "
      "types";
  ASSERT_EQ(plan.problems, (std::vector<std::string>{problem}));
  EXPECT_EQ(plan.ToString().substr(0, problem.size() + 3), "! " + problem + "\n");
  auto refused = plan.Refusal();
  EXPECT_TRUE(HasErrorKind(refused, ErrorKind::kIncompatibleChange)) << refused.ToString();
  EXPECT_EQ(refused.message(), "1 incompatible change(s); nothing was applied\n  " + problem);
  // The run refuses the same result with the same words.
  auto run = RunPipeline(*repo_, Defs());
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().message(), problem);
}

}  // namespace
}  // namespace stratalake::transform
