// Tests of definition parsing, validation (one test per message), the
// compatibility policy, plans and the versioned registry over SQLite.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "registry/loader.h"
#include "registry/store.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::registry {
namespace {

using stratalake::testing::TempDir;

Definitions ParseOk(const std::string& yaml, const std::string& file = "defs.yaml") {
  Definitions d;
  std::vector<std::string> problems;
  ParseDefinitionsYaml(yaml, file, &d, &problems);
  EXPECT_TRUE(problems.empty()) << (problems.empty() ? "" : problems[0]);
  return d;
}

std::vector<std::string> ParseProblems(const std::string& yaml) {
  Definitions d;
  std::vector<std::string> problems;
  ParseDefinitionsYaml(yaml, "defs.yaml", &d, &problems);
  return problems;
}

const char* kBase = R"(entities:
  - name: customer
    join_keys:
      - {name: customer_id, type: int64}
sources:
  - name: orders
    path: bronze/orders
    timestamp_field: ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: amount, type: float64}
      - {name: status, type: string}
      - {name: ts, type: timestamp}
feature_views:
  - name: stats
    entities: [customer]
    source: orders
    ttl: 7d
    features:
      - {name: amount, type: float64}
      - status: string
feature_services:
  - name: model
    features:
      - stats:amount
      - stats:status
)";

// Validates with declared schemas only (no offline store).
arrow::Status ValidateDeclared(const Definitions& d) {
  ValidationOptions o;
  o.resolve_schema = [](const Source& s) -> arrow::Result<std::shared_ptr<arrow::Schema>> {
    if (s.schema.empty()) return nullptr;
    arrow::FieldVector f;
    for (const auto& c : s.schema) {
      auto m = s.field_mapping.find(c.name);
      f.push_back(
          arrow::field(m == s.field_mapping.end() ? c.name : m->second, c.type, c.nullable));
    }
    return arrow::schema(f);
  };
  return Validate(d, o);
}

std::string ValidationMessage(const std::string& yaml) {
  auto st = ValidateDeclared(ParseOk(yaml));
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(HasErrorKind(st, ErrorKind::kDefinitionError)) << st.ToString();
  return st.message();
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

// ---- parsing ------------------------------------------------------------------

TEST(DefinitionParse, ParsesEveryKindWithLocations) {
  Definitions d = ParseOk(kBase, "definitions/shop.yaml");
  ASSERT_EQ(d.entities.size(), 1u);
  EXPECT_EQ(d.entities[0].join_keys[0].name, "customer_id");
  EXPECT_EQ(d.entities[0].join_keys[0].type->id(), arrow::Type::INT64);
  EXPECT_EQ(d.entities[0].loc.ToString(), "definitions/shop.yaml:2:5");
  ASSERT_EQ(d.sources.size(), 1u);
  EXPECT_EQ(d.sources[0].type, SourceType::kDelta);
  EXPECT_EQ(d.sources[0].schema.size(), 4u);
  EXPECT_FALSE(d.sources[0].schema[0].nullable);
  EXPECT_EQ(d.sources[0].loc.line, 6);
  ASSERT_EQ(d.feature_views.size(), 1u);
  EXPECT_EQ(d.feature_views[0].ttl_seconds, 7 * 86400);
  EXPECT_TRUE(d.feature_views[0].online);
  ASSERT_EQ(d.feature_views[0].features.size(), 2u);
  EXPECT_EQ(d.feature_views[0].features[1].name, "status");  // short form
  EXPECT_EQ(d.feature_views[0].features[1].type->id(), arrow::Type::STRING);
  EXPECT_EQ(d.feature_views[0].features[1].loc.line, 21);
  ASSERT_EQ(d.feature_services.size(), 1u);
  // "stats:amount" and "stats:status" merge into one item.
  ASSERT_EQ(d.feature_services[0].items.size(), 1u);
  EXPECT_EQ(d.feature_services[0].items[0].features,
            (std::vector<std::string>{"amount", "status"}));
}

TEST(DefinitionParse, UnknownKeyNamesLineAndKnownKeys) {
  auto p = ParseProblems(Replace(kBase, "    ttl: 7d\n", "    ttl: 7d\n    time_to_live: 3d\n"));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0],
            "defs.yaml:19:5: feature view 'stats': unknown key 'time_to_live' (known keys: "
            "aggregations, description, entities, features, name, online, owner, source, tags, "
            "ttl)");
}

TEST(DefinitionParse, BadDurationNamesLine) {
  auto p = ParseProblems(Replace(kBase, "ttl: 7d", "ttl: 7 days"));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0],
            "defs.yaml:18:10: feature view 'stats': invalid duration '7 days': write a number and "
            "a unit, e.g. 7d, 12h, 30m, 45s, 2w, or 0 for unlimited");
}

TEST(DefinitionParse, BadTypeNamesLine) {
  auto p = ParseProblems(Replace(kBase, "status: string", "status: text"));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(
      p[0].rfind("defs.yaml:21:17: feature view 'stats' field 'status': unknown type 'text'", 0),
      0u)
      << p[0];
}

TEST(DefinitionParse, InvalidYamlNamesLine) {
  auto p = ParseProblems("entities:\n  - name: a\n    join_keys: [\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].rfind("defs.yaml:4:", 0), 0u) << p[0];
  EXPECT_NE(p[0].find("not valid YAML"), std::string::npos);
}

TEST(DefinitionParse, Issue24DuplicateKeysAtAnyDepthAreProblems) {
  auto p = ParseProblems(
      "entities:\n  - name: a\n    name: b\n    join_keys: [{name: id, type: int64}]\n"
      "entities: []\n");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0],
            "defs.yaml:3:5: duplicate key 'name' (first at line 2); a key may appear once in a "
            "mapping: merge the two or remove one");
  EXPECT_EQ(p[1],
            "defs.yaml:5:1: duplicate key 'entities' (first at line 1); a key may appear once in "
            "a mapping: merge the two or remove one");
}

