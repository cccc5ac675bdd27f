// YAML definitions -> Definitions, with a location on every object and field.
#include "registry/loader.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include <arrow/api.h>
#include <yaml-cpp/yaml.h>

namespace stratalake::registry {

namespace {

class Parser {
 public:
  Parser(std::string file, std::vector<std::string>* problems)
      : file_(std::move(file)), problems_(problems) {}

  SourceLocation Loc(const YAML::Node& n) const {
    SourceLocation loc;
    loc.file = file_;
    if (!n.IsDefined()) return loc;  // Mark() throws on a missing key's node
    YAML::Mark m = n.Mark();
    if (m.line >= 0) {
      loc.line = m.line + 1;
      loc.column = m.column + 1;
    }
    return loc;
  }

  void Problem(const YAML::Node& n, const std::string& msg) {
    problems_->push_back(Loc(n).ToString() + ": " + msg);
  }

  // Checks that `n` is a mapping whose keys are all in `allowed`.
  bool CheckMap(const YAML::Node& n, const std::string& what,
                const std::set<std::string>& allowed) {
    if (!n.IsMap()) {
      Problem(n, what + " must be a mapping of keys to values");
      return false;
    }
    std::string label = what;
    if (n["name"] && n["name"].IsScalar()) label += " '" + n["name"].Scalar() + "'";
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.Scalar();
      if (!allowed.count(k)) {
        std::string known;
        for (const auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
        Problem(it->first, label + ": unknown key '" + k + "' (known keys: " + known + ")");
      }
    }
    return true;
  }

  std::string Str(const YAML::Node& map, const char* key, const std::string& what,
                  bool required = false) {
    YAML::Node v = map[key];
    if (!v || v.IsNull()) {
      if (required) Problem(map, what + ": missing required key '" + key + "'");
      return "";
    }
    if (!v.IsScalar()) {
      Problem(v, what + ": '" + key + "' must be a single value");
      return "";
    }
    return v.Scalar();
  }

  bool Bool(const YAML::Node& map, const char* key, const std::string& what, bool dflt) {
    YAML::Node v = map[key];
    if (!v || v.IsNull()) return dflt;
    std::string s = v.IsScalar() ? v.Scalar() : "";
    if (s == "true" || s == "True" || s == "yes") return true;
    if (s == "false" || s == "False" || s == "no") return false;
    Problem(v, what + ": '" + key + "' must be true or false, not '" + s + "'");
    return dflt;
  }

  std::vector<std::string> StrList(const YAML::Node& map, const char* key,
                                   const std::string& what) {
    std::vector<std::string> out;
    YAML::Node v = map[key];
    if (!v || v.IsNull()) return out;
    if (v.IsScalar()) return {v.Scalar()};
    if (!v.IsSequence()) {
      Problem(v, what + ": '" + key + "' must be a list");
      return out;
    }
    for (const auto& e : v) {
      if (!e.IsScalar()) {
        Problem(e, what + ": every entry of '" + key + "' must be a name");
        continue;
      }
      out.push_back(e.Scalar());
    }
    return out;
  }

  std::map<std::string, std::string> StrMap(const YAML::Node& map, const char* key,
                                            const std::string& what) {
    std::map<std::string, std::string> out;
    YAML::Node v = map[key];
    if (!v || v.IsNull()) return out;
    if (!v.IsMap()) {
      Problem(v, what + ": '" + key + "' must be a mapping");
      return out;
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!it->second.IsScalar()) {
        Problem(it->second, what + ": values of '" + key + "' must be single values");
        continue;
      }
      out[it->first.Scalar()] = it->second.Scalar();
    }
    return out;
  }

  std::shared_ptr<arrow::DataType> Type(const YAML::Node& n, const std::string& what) {
    if (!n || !n.IsScalar()) {
      Problem(n, what + ": missing 'type'");
      return nullptr;
    }
    auto t = ParseFeatureType(n.Scalar());
    if (!t.ok()) {
      Problem(n, what + ": " + t.status().message());
      return nullptr;
    }
    return *t;
  }

  // The list of mappings at map[key] (the features of an on-demand view, the
  // aggregations of a window view): calls `entry` on each entry whose keys are
  // all in `allowed` ("WHAT NOUN: unknown key ..." otherwise). A missing list is
  // a problem only when `required`; a value that is not a list always is.
  template <typename Fn>
  void EachEntry(const YAML::Node& map, const char* key, const std::string& what,
                 const std::string& noun, const std::set<std::string>& allowed, bool required,
                 Fn&& entry) {
    YAML::Node list = map[key];
    if (!list || list.IsNull()) {
      if (required) Problem(map, what + ": missing required key '" + key + "'");
      return;
    }
    if (!list.IsSequence()) {
      Problem(list, what + ": '" + key + "' must be a list");
      return;
    }
    for (const auto& e : list) {
      if (CheckMap(e, what + " " + noun, allowed)) entry(e);
    }
  }

