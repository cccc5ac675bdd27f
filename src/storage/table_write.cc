// DeltaTable::Write and TableWriter (one commit from pieces): mode, schema
// evolution and protocol upgrades, casts to the stored types, constraints,
// replaceWhere, and the data files and commit of a write.
#include <cmath>
#include <functional>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/filesystem/api.h>
#include <rapidjson/document.h>

#include "common/json.h"
#include "storage/deletion_vector_writer.h"
#include "storage/object_store.h"
#include "storage/scan.h"
#include "storage/schema.h"
#include "storage/snapshot.h"
#include "storage/stats.h"
#include "storage/table_internal.h"
#include "storage/table_read.h"
#include "storage/transaction.h"
#include "storage/writer.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

namespace {

// Lossless conversions we apply to written data to fit an existing column.
bool CanWiden(const arrow::DataType& from, const arrow::DataType& to) {
  using arrow::Type;
  auto rank = [](Type::type t) {
    switch (t) {
      case Type::INT8:
        return 1;
      case Type::INT16:
        return 2;
      case Type::INT32:
        return 3;
      case Type::INT64:
        return 4;
      default:
        return 0;
    }
  };
  if (rank(from.id()) && rank(to.id())) return rank(from.id()) <= rank(to.id());
  if (from.id() == Type::FLOAT && to.id() == Type::DOUBLE) return true;
  if (rank(from.id()) && rank(from.id()) <= 3 && to.id() == Type::DOUBLE) return true;
  if (from.id() == Type::NA) return true;
  return false;
}

// The SQL text of a column invariant: the column metadata holds
// {"delta.invariants": "{\"expression\":{\"expression\":\"x > 3\"}}"}.
std::string InvariantExpression(const std::string& column_metadata_json) {
  rapidjson::Document md;
  if (!json::ParseJson(&md, column_metadata_json).ok() || !md.IsObject()) return "";
  auto it = md.FindMember("delta.invariants");
  if (it == md.MemberEnd() || !it->value.IsString()) return "";
  rapidjson::Document inv;
  std::string_view inv_text(it->value.GetString(), it->value.GetStringLength());
  if (!json::ParseJson(&inv, inv_text).ok() || !inv.IsObject() || !inv.HasMember("expression")) {
    return "";
  }
  const auto& outer = inv["expression"];
  if (!outer.IsObject() || !outer.HasMember("expression") || !outer["expression"].IsString())
    return "";
  return outer["expression"].GetString();
}

int NumIndexedCols(const Metadata& md) {
  return static_cast<int>(IntProperty(md, "delta.dataSkippingNumIndexedCols", 32));
}

}  // namespace

// Fit `data` to `table_schema`: order, missing nullable columns, casts.
arrow::Result<std::shared_ptr<arrow::Table>> ConformData(const std::shared_ptr<arrow::Table>& data,
                                                         const arrow::Schema& table_schema) {
  arrow::ChunkedArrayVector cols;
  for (const auto& f : table_schema.fields()) {
    int idx = data->schema()->GetFieldIndex(f->name());
    if (idx < 0) {
      for (int i = 0; i < data->num_columns(); ++i) {
        if (EqualsIgnoreCase(data->field(i)->name(), f->name())) idx = i;
      }
    }
    if (idx < 0) {
      if (!f->nullable()) {
        return SchemaMismatch("the data has no column '" + f->name() +
                              "', which the table declares NOT NULL");
      }
      ARROW_ASSIGN_OR_RAISE(auto nulls, arrow::MakeArrayOfNull(f->type(), data->num_rows()));
      cols.push_back(std::make_shared<arrow::ChunkedArray>(nulls));
      continue;
    }
    auto col = data->column(idx);
    if (!col->type()->Equals(*f->type(), false)) {
      auto casted = cp::Cast(col, f->type(), cp::CastOptions::Safe(f->type()));
      if (!casted.ok()) {
        return SchemaMismatch(
            "column '" + f->name() + "' has type " + col->type()->ToString() + " in the data but " +
            DeltaTypeName(*f->type()) +
            " in the table, and the values do not convert: " + casted.status().message());
      }
      col = casted->chunked_array();
    }
    cols.push_back(col);
  }
  return arrow::Table::Make(arrow::schema(table_schema.fields()), cols, data->num_rows());
}

