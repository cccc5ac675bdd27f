// Plans (diffs + compatibility policy) and the versioned Registry over a RegistryStore.
#include <algorithm>
#include <chrono>
#include <set>

#include <arrow/api.h>

#include "registry/store.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {

const char* CompatibilityPolicyName(CompatibilityPolicy p) {
  switch (p) {
    case CompatibilityPolicy::kBackward:
      return "backward";
    case CompatibilityPolicy::kForward:
      return "forward";
    case CompatibilityPolicy::kFull:
      return "full";
    case CompatibilityPolicy::kNone:
      return "none";
  }
  return "?";
}

arrow::Result<CompatibilityPolicy> ParseCompatibilityPolicy(const std::string& text) {
  if (text == "backward") return CompatibilityPolicy::kBackward;
  if (text == "forward") return CompatibilityPolicy::kForward;
  if (text == "full") return CompatibilityPolicy::kFull;
  if (text == "none") return CompatibilityPolicy::kNone;
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                   "unknown compatibility policy '" + text +
                       "': use backward (the default), forward, full or none");
}

const char* ChangeTypeName(ChangeType t) {
  switch (t) {
    case ChangeType::kAdd:
      return "add";
    case ChangeType::kModify:
      return "modify";
    case ChangeType::kRemove:
      return "remove";
  }
  return "?";
}

int64_t RegistryState::ObjectVersion(ObjectKind kind, const std::string& name) const {
  auto it = object_versions.find(std::string(ObjectKindName(kind)) + "/" + name);
  return it == object_versions.end() ? 0 : it->second;
}

TypeChange ClassifyTypeChange(const arrow::DataType& from, const arrow::DataType& to) {
  if (FeatureTypeName(from) == FeatureTypeName(to)) return TypeChange::kSame;
  auto rank = [](const arrow::DataType& t) -> std::pair<int, int> {
    switch (t.id()) {
      case arrow::Type::INT8:
        return {0, 1};
      case arrow::Type::INT16:
        return {0, 2};
      case arrow::Type::INT32:
        return {0, 3};
      case arrow::Type::INT64:
        return {0, 4};
      case arrow::Type::FLOAT:
        return {1, 1};
      case arrow::Type::DOUBLE:
        return {1, 2};
      default:
        return {-1, 0};
    }
  };
  auto [ff, fr] = rank(from);
  auto [tf, tr] = rank(to);
  if (ff < 0 || tf < 0) return TypeChange::kOther;
  if (ff == tf) return tr > fr ? TypeChange::kWiden : TypeChange::kNarrow;
  if (ff == 0 && fr <= 3 && to.id() == arrow::Type::DOUBLE) return TypeChange::kWiden;
  if (tf == 0 && tr <= 3 && from.id() == arrow::Type::DOUBLE) return TypeChange::kNarrow;
  return TypeChange::kOther;
}

namespace {

// ---- compatibility ------------------------------------------------------------

class CompatChecker {
 public:
  CompatChecker(CompatibilityPolicy p, std::vector<std::string>* out) : policy_(p), out_(out) {}

  void Fields(const std::string& what, const SourceLocation& loc, const std::vector<Field>& before,
              const std::vector<Field>& after, const std::string& noun, const std::string& object) {
    if (policy_ == CompatibilityPolicy::kNone) return;
    std::map<std::string, const Field*> now;
    for (const auto& f : after) now[f.name] = &f;
    for (const auto& f : before) {
      auto it = now.find(f.name);
      if (it == now.end()) {
        if (policy_ == CompatibilityPolicy::kBackward || policy_ == CompatibilityPolicy::kFull) {
          Refuse(what, loc, "removing " + noun + " '" + f.name + "'",
                 "readers that use it (feature services, training code, models) would break",
                 object);
        }
        continue;
      }
      if (!f.type || !it->second->type) continue;
      TypeChange tc = ClassifyTypeChange(*f.type, *it->second->type);
      std::string change = "changing the type of " + noun + " '" + f.name + "' from " +
                           FeatureTypeName(*f.type) + " to " + FeatureTypeName(*it->second->type);
      switch (tc) {
        case TypeChange::kSame:
          break;
        case TypeChange::kWiden:
          if (policy_ == CompatibilityPolicy::kForward || policy_ == CompatibilityPolicy::kFull) {
            Refuse(what, loc, change, "readers of the old type cannot hold the wider values",
                   object);
          }
          break;
        case TypeChange::kNarrow:
          if (policy_ == CompatibilityPolicy::kBackward || policy_ == CompatibilityPolicy::kFull) {
            Refuse(what, loc, change, "values written before the change may not fit the new type",
                   object);
          }
          break;
        case TypeChange::kOther:
          Refuse(what, loc, change, "the two types are not convertible without loss", object);
          break;
      }
    }
  }