  // The optional `description` and `tags` of a feature entry.
  void FieldNotes(const YAML::Node& e, const std::string& what, Field* f) {
    f->description = Str(e, "description", what);
    f->tags = StrMap(e, "tags", what);
  }

  // A field list: entries are {name, type, ...} mappings or "name: type" pairs.
  std::vector<Field> Fields(const YAML::Node& map, const char* key, const std::string& what,
                            bool allow_nullable) {
    std::vector<Field> out;
    YAML::Node v = map[key];
    if (!v || v.IsNull()) return out;
    if (!v.IsSequence()) {
      Problem(v, what + ": '" + key + "' must be a list");
      return out;
    }
    std::set<std::string> allowed = {"name", "type", "description", "tags"};
    if (allow_nullable) allowed.insert("nullable");
    for (const auto& e : v) {
      Field f;
      f.loc = Loc(e);
      if (e.IsMap() && e.size() == 1 && !e["name"]) {
        // Short form: "- amount: float64"
        auto it = e.begin();
        f.name = it->first.Scalar();
        f.type = Type(it->second, what + " field '" + f.name + "'");
        out.push_back(std::move(f));
        continue;
      }
      if (!CheckMap(e, what + " field", allowed)) continue;
      f.name = Str(e, "name", what + " field", true);
      std::string fwhat = what + " field '" + f.name + "'";
      f.type = Type(e["type"] ? e["type"] : e, fwhat);
      if (allow_nullable) f.nullable = Bool(e, "nullable", fwhat, true);
      f.description = Str(e, "description", fwhat);
      f.tags = StrMap(e, "tags", fwhat);
      out.push_back(std::move(f));
    }
    return out;
  }

  void ParseEntity(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(n, "entity", {"name", "join_keys", "description", "owner", "tags"})) return;
    Entity e;
    e.loc = Loc(n);
    e.name = Str(n, "name", "entity", true);
    std::string what = "entity '" + e.name + "'";
    e.join_keys = Fields(n, "join_keys", what, false);
    if (!n["join_keys"]) Problem(n, what + ": missing required key 'join_keys'");
    e.description = Str(n, "description", what);
    e.owner = Str(n, "owner", what);
    e.tags = StrMap(n, "tags", what);
    defs->entities.push_back(std::move(e));
  }

