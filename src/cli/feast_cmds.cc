// Feast compatibility commands: `stratalake serve-offline` (Feast's remote
// offline store, stratalake/offline_server.h) and `stratalake import-feast`
// (a Feast repository converted to StrataLake definitions). docs/feast.md.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "commands.h"
#include "feast_import_driver.h"  // generated from src/cli/feast_import.py
#include "stratalake/ingest.h"
#include "stratalake/offline_server.h"
#include "stratalake/repo.h"

namespace stratalake::cli {

namespace {

namespace fs = std::filesystem;

arrow::Status CmdServeOffline(const Args& a) {
  if (!a.positional.empty()) return UsageError("serve-offline takes options only");
  flight::OfflineServerOptions o;
  o.host = a.Get("--host").value_or("127.0.0.1");
  ARROW_ASSIGN_OR_RAISE(int64_t port, IntOpt(a, "--port", 8815));
  if (port < 0 || port > 65535) return UsageError("--port must be 0..65535");
  o.port = static_cast<int>(port);
  ARROW_ASSIGN_OR_RAISE(o.max_upload_bytes, IntOpt(a, "--max-upload-bytes", o.max_upload_bytes));
  if (o.max_upload_bytes < 1) return UsageError("--max-upload-bytes must be positive (bytes)");
  ARROW_ASSIGN_OR_RAISE(o.memory_budget_bytes, IntOpt(a, "--memory-budget", 0));
  if (o.memory_budget_bytes < 0) return UsageError("--memory-budget must be >= 0 (bytes)");
  o.log_requests = a.Has("--log-requests");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  std::shared_ptr<repo::FeatureRepository> shared(std::move(r));
  ARROW_ASSIGN_OR_RAISE(auto server, flight::OfflineServer::Start(shared, o));
  std::cout << "serving the offline store of " << shared->config().project << " to Feast on "
            << server->location()
            << " (feature_store.yaml: offline_store: {type: remote, host: " << o.host
            << ", port: " << server->port() << "}); stop with Ctrl-C or SIGTERM" << std::endl;
  ARROW_RETURN_NOT_OK(server->Wait(/*handle_signals=*/true));
  std::cout << "stopped" << std::endl;
  return arrow::Status::OK();
}

// ---- import-feast ---------------------------------------------------------------

bool IsExecutable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0; }

// The python of Feast's virtualenv: --feast-python, $STRATALAKE_FEAST_PYTHON,
// $STRATALAKE_FEAST_VENV/bin/python, else .venv-feast/bin/python in the current
// folder or one above it, or beside the checkout this binary was built in
// (build/bin/stratalake -> ../../.venv-feast).
arrow::Result<std::string> FeastPython(const Args& a) {
  if (auto p = a.Get("--feast-python")) {
    if (!IsExecutable(*p)) return UsageError("--feast-python '" + *p + "' is not an executable");
    return *p;
  }
  if (const char* p = std::getenv("STRATALAKE_FEAST_PYTHON"); p && *p) {
    if (!IsExecutable(p)) {
      return arrow::Status::Invalid("STRATALAKE_FEAST_PYTHON '", p, "' is not an executable");
    }
    return std::string(p);
  }
  std::vector<fs::path> candidates;
  if (const char* v = std::getenv("STRATALAKE_FEAST_VENV"); v && *v) {
    candidates.push_back(fs::path(v) / "bin" / "python");
  }
  std::error_code ec;
  fs::path dir = fs::current_path(ec);
  for (int i = 0; i < 2 && !dir.empty(); ++i, dir = dir.parent_path()) {
    candidates.push_back(dir / ".venv-feast" / "bin" / "python");
  }
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    fs::path bin = fs::path(std::string(exe, static_cast<size_t>(n))).parent_path();
    candidates.push_back(bin.parent_path().parent_path() / ".venv-feast" / "bin" / "python");
    candidates.push_back(bin.parent_path() / ".venv-feast" / "bin" / "python");
  }
  for (const auto& c : candidates) {
    if (IsExecutable(c)) return c.string();
  }
  return arrow::Status::Invalid(
      "Feast's Python SDK was not found (no .venv-feast here or beside this build); pass "
      "--feast-python /path/to/venv/bin/python (a virtualenv with feast installed) or set "
      "STRATALAKE_FEAST_PYTHON. In a StrataLake checkout, scripts/feast_env.sh creates one.");
}

}  // namespace

