#include "stratalake/warnings.h"

namespace stratalake {

const char* WarningCodeName(Warning::Code code) {
  switch (code) {
    case Warning::Code::kSourceMissing:
      return "source_missing";
    case Warning::Code::kSourceEmpty:
      return "source_empty";
    case Warning::Code::kAllFeaturesNull:
      return "all_features_null";
    case Warning::Code::kNotMaterialized:
      return "not_materialized";
    case Warning::Code::kStoreUnavailable:
      return "store_unavailable";
  }
  return "unknown";
}

}  // namespace stratalake
