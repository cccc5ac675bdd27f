// Resolving feature references and feature services into per-view requests,
// shared by training-set retrieval and online serving.
#include <algorithm>
#include <set>

#include "common/errors.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {

namespace {

arrow::Status AddRef(const Definitions& defs, const std::string& view_name,
                     const std::vector<std::string>& features, const std::string& alias,
                     const std::map<std::string, std::string>& key_map,
                     std::vector<ViewRequest>* out, size_t* next_position) {
  const FeatureView* v = defs.FindFeatureView(view_name);
  // On-demand views are computed, not looked up: OnDemandPlan (on_demand.h) has them.
  if (!v && defs.FindOnDemandFeatureView(view_name)) return arrow::Status::OK();
  if (!v) {
    std::vector<std::string> names;
    for (const auto& fv : defs.feature_views) names.push_back(fv.name);
    for (const auto& odfv : defs.on_demand_feature_views) names.push_back(odfv.name);
    return UserError(
        ErrorKind::kFeatureNotFound,
        "unknown feature view '" + view_name + "' (feature views: " + JoinNames(names) + ")");
  }
  std::vector<std::string> wanted = features;
  if (wanted.empty()) {
    for (const auto& f : v->features) wanted.push_back(f.name);
  }
  for (const auto& f : wanted) {
    bool found = false;
    for (const auto& vf : v->features) found = found || vf.name == f;
    if (!found) {
      std::vector<std::string> names;
      for (const auto& vf : v->features) names.push_back(vf.name);
      return UserError(ErrorKind::kFeatureNotFound, "feature view '" + view_name +
                                                        "' has no feature '" + f +
                                                        "' (features: " + JoinNames(names) + ")");
    }
  }
  std::string label = alias.empty() ? view_name : alias;
  ViewRequest* r = nullptr;
  for (auto& existing : *out) {
    if (existing.view == v && existing.label == label && existing.key_map == key_map) {
      r = &existing;
      break;
    }
  }
  if (!r) r = &out->emplace_back(ViewRequest{v, label, {}, key_map, {}});
  for (const auto& f : wanted) {
    if (std::find(r->features.begin(), r->features.end(), f) == r->features.end()) {
      r->features.push_back(f);
      r->positions.push_back((*next_position)++);
    }
  }
  return arrow::Status::OK();
}

arrow::Status ExpandService(const Definitions& defs, const std::string& name,
                            std::set<std::string>* seen, std::vector<ViewRequest>* out,
                            size_t* next_position) {
  const FeatureService* s = defs.FindFeatureService(name);
  if (!s) {
    std::vector<std::string> names;
    for (const auto& fs : defs.feature_services) names.push_back(fs.name);
    return UserError(
        ErrorKind::kFeatureNotFound,
        "unknown feature service '" + name + "' (feature services: " + JoinNames(names) + ")");
  }
  if (!seen->insert(name).second) return arrow::Status::OK();
  for (const auto& item : s->items) {
    ARROW_RETURN_NOT_OK(
        AddRef(defs, item.view, item.features, item.alias, item.join_key_map, out, next_position));
  }
  for (const auto& inc : s->includes) {
    ARROW_RETURN_NOT_OK(ExpandService(defs, inc, seen, out, next_position));
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::vector<ViewRequest>> ResolveFeatureRequest(
    const Definitions& defs, const std::vector<std::string>& features,
    const std::string& feature_service) {
  std::vector<ViewRequest> out;
  size_t next_position = 0;
  if (!feature_service.empty() && !features.empty()) {
    return UserError(ErrorKind::kDefinitionError,
                     "pass either features or a feature service, not both");
  }
  if (!feature_service.empty()) {
    std::set<std::string> seen;
    ARROW_RETURN_NOT_OK(ExpandService(defs, feature_service, &seen, &out, &next_position));
  } else {
    if (features.empty()) {
      return UserError(ErrorKind::kDefinitionError,
                       "no features requested: pass view:feature references or a feature service");
    }
    for (const auto& ref : features) {
      auto colon = ref.find(':');
      std::vector<std::string> f;
      if (colon != std::string::npos) f.push_back(ref.substr(colon + 1));
      ARROW_RETURN_NOT_OK(AddRef(defs, ref.substr(0, colon), f, "", {}, &out, &next_position));
    }
  }
  return out;
}

arrow::Result<std::vector<std::vector<std::string>>> FeatureOutputNames(
    const std::vector<ViewRequest>& views, bool full_feature_names,
    std::map<std::string, std::string> taken, const std::string& advice) {
  std::vector<std::vector<std::string>> out;
  out.reserve(views.size());
  for (const auto& vr : views) {
    auto& names = out.emplace_back();
    for (const auto& f : vr.features) {
      std::string name = full_feature_names ? vr.label + "__" + f : f;
      std::string what = "feature '" + vr.label + ":" + f + "'";
      auto [it, fresh] = taken.emplace(name, what);
      if (!fresh) {
        return UserError(ErrorKind::kDefinitionError, "output column '" + name +
                                                          "' would hold both " + it->second +
                                                          " and " + what + "; " + advice);
      }
      names.push_back(std::move(name));
    }
  }
  return out;
}

}  // namespace stratalake::registry