TEST(DefinitionParse, Issue24NonScalarKeysAndNestedListsAreProblemsNotAborts) {
  auto p = ParseProblems("? [a, b]\n: 1\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "defs.yaml:1:3: a key must be a single name, not a list");
  p = ParseProblems("entities:\n  - [[a]]\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "defs.yaml:2:5: entity must be a mapping of keys to values");
  p = ParseProblems(
      "feature_views:\n  - name: v\n    source: s\n    entities: [[a]]\n"
      "    features: [[x]]\n");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], "defs.yaml:4:16: feature view 'v': every entry of 'entities' must be a name");
  EXPECT_EQ(p[1], "defs.yaml:5:16: feature view 'v' field must be a mapping of keys to values");
}

// Found by fuzz_definitions_yaml: yaml-cpp 0.7's LoadAll never returns on this
// input (it reports empty documents forever; 19 GB before the allocator failed).
TEST(DefinitionParse, Issue24MalformedYamlThatLoopsYamlCppLoadAllIsOneProblem) {
  auto p = ParseProblems(std::string("!, b]\n  - d- definieiti b]\x94 ", 28));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "defs.yaml:1:1: definitions file must be a mapping of keys to values");
}

TEST(DefinitionParse, DocumentsSplitAtMarkersKeepTheirLineNumbers) {
  auto p = ParseProblems(
      "entities: []\n---\nentities:\n  - name: a\n    join_keys: [{name: id, type: int64}]\n"
      "    bogus: 1\n--- \n");
  ASSERT_EQ(p.size(), 1u) << p[0];
  EXPECT_EQ(p[0],
            "defs.yaml:6:5: entity 'a': unknown key 'bogus' (known keys: description, join_keys, "
            "name, owner, tags)");
}

TEST(DefinitionParse, MissingRequiredKey) {
  auto p = ParseProblems("sources:\n  - name: s\n    timestamp_field: ts\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "defs.yaml:2:5: source 's': missing required key 'path'");
}

TEST(DefinitionParse, ServiceEntryForms) {
  Definitions d = ParseOk(R"(feature_services:
  - name: svc
    include: [base]
    features:
      - stats
      - view: stats
        alias: seller
        features: [amount]
        join_key_map: {customer_id: seller_id}
)");
  const auto& s = d.feature_services.at(0);
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_TRUE(s.items[0].features.empty());
  EXPECT_EQ(s.items[1].alias, "seller");
  EXPECT_EQ(s.items[1].join_key_map.at("customer_id"), "seller_id");
  EXPECT_EQ(s.includes, std::vector<std::string>{"base"});
}

TEST(Durations, ParseAndFormat) {
  EXPECT_EQ(*ParseDuration("7d"), 604800);
  EXPECT_EQ(*ParseDuration("12h"), 43200);
  EXPECT_EQ(*ParseDuration("30m"), 1800);
  EXPECT_EQ(*ParseDuration("45s"), 45);
  EXPECT_EQ(*ParseDuration("2w"), 1209600);
  EXPECT_EQ(*ParseDuration("1d12h"), 129600);
  EXPECT_EQ(*ParseDuration("0"), 0);
  for (const char* bad : {"", "7", "d", "7x", "-1d", "1.5h"}) {
    EXPECT_TRUE(HasErrorKind(ParseDuration(bad).status(), ErrorKind::kDefinitionError)) << bad;
  }
  EXPECT_EQ(FormatDuration(0), "0");
  EXPECT_EQ(FormatDuration(172800), "2d");
  EXPECT_EQ(FormatDuration(5400), "1h30m");
  EXPECT_EQ(FormatDuration(129600), "1d12h");
}

TEST(FeatureTypes, AliasesAndCanonicalNames) {
  EXPECT_EQ(FeatureTypeName(**ParseFeatureType("Int64")), "int64");
  EXPECT_EQ(FeatureTypeName(**ParseFeatureType("double")), "float64");
  EXPECT_EQ(FeatureTypeName(**ParseFeatureType("UnixTimestamp")), "timestamp");
  EXPECT_EQ((*ParseFeatureType("timestamp"))->ToString(), "timestamp[us, tz=UTC]");
  EXPECT_EQ(FeatureTypeName(**ParseFeatureType("decimal(10,2)")), "decimal(10,2)");
  EXPECT_EQ(FeatureTypeName(**ParseFeatureType("list<float>")), "list<float32>");
  EXPECT_FALSE(ParseFeatureType("decimal(40,2)").ok());
  EXPECT_FALSE(ParseFeatureType("varchar").ok());
}

TEST(CanonicalJson, RoundTripsEveryKind) {
  Definitions d = ParseOk(kBase);
  Definitions back;
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kEntity, ToCanonicalJson(d.entities[0]), &back));
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kSource, ToCanonicalJson(d.sources[0]), &back));
  ASSERT_OK(
      AddFromCanonicalJson(ObjectKind::kFeatureView, ToCanonicalJson(d.feature_views[0]), &back));
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kFeatureService,
                                 ToCanonicalJson(d.feature_services[0]), &back));
  EXPECT_EQ(ToCanonicalJson(back.entities[0]), ToCanonicalJson(d.entities[0]));
  EXPECT_EQ(ToCanonicalJson(back.sources[0]), ToCanonicalJson(d.sources[0]));
  EXPECT_EQ(ToCanonicalJson(back.feature_views[0]), ToCanonicalJson(d.feature_views[0]));
  EXPECT_EQ(ToCanonicalJson(back.feature_services[0]), ToCanonicalJson(d.feature_services[0]));
  auto flat = FlattenJson(ToCanonicalJson(d.feature_views[0]));
  EXPECT_EQ(flat.at("features[amount].type"), "float64");
  EXPECT_EQ(flat.at("ttl"), "7d");
  EXPECT_EQ(flat.at("entities"), "[customer]");
}

// ---- validation: one test per message ---------------------------------------------

TEST(Validation, BaseIsValid) { ASSERT_OK(ValidateDeclared(ParseOk(kBase))); }

TEST(Validation, UnknownEntity) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "entities: [customer]", "entities: [client]")),
            "1 problem in the feature definitions\n  defs.yaml:15:5: feature view 'stats': "
            "unknown entity 'client' (defined entities: customer)");
}

