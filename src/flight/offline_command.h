// The JSON commands of Feast's remote offline store protocol (the Flight
// descriptor's command; see stratalake/offline_server.h), parsed strictly.
// Only what the server acts on is kept; other keys (command_id, ...) are
// ignored. Every error is arrow::Status::Invalid naming the key and what it
// must be, or NotImplemented for an api StrataLake does not serve.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

namespace stratalake::flight {

/// Largest command text accepted, in bytes.
constexpr size_t kMaxCommandBytes = 1 << 20;

enum class OfflineApi {
  kGetHistoricalFeatures,
  kGetTableColumnNamesAndTypes,  // get_table_column_names_and_types_from_data_source
  kValidateDataSource,
  kPullAll,     // pull_all_from_table_or_query (Feast's materialization)
  kPullLatest,  // pull_latest_from_table_or_query (older materialization engines)
};

struct OfflineCommand {
  OfflineApi api = OfflineApi::kGetHistoricalFeatures;
  std::string api_name;  // as sent

  // get_historical_features
  std::vector<std::string> feature_view_names;
  std::vector<std::optional<std::string>> name_aliases;  // null = no alias
  std::vector<std::string> feature_refs;                 // "view_or_alias:feature"
  std::string project;
  bool full_feature_names = false;

  // validate_data_source, get_table_column_names_and_types_from_data_source:
  // the data source's name, from its JSON proto; pull_all_from_table_or_query:
  // data_source_name.
  std::string data_source_name;

  // pull_all_from_table_or_query, pull_latest_from_table_or_query: columns by the names the feature
  // views use (after the source's field_mapping), and the event-time range (inclusive; nullopt =
  // unbounded), in microseconds since the epoch, UTC.
  std::vector<std::string> join_key_columns;
  std::vector<std::string> feature_name_columns;
  std::string timestamp_field;
  std::string created_timestamp_column;  // "" = none
  std::optional<int64_t> start_us;
  std::optional<int64_t> end_us;
};

/// Parses a command. Errors: not JSON, not an object, over kMaxCommandBytes,
/// no "api" (Invalid); an api Feast defines that StrataLake does not serve, or
/// parameters it cannot honour (entity_df_sql, start_date/end_date without
/// entity rows) (NotImplemented, saying what to use instead); an unknown api
/// (Invalid, listing the served ones); a missing or mistyped parameter
/// (Invalid, naming it).
arrow::Result<OfflineCommand> ParseOfflineCommand(std::string_view text);

}  // namespace stratalake::flight