  void Keys(const std::string& what, const SourceLocation& loc, const std::string& before,
            const std::string& after, const std::string& object) {
    if (policy_ == CompatibilityPolicy::kNone || before == after) return;
    Refuse(what, loc, "changing the join keys from (" + before + ") to (" + after + ")",
           "stored features, online values and saved datasets are keyed by the old join keys",
           object);
  }

 private:
  void Refuse(const std::string& what, const SourceLocation& loc, const std::string& change,
              const std::string& why, const std::string& object) {
    std::string where = loc.file.empty() ? "" : " (" + loc.ToString() + ")";
    out_->push_back(what + where + ": " + change + " is not allowed under the '" +
                    CompatibilityPolicyName(policy_) + "' compatibility policy: " + why +
                    ". Keep the old definition and publish the change under a new name (e.g. '" +
                    object +
                    "_v2'), or set `compatibility: none` in stratalake.yaml if nothing "
                    "depends on it.");
  }

  CompatibilityPolicy policy_;
  std::vector<std::string>* out_;
};

std::string KeySignature(const Definitions& defs, const std::vector<std::string>& entities) {
  std::string sig;
  for (const auto& en : entities) {
    const Entity* e = defs.FindEntity(en);
    if (!e) continue;
    for (const auto& k : e->join_keys) {
      if (!sig.empty()) sig += ", ";
      sig += k.name + " " + (k.type ? FeatureTypeName(*k.type) : "?");
    }
  }
  return sig;
}

std::string KeySignature(const Entity& e) {
  std::string sig;
  for (const auto& k : e.join_keys) {
    if (!sig.empty()) sig += ", ";
    sig += k.name + " " + (k.type ? FeatureTypeName(*k.type) : "?");
  }
  return sig;
}

// The "features[amount]" part of "features[amount].type", or "" when the path
// is not inside a named list element.
std::string ElementOf(const std::string& path) {
  auto close = path.find(']');
  if (close == std::string::npos || path.find('[') == std::string::npos) return "";
  return path.substr(0, close + 1);
}

// Turns the field changes of an element that was wholly added or removed (a
// feature, a column) into one change "features[amount]: float64".
std::vector<FieldChange> CollapseElements(std::vector<FieldChange> fields,
                                          const std::map<std::string, std::string>& before,
                                          const std::map<std::string, std::string>& after) {
  auto present = [](const std::map<std::string, std::string>& m, const std::string& elem) {
    auto it = m.lower_bound(elem);
    return it != m.end() && it->first.compare(0, elem.size(), elem) == 0;
  };
  auto summary = [](const std::map<std::string, std::string>& m, const std::string& elem) {
    auto it = m.find(elem + ".type");
    if (it != m.end()) return it->second;
    it = m.find(elem + ".view");
    return it != m.end() ? it->second : std::string();
  };
  std::vector<FieldChange> out;
  std::set<std::string> done;
  for (auto& f : fields) {
    std::string elem = ElementOf(f.path);
    bool whole = !elem.empty() && (present(before, elem) != present(after, elem));
    if (!whole) {
      out.push_back(std::move(f));
      continue;
    }
    if (!done.insert(elem).second) continue;
    if (present(after, elem)) {
      out.push_back({elem, std::nullopt, summary(after, elem)});
    } else {
      out.push_back({elem, summary(before, elem), std::nullopt});
    }
  }
  return out;
}

// Emits changes for one kind of object.
template <typename T>
void DiffKind(ObjectKind kind, const std::vector<T>& before, const std::vector<T>& after,
              const RegistryState& head, Plan* plan) {
  std::map<std::string, const T*> old_by_name;
  for (const auto& o : before) old_by_name[o.name] = &o;
  std::set<std::string> now;
  for (const auto& o : after) {
    now.insert(o.name);
    std::string spec = ToCanonicalJson(o);
    auto it = old_by_name.find(o.name);
    ObjectChange c{kind, o.name, ChangeType::kAdd, 0, {}, spec, o.loc};
    if (it == old_by_name.end()) {
      for (auto& [path, value] : FlattenJson(spec)) {
        if (path != "name") c.fields.push_back({path, std::nullopt, value});
      }
      plan->changes.push_back(std::move(c));
      continue;
    }
    std::string old_spec = ToCanonicalJson(*it->second);
    if (old_spec == spec) continue;
    c.type = ChangeType::kModify;
    c.from_version = head.ObjectVersion(kind, o.name);
    auto a = FlattenJson(old_spec);
    auto b = FlattenJson(spec);
    std::set<std::string> paths;
    for (auto& [p, v] : a) paths.insert(p);
    for (auto& [p, v] : b) paths.insert(p);
    for (const auto& p : paths) {
      auto ia = a.find(p);
      auto ib = b.find(p);
      std::optional<std::string> va, vb;
      if (ia != a.end()) va = ia->second;
      if (ib != b.end()) vb = ib->second;
      if (va != vb) c.fields.push_back({p, va, vb});
    }
    c.fields = CollapseElements(std::move(c.fields), a, b);
    plan->changes.push_back(std::move(c));
  }
  for (const auto& o : before) {
    if (now.count(o.name)) continue;
    ObjectChange c{kind, o.name, ChangeType::kRemove, head.ObjectVersion(kind, o.name), {},
                   "",   o.loc};
    plan->changes.push_back(std::move(c));
  }
}

Plan ComputePlan(const RegistryState& head, const Definitions& desired,
                 CompatibilityPolicy policy) {
  Plan plan;
  plan.base_version = head.version;
  const Definitions& old = head.defs;
  DiffKind(ObjectKind::kEntity, old.entities, desired.entities, head, &plan);
  DiffKind(ObjectKind::kSource, old.sources, desired.sources, head, &plan);
  DiffKind(ObjectKind::kFeatureView, old.feature_views, desired.feature_views, head, &plan);
  DiffKind(ObjectKind::kFeatureService, old.feature_services, desired.feature_services, head,
           &plan);
  DiffKind(ObjectKind::kRequestSource, old.request_sources, desired.request_sources, head, &plan);
  DiffKind(ObjectKind::kOnDemandFeatureView, old.on_demand_feature_views,
           desired.on_demand_feature_views, head, &plan);
  DiffKind(ObjectKind::kTransformation, old.transformations, desired.transformations, head, &plan);

  CompatChecker check(policy, &plan.incompatibilities);
  for (const auto& e : desired.entities) {
    const Entity* prev = old.FindEntity(e.name);
    if (prev)
      check.Keys("entity '" + e.name + "'", e.loc, KeySignature(*prev), KeySignature(e), e.name);
  }
  for (const auto& s : desired.sources) {
    const Source* prev = old.FindSource(s.name);
    if (prev) {
      check.Fields("source '" + s.name + "'", s.loc, prev->schema, s.schema, "column", s.name);
    }
  }
  for (const auto& v : desired.on_demand_feature_views) {
    const OnDemandFeatureView* prev = old.FindOnDemandFeatureView(v.name);
    if (!prev) continue;
    auto fields = [](const OnDemandFeatureView& odfv) {
      std::vector<Field> out;
      for (const auto& f : odfv.features) out.push_back(f.field);
      return out;
    };
    check.Fields("on-demand feature view '" + v.name + "'", v.loc, fields(*prev), fields(v),
                 "feature", v.name);
  }
  for (const auto& t : desired.transformations) {
    // A declared output schema is the output table's contract, like a source's
    // schema. Dropping the declaration drops no column: nothing to check then.
    const Transformation* prev = old.FindTransformation(t.name);
    if (!prev || prev->schema.empty() || t.schema.empty()) continue;
    check.Fields("transformation '" + t.name + "'", t.loc, prev->schema, t.schema, "column",
                 t.name);
  }
  for (const auto& v : desired.feature_views) {
    const FeatureView* prev = old.FindFeatureView(v.name);
    if (!prev) continue;
    check.Keys("feature view '" + v.name + "'", v.loc, KeySignature(old, prev->entities),
               KeySignature(desired, v.entities), v.name);
    check.Fields("feature view '" + v.name + "'", v.loc, prev->features, v.features, "feature",
                 v.name);
  }
  return plan;
}

arrow::Result<std::shared_ptr<const RegistryState>> BuildState(
    int64_t version, const std::vector<StoredObject>& rows) {
  auto state = std::make_shared<RegistryState>();
  state->version = version;
  for (const auto& r : rows) {
    ARROW_ASSIGN_OR_RAISE(ObjectKind kind, ParseObjectKind(r.kind));
    ARROW_RETURN_NOT_OK(AddFromCanonicalJson(kind, r.spec, &state->defs));
    state->object_versions[r.kind + "/" + r.name] = r.object_version;
  }
  return state;
}

// A line diff of two texts (a query): every line of the longest common
// subsequence kept ("  "), the others removed ("- ") or added ("+ ").
std::vector<std::string> LineDiff(const std::string& before, const std::string& after) {
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      out.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    while (!out.empty() && out.back().empty()) out.pop_back();
    return out;
  };
  const auto a = lines(before), b = lines(after);
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> lcs(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::vector<std::string> out;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      out.push_back("  " + a[i++]);
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push_back("- " + a[i++]);
    } else {
      out.push_back("+ " + b[j++]);
    }
  }
  return out;
}

}  // namespace

