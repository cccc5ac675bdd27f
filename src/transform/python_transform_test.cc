// Python transformations of the definition files in the transform layer: they
// run in dependency order with SQL ones through RunOptions::python (here a C++
// stand-in for the function, so no Python is needed), are no-ops when nothing
// changed, rerun in full when the function's source changes, and fail at the
// definition's file:line with nothing written; RunPythonWorker says what to do
// when no interpreter can run the function.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
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

const char* kPipelines = R"(transformations:
  - name: silver_big
    python: transformations/orders.py:silver_big
    inputs: [bronze.orders]
    output: silver.big
  - name: gold_count
    output: gold.count
    sql: SELECT count(*) AS n, sum(amount) AS total FROM silver.big
)";

class PythonTransformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.Join("stratalake.yaml"))
        << "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n";
    std::filesystem::create_directories(dir_.Join("definitions"));
    std::filesystem::create_directories(dir_.Join("transformations"));
    std::ofstream(dir_.Join("definitions/pipelines.yaml")) << kPipelines;
    WriteFunction(">= 5");
    ASSERT_OK_AND_ASSIGN(repo_, repo::FeatureRepository::Open(dir_.path()));
    auto schema = arrow::schema(
        {arrow::field("order_id", arrow::int64()), arrow::field("amount", arrow::float64())});
    auto t = delta::DeltaTable::ForPath(repo_->TableUri("bronze/orders")).ValueOrDie();
    ASSERT_OK(t->Write(TableFromJson(schema, {"[1, 2, 3]", "[2.0, 5.0, 9.0]"}), {}).status());
  }

  void WriteFunction(const std::string& condition) {
    std::ofstream(dir_.Join("transformations/orders.py"))
        << "def silver_big(orders):\n    return orders[orders['amount'] " << condition << "]\n";
  }

  // A stand-in for the Python function: keeps the rows with amount >= 5 and
  // records what it was handed.
  RunOptions Options() {
    RunOptions o;
    o.python = [this](const repo::FeatureRepository&, const registry::Transformation& t,
                      const std::vector<std::shared_ptr<arrow::Table>>& inputs)
        -> arrow::Result<std::shared_ptr<arrow::Table>> {
      calls_.push_back(t.python_file + ":" + t.python_function + " " + t.kind + " " +
                       std::to_string(inputs.size()) + " input(s)");
      if (fail_) return arrow::Status::Invalid("ValueError: no");
      ARROW_ASSIGN_OR_RAISE(auto mask, arrow::compute::CallFunction(
                                           "greater_equal", {inputs[0]->GetColumnByName("amount"),
                                                             arrow::Datum(5.0)}));
      ARROW_ASSIGN_OR_RAISE(auto kept, arrow::compute::Filter(inputs[0], mask));
      return kept.table();
    };
    return o;
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
  std::vector<std::string> calls_;
  bool fail_ = false;
};

TEST_F(PythonTransformTest, RunsWithSqlInDependencyOrderAndRerunsWhenTheSourceChanges) {
  ASSERT_OK_AND_ASSIGN(auto defs, repo_->LoadDefinitions());
  ASSERT_OK_AND_ASSIGN(auto results, RunPipeline(*repo_, defs, {}, Options()));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].name, "silver_big");
  EXPECT_EQ(results[0].rows, 2);
  EXPECT_EQ(results[1].name, "gold_count");
  EXPECT_EQ(calls_, std::vector<std::string>{"transformations/orders.py:silver_big pandas 1 "
                                             "input(s)"});
  ASSERT_OK_AND_ASSIGN(auto gold, RunSql(*repo_, "SELECT n, total FROM gold.count"));
  EXPECT_EQ(gold.table->column(0)->GetScalar(0).ValueOrDie()->ToString(), "2");
  EXPECT_EQ(gold.table->column(1)->GetScalar(0).ValueOrDie()->ToString(), "14");

  // Nothing changed: no-ops, the function is not called.
  ASSERT_OK_AND_ASSIGN(results, RunPipeline(*repo_, defs, {}, Options()));
  EXPECT_TRUE(results[0].noop && results[1].noop);
  EXPECT_EQ(calls_.size(), 1u);

  // An edited function is a changed definition: recomputed in full.
  WriteFunction(">= 6");
  ASSERT_OK_AND_ASSIGN(defs, repo_->LoadDefinitions());
  ASSERT_OK_AND_ASSIGN(auto plan, PlanRuns(*repo_, defs));
  EXPECT_EQ(plan[0].cause, "definition_changed");
  EXPECT_EQ(plan[1].cause, "upstream");
  ASSERT_OK_AND_ASSIGN(results, RunPipeline(*repo_, defs, {}, Options()));
  EXPECT_FALSE(results[0].noop);
  EXPECT_EQ(results[0].detail, "replaced");
  EXPECT_EQ(calls_.size(), 2u);
}

TEST_F(PythonTransformTest, AFailureNamesTheDefinitionAndWritesNothing) {
  ASSERT_OK_AND_ASSIGN(auto defs, repo_->LoadDefinitions());
  fail_ = true;
  auto r = RunTransformation(*repo_, defs, "silver_big", Options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "definitions/pipelines.yaml:3:13: transformation 'silver_big': the function "
            "transformations/orders.py:silver_big failed: ValueError: no");
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("silver/big")));
  ASSERT_OK_AND_ASSIGN(bool exists, table->Exists());
  EXPECT_FALSE(exists);
}

TEST_F(PythonTransformTest, TheWorkerSaysWhatToDoWithoutAnInterpreter) {
  ASSERT_OK_AND_ASSIGN(auto defs, repo_->LoadDefinitions());
  const char* before = std::getenv("STRATALAKE_PYTHON");
  const std::string saved = before ? before : "";
  ::setenv("STRATALAKE_PYTHON", dir_.Join("no-such-python").c_str(), 1);
  auto r = RunTransformation(*repo_, defs, "silver_big");
  if (before) {
    ::setenv("STRATALAKE_PYTHON", saved.c_str(), 1);
  } else {
    ::unsetenv("STRATALAKE_PYTHON");
  }
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot run the Python interpreter STRATALAKE_PYTHON=" +
                                      dir_.Join("no-such-python")),
            std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("or set STRATALAKE_PYTHON to a Python that can import it"),
            std::string::npos);
}

}  // namespace
}  // namespace stratalake::transform
