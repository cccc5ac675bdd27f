// Parsing definition files (YAML) into the Definitions model.
#pragma once

#include <string>
#include <vector>

#include "stratalake/registry.h"

namespace stratalake::registry {

/// Parses the YAML text of one definitions file (`display_name` is used in
/// locations, e.g. "definitions/views.yaml"). Objects are appended to `defs`;
/// every structural problem (YAML syntax, unknown or missing keys, wrong value
/// kinds, bad types or durations) is appended to `problems` as
/// "FILE:LINE:COL: message" and parsing continues with the next object.
///
/// A file holds one or more YAML documents; each is a mapping with any of the
/// keys `entities`, `sources`, `feature_views`, `feature_services`, each a
/// list of objects (see docs/feature-repository.md).
void ParseDefinitionsYaml(const std::string& text, const std::string& display_name,
                          Definitions* defs, std::vector<std::string>* problems);

}  // namespace stratalake::registry
