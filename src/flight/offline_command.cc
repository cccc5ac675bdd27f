#include "flight/offline_command.h"

#include <arrow/util/value_parsing.h>
#include <rapidjson/document.h>

#include "common/json.h"

namespace stratalake::flight {

namespace {

using Value = rapidjson::Value;

const char* const kServed =
    "get_historical_features, get_table_column_names_and_types_from_data_source, "
    "validate_data_source, pull_all_from_table_or_query, pull_latest_from_table_or_query";

std::string Quote(std::string_view s) {
  std::string out = "'";
  json::AppendEscaped(s.substr(0, 200), &out);
  return out + "'";
}

arrow::Status Bad(const std::string& api, const std::string& what) {
  return arrow::Status::Invalid("offline server: ", api, " command: ", what);
}

const Value* Member(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

arrow::Result<std::string> RequiredString(const Value& obj, const std::string& api,
                                          const char* key) {
  const Value* v = Member(obj, key);
  if (!v) return Bad(api, std::string("'") + key + "' is required");
  if (!v->IsString()) return Bad(api, std::string("'") + key + "' must be a string");
  return std::string(v->GetString(), v->GetStringLength());
}

arrow::Result<std::vector<std::string>> StringList(const Value& obj, const std::string& api,
                                                   const char* key) {
  const Value* v = Member(obj, key);
  if (!v) return Bad(api, std::string("'") + key + "' is required");
  if (!v->IsArray()) return Bad(api, std::string("'") + key + "' must be a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v->GetArray()) {
    if (!e.IsString()) {
      return Bad(api, std::string("'") + key + "' must be a list of strings");
    }
    out.emplace_back(e.GetString(), e.GetStringLength());
  }
  return out;
}

bool IsNullOrAbsent(const Value& obj, const char* key) {
  const Value* v = Member(obj, key);
  return !v || v->IsNull();
}

arrow::Status ParseHistorical(const Value& doc, OfflineCommand* cmd) {
  const std::string& api = cmd->api_name;
  ARROW_ASSIGN_OR_RAISE(cmd->feature_view_names, StringList(doc, api, "feature_view_names"));
  ARROW_ASSIGN_OR_RAISE(cmd->feature_refs, StringList(doc, api, "feature_refs"));
  if (cmd->feature_refs.empty()) return Bad(api, "'feature_refs' must name at least one feature");
  const Value* aliases = Member(doc, "name_aliases");
  if (!aliases) return Bad(api, "'name_aliases' is required");
  if (!aliases->IsArray()) return Bad(api, "'name_aliases' must be a list of strings or nulls");
  for (const auto& e : aliases->GetArray()) {
    if (e.IsNull()) {
      cmd->name_aliases.emplace_back(std::nullopt);
    } else if (e.IsString()) {
      cmd->name_aliases.emplace_back(std::string(e.GetString(), e.GetStringLength()));
    } else {
      return Bad(api, "'name_aliases' must be a list of strings or nulls");
    }
  }
  if (cmd->name_aliases.size() != cmd->feature_view_names.size()) {
    return Bad(api, "'name_aliases' must have one entry per feature view (" +
                        std::to_string(cmd->feature_view_names.size()) + "), not " +
                        std::to_string(cmd->name_aliases.size()));
  }
  ARROW_ASSIGN_OR_RAISE(cmd->project, RequiredString(doc, api, "project"));
  const Value* full = Member(doc, "full_feature_names");
  if (!full) return Bad(api, "'full_feature_names' is required");
  if (!full->IsBool()) return Bad(api, "'full_feature_names' must be true or false");
  cmd->full_feature_names = full->GetBool();
  if (!IsNullOrAbsent(doc, "entity_df_sql")) {
    return arrow::Status::NotImplemented(
        "offline server: get_historical_features with entity_df given as SQL is not supported "
        "by StrataLake; pass the entity rows as a pandas DataFrame (or pyarrow Table)");
  }
  if (!IsNullOrAbsent(doc, "start_date") || !IsNullOrAbsent(doc, "end_date")) {
    return arrow::Status::NotImplemented(
        "offline server: get_historical_features by start_date/end_date is not supported by "
        "StrataLake; pass entity rows with an event_timestamp column instead");
  }
  return arrow::Status::OK();
}

// Feast sends the data source as its protobuf in JSON (json_format); only its
// name is needed to find the source in the registry.
arrow::Status ParseDataSource(const Value& doc, OfflineCommand* cmd) {
  const std::string& api = cmd->api_name;
  ARROW_ASSIGN_OR_RAISE(std::string proto, RequiredString(doc, api, "data_source_proto"));
  rapidjson::Document ds;
  auto st = json::ParseJson(&ds, proto);
  if (!st.ok()) return Bad(api, "'data_source_proto' is not JSON: " + st.message());
  if (!ds.IsObject()) return Bad(api, "'data_source_proto' must be a JSON object");
  ARROW_ASSIGN_OR_RAISE(cmd->data_source_name, RequiredString(ds, api, "name"));
  if (cmd->data_source_name.empty()) return Bad(api, "the data source has no name");
  return arrow::Status::OK();
}

// An ISO 8601 time (Python's isoformat(): "2026-06-01T00:00:00+00:00", with
// or without fraction or offset; no offset = UTC) in microseconds, or nullopt
// for null / absent.
arrow::Result<std::optional<int64_t>> OptionalTime(const Value& obj, const std::string& api,
                                                   const char* key) {
  const Value* v = Member(obj, key);
  if (!v || v->IsNull()) return std::optional<int64_t>();
  if (!v->IsString()) return Bad(api, std::string("'") + key + "' must be an ISO 8601 string");
  static const auto parser = arrow::TimestampParser::MakeISO8601();
  int64_t us = 0;
  if (!(*parser)(v->GetString(), v->GetStringLength(), arrow::TimeUnit::MICRO, &us)) {
    return Bad(api, std::string("'") + key + "' is not an ISO 8601 time: " +
                        Quote(std::string_view(v->GetString(), v->GetStringLength())));
  }
  return std::optional<int64_t>(us);
}

arrow::Status ParsePullAll(const Value& doc, OfflineCommand* cmd) {
  const std::string& api = cmd->api_name;
  ARROW_ASSIGN_OR_RAISE(cmd->data_source_name, RequiredString(doc, api, "data_source_name"));
  ARROW_ASSIGN_OR_RAISE(cmd->join_key_columns, StringList(doc, api, "join_key_columns"));
  ARROW_ASSIGN_OR_RAISE(cmd->feature_name_columns, StringList(doc, api, "feature_name_columns"));
  ARROW_ASSIGN_OR_RAISE(cmd->timestamp_field, RequiredString(doc, api, "timestamp_field"));
  if (cmd->timestamp_field.empty()) return Bad(api, "'timestamp_field' must name a column");
  if (!IsNullOrAbsent(doc, "created_timestamp_column")) {
    ARROW_ASSIGN_OR_RAISE(cmd->created_timestamp_column,
                          RequiredString(doc, api, "created_timestamp_column"));
  }
  ARROW_ASSIGN_OR_RAISE(cmd->start_us, OptionalTime(doc, api, "start_date"));
  ARROW_ASSIGN_OR_RAISE(cmd->end_us, OptionalTime(doc, api, "end_date"));
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<OfflineCommand> ParseOfflineCommand(std::string_view text) {
  if (text.size() > kMaxCommandBytes) {
    return arrow::Status::Invalid("offline server: the command is ", text.size(),
                                  " bytes; at most ", kMaxCommandBytes, " are accepted");
  }
  rapidjson::Document doc;
  auto st = json::ParseJson(&doc, text, json::Strict());
  if (!st.ok()) {
    return arrow::Status::Invalid(
        "offline server: the Flight command must be Feast's JSON object: ", st.message());
  }
  if (!doc.IsObject()) {
    return arrow::Status::Invalid("offline server: the Flight command must be a JSON object");
  }
  const Value* api = Member(doc, "api");
  if (!api || !api->IsString() || api->GetStringLength() == 0) {
    return arrow::Status::Invalid("offline server: the command has no 'api' (one of ", kServed,
                                  ")");
  }
  OfflineCommand cmd;
  cmd.api_name.assign(api->GetString(), api->GetStringLength());
  const std::string& name = cmd.api_name;
  if (name == "get_historical_features") {
    cmd.api = OfflineApi::kGetHistoricalFeatures;
    ARROW_RETURN_NOT_OK(ParseHistorical(doc, &cmd));
    return cmd;
  }
  if (name == "get_table_column_names_and_types_from_data_source" ||
      name == "validate_data_source") {
    cmd.api = name == "validate_data_source" ? OfflineApi::kValidateDataSource
                                             : OfflineApi::kGetTableColumnNamesAndTypes;
    ARROW_RETURN_NOT_OK(ParseDataSource(doc, &cmd));
    return cmd;
  }
  if (name == "pull_all_from_table_or_query") {
    cmd.api = OfflineApi::kPullAll;
    ARROW_RETURN_NOT_OK(ParsePullAll(doc, &cmd));
    return cmd;
  }
  if (name == "pull_latest_from_table_or_query") {
    cmd.api = OfflineApi::kPullLatest;
    ARROW_RETURN_NOT_OK(ParsePullAll(doc, &cmd));
    return cmd;
  }
  if (name == "persist") {
    return arrow::Status::NotImplemented(
        "offline server: persist is not supported by StrataLake; save training sets with "
        "`stratalake get-historical --save-as NAME`");
  }
  if (name == "offline_write_batch" || name == "write_logged_features") {
    return arrow::Status::NotImplemented(
        "offline server: ", name,
        " is not supported by StrataLake (it does not write through Flight); load rows with "
        "`stratalake ingest` or push them to the feature server's /push");
  }
  return arrow::Status::Invalid("offline server: unknown api ", Quote(name), " (served: ", kServed,
                                ")");
}

}  // namespace stratalake::flight