TEST(Validation, UnknownSource) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "source: orders", "source: order")),
            "1 problem in the feature definitions\n  defs.yaml:15:5: feature view 'stats': "
            "unknown source 'order' (defined sources: orders)");
}

TEST(Validation, DuplicateNameNamesBothPlaces) {
  std::string y =
      Replace(kBase, "sources:\n",
              "  - name: customer\n    join_keys: [{name: customer_id, type: int64}]\nsources:\n");
  EXPECT_EQ(ValidationMessage(y),
            "1 problem in the feature definitions\n  defs.yaml:5:5: entity 'customer': defined "
            "twice (first at defs.yaml:2:5); rename or remove one of them");
}

TEST(Validation, FeatureMissingFromSource) {
  std::string m =
      ValidationMessage(Replace(kBase, "- {name: amount, type: float64}\n      - status",
                                "- {name: total, type: float64}\n      - status"));
  EXPECT_EQ(m,
            "2 problems in the feature definitions\n  defs.yaml:20:9: feature view 'stats' feature "
            "'total': no column 'total' in source 'orders' (columns: customer_id, amount, status, "
            "ts)\n  defs.yaml:25:9: feature service 'model': feature view 'stats' has no feature "
            "'amount' (features: total, status)");
}

TEST(Validation, FeatureOfWrongType) {
  std::string m =
      ValidationMessage(Replace(kBase, "- {name: amount, type: float64}\n      - status",
                                "- {name: amount, type: int64}\n      - status"));
  EXPECT_EQ(m,
            "1 problem in the feature definitions\n  defs.yaml:20:9: feature view 'stats' feature "
            "'amount': declared as int64 but source 'orders' has it as float64; declare type "
            "float64");
}

TEST(Validation, JoinKeyMissingFromSource) {
  std::string y = Replace(kBase, "- {name: customer_id, type: int64, nullable: false}",
                          "- {name: buyer_id, type: int64, nullable: false}");
  EXPECT_EQ(
      ValidationMessage(y),
      "1 problem in the feature definitions\n  defs.yaml:15:5: feature view 'stats': join key "
      "'customer_id' is not a column of source 'orders'; add it or map a column to it with "
      "field_mapping");
}

TEST(Validation, FieldMappingProvidesJoinKey) {
  std::string y = Replace(kBase, "- {name: customer_id, type: int64, nullable: false}",
                          "- {name: buyer_id, type: int64, nullable: false}");
  y = Replace(y, "    timestamp_field: ts\n",
              "    timestamp_field: ts\n    field_mapping: {buyer_id: customer_id}\n");
  ASSERT_OK(ValidateDeclared(ParseOk(y)));
}

TEST(Validation, TimestampFieldMissing) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "timestamp_field: ts", "timestamp_field: event_ts")),
            "1 problem in the feature definitions\n  defs.yaml:6:5: source 'orders': "
            "timestamp_field 'event_ts' is not a column of the source (columns: customer_id, "
            "amount, status, ts)");
}

TEST(Validation, TimestampFieldNotATimestamp) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "timestamp_field: ts", "timestamp_field: status")),
            "2 problems in the feature definitions\n  defs.yaml:6:5: source 'orders': "
            "timestamp_field 'status' has type string; it must be a timestamp or date\n  "
            "defs.yaml:21:9: feature view 'stats' feature 'status': is the source's "
            "timestamp_field; it cannot also be a feature");
}

TEST(Validation, NoTimestampField) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "    timestamp_field: ts\n", "")),
            "1 problem in the feature definitions\n  defs.yaml:6:5: source 'orders': no "
            "'timestamp_field'; name the column holding each row's event time (or set "
            "defaults.timestamp_field in stratalake.yaml)");
}

TEST(Validation, DoubleUnderscoreNameReserved) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "name: stats", "name: my__stats")),
            "2 problems in the feature definitions\n  defs.yaml:15:5: feature view 'my__stats': "
            "'my__stats' contains '__', which is reserved for full feature names (view__feature)\n"
            "  defs.yaml:25:9: feature service 'model': unknown feature view 'stats' (defined "
            "feature views: my__stats)");
}

TEST(Validation, InvalidName) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "name: model", "name: churn-model")),
            "1 problem in the feature definitions\n  defs.yaml:23:5: feature service "
            "'churn-model': 'churn-model' is not a valid name; use letters, digits and "
            "underscores, starting with a letter");
}

TEST(Validation, UnderscorePrefixReserved) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "- name: customer\n", "- name: _customer\n")),
            "2 problems in the feature definitions\n  defs.yaml:2:5: entity '_customer': names "
            "starting with '_' are reserved for StrataLake's own columns\n  defs.yaml:15:5: "
            "feature view 'stats': unknown entity 'customer' (defined entities: _customer)");
}

TEST(Validation, ReservedFeatureName) {
  std::string y = Replace(
      kBase, "      - {name: ts, type: timestamp}\n",
      "      - {name: ts, type: timestamp}\n      - {name: event_timestamp, type: int64}\n");
  y = Replace(y, "      - status: string\n",
              "      - status: string\n      - event_timestamp: int64\n");
  EXPECT_EQ(ValidationMessage(y),
            "1 problem in the feature definitions\n  defs.yaml:23:9: feature view 'stats' feature "
            "'event_timestamp': 'event_timestamp' is a reserved column name; rename the feature");
}

TEST(Validation, FeatureNamedLikeJoinKey) {
  std::string y = Replace(kBase, "      - status: string\n",
                          "      - status: string\n      - customer_id: int64\n");
  EXPECT_EQ(
      ValidationMessage(y),
      "1 problem in the feature definitions\n  defs.yaml:22:9: feature view 'stats' feature "
      "'customer_id': has the name of the join key 'customer_id'; join keys are not features");
}

TEST(Validation, UnknownViewInService) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "- stats:amount", "- stat:amount")),
            "1 problem in the feature definitions\n  defs.yaml:25:9: feature service 'model': "
            "unknown feature view 'stat' (defined feature views: stats)");
}

TEST(Validation, UnknownFeatureInService) {
  EXPECT_EQ(ValidationMessage(Replace(kBase, "- stats:status", "- stats:state")),
            "1 problem in the feature definitions\n  defs.yaml:25:9: feature service 'model': "
            "feature view 'stats' has no feature 'state' (features: amount, status)");
}