std::string Plan::ToString() const {
  int adds = 0, mods = 0, rems = 0;
  for (const auto& c : changes) {
    adds += c.type == ChangeType::kAdd;
    mods += c.type == ChangeType::kModify;
    rems += c.type == ChangeType::kRemove;
  }
  std::string out;
  if (changes.empty()) {
    return "No changes: the registry (version " + std::to_string(base_version) +
           ") matches the definitions.\n";
  }
  out += "Registry version " + std::to_string(base_version) + " -> " +
         std::to_string(base_version + 1) + ": " + std::to_string(adds) + " to add, " +
         std::to_string(mods) + " to change, " + std::to_string(rems) + " to remove\n";
  for (const auto& c : changes) {
    char mark = c.type == ChangeType::kAdd ? '+' : c.type == ChangeType::kModify ? '~' : '-';
    out += std::string(1, mark) + " " + ObjectKindName(c.kind) + " " + c.name;
    if (c.type == ChangeType::kModify) {
      out += "  (v" + std::to_string(c.from_version) + " -> v" +
             std::to_string(c.from_version + 1) + ")";
    }
    if (!c.loc.file.empty() && c.type != ChangeType::kRemove) out += "  " + c.loc.ToString();
    out += "\n";
    if (c.type == ChangeType::kModify) {
      for (const auto& f : c.fields) {
        if (f.before && f.after &&
            (f.before->find('\n') != std::string::npos ||
             f.after->find('\n') != std::string::npos)) {
          out += "    ~ " + f.path + ":\n";  // a query: line by line
          for (const auto& line : LineDiff(*f.before, *f.after)) out += "        " + line + "\n";
        } else if (f.before && f.after) {
          out += "    ~ " + f.path + ": " + *f.before + " -> " + *f.after + "\n";
        } else if (f.after) {
          out += "    + " + f.path + ": " + *f.after + "\n";
        } else {
          out += "    - " + f.path + ": " + *f.before + "\n";
        }
      }
    }
  }
  for (const auto& i : incompatibilities) out += "! " + i + "\n";
  return out;
}

