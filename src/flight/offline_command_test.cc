// Feast's remote offline store commands: what is accepted, and the error every
// malformed or unsupported command gets (untrusted input, never a crash).
#include "flight/offline_command.h"

#include <string>

#include <gtest/gtest.h>

namespace stratalake::flight {
namespace {

// The command Feast 0.67's RemoteOfflineStore.get_historical_features sends.
const char* kHistorical =
    R"({"command_id": "5f0c", "api": "get_historical_features",
        "feature_view_names": ["driver_stats", "driver_stats"],
        "feature_refs": ["driver_stats:conv_rate", "stats_alias:acc_rate"],
        "project": "shop", "full_feature_names": true,
        "name_aliases": [null, "stats_alias"]})";

std::string Error(const std::string& text) {
  auto r = ParseOfflineCommand(text);
  return r.ok() ? "(parsed)" : r.status().ToString();
}

TEST(OfflineCommand, ParsesFeastsGetHistoricalFeatures) {
  auto r = ParseOfflineCommand(kHistorical);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->api, OfflineApi::kGetHistoricalFeatures);
  EXPECT_EQ(r->feature_refs,
            (std::vector<std::string>{"driver_stats:conv_rate", "stats_alias:acc_rate"}));
  EXPECT_EQ(r->feature_view_names.size(), 2u);
  ASSERT_EQ(r->name_aliases.size(), 2u);
  EXPECT_FALSE(r->name_aliases[0].has_value());
  EXPECT_EQ(r->name_aliases[1].value(), "stats_alias");
  EXPECT_EQ(r->project, "shop");
  EXPECT_TRUE(r->full_feature_names);
}

TEST(OfflineCommand, ParsesDataSourceCalls) {
  for (const char* api :
       {"validate_data_source", "get_table_column_names_and_types_from_data_source"}) {
    auto r = ParseOfflineCommand(std::string(R"({"api": ")") + api +
                                 R"(", "data_source_proto": "{\"name\": \"orders\", )"
                                 R"(\"type\": \"BATCH_FILE\"}"})");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->data_source_name, "orders");
  }
}

TEST(OfflineCommand, ParsesFeastsPullAll) {
  // What RemoteOfflineStore.pull_all_from_table_or_query sends (materialization).
  auto r = ParseOfflineCommand(
      R"({"command_id": "7", "api": "pull_all_from_table_or_query",
          "data_source_name": "driver_stats_source", "join_key_columns": ["driver_id"],
          "feature_name_columns": ["conv_rate", "acc_rate"],
          "timestamp_field": "event_timestamp", "created_timestamp_column": "created",
          "start_date": "2026-06-01T00:00:00+00:00",
          "end_date": "2026-06-02T01:30:00.250000+02:00"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->api, OfflineApi::kPullAll);
  EXPECT_EQ(r->data_source_name, "driver_stats_source");
  EXPECT_EQ(r->join_key_columns, std::vector<std::string>{"driver_id"});
  EXPECT_EQ(r->feature_name_columns, (std::vector<std::string>{"conv_rate", "acc_rate"}));
  EXPECT_EQ(r->created_timestamp_column, "created");
  EXPECT_EQ(r->start_us, int64_t{1780272000} * 1000000);
  EXPECT_EQ(r->end_us, int64_t{1780272000 + 86400 - 1800} * 1000000 + 250000);
  auto open = ParseOfflineCommand(
      R"({"api": "pull_all_from_table_or_query", "data_source_name": "s",
          "join_key_columns": [], "feature_name_columns": ["f"], "timestamp_field": "ts",
          "created_timestamp_column": null, "start_date": null, "end_date": null})");
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  EXPECT_FALSE(open->start_us.has_value());
  EXPECT_EQ(open->created_timestamp_column, "");
  EXPECT_EQ(Error(R"({"api": "pull_all_from_table_or_query", "data_source_name": "s",
                      "join_key_columns": [], "feature_name_columns": [],
                      "timestamp_field": "ts", "start_date": "yesterday"})"),
            "Invalid: offline server: pull_all_from_table_or_query command: 'start_date' is not "
            "an ISO 8601 time: 'yesterday'");
}