TEST(Validation, IncludeCycle) {
  std::string y = std::string(kBase) +
                  "  - name: a\n    include: [b]\n    features: [stats]\n"
                  "  - name: b\n    include: [a]\n    features: [stats:amount]\n";
  EXPECT_EQ(ValidationMessage(y),
            "1 problem in the feature definitions\n  defs.yaml:27:5: feature service 'a': "
            "includes itself through a cycle: a -> b -> a; remove one of the includes");
}

TEST(Validation, PushSourceNeedsSchema) {
  std::string y = Replace(kBase, "sources:\n",
                          "sources:\n  - name: live\n    type: push\n    path: bronze/live\n");
  EXPECT_EQ(ValidationMessage(y),
            "1 problem in the feature definitions\n  defs.yaml:6:5: source 'live': push sources "
            "need a declared 'schema' (the columns pushed to them)");
}

TEST(Validation, InvalidCheck) {
  std::string y = Replace(kBase, "    timestamp_field: ts\n",
                          "    timestamp_field: ts\n    checks: [\"amont >= 0\"]\n");
  std::string m = ValidationMessage(y);
  EXPECT_EQ(m.rfind("1 problem in the feature definitions\n  defs.yaml:6:5: source 'orders': check "
                    "`amont >= 0` is not valid: ",
                    0),
            0u)
      << m;
  EXPECT_NE(m.find("amont"), std::string::npos);
}

TEST(Validation, SourceSchemaUnknownYet) {
  std::string y = Replace(kBase,
                          "    schema:\n      - {name: customer_id, type: int64, nullable: "
                          "false}\n      - {name: amount, type: float64}\n      - {name: status, "
                          "type: string}\n      - {name: ts, type: timestamp}\n",
                          "");
  EXPECT_EQ(ValidationMessage(y),
            "1 problem in the feature definitions\n  defs.yaml:10:5: feature view 'stats': cannot "
            "check its features: source 'orders' declares no schema and its table does not exist "
            "yet; declare the source's 'schema' or ingest data first");
}

TEST(Validation, ReportsEveryProblemAtOnce) {
  std::string y = Replace(kBase, "source: orders", "source: nope");
  y = Replace(y, "- stats:status", "- stats:state");
  y = Replace(y, "entities: [customer]", "entities: [client]");
  std::string m = ValidationMessage(y);
  EXPECT_EQ(m.substr(0, m.find('\n')), "3 problems in the feature definitions");
}

// ---- compatibility -----------------------------------------------------------------

Plan PlanBetween(const std::string& before, const std::string& after, CompatibilityPolicy p) {
  TempDir dir;
  auto reg = *Registry::Open(dir.Join("r.db"));
  EXPECT_TRUE(reg->Apply(ParseOk(before), CompatibilityPolicy::kNone, "t", "").ok());
  return *reg->PlanChanges(ParseOk(after), p);
}

std::string WithAmountType(const std::string& t) {
  std::string y = Replace(kBase, "- {name: amount, type: float64}\n      - {name: status",
                          "- {name: amount, type: " + t + "}\n      - {name: status");
  return Replace(y, "- {name: amount, type: float64}\n      - status",
                 "- {name: amount, type: " + t + "}\n      - status");
}

const std::string kRemoved =
    Replace(Replace(kBase, "      - status: string\n", ""), "      - stats:status\n", "");
const std::string kAdded =
    Replace(kBase, "      - status: string\n",
            "      - status: string\n      - {name: amount, type: float64}\n");

TEST(Compatibility, BackwardRefusesRemovalAndNarrowingAllowsWidening) {
  auto removed = PlanBetween(kBase, kRemoved, CompatibilityPolicy::kBackward);
  // The view loses a feature (one field change for the whole element); the service an entry.
  ASSERT_EQ(removed.changes.size(), 2u);
  ASSERT_EQ(removed.changes[0].fields.size(), 1u);
  EXPECT_EQ(removed.changes[0].fields[0].path, "features[status]");
  EXPECT_EQ(*removed.changes[0].fields[0].before, "string");
  EXPECT_FALSE(removed.changes[0].fields[0].after.has_value());
  ASSERT_EQ(removed.incompatibilities.size(), 1u);
  EXPECT_EQ(removed.incompatibilities[0],
            "feature view 'stats' (defs.yaml:15:5): removing feature 'status' is not allowed under "
            "the 'backward' compatibility policy: readers that use it (feature services, training "
            "code, models) would break. Keep the old definition and publish the change under a new "
            "name (e.g. 'stats_v2'), or set `compatibility: none` in stratalake.yaml if nothing "
            "depends on it.");
  auto narrow = PlanBetween(WithAmountType("float64"), WithAmountType("float32"),
                            CompatibilityPolicy::kBackward);
  // The source column and the feature both narrow.
  ASSERT_EQ(narrow.incompatibilities.size(), 2u);
  EXPECT_NE(narrow.incompatibilities[1].find(
                "changing the type of feature 'amount' from float64 to float32 is not allowed"),
            std::string::npos);
  auto widen = PlanBetween(WithAmountType("float32"), WithAmountType("float64"),
                           CompatibilityPolicy::kBackward);
  EXPECT_TRUE(widen.incompatibilities.empty());
  EXPECT_EQ(widen.changes.size(), 2u);
}

TEST(Compatibility, ForwardAllowsRemovalRefusesWidening) {
  EXPECT_TRUE(
      PlanBetween(kBase, kRemoved, CompatibilityPolicy::kForward).incompatibilities.empty());
  auto widen =
      PlanBetween(WithAmountType("int32"), WithAmountType("int64"), CompatibilityPolicy::kForward);
  ASSERT_EQ(widen.incompatibilities.size(), 2u);
  EXPECT_NE(
      widen.incompatibilities[1].find("from int32 to int64 is not allowed under the 'forward'"),
      std::string::npos);
  EXPECT_TRUE(
      PlanBetween(WithAmountType("int64"), WithAmountType("int32"), CompatibilityPolicy::kForward)
          .incompatibilities.empty());
}

