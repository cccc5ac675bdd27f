// On-demand feature views in the registry: parsing, validation messages with
// their FILE:LINE:COL, canonical JSON round trips, plans, and Evaluate.
#include "stratalake/on_demand.h"

#include <arrow/api.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "registry/loader.h"
#include "registry/store.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {
namespace {

const char* kDefs = R"yaml(entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: stats
    path: gold/stats
    timestamp_field: ts
    schema:
      - {name: customer_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: avg_amount, type: float64}
      - {name: orders, type: int64}
feature_views:
  - name: stats
    entities: [customer]
    source: stats
    features:
      - {name: avg_amount, type: float64}
      - {name: orders, type: int64}
request_sources:
  - name: txn
    schema:
      - amount: float64
      - channel: string
on_demand_feature_views:
  - name: txn_features
    sources: [txn, stats]
    features:
      - name: ratio
        type: float64
        expression: amount / nullif(avg_amount, 0)
      - {name: bucket, type: int64, expression: "bucket(amount, 10, 100)"}
  - name: scores
    sources: [txn_features, txn]
    features:
      - {name: score, type: float64, expression: "coalesce(ratio, 0) + bucket"}
feature_services:
  - name: fraud
    features: [stats:orders, txn_features, scores]
)yaml";

Definitions Parse(const std::string& yaml) {
  Definitions d;
  std::vector<std::string> problems;
  ParseDefinitionsYaml(yaml, "defs.yaml", &d, &problems);
  EXPECT_TRUE(problems.empty()) << (problems.empty() ? "" : problems[0]);
  return d;
}

// Validates with the sources' declared schemas (no offline store).
arrow::Status ValidateDeclared(const Definitions& d) {
  ValidationOptions o;
  o.resolve_schema = [](const Source& s) -> arrow::Result<std::shared_ptr<arrow::Schema>> {
    arrow::FieldVector f;
    for (const auto& c : s.schema) f.push_back(arrow::field(c.name, c.type, c.nullable));
    return arrow::schema(f);
  };
  return Validate(d, o);
}

std::string Problems(const std::string& yaml) {
  auto st = ValidateDeclared(Parse(yaml));
  EXPECT_FALSE(st.ok());
  return st.message();
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

TEST(OnDemandDefinitions, ParseValidateAndRoundTripThroughCanonicalJson) {
  Definitions d = Parse(kDefs);
  ASSERT_OK(ValidateDeclared(d));
  ASSERT_EQ(d.request_sources.size(), 1u);
  ASSERT_EQ(d.on_demand_feature_views.size(), 2u);
  const OnDemandFeatureView& v = d.on_demand_feature_views[0];
  EXPECT_EQ(v.loc.ToString(), "defs.yaml:26:5");
  EXPECT_EQ(v.features[0].expression, "amount / nullif(avg_amount, 0)");
  EXPECT_EQ(v.features[0].expression_loc.ToString(), "defs.yaml:31:21");
  Definitions back;
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kOnDemandFeatureView, ToCanonicalJson(v), &back));
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kRequestSource, ToCanonicalJson(d.request_sources[0]),
                                 &back));
  EXPECT_EQ(ToCanonicalJson(back.on_demand_feature_views[0]), ToCanonicalJson(v));
  EXPECT_EQ(ToCanonicalJson(back.request_sources[0]), ToCanonicalJson(d.request_sources[0]));
  EXPECT_EQ(
      ToCanonicalJson(v),
      R"js({"name":"txn_features","sources":["txn","stats"],"features":[{"name":"ratio",)js"
      R"js("type":"float64","expression":"amount / nullif(avg_amount, 0)","description":"",)js"
      R"js("tags":{}},{"name":"bucket","type":"int64","expression":"bucket(amount, 10, 100)",)js"
      R"js("description":"","tags":{}}],"owner":"","description":"","tags":{}})js");
  ASSERT_OK_AND_ASSIGN(auto kind, ParseObjectKind("on-demand-feature-views"));
  EXPECT_EQ(kind, ObjectKind::kOnDemandFeatureView);
}

TEST(OnDemandDefinitions, ProblemsNameTheFileLineAndColumn) {
  EXPECT_NE(Problems(Replace(kDefs, "nullif(avg_amount, 0)", "avg_amt"))
                .find("defs.yaml:31:21: on-demand feature view 'txn_features' feature 'ratio': "
                      "expression 'amount / avg_amt': unknown column 'avg_amt'"),
            std::string::npos);
  EXPECT_NE(Problems(Replace(kDefs, "expression: amount / nullif(avg_amount, 0)",
                             "expression: channel * 2"))
                .find("defs.yaml:31:21: on-demand feature view 'txn_features' feature 'ratio': "
                      "expression 'channel * 2': cannot evaluate"),
            std::string::npos);
  EXPECT_NE(Problems(Replace(kDefs, "{name: score, type: float64", "{name: score, type: date"))
                .find("cannot be cast to the declared type date"),
            std::string::npos);
  EXPECT_NE(Problems(Replace(kDefs, "sources: [txn, stats]", "sources: [txn, stats, scores]"))
                .find("its sources form a cycle (txn_features -> scores -> txn_features)"),
            std::string::npos);
  EXPECT_NE(Problems(Replace(kDefs, "sources: [txn, stats]", "sources: [txn, statz]"))
                .find("defs.yaml:26:5: on-demand feature view 'txn_features': unknown source "
                      "'statz'"),
            std::string::npos);
  EXPECT_NE(Problems(Replace(kDefs, "features: [stats:orders, txn_features, scores]",
                             "features: [stats:orders, 'txn_features:nope', scores]"))
                .find("on-demand feature view 'txn_features' has no feature 'nope'"),
            std::string::npos);
  EXPECT_NE(Problems(Replace(kDefs, "  - name: scores", "  - name: stats"))
                .find("feature view 'stats' (defs.yaml:14:5) has the same name"),
            std::string::npos);
}

