#include "ingest/readers.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/file.h>
#include <arrow/io/interfaces.h>
#include <arrow/io/memory.h>
#include <arrow/json/api.h>
#include <arrow/util/utf8.h>
#include <parquet/arrow/reader.h>
#include <parquet/properties.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json.h"
#include "ingest/convert.h"
#include "stratalake/ingest.h"

namespace stratalake::ingest {
namespace {

constexpr int64_t kReadChunk = 1 << 20;

class EmptyReader : public RawReader {
 public:
  arrow::Result<RawBatch> Next() override { return RawBatch{}; }
};

// ---- CSV ----------------------------------------------------------------------

// Arrow's CSV reader does not report where a row came from, so a second, light
// pass over the same bytes follows the record structure with the rules of Arrow's
// parser (quote at the start of a field, doubled quotes, CR / LF / CRLF line ends,
// blank lines skipped) and yields the line each record starts on. It also spots the
// records Arrow skips for having the wrong number of fields (see invalid_row_handler).
class CsvRecordScanner {
 public:
  CsvRecordScanner(std::shared_ptr<arrow::io::InputStream> input, char delimiter)
      : input_(std::move(input)), delimiter_(delimiter) {}

  // The start lines of the next `n` well-formed data records; malformed records met
  // on the way go to `bad`. Lines the scanner cannot account for read as 0.
  arrow::Status Take(int64_t n, std::vector<int64_t>* lines, std::vector<UnreadableRow>* bad) {
    lines->reserve(lines->size() + n);
    while (static_cast<int64_t>(lines->size()) < n) {
      if (queue_.empty()) {
        if (eof_) {
          lines->resize(n, 0);
          break;
        }
        ARROW_RETURN_NOT_OK(Fill());
        continue;
      }
      Record r = std::move(queue_.front());
      queue_.pop_front();
      if (r.fields != header_fields_) {
        bad->push_back(Malformed(std::move(r)));
      } else {
        lines->push_back(r.line);
      }
    }
    return arrow::Status::OK();
  }

  // The bytes up to the end of the header record (with blank lines before it).
  int64_t header_bytes() const { return header_bytes_; }

  // Whether the file has a header record (false: only blank lines).
  arrow::Result<bool> HasHeader() {
    while (header_fields_ < 0 && !eof_) ARROW_RETURN_NOT_OK(Fill());
    return header_fields_ >= 0;
  }

  // Malformed records after the last data record.
  arrow::Status Drain(std::vector<UnreadableRow>* bad) {
    while (!eof_) ARROW_RETURN_NOT_OK(Fill());
    for (auto& r : queue_) {
      if (r.fields != header_fields_) bad->push_back(Malformed(std::move(r)));
    }
    queue_.clear();
    return arrow::Status::OK();
  }

 private:
  enum class State { kLineStart, kFieldStart, kInField, kInQuoted, kQuoteInQuoted };
  struct Record {
    int64_t line = 0;
    int64_t fields = 0;
    std::string text;  // the first characters, for messages
  };
  static constexpr size_t kTextChars = 80;

  UnreadableRow Malformed(Record r) const {
    return UnreadableRow{r.line, Abbreviate(r.text),
                         "expected " + std::to_string(header_fields_) + " fields, found " +
                             std::to_string(r.fields)};
  }

  arrow::Status Fill() {
    ARROW_ASSIGN_OR_RAISE(auto chunk, input_->Read(kReadChunk));
    if (chunk->size() == 0) {
      if (state_ != State::kLineStart) EndRecord();
      eof_ = true;
      return arrow::Status::OK();
    }
    const char* p = reinterpret_cast<const char*>(chunk->data());
    for (int64_t i = 0; i < chunk->size(); ++i) Feed(p[i]);
    return arrow::Status::OK();
  }

  void Feed(char c) {
    if (header_fields_ < 0) ++header_bytes_;
    const bool newline = c == '\n' || c == '\r';
    switch (state_) {
      case State::kLineStart:
        if (newline) break;  // a blank line
        current_ = Record{line_, 1, {}};
        state_ = State::kFieldStart;
        FieldChar(c);
        break;
      case State::kFieldStart:
      case State::kInField:
        FieldChar(c);
        break;
      case State::kInQuoted:
        if (c == '"') state_ = State::kQuoteInQuoted;
        break;
      case State::kQuoteInQuoted:
        if (c == '"') {
          state_ = State::kInQuoted;  // a doubled quote
        } else {
          state_ = State::kInField;
          FieldChar(c);
        }
        break;
    }
    if (state_ != State::kLineStart && current_.text.size() < kTextChars && !newline) {
      current_.text += c;
    }
    if (c == '\r') {
      ++line_;
      prev_cr_ = true;
    } else {
      if (c == '\n' && !prev_cr_) ++line_;
      prev_cr_ = false;
    }
  }

