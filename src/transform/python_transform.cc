// Python transformations of the definition files run from C++ (the CLI): the
// function runs in a Python subprocess, `python -m stratalake.transform_worker
// DIR`, with its inputs and its result passed as Arrow IPC files in DIR.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "stratalake/transform.h"

extern char** environ;

namespace stratalake::transform {

namespace {

namespace fs = std::filesystem;

constexpr const char* kInstallHint =
    "install the stratalake Python package into that interpreter (pip install stratalake, or "
    "`make python` in a checkout) or set STRATALAKE_PYTHON to a Python that can import it";

// A temporary folder removed when this goes out of scope.
class TempDir {
 public:
  static arrow::Result<TempDir> Make() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string templ = (base / "stratalake-python-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      return arrow::Status::IOError("cannot create a temporary folder in ", base.string(), ": ",
                                    std::strerror(errno));
    }
    return TempDir(templ);
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

arrow::Status WriteIpc(const std::string& path, const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::io::FileOutputStream::Open(path));
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeFileWriter(out, table.schema()));
  ARROW_RETURN_NOT_OK(writer->WriteTable(table));
  ARROW_RETURN_NOT_OK(writer->Close());
  return out->Close();
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadIpc(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto in, arrow::io::ReadableFile::Open(path));
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchFileReader::Open(in));
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int i = 0; i < reader->num_record_batches(); ++i) {
    ARROW_ASSIGN_OR_RAISE(auto batch, reader->ReadRecordBatch(i));
    batches.push_back(std::move(batch));
  }
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(reader->schema(), batches));
  ARROW_RETURN_NOT_OK(in->Close());
  return table;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The last `n` lines of `text`.
std::string Tail(const std::string& text, int n) {
  size_t end = text.size();
  while (end > 0 && text[end - 1] == '\n') --end;
  size_t pos = end;
  for (int i = 0; i < n && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  return text.substr(pos == 0 ? 0 : pos + 1, end - (pos == 0 ? 0 : pos + 1));
}

// Runs argv with standard output sent to this process's standard error and
// standard error to `stderr_path`; returns the exit status (127: not run).
arrow::Result<int> Spawn(const std::vector<std::string>& argv, const std::string& stderr_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return 127;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return arrow::Status::IOError("waitpid: ", std::strerror(errno));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Table>> RunPythonWorker(
    const repo::FeatureRepository& repo, const registry::Transformation& t,
    const std::vector<std::shared_ptr<arrow::Table>>& inputs) {
  const char* env = std::getenv("STRATALAKE_PYTHON");
  const std::string python = env && *env ? env : "python3";
  const std::string origin =
      env && *env ? "STRATALAKE_PYTHON=" + python : "python3 (on PATH; STRATALAKE_PYTHON is unset)";
  ARROW_ASSIGN_OR_RAISE(TempDir dir, TempDir::Make());

  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("root");
  w.String(repo.config().root.c_str());
  w.Key("file");
  w.String(t.python_file.c_str());
  w.Key("function");
  w.String(t.python_function.c_str());
  w.Key("kind");
  w.String(t.kind.c_str());
  w.Key("name");
  w.String(t.name.c_str());
  w.Key("inputs");
  w.StartArray();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string file = "input" + std::to_string(i) + ".arrow";
    ARROW_RETURN_NOT_OK(WriteIpc(dir.path() + "/" + file, *inputs[i]));
    w.String(file.c_str());
  }
  w.EndArray();
  w.Key("output");
  w.String("result.arrow");
  w.Key("error");
  w.String("error.txt");
  w.EndObject();
  {
    std::ofstream req(dir.path() + "/request.json", std::ios::binary);
    req << buf.GetString();
    if (!req.good()) return arrow::Status::IOError("cannot write ", dir.path(), "/request.json");
  }

  const std::string stderr_path = dir.path() + "/stderr.txt";
  ARROW_ASSIGN_OR_RAISE(
      int rc, Spawn({python, "-m", "stratalake.transform_worker", dir.path()}, stderr_path));
  const std::string err = ReadText(stderr_path);
  if (rc == 0) {
    if (!err.empty()) std::cerr << err << std::flush;  // warnings the function printed
    return ReadIpc(dir.path() + "/result.arrow");
  }
  if (rc == 127 && err.empty()) {
    return arrow::Status::Invalid("cannot run the Python interpreter ", origin,
                                  " to run the function: ", kInstallHint);
  }
  if (err.find("No module named 'stratalake") != std::string::npos ||
      err.find("No module named stratalake") != std::string::npos) {
    return arrow::Status::Invalid("the Python interpreter ", origin,
                                  " cannot import stratalake.transform_worker: ", kInstallHint);
  }
  const std::string error = ReadText(dir.path() + "/error.txt");
  if (!error.empty()) {
    if (!err.empty()) std::cerr << err << std::flush;  // the traceback
    return arrow::Status::Invalid(error);
  }
  return arrow::Status::Invalid("the Python worker (", origin, ") exited with status ", rc, ": ",
                                Tail(err, 8));
}

}  // namespace stratalake::transform