// Normalize user data to types a Delta table can store (timestamps to µs UTC, ...).
arrow::Result<std::shared_ptr<arrow::Table>> ToStorageTypes(
    const std::shared_ptr<arrow::Table>& data) {
  ARROW_ASSIGN_OR_RAISE(auto target, DeltaStorageSchema(*data->schema()));
  if (target->Equals(*data->schema(), false)) return data;
  arrow::ChunkedArrayVector cols;
  for (int i = 0; i < data->num_columns(); ++i) {
    auto col = data->column(i);
    if (!col->type()->Equals(*target->field(i)->type())) {
      cp::CastOptions opts = cp::CastOptions::Safe(target->field(i)->type());
      opts.allow_time_truncate = true;  // ns → µs, as Delta stores microseconds
      ARROW_ASSIGN_OR_RAISE(auto casted, cp::Cast(col, target->field(i)->type(), opts));
      col = casted.chunked_array();
    }
    cols.push_back(col);
  }
  return arrow::Table::Make(target, cols, data->num_rows());
}

// NOT NULL columns, column invariants and CHECK constraints.
arrow::Status EnforceConstraints(const Metadata& md, const arrow::Schema& schema,
                                 const arrow::Table& data) {
  for (const auto& f : schema.fields()) {
    auto col = data.GetColumnByName(f->name());
    if (!f->nullable() && col && col->null_count() > 0) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kConstraintViolation,
                       "NOT NULL constraint violated: column '" + f->name() + "' has " +
                           std::to_string(col->null_count()) + " null value(s)");
    }
  }
  std::vector<std::pair<std::string, std::string>> checks;
  for (const auto& [k, v] : md.configuration) {
    if (k.rfind("delta.constraints.", 0) == 0)
      checks.emplace_back("CHECK constraint " + k.substr(18), v);
  }
  for (const auto& f : schema.fields()) {
    if (!f->metadata()) continue;
    auto md_json = f->metadata()->Get("delta.metadata");
    if (!md_json.ok()) continue;
    auto expr = InvariantExpression(*md_json);
    if (!expr.empty()) checks.emplace_back("invariant on column " + f->name(), expr);
  }
  for (const auto& [name, expr_text] : checks) {
    ARROW_ASSIGN_OR_RAISE(auto bound, BindPredicate(expr_text, schema));
    ARROW_ASSIGN_OR_RAISE(auto values, EvaluateExpression(bound, data));
    // A row violates the check when it is false or NULL (Spark's semantics).
    int64_t row = 0;
    for (const auto& chunk : values->chunks()) {
      const auto& b = static_cast<const arrow::BooleanArray&>(*chunk);
      for (int64_t i = 0; i < b.length(); ++i, ++row) {
        if (b.IsNull(i) || !b.Value(i)) {
          std::string values_text;
          for (const auto& ref : cp::FieldsInExpression(bound)) {
            if (!ref.name()) continue;
            auto col = data.GetColumnByName(*ref.name());
            if (!col) continue;
            auto sc = col->GetScalar(row);
            if (sc.ok()) values_text += " " + *ref.name() + "=" + (*sc)->ToString();
          }
          return MakeError(arrow::StatusCode::Invalid, ErrorKind::kConstraintViolation,
                           name + " (" + expr_text + ") violated by row " + std::to_string(row) +
                               ":" + values_text);
        }
      }
    }
  }
  return arrow::Status::OK();
}

DataFileOptions FileOptions(const Metadata& md, int64_t now_ms, const std::string& compression,
                            int64_t max_rows) {
  DataFileOptions o;
  o.partition_columns = md.partition_columns;
  o.num_indexed_cols = NumIndexedCols(md);
  o.now_ms = now_ms;
  o.compression = compression;
  o.max_rows_per_file = max_rows;
  return o;
}

// ---- writing ----------------------------------------------------------------

