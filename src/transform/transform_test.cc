// Tests of the transform layer: DuckDB over Arrow streams, SQL over repository
// tables at pinned versions, and transformations (modes, graph, no-op re-runs,
// errors naming the definition's file and line).
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

// Rows of `t` as text, one "a|b|c" line per row (for exact comparisons).
std::vector<std::string> Rows(const arrow::Table& t) {
  std::vector<std::string> out;
  for (int64_t r = 0; r < t.num_rows(); ++r) {
    std::string line;
    for (int c = 0; c < t.num_columns(); ++c) {
      auto s = t.column(c)->GetScalar(r).ValueOrDie();
      line += (c ? "|" : "") + (s->is_valid ? s->ToString() : std::string("null"));
    }
    out.push_back(line);
  }
  return out;
}

std::shared_ptr<arrow::Schema> OrdersSchema() {
  return arrow::schema({arrow::field("order_id", arrow::int64()),
                        arrow::field("customer_id", arrow::int64()),
                        arrow::field("amount", arrow::float64()),
                        arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"))});
}

std::shared_ptr<arrow::Table> Orders(const std::string& ids, const std::string& customers,
                                     const std::string& amounts, const std::string& ts) {
  return TableFromJson(OrdersSchema(), {ids, customers, amounts, ts});
}

TEST(SqlEngine, QueriesArrowStreamsWithWindowsQualifyAndSelfJoins) {
  ASSERT_OK_AND_ASSIGN(auto engine, SqlEngine::Open());
  EXPECT_EQ(SqlEngine::LibraryVersion(), "v1.5.6");
  auto orders = Orders("[1, 2, 3, 4]", "[10, 10, 20, 20]", "[5.0, 7.0, 1.5, 2.5]",
                       R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00", "2026-01-01 00:00:00",
                           "2026-01-03 00:00:00"])");
  ASSERT_OK(
      engine->LoadTable("bronze", "orders", std::make_shared<arrow::TableBatchReader>(orders)));
  ASSERT_OK_AND_ASSIGN(auto t, engine->Query(R"(
      SELECT customer_id, amount, lag(amount) OVER (PARTITION BY customer_id ORDER BY ts) AS prev,
             sum(order_id) OVER (PARTITION BY customer_id) AS ids, ts
      FROM bronze.orders
      QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY ts DESC) = 1
      ORDER BY customer_id)"));
  EXPECT_EQ(Rows(*t), (std::vector<std::string>{"10|7|5|3|2026-01-02 00:00:00.000000Z",
                                                "20|2.5|1.5|7|2026-01-03 00:00:00.000000Z"}));
  // 128-bit sums come back as int64; timestamps keep microseconds in UTC.
  EXPECT_EQ(t->schema()->field(3)->type()->id(), arrow::Type::INT64);
  EXPECT_TRUE(
      t->schema()->field(4)->type()->Equals(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")));
  // A table may be read twice in one query (the stream was copied in once).
  ASSERT_OK_AND_ASSIGN(auto j, engine->Query("SELECT count(*) FROM bronze.orders a JOIN "
                                             "bronze.orders b ON a.customer_id = b.customer_id"));
  EXPECT_EQ(Rows(*j), (std::vector<std::string>{"8"}));
  // Errors are DuckDB's, as Invalid; an empty result keeps its schema.
  auto bad = engine->Query("SELECT nope FROM bronze.orders");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("nope"), std::string::npos) << bad.status().ToString();
  ASSERT_OK_AND_ASSIGN(auto empty, engine->Query("SELECT order_id FROM bronze.orders WHERE false"));
  EXPECT_EQ(empty->num_rows(), 0);
  EXPECT_EQ(empty->schema()->ToString(), "order_id: int64");
  // Several statements run in order; the last one gives the result.
  ASSERT_OK_AND_ASSIGN(
      auto last, engine->Query("CREATE TABLE t AS SELECT 41 AS x; SELECT x + 1 AS y FROM t;"));
  EXPECT_EQ(Rows(*last), (std::vector<std::string>{"42"}));
  for (const char* nothing : {"", "  -- only a comment\n", ";"}) {
    auto none = engine->Query(nothing);
    ASSERT_FALSE(none.ok()) << nothing;
    EXPECT_EQ(none.status().message(), "the query holds no SQL statement") << nothing;
  }
  EXPECT_FALSE(
      engine->LoadTable("bronze", "orders", std::make_shared<arrow::TableBatchReader>(orders))
          .ok());
}

TEST(ReferencedTables, FindsLayerQualifiedNamesOutsideLiteralsAndComments) {
  EXPECT_EQ(ReferencedTables(R"(
      WITH x AS (SELECT * FROM Bronze.Orders o JOIN "silver"."Clicks" c USING (id))
      SELECT 'gold.fake', x.id /* datasets.hidden */ -- quarantine.nope
      FROM x, silver.clicks, main.bronze.skipped, gold.f(1), other.t
      WHERE bronze.orders.amount > 0)"),
            (std::vector<std::string>{"bronze/orders", "silver/Clicks", "silver/clicks"}));
  EXPECT_TRUE(ReferencedTables("SELECT 1").empty());
}

TEST(ProjectedColumns, ReadsOnlyTheColumnsTheQueryCanName) {
  auto schema = arrow::schema(
      {arrow::field("order_id", arrow::int64()), arrow::field("Customer_ID", arrow::int64()),
       arrow::field("amount", arrow::float64()), arrow::field("note", arrow::utf8())});
  using V = std::vector<std::string>;
  EXPECT_EQ(ProjectedColumns("SELECT customer_id, sum(amount * 2) FROM bronze.orders "
                             "WHERE 'note' <> '' -- note\n GROUP BY ALL",
                             *schema),
            (V{"Customer_ID", "amount"}));
  EXPECT_EQ(ProjectedColumns("SELECT count(*) FROM bronze.orders", *schema), (V{"order_id"}));
  EXPECT_EQ(ProjectedColumns("SELECT o.* FROM bronze.orders o", *schema).size(), 4u);
  EXPECT_EQ(ProjectedColumns("SELECT * EXCLUDE (note) FROM bronze.orders", *schema).size(), 4u);
  EXPECT_EQ(ProjectedColumns("SELECT order_id, * FROM bronze.orders", *schema).size(), 4u);
  EXPECT_EQ(ProjectedColumns("SELECT COLUMNS('a.*') FROM bronze.orders", *schema).size(), 4u);
}

// A repository in a temporary folder with its lake under lake/.
class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.Join("stratalake.yaml"))
        << "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n";
    std::filesystem::create_directories(dir_.Join("definitions"));
    ASSERT_OK_AND_ASSIGN(repo_, repo::FeatureRepository::Open(dir_.path()));
  }

  void Define(const std::string& yaml) {
    std::ofstream(dir_.Join("definitions/pipelines.yaml")) << yaml;
  }

  registry::Definitions Defs() {
    auto d = repo_->LoadDefinitions();
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : registry::Definitions{};
  }

  int64_t Write(const std::string& path, const std::shared_ptr<arrow::Table>& rows,
                delta::WriteMode mode = delta::WriteMode::kAppend) {
    auto t = delta::DeltaTable::ForPath(repo_->TableUri(path)).ValueOrDie();
    delta::WriteOptions wo;
    wo.mode = mode;
    auto r = t->Write(rows, wo);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->version : -1;
  }

  std::vector<std::string> Select(const std::string& sql) {
    auto r = RunSql(*repo_, sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Rows(*r->table) : std::vector<std::string>{};
  }

  int64_t Version(const std::string& path) {
    return delta::DeltaTable::Open(repo_->TableUri(path))
        .ValueOrDie()
        ->Latest()
        .ValueOrDie()
        ->version();
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
};

TEST_F(PipelineTest, SqlReadsOnlyTheNamedTablesAtPinnedVersions) {
  Write("bronze/orders", Orders("[1]", "[10]", "[5.0]", R"(["2026-01-01 00:00:00"])"));
  Write("bronze/orders", Orders("[2]", "[10]", "[7.0]", R"(["2026-01-02 00:00:00"])"));
  // A broken table the query does not name is never read.
  std::filesystem::create_directories(dir_.Join("lake/bronze/broken/_delta_log"));
  std::ofstream(dir_.Join("lake/bronze/broken/_delta_log/00000000000000000000.json")) << "{oops\n";
  ASSERT_OK_AND_ASSIGN(auto r, RunSql(*repo_, "SELECT sum(amount) FROM bronze.orders"));
  EXPECT_EQ(Rows(*r.table), (std::vector<std::string>{"12"}));
  EXPECT_EQ(r.inputs, (std::map<std::string, int64_t>{{"bronze/orders", 1}}));
  ASSERT_OK_AND_ASSIGN(
      auto old, RunSql(*repo_, "SELECT sum(amount) FROM bronze.orders", {{"bronze/orders", 0}}));
  EXPECT_EQ(Rows(*old.table), (std::vector<std::string>{"5"}));
  std::filesystem::remove_all(dir_.Join("lake/bronze/broken"));
  auto missing = RunSql(*repo_, "SELECT * FROM silver.nothing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("(tables of this repository: "
                                            "bronze.orders; name them LAYER.TABLE"),
            std::string::npos)
      << missing.status().message();
}

constexpr const char* kPipeline = R"(transformations:
  - name: gold_spend
    output: gold.customer_spend
    sql: |
      SELECT customer_id, sum(amount) AS spend, count(*) AS orders,
             rank() OVER (ORDER BY sum(amount) DESC) AS spend_rank
      FROM silver.orders GROUP BY customer_id ORDER BY customer_id
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: ts
    sql: SELECT * FROM bronze.orders
)";

