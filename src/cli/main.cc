// The `stratalake` command line: finds the command, parses its arguments
// (cli/args.h), runs it and maps the result to an exit code. The commands live
// in one file per group (cli/commands.h). Errors are printed as "error: ..." on
// stderr; exit codes: 0 success, 2 usage (with the command's help), and for a
// failed command 1, or by kind for the table commands (table_cmds.cc).
#include <iostream>
#include <string>
#include <vector>

#include <arrow/compute/initialize.h>
#include <arrow/filesystem/s3fs.h>

#include "args.h"
#include "commands.h"
#include "stratalake/status.h"

namespace {

using namespace stratalake;
using stratalake::cli::Command;

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto group : {cli::RepoCommands, cli::IngestCommands, cli::RetrievalCommands,
                     cli::OnlineCommands, cli::ServeCommands, cli::FeastCommands,
                     cli::PipelineCommands, cli::TableCommands, cli::StreamCommands}) {
    for (auto& c : group()) all.push_back(std::move(c));
  }
  return all;
}

const Command* Find(const std::vector<Command>& commands, const std::string& name) {
  for (const auto& c : commands) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string TopUsage(const std::vector<Command>& commands) {
  std::string out =
      "usage: stratalake COMMAND [options]   (COMMAND --help for details)\n\n"
      "Feature repository commands:\n";
  static const char* const kRepositoryCommands[] = {"init",
                                                    "plan",
                                                    "apply",
                                                    "entities",
                                                    "sources",
                                                    "feature-views",
                                                    "feature-services",
                                                    "on-demand-feature-views",
                                                    "request-sources",
                                                    "transformations",
                                                    "registry",
                                                    "ingest",
                                                    "tables",
                                                    "get-historical",
                                                    "datasets",
                                                    "materialize",
                                                    "materialize-incremental",
                                                    "teardown",
                                                    "get-online",
                                                    "push",
                                                    "serve",
                                                    "serve-offline",
                                                    "import-feast",
                                                    "stream",
                                                    "sql",
                                                    "run"};
  for (const char* name : kRepositoryCommands) {
    out += "  " + Find(commands, name)->usage_line + "\n";
  }
  return out + "\nDelta table commands:\n" + cli::TableUsage();
}

// A core message in the CLI's words: options as flags, actions as commands.
std::string CliMessage(const arrow::Status& st) {
  return RewordMessage(st, [](Term t) -> std::string {
    switch (t) {
      case Term::kRepo:
        return "--repo DIR";
      case Term::kInit:
        return "`stratalake init DIR`";
      case Term::kApply:
        return "`stratalake apply`";
      case Term::kPlan:
        return "`stratalake plan`";
      case Term::kMaterialize:
        return "`stratalake materialize`";
      case Term::kTimestampColumn:
        return "--timestamp-column";
      case Term::kFullFeatureNames:
        return "--full-feature-names";
      case Term::kQuarantine:
        return "--quarantine";
      case Term::kMergeKeys:
        return "--on";
      case Term::kWriteMergeSchema:
      case Term::kMergeMergeSchema:
        return "--merge-schema";
    }
    return Mention(t);
  });
}

int ExitCode(const arrow::Status& st) {
  const auto* d = GetErrorDetail(st);
  if (!d) return 1;
  switch (d->kind()) {
    case ErrorKind::kTableNotFound:
    case ErrorKind::kVersionNotFound:
      return 3;
    case ErrorKind::kSchemaMismatch:
    case ErrorKind::kConstraintViolation:
      return 5;
    case ErrorKind::kUnsupportedFeature:
      return 6;
    case ErrorKind::kCorruptLog:
    case ErrorKind::kFileNotFound:
      return 7;
    default:
      return IsCommitConflict(st) ? 4 : 1;
  }
}

// "unknown command 'x'; did you mean 'y'? (commands: ...)", exit 2.
int UnknownCommand(const std::string& name, const std::vector<std::string>& names,
                   const std::string& what) {
  std::string msg = "unknown " + what + " '" + name + "'";
  std::vector<std::string> quoted;
  for (const auto& c : ClosestNames(name, names)) quoted.push_back("'" + c + "'");
  if (!quoted.empty()) msg += "; did you mean " + cli::OrList(quoted) + "?";
  msg += " (" + what + "s:";
  for (const auto& n : names) msg += " " + n;
  std::cerr << "error: " << msg << ")\nRun `stratalake --help` for usage.\n";
  return 2;
}

int Run(const Command& command, const std::vector<std::string>& argv) {
  auto parsed = cli::ParseArgs(command, argv);
  arrow::Status st = parsed.status();
  if (parsed.ok()) {
    const cli::Args& args = *parsed;
    if (args.Has("--help")) {
      std::cout << command.help;
      return 0;
    }
    st = args.unknown.empty() ? command.run(args)
                              : cli::UnknownOptionError(command, args.unknown.front());
  }
  // s3:// URIs initialize the AWS SDK on first use; it must be shut down before exit.
  auto fin = arrow::fs::EnsureS3Finalized();
  if (cli::IsUsageError(st)) {
    std::cerr << "error: " << CliMessage(st) << "\n\n" << command.help;
    return 2;
  }
  if (!st.ok()) {
    std::cerr << "error: " << CliMessage(st) << "\n";
    return command.exit_code_by_kind ? ExitCode(st) : 1;
  }
  if (!fin.ok() && command.exit_code_by_kind) std::cerr << "warning: " << fin.ToString() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<Command> commands = AllCommands();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << TopUsage(commands);
    return args.empty() ? 2 : 0;
  }
  // `stratalake table COMMAND ...` is `stratalake COMMAND ...` for a table command.
  const bool table = args[0] == "table";
  if (table) {
    args.erase(args.begin());
    if (args.empty()) {
      std::cerr << "error: missing command\n\n" << cli::TableUsage();
      return 2;
    }
    if (args[0] == "--help" || args[0] == "-h") {
      std::cout << cli::TableUsage();
      return 0;
    }
  }
  const Command* command = Find(commands, args[0]);
  if (!command || (table && !command->exit_code_by_kind)) {
    std::vector<std::string> names;
    for (const auto& c : commands) {
      if (!table || c.exit_code_by_kind) names.push_back(c.name);
    }
    return UnknownCommand(args[0], names, table ? "table command" : "command");
  }
  auto init = arrow::compute::Initialize();
  if (!init.ok()) {
    std::cerr << "error: " << init.ToString() << "\n";
    return 1;
  }
  try {
    return Run(*command, args);
  } catch (const std::exception& e) {
    // The last boundary: a library that throws must not abort the process.
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
