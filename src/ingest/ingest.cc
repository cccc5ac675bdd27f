#include "stratalake/ingest.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/filesystem/localfs.h>

#include "common/compute_init.h"
#include "ingest/convert.h"
#include "ingest/readers.h"
#include "storage/scan.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/object_store.h"
#include "stratalake/status.h"

namespace stratalake {
namespace {

namespace cp = arrow::compute;
using ingest::Format;
using ingest::InputFile;
using ingest::RawBatch;

constexpr const char* kSourceFile = "_source_file";
constexpr const char* kLine = "_line";
constexpr const char* kReason = "_reason";
constexpr const char* kIngestedAt = "_ingested_at";

bool IsMetaColumn(const std::string& name) {
  return name == kSourceFile || name == kLine || name == kReason || name == kIngestedAt;
}

// A conversion failure names a column and a value; other rejections (NOT NULL, a
// check, an unreadable row) carry their whole story in `reason`.
bool IsConversionFailure(const RejectedRow& r) { return !r.column.empty() && !r.value.empty(); }

// "column amount: 'abc' is not a valid int64", "check `amount >= 0` failed (amount=-5)".
std::string Describe(const RejectedRow& r) {
  if (IsConversionFailure(r)) return "column " + r.column + ": '" + r.value + "' is " + r.reason;
  if (r.value.empty()) return r.reason;
  return r.reason + " (" + r.value + ")";
}

// The key of IngestReport::reason_counts.
std::string ReasonKey(const RejectedRow& r) {
  return IsConversionFailure(r) ? "column " + r.column + ": " + r.reason : r.reason;
}

std::string Location(const RejectedRow& r) { return r.file + ":" + std::to_string(r.line); }

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

std::string Plural(int64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

arrow::Status WithContext(const arrow::Status& st, const std::string& context) {
  return st.WithMessage(context, ": ", st.message());
}

// ---- input files ----------------------------------------------------------------

arrow::Result<Format> FormatOf(const std::string& name, const std::string& format) {
  if (!format.empty()) {
    auto f = Lower(format);
    if (f == "csv") return Format::kCsv;
    if (f == "json" || f == "jsonl" || f == "ndjson") return Format::kJson;
    if (f == "parquet") return Format::kParquet;
    return arrow::Status::Invalid("unknown input format '", format,
                                  "'; use csv, json (JSON lines) or parquet");
  }
  std::string base = std::filesystem::path(name).filename().string();
  auto dot = base.rfind('.');
  std::string ext = dot == std::string::npos ? "" : Lower(base.substr(dot + 1));
  if (ext == "csv") return Format::kCsv;
  if (ext == "json" || ext == "jsonl" || ext == "ndjson") return Format::kJson;
  if (ext == "parquet" || ext == "pq") return Format::kParquet;
  return arrow::Status::Invalid(
      "cannot tell the format of '", name, "' from its extension",
      ext.empty() ? std::string() : " '." + ext + "'",
      "; name it .csv, .json, .jsonl, .ndjson or .parquet, or pass the format "
      "(--format csv|json|parquet)");
}

arrow::Result<InputFile> Locate(const std::string& name, const IngestOptions& options) {
  InputFile file;
  file.name = name;
  ARROW_ASSIGN_OR_RAISE(file.format, FormatOf(name, options.format));
  if (name.find("://") != std::string::npos) {
    ARROW_ASSIGN_OR_RAISE(file.fs, OpenFileSystem(name, &file.path));
  } else {
    file.fs = std::make_shared<arrow::fs::LocalFileSystem>();
    std::error_code ec;
    auto abs = std::filesystem::absolute(name, ec);
    file.path = ec ? name : abs.lexically_normal().string();
  }
  ARROW_ASSIGN_OR_RAISE(auto info, file.fs->GetFileInfo(file.path));
  if (info.type() == arrow::fs::FileType::NotFound) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
                     "input file '" + name + "' does not exist");
  }
  if (info.type() != arrow::fs::FileType::File) {
    return arrow::Status::Invalid("input '", name, "' is not a file; pass the files to load");
  }
  file.size = info.size();
  return file;
}

arrow::Result<RawBatch> ReadNext(ingest::RawReader& reader, const InputFile& file) {
  auto batch = reader.Next();
  if (!batch.ok()) return WithContext(batch.status(), "reading '" + file.name + "'");
  return batch;
}

// The schema of the files when there is neither a declared schema nor a table:
// columns in first-seen order; CSV and JSON types from the values of each file's
// first batch, Parquet's own types.
arrow::Result<std::shared_ptr<arrow::Schema>> InferSchema(const std::vector<InputFile>& files) {
  std::vector<std::string> order;
  std::map<std::string, std::shared_ptr<arrow::DataType>> types;
  auto add = [&](const std::string& name, const std::shared_ptr<arrow::DataType>& type) {
    auto it = types.find(name);
    if (it == types.end()) {
      order.push_back(name);
      types.emplace(name, type);
    } else {
      it->second = ingest::UnifyInferredTypes(it->second, type);
    }
  };
  for (const auto& file : files) {
    auto opened = ingest::OpenRawReader(file);
    if (!opened.ok()) return WithContext(opened.status(), "reading '" + file.name + "'");
    auto reader = std::move(*opened);
    for (;;) {
      ARROW_ASSIGN_OR_RAISE(auto batch, ReadNext(*reader, file));
      if (!batch.rows) break;
      if (file.format == Format::kParquet) {
        for (const auto& f : batch.rows->schema()->fields()) {
          add(f->name(), ingest::InferredStorageType(f->type()));
        }
        break;
      }
      if (batch.rows->num_rows() == 0) continue;
      for (int c = 0; c < batch.rows->num_columns(); ++c) {
        add(batch.rows->schema()->field(c)->name(), ingest::InferTextType(*batch.rows->column(c)));
      }
      break;
    }
  }
  arrow::FieldVector fields;
  for (const auto& name : order) fields.push_back(arrow::field(name, types[name]));
  return arrow::schema(fields);
}

// ---- checks -----------------------------------------------------------------------

struct Check {
  std::string text;
  std::string reason;  // "check `amount >= 0` failed"
  cp::Expression bound;
  std::vector<int> columns;  // referenced columns, for messages
};

arrow::Result<Check> CompileCheck(const std::string& text, const std::string& name,
                                  const arrow::Schema& schema) {
  Check check;
  check.text = text;
  check.reason = "check `" + (name.empty() ? text : name) + "` failed";
  ARROW_ASSIGN_OR_RAISE(auto expr, ParseExpression(text, schema));
  ARROW_ASSIGN_OR_RAISE(check.bound, expr.Bind(schema));
  if (check.bound.type()->id() != arrow::Type::BOOL) {
    return arrow::Status::Invalid("it is not a condition (its type is ",
                                  check.bound.type()->ToString(), ")");
  }
  for (const auto& c : ReferencedColumns(expr)) {
    int idx = schema.GetFieldIndex(c);
    if (idx >= 0) check.columns.push_back(idx);
  }
  return check;
}

// ---- loading ------------------------------------------------------------------

// Converts batches to the target schema, sorts rows into good and rejected, and
// keeps what the commit and the report need.
class Loader {
 public:
  Loader(std::shared_ptr<arrow::Schema> schema, std::vector<Check> checks,
         const IngestOptions& options, int64_t ingested_at_us)
      : schema_(std::move(schema)),
        checks_(std::move(checks)),
        options_(options),
        ingested_at_us_(ingested_at_us) {}

