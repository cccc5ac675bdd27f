// On-demand feature views: compiling their expressions against their inputs,
// validating them, and evaluating them on Arrow batches (see on_demand.h).
#include "stratalake/on_demand.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/exec.h>
#include <arrow/compute/expression.h>

#include "common/errors.h"
#include "stratalake/expression.h"
#include "stratalake/status.h"

namespace stratalake::registry {

namespace cp = arrow::compute;

// One input column of an on-demand view's expressions.
struct Input {
  enum class Kind { kRequest, kStored, kComputed };
  Kind kind = Kind::kRequest;
  std::string name;    // as the expressions spell it
  std::string origin;  // request source, feature view or on-demand view
  std::shared_ptr<arrow::DataType> type;
};

struct OnDemandPlan::Step {
  const OnDemandFeatureView* view = nullptr;
  std::vector<Input> inputs;                // those the expressions read, each once
  std::shared_ptr<arrow::Schema> schema;    // the inputs' names and types
  std::vector<cp::Expression> expressions;  // per feature, bound to `schema`
  std::vector<bool> active;                 // per feature: computed by this plan
};

namespace {

std::string JoinStrings(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Types an on-demand feature may have: those the online codec stores as scalars.
bool SupportedType(const arrow::DataType& t) {
  switch (t.id()) {
    case arrow::Type::BOOL:
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE:
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
    case arrow::Type::DATE32:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::DECIMAL128:
      return true;
    default:
      return false;
  }
}

// Every column the sources of `v` offer, in source order. Unknown sources are
// appended to `unknown`.
std::vector<Input> AvailableInputs(const Definitions& defs, const OnDemandFeatureView& v,
                                   std::vector<std::string>* unknown) {
  std::vector<Input> out;
  for (const auto& name : v.sources) {
    if (const RequestSource* rs = defs.FindRequestSource(name)) {
      for (const auto& f : rs->schema) out.push_back({Input::Kind::kRequest, f.name, name, f.type});
    } else if (const FeatureView* fv = defs.FindFeatureView(name)) {
      for (const auto& f : fv->features) {
        out.push_back({Input::Kind::kStored, f.name, name, f.type});
      }
    } else if (const OnDemandFeatureView* odfv = defs.FindOnDemandFeatureView(name)) {
      for (const auto& f : odfv->features) {
        out.push_back({Input::Kind::kComputed, f.field.name, name, f.field.type});
      }
    } else {
      unknown->push_back(name);
    }
  }
  return out;
}

// Compiles every feature of `v`; each problem goes to `problems` as "LOC: what: msg".
// With `only`, just those features are bound and only their inputs are read
// (every feature is still parsed and checked); `refs`, when given, receives
// each feature's referenced input names, in feature order.
std::unique_ptr<OnDemandPlan::Step> CompileView(
    const Definitions& defs, const OnDemandFeatureView& v, std::vector<std::string>* problems,
    const std::set<std::string>* only = nullptr,
    std::vector<std::vector<std::string>>* refs = nullptr) {
  const std::string what = "on-demand feature view '" + v.name + "'";
  std::vector<std::string> unknown;
  std::vector<Input> available = AvailableInputs(defs, v, &unknown);
  const size_t before = problems->size();
  for (const auto& u : unknown) {
    std::vector<std::string> names;
    for (const auto& rs : defs.request_sources) names.push_back(rs.name);
    for (const auto& fv : defs.feature_views) names.push_back(fv.name);
    for (const auto& o : defs.on_demand_feature_views) names.push_back(o.name);
    problems->push_back(v.loc.ToString() + ": " + what + ": unknown source '" + u +
                        "' (request sources and feature views: " + JoinStrings(names) + ")");
  }
  arrow::FieldVector all_fields;
  for (const auto& in : available) {
    if (in.type) all_fields.push_back(arrow::field(in.name, in.type));
  }
  auto all = arrow::schema(all_fields);
  auto step = std::make_unique<OnDemandPlan::Step>();
  step->view = &v;
  std::vector<cp::Expression> parsed;
  std::vector<bool> compiled;  // per feature: parsed without a problem
  for (const auto& f : v.features) {
    const std::string fwhat = what + " feature '" + f.field.name + "'";
    if (!f.field.type) {
      parsed.emplace_back();
      compiled.push_back(false);
      continue;  // the loader reported the missing or bad type
    }
    if (!SupportedType(*f.field.type)) {
      problems->push_back(f.field.loc.ToString() + ": " + fwhat + ": type " +
                          FeatureTypeName(*f.field.type) +
                          " is not supported for on-demand features; use a number, bool, "
                          "string, binary, date, timestamp or decimal");
    }
    auto e = ParseValueExpression(f.expression, *all);
    if (!e.ok()) {
      problems->push_back(f.expression_loc.ToString() + ": " + fwhat + ": " + e.status().message() +
                          (IsUnknownColumnError(e.status())
                               ? "; add the feature view or request source that has it to "
                                 "'sources'"
                               : ""));
      parsed.emplace_back();
      compiled.push_back(false);
      continue;
    }
    parsed.push_back(*e);
    compiled.push_back(true);
    const std::vector<std::string> names = ReferencedColumns(*e);
    if (refs) {
      refs->resize(v.features.size());
      (*refs)[parsed.size() - 1] = names;
    }
    if (only && !only->count(f.field.name)) continue;
    for (const auto& name : names) {
      bool have = false;
      for (const auto& in : step->inputs) have = have || in.name == name;
      if (have) continue;
      for (const auto& in : available) {
        if (in.name == name) {
          step->inputs.push_back(in);
          break;
        }
      }
    }
  }
  arrow::FieldVector fields;
  for (const auto& in : step->inputs) fields.push_back(arrow::field(in.name, in.type));
  step->schema = arrow::schema(fields);
  for (size_t i = 0; i < v.features.size(); ++i) {
    const auto& f = v.features[i];
    const std::string fwhat = what + " feature '" + f.field.name + "'";
    if (!compiled[i] || (only && !only->count(f.field.name))) {
      step->expressions.emplace_back();
      step->active.push_back(false);
      continue;
    }
    auto bound = parsed[i].Bind(*step->schema);
    if (!bound.ok()) {
      problems->push_back(f.expression_loc.ToString() + ": " + fwhat + ": " +
                          bound.status().message());
      step->expressions.emplace_back();
      step->active.push_back(false);
      continue;
    }
    step->active.push_back(true);
    const arrow::DataType& result = *bound->type();
    if (!result.Equals(*f.field.type) && !cp::CanCast(result, *f.field.type)) {
      problems->push_back(f.expression_loc.ToString() + ": " + fwhat + ": the expression gives " +
                          result.ToString() + ", which cannot be cast to the declared type " +
                          FeatureTypeName(*f.field.type) + "; change 'type' or the expression");
    }
    step->expressions.push_back(*std::move(bound));
  }
  if (problems->size() != before) return nullptr;
  return step;
}

// The on-demand views `roots` need, each after the on-demand views it reads.
// A cycle is an error naming it.
arrow::Result<std::vector<const OnDemandFeatureView*>> InDependencyOrder(
    const Definitions& defs, const std::vector<const OnDemandFeatureView*>& roots) {
  std::vector<const OnDemandFeatureView*> order;
  std::set<std::string> done;
  std::vector<std::string> path;
  std::function<arrow::Status(const OnDemandFeatureView*)> visit =
      [&](const OnDemandFeatureView* v) -> arrow::Status {
    if (done.count(v->name)) return arrow::Status::OK();
    if (std::find(path.begin(), path.end(), v->name) != path.end()) {
      std::string cycle;
      for (auto it = std::find(path.begin(), path.end(), v->name); it != path.end(); ++it) {
        cycle += *it + " -> ";
      }
      return UserError(ErrorKind::kDefinitionError,
                       v->loc.ToString() + ": on-demand feature view '" + v->name +
                           "': its sources form a cycle (" + cycle + v->name +
                           "); an on-demand view cannot read itself, even through others");
    }
    path.push_back(v->name);
    for (const auto& s : v->sources) {
      if (const OnDemandFeatureView* dep = defs.FindOnDemandFeatureView(s)) {
        ARROW_RETURN_NOT_OK(visit(dep));
      }
    }
    path.pop_back();
    done.insert(v->name);
    order.push_back(v);
    return arrow::Status::OK();
  };
  for (const auto* r : roots) ARROW_RETURN_NOT_OK(visit(r));
  return order;
}

bool IsName(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])))) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return s.find("__") == std::string::npos;
}

}  // namespace

