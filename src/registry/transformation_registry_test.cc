// Transformations as registry objects: canonical JSON, plans (a query's change
// shown line by line), versions and history, and the compatibility policy on a
// declared output schema.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "registry/loader.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {
namespace {

using stratalake::testing::TempDir;

Definitions Parse(const std::string& yaml) {
  Definitions d;
  std::vector<std::string> problems;
  ParseDefinitionsYaml(yaml, "pipelines.yaml", &d, &problems);
  EXPECT_TRUE(problems.empty()) << (problems.empty() ? "" : problems[0]);
  return d;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

const char* kPipelines = R"(transformations:
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: updated_at
    on_change: keys
    sql: |
      SELECT order_id, customer_id, amount, updated_at
      FROM bronze.orders
      WHERE status <> 'test'
  - name: gold_totals
    output: gold/totals
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: spend, type: float64}
    sql: SELECT customer_id, sum(amount) AS spend FROM silver.orders GROUP BY ALL
    owner: data-eng
)";

TEST(TransformationObjects, CanonicalJsonRoundTripsAndFlattens) {
  Definitions d = Parse(kPipelines);
  ASSERT_EQ(d.transformations.size(), 2u);
  Definitions back;
  for (const auto& t : d.transformations) {
    ASSERT_OK(AddFromCanonicalJson(ObjectKind::kTransformation, ToCanonicalJson(t), &back));
  }
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ToCanonicalJson(back.transformations[i]), ToCanonicalJson(d.transformations[i]));
  }
  EXPECT_EQ(back.transformations[0].mode, TransformMode::kMerge);
  EXPECT_EQ(back.transformations[0].on_change, OnChange::kKeys);
  EXPECT_EQ(back.transformations[1].schema.at(0).nullable, false);
  auto flat = FlattenJson(ToCanonicalJson(d.transformations[0]));
  EXPECT_EQ(flat.at("output"), "silver/orders");
  EXPECT_EQ(flat.at("mode"), "merge");
  EXPECT_EQ(flat.at("keys"), "[order_id]");
  EXPECT_EQ(flat.at("on_change"), "keys");
  EXPECT_EQ(flat.at("sql"),
            "SELECT order_id, customer_id, amount, updated_at\nFROM bronze.orders\n"
            "WHERE status <> 'test'\n");
  EXPECT_EQ(FlattenJson(ToCanonicalJson(d.transformations[1])).at("schema[spend].type"), "float64");
  ASSERT_OK_AND_ASSIGN(auto kind, ParseObjectKind("transformations"));
  EXPECT_EQ(kind, ObjectKind::kTransformation);
  EXPECT_STREQ(ObjectKindName(kind), "transformation");
}

TEST(TransformationObjects, PlannedAppliedVersionedAndKeptInHistory) {
  TempDir dir;
  auto reg = *Registry::Open(dir.Join("r.db"));
  ASSERT_OK_AND_ASSIGN(auto plan,
                       reg->PlanChanges(Parse(kPipelines), CompatibilityPolicy::kBackward));
  EXPECT_EQ(plan.ToString(),
            "Registry version 0 -> 1: 2 to add, 0 to change, 0 to remove\n"
            "+ transformation silver_orders  pipelines.yaml:2:5\n"
            "+ transformation gold_totals  pipelines.yaml:12:5\n");
  ASSERT_OK_AND_ASSIGN(
      auto r1, reg->Apply(Parse(kPipelines), CompatibilityPolicy::kBackward, "ada", "pipelines"));
  EXPECT_EQ(r1.version, 1);

  // A changed query (shown line by line), mode and keys.
  std::string v2 = Replace(kPipelines, "      WHERE status <> 'test'\n",
                           "      WHERE status NOT IN ('test', 'void')\n");
  v2 = Replace(
      v2, "    mode: merge\n    keys: [order_id]\n    order_by: updated_at\n    on_change: keys\n",
      "    mode: append\n");
  ASSERT_OK_AND_ASSIGN(plan, reg->PlanChanges(Parse(v2), CompatibilityPolicy::kBackward));
  EXPECT_EQ(plan.ToString(),
            "Registry version 1 -> 2: 0 to add, 1 to change, 0 to remove\n"
            "~ transformation silver_orders  (v1 -> v2)  pipelines.yaml:2:5\n"
            "    - keys: [order_id]\n"
            "    ~ mode: merge -> append\n"
            "    ~ on_change: keys -> full_refresh\n"
            "    - order_by: updated_at\n"
            "    ~ sql:\n"
            "          SELECT order_id, customer_id, amount, updated_at\n"
            "          FROM bronze.orders\n"
            "        - WHERE status <> 'test'\n"
            "        + WHERE status NOT IN ('test', 'void')\n");
  ASSERT_OK_AND_ASSIGN(auto r2, reg->Apply(Parse(v2), CompatibilityPolicy::kBackward, "bob", ""));
  EXPECT_EQ(r2.version, 2);

  // Removing a declared output column is refused like a source's column.
  std::string narrower = Replace(v2, "      - {name: spend, type: float64}\n", "");
  ASSERT_OK_AND_ASSIGN(plan, reg->PlanChanges(Parse(narrower), CompatibilityPolicy::kBackward));
  ASSERT_EQ(plan.incompatibilities.size(), 1u);
  EXPECT_EQ(plan.incompatibilities[0].rfind(
                "transformation 'gold_totals' (pipelines.yaml:9:5): removing column 'spend' is "
                "not allowed under the 'backward' compatibility policy",
                0),
            0u)
      << plan.incompatibilities[0];
  EXPECT_TRUE(
      HasErrorKind(reg->Apply(Parse(narrower), CompatibilityPolicy::kBackward, "bob", "").status(),
                   ErrorKind::kIncompatibleChange));

  // Removed, then every version is still there.
  std::string v3 = v2.substr(0, v2.find("  - name: gold_totals"));
  ASSERT_OK_AND_ASSIGN(auto r3, reg->Apply(Parse(v3), CompatibilityPolicy::kBackward, "bob", ""));
  EXPECT_EQ(r3.version, 3);
  ASSERT_OK_AND_ASSIGN(auto s1, reg->Load(1));
  ASSERT_EQ(s1->defs.transformations.size(), 2u);
  EXPECT_EQ(s1->defs.FindTransformation("silver_orders")->mode, TransformMode::kMerge);
  EXPECT_EQ(s1->ObjectVersion(ObjectKind::kTransformation, "silver_orders"), 1);
  ASSERT_OK_AND_ASSIGN(auto s3, reg->Load());
  ASSERT_EQ(s3->defs.transformations.size(), 1u);
  EXPECT_EQ(s3->defs.transformations[0].mode, TransformMode::kAppend);
  EXPECT_EQ(s3->ObjectVersion(ObjectKind::kTransformation, "silver_orders"), 2);
  ASSERT_OK_AND_ASSIGN(auto h, reg->History(ObjectKind::kTransformation, "silver_orders"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].author, "ada");
  EXPECT_EQ(h[1].registry_version, 2);
  ASSERT_OK_AND_ASSIGN(auto gone, reg->History(ObjectKind::kTransformation, "gold_totals"));
  ASSERT_EQ(gone.size(), 2u);
  EXPECT_TRUE(gone[1].deleted);
}