TEST_F(PipelineTest, RunAllInDependencyOrderThenNoOpThenIncremental) {
  Define(kPipeline);
  Write("bronze/orders", Orders("[1, 2, 2, 3]", "[10, 10, 10, 20]", "[5.0, 7.0, 8.0, 1.5]",
                                R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00",
                                    "2026-01-03 00:00:00", "2026-01-01 00:00:00"])"));
  auto defs = Defs();
  ASSERT_OK_AND_ASSIGN(auto plan, PlanRuns(*repo_, defs));
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].name, "silver_orders");  // gold reads what silver writes
  EXPECT_EQ(plan[0].reason, "never run");
  EXPECT_EQ(plan[1].name, "gold_spend");
  EXPECT_EQ(plan[1].upstream, (std::vector<std::string>{"silver_orders"}));

  ASSERT_OK_AND_ASSIGN(auto runs, RunPipeline(*repo_, defs));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].detail, "created");
  EXPECT_EQ(runs[0].inputs, (std::map<std::string, int64_t>{{"bronze/orders", 0}}));
  EXPECT_EQ(runs[1].inputs, (std::map<std::string, int64_t>{{"silver/orders", 0}}));
  // Merge mode keeps the latest row per key by ts (order 2 at 8.0).
  EXPECT_EQ(Select("SELECT order_id, amount FROM silver.orders ORDER BY 1"),
            (std::vector<std::string>{"1|5", "2|8", "3|1.5"}));
  EXPECT_EQ(Select("SELECT * FROM gold.customer_spend"),
            (std::vector<std::string>{"10|13|2|1", "20|1.5|1|2"}));

  // Nothing changed: both runs are no-ops and the tables keep their versions.
  ASSERT_OK_AND_ASSIGN(plan, PlanRuns(*repo_, defs));
  EXPECT_FALSE(plan[0].stale);
  EXPECT_EQ(plan[1].reason, "up to date");
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_TRUE(runs[0].noop);
  EXPECT_TRUE(runs[1].noop);
  EXPECT_EQ(Version("silver/orders"), 0);
  EXPECT_EQ(Version("gold/customer_spend"), 0);

  // New bronze rows: an update of order 1 (later ts), a stale copy of order 3
  // (earlier ts: ignored) and a new order.
  Write("bronze/orders", Orders("[1, 3, 4]", "[10, 20, 20]", "[6.0, 99.0, 4.0]",
                                R"(["2026-01-05 00:00:00", "2025-12-31 00:00:00",
                                    "2026-01-05 00:00:00"])"));
  ASSERT_OK_AND_ASSIGN(plan, PlanRuns(*repo_, defs));
  EXPECT_EQ(plan[0].reason, "bronze/orders changed: version 0 -> 1");
  EXPECT_EQ(plan[1].reason, "upstream silver_orders runs first");
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[0].version, 1);
  EXPECT_EQ(runs[0].detail, "merged: 1 inserted, 1 updated");
  EXPECT_EQ(Select("SELECT order_id, amount FROM silver.orders ORDER BY 1"),
            (std::vector<std::string>{"1|6", "2|8", "3|1.5", "4|4"}));
  EXPECT_EQ(Select("SELECT * FROM gold.customer_spend"),
            (std::vector<std::string>{"10|14|2|1", "20|5.5|2|2"}));
  // The commit records what it read.
  auto gold = delta::DeltaTable::Open(repo_->TableUri("gold/customer_spend")).ValueOrDie();
  auto history = gold->History(1).ValueOrDie();
  ASSERT_TRUE(history[0].user_metadata.has_value());
  EXPECT_NE(history[0].user_metadata->find(R"("transformation":"gold_spend","query":)"),
            std::string::npos);
  EXPECT_NE(history[0].user_metadata->find(R"("inputs":{"silver/orders":1}})"), std::string::npos)
      << *history[0].user_metadata;
  EXPECT_EQ(gold->Latest().ValueOrDie()->AppTransactionVersion("stratalake.pipeline/gold_spend"),
            2);
}