arrow::Result<std::string> RunCapture(const std::vector<std::string>& argv, int* exit_code) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("pipe: ", std::strerror(errno));
  }
  std::vector<char*> args;
  for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return arrow::Status::IOError("fork: ", std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "error: cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

namespace {

std::string ToJson(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  v.Accept(w);
  return buf.GetString();
}

arrow::Status WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return arrow::Status::IOError("cannot write '", path.string(), "'");
  return arrow::Status::OK();
}

// The files import-feast writes must not exist yet, unless `force`.
arrow::Status CheckOutput(const fs::path& dest, bool force) {
  std::error_code ec;
  for (const auto& p : {dest / "stratalake.yaml", dest / "definitions" / "feast.yaml"}) {
    if (fs::exists(p, ec) && !force) {
      return arrow::Status::Invalid("'", p.string(),
                                    "' exists; choose another --out folder or pass --force to "
                                    "overwrite it");
    }
  }
  return arrow::Status::OK();
}

arrow::Status CmdImportFeast(const Args& a) {
  if (a.positional.size() != 1) return UsageError("import-feast needs the Feast repository PATH");
  const fs::path feast_repo = a.positional[0];
  std::error_code ec;
  if (!fs::is_regular_file(feast_repo / "feature_store.yaml", ec)) {
    return arrow::Status::Invalid("'", feast_repo.string(),
                                  "' is not a Feast repository: it has no feature_store.yaml");
  }
  // With --out, refuse an existing repository before the (slow) Feast loader runs.
  if (auto out = a.Get("--out")) ARROW_RETURN_NOT_OK(CheckOutput(*out, a.Has("--force")));
  ARROW_ASSIGN_OR_RAISE(std::string python, FeastPython(a));
  int code = 0;
  ARROW_ASSIGN_OR_RAISE(
      std::string out,
      RunCapture({python, "-c", kFeastImportDriver, fs::absolute(feast_repo).string()}, &code));
  if (code != 0) {
    return arrow::Status::Invalid("Feast's loader (", python, ") failed on '", feast_repo.string(),
                                  "' (exit ", code, "; its error is above)");
  }
  rapidjson::Document doc;
  doc.Parse(out.c_str(), out.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("definitions") ||
      !doc.HasMember("project") || !doc["project"].IsString()) {
    return arrow::Status::Invalid("Feast's loader printed something other than its JSON: ",
                                  out.substr(0, 300));
  }
  const std::string project = doc["project"].GetString();
  const fs::path dest = a.Get("--out").value_or(project);
  ARROW_RETURN_NOT_OK(CheckOutput(dest, a.Has("--force")));
  const fs::path defs_file = dest / "definitions" / "feast.yaml";
  fs::create_directories(dest / "definitions", ec);
  if (ec) return arrow::Status::IOError("cannot create '", dest.string(), "': ", ec.message());
  ARROW_RETURN_NOT_OK(WriteFile(
      dest / "stratalake.yaml",
      "# Converted from the Feast repository " + fs::absolute(feast_repo).string() +
          " by `stratalake import-feast`.\nproject: " + project +
          "\noffline_store: lake\nregistry: .stratalake/registry.db\ndefinitions: definitions\n"));
  ARROW_RETURN_NOT_OK(WriteFile(
      defs_file, "# Converted from Feast by `stratalake import-feast`; see docs/feast.md.\n" +
                     JsonToYaml(ToJson(doc["definitions"]))));

  // The Feast sources' Parquet data, into the Delta tables of the converted
  // sources (point-in-time retrieval reads Delta); overwrite, so that a
  // re-import with --force replaces rather than duplicates.
  struct Loaded {
    std::string source;
    std::string table;
    int64_t rows = 0;
    size_t files = 0;
  };
  std::vector<Loaded> loaded;
  if (!a.Has("--no-data") && doc.HasMember("data") && doc["data"].IsArray() &&
      !doc["data"].Empty()) {
    ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(dest.string()));
    ARROW_ASSIGN_OR_RAISE(auto local, r->LoadDefinitions());
    for (const auto& d : doc["data"].GetArray()) {
      if (!d.IsObject() || !d.HasMember("source") || !d["source"].IsString() ||
          !d.HasMember("files") || !d["files"].IsArray()) {
        continue;
      }
      const std::string name = d["source"].GetString();
      std::vector<std::string> files;
      for (const auto& f : d["files"].GetArray()) {
        if (f.IsString()) files.push_back(f.GetString());
      }
      const registry::Source* src = local.FindSource(name);
      if (!src || files.empty()) continue;
      ARROW_ASSIGN_OR_RAISE(auto target, r->IngestTargetFor(*src));
      IngestOptions o;
      o.mode = IngestMode::kOverwrite;
      o.format = "parquet";
      auto report = Ingest(target, files, o);
      if (!report.ok()) {
        return report.status().WithMessage("loading the data of Feast source '", name, "' into ",
                                           target.table_uri, ": ", report.status().message(),
                                           " (re-run with --no-data to convert only the "
                                           "definitions)");
      }
      loaded.push_back({name, target.table_uri, report->rows_written, files.size()});
    }
  }

  const auto& defs = doc["definitions"];
  auto count = [&](const char* k) {
    return defs.HasMember(k) && defs[k].IsArray() ? defs[k].Size() : 0u;
  };
  const rapidjson::Value empty(rapidjson::kArrayType);
  const auto& skipped =
      doc.HasMember("skipped") && doc["skipped"].IsArray() ? doc["skipped"] : empty;
  const auto& notes = doc.HasMember("notes") && doc["notes"].IsArray() ? doc["notes"] : empty;
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("project");
    JStr(w, project);
    w.Key("out");
    JStr(w, dest.string());
    w.Key("converted");
    w.StartObject();
    for (const char* k : {"entities", "sources", "feature_views", "feature_services"}) {
      w.Key(k);
      w.Uint(count(k));
    }
    w.EndObject();
    w.Key("skipped");
    skipped.Accept(w);
    w.Key("notes");
    notes.Accept(w);
    w.Key("data");
    w.StartArray();
    for (const auto& l : loaded) {
      w.StartObject();
      w.Key("source");
      JStr(w, l.source);
      w.Key("table");
      JStr(w, l.table);
      w.Key("rows");
      w.Int64(l.rows);
      w.Key("files");
      w.Uint64(l.files);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << "converted Feast project " << project << " into " << dest.string() << ": "
            << count("entities") << " entities, " << count("sources") << " sources, "
            << count("feature_views") << " feature views, " << count("feature_services")
            << " feature services\n";
  for (const auto& s : skipped.GetArray()) {
    if (!s.IsObject() || !s.HasMember("kind") || !s.HasMember("name") || !s.HasMember("reason")) {
      continue;
    }
    std::cout << "  not converted: " << s["kind"].GetString() << " " << s["name"].GetString()
              << ": " << s["reason"].GetString() << "\n";
  }
  for (const auto& n : notes.GetArray()) {
    if (n.IsString()) std::cout << "  note: " << n.GetString() << "\n";
  }
  for (const auto& l : loaded) {
    std::cout << "  data: source " << l.source << ": " << l.rows << " rows from " << l.files
              << " Parquet file(s) into " << l.table << "\n";
  }
  std::cout << "next: stratalake plan --repo " << dest.string() << " && stratalake apply --repo "
            << dest.string() << "\n";
  return arrow::Status::OK();
}

}  // namespace