TEST(Compatibility, FullRefusesAnyTypeChangeAndRemovalButAllowsAdding) {
  EXPECT_EQ(PlanBetween(kBase, kRemoved, CompatibilityPolicy::kFull).incompatibilities.size(), 1u);
  EXPECT_EQ(
      PlanBetween(WithAmountType("int32"), WithAmountType("int64"), CompatibilityPolicy::kFull)
          .incompatibilities.size(),
      2u);
  std::string added =
      Replace(kBase, "      - {name: ts, type: timestamp}\n",
              "      - {name: ts, type: timestamp}\n      - {name: qty, type: int32}\n");
  added =
      Replace(added, "      - status: string\n", "      - status: string\n      - qty: int32\n");
  auto p = PlanBetween(kBase, added, CompatibilityPolicy::kFull);
  EXPECT_TRUE(p.incompatibilities.empty());
  EXPECT_EQ(p.changes.size(), 2u);
}

TEST(Compatibility, IncompatibleTypeChangeRefusedUnlessNone) {
  auto p = PlanBetween(WithAmountType("float64"), WithAmountType("string"),
                       CompatibilityPolicy::kBackward);
  ASSERT_EQ(p.incompatibilities.size(), 2u);
  EXPECT_NE(p.incompatibilities[0].find("the two types are not convertible without loss"),
            std::string::npos);
  EXPECT_TRUE(
      PlanBetween(WithAmountType("float64"), WithAmountType("string"), CompatibilityPolicy::kNone)
          .incompatibilities.empty());
}

TEST(Compatibility, JoinKeyChangeRefused) {
  std::string y =
      Replace(kBase, "- {name: customer_id, type: int64}", "- {name: customer_id, type: string}");
  y = Replace(y, "- {name: customer_id, type: int64, nullable: false}",
              "- {name: customer_id, type: string, nullable: false}");
  auto p = PlanBetween(kBase, y, CompatibilityPolicy::kForward);
  // entity keys, source column type, view keys
  ASSERT_EQ(p.incompatibilities.size(), 3u);
  EXPECT_EQ(p.incompatibilities[0],
            "entity 'customer' (defs.yaml:2:5): changing the join keys from (customer_id int64) to "
            "(customer_id string) is not allowed under the 'forward' compatibility policy: stored "
            "features, online values and saved datasets are keyed by the old join keys. Keep the "
            "old definition and publish the change under a new name (e.g. 'customer_v2'), or set "
            "`compatibility: none` in stratalake.yaml if nothing depends on it.");
  EXPECT_TRUE(PlanBetween(kBase, y, CompatibilityPolicy::kNone).incompatibilities.empty());
}

TEST(Compatibility, ApplyRefusesAndWritesNothing) {
  TempDir dir;
  auto reg = *Registry::Open(dir.Join("r.db"));
  ASSERT_OK(reg->Apply(ParseOk(kBase), CompatibilityPolicy::kBackward, "t", "").status());
  auto r = reg->Apply(ParseOk(kRemoved), CompatibilityPolicy::kBackward, "t", "");
  ASSERT_TRUE(HasErrorKind(r.status(), ErrorKind::kIncompatibleChange)) << r.status().ToString();
  EXPECT_EQ(r.status().message().substr(0, r.status().message().find('\n')),
            "1 incompatible change(s); nothing was applied");
  EXPECT_EQ(*reg->HeadVersion(), 1);
}

// ---- registry versions ---------------------------------------------------------------