// ---- Registry -----------------------------------------------------------------

Registry::Registry(std::unique_ptr<RegistryStore> store, std::shared_ptr<Clock> clock)
    : store_(std::move(store)), clock_(std::move(clock)) {}
Registry::~Registry() = default;

arrow::Result<std::unique_ptr<Registry>> Registry::Open(const std::string& uri,
                                                        std::shared_ptr<Clock> clock) {
  ARROW_ASSIGN_OR_RAISE(auto store, OpenRegistryStore(uri));
  if (!clock) clock = Clock::System();
  return std::unique_ptr<Registry>(new Registry(std::move(store), std::move(clock)));
}

std::unique_ptr<Registry> Registry::FromStore(std::unique_ptr<RegistryStore> store,
                                              std::shared_ptr<Clock> clock) {
  if (!clock) clock = Clock::System();
  return std::unique_ptr<Registry>(new Registry(std::move(store), std::move(clock)));
}

arrow::Result<int64_t> Registry::HeadVersion() { return store_->HeadVersion(); }

arrow::Result<std::shared_ptr<const RegistryState>> Registry::Load(std::optional<int64_t> version) {
  int64_t v;
  if (version) {
    v = *version;
  } else {
    ARROW_ASSIGN_OR_RAISE(v, store_->HeadVersion());
  }
  ARROW_ASSIGN_OR_RAISE(auto rows, store_->ObjectsAt(v));
  return BuildState(v, rows);
}

