// get_online_features: resolve the request against the registry held in
// memory, build every key, fetch them all in one MultiGet, decode only the
// requested features, and apply the TTL relative to the clock.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>

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

// A request's feature list resolved against one registry version: everything
// that does not depend on the entity values, so repeated requests (the common
// case: a model asks for the same features every time) skip resolution.
struct CompiledView {
  const registry::FeatureView* view = nullptr;
  std::vector<const registry::Field*> join_keys;  // in key order
  std::vector<std::string> key_columns;           // request entity column per join key
  std::string key_prefix;                         // ViewKeyPrefix(view)
  std::shared_ptr<const Layout> layout;           // the view's current layout
  std::vector<std::string> features;              // requested, in order
  std::vector<int> idx;                           // their positions in `layout`
  std::vector<std::string> names;                 // their output names
  int64_t ttl_us = 0;
};

struct CompiledRequest {
  std::shared_ptr<const registry::RegistryState> state;  // keeps `view` pointers alive
  std::vector<CompiledView> views;
  std::set<std::string> output_names;
};

arrow::Result<std::shared_ptr<const CompiledRequest>> Compile(
    std::shared_ptr<const registry::RegistryState> state, const OnlineRequest& req) {
  const registry::Definitions& defs = state->defs;
  ARROW_ASSIGN_OR_RAISE(auto views,
                        registry::ResolveFeatureRequest(defs, req.features, req.feature_service));
  for (const auto& vr : views) {
    if (!vr.view->online) {
      return UserError(ErrorKind::kFeatureNotFound,
                       "feature view '" + vr.view->name +
                           "' is not served online (online: false in its definition)");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto names,
                        registry::FeatureOutputNames(views, req.full_feature_names, {},
                                                     "set \"full_feature_names\": true"));
  auto out = std::make_shared<CompiledRequest>();
  for (size_t v = 0; v < views.size(); ++v) {
    const registry::ViewRequest& vr = views[v];
    CompiledView cv;
    cv.view = vr.view;
    for (const auto& en : vr.view->entities) {
      const registry::Entity* e = defs.FindEntity(en);
      if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
      for (const auto& k : e->join_keys) {
        cv.join_keys.push_back(&k);
        auto m = vr.key_map.find(k.name);
        cv.key_columns.push_back(m == vr.key_map.end() ? k.name : m->second);
      }
    }
    cv.key_prefix = ViewKeyPrefix(vr.view->name);
    cv.layout = std::make_shared<const Layout>(MakeLayout(*vr.view));
    cv.ttl_us = vr.view->ttl_seconds * 1000000;
    for (const auto& f : vr.features) {
      cv.features.push_back(f);
      cv.idx.push_back(cv.layout->Find(f));
    }
    cv.names = std::move(names[v]);
    out->output_names.insert(cv.names.begin(), cv.names.end());
    out->views.push_back(std::move(cv));
  }
  out->state = std::move(state);
  return out;
}

void AppendKeyJson(const KeyScalar& k, std::string* out) {
  if (const auto* i = std::get_if<int64_t>(&k)) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *i);
    (void)ec;
    out->append(buf, static_cast<size_t>(end - buf));
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
  std::shared_mutex mu;
  // Layouts of values written before a view's schema changed, by (view, fingerprint).
  std::map<std::pair<std::string, uint64_t>, std::shared_ptr<const Layout>> stored_layouts;
  // Compiled requests of the registry version `compiled_version`, by request key.
  int64_t compiled_version = -1;
  std::unordered_map<std::string, std::shared_ptr<const CompiledRequest>> compiled;
  static constexpr size_t kMaxCompiled = 4096;
};

