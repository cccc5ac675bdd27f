// The core's warnings (stratalake/warnings.h) in the CLI's words: one line on
// stderr per cause, naming the view or source and the command that fixes it.
#pragma once

#include <string>
#include <vector>

#include "commands.h"
#include "stratalake/warnings.h"

namespace stratalake::cli {

/// The line for one warning (without "warning: " and the newline).
std::string WarningText(const Warning& w);

/// Writes "warning: TEXT" to stderr for each warning (also under --json,
/// whose output of get-historical and materialize lists them too).
void PrintWarnings(const std::vector<Warning>& warnings);

/// The warnings as a JSON array of {"code", "view", "source", "message"} (the
/// --json output of get-historical and materialize).
void WriteWarningsJson(JsonWriter& w, const std::vector<Warning>& warnings);

}  // namespace stratalake::cli