TEST(Registry, ApplyVersionsAndHistory) {
  TempDir dir;
  auto clock = std::make_shared<FakeClock>(1'700'000'000'000);
  auto reg = *Registry::Open(dir.Join("r.db"), clock);
  EXPECT_EQ(*reg->HeadVersion(), 0);
  ASSERT_OK_AND_ASSIGN(auto r1,
                       reg->Apply(ParseOk(kBase), CompatibilityPolicy::kBackward, "ada", "first"));
  EXPECT_TRUE(r1.changed);
  EXPECT_EQ(r1.version, 1);
  EXPECT_EQ(r1.plan.changes.size(), 4u);

  // Unchanged definitions (even from another file) create no version.
  ASSERT_OK_AND_ASSIGN(auto same, reg->Apply(ParseOk(kBase, "moved.yaml"),
                                             CompatibilityPolicy::kBackward, "ada", ""));
  EXPECT_FALSE(same.changed);
  EXPECT_EQ(same.version, 1);

  clock->Advance(60'000);
  std::string v2 = Replace(kBase, "ttl: 7d", "ttl: 3d");
  ASSERT_OK_AND_ASSIGN(auto r2,
                       reg->Apply(ParseOk(v2), CompatibilityPolicy::kBackward, "bob", "ttl"));
  EXPECT_EQ(r2.version, 2);
  ASSERT_EQ(r2.plan.changes.size(), 1u);
  EXPECT_EQ(r2.plan.changes[0].type, ChangeType::kModify);
  ASSERT_EQ(r2.plan.changes[0].fields.size(), 1u);
  EXPECT_EQ(r2.plan.changes[0].fields[0].path, "ttl");
  EXPECT_EQ(*r2.plan.changes[0].fields[0].before, "7d");
  EXPECT_EQ(*r2.plan.changes[0].fields[0].after, "3d");

  // Remove the service.
  std::string v3 = v2.substr(0, v2.find("feature_services:"));
  ASSERT_OK_AND_ASSIGN(auto r3,
                       reg->Apply(ParseOk(v3), CompatibilityPolicy::kBackward, "bob", "drop"));
  EXPECT_EQ(r3.version, 3);

  // Every version loads exactly.
  ASSERT_OK_AND_ASSIGN(auto s1, reg->Load(1));
  EXPECT_EQ(s1->defs.feature_views.at(0).ttl_seconds, 7 * 86400);
  EXPECT_EQ(s1->defs.feature_services.size(), 1u);
  EXPECT_EQ(s1->ObjectVersion(ObjectKind::kFeatureView, "stats"), 1);
  ASSERT_OK_AND_ASSIGN(auto s2, reg->Load(2));
  EXPECT_EQ(s2->defs.feature_views.at(0).ttl_seconds, 3 * 86400);
  EXPECT_EQ(s2->ObjectVersion(ObjectKind::kFeatureView, "stats"), 2);
  EXPECT_EQ(s2->ObjectVersion(ObjectKind::kEntity, "customer"), 1);
  ASSERT_OK_AND_ASSIGN(auto s3, reg->Load());
  EXPECT_EQ(s3->version, 3);
  EXPECT_TRUE(s3->defs.feature_services.empty());
  EXPECT_TRUE(HasErrorKind(reg->Load(4).status(), ErrorKind::kVersionNotFound));

  ASSERT_OK_AND_ASSIGN(auto h, reg->History(ObjectKind::kFeatureService, "model"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_FALSE(h[0].deleted);
  EXPECT_EQ(h[0].registry_version, 1);
  EXPECT_EQ(h[0].author, "ada");
  EXPECT_TRUE(h[1].deleted);
  EXPECT_EQ(h[1].registry_version, 3);
  EXPECT_EQ(h[1].committed_at_ms, 1'700'000'060'000);
  ASSERT_OK_AND_ASSIGN(auto versions, reg->Versions());
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[1].message, "ttl");
  EXPECT_EQ(versions[1].num_changes, 1);
  EXPECT_TRUE(HasErrorKind(reg->History(ObjectKind::kEntity, "nobody").status(),
                           ErrorKind::kObjectNotFound));
}

TEST(Registry, ConcurrentApplyNeverLosesAnUpdate) {
  TempDir dir;
  auto a = *Registry::Open(dir.Join("r.db"));
  auto b = *Registry::Open(dir.Join("r.db"));
  ASSERT_OK(a->Apply(ParseOk(kBase), CompatibilityPolicy::kBackward, "a", "").status());
  // Two processes apply different changes at once. Either they race from the
  // same base (one commits, the other fails cleanly with a conflict), or one
  // starts after the other committed (it re-plans and commits on top). Never
  // do both commit from the same base, and every committed change stays in
  // the history.
  for (int round = 0; round < 20; ++round) {
    ASSERT_OK_AND_ASSIGN(int64_t base, a->HeadVersion());
    std::string va = Replace(kBase, "ttl: 7d", "ttl: " + std::to_string(2 * round + 10) + "d");
    std::string vb = Replace(kBase, "ttl: 7d", "ttl: " + std::to_string(2 * round + 11) + "d");
    std::vector<arrow::Result<ApplyResult>> results(2, arrow::Status::UnknownError("not run"));
    std::thread ta(
        [&] { results[0] = a->Apply(ParseOk(va), CompatibilityPolicy::kBackward, "a", ""); });
    std::thread tb(
        [&] { results[1] = b->Apply(ParseOk(vb), CompatibilityPolicy::kBackward, "b", ""); });
    ta.join();
    tb.join();
    std::vector<int64_t> committed;
    for (auto& r : results) {
      if (r.ok()) {
        EXPECT_TRUE(r->changed);
        committed.push_back(r->version);
      } else {
        EXPECT_TRUE(HasErrorKind(r.status(), ErrorKind::kRegistryConflict))
            << r.status().ToString();
      }
    }
    std::sort(committed.begin(), committed.end());
    ASSERT_OK_AND_ASSIGN(int64_t head, a->HeadVersion());
    if (committed.size() == 1) {
      EXPECT_EQ(committed[0], base + 1);
      EXPECT_EQ(head, base + 1);
    } else {
      ASSERT_EQ(committed.size(), 2u);
      EXPECT_EQ(committed, (std::vector<int64_t>{base + 1, base + 2}));
      EXPECT_EQ(head, base + 2);
    }
    ASSERT_OK_AND_ASSIGN(auto h, a->History(ObjectKind::kFeatureView, "stats"));
    EXPECT_EQ(h.back().registry_version, head);
  }

  // Racing with the same change: both succeed, and only one version is added.
  ASSERT_OK_AND_ASSIGN(int64_t base, a->HeadVersion());
  std::string vc = Replace(kBase, "ttl: 7d", "ttl: 99d");
  std::vector<arrow::Result<ApplyResult>> results(2, arrow::Status::UnknownError("not run"));
  std::thread tc(
      [&] { results[0] = a->Apply(ParseOk(vc), CompatibilityPolicy::kBackward, "a", ""); });
  std::thread td(
      [&] { results[1] = b->Apply(ParseOk(vc), CompatibilityPolicy::kBackward, "b", ""); });
  tc.join();
  td.join();
  ASSERT_OK(results[0].status());
  ASSERT_OK(results[1].status());
  EXPECT_EQ(results[0]->changed + results[1]->changed, 1);
  EXPECT_EQ(*a->HeadVersion(), base + 1);
}

TEST(Registry, CacheReloadsOnlyWhenVersionChanges) {
  TempDir dir;
  auto clock = std::make_shared<FakeClock>(0);
  std::shared_ptr<Registry> reg = *Registry::Open(dir.Join("r.db"), clock);
  ASSERT_OK(reg->Apply(ParseOk(kBase), CompatibilityPolicy::kBackward, "a", "").status());
  RegistryCache cache(reg, clock, /*min_check_interval_ms=*/1000);
  ASSERT_OK_AND_ASSIGN(auto s1, cache.Get());
  EXPECT_EQ(s1->version, 1);
  for (int i = 0; i < 5; ++i) {
    clock->Advance(2000);
    ASSERT_OK_AND_ASSIGN(auto s, cache.Get());
    EXPECT_EQ(s.get(), s1.get());  // same parsed object
  }
  EXPECT_EQ(cache.loads(), 1);
  ASSERT_OK(reg->Apply(ParseOk(Replace(kBase, "ttl: 7d", "ttl: 1d")),
                       CompatibilityPolicy::kBackward, "a", "")
                .status());
  ASSERT_OK_AND_ASSIGN(auto stale, cache.Get());  // within the check interval
  EXPECT_EQ(stale->version, 1);
  clock->Advance(1000);
  ASSERT_OK_AND_ASSIGN(auto fresh, cache.Get());
  EXPECT_EQ(fresh->version, 2);
  EXPECT_EQ(cache.loads(), 2);
}

// A store that forwards to a real one, can be switched off (every call fails
// as an unreachable database would), and records which threads asked for the head.
class SwitchableStore : public RegistryStore {
 public:
  struct Control {
    std::atomic<bool> down{false};
    std::mutex mu;
    std::vector<std::thread::id> head_callers;
  };
  SwitchableStore(std::unique_ptr<RegistryStore> inner, std::shared_ptr<Control> control)
      : inner_(std::move(inner)), control_(std::move(control)) {}
  arrow::Result<int64_t> HeadVersion() override {
    {
      std::lock_guard<std::mutex> lock(control_->mu);
      control_->head_callers.push_back(std::this_thread::get_id());
    }
    ARROW_RETURN_NOT_OK(Up());
    return inner_->HeadVersion();
  }
  arrow::Result<std::vector<StoredObject>> ObjectsAt(int64_t version) override {
    ARROW_RETURN_NOT_OK(Up());
    return inner_->ObjectsAt(version);
  }
  arrow::Result<std::vector<StoredObject>> ObjectHistory(const std::string& kind,
                                                         const std::string& name) override {
    return inner_->ObjectHistory(kind, name);
  }
  arrow::Result<std::vector<VersionRecord>> Versions() override { return inner_->Versions(); }
  arrow::Result<VersionRecord> Commit(int64_t base_version, VersionRecord info,
                                      const std::vector<StoredObject>& rows) override {
    return inner_->Commit(base_version, std::move(info), rows);
  }
  arrow::Status PutState(const std::string& key, const std::string& value,
                         int64_t now_ms) override {
    return inner_->PutState(key, value, now_ms);
  }
  arrow::Result<std::optional<std::string>> GetState(const std::string& key) override {
    return inner_->GetState(key);
  }
  std::string Describe() const override { return inner_->Describe(); }

 private:
  arrow::Status Up() const {
    if (control_->down) return arrow::Status::IOError("could not connect to the registry");
    return arrow::Status::OK();
  }
  std::unique_ptr<RegistryStore> inner_;
  std::shared_ptr<Control> control_;
};

TEST(Registry, CacheKeepsServingTheHeldStateWhileTheRegistryIsUnreachable) {
  TempDir dir;
  auto clock = std::make_shared<FakeClock>(0);
  auto control = std::make_shared<SwitchableStore::Control>();
  std::shared_ptr<Registry> reg = Registry::FromStore(
      std::make_unique<SwitchableStore>(*OpenSqliteStore(dir.Join("r.db")), control), clock);

  // Nothing held yet: the first load's failure is the caller's.
  control->down = true;
  RegistryCache cache(reg, clock, /*min_check_interval_ms=*/1000);
  auto first = cache.Get();
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.status().message().find("could not connect"), std::string::npos);
  EXPECT_EQ(cache.failures(), 1);

  control->down = false;
  ASSERT_OK(reg->Apply(ParseOk(kBase), CompatibilityPolicy::kBackward, "a", "").status());
  ASSERT_OK_AND_ASSIGN(auto held, cache.Get());
  EXPECT_EQ(held->version, 1);
  EXPECT_EQ(cache.last_error(), "");

  // Down: every check fails, and every Get still answers with version 1.
  control->down = true;
  for (int i = 0; i < 3; ++i) {
    clock->Advance(1000);
    ASSERT_OK_AND_ASSIGN(auto s, cache.Get());
    EXPECT_EQ(s.get(), held.get());
  }
  EXPECT_EQ(cache.failures(), 4);
  EXPECT_EQ(cache.last_error(), "could not connect to the registry");
  EXPECT_FALSE(cache.Refresh().ok());
  EXPECT_EQ(cache.failures(), 5);

  // Back: the next check loads what was applied meanwhile and clears the error.
  control->down = false;
  ASSERT_OK(reg->Apply(ParseOk(Replace(kBase, "ttl: 7d", "ttl: 1d")),
                       CompatibilityPolicy::kBackward, "a", "")
                .status());
  clock->Advance(1000);
  ASSERT_OK_AND_ASSIGN(auto fresh, cache.Get());
  EXPECT_EQ(fresh->version, 2);
  EXPECT_EQ(cache.last_error(), "");
  EXPECT_EQ(cache.failures(), 5);
  EXPECT_EQ(cache.loads(), 2);
}

TEST(Registry, CacheWithARefreshThreadNeverChecksOnTheCallersThread) {
  TempDir dir;
  auto control = std::make_shared<SwitchableStore::Control>();
  std::shared_ptr<Registry> reg = Registry::FromStore(
      std::make_unique<SwitchableStore>(*OpenSqliteStore(dir.Join("r.db")), control));
  ASSERT_OK(reg->Apply(ParseOk(kBase), CompatibilityPolicy::kBackward, "a", "").status());
  RegistryCache cache(reg, Clock::System(), /*min_check_interval_ms=*/10);
  ASSERT_OK(cache.Get().status());
  cache.StartRefreshThread();
  cache.StartRefreshThread();  // idempotent
  ASSERT_OK(reg->Apply(ParseOk(Replace(kBase, "ttl: 7d", "ttl: 1d")),
                       CompatibilityPolicy::kBackward, "a", "")
                .status());
  {
    std::lock_guard<std::mutex> lock(control->mu);
    control->head_callers.clear();  // Apply itself reads the head on this thread
  }
  // The new version shows up without Get doing the work (10 s is a generous bound).
  int64_t seen = 1;
  for (int i = 0; i < 10000 && seen != 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto s, cache.Get());
    seen = s->version;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(seen, 2);
  // The refresh thread may have picked version 2 up before head_callers was cleared; it
  // keeps checking every 10 ms, so wait (while calling Get) until it has checked again.
  bool checked = false;
  for (int i = 0; i < 10000 && !checked; ++i) {
    ASSERT_OK(cache.Get().status());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(control->mu);
    checked = !control->head_callers.empty();
  }
  std::lock_guard<std::mutex> lock(control->mu);
  EXPECT_FALSE(control->head_callers.empty());
  for (const auto& id : control->head_callers) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(FeatureRequests, OutputNamesAndCollisionsNameBothHolders) {
  FeatureView stats, profile;
  stats.name = "stats";
  profile.name = "profile";
  std::vector<ViewRequest> views(2);
  views[0].view = &stats;
  views[0].label = "stats";
  views[0].features = {"score", "spend"};
  views[1].view = &profile;
  views[1].label = "buyer";  // an alias
  views[1].features = {"score"};
  ASSERT_OK_AND_ASSIGN(auto full, FeatureOutputNames(views, true, {}, "advice"));
  EXPECT_EQ(full, (std::vector<std::vector<std::string>>{{"stats__score", "stats__spend"},
                                                         {"buyer__score"}}));
  auto clash = FeatureOutputNames(views, false, {}, "pass full names");
  ASSERT_FALSE(clash.ok());
  EXPECT_TRUE(HasErrorKind(clash.status(), ErrorKind::kDefinitionError));
  EXPECT_EQ(clash.status().message(),
            "output column 'score' would hold both feature 'stats:score' and feature "
            "'buyer:score'; pass full names");
  auto taken = FeatureOutputNames(views, true, {{"stats__spend", "entity column 'stats__spend'"}},
                                  "rename the column");
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().message(),
            "output column 'stats__spend' would hold both entity column 'stats__spend' and "
            "feature 'stats:spend'; rename the column");
}

// ---- kafka sources ----------------------------------------------------------------

const char* kKafka = R"(entities:
  - name: account
    join_keys: [{name: account_id, type: int64}]
sources:
  - name: trades
    type: kafka
    path: bronze/trades
    timestamp_field: ts
    schema:
      - {name: account_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: price, type: float64}
    kafka:
      brokers: ${BROKERS}
      topic: trades
      columns: {price: px}
      allowed_lateness: 5m
feature_views:
  - name: last_trade
    entities: [account]
    source: trades
    features:
      - {name: price, type: float64}
)";