arrow::Result<Plan> Registry::PlanChanges(const Definitions& desired, CompatibilityPolicy policy) {
  ARROW_ASSIGN_OR_RAISE(auto head, Load());
  return ComputePlan(*head, desired, policy);
}

arrow::Result<ApplyResult> Registry::Apply(const Definitions& desired, CompatibilityPolicy policy,
                                           const std::string& author, const std::string& message) {
  ARROW_ASSIGN_OR_RAISE(auto head, Load());
  ApplyResult result;
  result.plan = ComputePlan(*head, desired, policy);
  result.version = head->version;
  if (!result.plan.incompatibilities.empty()) {
    std::string msg = std::to_string(result.plan.incompatibilities.size()) +
                      " incompatible change(s); nothing was applied";
    for (const auto& i : result.plan.incompatibilities) msg += "\n  " + i;
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kIncompatibleChange, msg);
  }
  if (result.plan.empty()) return result;

  std::vector<StoredObject> rows;
  for (const auto& c : result.plan.changes) {
    StoredObject row;
    row.kind = ObjectKindName(c.kind);
    row.name = c.name;
    row.object_version = head->ObjectVersion(c.kind, c.name) + 1;
    row.deleted = c.type == ChangeType::kRemove;
    row.spec = c.spec;
    rows.push_back(std::move(row));
  }
  VersionRecord info;
  info.committed_at_ms = clock_->NowMillis();
  info.author = author;
  info.message = message;
  info.num_changes = static_cast<int32_t>(rows.size());
  auto committed = store_->Commit(head->version, info, rows);
  if (committed.ok()) {
    result.version = committed->version;
    result.changed = true;
    return result;
  }
  if (!HasErrorKind(committed.status(), ErrorKind::kRegistryConflict)) return committed.status();
  // Someone else committed first. If they applied the same definitions, we are done.
  ARROW_ASSIGN_OR_RAISE(auto now, Load());
  Plan replan = ComputePlan(*now, desired, policy);
  if (replan.empty()) {
    result.plan = replan;
    result.version = now->version;
    result.changed = false;
    return result;
  }
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kRegistryConflict,
                   "another apply committed registry version " + std::to_string(now->version) +
                       " while this one was based on version " + std::to_string(head->version) +
                       "; nothing was applied. Review the difference with `stratalake plan` and "
                       "apply again.");
}