OnDemandPlan::~OnDemandPlan() = default;

std::string OnDemandPlan::DependencyColumn(const std::string& view, const std::string& feature) {
  return "__on_demand__" + view + "__" + feature;
}

arrow::Result<std::shared_ptr<const OnDemandPlan>> OnDemandPlan::Make(
    const Definitions& defs, const std::vector<std::string>& features,
    const std::string& feature_service, bool full_feature_names) {
  if (defs.on_demand_feature_views.empty()) return nullptr;
  std::shared_ptr<OnDemandPlan> plan(new OnDemandPlan());
  std::set<std::pair<std::string, std::string>> asked;  // (label, feature)
  auto add = [&](const OnDemandFeatureView& v, const std::vector<std::string>& wanted,
                 const std::string& alias) -> arrow::Status {
    std::vector<std::string> names;
    for (const auto& f : v.features) names.push_back(f.field.name);
    const std::string label = alias.empty() ? v.name : alias;
    for (const auto& w : wanted.empty() ? names : wanted) {
      auto it = std::find(names.begin(), names.end(), w);
      if (it == names.end()) {
        return UserError(ErrorKind::kFeatureNotFound,
                         "on-demand feature view '" + v.name + "' has no feature '" + w +
                             "' (features: " + JoinStrings(names) + ")");
      }
      if (!asked.insert({label, w}).second) continue;
      Output o;
      o.view = &v;
      o.label = label;
      o.feature = w;
      o.name = full_feature_names ? label + "__" + w : w;
      o.type = v.features[static_cast<size_t>(it - names.begin())].field.type;
      plan->outputs_.push_back(std::move(o));
    }
    return arrow::Status::OK();
  };
  if (feature_service.empty()) {
    for (const auto& ref : features) {
      auto colon = ref.find(':');
      const OnDemandFeatureView* v = defs.FindOnDemandFeatureView(ref.substr(0, colon));
      if (!v) continue;  // a stored view: ResolveFeatureRequest's
      std::vector<std::string> wanted;
      if (colon != std::string::npos) wanted.push_back(ref.substr(colon + 1));
      ARROW_RETURN_NOT_OK(add(*v, wanted, ""));
    }
  } else {
    std::set<std::string> seen;
    std::function<arrow::Status(const std::string&)> expand =
        [&](const std::string& name) -> arrow::Status {
      const FeatureService* s = defs.FindFeatureService(name);
      if (!s || !seen.insert(name).second) return arrow::Status::OK();
      for (const auto& item : s->items) {
        if (const OnDemandFeatureView* v = defs.FindOnDemandFeatureView(item.view);
            v && !defs.FindFeatureView(item.view)) {
          ARROW_RETURN_NOT_OK(add(*v, item.features, item.alias));
        }
      }
      for (const auto& inc : s->includes) ARROW_RETURN_NOT_OK(expand(inc));
      return arrow::Status::OK();
    };
    ARROW_RETURN_NOT_OK(expand(feature_service));
  }
  if (plan->outputs_.empty()) return nullptr;
  std::set<std::string> out_names;
  for (const auto& o : plan->outputs_) {
    if (!out_names.insert(o.name).second) {
      return UserError(ErrorKind::kDefinitionError,
                       "output column '" + o.name + "' would hold two on-demand features; pass " +
                           Mention(Term::kFullFeatureNames),
                       {Term::kFullFeatureNames});
    }
  }

  std::vector<const OnDemandFeatureView*> roots;
  for (const auto& o : plan->outputs_) {
    if (std::find(roots.begin(), roots.end(), o.view) == roots.end()) roots.push_back(o.view);
  }
  ARROW_ASSIGN_OR_RAISE(auto order, InDependencyOrder(defs, roots));
  // The features each view must compute: those asked for, and those a needed
  // feature of a later view reads (walking the views from last to first).
  std::map<std::string, std::set<std::string>> needed;
  for (const auto& o : plan->outputs_) needed[o.view->name].insert(o.feature);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const OnDemandFeatureView& v = **it;
    std::vector<std::string> problems;
    std::vector<std::vector<std::string>> refs;
    CompileView(defs, v, &problems, nullptr, &refs);
    refs.resize(v.features.size());
    std::vector<std::string> unknown;
    const std::vector<Input> available = AvailableInputs(defs, v, &unknown);
    for (size_t f = 0; f < v.features.size(); ++f) {
      if (!needed[v.name].count(v.features[f].field.name)) continue;
      for (const auto& r : refs[f]) {
        for (const auto& in : available) {
          if (in.name != r) continue;
          if (in.kind == Input::Kind::kComputed) needed[in.origin].insert(r);
          break;
        }
      }
    }
  }
  std::map<std::string, size_t> step_of;
  for (const OnDemandFeatureView* v : order) {
    if (needed[v->name].empty()) continue;
    std::vector<std::string> problems;
    auto step = CompileView(defs, *v, &problems, &needed[v->name]);
    if (!step) {
      return UserError(
          ErrorKind::kDefinitionError,
          "on-demand feature view '" + v->name + "' does not compile: " + JoinStrings(problems));
    }
    for (const auto& in : step->inputs) {
      if (in.kind == Input::Kind::kRequest) {
        bool have = false;
        for (const auto& f : plan->request_fields_) have = have || f.name == in.name;
        if (!have) {
          Field f;
          f.name = in.name;
          f.type = in.type;
          plan->request_fields_.push_back(std::move(f));
        }
      } else if (in.kind == Input::Kind::kStored) {
        const FeatureView* fv = defs.FindFeatureView(in.origin);
        ViewRequest* vr = nullptr;
        for (auto& d : plan->dependencies_) {
          if (d.view == fv) vr = &d;
        }
        if (!vr) vr = &plan->dependencies_.emplace_back(ViewRequest{fv, fv->name, {}, {}, {}});
        if (std::find(vr->features.begin(), vr->features.end(), in.name) == vr->features.end()) {
          vr->features.push_back(in.name);
        }
      }
    }
    step_of[v->name] = plan->steps_.size();
    plan->steps_.push_back(std::move(step));
  }
  for (const auto& o : plan->outputs_) {
    const size_t s = step_of.at(o.view->name);
    size_t f = 0;
    while (o.view->features[f].field.name != o.feature) ++f;
    plan->output_at_.emplace_back(s, f);
  }
  return std::shared_ptr<const OnDemandPlan>(std::move(plan));
}