// input_keys is part of a transformation's definition: in its canonical JSON
// (by table, whatever order the file lists them in; only when declared, so
// other transformations' JSON is what it was), shown by plan and versioned.
TEST(TransformationObjects, InputKeysArePlannedAndVersioned) {
  const std::string v1 = R"(transformations:
  - name: spend
    output: gold.spend
    mode: merge
    keys: [customer_id]
    on_change: keys
    input_keys:
      bronze.customers: [id]
    sql: SELECT * FROM bronze.orders o JOIN bronze.customers c ON o.customer_id = c.id
)";
  Definitions d = Parse(v1);
  const std::string json = ToCanonicalJson(d.transformations.at(0));
  EXPECT_NE(json.find(R"("input_keys":{"bronze/customers":["id"]})"), std::string::npos) << json;
  Definitions back;
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kTransformation, json, &back));
  EXPECT_EQ(ToCanonicalJson(back.transformations.at(0)), json);
  ASSERT_EQ(back.transformations[0].input_keys.size(), 1u);
  EXPECT_EQ(back.transformations[0].input_keys[0].table, "bronze/customers");
  EXPECT_EQ(back.transformations[0].input_keys[0].columns, std::vector<std::string>{"id"});
  EXPECT_EQ(FlattenJson(json).at("input_keys.bronze/customers"), "[id]");
  EXPECT_EQ(ToCanonicalJson(Parse(kPipelines).transformations[0]).find("input_keys"),
            std::string::npos);

  TempDir dir;
  auto reg = *Registry::Open(dir.Join("r.db"));
  ASSERT_OK_AND_ASSIGN(auto r1, reg->Apply(d, CompatibilityPolicy::kBackward, "ada", ""));
  EXPECT_EQ(r1.version, 1);
  // Another column, and an input whose rows map to no key.
  const std::string v2 = Replace(v1, "      bronze.customers: [id]\n",
                                 "      bronze.rates: []\n      bronze.customers: [cid]\n");
  ASSERT_OK_AND_ASSIGN(auto plan, reg->PlanChanges(Parse(v2), CompatibilityPolicy::kBackward));
  EXPECT_EQ(plan.ToString(),
            "Registry version 1 -> 2: 0 to add, 1 to change, 0 to remove\n"
            "~ transformation spend  (v1 -> v2)  pipelines.yaml:2:5\n"
            "    ~ input_keys.bronze/customers: [id] -> [cid]\n"
            "    + input_keys.bronze/rates: []\n");
  ASSERT_OK_AND_ASSIGN(auto r2, reg->Apply(Parse(v2), CompatibilityPolicy::kBackward, "ada", ""));
  EXPECT_EQ(r2.version, 2);
  ASSERT_OK_AND_ASSIGN(auto s2, reg->Load());
  EXPECT_EQ(s2->ObjectVersion(ObjectKind::kTransformation, "spend"), 2);
  // The same entries in another order are no change.
  const std::string reordered =
      Replace(v2, "      bronze.rates: []\n      bronze.customers: [cid]\n",
              "      bronze.customers: [cid]\n      bronze.rates: []\n");
  ASSERT_OK_AND_ASSIGN(plan, reg->PlanChanges(Parse(reordered), CompatibilityPolicy::kBackward));
  EXPECT_TRUE(plan.changes.empty()) << plan.ToString();
  // Dropped: shown as removed, and versioned again.
  const std::string v3 =
      Replace(v2, "    input_keys:\n      bronze.rates: []\n      bronze.customers: [cid]\n", "");
  ASSERT_OK_AND_ASSIGN(plan, reg->PlanChanges(Parse(v3), CompatibilityPolicy::kBackward));
  EXPECT_EQ(plan.ToString(),
            "Registry version 2 -> 3: 0 to add, 1 to change, 0 to remove\n"
            "~ transformation spend  (v2 -> v3)  pipelines.yaml:2:5\n"
            "    - input_keys.bronze/customers: [cid]\n"
            "    - input_keys.bronze/rates: []\n");
}

}  // namespace
}  // namespace stratalake::registry