  arrow::Status Add(const InputFile& file, RawBatch batch);

  IngestReport& report() { return report_; }
  /// The good rows (all of them only while no row was rejected or with quarantine).
  arrow::Result<std::shared_ptr<arrow::Table>> GoodRows() const {
    return arrow::Table::FromRecordBatches(schema_, good_);
  }
  /// The rejected rows in the quarantine layout.
  arrow::Result<std::shared_ptr<arrow::Table>> QuarantineRows() const;

 private:
  struct Rejection {
    int64_t line = 0;
    int64_t row = -1;  // in the batch; -1 for an unreadable row
    std::vector<RejectedRow> failures;
  };

  arrow::Status Quarantine(const InputFile& file, const arrow::RecordBatch* rows,
                           const std::vector<Rejection>& rejections);

  std::shared_ptr<arrow::Schema> schema_;
  std::vector<Check> checks_;
  const IngestOptions& options_;
  int64_t ingested_at_us_;
  IngestReport report_;
  std::set<std::string> ignored_;
  std::vector<std::shared_ptr<arrow::RecordBatch>> good_;
  std::vector<std::shared_ptr<arrow::Table>> quarantined_;
};

arrow::Status Loader::Add(const InputFile& file, RawBatch batch) {
  const arrow::RecordBatch* rows = batch.rows.get();
  const int64_t n = rows ? rows->num_rows() : 0;
  report_.rows_read += n + static_cast<int64_t>(batch.unreadable.size());
  std::vector<Rejection> rejections;
  for (auto& u : batch.unreadable) {
    rejections.push_back({u.line, -1, {RejectedRow{file.name, u.line, "", u.text, u.reason}}});
  }
  std::shared_ptr<arrow::RecordBatch> good;
  if (rows) {
    for (const auto& f : rows->schema()->fields()) {
      if (schema_->GetFieldIndex(f->name()) < 0 && ignored_.insert(f->name()).second) {
        report_.ignored_columns.push_back(f->name());
      }
    }
    std::map<int64_t, std::vector<RejectedRow>> failures;  // by row
    auto fail = [&](int64_t row, std::string column, std::string value, std::string reason) {
      failures[row].push_back(RejectedRow{file.name, batch.lines[row], std::move(column),
                                          std::move(value), std::move(reason)});
    };
    arrow::ArrayVector arrays;
    for (const auto& field : schema_->fields()) {
      int idx = -1;  // the first input column of that name
      for (int c = 0; c < rows->num_columns() && idx < 0; ++c) {
        if (rows->schema()->field(c)->name() == field->name()) idx = c;
      }
      std::shared_ptr<arrow::Array> values;
      std::vector<bool> failed;
      if (idx < 0) {
        ARROW_ASSIGN_OR_RAISE(values, arrow::MakeArrayOfNull(field->type(), n));
      } else {
        auto converted = ingest::ConvertColumn(rows->column(idx), field->type());
        if (!converted.ok()) {
          return WithContext(converted.status(),
                             "converting column " + field->name() + " of '" + file.name + "'");
        }
        values = std::move(converted->values);
        if (!converted->errors.empty()) failed.assign(n, false);
        for (auto& e : converted->errors) {
          failed[e.row] = true;
          fail(e.row, field->name(), ingest::Abbreviate(e.value), std::move(e.reason));
        }
      }
      if (!field->nullable() && values->null_count() > 0) {
        for (int64_t r = 0; r < n; ++r) {
          if (values->IsNull(r) && (failed.empty() || !failed[r])) {
            fail(r, field->name(), "", "column " + field->name() + " is NOT NULL");
          }
        }
      }
      arrays.push_back(std::move(values));
    }
    auto converted = arrow::RecordBatch::Make(schema_, n, arrays);
    if (!checks_.empty() && n > 0) {
      // Checks judge only rows whose values all converted.
      std::vector<bool> judged(n, true);
      for (const auto& [r, _] : failures) judged[r] = false;
      ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches({converted}));
      for (const auto& check : checks_) {
        auto mask = delta::EvaluatePredicate(check.bound, *table);
        if (!mask.ok()) return WithContext(mask.status(), "evaluating check `" + check.text + "`");
        int64_t r = 0;
        for (const auto& chunk : (*mask)->chunks()) {
          const auto& b = static_cast<const arrow::BooleanArray&>(*chunk);
          for (int64_t i = 0; i < b.length(); ++i, ++r) {
            if (!judged[r] || (b.IsValid(i) && b.Value(i))) continue;
            std::vector<std::string> values;
            for (int c : check.columns) {
              ARROW_ASSIGN_OR_RAISE(auto s, converted->column(c)->GetScalar(r));
              values.push_back(schema_->field(c)->name() + "=" +
                               (s->is_valid ? s->ToString() : "NULL"));
            }
            fail(r, "", ingest::Abbreviate(Join(values, ", ")), check.reason);
          }
        }
      }
    }
    if (failures.empty()) {
      good = std::move(converted);
    } else {
      arrow::BooleanBuilder keep;
      ARROW_RETURN_NOT_OK(keep.Reserve(n));
      for (int64_t r = 0; r < n; ++r) keep.UnsafeAppend(failures.count(r) == 0);
      ARROW_ASSIGN_OR_RAISE(auto mask, keep.Finish());
      ARROW_ASSIGN_OR_RAISE(auto filtered, cp::Filter(converted, mask));
      good = filtered.record_batch();
      for (auto& [r, f] : failures) rejections.push_back({batch.lines[r], r, std::move(f)});
    }
  }
  std::stable_sort(rejections.begin(), rejections.end(),
                   [](const Rejection& a, const Rejection& b) { return a.line < b.line; });
  for (const auto& rej : rejections) {
    ++report_.rows_rejected;
    for (const auto& f : rej.failures) ++report_.reason_counts[ReasonKey(f)];
    if (static_cast<int64_t>(report_.examples.size()) < options_.max_examples) {
      report_.examples.push_back(rej.failures.front());
    }
  }
  if (options_.quarantine) {
    if (!rejections.empty()) ARROW_RETURN_NOT_OK(Quarantine(file, rows, rejections));
  } else if (report_.rows_rejected > 0) {
    good_.clear();  // the load fails; keep counting, but no rows
    return arrow::Status::OK();
  }
  if (good && good->num_rows() > 0) good_.push_back(std::move(good));
  return arrow::Status::OK();
}