  // `c` outside quotes, in state kFieldStart or kInField.
  void FieldChar(char c) {
    if (c == '\n' || c == '\r') {
      EndRecord();
    } else if (c == delimiter_) {
      ++current_.fields;
      state_ = State::kFieldStart;
    } else if (c == '"' && state_ == State::kFieldStart) {
      state_ = State::kInQuoted;
    } else {
      state_ = State::kInField;
    }
  }

  void EndRecord() {
    state_ = State::kLineStart;
    if (header_fields_ < 0) {
      header_fields_ = current_.fields;
    } else {
      queue_.push_back(std::move(current_));
    }
    current_ = Record{};
  }

  std::shared_ptr<arrow::io::InputStream> input_;
  char delimiter_;
  State state_ = State::kLineStart;
  int64_t line_ = 1;
  bool prev_cr_ = false;
  bool eof_ = false;
  int64_t header_fields_ = -1;
  int64_t header_bytes_ = 0;
  Record current_;
  std::deque<Record> queue_;
};

class CsvReader : public RawReader {
 public:
  static arrow::Result<std::unique_ptr<RawReader>> Open(const InputFile& file) {
    auto parse_options = arrow::csv::ParseOptions::Defaults();
    ARROW_ASSIGN_OR_RAISE(auto scan_input, file.fs->OpenInputStream(file.path));
    auto scanner =
        std::make_unique<CsvRecordScanner>(std::move(scan_input), parse_options.delimiter);
    ARROW_ASSIGN_OR_RAISE(bool has_header, scanner->HasHeader());
    if (!has_header) return std::unique_ptr<RawReader>(new EmptyReader());  // blank lines
    auto read_options = arrow::csv::ReadOptions::Defaults();
    // On this thread: Arrow's threaded CSV reader can hang in the thread pool's
    // shutdown when a row is longer than a block (see ReadCsvInput in cli/main.cc).
    read_options.use_threads = false;
    // Arrow needs the header inside its first block ("Empty CSV file or block"
    // otherwise): a wide file's rows are about as long, so the block fits two
    // headers (up to Arrow's limit of 2 GiB, which reports what is wrong).
    const int64_t wanted = 2 * scanner->header_bytes() + 2;
    if (wanted > read_options.block_size) {
      read_options.block_size =
          static_cast<int32_t>(std::min<int64_t>(wanted, std::numeric_limits<int32_t>::max()));
    }
    parse_options.newlines_in_values = true;
    // Rows with the wrong number of fields are skipped here and reported by the
    // scanner, which knows their lines.
    parse_options.invalid_row_handler = [](const arrow::csv::InvalidRow&) {
      return arrow::csv::InvalidRowResult::Skip;
    };
    auto convert_options = arrow::csv::ConvertOptions::Defaults();
    std::vector<std::string> names;
    {
      // A first look for the column names (Arrow needs them to read every column
      // as text).
      ARROW_ASSIGN_OR_RAISE(auto input, file.fs->OpenInputStream(file.path));
      ARROW_ASSIGN_OR_RAISE(auto names_reader, arrow::csv::StreamingReader::Make(
                                                   arrow::io::default_io_context(), input,
                                                   read_options, parse_options, convert_options));
      names = names_reader->schema()->field_names();
    }
    for (const auto& n : names) {
      if (n.find('\0') == std::string::npos) continue;
      std::string shown;
      for (char c : n) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
      return arrow::Status::Invalid("column name '", shown,
                                    "' in the header holds a NUL character, which Delta column "
                                    "names cannot hold; rename the column");
    }
    // Bytes, checked for UTF-8 in Next, so that broken text rejects a row, not the file.
    for (const auto& n : names) convert_options.column_types[n] = arrow::binary();
    convert_options.strings_can_be_null = false;
    ARROW_ASSIGN_OR_RAISE(auto input, file.fs->OpenInputStream(file.path));
    ARROW_ASSIGN_OR_RAISE(auto reader, arrow::csv::StreamingReader::Make(
                                           arrow::io::default_io_context(), input, read_options,
                                           parse_options, convert_options));
    auto out = std::unique_ptr<CsvReader>(new CsvReader());
    out->reader_ = std::move(reader);
    out->scanner_ = std::move(scanner);
    out->block_size_ = read_options.block_size;
    return std::unique_ptr<RawReader>(std::move(out));
  }

