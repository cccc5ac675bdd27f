// On-demand feature views: features computed at request time from request data
// and other views' features, with expressions in StrataLake's expression
// language (stratalake/expression.h), e.g. `amount / nullif(avg_amount_30d, 0)`
// or `haversine(lat, lon, home_lat, home_lon)`.
//
// One compiled plan serves both ends so that training and serving agree value
// for value: the online service (online.h) evaluates it on the rows of a
// request, get-historical (retrieval.h) on the rows of the entity table. Each
// end hands Evaluate the same inputs: request fields (cast to their declared
// types) and the dependencies' feature values as the end reads them (null where
// no row matched or the row is older than the view's TTL), cast to the
// features' declared types; Evaluate's results are cast to the on-demand
// features' declared types. Evaluation is Arrow compute over whole batches; a
// plan is compiled once per (registry version, feature list).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/registry.h"

namespace stratalake::registry {

class OnDemandPlan {
 public:
  /// One requested on-demand feature, in request order.
  struct Output {
    const OnDemandFeatureView* view = nullptr;  // points into the Definitions compiled against
    std::string label;                          // the view's name, or its alias in a service
    std::string feature;
    std::string name;  // output column: `feature`, or `label__feature` with full names
    std::shared_ptr<arrow::DataType> type;
  };

  /// Compiles the on-demand features among `features` ("view:feature" or
  /// "view") or `feature_service` (its items naming on-demand views, and its
  /// includes'). Returns nullptr when none is asked for. The plan points into
  /// `defs`: keep them alive. Errors: an unknown feature (kFeatureNotFound), or
  /// an expression that does not compile (kDefinitionError; Validate reports
  /// those when definitions are applied).
  static arrow::Result<std::shared_ptr<const OnDemandPlan>> Make(
      const Definitions& defs, const std::vector<std::string>& features,
      const std::string& feature_service, bool full_feature_names);

  ~OnDemandPlan();

  const std::vector<Output>& outputs() const { return outputs_; }
  /// The stored features the expressions read, one per view (label = the
  /// view's name, its own join keys, no key map), features in first-use order.
  const std::vector<ViewRequest>& dependencies() const { return dependencies_; }
  /// The request fields the expressions read, with their declared types.
  const std::vector<Field>& request_fields() const { return request_fields_; }

  /// The column under which Evaluate expects a dependency's feature:
  /// "__on_demand__VIEW__FEATURE" (no user name can start with "_").
  static std::string DependencyColumn(const std::string& view, const std::string& feature);

  /// Evaluates every output on `inputs`, which holds each request field by its
  /// name (in any type that casts to the declared one) and each dependency
  /// under DependencyColumn. Returns one array per output, in outputs() order,
  /// of inputs.num_rows() rows and the output's type. Errors name the view and
  /// feature: a missing input, a value that does not cast, an overflow.
  arrow::Result<std::vector<std::shared_ptr<arrow::Array>>> Evaluate(
      const arrow::RecordBatch& inputs) const;

  struct Step;  // one on-demand view's compiled expressions (on_demand.cc)

 private:
  OnDemandPlan() = default;
  std::vector<Output> outputs_;
  std::vector<ViewRequest> dependencies_;
  std::vector<Field> request_fields_;
  std::vector<std::unique_ptr<Step>> steps_;          // in dependency order
  std::vector<std::pair<size_t, size_t>> output_at_;  // output -> (step, feature)
};

/// Checks the request sources and on-demand views of `defs` (called by
/// Validate): names, unknown sources, expressions that do not parse or type
/// against their inputs, results that do not cast to the declared type,
/// cycles between on-demand views, and ambiguous inputs. Each problem is
/// appended as "FILE:LINE:COL: KIND 'NAME': what is wrong; what to do".
void ValidateOnDemand(const Definitions& defs, std::vector<std::string>* problems);

}  // namespace stratalake::registry