std::vector<Command> FeastCommands() {
  Command import = RepoCommand(
      "import-feast",
      "stratalake import-feast PATH [--out DIR] [--force] [--no-data] [--feast-python PYTHON]",
      "Convert a Feast repository (feature_store.yaml and its Python definitions, loaded by "
      "Feast's own loader in Feast's virtualenv) into a StrataLake repository: DIR/"
      "stratalake.yaml and DIR/definitions/feast.yaml (default DIR: the Feast project's name). "
      "Entities, file sources (Parquet, Delta), feature views (TTL, online, tags) and feature "
      "services (aliases, join-key maps) are converted, and the Parquet files of file sources "
      "are ingested into Delta tables bronze/SOURCE (not with --no-data; Delta sources are "
      "read in place); what has no StrataLake equivalent "
      "(on-demand and stream feature views, request, stream and warehouse sources, types such "
      "as Map or Json) is listed with the reason. Feast's python: --feast-python, else "
      "$STRATALAKE_FEAST_PYTHON, else .venv-feast/bin/python here or beside this build.",
      "stratalake import-feast ./feature_repo --out shop && stratalake apply --repo shop",
      {"--out", "--feast-python"}, {"--force", "--no-data"}, CmdImportFeast);
  import.options.erase("--repo");
  return {
      RepoCommand(
          "serve-offline",
          "stratalake serve-offline [--host 127.0.0.1] [--port 8815] [--max-upload-bytes N] "
          "[--memory-budget BYTES] [--log-requests] [--repo DIR]",
          "Serve the repository's offline store to Feast: Feast's remote offline store "
          "protocol (what `feast serve_offline` speaks, Arrow Flight), answered by StrataLake's "
          "point-in-time engine. In the Feast project's feature_store.yaml: offline_store: "
          "{type: remote, host: HOST, port: PORT}; then get_historical_features(...).to_df() "
          "returns what `stratalake get-historical` writes. --max-upload-bytes: entity rows one "
          "call may send (default 1073741824). SIGTERM stops.",
          "stratalake serve-offline --port 8815 --repo shop",
          {"--host", "--port", "--max-upload-bytes", "--memory-budget"}, {"--log-requests"},
          CmdServeOffline),
      import};
}

}  // namespace stratalake::cli