TEST_F(PipelineTest, AppendModeReadsOnlyNewRowsAndRefusesRewrittenInputs) {
  Define(R"(transformations:
  - name: big_orders
    output: silver.big_orders
    mode: append
    on_change: fail
    sql: SELECT order_id, amount * 2 AS doubled FROM bronze.orders WHERE amount > 2
)");
  Write("bronze/orders", Orders("[1, 2]", "[10, 10]", "[5.0, 1.0]",
                                R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00"])"));
  auto defs = Defs();
  ASSERT_OK_AND_ASSIGN(auto r, RunTransformation(*repo_, defs, "big_orders"));
  EXPECT_EQ(r.rows, 1);
  Write("bronze/orders", Orders("[3]", "[20]", "[3.0]", R"(["2026-01-03 00:00:00"])"));
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "big_orders"));
  EXPECT_EQ(r.rows, 1);  // only order 3 was read
  EXPECT_EQ(r.detail, "appended");
  EXPECT_EQ(Select("SELECT * FROM silver.big_orders ORDER BY 1"),
            (std::vector<std::string>{"1|10", "3|6"}));
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "big_orders"));
  EXPECT_TRUE(r.noop);

  // Rows rewritten in the input: append cannot read "only the new rows".
  Write("bronze/orders", Orders("[5]", "[20]", "[9.0]", R"(["2026-01-04 00:00:00"])"),
        delta::WriteMode::kOverwrite);
  auto refused = RunTransformation(*repo_, defs, "big_orders");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "definitions/pipelines.yaml:2:5: transformation 'big_orders': append mode reads only "
            "the rows bronze/orders gained since its last run (version 1), but rows were "
            "updated, deleted or rewritten up to version 2; run it with --full-refresh to "
            "recompute the table (or declare on_change: full_refresh, keys or partitions)");
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "big_orders", {.full_refresh = true}));
  EXPECT_EQ(r.detail, "replaced");
  EXPECT_EQ(Select("SELECT * FROM silver.big_orders ORDER BY 1"),
            (std::vector<std::string>{"5|18"}));
}