// One write (DeltaTable::Write or a TableWriter): the decisions taken before
// any rows (mode, schema, protocol, metadata), the files written so far, and
// the commit that makes them a version.
struct TableWriter::Impl {
  DeltaTable* table = nullptr;
  DeltaTable::Impl* delta = nullptr;
  WriteOptions options;
  std::shared_ptr<arrow::Schema> input_schema;
  std::shared_ptr<arrow::Schema> schema;  // the table's schema after this write
  std::shared_ptr<const Snapshot> snapshot;
  std::unique_ptr<Transaction> txn;
  Metadata md;
  int64_t now = 0;
  std::optional<cp::Expression> replace_pred;
  std::optional<CommitResult> noop;  // nothing to write (kIgnore, idempotent replay)
  bool committed = false;
  // Once a commit was tried its files stay: a failed put of the log entry may
  // still have landed (an object store's timeout), and VACUUM removes orphans.
  bool commit_tried = false;
  int64_t rows = 0;
  std::vector<AddFile> written;  // data files of the pieces, in write order

  const std::string& root() const { return table->root(); }
};

TableWriter::TableWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TableWriter::~TableWriter() {
  if (impl_->committed || impl_->commit_tried) return;
  for (const auto& f : impl_->written) {
    (void)impl_->delta->fs->DeleteFile(DataFilePath(impl_->root(), f.path));
  }
}

const std::shared_ptr<arrow::Schema>& TableWriter::input_schema() const {
  return impl_->input_schema;
}

arrow::Result<std::unique_ptr<TableWriter>> DeltaTable::OpenWriter(
    const std::shared_ptr<arrow::Schema>& input_schema, const WriteOptions& options) {
  auto w = std::make_unique<TableWriter::Impl>();
  w->table = this;
  w->delta = impl_.get();
  w->options = options;
  w->input_schema = input_schema;
  // One listing of the log serves both "does the table exist" and its snapshot.
  std::shared_ptr<const Snapshot> snapshot;
  auto latest = Latest();
  if (latest.ok()) {
    snapshot = *latest;
  } else if (!HasErrorKind(latest.status(), ErrorKind::kTableNotFound)) {
    return latest.status();
  }
  w->snapshot = snapshot;
  if (snapshot) {
    if (options.mode == WriteMode::kErrorIfExists) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
                       "a Delta table already exists at '" + root() +
                           "' (mode=error); use mode append or overwrite");
    }
    if (options.mode == WriteMode::kIgnore) {
      w->noop = CommitResult{snapshot->version(), true, {}};
      return std::unique_ptr<TableWriter>(new TableWriter(std::move(w)));
    }
    ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
    if (options.txn) {
      auto done = snapshot->AppTransactionVersion(options.txn->app_id);
      if (done && *done >= options.txn->version) {
        w->noop = CommitResult{snapshot->version(), true, {}};
        return std::unique_ptr<TableWriter>(new TableWriter(std::move(w)));
      }
    }
  }
  if (!options.replace_where.empty() && options.mode != WriteMode::kOverwrite) {
    return arrow::Status::Invalid("replaceWhere (--where) needs mode overwrite");
  }
  ARROW_ASSIGN_OR_RAISE(auto data_schema, DeltaStorageSchema(*input_schema));
  w->now = impl_->clock->NowMillis();
  w->txn = std::make_unique<Transaction>(*impl_->store, snapshot, impl_->clock);
  auto& txn = *w->txn;

  Metadata md;
  std::shared_ptr<arrow::Schema> schema;
  bool new_metadata = false;
  if (!snapshot || (options.mode == WriteMode::kOverwrite && options.overwrite_schema)) {
    CreateOptions create = options.create;
    create.schema = data_schema;
    create.partition_columns = options.partition_by;
    if (snapshot) {
      create.properties = snapshot->metadata().configuration;
      create.name = snapshot->metadata().name;
      create.description = snapshot->metadata().description;
    }
    ARROW_ASSIGN_OR_RAISE(md, NewMetadata(*data_schema, create, w->now));
    if (snapshot) md.id = snapshot->metadata().id;
    schema = data_schema;
    new_metadata = true;
    Protocol p = ProtocolFor(*schema, md.configuration);
    if (!snapshot) {
      txn.SetProtocol(p);
    } else if (auto up = ProtocolUpgrade(snapshot->protocol(), p)) {
      txn.SetProtocol(*up);
    }
  } else {
    md = snapshot->metadata();
    schema = snapshot->schema();
    if (!options.partition_by.empty() && options.partition_by != md.partition_columns) {
      return SchemaMismatch("partition columns " + JsonList(options.partition_by) +
                            " differ from the table's " + JsonList(md.partition_columns) +
                            "; overwrite with overwrite_schema to change the partitioning");
    }
    // Schema compatibility: new columns only with merge_schema; types must fit.
    arrow::FieldVector fields = schema->fields();
    for (const auto& f : data_schema->fields()) {
      int idx = -1;
      for (int i = 0; i < schema->num_fields(); ++i) {
        if (EqualsIgnoreCase(schema->field(i)->name(), f->name())) idx = i;
      }
      if (idx < 0) {
        if (!options.merge_schema) {
          return MakeError(arrow::StatusCode::Invalid, ErrorKind::kSchemaMismatch,
                           "column '" + f->name() + "' (" + DeltaTypeName(*f->type()) +
                               ") is not in the table schema; pass " +
                               Mention(Term::kWriteMergeSchema) +
                               " to add it as a new nullable column",
                           {Term::kWriteMergeSchema});
        }
        fields.push_back(arrow::field(f->name(), f->type(), true));
        continue;
      }
      const auto& tf = schema->field(idx);
      if (!tf->type()->Equals(*f->type(), false) && !CanWiden(*f->type(), *tf->type())) {
        return SchemaMismatch("column '" + tf->name() + "' is " + DeltaTypeName(*tf->type()) +
                              " in the table but " + DeltaTypeName(*f->type()) +
                              " in the data; cast the data, or overwrite with "
                              "overwrite_schema to change the column's type");
      }
    }
    if (static_cast<int>(fields.size()) != schema->num_fields()) {
      schema = arrow::schema(fields);
      ARROW_ASSIGN_OR_RAISE(md.schema_string, SchemaToDeltaJson(*schema));
      new_metadata = true;
      if (auto up = ProtocolUpgrade(snapshot->protocol(), ProtocolFor(*schema, md.configuration))) {
        txn.SetProtocol(*up);
      }
    }
  }
  if (new_metadata) txn.SetMetadata(md);
  if (!options.replace_where.empty()) {
    ARROW_ASSIGN_OR_RAISE(w->replace_pred, BindPredicate(options.replace_where, *schema));
  }
  if (snapshot && options.mode == WriteMode::kOverwrite) {
    ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "overwrite"));
  }
  w->md = std::move(md);
  w->schema = std::move(schema);
  return std::unique_ptr<TableWriter>(new TableWriter(std::move(w)));
}

