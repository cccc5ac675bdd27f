// `--engine spark`: the CLI hands the job to the Spark engine, which is Python
// (pyspark + delta-spark) shipped in the stratalake package
// (python/stratalake/spark.py), run by the package's Python.
#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <rapidjson/document.h>

#include "commands.h"

namespace stratalake::cli {

namespace {

namespace fs = std::filesystem;

bool IsExecutable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0; }

// The Python that has the stratalake package and pyspark (see commands.h).
arrow::Result<std::vector<std::string>> SparkPython(const Args& a) {
  if (auto p = a.Get("--spark-python")) {
    if (!IsExecutable(*p)) return UsageError("--spark-python '" + *p + "' is not an executable");
    return std::vector<std::string>{*p};
  }
  if (const char* p = std::getenv("STRATALAKE_PYTHON"); p && *p) {
    if (!IsExecutable(p)) {
      return arrow::Status::Invalid("STRATALAKE_PYTHON '", p, "' is not an executable");
    }
    return std::vector<std::string>{p};
  }
  std::vector<fs::path> candidates;
  std::error_code ec;
  fs::path dir = fs::current_path(ec);
  for (int i = 0; i < 2 && !dir.empty(); ++i, dir = dir.parent_path()) {
    candidates.push_back(dir / ".venv" / "bin" / "python");
  }
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    fs::path bin = fs::path(std::string(exe, static_cast<size_t>(n))).parent_path();
    candidates.push_back(bin / "python");  // an installed CLI beside its venv's python
    candidates.push_back(bin.parent_path().parent_path() / ".venv" / "bin" / "python");
  }
  for (const auto& c : candidates) {
    if (IsExecutable(c)) return std::vector<std::string>{c.string()};
  }
  return std::vector<std::string>{"/usr/bin/env", "python3"};
}

}  // namespace

arrow::Status RunSparkJob(const Args& a, const std::string& job_json) {
  ARROW_ASSIGN_OR_RAISE(auto argv, SparkPython(a));
  argv.insert(argv.end(), {"-m", "stratalake.spark", job_json});
  int code = 0;
  ARROW_ASSIGN_OR_RAISE(std::string out, RunCapture(argv, &code));
  // The job prints one JSON object as its last line: the result, or {"error": ...}.
  std::string last = out;
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
  if (auto nl = last.rfind('\n'); nl != std::string::npos) last = last.substr(nl + 1);
  rapidjson::Document d;
  d.Parse(last.c_str());
  if (d.HasParseError() || !d.IsObject()) {
    return arrow::Status::IOError(
        "the Spark engine (", argv[0], " -m stratalake.spark) exited with status ", code,
        " without a result; is the stratalake package installed in that Python with pyspark "
        "and delta-spark? (pass --spark-python or set STRATALAKE_PYTHON)");
  }
  if (d.HasMember("error") && d["error"].IsString()) {
    return arrow::Status::Invalid(d["error"].GetString());
  }
  if (d.HasMember("warnings") && d["warnings"].IsArray()) {
    for (const auto& w : d["warnings"].GetArray()) {
      if (w.IsObject() && w.HasMember("message") && w["message"].IsString()) {
        std::cerr << "warning: " << w["message"].GetString() << "\n";
      }
    }
  }
  if (a.Has("--json")) {
    std::cout << last << "\n";
  } else if (d.HasMember("summary") && d["summary"].IsString()) {
    std::cout << d["summary"].GetString();
  }
  return code == 0 ? arrow::Status::OK()
                   : arrow::Status::IOError("the Spark engine exited with status ", code);
}

}  // namespace stratalake::cli