arrow::Result<std::vector<std::shared_ptr<arrow::Array>>> OnDemandPlan::Evaluate(
    const arrow::RecordBatch& inputs) const {
  const int64_t rows = inputs.num_rows();
  std::vector<std::vector<std::shared_ptr<arrow::Array>>> results(steps_.size());
  std::map<std::string, size_t> step_of;
  for (size_t s = 0; s < steps_.size(); ++s) step_of[steps_[s]->view->name] = s;
  for (size_t s = 0; s < steps_.size(); ++s) {
    const Step& step = *steps_[s];
    const std::string what = "on-demand feature view '" + step.view->name + "'";
    arrow::ArrayVector columns;
    for (const auto& in : step.inputs) {
      std::shared_ptr<arrow::Array> col;
      if (in.kind == Input::Kind::kComputed) {
        const OnDemandFeatureView& from = *steps_[step_of.at(in.origin)]->view;
        for (size_t f = 0; f < from.features.size(); ++f) {
          if (from.features[f].field.name == in.name) col = results[step_of.at(in.origin)][f];
        }
      } else {
        const std::string name =
            in.kind == Input::Kind::kRequest ? in.name : DependencyColumn(in.origin, in.name);
        col = inputs.GetColumnByName(name);
        if (!col) {
          return UserError(ErrorKind::kSchemaMismatch,
                           in.kind == Input::Kind::kRequest
                               ? "missing request field '" + in.name + "' (from request source '" +
                                     in.origin + "') for " + what +
                                     "; pass it with the entities (online) or as a column "
                                     "of the entity table (get-historical)"
                               : "missing feature '" + in.origin + ":" + in.name + "' for " + what);
        }
      }
      if (!col->type()->Equals(*in.type)) {
        auto cast = cp::Cast(*col, in.type, cp::CastOptions::Safe());
        if (!cast.ok()) {
          return UserError(ErrorKind::kSchemaMismatch,
                           what + ": input '" + in.name + "' is " + col->type()->ToString() +
                               " and does not convert to its declared type " +
                               FeatureTypeName(*in.type) + ": " + cast.status().message());
        }
        col = *cast;
      }
      columns.push_back(std::move(col));
    }
    auto batch = arrow::RecordBatch::Make(step.schema, rows, std::move(columns));
    ARROW_ASSIGN_OR_RAISE(cp::ExecBatch exec, cp::MakeExecBatch(*step.schema, arrow::Datum(batch)));
    auto& out = results[s];
    for (size_t f = 0; f < step.expressions.size(); ++f) {
      const OnDemandFeature& feature = step.view->features[f];
      if (!step.active[f]) {
        out.push_back(nullptr);  // not needed by this request
        continue;
      }
      const std::string fwhat =
          what + " feature '" + feature.field.name + "' (" + feature.expression + ")";
      auto value = cp::ExecuteScalarExpression(step.expressions[f], exec);
      if (!value.ok()) {
        return UserError(ErrorKind::kDataRejected, fwhat + ": " + value.status().message());
      }
      std::shared_ptr<arrow::Array> array;
      if (value->is_scalar()) {
        ARROW_ASSIGN_OR_RAISE(array, arrow::MakeArrayFromScalar(*value->scalar(), rows));
      } else {
        array = value->make_array();
      }
      if (!array->type()->Equals(*feature.field.type)) {
        auto cast = cp::Cast(*array, feature.field.type, cp::CastOptions::Safe());
        if (!cast.ok()) {
          return UserError(ErrorKind::kDataRejected,
                           fwhat + ": a value does not convert to the declared type " +
                               FeatureTypeName(*feature.field.type) + ": " +
                               cast.status().message());
        }
        array = *cast;
      }
      out.push_back(std::move(array));
    }
  }
  std::vector<std::shared_ptr<arrow::Array>> outputs;
  outputs.reserve(output_at_.size());
  for (const auto& [s, f] : output_at_) outputs.push_back(results[s][f]);
  return outputs;
}