arrow::Status TableWriter::Write(const std::shared_ptr<arrow::Table>& input) {
  auto& w = *impl_;
  if (w.committed) return arrow::Status::Invalid("this table writer has already committed");
  if (w.noop) return arrow::Status::OK();
  if (!input->schema()->Equals(*w.input_schema, false)) {
    return SchemaMismatch("a piece handed to the table writer has columns " +
                          input->schema()->ToString() + ", not the writer's " +
                          w.input_schema->ToString());
  }
  ARROW_ASSIGN_OR_RAISE(auto data, ToStorageTypes(input));
  ARROW_ASSIGN_OR_RAISE(data, ConformData(data, *w.schema));
  ARROW_RETURN_NOT_OK(EnforceConstraints(w.md, *w.schema, *data));
  if (w.replace_pred) {
    ARROW_ASSIGN_OR_RAISE(auto mask, EvaluatePredicate(*w.replace_pred, *data));
    ARROW_ASSIGN_OR_RAISE(auto count, cp::Sum(mask));
    int64_t matching = count.scalar()->is_valid
                           ? static_cast<const arrow::UInt64Scalar&>(*count.scalar()).value
                           : 0;
    if (matching != data->num_rows()) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kConstraintViolation,
                       std::to_string(data->num_rows() - matching) +
                           " written row(s) do not match the replaceWhere predicate '" +
                           w.options.replace_where + "'; every new row must match it");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto adds, WriteDataFiles(*w.delta->store, data,
                                                  FileOptions(w.md, w.now, w.options.compression,
                                                              w.options.max_rows_per_file)));
  w.rows += data->num_rows();
  for (auto& a : adds) w.written.push_back(std::move(a));
  return arrow::Status::OK();
}

