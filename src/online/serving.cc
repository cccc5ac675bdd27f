// get_online_features: resolve the request against the registry held in
// memory, build every key, fetch them all in one MultiGet, decode only the
// requested features, and apply the TTL relative to the clock.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include <arrow/api.h>

#include "common/errors.h"
#include "online/codec.h"
#include "online/window_tiles.h"
#include "stratalake/on_demand.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

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
  std::string label;                              // the view's name, or its alias in a service
  int64_t ttl_us = 0;
};

struct CompiledRequest {
  std::shared_ptr<const registry::RegistryState> state;  // keeps `view` pointers alive
  std::vector<CompiledView> views;
  std::set<std::string> output_names;
  /// The request's on-demand features (nullptr: none), compiled once per
  /// registry version; their stored inputs are the hidden views.
  std::shared_ptr<const registry::OnDemandPlan> on_demand;
};

// Hidden columns (on-demand inputs) are named OnDemandPlan::DependencyColumn.
bool IsHiddenColumn(const std::string& name) { return name.rfind("__on_demand__", 0) == 0; }

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
  auto named = registry::FeatureOutputNames(views, req.full_feature_names, {},
                                            "pass " + Mention(Term::kFullFeatureNames));
  if (!named.ok()) return WithTerms(named.status(), {Term::kFullFeatureNames});
  auto names = std::move(named).ValueUnsafe();
  auto out = std::make_shared<CompiledRequest>();
  ARROW_ASSIGN_OR_RAISE(out->on_demand,
                        registry::OnDemandPlan::Make(defs, req.features, req.feature_service,
                                                     req.full_feature_names));
  if (out->on_demand) {
    for (const auto& dep : out->on_demand->dependencies()) {
      if (!dep.view->online) {
        return UserError(ErrorKind::kFeatureNotFound,
                         "on-demand features read feature view '" + dep.view->name +
                             "', which is not served online (online: false in its definition)");
      }
      // A view the request reads anyway (same keys) carries the inputs too:
      // one lookup per key, not two.
      size_t at = views.size();
      for (size_t v = 0; v < views.size(); ++v) {
        if (views[v].view == dep.view && views[v].key_map.empty()) at = v;
      }
      if (at == views.size()) {
        views.push_back(dep);
        views.back().features.clear();
        names.emplace_back();
      }
      for (const auto& f : dep.features) {
        views[at].features.push_back(f);
        names[at].push_back(registry::OnDemandPlan::DependencyColumn(dep.view->name, f));
      }
    }
  }
  for (size_t v = 0; v < views.size(); ++v) {
    const registry::ViewRequest& vr = views[v];
    CompiledView cv;
    cv.view = vr.view;
    cv.label = vr.label;
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
    for (const auto& name : cv.names) {
      if (!IsHiddenColumn(name)) out->output_names.insert(name);
    }
    out->views.push_back(std::move(cv));
  }
  if (out->on_demand) {
    for (const auto& o : out->on_demand->outputs()) {
      if (!out->output_names.insert(o.name).second) {
        return WithTerms(
            UserError(ErrorKind::kDefinitionError,
                      "output name '" + o.name +
                          "' would hold both a feature and on-demand feature '" + o.label + ":" +
                          o.feature + "'; pass " + Mention(Term::kFullFeatureNames)),
            {Term::kFullFeatureNames});
      }
    }
  }
  out->state = std::move(state);
  return out;
}

}  // namespace

