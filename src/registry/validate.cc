// Validation of a complete set of definitions; reports every problem at once.
#include <algorithm>
#include <functional>
#include <set>

#include <arrow/api.h>

#include "stratalake/expression.h"
#include "stratalake/on_demand.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {

namespace {

const std::set<std::string> kReservedColumns = {"event_timestamp", "created_timestamp"};

bool IsIdentifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

template <typename T>
std::vector<std::string> Names(const std::vector<T>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.name);
  return out;
}

bool IsTimestampLike(const arrow::DataType& t) {
  return t.id() == arrow::Type::TIMESTAMP || t.id() == arrow::Type::DATE32 ||
         t.id() == arrow::Type::DATE64;
}

// Types a feature may be declared with for a source column of type `actual`:
// the same type, or the same family (any string/binary width, any timestamp
// unit/zone).
bool TypesMatch(const arrow::DataType& declared, const arrow::DataType& actual) {
  return FeatureTypeName(declared) == FeatureTypeName(actual);
}

class Validator {
 public:
  Validator(const Definitions& d, const ValidationOptions& o) : defs_(d), opts_(o) {}

  arrow::Status Run() {
    CheckNames();
    for (const auto& e : defs_.entities) CheckEntity(e);
    for (const auto& s : defs_.sources) CheckSource(s);
    for (const auto& v : defs_.feature_views) CheckView(v);
    for (const auto& s : defs_.feature_services) CheckService(s);
    CheckIncludeCycles();
    ValidateOnDemand(defs_, &problems_);
    if (problems_.empty()) return arrow::Status::OK();
    std::string msg = std::to_string(problems_.size()) +
                      (problems_.size() == 1 ? " problem" : " problems") +
                      " in the feature definitions";
    for (const auto& p : problems_) msg += "\n  " + p;
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError, msg);
  }

 private:
  void Problem(const SourceLocation& loc, const std::string& what, const std::string& msg) {
    problems_.push_back(loc.ToString() + ": " + what + ": " + msg);
  }

  void CheckName(const SourceLocation& loc, const std::string& what, const std::string& name) {
    if (name.empty()) return;  // reported by the parser as a missing key
    if (!IsIdentifier(name)) {
      Problem(loc, what,
              "'" + name +
                  "' is not a valid name; use letters, digits and underscores, starting with a "
                  "letter");
    } else if (name[0] == '_') {
      Problem(loc, what, "names starting with '_' are reserved for StrataLake's own columns");
    } else if (name.find("__") != std::string::npos) {
      Problem(
          loc, what,
          "'" + name + "' contains '__', which is reserved for full feature names (view__feature)");
    }
  }

  template <typename T>
  void CheckDuplicates(const std::vector<T>& v, const std::string& kind) {
    std::map<std::string, const T*> seen;
    for (const auto& x : v) {
      if (x.name.empty()) continue;
      auto [it, fresh] = seen.emplace(x.name, &x);
      if (!fresh) {
        Problem(x.loc, kind + " '" + x.name + "'",
                "defined twice (first at " + it->second->loc.ToString() +
                    "); rename or remove one of them");
      }
    }
  }

  void CheckNames() {
    CheckDuplicates(defs_.entities, "entity");
    CheckDuplicates(defs_.sources, "source");
    CheckDuplicates(defs_.feature_views, "feature view");
    CheckDuplicates(defs_.feature_services, "feature service");
    CheckDuplicates(defs_.transformations, "transformation");
    for (const auto& e : defs_.entities) CheckName(e.loc, "entity '" + e.name + "'", e.name);
    for (const auto& s : defs_.sources) CheckName(s.loc, "source '" + s.name + "'", s.name);
    for (const auto& v : defs_.feature_views) {
      CheckName(v.loc, "feature view '" + v.name + "'", v.name);
    }
    for (const auto& s : defs_.feature_services) {
      CheckName(s.loc, "feature service '" + s.name + "'", s.name);
    }
  }

  void CheckEntity(const Entity& e) {
    std::string what = "entity '" + e.name + "'";
    if (e.join_keys.empty())
      Problem(e.loc, what, "has no join keys; add at least one under 'join_keys'");
    std::set<std::string> seen;
    for (const auto& k : e.join_keys) {
      CheckName(k.loc, what + " join key '" + k.name + "'", k.name);
      if (!seen.insert(k.name).second)
        Problem(k.loc, what, "join key '" + k.name + "' is listed twice");
      if (kReservedColumns.count(k.name)) {
        Problem(k.loc, what, "join key name '" + k.name + "' is reserved; choose another name");
      }
      if (k.type && (k.type->id() == arrow::Type::LIST || k.type->id() == arrow::Type::FLOAT ||
                     k.type->id() == arrow::Type::DOUBLE)) {
        Problem(k.loc, what,
                "join key '" + k.name + "' has type " + FeatureTypeName(*k.type) +
                    ", which cannot be matched exactly; use an integer, string, date or binary "
                    "key");
      }
    }
  }

  std::string TimestampField(const Source& s) const {
    return s.timestamp_field.empty() ? opts_.default_timestamp_field : s.timestamp_field;
  }

  // The source's schema after field_mapping; nullptr when unknown.
  std::shared_ptr<arrow::Schema> SchemaOf(const Source& s) {
    auto it = schemas_.find(s.name);
    if (it != schemas_.end()) return it->second;
    std::shared_ptr<arrow::Schema> schema;
    if (opts_.resolve_schema) {
      auto r = opts_.resolve_schema(s);
      if (!r.ok()) {
        Problem(s.loc, "source '" + s.name + "'",
                "cannot read its schema: " + r.status().message());
      } else {
        schema = *r;
      }
    }
    schemas_[s.name] = schema;
    return schema;
  }

  void CheckSource(const Source& s) {
    std::string what = "source '" + s.name + "'";
    if (s.type == SourceType::kPush && s.schema.empty()) {
      Problem(s.loc, what, "push sources need a declared 'schema' (the columns pushed to them)");
    }
    if (s.type == SourceType::kKafka) {
      if (s.schema.empty()) {
        Problem(s.loc, what,
                "kafka sources need a declared 'schema' (the columns read from each message)");
      }
      for (const auto& [column, field] : s.kafka.columns) {
        bool declared = false;
        for (const auto& f : s.schema) declared = declared || f.name == column;
        if (!declared && !s.schema.empty()) {
          Problem(s.loc, what,
                  "kafka.columns maps '" + column +
                      "', which is not a column of the declared schema (map declared columns "
                      "to the JSON fields that hold them)");
        }
        if (field.empty()) Problem(s.loc, what, "kafka.columns gives '" + column + "' no field");
      }
    }
    std::set<std::string> cols;
    for (const auto& f : s.schema) {
      if (!cols.insert(f.name).second)
        Problem(f.loc, what, "column '" + f.name + "' is declared twice");
      if (!f.name.empty() && f.name[0] == '_') {
        Problem(f.loc, what,
                "column names starting with '_' are reserved for StrataLake's own columns");
      }
    }
    for (const auto& [from, to] : s.field_mapping) CheckName(s.loc, what + " field_mapping", to);
    for (const auto& p : s.partition_by) {
      if (!s.schema.empty() && !cols.count(p)) {
        Problem(s.loc, what, "partition column '" + p + "' is not in the declared schema");
      }
    }
    auto schema = SchemaOf(s);
    if (!schema) return;
    for (const auto& c : s.checks) {
      // Checks run on the stored columns (before field_mapping).
      arrow::FieldVector stored;
      for (const auto& f : schema->fields()) {
        std::string name = f->name();
        for (const auto& [from, to] : s.field_mapping) {
          if (to == name) name = from;
        }
        stored.push_back(f->WithName(name));
      }
      auto e = ParseExpression(c.expression, *arrow::schema(stored));
      if (!e.ok()) {
        Problem(s.loc, what, "check `" + c.expression + "` is not valid: " + e.status().message());
      }
    }
    std::string ts = TimestampField(s);
    if (ts.empty()) {
      Problem(s.loc, what,
              "no 'timestamp_field'; name the column holding each row's event time (or set "
              "defaults.timestamp_field in stratalake.yaml)");
    } else if (auto f = schema->GetFieldByName(ts); !f) {
      Problem(s.loc, what,
              "timestamp_field '" + ts +
                  "' is not a column of the source (columns: " + Join(schema->field_names()) + ")");
    } else if (!IsTimestampLike(*f->type())) {
      Problem(s.loc, what,
              "timestamp_field '" + ts + "' has type " + FeatureTypeName(*f->type()) +
                  "; it must be a timestamp or date");
    }
    if (!s.created_timestamp_field.empty()) {
      auto f = schema->GetFieldByName(s.created_timestamp_field);
      if (!f) {
        Problem(s.loc, what,
                "created_timestamp_field '" + s.created_timestamp_field +
                    "' is not a column of the source");
      } else if (!IsTimestampLike(*f->type())) {
        Problem(s.loc, what,
                "created_timestamp_field '" + s.created_timestamp_field + "' has type " +
                    FeatureTypeName(*f->type()) + "; it must be a timestamp or date");
      }
    }
  }

  void CheckView(const FeatureView& v) {
    std::string what = "feature view '" + v.name + "'";
    const Source* src = defs_.FindSource(v.source);
    if (!v.source.empty() && !src) {
      Problem(v.loc, what,
              "unknown source '" + v.source + "' (defined sources: " + Join(Names(defs_.sources)) +
                  ")");
    }
    std::vector<const Field*> keys;
    std::set<std::string> entity_seen;
    for (const auto& en : v.entities) {
      if (!entity_seen.insert(en).second)
        Problem(v.loc, what, "entity '" + en + "' is listed twice");
      const Entity* e = defs_.FindEntity(en);
      if (!e) {
        Problem(
            v.loc, what,
            "unknown entity '" + en + "' (defined entities: " + Join(Names(defs_.entities)) + ")");
        continue;
      }
      for (const auto& k : e->join_keys) keys.push_back(&k);
    }
    if (v.features.empty())
      Problem(v.loc, what, "has no features; list at least one under 'features'");
    std::set<std::string> seen;
    for (const auto& f : v.features) {
      std::string fwhat = what + " feature '" + f.name + "'";
      CheckName(f.loc, fwhat, f.name);
      if (!seen.insert(f.name).second)
        Problem(f.loc, what, "feature '" + f.name + "' is listed twice");
      if (kReservedColumns.count(f.name)) {
        Problem(f.loc, fwhat, "'" + f.name + "' is a reserved column name; rename the feature");
      }
      for (const Field* k : keys) {
        if (k->name == f.name) {
          Problem(f.loc, fwhat,
                  "has the name of the join key '" + k->name + "'; join keys are not features");
        }
      }
      if (src && f.name == TimestampField(*src)) {
        Problem(f.loc, fwhat, "is the source's timestamp_field; it cannot also be a feature");
      }
    }
    if (!src) return;
    auto schema = SchemaOf(*src);
    if (!schema) {
      Problem(v.loc, what,
              "cannot check its features: source '" + src->name +
                  "' declares no schema and its table does not exist yet; declare the source's "
                  "'schema' or ingest data first");
      return;
    }
    if (!v.aggregations.empty()) {
      CheckAggregations(v, *src, *schema);
    }
    for (const auto& f : v.features) {
      if (!v.aggregations.empty()) break;  // window features are no source columns
      auto col = schema->GetFieldByName(f.name);
      if (!col) {
        Problem(f.loc, what + " feature '" + f.name + "'",
                "no column '" + f.name + "' in source '" + src->name +
                    "' (columns: " + Join(schema->field_names()) + ")");
      } else if (f.type && !TypesMatch(*f.type, *col->type())) {
        Problem(f.loc, what + " feature '" + f.name + "'",
                "declared as " + FeatureTypeName(*f.type) + " but source '" + src->name +
                    "' has it as " + FeatureTypeName(*col->type()) + "; declare type " +
                    FeatureTypeName(*col->type()));
      }
    }
    for (const Field* k : keys) {
      auto col = schema->GetFieldByName(k->name);
      if (!col) {
        Problem(v.loc, what,
                "join key '" + k->name + "' is not a column of source '" + src->name +
                    "'; add it or map a column to it with field_mapping");
      } else if (k->type && !TypesMatch(*k->type, *col->type())) {
        Problem(v.loc, what,
                "join key '" + k->name + "' is " + FeatureTypeName(*k->type) +
                    " in its entity but " + FeatureTypeName(*col->type()) + " in source '" +
                    src->name + "'");
      }
    }
  }

  // A window view's aggregations against its source's columns.
  void CheckAggregations(const FeatureView& v, const Source& src, const arrow::Schema& schema) {
    std::string what = "feature view '" + v.name + "'";
    if (v.ttl_seconds > 0) {
      Problem(v.loc, what,
              "has aggregations and a ttl; a window view's values already cover only their "
              "window: remove 'ttl'");
    }
    for (const auto& a : v.aggregations) {
      std::string awhat = what + " aggregation '" + a.name + "'";
      if (a.window_seconds <= 0) {
        Problem(a.loc, awhat, "has no window; add 'window', e.g. 5m, 1h or 7d");
      }
      if (a.column == TimestampField(src)) {
        Problem(a.loc, awhat, "aggregates the source's timestamp_field; name a value column");
        continue;
      }
      auto col = schema.GetFieldByName(a.column);
      if (!col) {
        Problem(a.loc, awhat,
                "no column '" + a.column + "' in source '" + src.name +
                    "' (columns: " + Join(schema.field_names()) + ")");
        continue;
      }
      const auto id = col->type()->id();
      bool numeric = arrow::is_integer(id) || arrow::is_floating(id) || id == arrow::Type::BOOL ||
                     arrow::is_decimal(id);
      if (!numeric && a.function != AggregationFunction::kCount) {
        Problem(a.loc, awhat,
                std::string(AggregationFunctionName(a.function)) +
                    " needs a numeric column, but '" + a.column + "' is " +
                    FeatureTypeName(*col->type()) + "; use count, or aggregate a numeric column");
      }
      if (!a.filter.empty()) {
        auto e = ParseExpression(a.filter, schema);
        if (!e.ok()) {
          Problem(a.loc, awhat, "filter `" + a.filter + "` is not valid: " + e.status().message());
        }
      }
    }
  }

  void CheckService(const FeatureService& s) {
    std::string what = "feature service '" + s.name + "'";
    std::map<std::string, const FeatureServiceItem*> out_names;
    for (const auto& item : s.items) {
      const FeatureView* v = defs_.FindFeatureView(item.view);
      if (const OnDemandFeatureView* odfv = defs_.FindOnDemandFeatureView(item.view); !v && odfv) {
        for (const auto& f : item.features) {
          bool found = false;
          std::vector<std::string> names;
          for (const auto& of : odfv->features) {
            found = found || of.field.name == f;
            names.push_back(of.field.name);
          }
          if (!found) {
            Problem(item.loc, what,
                    "on-demand feature view '" + odfv->name + "' has no feature '" + f +
                        "' (features: " + Join(names) + ")");
          }
        }
        if (!item.join_key_map.empty()) {
          Problem(item.loc, what,
                  "on-demand feature view '" + odfv->name +
                      "' has no join keys, so it takes no join_key_map; remove it");
        }
        if (!item.alias.empty()) CheckName(item.loc, what + " alias", item.alias);
        continue;
      }
      if (!v) {
        Problem(item.loc, what,
                "unknown feature view '" + item.view +
                    "' (defined feature views: " + Join(Names(defs_.feature_views)) + ")");
        continue;
      }
      if (!item.alias.empty()) CheckName(item.loc, what + " alias", item.alias);
      for (const auto& f : item.features) {
        bool found = false;
        for (const auto& vf : v->features) found = found || vf.name == f;
        if (!found) {
          Problem(item.loc, what,
                  "feature view '" + v->name + "' has no feature '" + f +
                      "' (features: " + Join(Names(v->features)) + ")");
        }
      }
      std::set<std::string> view_keys;
      for (const auto& en : v->entities) {
        if (const Entity* e = defs_.FindEntity(en)) {
          for (const auto& k : e->join_keys) view_keys.insert(k.name);
        }
      }
      for (const auto& [from, to] : item.join_key_map) {
        if (!view_keys.count(from)) {
          Problem(item.loc, what,
                  "join_key_map maps '" + from + "', which is not a join key of feature view '" +
                      v->name + "'");
        }
      }
      std::string label = item.alias.empty() ? item.view : item.alias;
      auto [it, fresh] = out_names.emplace(label, &item);
      if (!fresh && it->second->join_key_map == item.join_key_map) {
        // Entries of single features may name one view apart ("a:x", "b:y",
        // "a:z": the training set's column order); a whole view, or one
        // feature twice, is listed twice.
        bool apart = !item.features.empty();
        for (const auto& other : s.items) {
          if (&other == &item) break;
          std::string other_label = other.alias.empty() ? other.view : other.alias;
          if (other_label != label || other.join_key_map != item.join_key_map) continue;
          if (other.features.empty()) apart = false;
          for (const auto& f : item.features) {
            if (std::find(other.features.begin(), other.features.end(), f) !=
                other.features.end()) {
              apart = false;
            }
          }
        }
        if (!apart) {
          Problem(item.loc, what,
                  "feature view '" + item.view + "' is listed twice under the name '" + label +
                      "'; merge the entries or give one an alias");
        }
      }
    }
    for (const auto& inc : s.includes) {
      if (!defs_.FindFeatureService(inc)) {
        Problem(s.loc, what,
                "includes unknown feature service '" + inc +
                    "' (defined feature services: " + Join(Names(defs_.feature_services)) + ")");
      }
    }
  }

  void CheckIncludeCycles() {
    // Depth-first search over feature-service includes; report each cycle once.
    std::map<std::string, int> state;  // 0 new, 1 on stack, 2 done
    std::vector<std::string> stack;
    std::set<std::string> reported;
    std::function<void(const FeatureService&)> visit = [&](const FeatureService& s) {
      state[s.name] = 1;
      stack.push_back(s.name);
      for (const auto& inc : s.includes) {
        const FeatureService* t = defs_.FindFeatureService(inc);
        if (!t) continue;
        if (state[inc] == 1) {
          auto start = std::find(stack.begin(), stack.end(), inc);
          std::string cycle;
          for (auto it = start; it != stack.end(); ++it) cycle += *it + " -> ";
          cycle += inc;
          if (reported.insert(inc).second) {
            Problem(t->loc, "feature service '" + inc + "'",
                    "includes itself through a cycle: " + cycle + "; remove one of the includes");
          }
        } else if (state[inc] == 0) {
          visit(*t);
        }
      }
      stack.pop_back();
      state[s.name] = 2;
    };
    for (const auto& s : defs_.feature_services) {
      if (state[s.name] == 0) visit(s);
    }
  }

  const Definitions& defs_;
  const ValidationOptions& opts_;
  std::vector<std::string> problems_;
  std::map<std::string, std::shared_ptr<arrow::Schema>> schemas_;
};

}  // namespace

arrow::Status Validate(const Definitions& defs, const ValidationOptions& options) {
  return Validator(defs, options).Run();
}

}  // namespace stratalake::registry
