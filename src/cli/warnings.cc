#include "warnings.h"

#include <iostream>

namespace stratalake::cli {

namespace {

// How rows get into a source, as a command.
std::string FillCommand(const Warning& w) {
  if (w.push_source) return "`stratalake push " + w.source + " FILE --to online_and_offline`";
  return "`stratalake ingest " + w.source + " FILE`";
}

}  // namespace

std::string WarningText(const Warning& w) {
  switch (w.code) {
    case Warning::Code::kSourceMissing:
      return "feature view '" + w.view + "' has no data: source '" + w.source +
             "' has no table yet; load it with " + FillCommand(w);
    case Warning::Code::kSourceEmpty:
      return "feature view '" + w.view + "' has no data: source '" + w.source +
             "' has no rows; load it with " + FillCommand(w);
    case Warning::Code::kAllFeaturesNull:
      if (w.rows_read == 0) {
        return "every feature is null in every row: the sources have no rows in the entity "
               "rows' time range; load data with `stratalake ingest SOURCE FILE`, or check "
               "--timestamp-column and the entity times";
      }
      return "every feature is null in every row: no feature row matched the entity keys at "
             "the entity times (within the views' ttl); check the join key values, "
             "--timestamp-column and the entity times";
    case Warning::Code::kNotMaterialized:
      if (w.push_source) {
        return "feature view '" + w.view + "' has nothing in the online store: push rows to '" +
               w.source + "' with `stratalake push " + w.source + " FILE`";
      }
      return "feature view '" + w.view +
             "' has nothing in the online store: run `stratalake materialize START END` (or "
             "`stratalake materialize-incremental now`)";
    case Warning::Code::kStoreUnavailable:
      return std::to_string(w.keys) + " key(s) of feature view '" + w.view +
             "' could not be read (status UNAVAILABLE): " + w.detail +
             "; the other keys were read. Bring the store node back, or retry";
  }
  return WarningCodeName(w.code);
}

void PrintWarnings(const std::vector<Warning>& warnings) {
  for (const auto& w : warnings) std::cerr << "warning: " << WarningText(w) << "\n";
}

void WriteWarningsJson(JsonWriter& w, const std::vector<Warning>& warnings) {
  w.StartArray();
  for (const auto& warning : warnings) {
    w.StartObject();
    w.Key("code");
    JStr(w, WarningCodeName(warning.code));
    w.Key("view");
    JStr(w, warning.view);
    w.Key("source");
    JStr(w, warning.source);
    w.Key("message");
    JStr(w, WarningText(warning));
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace stratalake::cli