// Rows of the input updated or deleted: each on_change gives the table a full
// refresh gives, recomputing only what it says (the Python suite checks this on
// random histories: tests/python/test_pipelines_incremental.py).
TEST_F(PipelineTest, OnChangeRecomputesTheTableTheKeysOrThePartitions) {
  Define(R"(transformations:
  - name: whole
    output: silver.whole
    mode: append
    sql: SELECT order_id, amount FROM bronze.orders WHERE amount > 2
  - name: by_key
    output: silver.by_key
    mode: merge
    keys: [customer_id]
    order_by: ts
    on_change: keys
    sql: SELECT customer_id, order_id, amount, ts FROM bronze.orders
)");
  Write("bronze/orders", Orders("[1, 2, 3]", "[10, 10, 20]", "[5.0, 6.0, 7.0]",
                                R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00",
                                    "2026-01-03 00:00:00"])"));
  Write("bronze/orders", Orders("[4]", "[30]", "[8.0]", R"(["2026-01-04 00:00:00"])"));
  auto defs = Defs();
  ASSERT_OK(RunPipeline(*repo_, defs).status());
  // Customer 10's latest order goes: the key is recomputed from what is left.
  auto bronze = delta::DeltaTable::Open(repo_->TableUri("bronze/orders")).ValueOrDie();
  ASSERT_OK(bronze->Delete("order_id = 2").status());
  ASSERT_OK_AND_ASSIGN(auto runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[0].detail,
            "replaced (rows of bronze/orders were updated or deleted since version 1)");
  EXPECT_EQ(runs[1].detail, "recomputed 1 key(s)");  // customer 10 (not 20, in the same file)
  EXPECT_EQ(runs[1].rows, 1);
  EXPECT_EQ(Select("SELECT * FROM silver.whole ORDER BY 1"),
            (std::vector<std::string>{"1|5", "3|7", "4|8"}));
  EXPECT_EQ(Select("SELECT customer_id, order_id FROM silver.by_key ORDER BY 1"),
            (std::vector<std::string>{"10|1", "20|3", "30|4"}));
  ASSERT_OK(bronze->Delete("customer_id = 20").status());
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[1].detail, "recomputed 1 key(s)");
  EXPECT_EQ(runs[1].rows, 0);
  EXPECT_EQ(Select("SELECT customer_id, order_id FROM silver.by_key ORDER BY 1"),
            (std::vector<std::string>{"10|1", "30|4"}));
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_TRUE(runs[0].noop && runs[1].noop);
  // The lineage: each version of silver.by_key, the bronze version it read and how.
  ASSERT_OK_AND_ASSIGN(auto lineage, Lineage(*repo_, "silver.by_key"));
  ASSERT_EQ(lineage.size(), 3u);
  EXPECT_EQ(lineage[0].version, 2);
  EXPECT_EQ(lineage[0].transformation, "by_key");
  EXPECT_EQ(lineage[0].inputs, (std::map<std::string, int64_t>{{"bronze/orders", 3}}));
  EXPECT_EQ(lineage[0].read, "keys");
  EXPECT_EQ(lineage[0].since, (std::map<std::string, int64_t>{{"bronze/orders", 2}}));
  EXPECT_EQ(lineage[2].read, "all");
  EXPECT_TRUE(lineage[2].since.empty());
}

