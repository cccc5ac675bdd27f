// Parsing definition files (YAML) into the Definitions model.
#pragma once

#include <string>
#include <vector>

#include "stratalake/registry.h"

namespace YAML {
class Node;
}

namespace stratalake::registry {

/// Checks the structure every mapping in `doc` must have, at any depth: each
/// key is a single value (not a list or mapping) and appears once. yaml-cpp
/// keeps every duplicate but lookups see only the first, so a second
/// `entities:` would vanish without a word. Each problem is appended to
/// `problems` as "FILE:LINE:COL: message" (`display_name` is FILE). Never throws.
/// Returns true when no problem was found.
bool CheckYamlKeys(const YAML::Node& doc, const std::string& display_name,
                   std::vector<std::string>* problems);

/// Parses the YAML text of one definitions file (`display_name` is used in
/// locations, e.g. "definitions/views.yaml"). Objects are appended to `defs`;
/// every structural problem (YAML syntax, unknown or missing keys, wrong value
/// kinds, bad types or durations) is appended to `problems` as
/// "FILE:LINE:COL: message" and parsing continues with the next object.
///
/// A file holds one or more YAML documents; each is a mapping with any of the
/// keys `entities`, `sources`, `feature_views`, `feature_services`, each a
/// list of objects (see docs/feature-repository.md). A document with
/// duplicate or non-scalar keys (CheckYamlKeys) reports those and is not parsed
/// further. Never throws: every yaml-cpp or std:: exception becomes a problem.
void ParseDefinitionsYaml(const std::string& text, const std::string& display_name,
                          Definitions* defs, std::vector<std::string>* problems);

}  // namespace stratalake::registry