TEST(KafkaSource, ParsesValidatesAndRoundTrips) {
  Definitions d = ParseOk(kKafka);
  ASSERT_EQ(d.sources.size(), 1u);
  const Source& s = d.sources[0];
  EXPECT_EQ(s.type, SourceType::kKafka);
  EXPECT_EQ(s.kafka.brokers, "${BROKERS}");
  EXPECT_EQ(s.kafka.topic, "trades");
  EXPECT_EQ(s.kafka.format, "json");
  EXPECT_EQ(s.kafka.columns.at("price"), "px");
  EXPECT_EQ(s.kafka.allowed_lateness_seconds, 300);
  ASSERT_OK(ValidateDeclared(d));
  Definitions back;
  ASSERT_OK(AddFromCanonicalJson(ObjectKind::kSource, ToCanonicalJson(s), &back));
  EXPECT_EQ(ToCanonicalJson(back.sources[0]), ToCanonicalJson(s));
  auto flat = FlattenJson(ToCanonicalJson(s));
  EXPECT_EQ(flat.at("kafka.allowed_lateness"), "5m");
  EXPECT_EQ(flat.at("type"), "kafka");
  // Other sources' canonical JSON has no kafka key (their versions are unchanged).
  EXPECT_EQ(ToCanonicalJson(ParseOk(kBase).sources[0]).find("kafka"), std::string::npos);
}