  void ParseSource(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(
            n, "source",
            {"name", "type", "path", "timestamp_field", "created_timestamp_field", "field_mapping",
             "schema", "checks", "partition_by", "kafka", "description", "owner", "tags"})) {
      return;
    }
    Source s;
    s.loc = Loc(n);
    s.name = Str(n, "name", "source", true);
    std::string what = "source '" + s.name + "'";
    std::string type = Str(n, "type", what);
    if (type.empty() || type == "delta") {
      s.type = SourceType::kDelta;
    } else if (type == "parquet") {
      s.type = SourceType::kParquet;
    } else if (type == "push") {
      s.type = SourceType::kPush;
    } else if (type == "kafka") {
      s.type = SourceType::kKafka;
    } else {
      Problem(n["type"],
              what + ": unknown type '" + type + "' (use delta, parquet, push or kafka)");
    }
    s.path = Str(n, "path", what, true);
    s.timestamp_field = Str(n, "timestamp_field", what);
    s.created_timestamp_field = Str(n, "created_timestamp_field", what);
    s.field_mapping = StrMap(n, "field_mapping", what);
    s.schema = Fields(n, "schema", what, true);
    YAML::Node checks = n["checks"];
    if (checks && !checks.IsNull()) {
      if (!checks.IsSequence()) {
        Problem(checks, what + ": 'checks' must be a list");
      } else {
        for (const auto& c : checks) {
          if (c.IsScalar()) {
            s.checks.push_back({"", c.Scalar()});
          } else if (CheckMap(c, what + " check", {"name", "expr"})) {
            s.checks.push_back(
                {Str(c, "name", what + " check"), Str(c, "expr", what + " check", true)});
          }
        }
      }
    }
    s.partition_by = StrList(n, "partition_by", what);
    YAML::Node kafka = n["kafka"];
    if (s.type == SourceType::kKafka) {
      if (!kafka || kafka.IsNull()) {
        Problem(n, what + ": kafka sources need a 'kafka' mapping (brokers, topic)");
      } else if (CheckMap(kafka, what + " kafka",
                          {"brokers", "topic", "format", "columns", "allowed_lateness",
                           "avro_schema", "avro_schema_file"})) {
        std::string kwhat = what + " kafka";
        s.kafka.brokers = Str(kafka, "brokers", kwhat, true);
        s.kafka.topic = Str(kafka, "topic", kwhat, true);
        std::string format = Str(kafka, "format", kwhat);
        if (!format.empty() && format != "json" && format != "avro" && format != "avro-confluent") {
          Problem(kafka["format"], kwhat + ": unknown format '" + format +
                                       "' (formats: json, avro, avro-confluent)");
        } else if (!format.empty()) {
          s.kafka.format = format;
        }
        s.kafka.avro_schema = Str(kafka, "avro_schema", kwhat);
        s.kafka.avro_schema_file = Str(kafka, "avro_schema_file", kwhat);
        const bool avro = s.kafka.format != "json";
        const int schemas = !s.kafka.avro_schema.empty() + !s.kafka.avro_schema_file.empty();
        if (avro && schemas != 1) {
          Problem(kafka, kwhat + ": format '" + s.kafka.format +
                             "' needs exactly one of 'avro_schema' (the schema's JSON) and "
                             "'avro_schema_file' (a file under the repository)");
        } else if (!avro && schemas > 0) {
          Problem(kafka[s.kafka.avro_schema.empty() ? "avro_schema_file" : "avro_schema"],
                  kwhat + ": an Avro schema is only for format avro or avro-confluent");
        }
        s.kafka.columns = StrMap(kafka, "columns", kwhat);
        std::string lateness = Str(kafka, "allowed_lateness", kwhat);
        if (!lateness.empty()) {
          auto secs = ParseDuration(lateness);
          if (secs.ok()) {
            s.kafka.allowed_lateness_seconds = *secs;
          } else {
            Problem(kafka["allowed_lateness"], kwhat + ": " + secs.status().message());
          }
        }
      }
    } else if (kafka && !kafka.IsNull()) {
      Problem(kafka, what + ": 'kafka' is only for sources of type kafka");
    }
    s.description = Str(n, "description", what);
    s.owner = Str(n, "owner", what);
    s.tags = StrMap(n, "tags", what);
    defs->sources.push_back(std::move(s));
  }

  void ParseFeatureView(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(n, "feature view",
                  {"name", "entities", "source", "features", "aggregations", "ttl", "online",
                   "owner", "description", "tags"})) {
      return;
    }
    FeatureView v;
    v.loc = Loc(n);
    v.name = Str(n, "name", "feature view", true);
    std::string what = "feature view '" + v.name + "'";
    v.entities = StrList(n, "entities", what);
    v.source = Str(n, "source", what, true);
    v.features = Fields(n, "features", what, false);
    Aggregations(n, what, &v);
    if (!n["features"] && !n["aggregations"]) {
      Problem(n,
              what + ": missing required key 'features' (or 'aggregations' for window features)");
    }
    if (n["features"] && n["aggregations"]) {
      Problem(n["aggregations"], what +
                                     ": has both 'features' and 'aggregations'; put window "
                                     "aggregations in a feature view of their own");
    }
    std::string ttl = Str(n, "ttl", what);
    if (!ttl.empty()) {
      auto secs = ParseDuration(ttl);
      if (secs.ok()) {
        v.ttl_seconds = *secs;
      } else {
        Problem(n["ttl"], what + ": " + secs.status().message());
      }
    }
    v.online = Bool(n, "online", what, true);
    v.owner = Str(n, "owner", what);
    v.description = Str(n, "description", what);
    v.tags = StrMap(n, "tags", what);
    defs->feature_views.push_back(std::move(v));
  }

  // A window view's aggregations; each also becomes a feature of the view (its
  // name, AggregationType), so requests resolve window features like any other.
  void Aggregations(const YAML::Node& n, const std::string& what, FeatureView* v) {
    EachEntry(
        n, "aggregations", what, "aggregation",
        {"name", "function", "column", "window", "k", "percentile", "filter", "description",
         "tags"},
        /*required=*/false, [&](const YAML::Node& e) {
          Aggregation a;
          a.loc = Loc(e);
          a.name = Str(e, "name", what + " aggregation", true);
          std::string awhat = what + " aggregation '" + a.name + "'";
          std::string fn = Str(e, "function", awhat, true);
          if (!fn.empty()) {
            auto f = ParseAggregationFunction(fn);
            if (f.ok()) {
              a.function = *f;
            } else {
              Problem(e["function"], awhat + ": " + f.status().message());
            }
          }
          a.column = Str(e, "column", awhat, true);
          std::string window = Str(e, "window", awhat, true);
          if (!window.empty()) {
            auto secs = ParseDuration(window);
            if (!secs.ok()) {
              Problem(e["window"], awhat + ": " + secs.status().message());
            } else if (*secs <= 0) {
              Problem(e["window"], awhat + ": the window must be longer than 0, e.g. 5m, 1h or 7d");
            } else {
              a.window_seconds = *secs;
            }
          }
          std::string k = Str(e, "k", awhat);
          if (a.function == AggregationFunction::kLastK) {
            int64_t kv = 0;
            bool ok = !k.empty() && k.size() <= 6 &&
                      std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (ok) kv = std::stoll(k);
            if (!ok || kv < 1 || kv > 1000) {
              Problem(e["k"] ? e["k"] : e,
                      awhat + ": last_k needs 'k', a whole number from 1 to 1000");
            } else {
              a.k = static_cast<int32_t>(kv);
            }
          } else if (!k.empty()) {
            Problem(e["k"], awhat + ": 'k' is only for the function last_k");
          }
          std::string q = Str(e, "percentile", awhat);
          if (a.function == AggregationFunction::kPercentile) {
            char* end = nullptr;
            double qv = q.empty() ? -1 : std::strtod(q.c_str(), &end);
            if (q.empty() || end != q.c_str() + q.size() || !(qv >= 0 && qv <= 1)) {
              Problem(
                  e["percentile"] ? e["percentile"] : e,
                  awhat + ": percentile needs 'percentile', a quantile from 0 to 1 (0.5 = median)");
            } else {
              a.percentile = qv;
            }
          } else if (!q.empty()) {
            Problem(e["percentile"], awhat + ": 'percentile' is only for the function percentile");
          }
          a.filter = Str(e, "filter", awhat);
          Field f;
          f.name = a.name;
          f.type = AggregationType(a);
          FieldNotes(e, awhat, &f);
          f.loc = a.loc;
          v->features.push_back(std::move(f));
          v->aggregations.push_back(std::move(a));
        });
  }

  void ParseFeatureService(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(n, "feature service",
                  {"name", "features", "include", "description", "owner", "tags"})) {
      return;
    }
    FeatureService s;
    s.loc = Loc(n);
    s.name = Str(n, "name", "feature service", true);
    std::string what = "feature service '" + s.name + "'";
    YAML::Node feats = n["features"];
    if (feats && !feats.IsSequence()) {
      Problem(feats, what + ": 'features' must be a list");
    } else if (feats) {
      for (const auto& e : feats) {
        FeatureServiceItem item;
        item.loc = Loc(e);
        if (e.IsScalar()) {
          std::string ref = e.Scalar();
          auto colon = ref.find(':');
          item.view = ref.substr(0, colon);
          if (colon != std::string::npos) item.features.push_back(ref.substr(colon + 1));
          if (colon != std::string::npos && item.features.back().empty()) {
            Problem(e, what + ": '" + ref + "' names no feature; write VIEW:FEATURE or VIEW");
            continue;
          }
        } else if (CheckMap(e, what + " entry", {"view", "features", "alias", "join_key_map"})) {
          item.view = Str(e, "view", what + " entry", true);
          item.features = StrList(e, "features", what + " entry");
          item.alias = Str(e, "alias", what + " entry");
          item.join_key_map = StrMap(e, "join_key_map", what + " entry");
        } else {
          continue;
        }
        // Merge "view:a", "view:b" (same alias and key map) into one item when
        // they follow each other; otherwise the items keep the declared order,
        // which is the order of a training set's columns.
        bool merged = false;
        if (!s.items.empty()) {
          auto& prev = s.items.back();
          if (prev.view == item.view && prev.alias == item.alias &&
              prev.join_key_map == item.join_key_map && !prev.features.empty() &&
              !item.features.empty()) {
            prev.features.insert(prev.features.end(), item.features.begin(), item.features.end());
            merged = true;
          }
        }
        if (!merged) s.items.push_back(std::move(item));
      }
    }
    s.includes = StrList(n, "include", what);
    if (s.items.empty() && s.includes.empty()) {
      Problem(n, what + ": lists no features; add 'features' (VIEW or VIEW:FEATURE entries)");
    }
    s.description = Str(n, "description", what);
    s.owner = Str(n, "owner", what);
    s.tags = StrMap(n, "tags", what);
    defs->feature_services.push_back(std::move(s));
  }

  void ParseTransformation(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(n, "transformation",
                  {"name", "sql", "python", "kind", "inputs", "output", "mode", "keys", "order_by",
                   "schema", "partition_by", "on_change", "input_keys", "description", "owner",
                   "tags"})) {
      return;
    }
    Transformation t;
    t.loc = Loc(n);
    t.name = Str(n, "name", "transformation", true);
    std::string what = "transformation '" + t.name + "'";
    if (n["python"]) {
      ParsePythonFunction(n, what, &t);
    } else {
      t.sql = Str(n, "sql", what, true);
      t.sql_loc = n["sql"] ? Loc(n["sql"]) : t.loc;
      for (const char* key : {"kind", "inputs"}) {
        if (n[key]) {
          Problem(n[key], what + ": '" + key +
                              "' applies to Python transformations (python: FILE.py:FUNCTION); "
                              "a SQL transformation reads the tables its SQL names");
        }
      }
    }
    t.output = Str(n, "output", what, true);
    // "silver.orders" and "silver/orders" name the same table.
    if (t.output.find('/') == std::string::npos && t.output.find(':') == std::string::npos) {
      auto dot = t.output.find('.');
      if (dot != std::string::npos) t.output[dot] = '/';
    }
    if (!t.output.empty()) {
      static const std::set<std::string> kLayers = {"bronze", "silver", "gold", "datasets",
                                                    "quarantine"};
      const auto slash = t.output.find('/');
      if (slash == std::string::npos || slash + 1 == t.output.size() ||
          t.output.find('/', slash + 1) != std::string::npos ||
          !kLayers.count(t.output.substr(0, slash))) {
        Problem(n["output"], what + ": output '" + n["output"].Scalar() +
                                 "' must be LAYER.TABLE with LAYER one of bronze, silver, gold, "
                                 "datasets, quarantine (e.g. silver.orders)");
      }
    }
    std::string mode = Str(n, "mode", what);
    if (mode.empty() || mode == "full_refresh") {
      t.mode = TransformMode::kFullRefresh;
    } else if (mode == "append") {
      t.mode = TransformMode::kAppend;
    } else if (mode == "merge") {
      t.mode = TransformMode::kMerge;
    } else {
      Problem(n["mode"],
              what + ": unknown mode '" + mode + "' (use full_refresh, append or merge)");
    }
    t.keys = StrList(n, "keys", what);
    t.order_by = Str(n, "order_by", what);
    if (t.mode == TransformMode::kMerge && t.keys.empty()) {
      Problem(n, what + ": mode 'merge' needs 'keys' (the columns that identify a row)");
    }
    if (t.mode != TransformMode::kMerge && (!t.keys.empty() || !t.order_by.empty())) {
      Problem(n["keys"] ? n["keys"] : n["order_by"],
              what + ": 'keys' and 'order_by' apply to mode 'merge' only");
    }
    t.schema = Fields(n, "schema", what, true);
    t.partition_by = StrList(n, "partition_by", what);
    const std::string on_change = Str(n, "on_change", what);
    if (on_change.empty() || on_change == "full_refresh") {
      t.on_change = OnChange::kFullRefresh;
    } else if (on_change == "keys") {
      t.on_change = OnChange::kKeys;
    } else if (on_change == "partitions") {
      t.on_change = OnChange::kPartitions;
    } else if (on_change == "fail") {
      t.on_change = OnChange::kFail;
    } else {
      Problem(n["on_change"], what + ": unknown on_change '" + on_change +
                                  "' (use full_refresh, keys, partitions or fail)");
    }
    if (t.on_change == OnChange::kKeys && t.mode != TransformMode::kMerge) {
      Problem(n["on_change"], what +
                                  ": on_change 'keys' applies to mode 'merge' only (the keys "
                                  "say which rows to recompute)");
    }
    if (t.on_change == OnChange::kPartitions && t.partition_by.empty()) {
      Problem(n["on_change"], what +
                                  ": on_change 'partitions' needs 'partition_by' (columns "
                                  "that partition both the input and the output)");
    }
    if (t.on_change == OnChange::kPartitions && t.mode == TransformMode::kMerge) {
      Problem(n["on_change"], what +
                                  ": on_change 'partitions' applies to mode 'append'; a merge "
                                  "recomputes by key (on_change: keys)");
    }
    if (n["on_change"] && t.mode == TransformMode::kFullRefresh) {
      Problem(n["on_change"], what +
                                  ": 'on_change' applies to modes 'append' and 'merge' (mode "
                                  "full_refresh recomputes everything on every run)");
    }
    ParseInputKeys(n, what, &t);
    t.description = Str(n, "description", what);
    t.owner = Str(n, "owner", what);
    t.tags = StrMap(n, "tags", what);
    defs->transformations.push_back(std::move(t));
  }

  // python: FILE.py:FUNCTION (a file inside the repository, relative to its root),
  // with kind and inputs; the file is read later (ResolvePythonSources).
  void ParsePythonFunction(const YAML::Node& n, const std::string& what, Transformation* t) {
    t->sql_loc = Loc(n["python"]);
    if (n["sql"]) {
      Problem(n["sql"], what +
                            ": has both 'sql' and 'python'; a transformation is computed by "
                            "one of them");
    }
    const std::string ref = Str(n, "python", what, true);
    const auto colon = ref.rfind(':');
    const std::string file = colon == std::string::npos ? ref : ref.substr(0, colon);
    const std::string fn = colon == std::string::npos ? "" : ref.substr(colon + 1);
    bool identifier = !fn.empty() && !std::isdigit(static_cast<unsigned char>(fn[0]));
    for (char c : fn) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') identifier = false;
    }
    if (ref.empty()) return;  // Str reported it
    if (file.size() < 4 || file.substr(file.size() - 3) != ".py" || !identifier) {
      Problem(n["python"], what + ": python '" + ref +
                               "' must be FILE.py:FUNCTION, a Python file of the repository "
                               "(relative to its root) and a function it defines, e.g. "
                               "transformations/orders.py:silver_orders");
      return;
    }
    const std::filesystem::path path(file);
    bool escapes = path.is_absolute();
    for (const auto& part : path) escapes = escapes || part == "..";
    if (escapes) {
      Problem(n["python"], what + ": python file '" + file +
                               "' must be inside the repository, relative to its root "
                               "(e.g. transformations/orders.py)");
      return;
    }
    t->python_file = path.lexically_normal().generic_string();
    t->python_function = fn;
    t->kind = Str(n, "kind", what);
    if (t->kind.empty()) t->kind = "pandas";
    if (t->kind == "pyarrow") t->kind = "arrow";
    if (t->kind != "pandas" && t->kind != "polars" && t->kind != "arrow") {
      Problem(n["kind"], what + ": unknown kind '" + t->kind +
                             "' (use pandas, polars or arrow: what the function is handed)");
    }
    t->inputs = StrList(n, "inputs", what);
    if (t->inputs.empty()) {
      Problem(n, what +
                     ": a Python transformation names the tables it reads: inputs: "
                     "[bronze.orders] (handed to the function in that order)");
    }
    static const std::set<std::string> kLayers = {"bronze", "silver", "gold", "datasets",
                                                  "quarantine"};
    for (auto& in : t->inputs) {
      std::string p = in;
      if (p.find('/') == std::string::npos) {
        const auto dot = p.find('.');
        if (dot != std::string::npos) p[dot] = '/';
      }
      const auto slash = p.find('/');
      if (slash == std::string::npos || slash + 1 == p.size() ||
          p.find('/', slash + 1) != std::string::npos || !kLayers.count(p.substr(0, slash))) {
        Problem(n["inputs"], what + ": input '" + in +
                                 "' must be LAYER.TABLE with LAYER one of bronze, silver, gold, "
                                 "datasets, quarantine (e.g. bronze.orders)");
      }
      in = p;
    }
  }

  // input_keys: {LAYER.TABLE: [columns]} for on_change keys / partitions; each list
  // names the input's columns for the keys (or partition_by) in order, or is empty.
  void ParseInputKeys(const YAML::Node& n, const std::string& what, Transformation* t) {
    YAML::Node v = n["input_keys"];
    if (!v || v.IsNull()) return;
    if (t->on_change != OnChange::kKeys && t->on_change != OnChange::kPartitions) {
      Problem(v, what +
                     ": 'input_keys' applies to on_change 'keys' or 'partitions' (it says which "
                     "columns of each input hold the keys or partition values to recompute)");
      return;
    }
    if (!v.IsMap()) {
      Problem(v, what +
                     ": 'input_keys' must be a mapping of input tables to column lists, e.g. "
                     "{bronze.customers: [id]}");
      return;
    }
    const bool keys = t->on_change == OnChange::kKeys;
    const std::vector<std::string>& by = keys ? t->keys : t->partition_by;
    std::string by_names;
    for (const auto& b : by) by_names += (by_names.empty() ? "" : ", ") + b;
    for (auto it = v.begin(); it != v.end(); ++it) {
      Transformation::InputKeys ik;
      ik.loc = Loc(it->first);
      ik.table = it->first.Scalar();
      if (ik.table.find('/') == std::string::npos) {
        auto dot = ik.table.find('.');
        if (dot != std::string::npos) ik.table[dot] = '/';
      }
      static const std::set<std::string> kLayers = {"bronze", "silver", "gold", "datasets",
                                                    "quarantine"};
      const auto slash = ik.table.find('/');
      if (slash == std::string::npos || !kLayers.count(ik.table.substr(0, slash))) {
        Problem(it->first, what + ": input_keys names '" + it->first.Scalar() +
                               "', which is not a table LAYER.TABLE (e.g. bronze.customers)");
        continue;
      }
      const YAML::Node cols = it->second;
      if (cols.IsSequence()) {
        for (const auto& c : cols) {
          if (!c.IsScalar()) {
            Problem(c, what + ": every entry of input_keys '" + it->first.Scalar() +
                           "' must be a column name");
            continue;
          }
          ik.columns.push_back(c.Scalar());
        }
      } else if (cols.IsScalar()) {
        ik.columns.push_back(cols.Scalar());
      } else if (!cols.IsNull()) {
        Problem(cols, what + ": input_keys '" + it->first.Scalar() + "' must be a list of columns");
        continue;
      }
      if (!ik.columns.empty() && ik.columns.size() != by.size()) {
        Problem(cols, what + ": input_keys '" + it->first.Scalar() + "' lists " +
                          std::to_string(ik.columns.size()) + " column(s) but the " +
                          (keys ? "keys are " : "partition_by columns are ") + by_names +
                          "; name one column of the input for each, in order (or [] when its "
                          "rows map to none)");
        continue;
      }
      bool dup = false;
      for (const auto& x : t->input_keys) dup = dup || x.table == ik.table;
      if (dup) {
        Problem(it->first, what + ": input_keys names " + ik.table + " twice");
        continue;
      }
      t->input_keys.push_back(std::move(ik));
    }
  }

  void ParseRequestSource(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(n, "request source", {"name", "schema", "description", "owner", "tags"})) return;
    RequestSource s;
    s.loc = Loc(n);
    s.name = Str(n, "name", "request source", true);
    std::string what = "request source '" + s.name + "'";
    s.schema = Fields(n, "schema", what, false);
    if (!n["schema"]) Problem(n, what + ": missing required key 'schema' (the request fields)");
    s.description = Str(n, "description", what);
    s.owner = Str(n, "owner", what);
    s.tags = StrMap(n, "tags", what);
    defs->request_sources.push_back(std::move(s));
  }

  void ParseOnDemandFeatureView(const YAML::Node& n, Definitions* defs) {
    if (!CheckMap(n, "on-demand feature view",
                  {"name", "sources", "features", "description", "owner", "tags"})) {
      return;
    }
    OnDemandFeatureView v;
    v.loc = Loc(n);
    v.name = Str(n, "name", "on-demand feature view", true);
    std::string what = "on-demand feature view '" + v.name + "'";
    v.sources = StrList(n, "sources", what);
    if (!n["sources"]) {
      Problem(n, what + ": missing required key 'sources' (request sources and feature views)");
    }
    EachEntry(n, "features", what, "feature", {"name", "type", "expression", "description", "tags"},
              /*required=*/true, [&](const YAML::Node& e) {
                OnDemandFeature f;
                f.field.loc = Loc(e);
                f.field.name = Str(e, "name", what + " feature", true);
                std::string fwhat = what + " feature '" + f.field.name + "'";
                f.field.type = Type(e["type"], fwhat);
                f.expression = Str(e, "expression", fwhat, true);
                f.expression_loc = e["expression"] ? Loc(e["expression"]) : f.field.loc;
                FieldNotes(e, fwhat, &f.field);
                v.features.push_back(std::move(f));
              });
    v.description = Str(n, "description", what);
    v.owner = Str(n, "owner", what);
    v.tags = StrMap(n, "tags", what);
    defs->on_demand_feature_views.push_back(std::move(v));
  }

  void ParseDocument(const YAML::Node& doc, Definitions* defs) {
    if (doc.IsNull()) return;
    if (!CheckMap(doc, "definitions file",
                  {"entities", "sources", "feature_views", "feature_services", "transformations",
                   "request_sources", "on_demand_feature_views"})) {
      return;
    }
    auto each = [&](const char* key, auto&& fn) {
      YAML::Node list = doc[key];
      if (!list || list.IsNull()) return;
      if (!list.IsSequence()) {
        Problem(list, std::string("'") + key + "' must be a list (entries start with '- ')");
        return;
      }
      for (const auto& item : list) fn(item);
    };
    each("entities", [&](const YAML::Node& n) { ParseEntity(n, defs); });
    each("sources", [&](const YAML::Node& n) { ParseSource(n, defs); });
    each("feature_views", [&](const YAML::Node& n) { ParseFeatureView(n, defs); });
    each("feature_services", [&](const YAML::Node& n) { ParseFeatureService(n, defs); });
    each("transformations", [&](const YAML::Node& n) { ParseTransformation(n, defs); });
    each("request_sources", [&](const YAML::Node& n) { ParseRequestSource(n, defs); });
    each("on_demand_feature_views",
         [&](const YAML::Node& n) { ParseOnDemandFeatureView(n, defs); });
  }

 private:
  std::string file_;
  std::vector<std::string>* problems_;
};

