// What the feature-repository commands share: their help, --repo, integer
// options, and text and JSON output.
#include <cstdio>
#include <ctime>
#include <iostream>

#include <yaml-cpp/yaml.h>

#include "commands.h"

namespace stratalake::cli {

namespace {

bool IsEmptyValue(const YAML::Node& v) {
  return v.IsNull() || (v.IsScalar() && v.Scalar().empty()) ||
         ((v.IsMap() || v.IsSequence()) && v.size() == 0);
}

// Emits `n` in block style, leaving out empty strings, maps and lists (defaults).
void EmitForDisplay(const YAML::Node& n, YAML::Emitter& out) {
  if (n.IsMap()) {
    out << YAML::BeginMap;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (IsEmptyValue(it->second)) continue;
      out << YAML::Key << it->first.Scalar() << YAML::Value;
      EmitForDisplay(it->second, out);
    }
    out << YAML::EndMap;
  } else if (n.IsSequence()) {
    bool scalars = true;
    for (const auto& e : n) scalars = scalars && e.IsScalar();
    if (scalars) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& e : n) EmitForDisplay(e, out);
    out << YAML::EndSeq;
  } else {
    out << n.Scalar();
  }
}

}  // namespace

Command RepoCommand(std::string name, std::string usage, std::string summary, std::string example,
                    std::set<std::string> options, std::set<std::string> flags,
                    std::function<arrow::Status(const Args&)> run) {
  Command c;
  c.name = std::move(name);
  options.insert("--repo");
  c.options = std::move(options);
  c.flags = std::move(flags);
  c.help = "usage: " + usage + "\n\n" + summary + "\n\nExample:\n  " + example + "\n";
  c.usage_line = std::move(usage);
  c.run = std::move(run);
  return c;
}

std::string RepoDir(const Args& a) { return a.Get("--repo").value_or("."); }

arrow::Result<int64_t> IntOpt(const Args& a, const std::string& key, int64_t dflt) {
  auto v = a.Get(key);
  if (!v) return dflt;
  if (auto n = ParseInteger(*v)) return *n;
  return UsageError(key + " must be an integer, not '" + *v + "'");
}

std::string UtcTime(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string HumanBytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void PrintRows(const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string JsonToYaml(const std::string& json) {
  try {
    YAML::Emitter out;
    EmitForDisplay(YAML::Load(json), out);
    return std::string(out.c_str()) + "\n";
  } catch (const YAML::Exception&) {
    return json + "\n";
  }
}

void JStr(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void JRaw(JsonWriter& w, const std::string& json) {
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

void Emit(const rapidjson::StringBuffer& buf) { std::cout << buf.GetString() << "\n"; }

}  // namespace stratalake::cli
