// The one argument parser of the `stratalake` CLI, and how commands are told.
//
// A command line is COMMAND [TOKEN...]: "--name VALUE" or "--name=VALUE" for an
// option that takes a value, "--name" for a flag (also "-h" for --help), every
// other token positional ("-" and negative numbers included). Each command
// names its options and flags (Command::options / flags, plus the ones every
// command takes: --json, --help). Errors are values: a usage error is a Status
// marked by UsageError (exit 2 with the command's help), never an exception.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

namespace stratalake::cli {

/// An invalid command line: Status::Invalid(message) carrying a "usage"
/// marker, so that main prints the command's help and exits 2.
arrow::Status UsageError(const std::string& message);
bool IsUsageError(const arrow::Status& status);

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> opts;  // every value given, in order
  std::set<std::string> flags;
  std::vector<std::string> unknown;  // options the command does not take, as given

  bool Has(const std::string& k) const { return opts.count(k) || flags.count(k); }
  /// The last value given for `k`.
  std::optional<std::string> Get(const std::string& k) const {
    auto it = opts.find(k);
    if (it == opts.end()) return std::nullopt;
    return it->second.back();
  }
  std::string GetOr(const std::string& k, const std::string& d) const { return Get(k).value_or(d); }
  /// Every value given for `k` (a repeated option), in order.
  std::vector<std::string> GetAll(const std::string& k) const {
    auto it = opts.find(k);
    return it == opts.end() ? std::vector<std::string>{} : it->second;
  }
};

/// One command: its name, what it takes, its help, and what it does.
struct Command {
  std::string name;
  std::set<std::string> options;  // take a value
  std::set<std::string> flags;    // take none
  std::string usage_line;         // one line for `stratalake --help`
  std::string help;               // printed for --help and after a usage error
  /// Table commands exit by the error's kind (3 not found, 4 conflict, 5
  /// schema, 6 unsupported, 7 corrupt log); the others exit 1 on any error.
  bool exit_code_by_kind = false;
  std::function<arrow::Status(const Args&)> run;
};

/// Parses argv[1..] of `command` (argv[0] is its name). Options it does not
/// take are collected in Args::unknown (they take no value); a value option
/// without a value is a usage error.
arrow::Result<Args> ParseArgs(const Command& command, const std::vector<std::string>& argv);

/// The usage error for Args::unknown's first entry: "unknown option --x",
/// then a line naming the closest options of `command`.
arrow::Status UnknownOptionError(const Command& command, const std::string& option);

/// "a", "a or b", "a, b or c".
std::string OrList(const std::vector<std::string>& words);

/// The value of `text` when it is a whole integer (no trailing characters).
std::optional<int64_t> ParseInteger(const std::string& text);

/// Splits at commas outside parentheses, trimming spaces; empty parts kept
/// except a trailing one ("a,b(1,2), c" -> a, b(1,2), c).
std::vector<std::string> SplitList(const std::string& text);

/// Splits at commas, dropping empty parts.
std::vector<std::string> SplitCommas(const std::string& text);

}  // namespace stratalake::cli