// The documents of a YAML stream, each parsed with YAML::Load on its own. Not
// YAML::LoadAll: yaml-cpp 0.7's LoadAll loops forever on some malformed input
// (its parser keeps reporting a new empty document without consuming any; 28
// bytes took 19 GB before the allocator failed; fixed upstream after 0.8), and
// Load reads one document and stops. A document starts at a line that begins
// with "---" followed by a space or the line's end, as YAML defines it; each
// is padded with the newlines before it so that marks keep the file's lines.
// Documents that hold nothing (null) are left out, as LoadAll leaves out an
// empty stream.
std::vector<YAML::Node> LoadDocuments(const std::string& text) {
  std::vector<size_t> starts = {0};
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (pos > 0 && text.compare(pos, 3, "---") == 0 &&
        (pos + 3 == end || text[pos + 3] == ' ' || text[pos + 3] == '\t' ||
         text[pos + 3] == '\r')) {
      starts.push_back(pos);
    }
    pos = end + 1;
  }
  std::vector<YAML::Node> docs;
  for (size_t i = 0; i < starts.size(); ++i) {
    const size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
    const size_t lines_before =
        static_cast<size_t>(std::count(text.begin(), text.begin() + starts[i], '\n'));
    YAML::Node doc =
        YAML::Load(std::string(lines_before, '\n') + text.substr(starts[i], end - starts[i]));
    if (!doc.IsNull()) docs.push_back(std::move(doc));
  }
  return docs;
}