arrow::Status Loader::Quarantine(const InputFile& file, const arrow::RecordBatch* rows,
                                 const std::vector<Rejection>& rejections) {
  const int64_t m = static_cast<int64_t>(rejections.size());
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  if (rows && rows->num_columns() > 0) {
    // Every input column as text; an unreadable row has none.
    arrow::Int64Builder take;
    for (const auto& r : rejections) {
      ARROW_RETURN_NOT_OK(r.row >= 0 ? take.Append(r.row) : take.AppendNull());
    }
    ARROW_ASSIGN_OR_RAISE(auto indices, take.Finish());
    ARROW_ASSIGN_OR_RAISE(auto taken, cp::Take(arrow::Datum(rows->Slice(0)), indices));
    const auto& picked = *taken.record_batch();
    for (int c = 0; c < picked.num_columns(); ++c) {
      std::string name = picked.schema()->field(c)->name();
      if (IsMetaColumn(name)) name += "_input";
      fields.push_back(arrow::field(name, arrow::utf8()));
      ARROW_ASSIGN_OR_RAISE(auto text, ingest::ValuesAsText(picked.column(c)));
      arrays.push_back(std::move(text));
    }
  }
  arrow::StringBuilder source, reason;
  arrow::Int64Builder line;
  for (const auto& r : rejections) {
    ARROW_RETURN_NOT_OK(source.Append(file.name));
    ARROW_RETURN_NOT_OK(line.Append(r.line));
    std::vector<std::string> reasons;
    for (const auto& f : r.failures) reasons.push_back(Describe(f));
    ARROW_RETURN_NOT_OK(reason.Append(Join(reasons, "; ")));
  }
  const auto ts_type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  fields.push_back(arrow::field(kSourceFile, arrow::utf8()));
  ARROW_ASSIGN_OR_RAISE(auto source_array, source.Finish());
  arrays.push_back(std::move(source_array));
  fields.push_back(arrow::field(kLine, arrow::int64()));
  ARROW_ASSIGN_OR_RAISE(auto line_array, line.Finish());
  arrays.push_back(std::move(line_array));
  fields.push_back(arrow::field(kReason, arrow::utf8()));
  ARROW_ASSIGN_OR_RAISE(auto reason_array, reason.Finish());
  arrays.push_back(std::move(reason_array));
  fields.push_back(arrow::field(kIngestedAt, ts_type));
  ARROW_ASSIGN_OR_RAISE(
      auto at, arrow::MakeArrayFromScalar(arrow::TimestampScalar(ingested_at_us_, ts_type), m));
  arrays.push_back(std::move(at));
  quarantined_.push_back(arrow::Table::Make(arrow::schema(fields), arrays, m));
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Table>> Loader::QuarantineRows() const {
  auto options = arrow::ConcatenateTablesOptions::Defaults();
  options.unify_schemas = true;
  ARROW_ASSIGN_OR_RAISE(auto all, arrow::ConcatenateTables(quarantined_, options));
  // Input columns first (in first-seen order), then the bookkeeping columns.
  std::vector<int> order;
  for (int c = 0; c < all->num_columns(); ++c) {
    if (!IsMetaColumn(all->field(c)->name())) order.push_back(c);
  }
  for (const char* meta : {kSourceFile, kLine, kReason, kIngestedAt}) {
    order.push_back(all->schema()->GetFieldIndex(meta));
  }
  return all->SelectColumns(order);
}

std::string RejectionMessage(const std::string& name, const IngestReport& report,
                             const std::string& quarantine_uri) {
  std::string msg = "rejected " + std::to_string(report.rows_rejected) + " of " +
                    Plural(report.rows_read, "row") + " of '" + name + "' (nothing was written):\n";
  for (const auto& ex : report.examples) msg += "  " + Location(ex) + " " + Describe(ex) + "\n";
  int64_t more = report.rows_rejected - static_cast<int64_t>(report.examples.size());
  if (more > 0) {
    msg += "  ... and " + std::to_string(more) + " more\n";
    msg += "by reason:\n";
    for (const auto& [reason, count] : report.reason_counts) {
      msg += "  " + std::to_string(count) + "  " + reason + "\n";
    }
  }
  msg += "fix these rows, or pass " + Mention(Term::kQuarantine) +
         " to load the good rows and keep the rejected ones in ";
  msg += quarantine_uri.empty() ? "a quarantine table" : quarantine_uri;
  return msg;
}

}  // namespace

