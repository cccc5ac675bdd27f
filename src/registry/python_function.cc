// Python transformations of the definition files (`python: FILE.py:FUNCTION`):
// finding the function's source text without running Python, so that the
// registry can version it and `plan` can show its line diff.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "stratalake/registry.h"

namespace stratalake::registry {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// Whether `line` starts a top-level `def NAME(` or `async def NAME(`.
bool IsDef(const std::string& line, const std::string& name) {
  size_t i = 0;
  if (line.compare(0, 6, "async ") == 0) {
    i = 6;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  }
  if (line.compare(i, 4, "def ") != 0 && line.compare(i, 4, "def\t") != 0) return false;
  i += 4;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (line.compare(i, name.size(), name) != 0) return false;
  i += name.size();
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  return i < line.size() && line[i] == '(';
}

bool Blank(const std::string& line) {
  for (char c : line) {
    if (c == '#') return true;  // a comment-only line
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Tracks brackets and string literals across lines, so that a line at column 0
// inside a multi-line string or call does not end the function.
struct Scanner {
  int depth = 0;
  std::string quote;  // the open string's delimiter ("'", "\"", "'''", "\"\"\"")

  bool Inside() const { return depth > 0 || !quote.empty(); }

  void Feed(const std::string& line) {
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (!quote.empty()) {
        if (c == '\\') {
          ++i;
        } else if (line.compare(i, quote.size(), quote) == 0) {
          i += quote.size() - 1;
          quote.clear();
        }
        continue;
      }
      if (c == '#') break;
      if (c == '\'' || c == '"') {
        const std::string triple(3, c);
        quote = line.compare(i, 3, triple) == 0 ? triple : std::string(1, c);
        i += quote.size() - 1;
      } else if (c == '(' || c == '[' || c == '{') {
        ++depth;
      } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
    if (quote.size() == 1) quote.clear();  // a one-line string does not continue
  }
};

}  // namespace

arrow::Result<std::string> PythonFunctionSource(const std::string& text,
                                                const std::string& function) {
  const std::vector<std::string> lines = SplitLines(text);
  // The last top-level definition wins, as in Python; lines inside a string or
  // brackets at top level are not definitions.
  Scanner top;
  size_t start = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!top.Inside() && IsDef(lines[i], function)) start = i;
    top.Feed(lines[i]);
  }
  if (start == lines.size()) {
    return arrow::Status::KeyError("defines no top-level function '", function, "' (def ", function,
                                   "(...): at the start of a line)");
  }
  Scanner body;
  body.Feed(lines[start]);
  size_t end = start + 1;
  for (size_t i = start + 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (!body.Inside() && !Blank(line) && !std::isspace(static_cast<unsigned char>(line[0]))) {
      break;  // the next top-level statement
    }
    body.Feed(line);
    end = i + 1;
  }
  while (end > start + 1 && Blank(lines[end - 1])) --end;
  std::string out;
  for (size_t i = start; i < end; ++i) out += lines[i] + "\n";
  return out;
}

void ResolvePythonSources(const std::string& root, Definitions* defs,
                          std::vector<std::string>* problems) {
  for (auto& t : defs->transformations) {
    if (t.python_file.empty()) continue;
    const std::string at = t.sql_loc.ToString() + ": transformation '" + t.name + "': ";
    const fs::path path = fs::path(root) / t.python_file;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      problems->push_back(at + "python file '" + t.python_file +
                          "' does not exist (paths are relative to the repository root, " + root +
                          ")");
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in.good() && !in.eof()) {
      problems->push_back(at + "cannot read python file '" + t.python_file + "'");
      continue;
    }
    auto source = PythonFunctionSource(buf.str(), t.python_function);
    if (!source.ok()) {
      problems->push_back(at + "python file '" + t.python_file + "' " + source.status().message());
      continue;
    }
    t.python_source = std::move(*source);
  }
}

}  // namespace stratalake::registry