// A query over several tables with on_change keys: the keys the changed rows of
// any input had or have are recomputed from every input filtered to them; an
// input whose rows map to no key makes a change of it recompute everything, and
// says so in the plan and the run's detail.
TEST_F(PipelineTest, SeveralInputsRecomputeTheKeysTheirChangesTouch) {
  Define(R"(transformations:
  - name: spend
    output: gold.spend
    mode: merge
    keys: [customer_id]
    on_change: keys
    input_keys:
      bronze.customers: [id]
    sql: |
      SELECT o.customer_id, c.region, sum(o.amount) AS spend, count(*) AS n
      FROM bronze.orders o JOIN bronze.customers c ON o.customer_id = c.id GROUP BY ALL
  - name: scaled
    output: silver.scaled
    mode: merge
    keys: [order_id]
    on_change: keys
    sql: SELECT o.order_id, o.amount * r.rate AS amt FROM bronze.orders o, bronze.rates r
)");
  auto customers = [](const std::string& ids, const std::string& regions) {
    return TableFromJson(
        arrow::schema({arrow::field("id", arrow::int64()), arrow::field("region", arrow::utf8())}),
        {ids, regions});
  };
  auto rates = [](const std::string& r) {
    return TableFromJson(arrow::schema({arrow::field("rate", arrow::float64())}), {r});
  };
  Write("bronze/orders", Orders("[1, 2, 3]", "[10, 10, 20]", "[5.0, 6.0, 7.0]",
                                R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00",
                                    "2026-01-03 00:00:00"])"));
  Write("bronze/customers", customers("[10, 20, 30]", R"(["eu", "us", "us"])"));
  Write("bronze/rates", rates("[2.0]"));
  auto defs = Defs();
  ASSERT_OK_AND_ASSIGN(auto runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[0].detail, "created");
  const std::string spend_sql = "SELECT * FROM gold.spend ORDER BY ALL";
  const std::string scaled_sql = "SELECT * FROM silver.scaled ORDER BY ALL";
  // An order of customer 30 (who had none): only that key is recomputed, in both.
  Write("bronze/orders", Orders("[4]", "[30]", "[8.0]", R"(["2026-01-04 00:00:00"])"));
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[0].detail, "recomputed 1 key(s)");
  EXPECT_EQ(runs[0].rows, 1);
  EXPECT_EQ(runs[1].detail, "recomputed 1 key(s)");
  EXPECT_EQ(Select(spend_sql), (std::vector<std::string>{"10|eu|11|2", "20|us|7|1", "30|us|8|1"}));
  // Customer 10 moves region: its key, found in the customers' rewritten file.
  auto cust = delta::DeltaTable::Open(repo_->TableUri("bronze/customers")).ValueOrDie();
  ASSERT_OK(cust->Update("id = 10", "region = 'apac'").status());
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[0].detail, "recomputed 1 key(s)");
  EXPECT_TRUE(runs[1].noop);
  EXPECT_EQ(Select(spend_sql),
            (std::vector<std::string>{"10|apac|11|2", "20|us|7|1", "30|us|8|1"}));
  // Customer 20 goes: its key disappears from the output.
  ASSERT_OK(cust->Delete("id = 20").status());
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[0].detail, "recomputed 1 key(s)");
  EXPECT_EQ(runs[0].rows, 0);
  EXPECT_EQ(Select(spend_sql), (std::vector<std::string>{"10|apac|11|2", "30|us|8|1"}));
  ASSERT_OK_AND_ASSIGN(auto lineage, Lineage(*repo_, "gold.spend"));
  EXPECT_EQ(lineage[0].read, "keys");
  EXPECT_EQ(lineage[0].since, (std::map<std::string, int64_t>{{"bronze/customers", 1}}));
  // The rates map to no order: a change of them recomputes the whole table, and the
  // plan and the run say why.
  Write("bronze/rates", rates("[3.0]"), delta::WriteMode::kOverwrite);
  ASSERT_OK_AND_ASSIGN(auto plan, PlanRuns(*repo_, defs, {"scaled"}));
  EXPECT_EQ(plan[0].reason,
            "bronze/rates changed: version 0 -> 1; recomputes the whole table: bronze/rates "
            "changed and it has no column 'order_id' to map its rows to the keys (declare its "
            "columns in input_keys)");
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_EQ(runs[1].detail,
            "replaced (bronze/rates changed and it has no column 'order_id' to map its rows to "
            "the keys (declare its columns in input_keys))");
  EXPECT_EQ(Select(scaled_sql), (std::vector<std::string>{"1|15", "2|18", "3|21", "4|24"}));
  ASSERT_OK_AND_ASSIGN(runs, RunPipeline(*repo_, defs));
  EXPECT_TRUE(runs[0].noop && runs[1].noop);
  // Each table equals a full refresh of its definition.
  ASSERT_OK_AND_ASSIGN(auto full, RunPipeline(*repo_, defs, {}, RunOptions{true}));
  EXPECT_EQ(Select(spend_sql), (std::vector<std::string>{"10|apac|11|2", "30|us|8|1"}));
  EXPECT_EQ(Select(scaled_sql), (std::vector<std::string>{"1|15", "2|18", "3|21", "4|24"}));
}

