// Python transformations of the definition files (`python: FILE.py:FUNCTION`):
// parsing, the function's source found without Python, and the canonical form
// the registry versions.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "registry/loader.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {
namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

const char* kModule = R"(import pandas as pd

SCALE = 2


def helper(x):
    return x * SCALE


@decorated
def silver_orders(orders,
extra=None):
    """Docstring with a line at column 0:
not the end
"""
    orders = orders[orders["status"] != "test"]

    # a comment inside
    return orders
    # a trailing comment

def other(x):
    return x

async def later(x):
    return x
)";

TEST(PythonFunctionSource, FromDefToTheEndOfTheBody) {
  ASSERT_OK_AND_ASSIGN(auto src, PythonFunctionSource(kModule, "silver_orders"));
  EXPECT_EQ(src,
            "def silver_orders(orders,\nextra=None):\n    \"\"\"Docstring with a line at column "
            "0:\nnot the end\n\"\"\"\n    orders = orders[orders[\"status\"] != \"test\"]\n\n"
            "    # a comment inside\n    return orders\n");
  ASSERT_OK_AND_ASSIGN(auto other, PythonFunctionSource(kModule, "other"));
  EXPECT_EQ(other, "def other(x):\n    return x\n");
  ASSERT_OK_AND_ASSIGN(auto later, PythonFunctionSource(kModule, "later"));
  EXPECT_EQ(later, "async def later(x):\n    return x\n");
  // The last definition wins, as in Python.
  ASSERT_OK_AND_ASSIGN(
      auto twice, PythonFunctionSource("def f():\n    return 1\n\ndef f():\n    return 2\n", "f"));
  EXPECT_EQ(twice, "def f():\n    return 2\n");
}

TEST(PythonFunctionSource, OnlyTopLevelDefinitions) {
  for (const char* name : {"silver", "missing", "SCALE", "orders"}) {
    auto r = PythonFunctionSource(kModule, name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_NE(r.status().message().find("defines no top-level function '" + std::string(name)),
              std::string::npos)
        << r.status().ToString();
  }
  // A method, and a def inside a string, are not top-level functions.
  EXPECT_FALSE(PythonFunctionSource("class A:\n    def f(self):\n        pass\n", "f").ok());
  EXPECT_FALSE(PythonFunctionSource("X = '''\ndef f():\n    pass\n'''\n", "f").ok());
}

TEST(PythonTransformations, ParseValidateAndCanonicalForm) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/transformations/orders.py", kModule);
  const std::string yaml = R"(transformations:
  - name: silver_orders
    python: transformations/orders.py:silver_orders
    kind: polars
    inputs: [bronze.orders]
    output: silver.orders
    mode: merge
    keys: [order_id]
)";
  Definitions d;
  std::vector<std::string> problems;
  ParseDefinitionsYaml(yaml, "definitions/p.yaml", &d, &problems);
  ResolvePythonSources(dir.path(), &d, &problems);
  ASSERT_TRUE(problems.empty()) << problems[0];
  const Transformation& t = d.transformations.at(0);
  EXPECT_EQ(t.python_file, "transformations/orders.py");
  EXPECT_EQ(t.python_function, "silver_orders");
  EXPECT_EQ(t.kind, "polars");
  EXPECT_EQ(t.inputs, std::vector<std::string>{"bronze/orders"});
  EXPECT_EQ(t.sql_loc.ToString(), "definitions/p.yaml:3:13");
  ASSERT_OK_AND_ASSIGN(auto src, PythonFunctionSource(kModule, "silver_orders"));
  EXPECT_EQ(t.python_source, src);

  auto flat = FlattenJson(ToCanonicalJson(t));
  EXPECT_EQ(flat.at("python"), "transformations/orders.py:silver_orders");
  EXPECT_EQ(flat.at("kind"), "polars");
  EXPECT_EQ(flat.at("inputs"), "[bronze/orders]");
  EXPECT_EQ(flat.at("source"), src);
  Definitions back;
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kTransformation, ToCanonicalJson(t), &back));
  EXPECT_EQ(ToCanonicalJson(back.transformations.at(0)), ToCanonicalJson(t));
  EXPECT_EQ(back.transformations.at(0).python_source, src);

  // A SQL transformation's canonical form has no python keys.
  Definitions sql;
  ParseDefinitionsYaml("transformations:\n  - {name: s, output: silver.s, sql: SELECT 1}\n",
                       "definitions/s.yaml", &sql, &problems);
  ASSERT_TRUE(problems.empty()) << problems[0];
  EXPECT_EQ(FlattenJson(ToCanonicalJson(sql.transformations.at(0))).count("python"), 0u);
}

TEST(PythonTransformations, ErrorsNameTheLine) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/t.py", "def f(x):\n    return x\n");
  auto problems_of = [&](const std::string& entry) {
    Definitions d;
    std::vector<std::string> problems;
    ParseDefinitionsYaml("transformations:\n  - name: p\n    output: silver.p\n" + entry,
                         "definitions/p.yaml", &d, &problems);
    ResolvePythonSources(dir.path(), &d, &problems);
    std::string all;
    for (const auto& p : problems) all += p + "\n";
    return all;
  };
  EXPECT_EQ(problems_of("    python: missing.py:f\n    inputs: [bronze.x]\n"),
            "definitions/p.yaml:4:13: transformation 'p': python file 'missing.py' does not "
            "exist (paths are relative to the repository root, " +
                dir.path() + ")\n");
  EXPECT_EQ(problems_of("    python: t.py:g\n    inputs: [bronze.x]\n"),
            "definitions/p.yaml:4:13: transformation 'p': python file 't.py' defines no "
            "top-level function 'g' (def g(...): at the start of a line)\n");
  EXPECT_NE(
      problems_of("    python: t.py\n    inputs: [bronze.x]\n").find("must be FILE.py:FUNCTION"),
      std::string::npos);
  EXPECT_NE(problems_of("    python: ../t.py:f\n    inputs: [bronze.x]\n")
                .find("must be inside the repository"),
            std::string::npos);
  EXPECT_NE(problems_of("    python: t.py:f\n").find("names the tables it reads"),
            std::string::npos);
  EXPECT_NE(problems_of("    python: t.py:f\n    inputs: [bronze.x]\n    kind: spark\n")
                .find("definitions/p.yaml:6:11: transformation 'p': unknown kind 'spark'"),
            std::string::npos);
  EXPECT_NE(problems_of("    python: t.py:f\n    inputs: [bronze.x]\n    sql: SELECT 1\n")
                .find("has both 'sql' and 'python'"),
            std::string::npos);
  EXPECT_NE(problems_of("    sql: SELECT 1\n    kind: pandas\n")
                .find("'kind' applies to Python transformations"),
            std::string::npos);
  EXPECT_EQ(problems_of("    python: t.py:f\n    inputs: [bronze.x]\n    kind: arrow\n"), "");
}

}  // namespace
}  // namespace stratalake::registry
