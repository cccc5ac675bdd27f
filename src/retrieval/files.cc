// Files at the ends of a retrieval: entity rows read (again and again) from a
// Parquet or CSV file, and the output written to one as it arrives.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/base64.h>
#include <arrow/util/key_value_metadata.h>
#include <arrow/util/value_parsing.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>

#include "common/background_output.h"
#include "common/direct_output.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::retrieval {

namespace {

// The schema a Parquet file was written from, when the writer stored it
// (ARROW:schema) and it has the columns read; else `read`. Parquet has no
// second-unit timestamps and no date64, so the Arrow reader gives such
// columns as milliseconds and date32; the stored schema says what they were.
std::shared_ptr<arrow::Schema> StoredSchema(const parquet::arrow::FileReader& reader,
                                            const std::shared_ptr<arrow::Schema>& read) {
  auto kv = reader.parquet_reader()->metadata()->key_value_metadata();
  if (!kv) return read;
  auto text = kv->Get("ARROW:schema");
  if (!text.ok()) return read;
  arrow::io::BufferReader input(arrow::Buffer::FromString(arrow::util::base64_decode(*text)));
  arrow::ipc::DictionaryMemo memo;
  auto stored = arrow::ipc::ReadSchema(&input, &memo);
  if (!stored.ok() || (*stored)->num_fields() != read->num_fields()) return read;
  arrow::FieldVector fields = read->fields();
  for (int i = 0; i < read->num_fields(); ++i) {
    const auto& want = (*stored)->field(i);
    const auto& got = read->field(i);
    if (want->name() != got->name()) return read;
    const bool unit =
        got->type()->id() == arrow::Type::TIMESTAMP && want->type()->id() == arrow::Type::TIMESTAMP;
    const bool date =
        got->type()->id() == arrow::Type::DATE32 && want->type()->id() == arrow::Type::DATE64;
    if ((unit || date) && !want->type()->Equals(*got->type())) {
      fields[static_cast<size_t>(i)] = got->WithType(want->type());
    }
  }
  return arrow::schema(fields, read->metadata());
}

// Casts the columns of `batch` whose type `schema` names differently.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ToSchema(
    const std::shared_ptr<arrow::RecordBatch>& batch,
    const std::shared_ptr<arrow::Schema>& schema) {
  if (batch->schema()->Equals(*schema)) return batch;
  arrow::ArrayVector columns = batch->columns();
  for (size_t i = 0; i < columns.size(); ++i) {
    const auto& type = schema->field(static_cast<int>(i))->type();
    if (!columns[i]->type()->Equals(*type)) {
      ARROW_ASSIGN_OR_RAISE(columns[i], arrow::compute::Cast(*columns[i], type));
    }
  }
  return arrow::RecordBatch::Make(schema, batch->num_rows(), std::move(columns));
}

// A Parquet file read row group by row group (owns its file reader), in the
// schema it was written from (StoredSchema).
class ParquetBatchReader final : public arrow::RecordBatchReader {
 public:
  ParquetBatchReader(std::unique_ptr<parquet::arrow::FileReader> file,
                     std::unique_ptr<arrow::RecordBatchReader> batches)
      : file_(std::move(file)),
        batches_(std::move(batches)),
        schema_(StoredSchema(*file_, batches_->schema())) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    ARROW_RETURN_NOT_OK(batches_->ReadNext(batch));
    if (*batch) {
      ARROW_ASSIGN_OR_RAISE(*batch, ToSchema(*batch, schema_));
    }
    return arrow::Status::OK();
  }

 private:
  std::unique_ptr<parquet::arrow::FileReader> file_;  // outlives batches_
  std::unique_ptr<arrow::RecordBatchReader> batches_;
  std::shared_ptr<arrow::Schema> schema_;
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

arrow::Status NotATableFile(const std::string& path) {
  return arrow::Status::Invalid("'", path, "' must end in .parquet or .csv");
}

arrow::Result<std::shared_ptr<arrow::io::ReadableFile>> OpenNamed(const std::string& path) {
  auto opened = arrow::io::ReadableFile::Open(path);
  if (!opened.ok()) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kObjectNotFound,
                     "cannot open '" + path + "': " + opened.status().message());
  }
  return *opened;
}

arrow::csv::ConvertOptions CsvConvert() {
  auto convert = arrow::csv::ConvertOptions::Defaults();
  convert.timestamp_parsers = {arrow::TimestampParser::MakeISO8601()};
  return convert;
}

// The output file, around the page cache where the file system allows
// (common/direct_output.h): a training set is written once, and caching it
// costs more than writing it.
arrow::Result<std::shared_ptr<arrow::io::OutputStream>> OpenOutputFile(const std::string& path) {
  const char* direct = std::getenv("STRATALAKE_DIRECT_IO");
  ARROW_ASSIGN_OR_RAISE(
      std::shared_ptr<arrow::io::OutputStream> file,
      DirectFileOutputStream::Open(path, !(direct && std::string(direct) == "0")));
  return file;
}

arrow::Status MoveIntoPlace(const std::string& partial, const std::string& path) {
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    return arrow::Status::IOError("cannot rename '", partial, "' to '", path, "'");
  }
  return arrow::Status::OK();
}

constexpr int64_t kRowGroupRows = int64_t{1} << 20;
constexpr int64_t kMaxPendingBytes = int64_t{64} << 20;

}  // namespace