TEST_F(PipelineTest, InputKeysErrorsNameTheirLine) {
  Define(R"(transformations:
  - name: a
    output: gold.a
    mode: merge
    keys: [customer_id, day]
    on_change: keys
    input_keys:
      bronze.customers: [id]
    sql: SELECT 1
  - name: b
    output: gold.b
    mode: append
    input_keys: {bronze.customers: [id]}
    sql: SELECT 1
)");
  auto bad = repo_->LoadDefinitions();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "2 problems in the feature definitions\n"
            "  definitions/pipelines.yaml:8:25: transformation 'a': input_keys "
            "'bronze.customers' lists 1 column(s) but the keys are customer_id, day; name one "
            "column of the input for each, in order (or [] when its rows map to none)\n"
            "  definitions/pipelines.yaml:13:17: transformation 'b': 'input_keys' applies to "
            "on_change 'keys' or 'partitions' (it says which columns of each input hold the "
            "keys or partition values to recompute)");
  Write("bronze/orders", Orders("[1]", "[10]", "[5.0]", R"(["2026-01-01 00:00:00"])"));
  Write("bronze/customers",
        TableFromJson(arrow::schema({arrow::field("id", arrow::int64())}), {"[10]"}));
  Define(R"(transformations:
  - name: a
    output: gold.a
    mode: merge
    keys: [customer_id]
    on_change: keys
    input_keys:
      bronze.clients: [id]
    sql: SELECT o.* FROM bronze.orders o JOIN bronze.customers c ON o.customer_id = c.id
)");
  auto unread = RunTransformation(*repo_, Defs(), "a");
  ASSERT_FALSE(unread.ok());
  EXPECT_EQ(unread.status().message(),
            "definitions/pipelines.yaml:8:7: transformation 'a': input_keys names "
            "bronze/clients, which it does not read (it reads: bronze/customers, bronze/orders)");
  Define(R"(transformations:
  - name: a
    output: gold.a
    mode: merge
    keys: [customer_id]
    on_change: keys
    input_keys:
      bronze.customers: [cid]
    sql: SELECT o.* FROM bronze.orders o JOIN bronze.customers c ON o.customer_id = c.id
)");
  ASSERT_OK(RunTransformation(*repo_, Defs(), "a").status());  // a first run reads all
  Write("bronze/customers",
        TableFromJson(arrow::schema({arrow::field("id", arrow::int64())}), {"[11]"}));
  auto lacks = RunTransformation(*repo_, Defs(), "a");
  ASSERT_FALSE(lacks.ok());
  EXPECT_EQ(lacks.status().message(),
            "definitions/pipelines.yaml:8:7: transformation 'a': input_keys names column 'cid' "
            "of bronze/customers, which lacks it (columns: id)");
}

TEST_F(PipelineTest, ErrorsNameTheDefinitionFileAndLine) {
  Define(R"(transformations:
  - name: broken
    output: silver.broken
    sql: SELECT no_such_column FROM bronze.orders
  - name: typed
    output: silver.typed
    schema:
      - {name: order_id, type: int64}
      - {name: amount, type: int64}
    sql: SELECT order_id, 'x' || amount AS amount FROM bronze.orders
  - name: undeclared
    output: silver.undeclared
    schema: [{name: order_id, type: int64}]
    sql: SELECT order_id, amount FROM bronze.orders
)");
  Write("bronze/orders", Orders("[1]", "[10]", "[5.0]", R"(["2026-01-01 00:00:00"])"));
  auto defs = Defs();
  auto broken = RunTransformation(*repo_, defs, "broken");
  ASSERT_FALSE(broken.ok());
  EXPECT_TRUE(HasErrorKind(broken.status(), ErrorKind::kDefinitionError));
  EXPECT_EQ(broken.status().message().rfind(
                "definitions/pipelines.yaml:4:10: transformation 'broken': the query failed: "
                "Binder Error: Referenced column \"no_such_column\" not found",
                0),
            0u)
      << broken.status().message();
  auto typed = RunTransformation(*repo_, defs, "typed");
  ASSERT_FALSE(typed.ok());
  EXPECT_EQ(typed.status().message().rfind(
                "definitions/pipelines.yaml:9:9: transformation 'typed': column 'amount' is "
                "string in the query's result but declared int64",
                0),
            0u)
      << typed.status().message();
  auto undeclared = RunTransformation(*repo_, defs, "undeclared");
  ASSERT_FALSE(undeclared.ok());
  EXPECT_EQ(undeclared.status().message(),
            "definitions/pipelines.yaml:11:5: transformation 'undeclared': the query returns "
            "column 'amount', which the declared schema lacks (declared: order_id); declare it "
            "or leave it out of the SELECT");
  // Nothing was written by the failed runs.
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("lake/silver")));
  auto unknown = RunTransformation(*repo_, defs, "nope");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "no transformation named 'nope' (defined: broken, typed, undeclared)");
}