TEST(KafkaSource, ProblemsNameTheLine) {
  EXPECT_EQ(ParseProblems(Replace(kKafka, "allowed_lateness: 5m", "allowed_lateness: soon")),
            std::vector<std::string>{"defs.yaml:17:25: source 'trades' kafka: invalid duration "
                                     "'soon': write a number and a unit, e.g. 7d, 12h, 30m, 45s, "
                                     "2w, or 0 for unlimited"});
  EXPECT_EQ(ParseProblems(Replace(kKafka, "      topic: trades\n", "")),
            std::vector<std::string>{
                "defs.yaml:14:7: source 'trades' kafka: missing required key 'topic'"});
  EXPECT_EQ(
      ParseProblems(Replace(kKafka, "      topic: trades\n",
                            "      topic: trades\n      format: protobuf\n")),
      std::vector<std::string>{"defs.yaml:16:15: source 'trades' kafka: unknown format 'protobuf' "
                               "(formats: json, avro, avro-confluent)"});
  EXPECT_EQ(
      ParseProblems(
          Replace(kKafka, "      topic: trades\n", "      topic: trades\n      format: avro\n")),
      std::vector<std::string>{"defs.yaml:14:7: source 'trades' kafka: format 'avro' needs exactly "
                               "one of 'avro_schema' (the schema's JSON) and 'avro_schema_file' (a "
                               "file under the repository)"});
  EXPECT_EQ(ParseProblems(Replace(kKafka, "      topic: trades\n",
                                  "      topic: trades\n      avro_schema_file: t.avsc\n")),
            std::vector<std::string>{"defs.yaml:16:25: source 'trades' kafka: an Avro schema is "
                                     "only for format avro or avro-confluent"});
  EXPECT_EQ(ParseProblems(Replace(kKafka,
                                  "    kafka:\n      brokers: ${BROKERS}\n      topic: "
                                  "trades\n      columns: {price: px}\n      "
                                  "allowed_lateness: 5m\n",
                                  "")),
            std::vector<std::string>{
                "defs.yaml:5:5: source 'trades': kafka sources need a 'kafka' mapping (brokers, "
                "topic)"});
  EXPECT_EQ(ParseProblems(Replace(kBase, "    path: bronze/orders\n",
                                  "    path: bronze/orders\n    kafka: {topic: t}\n")),
            std::vector<std::string>{
                "defs.yaml:8:12: source 'orders': 'kafka' is only for sources of type kafka"});
}

TEST(KafkaSource, ValidationNeedsASchemaAndDeclaredMappedColumns) {
  EXPECT_EQ(ValidationMessage(Replace(kKafka, "columns: {price: px}", "columns: {prize: px}")),
            "1 problem in the feature definitions\n  defs.yaml:5:5: source 'trades': kafka.columns "
            "maps 'prize', which is not a column of the declared schema (map declared columns to "
            "the JSON fields that hold them)");
}

}  // namespace
}  // namespace stratalake::registry