  arrow::Result<RawBatch> Next() override {
    RawBatch out;
    std::shared_ptr<arrow::RecordBatch> batch;
    auto st = reader_->ReadNext(&batch);
    if (!st.ok() && st.message().find("straddles two block boundaries") != std::string::npos) {
      return arrow::Status::Invalid(
          "a row is longer than the CSV reader's block of ", block_size_,
          " bytes (the block holds twice the header line); split the long values, or convert "
          "the file to Parquet or JSON lines");
    }
    ARROW_RETURN_NOT_OK(st);
    if (!batch) {
      ARROW_RETURN_NOT_OK(scanner_->Drain(&out.unreadable));
      return out;
    }
    ARROW_RETURN_NOT_OK(scanner_->Take(batch->num_rows(), &out.lines, &out.unreadable));
    ARROW_ASSIGN_OR_RAISE(out.rows, ToText(batch, &out.lines, &out.unreadable));
    return out;
  }

 private:
  CsvReader() = default;

  // The batch's byte columns as utf8. Rows holding a value that is not valid UTF-8
  // are left out (and their `lines`) and reported in `unreadable`.
  static arrow::Result<std::shared_ptr<arrow::RecordBatch>> ToText(
      const std::shared_ptr<arrow::RecordBatch>& batch, std::vector<int64_t>* lines,
      std::vector<UnreadableRow>* unreadable) {
    const int64_t n = batch->num_rows();
    arrow::FieldVector fields;
    arrow::ArrayVector columns;
    std::vector<UnreadableRow> broken;  // per row; reason empty when the row is fine
    for (int c = 0; c < batch->num_columns(); ++c) {
      const auto& name = batch->schema()->field(c)->name();
      fields.push_back(arrow::field(name, arrow::utf8()));
      auto text = arrow::compute::Cast(*batch->column(c), arrow::utf8());
      if (text.ok()) {
        columns.push_back(*text);
        continue;
      }
      arrow::util::InitializeUTF8();
      const auto& bytes = static_cast<const arrow::BinaryArray&>(*batch->column(c));
      arrow::StringBuilder b;
      broken.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        std::string_view v = bytes.GetView(i);
        if (arrow::util::ValidateUTF8(v)) {
          ARROW_RETURN_NOT_OK(b.Append(v));
          continue;
        }
        ARROW_RETURN_NOT_OK(b.AppendEmptyValue());
        if (broken[i].reason.empty()) {
          broken[i] = {(*lines)[i], Abbreviate(v), "column " + name + " is not valid UTF-8"};
        }
      }
      ARROW_ASSIGN_OR_RAISE(auto array, b.Finish());
      columns.push_back(std::move(array));
    }
    auto text = arrow::RecordBatch::Make(arrow::schema(fields), n, columns);
    if (broken.empty()) return text;
    arrow::BooleanBuilder keep;
    std::vector<int64_t> kept_lines;
    for (int64_t i = 0; i < n; ++i) {
      bool ok = broken[i].reason.empty();
      ARROW_RETURN_NOT_OK(keep.Append(ok));
      if (ok) {
        kept_lines.push_back((*lines)[i]);
      } else {
        unreadable->push_back(std::move(broken[i]));
      }
    }
    *lines = std::move(kept_lines);
    ARROW_ASSIGN_OR_RAISE(auto mask, keep.Finish());
    ARROW_ASSIGN_OR_RAISE(auto kept, arrow::compute::Filter(text, mask));
    return kept.record_batch();
  }

  std::shared_ptr<arrow::csv::StreamingReader> reader_;
  std::unique_ptr<CsvRecordScanner> scanner_;
  int64_t block_size_ = 0;
};

// ---- JSON lines -----------------------------------------------------------------

// The reason given for a line nested deeper than json::kDefaultMaxDepth.
const std::string kTooDeep =
    "JSON nested deeper than " + std::to_string(json::kDefaultMaxDepth) + " levels";

class JsonReader : public RawReader {
 public:
  static arrow::Result<std::unique_ptr<RawReader>> Open(const InputFile& file) {
    auto out = std::unique_ptr<JsonReader>(new JsonReader());
    ARROW_ASSIGN_OR_RAISE(out->input_, file.fs->OpenInputStream(file.path));
    return std::unique_ptr<RawReader>(std::move(out));
  }