TEST_F(PipelineTest, CyclesDuplicateOutputsAndBadKeysAreDefinitionErrors) {
  Define(R"(transformations:
  - name: a
    output: silver.a
    sql: SELECT * FROM silver.b
  - name: b
    output: silver.b
    sql: SELECT * FROM silver.a
)");
  auto cycle = PlanRuns(*repo_, Defs());
  ASSERT_FALSE(cycle.ok());
  EXPECT_EQ(cycle.status().message(),
            "transformations read each other's tables in a cycle: a "
            "(definitions/pipelines.yaml:2:5), b (definitions/pipelines.yaml:5:5); a "
            "transformation may only read tables its upstream writes");
  Define(R"(transformations:
  - name: a
    output: silver.x
    sql: SELECT 1
  - name: b
    output: silver/x
    sql: SELECT 2
)");
  auto dup = PlanRuns(*repo_, Defs());
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message(),
            "definitions/pipelines.yaml:5:5: transformation 'b' writes silver/x, which "
            "transformation 'a' (definitions/pipelines.yaml:2:5) writes too; give each table "
            "one transformation");
  Define(R"(transformations:
  - name: m
    output: silver.m
    mode: merge
    sql: SELECT 1
  - name: n
    output: silver.n
    mode: upsert
    sql: SELECT 1
  - name: o
    output: orders
    sql: SELECT 1
)");
  auto bad = repo_->LoadDefinitions();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "3 problems in the feature definitions\n"
            "  definitions/pipelines.yaml:2:5: transformation 'm': mode 'merge' needs 'keys' "
            "(the columns that identify a row)\n"
            "  definitions/pipelines.yaml:8:11: transformation 'n': unknown mode 'upsert' (use "
            "full_refresh, append or merge)\n"
            "  definitions/pipelines.yaml:11:13: transformation 'o': output 'orders' must be "
            "LAYER.TABLE with LAYER one of bronze, silver, gold, datasets, quarantine (e.g. "
            "silver.orders)");
}

TEST_F(PipelineTest, FullRefreshReplacesAndAChangedQueryReruns) {
  Define(R"(transformations:
  - name: daily
    output: gold.daily
    sql: SELECT count(*) AS n FROM bronze.orders
)");
  Write("bronze/orders", Orders("[1, 2]", "[10, 10]", "[5.0, 1.0]",
                                R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00"])"));
  ASSERT_OK_AND_ASSIGN(auto r, RunTransformation(*repo_, Defs(), "daily"));
  EXPECT_EQ(Select("SELECT * FROM gold.daily"), (std::vector<std::string>{"2"}));
  Define(R"(transformations:
  - name: daily
    output: gold.daily
    sql: SELECT count(*) AS n, sum(amount) AS total FROM bronze.orders
)");
  auto defs = Defs();
  ASSERT_OK_AND_ASSIGN(auto plan, PlanRuns(*repo_, defs, {"daily"}));
  EXPECT_EQ(plan[0].reason, "query changed");
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "daily"));
  EXPECT_EQ(r.detail, "replaced");
  EXPECT_EQ(r.version, 1);
  EXPECT_EQ(Select("SELECT * FROM gold.daily"), (std::vector<std::string>{"2|6"}));
}