std::string At(const std::string& file, const YAML::Mark& m) {
  SourceLocation loc{file, m.line >= 0 ? m.line + 1 : 0, m.line >= 0 ? m.column + 1 : 0};
  return loc.ToString();
}

const char* KindOf(const YAML::Node& n) {
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "empty";
}

}  // namespace

bool CheckYamlKeys(const YAML::Node& doc, const std::string& display_name,
                   std::vector<std::string>* problems) {
  // (line, column, message), sorted before they are reported.
  std::vector<std::tuple<int, int, std::string>> found;
  try {
    // Aliases share nodes, so a small file can stand for a huge tree: the walk
    // stops after kMaxNodes nodes and below kMaxDepth (yaml-cpp limits nesting).
    constexpr int kMaxDepth = 512;
    constexpr size_t kMaxNodes = 1 << 20;
    std::vector<std::pair<YAML::Node, int>> stack;
    stack.emplace_back(doc, 0);
    size_t visited = 0;
    while (!stack.empty() && visited++ < kMaxNodes) {
      auto [n, depth] = stack.back();
      stack.pop_back();
      if (depth > kMaxDepth) continue;
      if (n.IsMap()) {
        std::map<std::string, int> first_line;
        for (auto it = n.begin(); it != n.end(); ++it) {
          const YAML::Node k = it->first;
          const YAML::Mark m = k.Mark();
          if (!k.IsScalar()) {
            found.emplace_back(
                m.line, m.column,
                At(display_name, m) + ": a key must be a single name, not " + KindOf(k));
          } else if (auto [pos, fresh] = first_line.emplace(k.Scalar(), m.line + 1); !fresh) {
            found.emplace_back(m.line, m.column,
                               At(display_name, m) + ": duplicate key '" + k.Scalar() +
                                   "' (first at line " + std::to_string(pos->second) +
                                   "); a key may appear once in a mapping: merge the two or "
                                   "remove one");
          }
          stack.emplace_back(it->second, depth + 1);
        }
      } else if (n.IsSequence()) {
        for (const auto& e : n) stack.emplace_back(e, depth + 1);
      }
    }
  } catch (const std::exception& e) {
    found.emplace_back(-1, -1, display_name + ": cannot read the YAML structure: " + e.what());
  }
  std::sort(found.begin(), found.end());
  for (auto& f : found) problems->push_back(std::move(std::get<2>(f)));
  return found.empty();
}

void ParseDefinitionsYaml(const std::string& text, const std::string& display_name,
                          Definitions* defs, std::vector<std::string>* problems) {
  Parser p(display_name, problems);
  std::vector<YAML::Node> docs;
  try {
    docs = LoadDocuments(text);
  } catch (const YAML::Exception& e) {
    problems->push_back(At(display_name, e.mark) + ": not valid YAML: " + e.msg);
    return;
  } catch (const std::exception& e) {
    problems->push_back(display_name + ": cannot read the file as YAML: " + e.what());
    return;
  }
  for (const auto& doc : docs) {
    if (!CheckYamlKeys(doc, display_name, problems)) continue;
    try {
      p.ParseDocument(doc, defs);
    } catch (const YAML::Exception& e) {
      problems->push_back(At(display_name, e.mark) + ": " + e.msg);
    } catch (const std::exception& e) {
      problems->push_back(display_name + ": " + e.what());
    }
  }
}

}  // namespace stratalake::registry