  arrow::Result<RawBatch> Next() override {
    constexpr int64_t kBatchRows = 64 * 1024;
    constexpr int64_t kBatchBytes = 32 << 20;
    RawBatch out;
    std::vector<std::string> names;
    std::unordered_map<std::string, int> index;
    std::vector<std::unique_ptr<arrow::StringBuilder>> columns;
    std::vector<const rapidjson::Value*> row;
    int64_t rows = 0, bytes = 0;
    std::string_view line;
    int64_t line_no = 0;
    while (rows < kBatchRows && bytes < kBatchBytes) {
      ARROW_ASSIGN_OR_RAISE(bool more, NextLine(&line, &line_no));
      if (!more) break;
      bytes += static_cast<int64_t>(line.size());
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank
      if (!json::CheckDepth(line, json::kDefaultMaxDepth).ok()) {
        out.unreadable.push_back({line_no, Abbreviate(line), kTooDeep});
        continue;
      }
      rapidjson::Document doc;
      arrow::Status parsed = json::ParseJson<rapidjson::kParseNumbersAsStringsFlag>(&doc, line);
      if (!parsed.ok() || !doc.IsObject()) {
        out.unreadable.push_back(
            {line_no, Abbreviate(line), !parsed.ok() ? "not valid JSON" : "not a JSON object"});
        continue;
      }
      row.assign(columns.size(), nullptr);
      for (const auto& m : doc.GetObject()) {
        std::string name(m.name.GetString(), m.name.GetStringLength());
        auto it = index.find(name);
        int c;
        if (it == index.end()) {
          c = static_cast<int>(columns.size());
          index.emplace(name, c);
          names.push_back(std::move(name));
          columns.push_back(std::make_unique<arrow::StringBuilder>());
          ARROW_RETURN_NOT_OK(columns.back()->AppendNulls(rows));
          row.push_back(nullptr);
        } else {
          c = it->second;
        }
        row[c] = &m.value;  // a repeated key: the last one wins
      }
      rapidjson::Document typed;  // parsed again (numbers as numbers) for nested values
      for (size_t c = 0; c < columns.size(); ++c) {
        const rapidjson::Value* v = row[c];
        auto& b = *columns[c];
        if (v == nullptr || v->IsNull()) {
          ARROW_RETURN_NOT_OK(b.AppendNull());
        } else if (v->IsString()) {  // strings and (with the flag) numbers, verbatim
          ARROW_RETURN_NOT_OK(b.Append(v->GetString(), v->GetStringLength()));
        } else if (v->IsBool()) {
          ARROW_RETURN_NOT_OK(b.Append(v->GetBool() ? "true" : "false"));
        } else {
          // An object or array, as JSON text. Its numbers come from a second parse
          // that keeps them numbers; should that parse fail (a number beyond double),
          // they are written as strings.
          if (!typed.IsObject()) (void)json::ParseJson(&typed, line);
          const rapidjson::Value* nested = v;
          if (typed.IsObject()) {
            auto it = typed.FindMember(rapidjson::StringRef(names[c].data(), names[c].size()));
            if (it != typed.MemberEnd()) nested = &it->value;
          }
          rapidjson::StringBuffer buf;
          rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
          nested->Accept(writer);
          ARROW_RETURN_NOT_OK(b.Append(buf.GetString(), buf.GetSize()));
        }
      }
      out.lines.push_back(line_no);
      ++rows;
    }
    if (rows == 0 && eof_) return out;  // the end (with any unreadable rows before it)
    arrow::FieldVector fields;
    arrow::ArrayVector arrays;
    for (size_t c = 0; c < columns.size(); ++c) {
      fields.push_back(arrow::field(names[c], arrow::utf8()));
      ARROW_ASSIGN_OR_RAISE(auto a, columns[c]->Finish());
      arrays.push_back(std::move(a));
    }
    out.rows = arrow::RecordBatch::Make(arrow::schema(fields), rows, arrays);
    return out;
  }

 private:
  JsonReader() = default;