// input_keys is part of the query fingerprint: changing it makes the next run a
// full recompute, as any definition change does. A run record written before it
// counted (without query_version) stays valid while the definition is unchanged.
TEST_F(PipelineTest, ChangedInputKeysRecomputeEverythingAndOlderRecordsStayValid) {
  const std::string sql = R"(    sql: |
      SELECT o.customer_id, c.region, sum(o.amount) AS spend
      FROM bronze.orders o JOIN bronze.customers c ON o.customer_id = c.id GROUP BY ALL
)";
  auto spend_with = [&](const std::string& input_keys) {
    return R"(transformations:
  - name: spend
    output: gold.spend
    mode: merge
    keys: [customer_id]
    on_change: keys
    input_keys:
)" + input_keys +
           sql;
  };
  const std::string spend = spend_with("      bronze.customers: [id]\n");
  // Its twin without input_keys (on_change is not fingerprinted): its record holds
  // the fingerprint that versions before input_keys counted wrote for `spend`.
  const std::string twin = R"(  - name: twin
    output: gold.twin
    mode: merge
    keys: [customer_id]
)" + sql;
  Define(spend + twin);
  Write("bronze/orders", Orders("[1, 2, 3]", "[10, 10, 20]", "[5.0, 6.0, 7.0]",
                                R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00",
                                    "2026-01-03 00:00:00"])"));
  Write("bronze/customers", TableFromJson(arrow::schema({arrow::field("id", arrow::int64()),
                                                         arrow::field("region", arrow::utf8())}),
                                          {"[10, 20]", R"(["eu", "us"])"}));
  ASSERT_OK_AND_ASSIGN(auto runs, RunPipeline(*repo_, Defs()));
  EXPECT_EQ(runs[0].detail, "created");
  ASSERT_OK_AND_ASSIGN(auto lineage, Lineage(*repo_, "gold.spend"));
  ASSERT_OK_AND_ASSIGN(auto twin_lineage, Lineage(*repo_, "gold.twin"));
  EXPECT_NE(lineage[0].query, twin_lineage[0].query);

  // gold.spend as an older version left it: the record has no query_version and
  // its fingerprint leaves input_keys out. Up to date all the same.
  auto table = delta::DeltaTable::Open(repo_->TableUri("gold/spend")).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto contents, RunSql(*repo_, "SELECT * FROM gold.spend"));
  delta::WriteOptions wo;
  wo.mode = delta::WriteMode::kOverwrite;
  wo.user_metadata = R"({"stratalake_pipeline": {"transformation": "spend", "query": ")" +
                     twin_lineage[0].query +
                     R"(", "read": "all", "inputs": {"bronze/customers": 0, "bronze/orders": 0}}})";
  ASSERT_OK(table->Write(contents.table, wo).status());
  Define(spend);
  ASSERT_OK_AND_ASSIGN(auto plan, PlanRuns(*repo_, Defs(), {"spend"}));
  EXPECT_EQ(plan[0].cause, "up_to_date");
  ASSERT_OK_AND_ASSIGN(auto r, RunTransformation(*repo_, Defs(), "spend"));
  EXPECT_TRUE(r.noop);
  // The next run records the fingerprint with input_keys (an older record cannot
  // say which input_keys it ran with: a change before this run goes unseen).
  Write("bronze/orders", Orders("[4]", "[20]", "[1.0]", R"(["2026-01-04 00:00:00"])"));
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, Defs(), "spend"));
  EXPECT_EQ(r.detail, "recomputed 1 key(s)");
  ASSERT_OK_AND_ASSIGN(lineage, Lineage(*repo_, "gold.spend"));
  EXPECT_EQ(lineage[0].query, lineage[2].query);  // versions 0 and 2, both from this version

  // Another input_keys: the next run recomputes the whole table, then none.
  Define(spend_with("      bronze.customers: [id]\n      bronze.orders: [customer_id]\n"));
  auto defs = Defs();
  ASSERT_OK_AND_ASSIGN(plan, PlanRuns(*repo_, defs, {"spend"}));
  EXPECT_EQ(plan[0].cause, "definition_changed");
  EXPECT_EQ(plan[0].reason, "query changed");
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "spend"));
  EXPECT_EQ(r.detail, "replaced");
  ASSERT_OK_AND_ASSIGN(lineage, Lineage(*repo_, "gold.spend"));
  EXPECT_EQ(lineage[0].read, "all");
  EXPECT_NE(lineage[0].query, lineage[1].query);
  EXPECT_EQ(Select("SELECT * FROM gold.spend ORDER BY ALL"),
            (std::vector<std::string>{"10|eu|11", "20|us|8"}));
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "spend"));
  EXPECT_TRUE(r.noop);
  // Entries in another order are the same input_keys.
  Define(spend_with("      bronze.orders: [customer_id]\n      bronze.customers: [id]\n"));
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, Defs(), "spend"));
  EXPECT_TRUE(r.noop);
  // And incremental runs go on from there.
  Write("bronze/orders", Orders("[5]", "[10]", "[2.0]", R"(["2026-01-05 00:00:00"])"));
  ASSERT_OK_AND_ASSIGN(r, RunTransformation(*repo_, defs, "spend"));
  EXPECT_EQ(r.detail, "recomputed 1 key(s)");
  EXPECT_EQ(Select("SELECT * FROM gold.spend ORDER BY ALL"),
            (std::vector<std::string>{"10|eu|13", "20|us|8"}));
}

}  // namespace
}  // namespace stratalake::transform