arrow::Result<CommitResult> TableWriter::Commit() {
  auto& w = *impl_;
  if (w.committed) return arrow::Status::Invalid("this table writer has already committed");
  if (w.noop) {
    w.committed = true;
    return *w.noop;
  }
  auto& txn = *w.txn;
  auto& fs = *w.delta->fs;
  const auto& snapshot = w.snapshot;
  std::map<std::string, int64_t> metrics;
  // The kept rows of partially replaced files come first in the commit, then
  // the new rows in the order they were written.
  const std::vector<AddFile> adds = w.written;
  if (snapshot && w.options.mode == WriteMode::kOverwrite) {
    if (w.replace_pred) {
      txn.ReadPredicate(*w.replace_pred);
      // With deletion vectors the replaced rows of partially matched files are
      // marked deleted instead of the files being rewritten.
      const bool use_dvs = WritesDeletionVectors(*snapshot);
      ARROW_ASSIGN_OR_RAISE(auto plan, PlanRewrite(fs, *snapshot, w.replace_pred, use_dvs));
      txn.ReadFiles(plan.candidates);
      for (const auto& f : plan.remove_whole) txn.Remove(f, true);
      DeletionVectorWriter dvs(*w.delta->store, snapshot);
      for (size_t i = 0; i < plan.partial.size(); ++i) {
        if (use_dvs) {
          ARROW_RETURN_NOT_OK(dvs.MarkDeleted(plan.partial[i].first, *plan.masks[i]));
          continue;
        }
        txn.Remove(plan.partial[i].first, true);
        ARROW_ASSIGN_OR_RAISE(auto kept, FilterOut(plan.partial[i].second, plan.masks[i]));
        ARROW_ASSIGN_OR_RAISE(auto kept_adds,
                              WriteDataFiles(*w.delta->store, kept,
                                             FileOptions(w.md, w.now, w.options.compression,
                                                         w.options.max_rows_per_file)));
        for (auto& a : kept_adds) {
          w.written.push_back(a);
          txn.Add(std::move(a));
        }
      }
      metrics["numDeletedRows"] = plan.matched_rows;
      if (use_dvs) {
        metrics["numDeletionVectorsAdded"] = static_cast<int64_t>(dvs.size()) - dvs.updated();
        metrics["numDeletionVectorsUpdated"] = dvs.updated();
        metrics["numRemovedFiles"] = static_cast<int64_t>(txn.removes().size());
        ARROW_RETURN_NOT_OK(dvs.Finish(&txn).status());
      }
    } else {
      txn.ReadWholeTable();
      txn.ReadFiles(snapshot->files());
      for (const auto& f : snapshot->files()) txn.Remove(f, true);
    }
    metrics.emplace("numRemovedFiles", static_cast<int64_t>(txn.removes().size()));
  }
  metrics["numFiles"] = static_cast<int64_t>(adds.size());
  metrics["numOutputRows"] = w.rows;
  metrics["numOutputBytes"] = SumSizes(adds);
  for (const auto& a : adds) txn.Add(a);
  if (!snapshot) ARROW_RETURN_NOT_OK(EnsureFolder(fs, w.delta->store->log_dir()));
  if (w.options.txn) {
    AppTransaction t = *w.options.txn;
    t.last_updated = w.now;
    txn.SetAppTransaction(t);
  }
  const auto& options = w.options;
  std::string mode = options.mode == WriteMode::kOverwrite       ? "Overwrite"
                     : options.mode == WriteMode::kErrorIfExists ? "ErrorIfExists"
                                                                 : "Append";
  std::vector<std::pair<std::string, std::string>> params = {
      {"mode", mode}, {"partitionBy", JsonList(w.md.partition_columns)}};
  if (!options.replace_where.empty())
    params.emplace_back("predicate", JsonList({options.replace_where}));
  w.commit_tried = true;
  ARROW_ASSIGN_OR_RAISE(auto version, txn.Commit(snapshot ? "WRITE" : "CREATE TABLE AS SELECT",
                                                 params, metrics, options.user_metadata));
  w.committed = true;
  return CommitResult{version, false, metrics};
}

arrow::Result<CommitResult> DeltaTable::Write(const std::shared_ptr<arrow::Table>& input,
                                              const WriteOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto writer, OpenWriter(input->schema(), options));
  ARROW_RETURN_NOT_OK(writer->Write(input));
  return writer->Commit();
}

}  // namespace stratalake::delta