TEST(OnDemandDefinitions, PlanResolvesRequestsAndEvaluatesBatches) {
  Definitions d = Parse(kDefs);
  ASSERT_OK_AND_ASSIGN(auto none, OnDemandPlan::Make(d, {"stats:orders"}, "", false));
  EXPECT_EQ(none, nullptr);
  ASSERT_OK_AND_ASSIGN(auto plan, OnDemandPlan::Make(d, {}, "fraud", true));
  ASSERT_NE(plan, nullptr);
  ASSERT_EQ(plan->outputs().size(), 3u);
  EXPECT_EQ(plan->outputs()[0].name, "txn_features__ratio");
  EXPECT_EQ(plan->outputs()[2].name, "scores__score");
  ASSERT_EQ(plan->dependencies().size(), 1u);
  EXPECT_EQ(plan->dependencies()[0].view->name, "stats");
  EXPECT_EQ(plan->dependencies()[0].features, std::vector<std::string>{"avg_amount"});
  ASSERT_EQ(plan->request_fields().size(), 1u);
  EXPECT_EQ(plan->request_fields()[0].name, "amount");
  // Stored views are resolved as before; on-demand references are left to the plan.
  ASSERT_OK_AND_ASSIGN(auto views, ResolveFeatureRequest(d, {}, "fraud"));
  ASSERT_EQ(views.size(), 1u);

  auto amount = *arrow::json::ArrayFromJSONString(arrow::int64(), "[5, 50, 500, null]");
  auto avg = *arrow::json::ArrayFromJSONString(arrow::float64(), "[10, 0, 250, 1]");
  auto batch = arrow::RecordBatch::Make(
      arrow::schema(
          {arrow::field("amount", arrow::int64()),
           arrow::field(OnDemandPlan::DependencyColumn("stats", "avg_amount"), arrow::float64())}),
      4, {amount, avg});
  ASSERT_OK_AND_ASSIGN(auto out, plan->Evaluate(*batch));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]->ToString(),
            arrow::json::ArrayFromJSONString(arrow::float64(), "[0.5, null, 2, null]")
                .ValueOrDie()
                ->ToString());
  EXPECT_TRUE(out[1]->Equals(
      *arrow::json::ArrayFromJSONString(arrow::int64(), "[0, 1, 2, null]").ValueOrDie()));
  EXPECT_TRUE(out[2]->Equals(
      *arrow::json::ArrayFromJSONString(arrow::float64(), "[0.5, 1, 4, null]").ValueOrDie()));

  auto missing =
      arrow::RecordBatch::Make(arrow::schema({arrow::field("x", arrow::int64())}), 4, {amount});
  auto st = plan->Evaluate(*missing);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("missing request field 'amount'"), std::string::npos)
      << st.status().message();
  auto bad = OnDemandPlan::Make(d, {"txn_features:nope"}, "", false);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(HasErrorKind(bad.status(), ErrorKind::kFeatureNotFound));
}

TEST(OnDemandDefinitions, PlansShowThemAndApplyVersionsThem) {
  stratalake::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto reg, Registry::Open(dir.Join("registry.db")));
  Definitions d = Parse(kDefs);
  ASSERT_OK_AND_ASSIGN(auto plan, reg->PlanChanges(d, CompatibilityPolicy::kBackward));
  const std::string text = plan.ToString();
  EXPECT_NE(text.find("+ request_source txn"), std::string::npos) << text;
  EXPECT_NE(text.find("+ on_demand_feature_view txn_features"), std::string::npos) << text;
  ASSERT_OK(reg->Apply(d, CompatibilityPolicy::kBackward, "t", "").status());
  ASSERT_OK_AND_ASSIGN(auto state, reg->Load());
  ASSERT_EQ(state->defs.on_demand_feature_views.size(), 2u);
  ASSERT_NE(state->defs.FindOnDemandFeatureView("scores"), nullptr);
  EXPECT_EQ(ToCanonicalJson(*state->defs.FindOnDemandFeatureView("scores")),
            ToCanonicalJson(d.on_demand_feature_views[1]));
  Definitions changed = Parse(Replace(kDefs, "coalesce(ratio, 0) + bucket", "bucket * 2"));
  ASSERT_OK_AND_ASSIGN(auto plan2, reg->PlanChanges(changed, CompatibilityPolicy::kBackward));
  ASSERT_EQ(plan2.changes.size(), 1u);
  EXPECT_EQ(plan2.changes[0].type, ChangeType::kModify);
  EXPECT_NE(plan2.ToString().find("features[score].expression"), std::string::npos)
      << plan2.ToString();
}

}  // namespace
}  // namespace stratalake::registry