bool IsTableFileName(const std::string& path) {
  return EndsWith(path, ".parquet") || EndsWith(path, ".csv");
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadTableFile(const std::string& path) {
  if (!IsTableFileName(path)) return NotATableFile(path);
  ARROW_ASSIGN_OR_RAISE(auto file, OpenNamed(path));
  if (EndsWith(path, ".parquet")) {
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
    reader->set_use_threads(true);
    ARROW_ASSIGN_OR_RAISE(auto batches, reader->GetRecordBatchReader());
    ParquetBatchReader restored(std::move(reader), std::move(batches));
    return restored.ToTable();
  }
  ARROW_ASSIGN_OR_RAISE(
      auto reader, arrow::csv::TableReader::Make(
                       arrow::io::default_io_context(), file, arrow::csv::ReadOptions::Defaults(),
                       arrow::csv::ParseOptions::Defaults(), CsvConvert()));
  return reader->Read();
}

arrow::Result<EntityReaderFactory> ParquetEntityReader(const std::string& path) {
  ARROW_RETURN_NOT_OK(OpenNamed(path).status());
  return [path]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
    ARROW_ASSIGN_OR_RAISE(auto file, OpenNamed(path));
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
    reader->set_use_threads(true);  // decode the columns of each batch in parallel
    ARROW_ASSIGN_OR_RAISE(auto batches, reader->GetRecordBatchReader());
    return std::make_shared<ParquetBatchReader>(std::move(reader), std::move(batches));
  };
}

arrow::Result<EntityReaderFactory> CsvEntityReader(const std::string& path,
                                                   int64_t memory_budget_bytes) {
  ARROW_RETURN_NOT_OK(OpenNamed(path).status());
  const int64_t budget = memory_budget_bytes > 0 ? memory_budget_bytes : DefaultMemoryBudget();
  std::error_code size_error;
  const auto size = std::filesystem::file_size(path, size_error);
  if (!size_error && static_cast<int64_t>(size) <= budget / 2) {
    return [path]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
      ARROW_ASSIGN_OR_RAISE(auto table, ReadTableFile(path));
      return std::make_shared<arrow::TableBatchReader>(std::move(table));
    };
  }
  return [path]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
    ARROW_ASSIGN_OR_RAISE(auto file, OpenNamed(path));
    ARROW_ASSIGN_OR_RAISE(
        auto reader, arrow::csv::StreamingReader::Make(
                         arrow::io::default_io_context(), file, arrow::csv::ReadOptions::Defaults(),
                         arrow::csv::ParseOptions::Defaults(), CsvConvert()));
    return std::static_pointer_cast<arrow::RecordBatchReader>(reader);
  };
}

arrow::Result<EntityReaderFactory> EntityFileReader(const std::string& path,
                                                    int64_t memory_budget_bytes) {
  if (EndsWith(path, ".parquet")) return ParquetEntityReader(path);
  if (EndsWith(path, ".csv")) return CsvEntityReader(path, memory_budget_bytes);
  return NotATableFile(path);
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
  ARROW_ASSIGN_OR_RAISE(auto file, OpenOutputFile(partial_));
  // Finished row groups are copied into the file while the next one is encoded
  // (Parquet hands over each finished column chunk's buffer and never touches it again).
  state_->out = std::make_shared<BackgroundOutputStream>(std::move(file), kMaxPendingBytes);
  // Columns are encoded on all cores (Parquet honours use_threads only for
  // buffered row groups, that is through WriteRecordBatch).
  auto props = parquet::WriterProperties::Builder()
                   .max_row_group_length(kRowGroupRows)
                   ->dictionary_pagesize_limit(128 << 10)
                   ->build();
  // The Arrow schema is stored in the file too, so that the columns read back
  // exactly as they were given: time zones (Parquet itself keeps only "adjusted
  // to UTC"), second-unit timestamps, date64, large strings, dictionaries,
  // field metadata.
  auto arrow_props =
      parquet::ArrowWriterProperties::Builder().set_use_threads(true)->store_schema()->build();
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
  ARROW_RETURN_NOT_OK(MoveIntoPlace(partial_, path_));
  closed_ = true;
  return arrow::Status::OK();
}

struct CsvFileSink::State {
  std::shared_ptr<arrow::io::OutputStream> out;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> csv;
};

CsvFileSink::CsvFileSink(std::string path)
    : path_(std::move(path)), partial_(path_ + ".partial"), state_(std::make_unique<State>()) {}

CsvFileSink::~CsvFileSink() {
  if (!closed_) {
    if (state_->out) (void)state_->out->Close();
    std::remove(partial_.c_str());
  }
}

arrow::Status CsvFileSink::Begin(const std::shared_ptr<arrow::Schema>& schema) {
  // (Not through a BackgroundOutputStream: Arrow's CSV writer hands its reused
  // encoding buffer to Write, so it must be written before Write returns.)
  ARROW_ASSIGN_OR_RAISE(state_->out, OpenOutputFile(partial_));
  ARROW_ASSIGN_OR_RAISE(state_->csv, arrow::csv::MakeCSVWriter(state_->out, schema));
  return arrow::Status::OK();
}

arrow::Status CsvFileSink::Write(const std::shared_ptr<arrow::Table>& rows) {
  if (!state_->csv) return arrow::Status::Invalid("CsvFileSink: Write before Begin");
  return state_->csv->WriteTable(*rows);
}

arrow::Status CsvFileSink::Close() {
  if (!state_->csv) return arrow::Status::Invalid("CsvFileSink: Close before Begin");
  ARROW_RETURN_NOT_OK(state_->csv->Close());
  ARROW_RETURN_NOT_OK(state_->out->Close());
  ARROW_RETURN_NOT_OK(MoveIntoPlace(partial_, path_));
  closed_ = true;
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<FileSink>> OpenFileSink(const std::string& path) {
  if (EndsWith(path, ".parquet")) return std::make_unique<ParquetFileSink>(path);
  if (EndsWith(path, ".csv")) return std::make_unique<CsvFileSink>(path);
  return NotATableFile(path);
}

}  // namespace stratalake::retrieval
