// Files at the ends of a streamed retrieval: entity rows read again and again
// from a Parquet file, and the output written to one as it arrives.
#include <cstdio>
#include <cstdlib>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>

#include "common/background_output.h"
#include "common/direct_output.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::retrieval {

namespace {

// A Parquet file read row group by row group (owns its file reader).
class ParquetBatchReader final : public arrow::RecordBatchReader {
 public:
  ParquetBatchReader(std::unique_ptr<parquet::arrow::FileReader> file,
                     std::unique_ptr<arrow::RecordBatchReader> batches)
      : file_(std::move(file)), batches_(std::move(batches)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return batches_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    return batches_->ReadNext(batch);
  }

 private:
  std::unique_ptr<parquet::arrow::FileReader> file_;  // outlives batches_
  std::unique_ptr<arrow::RecordBatchReader> batches_;
};

constexpr int64_t kRowGroupRows = int64_t{1} << 20;
constexpr int64_t kMaxPendingBytes = int64_t{64} << 20;

}  // namespace

arrow::Result<EntityReaderFactory> ParquetEntityReader(const std::string& path) {
  auto open_file = [path]() -> arrow::Result<std::shared_ptr<arrow::io::ReadableFile>> {
    auto opened = arrow::io::ReadableFile::Open(path);
    if (!opened.ok()) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kObjectNotFound,
                       "cannot open '" + path + "': " + opened.status().message());
    }
    return *opened;
  };
  ARROW_RETURN_NOT_OK(open_file().status());
  return [open_file]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
    ARROW_ASSIGN_OR_RAISE(auto file, open_file());
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
    reader->set_use_threads(true);  // decode the columns of each batch in parallel
    ARROW_ASSIGN_OR_RAISE(auto batches, reader->GetRecordBatchReader());
    return std::make_shared<ParquetBatchReader>(std::move(reader), std::move(batches));
  };
}

struct ParquetFileSink::State {
  std::shared_ptr<arrow::io::OutputStream> out;
  std::unique_ptr<parquet::arrow::FileWriter> parquet;
};

ParquetFileSink::ParquetFileSink(std::string path)
    : path_(std::move(path)), partial_(path_ + ".partial"), state_(std::make_unique<State>()) {}

ParquetFileSink::~ParquetFileSink() {
  if (!closed_) {
    if (state_->out) (void)state_->out->Close();
    std::remove(partial_.c_str());
  }
}

arrow::Status ParquetFileSink::Begin(const std::shared_ptr<arrow::Schema>& schema) {
  // Around the page cache where the file system allows (common/direct_output.h):
  // a training set is written once, and caching it costs more than writing it.
  const char* direct = std::getenv("STRATALAKE_DIRECT_IO");
  ARROW_ASSIGN_OR_RAISE(
      std::shared_ptr<arrow::io::OutputStream> file,
      DirectFileOutputStream::Open(partial_, !(direct && std::string(direct) == "0")));
  // Finished row groups are copied into the file while the next one is encoded
  // (Parquet hands over each finished column chunk's buffer and never touches it again).
  state_->out = std::make_shared<BackgroundOutputStream>(std::move(file), kMaxPendingBytes);
  // Columns are encoded on all cores (Parquet honours use_threads only for
  // buffered row groups, that is through WriteRecordBatch).
  auto props = parquet::WriterProperties::Builder()
                   .max_row_group_length(kRowGroupRows)
                   ->dictionary_pagesize_limit(128 << 10)
                   ->build();
  auto arrow_props = parquet::ArrowWriterProperties::Builder().set_use_threads(true)->build();
  ARROW_ASSIGN_OR_RAISE(state_->parquet,
                        parquet::arrow::FileWriter::Open(*schema, arrow::default_memory_pool(),
                                                         state_->out, props, arrow_props));
  return arrow::Status::OK();
}

arrow::Status ParquetFileSink::Write(const std::shared_ptr<arrow::Table>& rows) {
  if (!state_->parquet) return arrow::Status::Invalid("ParquetFileSink: Write before Begin");
  // Each call's rows start a row group of their own: the previous call's encoded
  // pages are written out now (Close writes the last ones), so a streamed
  // retrieval holds at most one slice's encoded output.
  if (wrote_rows_) ARROW_RETURN_NOT_OK(state_->parquet->NewBufferedRowGroup());
  arrow::TableBatchReader batches(*rows);
  batches.set_chunksize(kRowGroupRows);
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(batches.ReadNext(&batch));
    if (!batch) return arrow::Status::OK();
    ARROW_RETURN_NOT_OK(state_->parquet->WriteRecordBatch(*batch));
    wrote_rows_ = true;
  }
}

arrow::Status ParquetFileSink::Close() {
  if (!state_->parquet) return arrow::Status::Invalid("ParquetFileSink: Close before Begin");
  ARROW_RETURN_NOT_OK(state_->parquet->Close());
  ARROW_RETURN_NOT_OK(state_->out->Close());
  if (std::rename(partial_.c_str(), path_.c_str()) != 0) {
    return arrow::Status::IOError("cannot rename '", partial_, "' to '", path_, "'");
  }
  closed_ = true;
  return arrow::Status::OK();
}

}  // namespace stratalake::retrieval