void ValidateOnDemand(const Definitions& defs, std::vector<std::string>* problems) {
  auto problem = [&](const SourceLocation& loc, const std::string& what, const std::string& msg) {
    problems->push_back(loc.ToString() + ": " + what + ": " + msg);
  };
  auto check_name = [&](const SourceLocation& loc, const std::string& what,
                        const std::string& name) {
    if (!name.empty() && !IsName(name)) {
      problem(loc, what,
              "'" + name +
                  "' is not a valid name; use letters, digits and single underscores, starting "
                  "with a letter");
    }
  };
  std::map<std::string, const SourceLocation*> request_names;
  std::map<std::string, std::pair<std::shared_ptr<arrow::DataType>, std::string>> request_fields;
  for (const auto& rs : defs.request_sources) {
    const std::string what = "request source '" + rs.name + "'";
    check_name(rs.loc, what, rs.name);
    auto [it, fresh] = request_names.emplace(rs.name, &rs.loc);
    if (!fresh) {
      problem(
          rs.loc, what,
          "defined twice (first at " + it->second->ToString() + "); rename or remove one of them");
    }
    if (defs.FindFeatureView(rs.name) || defs.FindOnDemandFeatureView(rs.name)) {
      problem(rs.loc, what, "a feature view has the same name; rename one of them");
    }
    if (rs.schema.empty()) problem(rs.loc, what, "has no fields; list them under 'schema'");
    for (const auto& f : rs.schema) {
      check_name(f.loc, what + " field '" + f.name + "'", f.name);
      if (!f.type) continue;
      auto [fit, ffresh] = request_fields.emplace(f.name, std::make_pair(f.type, rs.name));
      if (!ffresh && !fit->second.first->Equals(*f.type)) {
        problem(f.loc, what,
                "request field '" + f.name + "' is " + FeatureTypeName(*f.type) + " here but " +
                    FeatureTypeName(*fit->second.first) + " in request source '" +
                    fit->second.second +
                    "'; a request carries one value per field name, so give them one type");
      }
    }
  }
  std::map<std::string, const SourceLocation*> names;
  for (const auto& v : defs.on_demand_feature_views) {
    const std::string what = "on-demand feature view '" + v.name + "'";
    check_name(v.loc, what, v.name);
    auto [it, fresh] = names.emplace(v.name, &v.loc);
    if (!fresh) {
      problem(
          v.loc, what,
          "defined twice (first at " + it->second->ToString() + "); rename or remove one of them");
    }
    if (const FeatureView* fv = defs.FindFeatureView(v.name)) {
      problem(v.loc, what,
              "feature view '" + v.name + "' (" + fv->loc.ToString() +
                  ") has the same name; rename one of them");
    }
    if (v.sources.empty()) {
      problem(v.loc, what,
              "has no sources; list request sources and feature views under 'sources'");
    }
    if (v.features.empty()) problem(v.loc, what, "has no features; list them under 'features'");
    std::set<std::string> seen;
    for (const auto& f : v.features) {
      check_name(f.field.loc, what + " feature '" + f.field.name + "'", f.field.name);
      if (!seen.insert(f.field.name).second) {
        problem(f.field.loc, what, "feature '" + f.field.name + "' is listed twice");
      }
    }
    for (const auto& s : v.sources) {
      if (s == v.name) problem(v.loc, what, "lists itself among its sources");
    }
    auto cycle = InDependencyOrder(defs, {&v});
    if (!cycle.ok()) {
      problems->push_back(cycle.status().message());
      continue;
    }
    CompileView(defs, v, problems);
  }
}

}  // namespace stratalake::registry
