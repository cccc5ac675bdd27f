#include "args.h"

#include <algorithm>
#include <sstream>

#include "stratalake/status.h"

namespace stratalake::cli {

namespace {

class UsageDetail : public arrow::StatusDetail {
 public:
  const char* type_id() const override { return "stratalake::cli::usage"; }
  std::string ToString() const override { return "usage error"; }
};

const std::set<std::string> kCommonFlags = {"--json", "--help"};

bool IsNumber(const std::string& s) { return ParseInteger(s).has_value(); }

}  // namespace

arrow::Status UsageError(const std::string& message) {
  return arrow::Status::Invalid(message).WithDetail(std::make_shared<UsageDetail>());
}

bool IsUsageError(const arrow::Status& status) {
  return status.detail() && std::string(status.detail()->type_id()) == "stratalake::cli::usage";
}

arrow::Result<Args> ParseArgs(const Command& command, const std::vector<std::string>& argv) {
  Args a;
  a.command = command.name;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    const bool option = (s.rfind("--", 0) == 0 && s.size() > 2) || s == "-h" ||
                        (s.size() > 1 && s[0] == '-' && !IsNumber(s));
    if (!option) {
      a.positional.push_back(s);
      continue;
    }
    std::string key = s == "-h" ? "--help" : s;
    std::optional<std::string> value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    if (kCommonFlags.count(key) || command.flags.count(key)) {
      a.flags.insert(key);
    } else if (command.options.count(key)) {
      if (!value) {
        if (i + 1 >= argv.size()) return UsageError("option " + key + " needs a value");
        value = argv[++i];
      }
      a.opts[key].push_back(*value);
    } else {
      a.unknown.push_back(key);
    }
  }
  return a;
}

arrow::Status UnknownOptionError(const Command& command, const std::string& option) {
  std::vector<std::string> all(command.options.begin(), command.options.end());
  all.insert(all.end(), command.flags.begin(), command.flags.end());
  all.insert(all.end(), kCommonFlags.begin(), kCommonFlags.end());
  std::sort(all.begin(), all.end());
  std::string msg = "unknown option " + option + "\n";
  auto close = ClosestNames(option, all);
  if (!close.empty()) msg += "did you mean " + OrList(close) + "? ";
  msg += "(" + command.name + " takes ";
  for (size_t i = 0; i < all.size(); ++i) msg += (i ? ", " : "") + all[i];
  return UsageError(msg + ")");
}

std::string OrList(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == words.size() ? " or " : ", ") + words[i];
  }
  return out;
}

std::optional<int64_t> ParseInteger(const std::string& text) {
  try {
    size_t pos = 0;
    long long v = std::stoll(text, &pos);
    if (pos == text.size()) return static_cast<int64_t>(v);
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  for (auto& x : out) {
    while (!x.empty() && x.front() == ' ') x.erase(0, 1);
    while (!x.empty() && x.back() == ' ') x.pop_back();
  }
  return out;
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string x;
  while (std::getline(ss, x, ',')) {
    if (!x.empty()) out.push_back(x);
  }
  return out;
}

}  // namespace stratalake::cli