namespace {
// What identifies a request's feature list (not its entities).
std::string RequestKey(const OnlineRequest& req) {
  std::string k = req.full_feature_names ? "F" : "f";
  k += req.feature_service;
  for (const auto& f : req.features) {
    k.push_back('\x1f');
    k += f;
  }
  return k;
}
}  // namespace

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
  // The compiled feature list, from the cache when this list was seen before.
  std::string rkey = RequestKey(req);
  std::shared_ptr<const CompiledRequest> plan;
  {
    std::shared_lock lock(impl_->mu);
    if (impl_->compiled_version == state->version) {
      auto it = impl_->compiled.find(rkey);
      if (it != impl_->compiled.end()) plan = it->second;
    }
  }
  if (!plan) {
    ARROW_ASSIGN_OR_RAISE(plan, Compile(state, req));
    std::unique_lock lock(impl_->mu);
    if (impl_->compiled_version != state->version || impl_->compiled.size() >= Impl::kMaxCompiled) {
      impl_->compiled.clear();
      impl_->compiled_version = state->version;
    }
    impl_->compiled.emplace(rkey, plan);
  }

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
    if (plan->output_names.count(name)) {
      return UserError(ErrorKind::kDefinitionError,
                       "output name '" + name + "' would hold both join key '" + name +
                           "' and a feature; set \"full_feature_names\": true");
    }
  }
  resp.rows = rows;
  auto find_entity = [&](const std::string& col) -> const std::vector<KeyScalar>* {
    for (const auto& [name, values] : req.entities) {
      if (name == col) return &values;
    }
    return nullptr;
  };

  // Keys: every view's rows, fetched in one MultiGet ("" = a null key: no lookup).
  const size_t nviews = plan->views.size();
  std::vector<std::string> keys(nviews * rows);
  for (size_t p = 0; p < nviews; ++p) {
    const CompiledView& cv = plan->views[p];
    std::vector<const std::vector<KeyScalar>*> cols;
    for (size_t k = 0; k < cv.join_keys.size(); ++k) {
      const auto* col = find_entity(cv.key_columns[k]);
      if (!col) {
        std::vector<std::string> given;
        for (const auto& e : req.entities) given.push_back(e.first);
        return UserError(ErrorKind::kSchemaMismatch,
                         "missing join key '" + cv.key_columns[k] + "' for feature view '" +
                             cv.view->name + "' (entities given: " + JoinNames(given) + ")");
      }
      cols.push_back(col);
    }
    for (size_t r = 0; r < rows; ++r) {
      std::string& key = keys[p * rows + r];
      key.reserve(cv.key_prefix.size() + 9 * cols.size());
      key = cv.key_prefix;
      for (size_t k = 0; k < cols.size(); ++k) {
        const KeyScalar& v = (*cols[k])[r];
        if (std::holds_alternative<std::monostate>(v)) {
          key.clear();
          break;
        }
        auto st = AppendKey(*cv.join_keys[k]->type, v, &key);
        if (!st.ok()) {
          return UserError(ErrorKind::kSchemaMismatch, "join key '" + cv.key_columns[k] +
                                                           "', row " + std::to_string(r) + ": " +
                                                           st.message());
        }
      }
    }
  }
  std::vector<std::string_view> key_views(keys.begin(), keys.end());
  ARROW_RETURN_NOT_OK(store_->MultiGet(key_views, &resp.fetched));

  // Output columns: join keys in request order, then features.
  size_t nfeatures = 0;
  for (const auto& cv : plan->views) nfeatures += cv.features.size();
  resp.columns.reserve(req.entities.size() + nfeatures);
  resp.status_store.assign(nfeatures * rows, FeatureStatus::kNotFound);
  resp.time_store.assign(nfeatures * rows, 0);
  resp.value_store.assign(nfeatures * rows, std::string_view());
  for (const auto& [name, values] : req.entities) {
    OnlineColumn c;
    c.name = name;
    c.is_join_key = true;
    c.keys = &values;
    resp.columns.push_back(std::move(c));
  }
  int64_t now_us = clock_->NowMillis() * 1000;
  DecodedValue decoded;
  for (size_t p = 0; p < nviews; ++p) {
    const CompiledView& cv = plan->views[p];
    const std::shared_ptr<const Layout>& layout = cv.layout;
    size_t first_col = resp.columns.size();
    for (size_t j = 0; j < cv.features.size(); ++j) {
      size_t at = (first_col - req.entities.size()) * rows + j * rows;
      OnlineColumn c;
      c.name = cv.names[j];
      c.type = layout->types[cv.idx[j]];
      c.statuses = std::span<FeatureStatus>(resp.status_store.data() + at, rows);
      c.event_us = std::span<int64_t>(resp.time_store.data() + at, rows);
      c.values = std::span<std::string_view>(resp.value_store.data() + at, rows);
      resp.columns.push_back(std::move(c));
    }
    for (size_t r = 0; r < rows; ++r) {
      const auto& v = resp.fetched[p * rows + r];
      if (keys[p * rows + r].empty() || !v) continue;
      ARROW_ASSIGN_OR_RAISE(uint64_t fp, ValueFingerprint(*v));
      std::shared_ptr<const Layout> vl = layout;
      if (fp != layout->fingerprint) {
        ARROW_ASSIGN_OR_RAISE(vl, StoredLayout(cv.view->name, fp));
      }
      ARROW_RETURN_NOT_OK(DecodeValue(*v, *vl, &decoded));
      bool expired = cv.ttl_us > 0 && decoded.event_us < now_us - cv.ttl_us;
      const bool current = vl == layout;  // written with the view's layout: types match
      for (size_t j = 0; j < cv.features.size(); ++j) {
        OnlineColumn& c = resp.columns[first_col + j];
        int i = current ? cv.idx[j] : vl->Find(cv.features[j]);
        if (i < 0 || (!current && !vl->types[i]->Equals(*c.type))) continue;  // newer feature
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

arrow::Result<std::shared_ptr<const Layout>> OnlineService::StoredLayout(const std::string& view,
                                                                         uint64_t fingerprint) {
  auto lk = std::make_pair(view, fingerprint);
  {
    std::shared_lock lock(impl_->mu);
    auto it = impl_->stored_layouts.find(lk);
    if (it != impl_->stored_layouts.end()) return it->second;
  }
  std::string key = LayoutKey(view, fingerprint);
  std::string_view kv = key;
  std::vector<std::optional<std::string>> got;
  ARROW_RETURN_NOT_OK(store_->MultiGet(std::span<const std::string_view>(&kv, 1), &got));
  if (!got[0] || got[0]->size() < kVersionPrefixSize) {
    return arrow::Status::IOError("online store: no layout stored for a value of view '", view,
                                  "'; run `stratalake materialize`");
  }
  ARROW_ASSIGN_OR_RAISE(auto parsed,
                        ParseLayout(std::string_view(*got[0]).substr(kVersionPrefixSize)));
  auto layout = std::make_shared<const Layout>(std::move(parsed));
  std::unique_lock lock(impl_->mu);
  impl_->stored_layouts[lk] = layout;
  return layout;
}

namespace {
// A JSON list of quoted strings formatted from `values`, kept and reused while
// the next call passes equal values (OnlineResponse::AppendJson).
struct QuotedList {
  std::span<const std::byte> last;  // the values `text` was formatted from
  bool valid = false;
  std::string text;
  template <typename T, typename Format>
  const std::string& Get(std::span<const T> values, Format format) {
    auto bytes = std::as_bytes(values);
    if (!valid || bytes.size() != last.size() ||
        std::memcmp(bytes.data(), last.data(), bytes.size()) != 0) {
      text.clear();
      for (size_t r = 0; r < values.size(); ++r) {
        text.append(r ? ",\"" : "\"");
        format(values[r], &text);
        text.push_back('"');
      }
      last = bytes;
      valid = true;
    }
    return text;
  }
};
}  // namespace

void OnlineResponse::AppendJson(std::string* out) const {
  using namespace std::string_view_literals;
  out->append("{\"metadata\":{\"feature_names\":["sv);
  for (size_t c = 0; c < columns.size(); ++c) {
    if (c) out->push_back(',');
    AppendJsonString(columns[c].name, out);
  }
  out->append("]},\"results\":["sv);
  // The features of one view share their rows' statuses and times (all but
  // NULL_VALUE): each list is formatted once per distinct run of columns.
  QuotedList statuses_list, times_list;
  for (size_t c = 0; c < columns.size(); ++c) {
    const OnlineColumn& col = columns[c];
    if (c) out->push_back(',');
    out->append("{\"values\":["sv);
    if (col.is_join_key) {
      for (size_t r = 0; r < rows; ++r) {
        if (r) out->push_back(',');
        AppendKeyJson((*col.keys)[r], out);
      }
    } else {
      AppendFieldListJson(*col.type, col.values, col.statuses, out);
    }
    out->append("],\"statuses\":["sv);
    if (col.is_join_key) {
      for (size_t r = 0; r < rows; ++r) out->append(r ? ",\"PRESENT\""sv : "\"PRESENT\""sv);
    } else {
      out->append(statuses_list.Get(
          std::span<const FeatureStatus>(col.statuses),
          [](FeatureStatus st, std::string* o) { o->append(FeatureStatusName(st)); }));
    }
    out->append("],\"event_timestamps\":["sv);
    if (col.is_join_key) {
      for (size_t r = 0; r < rows; ++r) {
        out->append(r ? ",\"1970-01-01T00:00:00Z\""sv : "\"1970-01-01T00:00:00Z\""sv);
      }
    } else {
      out->append(times_list.Get(std::span<const int64_t>(col.event_us), AppendTimestampMicros));
    }
    out->append("]}"sv);
  }
  out->append("]}"sv);
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
