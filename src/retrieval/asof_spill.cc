#include "retrieval/asof_spill.h"

#include <unistd.h>

#include <filesystem>
#include <random>
#include <system_error>

#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/record_batch.h>

namespace stratalake::retrieval::asof {

namespace fs = std::filesystem;

arrow::Result<std::unique_ptr<SpillDir>> SpillDir::Create(const std::string& parent) {
  std::error_code ec;
  fs::path base = parent.empty() ? fs::temp_directory_path(ec) : fs::path(parent);
  if (ec) return arrow::Status::IOError("cannot find the temp folder for spilling: ", ec.message());
  fs::create_directories(base, ec);
  if (ec) {
    return arrow::Status::IOError("cannot create spill folder ", base.string(), ": ", ec.message());
  }
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path dir = base / ("stratalake-asof-" + std::to_string(::getpid()) + "-" +
                           std::to_string(rd()) + std::to_string(rd()));
    if (fs::create_directory(dir, ec)) {
      fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
      return std::unique_ptr<SpillDir>(new SpillDir(dir.string()));
    }
    if (ec && ec != std::errc::file_exists) {
      return arrow::Status::IOError("cannot create a spill folder in ", base.string(), ": ",
                                    ec.message());
    }
  }
  return arrow::Status::IOError("cannot create a unique spill folder in ", base.string());
}

SpillDir::~SpillDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string SpillDir::FilePath(const std::string& id) const {
  return (fs::path(path_) / (id + ".arrows")).string();
}

arrow::Result<std::unique_ptr<SpillWriter>> SpillWriter::Open(
    const std::string& path, const std::shared_ptr<arrow::Schema>& schema) {
  std::unique_ptr<SpillWriter> w(new SpillWriter());
  w->path_ = path;
  ARROW_ASSIGN_OR_RAISE(w->sink_, arrow::io::FileOutputStream::Open(path));
  auto options = arrow::ipc::IpcWriteOptions::Defaults();
  options.use_threads = false;
  ARROW_ASSIGN_OR_RAISE(w->writer_, arrow::ipc::MakeStreamWriter(w->sink_, schema, options));
  return w;
}

SpillWriter::~SpillWriter() {
  if (!closed_ && sink_) {
    (void)sink_->Close();  // an abandoned file: the folder is removed anyway
  }
}

arrow::Status SpillWriter::Write(const arrow::RecordBatch& batch) {
  ARROW_RETURN_NOT_OK(writer_->WriteRecordBatch(batch));
  rows_ += batch.num_rows();
  return arrow::Status::OK();
}

arrow::Status SpillWriter::Close() {
  if (closed_) return arrow::Status::OK();
  closed_ = true;
  ARROW_RETURN_NOT_OK(writer_->Close());
  ARROW_ASSIGN_OR_RAISE(bytes_, sink_->Tell());
  return sink_->Close();
}

arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> ReadSpillFile(
    const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::ReadableFile::Open(path));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> contents, file->ReadAt(0, size));
  ARROW_RETURN_NOT_OK(file->Close());
  auto input = std::make_shared<arrow::io::BufferReader>(contents);
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.use_threads = false;
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(input, options));
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (!batch) break;
    batches.push_back(std::move(batch));
  }
  return batches;
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenSpillFile(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::ReadableFile::Open(path));
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.use_threads = false;
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(file, options));
  return reader;
}

void RemoveSpillFile(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

}  // namespace stratalake::retrieval::asof