arrow::Result<std::vector<ObjectVersionInfo>> Registry::History(ObjectKind kind,
                                                                const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto rows, store_->ObjectHistory(ObjectKindName(kind), name));
  if (rows.empty()) {
    return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                     std::string("no ") + ObjectKindName(kind) + " named '" + name +
                         "' was ever applied to the registry");
  }
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->Versions());
  std::map<int64_t, const VersionRecord*> by_version;
  for (const auto& v : versions) by_version[v.version] = &v;
  std::vector<ObjectVersionInfo> out;
  for (const auto& r : rows) {
    ObjectVersionInfo info;
    info.object_version = r.object_version;
    info.registry_version = r.registry_version;
    info.deleted = r.deleted;
    info.spec = r.spec;
    auto it = by_version.find(r.registry_version);
    if (it != by_version.end()) {
      info.committed_at_ms = it->second->committed_at_ms;
      info.author = it->second->author;
    }
    out.push_back(std::move(info));
  }
  return out;
}

arrow::Result<std::vector<Registry::VersionInfo>> Registry::Versions() {
  ARROW_ASSIGN_OR_RAISE(auto versions, store_->Versions());
  std::vector<VersionInfo> out;
  for (const auto& v : versions) {
    out.push_back({v.version, v.committed_at_ms, v.author, v.message, v.num_changes});
  }
  return out;
}

arrow::Status Registry::PutState(const std::string& key, const std::string& value) {
  return store_->PutState(key, value, clock_->NowMillis());
}

arrow::Result<std::optional<std::string>> Registry::GetState(const std::string& key) {
  return store_->GetState(key);
}

std::string Registry::Describe() const { return store_->Describe(); }

// ---- RegistryCache ------------------------------------------------------------

RegistryCache::RegistryCache(std::shared_ptr<Registry> registry, std::shared_ptr<Clock> clock,
                             int64_t min_check_interval_ms)
    : registry_(std::move(registry)),
      clock_(clock ? std::move(clock) : Clock::System()),
      min_check_interval_ms_(min_check_interval_ms) {}

RegistryCache::~RegistryCache() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

arrow::Result<std::shared_ptr<const RegistryState>> RegistryCache::Get() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ && (refreshing_in_background_ ||
                   clock_->NowMillis() - last_check_ms_ < min_check_interval_ms_)) {
      return state_;
    }
  }
  arrow::Status st = Check(/*only_if_due=*/true);
  std::lock_guard<std::mutex> lock(mu_);
  if (state_) return state_;  // a failed check keeps serving the held state
  return st;
}

arrow::Status RegistryCache::Refresh() { return Check(/*only_if_due=*/false); }

arrow::Status RegistryCache::Check(bool only_if_due) {
  std::lock_guard<std::mutex> check_lock(check_mu_);
  int64_t now = clock_->NowMillis();
  std::shared_ptr<const RegistryState> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Another caller may have checked while this one waited for check_mu_.
    if (only_if_due && state_ && now - last_check_ms_ < min_check_interval_ms_) {
      return arrow::Status::OK();
    }
    held = state_;
  }
  std::shared_ptr<const RegistryState> loaded;
  arrow::Result<int64_t> head = registry_->HeadVersion();
  arrow::Status st = head.status();
  if (st.ok() && !(held && held->version == *head)) {
    auto r = registry_->Load(*head);
    st = r.status();
    if (r.ok()) loaded = std::move(r).ValueUnsafe();
  }
  std::lock_guard<std::mutex> lock(mu_);
  last_check_ms_ = now;
  if (loaded) {
    state_ = std::move(loaded);
    ++loads_;
  }
  if (st.ok()) {
    last_error_.clear();
  } else {
    ++failures_;
    last_error_ = st.message();
  }
  return st;
}

void RegistryCache::StartRefreshThread() {
  std::lock_guard<std::mutex> lock(mu_);
  if (refreshing_in_background_) return;
  refreshing_in_background_ = true;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> stop_lock(stop_mu_);
    while (!stop_cv_.wait_for(stop_lock, std::chrono::milliseconds(min_check_interval_ms_),
                              [this] { return stopping_; })) {
      stop_lock.unlock();
      (void)Check(/*only_if_due=*/false);  // a failure is kept in last_error()
      stop_lock.lock();
    }
  });
}

int64_t RegistryCache::loads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loads_;
}

int64_t RegistryCache::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

std::string RegistryCache::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

}  // namespace stratalake::registry