TEST(OfflineCommand, MalformedCommandsAreClearErrors) {
  EXPECT_EQ(Error("not json"),
            "Invalid: offline server: the Flight command must be Feast's JSON object: malformed "
            "JSON at byte 1: Invalid value.");
  EXPECT_EQ(Error("[1]"), "Invalid: offline server: the Flight command must be a JSON object");
  EXPECT_EQ(Error("{}"),
            "Invalid: offline server: the command has no 'api' (one of get_historical_features, "
            "get_table_column_names_and_types_from_data_source, validate_data_source, "
            "pull_all_from_table_or_query, pull_latest_from_table_or_query)");
  EXPECT_EQ(Error(R"({"api": 7})").substr(0, 48),
            "Invalid: offline server: the command has no 'api");
  EXPECT_EQ(Error(R"({"api": "drop_tables"})"),
            "Invalid: offline server: unknown api 'drop_tables' (served: get_historical_features, "
            "get_table_column_names_and_types_from_data_source, validate_data_source, "
            "pull_all_from_table_or_query, pull_latest_from_table_or_query)");
  EXPECT_EQ(Error(R"({"api": "x", "api": "y"})").substr(0, 60),
            "Invalid: offline server: the Flight command must be Feast's ");
  EXPECT_EQ(Error(std::string(kMaxCommandBytes + 1, ' ')),
            "Invalid: offline server: the command is 1048577 bytes; at most 1048576 are "
            "accepted");
  EXPECT_EQ(Error(std::string(100000, '[')).substr(0, 60),
            "Invalid: offline server: the Flight command must be Feast's ");
}

TEST(OfflineCommand, MissingAndMistypedParametersAreNamed) {
  const std::string head = R"({"api": "get_historical_features", )";
  EXPECT_EQ(Error(head + R"("feature_refs": ["a:b"]})"),
            "Invalid: offline server: get_historical_features command: 'feature_view_names' is "
            "required");
  EXPECT_EQ(Error(head + R"("feature_view_names": "a", "feature_refs": ["a:b"]})"),
            "Invalid: offline server: get_historical_features command: 'feature_view_names' "
            "must be a list of strings");
  EXPECT_EQ(Error(head + R"("feature_view_names": ["a"], "feature_refs": []})"),
            "Invalid: offline server: get_historical_features command: 'feature_refs' must name "
            "at least one feature");
  EXPECT_EQ(Error(head + R"("feature_view_names": ["a"], "feature_refs": ["a:b"],
                             "name_aliases": [null, null]})"),
            "Invalid: offline server: get_historical_features command: 'name_aliases' must "
            "have one entry per feature view (1), not 2");
  EXPECT_EQ(Error(head + R"("feature_view_names": ["a"], "feature_refs": ["a:b"],
                             "name_aliases": [1]})"),
            "Invalid: offline server: get_historical_features command: 'name_aliases' must be "
            "a list of strings or nulls");
  EXPECT_EQ(Error(head + R"("feature_view_names": ["a"], "feature_refs": ["a:b"],
                             "name_aliases": [null], "project": "p",
                             "full_feature_names": "yes"})"),
            "Invalid: offline server: get_historical_features command: 'full_feature_names' "
            "must be true or false");
  EXPECT_EQ(Error(R"({"api": "validate_data_source", "data_source_proto": "{"})"),
            "Invalid: offline server: validate_data_source command: 'data_source_proto' is not "
            "JSON: malformed JSON at byte 1: Missing a name for object member.");
  EXPECT_EQ(Error(R"({"api": "validate_data_source", "data_source_proto": "{\"name\": 3}"})"),
            "Invalid: offline server: validate_data_source command: 'name' must be a string");
}

TEST(OfflineCommand, UnsupportedCallsSayWhatToUseInstead) {
  EXPECT_EQ(Error(R"({"api": "persist"})"),
            "NotImplemented: offline server: persist is not supported by StrataLake; save "
            "training sets with `stratalake get-historical --save-as NAME`");
  EXPECT_EQ(Error(R"({"api": "pull_latest_from_table_or_query", "data_source_name": 1})"),
            "Invalid: offline server: pull_latest_from_table_or_query command: "
            "'data_source_name' must be a string");
  EXPECT_EQ(Error(R"({"api": "pull_all_from_table_or_query"})"),
            "Invalid: offline server: pull_all_from_table_or_query command: 'data_source_name' "
            "is required");
  EXPECT_NE(Error(R"({"api": "offline_write_batch"})").find("stratalake ingest"),
            std::string::npos);
  const std::string ok_head =
      R"({"api": "get_historical_features", "feature_view_names": ["a"],
          "feature_refs": ["a:b"], "name_aliases": [null], "project": "p",
          "full_feature_names": false, )";
  EXPECT_NE(Error(ok_head + R"("entity_df_sql": "SELECT 1"})").find("given as SQL"),
            std::string::npos);
  EXPECT_NE(Error(ok_head + R"("start_date": "2026-01-01T00:00:00"})").find("start_date/end_date"),
            std::string::npos);
  EXPECT_EQ(Error(ok_head + R"("start_date": null, "end_date": null})"), "(parsed)");
}

}  // namespace
}  // namespace stratalake::flight
