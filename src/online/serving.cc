// get_online_features: resolve the request against the registry held in
// memory, build every key, fetch them all in one MultiGet, decode only the
// requested features, and apply the TTL relative to the clock.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>

#include <arrow/api.h>

#include "online/codec.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

arrow::Status UserError(ErrorKind kind, const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, kind, msg);
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// One view's part of a request with its join keys resolved.
struct ViewPlan {
  const registry::FeatureView* view = nullptr;
  std::string label;
  std::vector<std::string> features;
  std::vector<const registry::Field*> join_keys;  // in key order
  std::vector<std::string> key_columns;           // request entity column per join key
};

arrow::Result<std::vector<ViewPlan>> PlanRequest(const registry::Definitions& defs,
                                                 const OnlineRequest& req) {
  ARROW_ASSIGN_OR_RAISE(auto views,
                        registry::ResolveFeatureRequest(defs, req.features, req.feature_service));
  std::vector<ViewPlan> plans;
  for (auto& vr : views) {
    if (!vr.view->online) {
      return UserError(ErrorKind::kObjectNotFound,
                       "feature view '" + vr.view->name +
                           "' is not served online (online: false in its definition)");
    }
    ViewPlan plan;
    plan.view = vr.view;
    plan.label = std::move(vr.label);
    plan.features = std::move(vr.features);
    for (const auto& en : vr.view->entities) {
      const registry::Entity* e = defs.FindEntity(en);
      if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
      for (const auto& k : e->join_keys) {
        plan.join_keys.push_back(&k);
        auto m = vr.key_map.find(k.name);
        plan.key_columns.push_back(m == vr.key_map.end() ? k.name : m->second);
      }
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

void AppendKeyJson(const KeyScalar& k, std::string* out) {
  if (const auto* i = std::get_if<int64_t>(&k)) {
    out->append(std::to_string(*i));
  } else if (const auto* s = std::get_if<std::string>(&k)) {
    AppendJsonString(*s, out);
  } else {
    out->append("null");
  }
}

}  // namespace

const char* FeatureStatusName(FeatureStatus status) {
  switch (status) {
    case FeatureStatus::kPresent:
      return "PRESENT";
    case FeatureStatus::kNullValue:
      return "NULL_VALUE";
    case FeatureStatus::kNotFound:
      return "NOT_FOUND";
    case FeatureStatus::kOutsideMaxAge:
      return "OUTSIDE_MAX_AGE";
  }
  return "NOT_FOUND";
}

arrow::Result<std::unique_ptr<OnlineStore>> OpenRepositoryStore(const repo::FeatureRepository& repo,
                                                                bool read_only) {
  const auto& c = repo.config();
  if (c.online_store_type == "redis") {
    RedisOptions o;
    o.key_prefix = c.project + ":";
    return OpenRedisStore(c.online_store, o);
  }
  return OpenRocksDbStore(c.online_store, read_only);
}

struct OnlineService::Impl {
  // Layouts of values written before a view's schema changed, by (view, fingerprint).
  std::shared_mutex mu;
  std::map<std::pair<std::string, uint64_t>, std::shared_ptr<const Layout>> stored_layouts;
  // The current layout of each view, for the registry version it was built from.
  int64_t layouts_version = -1;
  std::map<std::string, std::shared_ptr<const Layout>> current;
};

OnlineService::OnlineService(std::shared_ptr<registry::Registry> registry,
                             std::shared_ptr<OnlineStore> store, std::shared_ptr<Clock> clock)
    : store_(std::move(store)),
      clock_(clock ? clock : Clock::System()),
      cache_(std::move(registry), clock_, /*min_check_interval_ms=*/1000),
      impl_(std::make_unique<Impl>()) {}

OnlineService::~OnlineService() = default;

arrow::Result<OnlineResponse> OnlineService::Get(const OnlineRequest& req) {
  ARROW_ASSIGN_OR_RAISE(auto state, cache_.Get());
  if (state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound, "the registry is empty; run `stratalake apply`");
  }
  const registry::Definitions& defs = state->defs;
  ARROW_ASSIGN_OR_RAISE(auto plans, PlanRequest(defs, req));

  // Entity rows.
  OnlineResponse resp;
  resp.registry_version = state->version;
  if (req.entities.empty()) {
    return UserError(ErrorKind::kSchemaMismatch,
                     "no entities given: pass \"entities\": {\"<join key>\": [values...]}");
  }
  size_t rows = req.entities[0].second.size();
  for (const auto& [name, values] : req.entities) {
    if (values.size() != rows) {
      return UserError(ErrorKind::kSchemaMismatch, "entity columns differ in length: '" +
                                                       req.entities[0].first + "' has " +
                                                       std::to_string(rows) + " values, '" + name +
                                                       "' has " + std::to_string(values.size()));
    }
  }
  resp.rows = rows;
  auto find_entity = [&](const std::string& col) -> const std::vector<KeyScalar>* {
    for (const auto& [name, values] : req.entities) {
      if (name == col) return &values;
    }
    return nullptr;
  };

  // Current layouts for this registry version.
  {
    std::unique_lock lock(impl_->mu);
    if (impl_->layouts_version != state->version) {
      impl_->current.clear();
      for (const auto& v : defs.feature_views) {
        impl_->current[v.name] = std::make_shared<const Layout>(MakeLayout(v));
      }
      impl_->layouts_version = state->version;
    }
  }

  // Keys: every view's rows, fetched in one MultiGet.
  std::vector<std::string> keys;
  keys.reserve(plans.size() * rows);
  std::vector<std::vector<bool>> has_key(plans.size());
  for (size_t p = 0; p < plans.size(); ++p) {
    const ViewPlan& plan = plans[p];
    std::vector<const std::vector<KeyScalar>*> cols;
    for (size_t k = 0; k < plan.join_keys.size(); ++k) {
      const auto* col = find_entity(plan.key_columns[k]);
      if (!col) {
        std::vector<std::string> given;
        for (const auto& e : req.entities) given.push_back(e.first);
        return UserError(ErrorKind::kSchemaMismatch,
                         "missing join key '" + plan.key_columns[k] + "' for feature view '" +
                             plan.view->name + "' (entities given: " + JoinNames(given) + ")");
      }
      cols.push_back(col);
    }
    std::string prefix = ViewKeyPrefix(plan.view->name);
    has_key[p].assign(rows, true);
    for (size_t r = 0; r < rows; ++r) {
      std::string key = prefix;
      for (size_t k = 0; k < cols.size(); ++k) {
        const KeyScalar& v = (*cols[k])[r];
        if (std::holds_alternative<std::monostate>(v)) {
          has_key[p][r] = false;
          break;
        }
        auto st = AppendKey(*plan.join_keys[k]->type, v, &key);
        if (!st.ok()) {
          return UserError(ErrorKind::kSchemaMismatch, "join key '" + plan.key_columns[k] +
                                                           "', row " + std::to_string(r) + ": " +
                                                           st.message());
        }
      }
      keys.push_back(has_key[p][r] ? std::move(key) : std::string());
    }
  }
  std::vector<std::string_view> views(keys.begin(), keys.end());
  ARROW_RETURN_NOT_OK(store_->MultiGet(views, &resp.fetched));

  // Output columns: join keys in request order, then features.
  std::map<std::string, std::string> taken;
  for (const auto& [name, values] : req.entities) {
    OnlineColumn c;
    c.name = name;
    c.is_join_key = true;
    c.keys = &values;
    taken[name] = "join key '" + name + "'";
    resp.columns.push_back(std::move(c));
  }
  int64_t now_us = clock_->NowMillis() * 1000;
  DecodedValue decoded;
  for (size_t p = 0; p < plans.size(); ++p) {
    const ViewPlan& plan = plans[p];
    std::shared_ptr<const Layout> layout;
    {
      std::shared_lock lock(impl_->mu);
      layout = impl_->current[plan.view->name];
    }
    size_t first_col = resp.columns.size();
    std::vector<int> idx;
    for (const auto& f : plan.features) {
      OnlineColumn c;
      c.name = req.full_feature_names ? plan.label + "__" + f : f;
      std::string what = "feature '" + plan.label + ":" + f + "'";
      auto [it, fresh] = taken.emplace(c.name, what);
      if (!fresh) {
        return UserError(ErrorKind::kDefinitionError,
                         "output name '" + c.name + "' would hold both " + it->second + " and " +
                             what + "; set \"full_feature_names\": true");
      }
      int i = layout->Find(f);
      c.type = layout->types[i];
      c.statuses.assign(rows, FeatureStatus::kNotFound);
      c.event_us.assign(rows, 0);
      c.values.assign(rows, std::string_view());
      idx.push_back(i);
      resp.columns.push_back(std::move(c));
    }
    int64_t ttl_us = plan.view->ttl_seconds * 1000000;
    for (size_t r = 0; r < rows; ++r) {
      const auto& v = resp.fetched[p * rows + r];
      if (!has_key[p][r] || !v) continue;
      ARROW_ASSIGN_OR_RAISE(uint64_t fp, ValueFingerprint(*v));
      std::shared_ptr<const Layout> vl = layout;
      if (fp != layout->fingerprint) {
        auto lk = std::make_pair(plan.view->name, fp);
        {
          std::shared_lock lock(impl_->mu);
          auto it = impl_->stored_layouts.find(lk);
          if (it != impl_->stored_layouts.end()) vl = it->second;
        }
        if (vl == layout) {
          std::string key = LayoutKey(plan.view->name, fp);
          std::string_view kv = key;
          std::vector<std::optional<std::string>> got;
          ARROW_RETURN_NOT_OK(store_->MultiGet(std::span<const std::string_view>(&kv, 1), &got));
          if (!got[0] || got[0]->size() < kVersionPrefixSize) {
            return arrow::Status::IOError("online store: no layout stored for a value of view '",
                                          plan.view->name, "'; run `stratalake materialize`");
          }
          ARROW_ASSIGN_OR_RAISE(auto parsed,
                                ParseLayout(std::string_view(*got[0]).substr(kVersionPrefixSize)));
          vl = std::make_shared<const Layout>(std::move(parsed));
          std::unique_lock lock(impl_->mu);
          impl_->stored_layouts[lk] = vl;
        }
      }
      ARROW_RETURN_NOT_OK(DecodeValue(*v, *vl, &decoded));
      bool expired = ttl_us > 0 && decoded.event_us < now_us - ttl_us;
      for (size_t j = 0; j < idx.size(); ++j) {
        OnlineColumn& c = resp.columns[first_col + j];
        int i = vl == layout ? idx[j] : vl->Find(plan.features[j]);
        if (i < 0 || !vl->types[i]->Equals(*c.type)) continue;  // feature newer than the value
        c.event_us[r] = decoded.event_us;
        if (expired) {
          c.statuses[r] = FeatureStatus::kOutsideMaxAge;
        } else if (decoded.null[i]) {
          c.statuses[r] = FeatureStatus::kNullValue;
        } else {
          c.statuses[r] = FeatureStatus::kPresent;
          c.values[r] = decoded.fields[i];
        }
      }
    }
  }
  return resp;
}

void OnlineResponse::AppendJson(std::string* out) const {
  out->append("{\"metadata\":{\"feature_names\":[");
  for (size_t c = 0; c < columns.size(); ++c) {
    if (c) out->push_back(',');
    AppendJsonString(columns[c].name, out);
  }
  out->append("]},\"results\":[");
  for (size_t c = 0; c < columns.size(); ++c) {
    const OnlineColumn& col = columns[c];
    if (c) out->push_back(',');
    out->append("{\"values\":[");
    for (size_t r = 0; r < rows; ++r) {
      if (r) out->push_back(',');
      if (col.is_join_key) {
        AppendKeyJson((*col.keys)[r], out);
      } else if (col.statuses[r] == FeatureStatus::kPresent) {
        AppendFieldJson(*col.type, col.values[r], out);
      } else {
        out->append("null");
      }
    }
    out->append("],\"statuses\":[");
    for (size_t r = 0; r < rows; ++r) {
      if (r) out->push_back(',');
      out->push_back('"');
      out->append(col.is_join_key ? "PRESENT" : FeatureStatusName(col.statuses[r]));
      out->push_back('"');
    }
    out->append("],\"event_timestamps\":[");
    // Features of one view share their rows' times: format each distinct one once.
    int64_t last_us = 0;
    std::string last_text = "\"1970-01-01T00:00:00Z\"";
    for (size_t r = 0; r < rows; ++r) {
      if (r) out->push_back(',');
      int64_t us = col.is_join_key ? 0 : col.event_us[r];
      if (us != last_us) {
        last_text.assign(1, '"');
        AppendTimestampMicros(us, &last_text);
        last_text.push_back('"');
        last_us = us;
      }
      out->append(last_text);
    }
    out->append("]}");
  }
  out->append("]}");
}

arrow::Result<std::shared_ptr<arrow::Table>> OnlineResponse::ToTable() const {
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (const auto& col : columns) {
    std::shared_ptr<arrow::Array> arr;
    if (col.is_join_key) {
      bool strings = false;
      for (const auto& k : *col.keys) strings = strings || std::holds_alternative<std::string>(k);
      if (strings) {
        arrow::StringBuilder b;
        for (const auto& k : *col.keys) {
          if (const auto* s = std::get_if<std::string>(&k)) {
            ARROW_RETURN_NOT_OK(b.Append(*s));
          } else {
            ARROW_RETURN_NOT_OK(b.AppendNull());
          }
        }
        ARROW_ASSIGN_OR_RAISE(arr, b.Finish());
      } else {
        arrow::Int64Builder b;
        for (const auto& k : *col.keys) {
          if (const auto* i = std::get_if<int64_t>(&k)) {
            ARROW_RETURN_NOT_OK(b.Append(*i));
          } else {
            ARROW_RETURN_NOT_OK(b.AppendNull());
          }
        }
        ARROW_ASSIGN_OR_RAISE(arr, b.Finish());
      }
    } else {
      std::unique_ptr<arrow::ArrayBuilder> b;
      ARROW_ASSIGN_OR_RAISE(b, arrow::MakeBuilder(col.type));
      for (size_t r = 0; r < rows; ++r) {
        ARROW_RETURN_NOT_OK(AppendFieldToBuilder(
            *col.type, col.values[r], col.statuses[r] != FeatureStatus::kPresent, b.get()));
      }
      ARROW_ASSIGN_OR_RAISE(arr, b->Finish());
    }
    fields.push_back(arrow::field(col.name, arr->type()));
    arrays.push_back(arr);
  }
  return arrow::Table::Make(arrow::schema(fields), arrays, static_cast<int64_t>(rows));
}

}  // namespace stratalake::online
