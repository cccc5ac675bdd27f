// Feature-repository commands of the `stratalake` CLI (see repo_cli.cc).
#pragma once

#include <string>
#include <vector>

namespace stratalake::cli {

/// True for init, plan, apply, entities, sources, feature-views,
/// feature-services, registry, ingest and tables.
bool IsRepoCommand(const std::string& command);

/// One usage line per repository command, for the top-level help.
std::string RepoCommandsUsage();

/// Runs `argv` (argv[0] is the command). Returns the exit code: 0 success,
/// 1 user error, 2 usage error.
int RunRepoCommand(const std::vector<std::string>& argv);

}  // namespace stratalake::cli