arrow::Status OnlineStore::MultiGetEach(std::span<const std::string_view> keys,
                                        std::vector<std::optional<std::string>>* values,
                                        std::vector<arrow::Status>* errors) {
  ARROW_RETURN_NOT_OK(MultiGet(keys, values));
  errors->assign(keys.size(), arrow::Status::OK());
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<OnlineStore>> OpenRepositoryStore(const repo::FeatureRepository& repo,
                                                                bool read_only) {
  const auto& c = repo.config();
  if (c.online_store_type == "redis") {
    RedisOptions o;
    o.key_prefix = c.project + ":";
    o.cluster = c.online_store_cluster;
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

namespace {

// Evaluates the on-demand features on the response's rows, adds their columns
// (at slots `first_slot`...) and drops the hidden input columns.
arrow::Status AddOnDemand(const registry::OnDemandPlan& od, const OnlineRequest& req,
                          size_t first_slot, OnlineResponse* resp);

// Adds kNotMaterialized for a view none of whose keys was found when the store
// holds nothing at all for it.
arrow::Status NoteNotMaterialized(OnlineStore& store, const registry::RegistryState& state,
                                  const CompiledView& cv, OnlineResponse* resp) {
  // Materialize and push write the view's layout before any value: without it,
  // nothing was ever written for the view (as it is now defined).
  std::string key = LayoutKey(cv.view->name, cv.layout->fingerprint);
  std::string_view k = key;
  std::vector<std::optional<std::string>> got;
  arrow::Status st = store.MultiGet(std::span<const std::string_view>(&k, 1), &got);
  // The check is only for a warning: a node that is down is no reason to fail the read.
  if (st.IsIOError()) return arrow::Status::OK();
  ARROW_RETURN_NOT_OK(st);
  if (!got.empty() && got[0]) return arrow::Status::OK();
  Warning w;
  w.code = Warning::Code::kNotMaterialized;
  w.view = cv.view->name;
  w.source = cv.view->source;
  const registry::Source* src = state.defs.FindSource(cv.view->source);
  w.push_source = src && src->type == registry::SourceType::kPush;
  resp->warnings.push_back(std::move(w));
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<OnlineResponse> OnlineService::Get(const OnlineRequest& req) {
  ARROW_ASSIGN_OR_RAISE(auto state, cache_.Get());
  if (state->version == 0) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry is empty; run " + Mention(Term::kApply), {Term::kApply});
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
  // A join key given as fractional numbers or booleans arrives as request data.
  auto not_a_key = [&](const std::string& column) -> arrow::Status {
    for (const auto& [name, array] : req.request_data) {
      if (name == column) {
        return UserError(ErrorKind::kSchemaMismatch,
                         "entity '" + name +
                             "' has a value that is neither an integer nor a string (join key "
                             "values are integers or strings)");
      }
    }
    return arrow::Status::OK();
  };
  if (req.entities.empty()) {
    for (const auto& cv : plan->views) {
      for (const auto& col : cv.key_columns) ARROW_RETURN_NOT_OK(not_a_key(col));
    }
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
        ARROW_RETURN_NOT_OK(not_a_key(cv.key_columns[k]));
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
  // A part of the store that is down (a Redis Cluster node) fails only its
  // keys: they become UNAVAILABLE, with one warning per view.
  std::vector<arrow::Status> key_errors;
  ARROW_RETURN_NOT_OK(store_->MultiGetEach(key_views, &resp.fetched, &key_errors));
  // Window views: each row's value is computed from the tiles of the windows ending now.
  for (size_t p = 0; p < nviews; ++p) {
    const CompiledView& cv = plan->views[p];
    if (cv.view->aggregations.empty()) continue;
    arrow::Status st = ReadWindowValues(*store_, *cv.view, *cv.layout,
                                        std::span<const std::string>(keys.data() + p * rows, rows),
                                        clock_->NowMillis() * 1000, resp.fetched.data() + p * rows);
    if (st.IsIOError()) {
      // The tiles are read together: a store error fails the view's rows.
      for (size_t r = 0; r < rows; ++r) {
        if (!keys[p * rows + r].empty()) key_errors[p * rows + r] = st;
        resp.fetched[p * rows + r].reset();
      }
    } else {
      ARROW_RETURN_NOT_OK(st);
    }
  }

  // Output columns: join keys in request order, then features.
  size_t nfeatures = 0;
  for (const auto& cv : plan->views) nfeatures += cv.features.size();
  // On-demand features take the places after the stored ones.
  const size_t nslots = nfeatures + (plan->on_demand ? plan->on_demand->outputs().size() : 0);
  resp.columns.reserve(req.entities.size() + nslots);
  resp.status_store.assign(nslots * rows, FeatureStatus::kNotFound);
  resp.time_store.assign(nslots * rows, 0);
  resp.value_store.assign(nslots * rows, std::string_view());
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
      c.view = cv.label;
      c.type = layout->types[cv.idx[j]];
      c.statuses = std::span<FeatureStatus>(resp.status_store.data() + at, rows);
      c.event_us = std::span<int64_t>(resp.time_store.data() + at, rows);
      c.values = std::span<std::string_view>(resp.value_store.data() + at, rows);
      resp.columns.push_back(std::move(c));
    }
    bool asked = false;  // some row has the view's keys
    bool found = false;  // some row has a stored value
    Warning unavailable;
    for (size_t r = 0; r < rows; ++r) {
      const auto& v = resp.fetched[p * rows + r];
      if (!keys[p * rows + r].empty() && !key_errors[p * rows + r].ok()) {
        if (unavailable.keys++ == 0) unavailable.detail = key_errors[p * rows + r].message();
        for (size_t j = 0; j < cv.features.size(); ++j) {
          resp.columns[first_col + j].statuses[r] = FeatureStatus::kUnavailable;
        }
        continue;
      }
      asked = asked || !keys[p * rows + r].empty();
      found = found || (!keys[p * rows + r].empty() && v);
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
    if (unavailable.keys > 0) {
      unavailable.code = Warning::Code::kStoreUnavailable;
      unavailable.view = cv.view->name;
      unavailable.source = cv.view->source;
      resp.warnings.push_back(std::move(unavailable));
    }
    if (asked && !found) ARROW_RETURN_NOT_OK(NoteNotMaterialized(*store_, *plan->state, cv, &resp));
  }
  if (plan->on_demand) {
    ARROW_RETURN_NOT_OK(AddOnDemand(*plan->on_demand, req, nfeatures, &resp));
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

// A join key column: the request's values as int64, or as utf8 when any is a string.
arrow::Result<std::shared_ptr<arrow::Array>> KeyArray(const std::vector<KeyScalar>& keys) {
  bool strings = false;
  for (const auto& k : keys) strings = strings || std::holds_alternative<std::string>(k);
  if (strings) {
    arrow::StringBuilder b;
    for (const auto& k : keys) {
      if (const auto* s = std::get_if<std::string>(&k)) {
        ARROW_RETURN_NOT_OK(b.Append(*s));
      } else {
        ARROW_RETURN_NOT_OK(b.AppendNull());
      }
    }
    return b.Finish();
  }
  arrow::Int64Builder b;
  for (const auto& k : keys) {
    if (const auto* i = std::get_if<int64_t>(&k)) {
      ARROW_RETURN_NOT_OK(b.Append(*i));
    } else {
      ARROW_RETURN_NOT_OK(b.AppendNull());
    }
  }
  return b.Finish();
}

arrow::Result<std::shared_ptr<arrow::Array>> ValueArray(const OnlineColumn& col, size_t rows) {
  if (col.is_join_key) return KeyArray(*col.keys);
  std::unique_ptr<arrow::ArrayBuilder> b;
  ARROW_ASSIGN_OR_RAISE(b, arrow::MakeBuilder(col.type));
  for (size_t r = 0; r < rows; ++r) {
    ARROW_RETURN_NOT_OK(AppendFieldToBuilder(*col.type, col.values[r],
                                             col.statuses[r] != FeatureStatus::kPresent, b.get()));
  }
  return b->Finish();
}

arrow::Status AddOnDemand(const registry::OnDemandPlan& od, const OnlineRequest& req,
                          size_t first_slot, OnlineResponse* resp) {
  const size_t rows = resp->rows;
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (const auto& f : od.request_fields()) {
    std::shared_ptr<arrow::Array> a;
    for (const auto& [name, array] : req.request_data) {
      if (name == f.name) a = array;
    }
    if (!a) {
      for (const auto& [name, values] : req.entities) {
        if (name != f.name) continue;
        ARROW_ASSIGN_OR_RAISE(a, KeyArray(values));
      }
    }
    if (!a) {
      std::vector<std::string> given;
      for (const auto& e : req.entities) given.push_back(e.first);
      for (const auto& e : req.request_data) given.push_back(e.first);
      return UserError(ErrorKind::kSchemaMismatch,
                       "missing request field '" + f.name +
                           "' for on-demand features: pass it with the entities, one value per "
                           "row (given: " +
                           JoinNames(given) + ")");
    }
    if (static_cast<size_t>(a->length()) != rows) {
      return UserError(ErrorKind::kSchemaMismatch,
                       "request field '" + f.name + "' has " + std::to_string(a->length()) +
                           " values for " + std::to_string(rows) + " entity rows");
    }
    fields.push_back(arrow::field(f.name, a->type()));
    arrays.push_back(std::move(a));
  }
  // A row whose stored inputs could not be read (UNAVAILABLE) gets no
  // on-demand values: they would be computed from nulls that are not nulls.
  std::vector<bool> unavailable(rows, false);
  for (const auto& c : resp->columns) {
    if (c.is_join_key || !IsHiddenColumn(c.name)) continue;
    for (size_t r = 0; r < rows; ++r) {
      if (c.statuses[r] == FeatureStatus::kUnavailable) unavailable[r] = true;
    }
    ARROW_ASSIGN_OR_RAISE(auto a, ValueArray(c, rows));
    fields.push_back(arrow::field(c.name, c.type));
    arrays.push_back(std::move(a));
  }
  auto batch = arrow::RecordBatch::Make(arrow::schema(std::move(fields)),
                                        static_cast<int64_t>(rows), std::move(arrays));
  ARROW_ASSIGN_OR_RAISE(auto results, od.Evaluate(*batch));
  std::erase_if(resp->columns,
                [](const OnlineColumn& c) { return !c.is_join_key && IsHiddenColumn(c.name); });
  const auto& outputs = od.outputs();
  resp->computed.assign(outputs.size(), std::string());
  std::vector<size_t> ends(rows);
  for (size_t j = 0; j < outputs.size(); ++j) {
    const arrow::Array& a = *results[j];
    std::string& bytes = resp->computed[j];
    for (size_t r = 0; r < rows; ++r) {
      if (!a.IsNull(static_cast<int64_t>(r))) AppendFieldValue(a, static_cast<int64_t>(r), &bytes);
      ends[r] = bytes.size();
    }
    const size_t at = (first_slot + j) * rows;
    OnlineColumn c;
    c.name = outputs[j].name;
    c.view = outputs[j].label;
    c.type = outputs[j].type;
    c.statuses = std::span<FeatureStatus>(resp->status_store.data() + at, rows);
    c.event_us = std::span<int64_t>(resp->time_store.data() + at, rows);
    c.values = std::span<std::string_view>(resp->value_store.data() + at, rows);
    for (size_t r = 0; r < rows; ++r) {
      const size_t begin = r == 0 ? 0 : ends[r - 1];
      if (unavailable[r]) {
        c.statuses[r] = FeatureStatus::kUnavailable;
      } else if (a.IsNull(static_cast<int64_t>(r))) {
        c.statuses[r] = FeatureStatus::kNullValue;
      } else {
        c.statuses[r] = FeatureStatus::kPresent;
        c.values[r] = std::string_view(bytes).substr(begin, ends[r] - begin);
      }
    }
    resp->columns.push_back(std::move(c));
  }
  return arrow::Status::OK();
}

// `rows` fixed-width values copied from `from` (nullptr: zeros) into a new buffer.
template <typename Out, typename In>
arrow::Result<std::shared_ptr<arrow::Buffer>> CopyBuffer(const In* from, size_t rows) {
  ARROW_ASSIGN_OR_RAISE(auto buf, arrow::AllocateBuffer(static_cast<int64_t>(rows * sizeof(Out))));
  auto* out = reinterpret_cast<Out*>(buf->mutable_data());
  for (size_t r = 0; r < rows; ++r) out[r] = from ? static_cast<Out>(from[r]) : Out{0};
  return std::shared_ptr<arrow::Buffer>(std::move(buf));
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Table>> OnlineResponse::ToTable() const {
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (const auto& col : columns) {
    ARROW_ASSIGN_OR_RAISE(auto arr, ValueArray(col, rows));
    fields.push_back(arrow::field(col.name, arr->type()));
    arrays.push_back(std::move(arr));
  }
  return arrow::Table::Make(arrow::schema(fields), arrays, static_cast<int64_t>(rows));
}

arrow::Result<OnlineResponse::Batches> OnlineResponse::ToArrow() const {
  static_assert(static_cast<int>(FeatureStatus::kPresent) == 0 &&
                static_cast<int>(FeatureStatus::kOutsideMaxAge) == 3 &&
                static_cast<int>(FeatureStatus::kUnavailable) == 4);
  arrow::StringBuilder names;
  for (auto st : {FeatureStatus::kPresent, FeatureStatus::kNullValue, FeatureStatus::kNotFound,
                  FeatureStatus::kOutsideMaxAge, FeatureStatus::kUnavailable}) {
    ARROW_RETURN_NOT_OK(names.Append(FeatureStatusName(st)));
  }
  ARROW_ASSIGN_OR_RAISE(auto dictionary, names.Finish());
  const auto status_type = arrow::dictionary(arrow::int8(), arrow::utf8());
  const auto time_type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  const auto n = static_cast<int64_t>(rows);
  arrow::FieldVector value_fields, status_fields, time_fields;
  arrow::ArrayVector values, statuses, times;
  for (const auto& col : columns) {
    ARROW_ASSIGN_OR_RAISE(auto arr, ValueArray(col, rows));
    value_fields.push_back(arrow::field(col.name, arr->type()));
    values.push_back(std::move(arr));
    const FeatureStatus* st = col.is_join_key ? nullptr : col.statuses.data();
    ARROW_ASSIGN_OR_RAISE(auto codes, CopyBuffer<int8_t>(st, rows));
    auto indices = std::make_shared<arrow::Int8Array>(n, std::move(codes));
    ARROW_ASSIGN_OR_RAISE(auto status_array,
                          arrow::DictionaryArray::FromArrays(status_type, indices, dictionary));
    status_fields.push_back(arrow::field(col.name, status_type));
    statuses.push_back(std::move(status_array));
    const int64_t* us = col.is_join_key ? nullptr : col.event_us.data();
    ARROW_ASSIGN_OR_RAISE(auto time_buffer, CopyBuffer<int64_t>(us, rows));
    time_fields.push_back(arrow::field(col.name, time_type));
    times.push_back(std::make_shared<arrow::TimestampArray>(time_type, n, std::move(time_buffer)));
  }
  Batches out;
  out.values = arrow::RecordBatch::Make(arrow::schema(value_fields), n, std::move(values));
  out.statuses = arrow::RecordBatch::Make(arrow::schema(status_fields), n, std::move(statuses));
  out.event_timestamps = arrow::RecordBatch::Make(arrow::schema(time_fields), n, std::move(times));
  return out;
}

}  // namespace stratalake::online