  // The next line without its line break; false at the end of the file. The view
  // stays valid until the next call.
  arrow::Result<bool> NextLine(std::string_view* line, int64_t* line_no) {
    for (;;) {
      size_t nl = buffer_.find('\n', pos_);
      if (nl != std::string::npos || eof_) {
        if (nl == std::string::npos) {
          if (pos_ >= buffer_.size()) return false;
          nl = buffer_.size();
        }
        *line = std::string_view(buffer_).substr(pos_, nl - pos_);
        if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
        pos_ = nl + 1;
        *line_no = ++line_no_;
        return true;
      }
      buffer_.erase(0, pos_);
      pos_ = 0;
      ARROW_ASSIGN_OR_RAISE(auto chunk, input_->Read(kReadChunk));
      if (chunk->size() == 0) {
        eof_ = true;
      } else {
        buffer_.append(reinterpret_cast<const char*>(chunk->data()), chunk->size());
      }
    }
  }

  std::shared_ptr<arrow::io::InputStream> input_;
  std::string buffer_;
  size_t pos_ = 0;
  int64_t line_no_ = 0;
  bool eof_ = false;
};

// ---- Parquet --------------------------------------------------------------------

class ParquetReader : public RawReader {
 public:
  static arrow::Result<std::unique_ptr<RawReader>> Open(const InputFile& file) {
    ARROW_ASSIGN_OR_RAISE(auto input, file.fs->OpenInputFile(file.path));
    parquet::ArrowReaderProperties props;
    props.set_coerce_int96_timestamp_unit(arrow::TimeUnit::MICRO);
    props.set_batch_size(64 * 1024);
    parquet::arrow::FileReaderBuilder builder;
    ARROW_RETURN_NOT_OK(builder.Open(input));
    builder.properties(props);
    auto out = std::unique_ptr<ParquetReader>(new ParquetReader());
    ARROW_ASSIGN_OR_RAISE(out->file_, builder.Build());
    ARROW_ASSIGN_OR_RAISE(out->batches_, out->file_->GetRecordBatchReader());
    return std::unique_ptr<RawReader>(std::move(out));
  }

  arrow::Result<RawBatch> Next() override {
    RawBatch out;
    ARROW_RETURN_NOT_OK(batches_->ReadNext(&out.rows));
    if (!out.rows) return out;
    out.lines.resize(out.rows->num_rows());
    for (auto& l : out.lines) l = ++row_;
    return out;
  }

 private:
  ParquetReader() = default;
  std::unique_ptr<parquet::arrow::FileReader> file_;  // outlives batches_
  std::unique_ptr<arrow::RecordBatchReader> batches_;
  int64_t row_ = 0;
};

}  // namespace

arrow::Result<std::unique_ptr<RawReader>> OpenRawReader(const InputFile& file) {
  if (file.size == 0) return std::unique_ptr<RawReader>(new EmptyReader());
  switch (file.format) {
    case Format::kCsv:
      return CsvReader::Open(file);
    case Format::kJson:
      return JsonReader::Open(file);
    case Format::kParquet:
      return ParquetReader::Open(file);
  }
  return arrow::Status::Invalid("unknown input format");
}

}  // namespace stratalake::ingest

namespace stratalake {

arrow::Result<std::shared_ptr<arrow::Table>> ReadJsonLinesFile(const std::string& path) {
  auto file = arrow::io::ReadableFile::Open(path);
  if (!file.ok()) {
    return arrow::Status::IOError("cannot open input '", path, "': ", file.status().message());
  }
  ARROW_ASSIGN_OR_RAISE(int64_t size, (*file)->GetSize());
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> data, (*file)->Read(size));
  std::string_view text(reinterpret_cast<const char*>(data->data()),
                        static_cast<size_t>(data->size()));
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    ++line_no;
    arrow::Status deep = json::CheckDepth(text.substr(pos, end - pos), json::kDefaultMaxDepth);
    if (!deep.ok()) {
      return arrow::Status::Invalid("input '", path, "' line ", line_no, ": ", deep.message());
    }
    pos = end + 1;
  }
  auto input = std::make_shared<arrow::io::BufferReader>(data);
  auto read = [&]() -> arrow::Result<std::shared_ptr<arrow::Table>> {
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          arrow::json::TableReader::Make(arrow::default_memory_pool(), input,
                                                         arrow::json::ReadOptions::Defaults(),
                                                         arrow::json::ParseOptions::Defaults()));
    return reader->Read();
  };
  auto table = read();
  if (!table.ok()) {
    return table.status().WithMessage("input '", path, "': ", table.status().message());
  }
  return table;
}

}  // namespace stratalake