std::string IngestReport::ToString() const {
  std::string out = "loaded " + std::to_string(rows_written) + " of " + Plural(rows_read, "row") +
                    " from " + Plural(files, "file") + " into " + table_uri;
  if (version >= 0) {
    out += " (version " + std::to_string(version) + (created ? ", table created)" : ")");
  } else {
    out += " (nothing written)";
  }
  out += "\n";
  if (rows_rejected > 0) {
    out += "rejected " + Plural(rows_rejected, "row");
    if (!quarantine_uri.empty()) {
      out +=
          ", kept in " + quarantine_uri + " (version " + std::to_string(quarantine_version) + ")";
    }
    out += "\n";
  }
  if (!ignored_columns.empty()) out += "ignored columns: " + Join(ignored_columns, ", ") + "\n";
  if (!reason_counts.empty()) {
    out += "by reason:\n";
    for (const auto& [reason, count] : reason_counts) {
      out += "  " + std::to_string(count) + "  " + reason + "\n";
    }
  }
  if (!examples.empty()) {
    out += "examples:\n";
    for (const auto& ex : examples) out += "  " + Location(ex) + " " + Describe(ex) + "\n";
  }
  return out;
}

arrow::Result<IngestReport> Ingest(const IngestTarget& target,
                                   const std::vector<std::string>& files,
                                   const IngestOptions& options) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  const std::string name = target.name.empty() ? target.table_uri : target.name;
  if (target.table_uri.empty()) return arrow::Status::Invalid("no table to load '", name, "' into");
  if (files.empty()) return arrow::Status::Invalid("no input files to load into '", name, "'");
  if (options.mode == IngestMode::kMerge && options.merge_keys.empty()) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                     "merge mode needs key columns (" + Mention(Term::kMergeKeys) + ")",
                     {Term::kMergeKeys});
  }
  if (options.quarantine && target.quarantine_uri.empty()) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                     Mention(Term::kQuarantine) + " needs a quarantine table for '" + name +
                         "' (quarantine_uri)",
                     {Term::kQuarantine});
  }
  if (!target.check_names.empty() && target.check_names.size() != target.checks.size()) {
    return arrow::Status::Invalid("'", name, "' has ", target.checks.size(), " checks but ",
                                  target.check_names.size(), " check names");
  }
  std::vector<InputFile> inputs;
  for (const auto& f : files) {
    ARROW_ASSIGN_OR_RAISE(auto input, Locate(f, options));
    inputs.push_back(std::move(input));
  }

  auto clock = options.clock ? options.clock : Clock::System();
  delta::TableOpenOptions open;
  open.clock = clock;
  ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(target.table_uri, open));
  ARROW_ASSIGN_OR_RAISE(bool exists, table->Exists());
  std::shared_ptr<const delta::Snapshot> snapshot;
  if (exists) {
    ARROW_ASSIGN_OR_RAISE(snapshot, table->Latest());
  }

  // The target schema, without Delta's field metadata.
  std::shared_ptr<arrow::Schema> schema = target.schema;
  if (!schema) {
    if (snapshot) {
      schema = snapshot->schema();
    } else {
      ARROW_ASSIGN_OR_RAISE(schema, InferSchema(inputs));
    }
  }
  {
    arrow::FieldVector fields;
    for (const auto& f : schema->fields()) fields.push_back(f->RemoveMetadata());
    schema = arrow::schema(fields);
  }
  for (const auto& k : options.merge_keys) {
    if (options.mode == IngestMode::kMerge && schema->GetFieldIndex(k) < 0) {
      return arrow::Status::Invalid("merge key '", k, "' is not a column of '", name,
                                    "' (columns: ", Join(schema->field_names(), ", "), ")");
    }
  }

  std::vector<Check> checks;
  for (size_t i = 0; i < target.checks.size(); ++i) {
    auto check = CompileCheck(target.checks[i],
                              target.check_names.empty() ? "" : target.check_names[i], *schema);
    if (!check.ok()) {
      return WithContext(check.status(), "check `" + target.checks[i] + "` of '" + name + "'");
    }
    checks.push_back(std::move(*check));
  }
  if (snapshot) {
    // The table's CHECK constraints reject rows here rather than fail the commit.
    for (const auto& [key, expr] : snapshot->metadata().configuration) {
      const std::string prefix = "delta.constraints.";
      if (key.rfind(prefix, 0) != 0) continue;
      auto check = CompileCheck(expr, key.substr(prefix.size()), *schema);
      if (check.ok()) checks.push_back(std::move(*check));  // else the commit enforces it
    }
  }

  Loader loader(schema, std::move(checks), options, clock->NowMillis() * 1000);
  for (const auto& input : inputs) {
    auto opened = ingest::OpenRawReader(input);
    if (!opened.ok()) return WithContext(opened.status(), "reading '" + input.name + "'");
    auto reader = std::move(*opened);
    for (;;) {
      ARROW_ASSIGN_OR_RAISE(auto batch, ReadNext(*reader, input));
      const bool end = batch.rows == nullptr;
      ARROW_RETURN_NOT_OK(loader.Add(input, std::move(batch)));
      if (end) break;
    }
  }

  IngestReport report = std::move(loader.report());
  report.table_uri = target.table_uri;
  report.files = static_cast<int64_t>(inputs.size());
  if (report.rows_rejected > 0 && !options.quarantine) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDataRejected,
                     RejectionMessage(name, report, target.quarantine_uri), {Term::kQuarantine});
  }

  // Rejected rows first: should the target commit fail, they are not lost.
  if (report.rows_rejected > 0) {
    ARROW_ASSIGN_OR_RAISE(auto rejected, loader.QuarantineRows());
    ARROW_ASSIGN_OR_RAISE(auto quarantine, delta::DeltaTable::ForPath(target.quarantine_uri, open));
    delta::WriteOptions wo;
    wo.mode = delta::WriteMode::kAppend;
    wo.merge_schema = true;  // later loads may bring other input columns
    auto written = quarantine->Write(rejected, wo);
    if (!written.ok()) {
      return WithContext(written.status(), "writing the rejected rows of '" + name +
                                               "' to quarantine " + target.quarantine_uri);
    }
    report.quarantine_uri = target.quarantine_uri;
    report.quarantine_version = written->version;
  }

  ARROW_ASSIGN_OR_RAISE(auto good, loader.GoodRows());
  const bool write =
      schema->num_fields() > 0 && (good->num_rows() > 0 || options.mode == IngestMode::kOverwrite);
  if (write) {
    arrow::Result<delta::CommitResult> committed;
    if (options.mode == IngestMode::kMerge && exists) {
      delta::MergeOptions mo;
      mo.on = options.merge_keys;
      mo.when_matched.push_back(delta::MatchedClause{});  // update all columns
      mo.when_not_matched.push_back(delta::NotMatchedClause{});
      committed = table->Merge(good, mo);
    } else {
      delta::WriteOptions wo;
      wo.mode = options.mode == IngestMode::kOverwrite ? delta::WriteMode::kOverwrite
                                                       : delta::WriteMode::kAppend;
      if (!exists) wo.partition_by = target.partition_by;
      committed = table->Write(good, wo);
    }
    if (!committed.ok()) {
      return WithContext(committed.status(),
                         "loading " + Plural(good->num_rows(), "row") + " into '" + name + "'");
    }
    if (!committed->noop) {
      report.version = committed->version;
      report.rows_written = good->num_rows();
      report.created = !exists;
    }
  }
  return report;
}

}  // namespace stratalake
