// DeltaTable's reads: Read (one table), Scan (a stream, one data file at a
// time), PlanScan, and the planning they share (table_read.h).
#include "storage/table_read.h"

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "storage/scan.h"
#include "storage/table_internal.h"
#include "stratalake/expression.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

arrow::Result<cp::Expression> BindPredicate(const std::string& text, const arrow::Schema& schema) {
  auto parsed = ParseExpression(text, schema);
  if (!parsed.ok()) {
    if (IsUnknownColumnError(parsed.status())) return SchemaMismatch(parsed.status().message());
    return parsed.status();
  }
  auto bound = parsed->Bind(schema);
  if (!bound.ok()) {
    return arrow::Status::Invalid("predicate '", text, "': ", bound.status().message());
  }
  if (bound->type()->id() != arrow::Type::BOOL) {
    return arrow::Status::Invalid("predicate '", text, "' is not a boolean condition (it is ",
                                  bound->type()->ToString(), ")");
  }
  return bound;
}

arrow::Result<std::vector<int>> ResolveColumns(
    const arrow::Schema& schema, const std::optional<std::vector<std::string>>& columns) {
  std::vector<int> fields;
  if (!columns) {
    for (int i = 0; i < schema.num_fields(); ++i) fields.push_back(i);
    return fields;
  }
  for (const auto& c : *columns) {
    int idx = schema.GetFieldIndex(c);
    if (idx < 0) {
      for (int i = 0; i < schema.num_fields(); ++i) {
        if (EqualsIgnoreCase(schema.field(i)->name(), c)) idx = i;
      }
    }
    if (idx < 0) {
      std::string names;
      for (const auto& f : schema.fields()) names += (names.empty() ? "" : ", ") + f->name();
      return arrow::Status::Invalid("unknown column '", c, "' (columns: ", names, ")");
    }
    fields.push_back(idx);
  }
  return fields;
}

namespace {

class FileByFileReader : public arrow::RecordBatchReader {
 public:
  FileByFileReader(std::shared_ptr<arrow::fs::FileSystem> fs,
                   std::shared_ptr<const Snapshot> snapshot, std::vector<AddFile> files,
                   std::vector<int> fields, std::optional<cp::Expression> filter,
                   ColumnsToRead to_read)
      : fs_(std::move(fs)),
        snapshot_(std::move(snapshot)),
        files_(std::move(files)),
        fields_(std::move(fields)),
        filter_(std::move(filter)),
        to_read_(std::move(to_read)) {
    arrow::FieldVector out;
    for (int i : fields_) out.push_back(snapshot_->schema()->field(i));
    schema_ = arrow::schema(std::move(out));
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    while (true) {
      if (current_) {
        ARROW_RETURN_NOT_OK(current_->ReadNext(out));
        if (*out) return arrow::Status::OK();
        current_.reset();
        table_.reset();
      }
      if (next_file_ >= files_.size()) {
        *out = nullptr;
        return arrow::Status::OK();
      }
      FileReadOptions fo;
      fo.row_group_filter = filter_;
      fo.use_threads = true;
      ARROW_ASSIGN_OR_RAISE(
          auto data, ReadDataFile(*fs_, *snapshot_, files_[next_file_++], to_read_.needed, fo));
      if (to_read_.row_filter) {
        ARROW_ASSIGN_OR_RAISE(auto mask, EvaluatePredicate(*to_read_.row_filter, *data));
        ARROW_ASSIGN_OR_RAISE(auto kept, cp::Filter(data, mask));
        data = kept.table();
      }
      // The columns the filter alone needed come after `fields_`: leave them out.
      arrow::ChunkedArrayVector cols;
      for (size_t c = 0; c < fields_.size(); ++c) cols.push_back(data->column(static_cast<int>(c)));
      table_ = arrow::Table::Make(schema_, std::move(cols), data->num_rows());
      current_ = std::make_shared<arrow::TableBatchReader>(*table_);
    }
  }

 private:
  std::shared_ptr<arrow::fs::FileSystem> fs_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<AddFile> files_;
  std::vector<int> fields_;
  std::optional<cp::Expression> filter_;
  ColumnsToRead to_read_;
  std::shared_ptr<arrow::Schema> schema_;
  size_t next_file_ = 0;
  std::shared_ptr<arrow::Table> table_;  // the file being handed out
  std::shared_ptr<arrow::TableBatchReader> current_;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> MakeFileByFileReader(
    std::shared_ptr<arrow::fs::FileSystem> fs, std::shared_ptr<const Snapshot> snapshot,
    std::vector<AddFile> files, std::vector<int> fields, std::optional<cp::Expression> filter) {
  ARROW_ASSIGN_OR_RAISE(auto to_read, PlanColumns(*snapshot, fields, filter));
  return std::make_shared<FileByFileReader>(std::move(fs), std::move(snapshot), std::move(files),
                                            std::move(fields), std::move(filter),
                                            std::move(to_read));
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> DeltaTable::Scan(
    std::shared_ptr<const Snapshot> snapshot, const ReadOptions& options) const {
  const auto& schema = *snapshot->schema();
  ARROW_ASSIGN_OR_RAISE(auto fields, ResolveColumns(schema, options.columns));
  std::optional<cp::Expression> bound;
  if (!options.filter.empty()) {
    ARROW_ASSIGN_OR_RAISE(bound, BindPredicate(options.filter, schema));
  }
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanFiles(*snapshot, bound));
  return MakeFileByFileReader(filesystem(), std::move(snapshot), std::move(plan.files),
                              std::move(fields), std::move(bound));
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> DeltaTable::Scan(
    const ReadOptions& options) const {
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Load(options));
  return Scan(std::move(snapshot), options);
}

arrow::Result<ScanPlan> DeltaTable::PlanScan(const Snapshot& snapshot,
                                             const std::string& filter) const {
  std::optional<cp::Expression> bound;
  if (!filter.empty()) {
    ARROW_ASSIGN_OR_RAISE(bound, BindPredicate(filter, *snapshot.schema()));
  }
  return PlanFiles(snapshot, bound);
}

arrow::Result<std::shared_ptr<arrow::Table>> DeltaTable::Read(const ReadOptions& options) const {
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Load(options));
  return Read(*snapshot, options);
}

arrow::Result<std::shared_ptr<arrow::Table>> DeltaTable::Read(const Snapshot& snapshot,
                                                              const ReadOptions& options) const {
  const auto& schema = *snapshot.schema();
  ARROW_ASSIGN_OR_RAISE(auto fields, ResolveColumns(schema, options.columns));
  std::optional<cp::Expression> bound;
  if (!options.filter.empty()) {
    ARROW_ASSIGN_OR_RAISE(bound, BindPredicate(options.filter, schema));
  }
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanFiles(snapshot, bound));
  return ReadFiles(*impl_->fs, snapshot, plan.files, fields, bound);
}

}  // namespace stratalake::delta
