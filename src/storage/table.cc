// DeltaTable: the operations of the Delta engine, each one transaction.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <unordered_map>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/row/grouper.h>
#include <arrow/filesystem/api.h>
#include <rapidjson/document.h>

#include "common/json.h"
#include "storage/checkpoint.h"
#include "storage/deletion_vector.h"
#include "storage/log_store.h"
#include "storage/scan.h"
#include "storage/schema.h"
#include "storage/snapshot.h"
#include "storage/stats.h"
#include "storage/table_read.h"
#include "storage/transaction.h"
#include "storage/writer.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

struct DeltaTable::Impl {
  std::shared_ptr<arrow::fs::FileSystem> fs;
  std::shared_ptr<const LogStore> store;
  std::shared_ptr<Clock> clock;
  ExternalPaths external = ExternalPaths::kRefuse;  // TableOpenOptions::allow_external_paths

  arrow::Result<std::shared_ptr<const Snapshot>> Load(std::optional<int64_t> version) const {
    ARROW_ASSIGN_OR_RAISE(auto listing, store->List());
    return SnapshotBuilder::Load(*store, listing, version, external);
  }
};

namespace {

arrow::Status NotAllowed(const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kOperationNotAllowed, msg);
}

arrow::Status SchemaMismatch(const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kSchemaMismatch, msg);
}

std::string JsonList(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ",";
    s += JsonQuote(items[i]);
  }
  return s + "]";
}

arrow::Status CheckAppendOnly(const Snapshot& s, const std::string& op) {
  if (s.Property("delta.appendOnly", "false") == "true") {
    return NotAllowed(op + " is not allowed: table at '" + s.table_root() +
                      "' is append-only (delta.appendOnly=true); only appends are permitted. "
                      "Unset the property to allow it");
  }
  return arrow::Status::OK();
}

bool EqualsIgnoreCase(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IsTrue(const cp::Expression& e) {
  if (!e.literal() || !e.literal()->is_scalar()) return false;
  const auto& s = *e.literal()->scalar();
  return s.is_valid && s.type->id() == arrow::Type::BOOL &&
         static_cast<const arrow::BooleanScalar&>(s).value;
}

std::vector<int> AllFields(const arrow::Schema& schema) {
  std::vector<int> v(schema.num_fields());
  for (int i = 0; i < schema.num_fields(); ++i) v[i] = i;
  return v;
}

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

Protocol ProtocolFor(const arrow::Schema& schema, const std::map<std::string, std::string>& props) {
  bool ntz = false;
  std::function<void(const arrow::DataType&)> visit = [&](const arrow::DataType& t) {
    if (t.id() == arrow::Type::TIMESTAMP &&
        static_cast<const arrow::TimestampType&>(t).timezone().empty()) {
      ntz = true;
    }
    for (const auto& f : t.fields()) visit(*f->type());
  };
  for (const auto& f : schema.fields()) visit(*f->type());
  bool checks = false;
  for (const auto& [k, v] : props) checks |= k.rfind("delta.constraints.", 0) == 0;
  Protocol p;
  if (ntz) {
    p.min_reader_version = 3;
    p.min_writer_version = 7;
    p.reader_features = std::vector<std::string>{"timestampNtz"};
    p.writer_features = std::vector<std::string>{"appendOnly", "invariants", "timestampNtz"};
    if (checks) p.writer_features->push_back("checkConstraints");
  } else {
    p.min_reader_version = 1;
    p.min_writer_version = checks ? 3 : 2;
  }
  return p;
}

// The protocol `current` must become to also satisfy `needed`, or nullopt when it
// already does. Legacy versions imply their features (writer 2: appendOnly,
// invariants; 3: + checkConstraints; 4: + changeDataFeed, generatedColumns;
// 5: + columnMapping; 6: + identityColumns); moving to 3/7 lists them explicitly.
std::optional<Protocol> ProtocolUpgrade(const Protocol& current, const Protocol& needed) {
  auto has = [](const std::optional<std::vector<std::string>>& l, const std::string& f) {
    return l && std::find(l->begin(), l->end(), f) != l->end();
  };
  if (!needed.reader_features && !needed.writer_features) {
    if (current.min_writer_version == 7) {
      if (needed.min_writer_version >= 3 && !has(current.writer_features, "checkConstraints")) {
        Protocol p = current;
        p.writer_features->push_back("checkConstraints");
        return p;
      }
      return std::nullopt;
    }
    if (current.min_writer_version >= needed.min_writer_version) return std::nullopt;
    Protocol p = current;
    p.min_writer_version = needed.min_writer_version;
    return p;
  }
  std::vector<std::string> reader, writer;
  if (current.reader_features) {
    reader = *current.reader_features;
  } else if (current.min_reader_version == 2) {
    reader = {"columnMapping"};
  }
  if (current.writer_features) {
    writer = *current.writer_features;
  } else {
    static const std::vector<std::pair<int, std::string>> kImplied = {
        {2, "appendOnly"},     {2, "invariants"},       {3, "checkConstraints"},
        {4, "changeDataFeed"}, {4, "generatedColumns"}, {5, "columnMapping"},
        {6, "identityColumns"}};
    for (const auto& [v, f] : kImplied) {
      if (current.min_writer_version >= v) writer.push_back(f);
    }
  }
  bool changed = current.min_reader_version != 3 || current.min_writer_version != 7;
  for (const auto& f : needed.reader_features.value_or(std::vector<std::string>{})) {
    if (std::find(reader.begin(), reader.end(), f) == reader.end()) {
      reader.push_back(f);
      changed = true;
    }
  }
  for (const auto& f : needed.writer_features.value_or(std::vector<std::string>{})) {
    if (std::find(writer.begin(), writer.end(), f) == writer.end()) {
      writer.push_back(f);
      changed = true;
    }
  }
  if (!changed) return std::nullopt;
  return Protocol{3, 7, reader, writer};
}

arrow::Result<Metadata> NewMetadata(const arrow::Schema& schema, const CreateOptions& create,
                                    int64_t now_ms) {
  ARROW_RETURN_NOT_OK(ValidateTableProperties(create.properties, schema));
  for (const auto& c : create.partition_columns) {
    auto f = schema.GetFieldByName(c);
    if (!f) {
      return SchemaMismatch("partition column '" + c + "' is not a column of the schema (" +
                            schema.ToString() + ")");
    }
    if (f->type()->num_fields() > 0) {
      return SchemaMismatch("partition column '" + c + "' has nested type " +
                            DeltaTypeName(*f->type()) + "; partition by a primitive column");
    }
  }
  if (static_cast<int>(create.partition_columns.size()) >= schema.num_fields() &&
      schema.num_fields() > 0) {
    return SchemaMismatch("cannot partition by every column; keep at least one data column");
  }
  std::set<std::string> seen;
  for (const auto& f : schema.fields()) {
    std::string lower = f->name();
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (!seen.insert(lower).second) {
      return SchemaMismatch("duplicate column name '" + f->name() +
                            "' (Delta column names are case-insensitive)");
    }
  }
  Metadata md;
  md.id = NewUuid();
  md.name = create.name;
  md.description = create.description;
  ARROW_ASSIGN_OR_RAISE(md.schema_string, SchemaToDeltaJson(schema));
  md.partition_columns = create.partition_columns;
  md.configuration = create.properties;
  md.created_time = now_ms;
  return md;
}

int NumIndexedCols(const Metadata& md) {
  return static_cast<int>(IntProperty(md, "delta.dataSkippingNumIndexedCols", 32));
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

int64_t SumSizes(const std::vector<AddFile>& files) {
  int64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

// The rows of `files` that do / do not match `pred`: used by delete, update and
// replaceWhere. Files the predicate fully covers are removed without being read.
struct RewritePlan {
  std::vector<AddFile> candidates;    // files that may hold matching rows
  std::vector<AddFile> remove_whole;  // every row matches
  std::vector<std::pair<AddFile, std::shared_ptr<arrow::Table>>> partial;  // file, its rows
  std::vector<std::shared_ptr<arrow::ChunkedArray>> masks;  // match mask per partial file
  int64_t matched_rows = 0;
};

arrow::Result<RewritePlan> PlanRewrite(arrow::fs::FileSystem& fs, const Snapshot& snapshot,
                                       const std::optional<cp::Expression>& pred) {
  RewritePlan plan;
  ARROW_ASSIGN_OR_RAISE(auto scan, PlanFiles(snapshot, pred));
  plan.candidates = scan.files;
  std::set<std::string> columns;
  if (pred) {
    for (const auto& ref : cp::FieldsInExpression(*pred)) {
      if (ref.name()) columns.insert(*ref.name());
    }
  }
  const auto& pcols = snapshot.metadata().partition_columns;
  bool partition_only = !columns.empty();
  for (const auto& c : columns) {
    if (std::find(pcols.begin(), pcols.end(), c) == pcols.end()) partition_only = false;
  }
  auto fields = AllFields(*snapshot.schema());
  for (const auto& file : plan.candidates) {
    if (!pred) {
      plan.remove_whole.push_back(file);
      plan.matched_rows += StatsNumRecords(file.stats).value_or(0);
      continue;
    }
    if (partition_only) {
      ARROW_ASSIGN_OR_RAISE(auto g, FileGuarantee(snapshot, file, columns));
      ARROW_ASSIGN_OR_RAISE(auto s, cp::SimplifyWithGuarantee(*pred, g));
      if (IsTrue(s)) {
        auto n = StatsNumRecords(file.stats);
        if (n && !file.deletion_vector) {
          plan.remove_whole.push_back(file);
          plan.matched_rows += *n;
          continue;
        }
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto rows, ReadDataFile(fs, snapshot, file, fields));
    ARROW_ASSIGN_OR_RAISE(auto mask, EvaluatePredicate(*pred, *rows));
    ARROW_ASSIGN_OR_RAISE(auto count, cp::Sum(mask));
    int64_t matched = count.scalar()->is_valid
                          ? static_cast<const arrow::UInt64Scalar&>(*count.scalar()).value
                          : 0;
    if (matched == 0) continue;
    plan.matched_rows += matched;
    if (matched == rows->num_rows()) {
      plan.remove_whole.push_back(file);
      continue;
    }
    plan.partial.emplace_back(file, rows);
    plan.masks.push_back(mask.get() ? mask : nullptr);
  }
  return plan;
}

arrow::Result<std::shared_ptr<arrow::Table>> FilterOut(
    const std::shared_ptr<arrow::Table>& rows, const std::shared_ptr<arrow::ChunkedArray>& mask) {
  ARROW_ASSIGN_OR_RAISE(auto inv, cp::CallFunction("invert", {arrow::Datum(mask)}));
  ARROW_ASSIGN_OR_RAISE(auto kept, cp::Filter(rows, inv));
  return kept.table();
}

}  // namespace

// ---- construction -----------------------------------------------------------

DeltaTable::DeltaTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeltaTable::~DeltaTable() = default;

arrow::Result<std::unique_ptr<DeltaTable>> DeltaTable::ForPath(const std::string& uri,
                                                               TableOpenOptions options) {
  if (options.log_store) {
    auto impl = std::make_unique<Impl>();
    impl->fs = options.log_store->fs();
    impl->store = options.log_store;
    impl->clock = options.clock ? options.clock : Clock::System();
    return std::unique_ptr<DeltaTable>(new DeltaTable(std::move(impl)));
  }
  if (uri.empty()) return arrow::Status::Invalid("table path is empty");
  std::string path;
  std::shared_ptr<arrow::fs::FileSystem> fs;
  auto res = arrow::fs::FileSystemFromUriOrPath(uri, &path);
  if (!res.ok()) {
    // A relative local path.
    auto local = std::make_shared<arrow::fs::LocalFileSystem>();
    char buf[4096];
    if (getcwd(buf, sizeof buf) == nullptr) return arrow::Status::IOError("cannot get cwd");
    fs = local;
    path = std::string(buf) + "/" + uri;
  } else {
    fs = *res;
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (fs->type_name() == "local") {
    // Normalize "a/./b" and "a/../b" so that log paths compare equal.
    std::error_code ec;
    auto norm = std::filesystem::weakly_canonical(std::filesystem::path(path), ec);
    if (!ec) path = norm.string();
    while (path.size() > 1 && path.back() == '/') path.pop_back();
  }
  auto impl = std::make_unique<Impl>();
  impl->fs = fs;
  impl->store = MakeLogStore(fs, path, options.sync);
  impl->clock = options.clock ? options.clock : Clock::System();
  impl->external = options.allow_external_paths ? ExternalPaths::kAllow : ExternalPaths::kRefuse;
  return std::unique_ptr<DeltaTable>(new DeltaTable(std::move(impl)));
}

arrow::Result<std::unique_ptr<DeltaTable>> DeltaTable::Open(const std::string& uri,
                                                            TableOpenOptions options) {
  ARROW_ASSIGN_OR_RAISE(auto table, ForPath(uri, std::move(options)));
  ARROW_ASSIGN_OR_RAISE(auto listing, table->impl_->store->List());
  if (!listing.log_dir_exists || (listing.commits.empty() && listing.checkpoints.empty())) {
    ARROW_ASSIGN_OR_RAISE(auto info, table->impl_->fs->GetFileInfo(table->root()));
    std::string why = info.type() == arrow::fs::FileType::NotFound
                          ? "the path does not exist"
                          : (!listing.log_dir_exists ? "it has no '_delta_log' folder"
                                                     : "'_delta_log' holds no commits");
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + table->root() + "': " + why);
  }
  return table;
}

arrow::Result<std::unique_ptr<DeltaTable>> DeltaTable::Create(const std::string& uri,
                                                              const CreateOptions& create,
                                                              TableOpenOptions options) {
  ARROW_ASSIGN_OR_RAISE(auto table, ForPath(uri, std::move(options)));
  ARROW_ASSIGN_OR_RAISE(bool exists, table->Exists());
  if (exists) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
                     "a Delta table already exists at '" + table->root() + "'");
  }
  if (!create.schema) return arrow::Status::Invalid("create needs a schema");
  ARROW_ASSIGN_OR_RAISE(auto schema, DeltaStorageSchema(*create.schema));
  auto& impl = *table->impl_;
  ARROW_RETURN_NOT_OK(impl.fs->CreateDir(impl.store->log_dir(), true));
  Transaction txn(*impl.store, nullptr, impl.clock);
  ARROW_ASSIGN_OR_RAISE(auto md, NewMetadata(*schema, create, impl.clock->NowMillis()));
  txn.SetProtocol(ProtocolFor(*schema, create.properties));
  txn.SetMetadata(md);
  std::vector<std::pair<std::string, std::string>> params = {
      {"isManaged", "false"},
      {"description", create.description.value_or("")},
      {"partitionBy", JsonList(create.partition_columns)},
      {"properties", "{}"}};
  ARROW_RETURN_NOT_OK(txn.Commit("CREATE TABLE", params, {}).status());
  return table;
}

const std::string& DeltaTable::root() const { return impl_->store->root(); }
const std::shared_ptr<arrow::fs::FileSystem>& DeltaTable::filesystem() const { return impl_->fs; }

arrow::Result<bool> DeltaTable::Exists() const {
  ARROW_ASSIGN_OR_RAISE(auto listing, impl_->store->List());
  return listing.log_dir_exists && (!listing.commits.empty() || !listing.checkpoints.empty());
}

// ---- reading ----------------------------------------------------------------

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::Latest() const {
  return impl_->Load(std::nullopt);
}

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::AtVersion(int64_t version) const {
  return impl_->Load(version);
}

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::AtTimestamp(int64_t timestamp_ms) const {
  ARROW_ASSIGN_OR_RAISE(auto listing, impl_->store->List());
  ARROW_ASSIGN_OR_RAISE(auto version, VersionAtTimestamp(*impl_->store, listing, timestamp_ms));
  return SnapshotBuilder::Load(*impl_->store, listing, version, impl_->external);
}

arrow::Result<std::shared_ptr<const Snapshot>> DeltaTable::Load(const ReadOptions& options) const {
  if (options.version && options.timestamp_ms) {
    return arrow::Status::Invalid("give a version or a timestamp to read, not both");
  }
  if (options.version) return AtVersion(*options.version);
  if (options.timestamp_ms) return AtTimestamp(*options.timestamp_ms);
  return Latest();
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
          return SchemaMismatch("column '" + f->name() + "' (" + DeltaTypeName(*f->type()) +
                                ") is not in the table schema; pass merge_schema "
                                "(--merge-schema) to add it as a new nullable column");
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
      ARROW_ASSIGN_OR_RAISE(auto plan, PlanRewrite(fs, *snapshot, w.replace_pred));
      txn.ReadFiles(plan.candidates);
      for (const auto& f : plan.remove_whole) txn.Remove(f, true);
      for (size_t i = 0; i < plan.partial.size(); ++i) {
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
    } else {
      txn.ReadWholeTable();
      txn.ReadFiles(snapshot->files());
      for (const auto& f : snapshot->files()) txn.Remove(f, true);
    }
    metrics["numRemovedFiles"] = static_cast<int64_t>(txn.removes().size());
  }
  metrics["numFiles"] = static_cast<int64_t>(adds.size());
  metrics["numOutputRows"] = w.rows;
  metrics["numOutputBytes"] = SumSizes(adds);
  for (const auto& a : adds) txn.Add(a);
  if (!snapshot) ARROW_RETURN_NOT_OK(fs.CreateDir(w.delta->store->log_dir(), true));
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

arrow::Result<CommitResult> DeltaTable::Delete(const std::string& predicate) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "DELETE"));
  std::optional<cp::Expression> pred;
  if (!predicate.empty()) {
    ARROW_ASSIGN_OR_RAISE(pred, BindPredicate(predicate, *snapshot->schema()));
  }
  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  if (pred)
    txn.ReadPredicate(*pred);
  else
    txn.ReadWholeTable();
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanRewrite(*impl.fs, *snapshot, pred));
  txn.ReadFiles(plan.candidates);
  if (plan.remove_whole.empty() && plan.partial.empty()) {
    return CommitResult{snapshot->version(), true, {{"numDeletedRows", 0}}};
  }
  const auto& md = snapshot->metadata();
  int64_t copied = 0;
  for (const auto& f : plan.remove_whole) txn.Remove(f, true);
  for (size_t i = 0; i < plan.partial.size(); ++i) {
    txn.Remove(plan.partial[i].first, true);
    ARROW_ASSIGN_OR_RAISE(auto kept, FilterOut(plan.partial[i].second, plan.masks[i]));
    copied += kept->num_rows();
    ARROW_ASSIGN_OR_RAISE(
        auto adds, WriteDataFiles(*impl.store, kept, FileOptions(md, now, "snappy", 4 << 20)));
    for (auto& a : adds) txn.Add(std::move(a));
  }
  std::map<std::string, int64_t> metrics = {
      {"numDeletedRows", plan.matched_rows},
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"numAddedFiles", static_cast<int64_t>(txn.adds().size())},
      {"numCopiedRows", copied}};
  ARROW_ASSIGN_OR_RAISE(
      auto version,
      txn.Commit("DELETE", {{"predicate", JsonList({predicate.empty() ? "true" : predicate})}},
                 metrics));
  return CommitResult{version, false, metrics};
}

arrow::Result<CommitResult> DeltaTable::Update(const std::string& predicate,
                                               const std::string& assignments) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "UPDATE"));
  const auto& schema = *snapshot->schema();
  std::optional<cp::Expression> pred;
  if (!predicate.empty()) {
    ARROW_ASSIGN_OR_RAISE(pred, BindPredicate(predicate, schema));
  }
  ARROW_ASSIGN_OR_RAISE(auto sets, ParseAssignments(assignments, schema));
  if (sets.empty()) return arrow::Status::Invalid("update needs at least one assignment (--set)");
  std::vector<std::pair<int, cp::Expression>> bound_sets;
  for (auto& a : sets) {
    int idx = schema.GetFieldIndex(a.column);
    ARROW_ASSIGN_OR_RAISE(auto b, a.value.Bind(schema));
    bound_sets.emplace_back(idx, std::move(b));
  }
  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  if (pred)
    txn.ReadPredicate(*pred);
  else
    txn.ReadWholeTable();
  ARROW_ASSIGN_OR_RAISE(auto scan, PlanFiles(*snapshot, pred));
  txn.ReadFiles(scan.files);
  auto fields = AllFields(schema);
  int64_t updated = 0, copied = 0;
  const auto& md = snapshot->metadata();
  for (const auto& file : scan.files) {
    ARROW_ASSIGN_OR_RAISE(auto rows, ReadDataFile(*impl.fs, *snapshot, file, fields));
    std::shared_ptr<arrow::ChunkedArray> mask;
    if (pred) {
      ARROW_ASSIGN_OR_RAISE(mask, EvaluatePredicate(*pred, *rows));
    } else {
      ARROW_ASSIGN_OR_RAISE(
          auto all, arrow::MakeArrayFromScalar(arrow::BooleanScalar(true), rows->num_rows()));
      mask = std::make_shared<arrow::ChunkedArray>(all);
    }
    ARROW_ASSIGN_OR_RAISE(auto count, cp::Sum(mask));
    int64_t n = count.scalar()->is_valid
                    ? static_cast<const arrow::UInt64Scalar&>(*count.scalar()).value
                    : 0;
    if (n == 0) continue;
    updated += n;
    copied += rows->num_rows() - n;
    auto columns = rows->columns();
    for (const auto& [idx, expr] : bound_sets) {
      ARROW_ASSIGN_OR_RAISE(auto value, EvaluateExpression(expr, *rows));
      ARROW_ASSIGN_OR_RAISE(auto chosen, cp::IfElse(mask, value, rows->column(idx)));
      columns[idx] = chosen.chunked_array();
    }
    auto updated_rows = arrow::Table::Make(rows->schema(), columns, rows->num_rows());
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, schema, *updated_rows));
    txn.Remove(file, true);
    ARROW_ASSIGN_OR_RAISE(auto adds, WriteDataFiles(*impl.store, updated_rows,
                                                    FileOptions(md, now, "snappy", 4 << 20)));
    for (auto& a : adds) txn.Add(std::move(a));
  }
  if (txn.removes().empty())
    return CommitResult{snapshot->version(), true, {{"numUpdatedRows", 0}}};
  std::map<std::string, int64_t> metrics = {
      {"numUpdatedRows", updated},
      {"numCopiedRows", copied},
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"numAddedFiles", static_cast<int64_t>(txn.adds().size())}};
  ARROW_ASSIGN_OR_RAISE(
      auto version, txn.Commit("UPDATE",
                               {{"predicate", JsonList({predicate.empty() ? "true" : predicate})},
                                {"set", JsonQuote(assignments)}},
                               metrics));
  return CommitResult{version, false, metrics};
}

// ---- merge ------------------------------------------------------------------

arrow::Result<CommitResult> DeltaTable::Merge(const std::shared_ptr<arrow::Table>& source_in,
                                              const MergeOptions& options) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  bool has_update_or_delete = !options.when_matched.empty();
  if (has_update_or_delete)
    ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "MERGE with WHEN MATCHED"));
  if (options.on.empty()) return arrow::Status::Invalid("merge needs key columns (--on)");
  auto schema = snapshot->schema();
  ARROW_ASSIGN_OR_RAISE(auto source, ToStorageTypes(source_in));
  ARROW_ASSIGN_OR_RAISE(source, source->CombineChunks());
  Metadata md = snapshot->metadata();
  bool new_metadata = false;
  // Source columns must exist in the target (or be added with merge_schema).
  {
    arrow::FieldVector fields = schema->fields();
    for (const auto& f : source->schema()->fields()) {
      if (schema->GetFieldIndex(f->name()) >= 0) continue;
      if (!options.merge_schema) {
        return SchemaMismatch("merge source column '" + f->name() +
                              "' is not in the target schema; pass merge_schema (--merge-schema) "
                              "to add it");
      }
      fields.push_back(arrow::field(f->name(), f->type(), true));
    }
    if (static_cast<int>(fields.size()) != schema->num_fields()) {
      schema = arrow::schema(fields);
      ARROW_ASSIGN_OR_RAISE(md.schema_string, SchemaToDeltaJson(*schema));
      new_metadata = true;
    }
  }
  for (const auto& k : options.on) {
    if (schema->GetFieldIndex(k) < 0 || source->schema()->GetFieldIndex(k) < 0) {
      return arrow::Status::Invalid("merge key '", k,
                                    "' must be a column of both the source and the target");
    }
  }
  // Source rows in the target's types (full width, for inserts and update-all).
  ARROW_ASSIGN_OR_RAISE(auto source_full, ConformData(source, *schema));
  ARROW_ASSIGN_OR_RAISE(source_full, source_full->CombineChunks());

  // Group source keys; a target row matches the source rows of its key's group.
  std::vector<arrow::TypeHolder> key_types;
  std::vector<arrow::Datum> source_keys;
  for (const auto& k : options.on) {
    auto col = source_full->GetColumnByName(k);
    key_types.emplace_back(col->type());
    source_keys.emplace_back(col->chunk(0));
  }
  ARROW_ASSIGN_OR_RAISE(auto grouper, cp::Grouper::Make(key_types));
  int64_t n_source = source_full->num_rows();
  std::vector<uint32_t> source_group(n_source);
  if (n_source > 0) {
    ARROW_ASSIGN_OR_RAISE(auto ids,
                          grouper->Consume(cp::ExecSpan(cp::ExecBatch(source_keys, n_source))));
    auto arr = ids.array_as<arrow::UInt32Array>();
    for (int64_t i = 0; i < n_source; ++i) source_group[i] = arr->Value(i);
  }
  // A key with a NULL never matches.
  std::vector<bool> source_null_key(n_source, false);
  for (const auto& k : options.on) {
    auto col = source_full->GetColumnByName(k)->chunk(0);
    for (int64_t i = 0; i < n_source; ++i)
      source_null_key[i] = source_null_key[i] || col->IsNull(i);
  }
  uint32_t n_groups = grouper->num_groups();
  std::vector<int64_t> group_first(n_groups, -1), group_count(n_groups, 0);
  for (int64_t i = 0; i < n_source; ++i) {
    if (source_null_key[i]) continue;
    auto g = source_group[i];
    if (group_first[g] < 0) group_first[g] = i;
    ++group_count[g];
  }
  std::vector<bool> group_matched(n_groups, false);

  // Skip target files whose key range cannot overlap the source's.
  std::optional<cp::Expression> key_filter;
  {
    std::vector<cp::Expression> ranges;
    for (const auto& k : options.on) {
      auto col = source_full->GetColumnByName(k);
      if (col->null_count() == col->length() || col->length() == 0) continue;
      auto mm = cp::MinMax(col);
      if (!mm.ok()) continue;
      const auto& st = static_cast<const arrow::StructScalar&>(*mm->scalar());
      ranges.push_back(cp::and_(cp::greater_equal(cp::field_ref(k), cp::literal(st.value[0])),
                                cp::less_equal(cp::field_ref(k), cp::literal(st.value[1]))));
    }
    if (!ranges.empty()) {
      auto bound = cp::and_(ranges).Bind(*snapshot->schema());
      if (bound.ok()) key_filter = *bound;
    }
  }
  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  if (new_metadata) {
    txn.SetMetadata(md);
    if (auto up = ProtocolUpgrade(snapshot->protocol(), ProtocolFor(*schema, md.configuration))) {
      txn.SetProtocol(*up);
    }
  }
  if (key_filter)
    txn.ReadPredicate(*key_filter);
  else
    txn.ReadWholeTable();
  std::vector<AddFile> candidates;
  if (n_source > 0 && has_update_or_delete) {
    ARROW_ASSIGN_OR_RAISE(auto plan, PlanFiles(*snapshot, key_filter));
    candidates = plan.files;
  } else if (n_source > 0) {
    ARROW_ASSIGN_OR_RAISE(auto plan, PlanFiles(*snapshot, key_filter));
    candidates = plan.files;  // read to find matches, never rewritten
  }
  txn.ReadFiles(candidates);

  // Combined view for clause conditions: target.c, c (= target), source.c.
  arrow::FieldVector combined_fields;
  for (const auto& f : schema->fields())
    combined_fields.push_back(f->WithName("target." + f->name()));
  for (const auto& f : schema->fields()) combined_fields.push_back(f->WithName(f->name()));
  for (const auto& f : schema->fields())
    combined_fields.push_back(f->WithName("source." + f->name()));
  auto combined_schema = arrow::schema(combined_fields);
  struct BoundClause {
    MatchedClause::Action action;
    std::optional<cp::Expression> condition;
    std::vector<std::pair<int, cp::Expression>> sets;
  };
  std::vector<BoundClause> clauses;
  for (const auto& c : options.when_matched) {
    BoundClause b;
    b.action = c.action;
    if (!c.condition.empty()) {
      ARROW_ASSIGN_OR_RAISE(b.condition, BindPredicate(c.condition, *combined_schema));
    }
    if (c.action == MatchedClause::Action::kUpdate) {
      ARROW_ASSIGN_OR_RAISE(auto sets, ParseAssignments(c.assignments, *combined_schema));
      for (auto& s : sets) {
        int idx = schema->GetFieldIndex(s.column);
        if (idx < 0) {
          return arrow::Status::Invalid("merge update sets '", s.column,
                                        "', which is not a target column");
        }
        ARROW_ASSIGN_OR_RAISE(auto bound, s.value.Bind(*combined_schema));
        b.sets.emplace_back(idx, std::move(bound));
      }
    }
    clauses.push_back(std::move(b));
  }

  auto fields = AllFields(*snapshot->schema());
  int64_t n_updated = 0, n_deleted = 0, n_copied = 0;
  for (const auto& file : candidates) {
    ARROW_ASSIGN_OR_RAISE(auto rows, ReadDataFile(*impl.fs, *snapshot, file, fields));
    ARROW_ASSIGN_OR_RAISE(rows, ConformData(rows, *schema));  // added columns → nulls
    ARROW_ASSIGN_OR_RAISE(rows, rows->CombineChunks());
    int64_t n = rows->num_rows();
    if (n == 0 || n_source == 0) continue;
    std::vector<arrow::Datum> keys;
    for (const auto& k : options.on) keys.emplace_back(rows->GetColumnByName(k)->chunk(0));
    ARROW_ASSIGN_OR_RAISE(auto ids, grouper->Lookup(cp::ExecSpan(cp::ExecBatch(keys, n))));
    auto id_arr = ids.array_as<arrow::UInt32Array>();
    arrow::Int64Builder src_idx;
    ARROW_RETURN_NOT_OK(src_idx.Reserve(n));
    bool any_match = false;
    for (int64_t i = 0; i < n; ++i) {
      if (id_arr->IsNull(i) || group_first[id_arr->Value(i)] < 0) {
        src_idx.UnsafeAppendNull();
        continue;
      }
      auto g = id_arr->Value(i);
      group_matched[g] = true;
      any_match = true;
      src_idx.UnsafeAppend(group_first[g]);
    }
    if (!any_match || clauses.empty()) continue;
    ARROW_ASSIGN_OR_RAISE(auto src_idx_arr, src_idx.Finish());
    ARROW_ASSIGN_OR_RAISE(auto src_rows, cp::Take(source_full, src_idx_arr));
    auto src_table = src_rows.table();
    arrow::ChunkedArrayVector ccols;
    for (const auto& c : rows->columns()) ccols.push_back(c);
    for (const auto& c : rows->columns()) ccols.push_back(c);
    for (const auto& c : src_table->columns()) ccols.push_back(c);
    auto combined = arrow::Table::Make(combined_schema, ccols, n);
    // matched = source index is valid; decide the first clause per row.
    auto matched_arr = std::make_shared<arrow::ChunkedArray>(src_idx_arr);
    ARROW_ASSIGN_OR_RAISE(auto matched_d,
                          cp::CallFunction("is_valid", {arrow::Datum(matched_arr)}));
    auto undecided = matched_d.chunked_array();
    auto columns = rows->columns();
    std::shared_ptr<arrow::ChunkedArray> deleted;
    std::shared_ptr<arrow::ChunkedArray> touched;
    for (const auto& clause : clauses) {
      std::shared_ptr<arrow::ChunkedArray> applies = undecided;
      if (clause.condition) {
        ARROW_ASSIGN_OR_RAISE(auto cond, EvaluatePredicate(*clause.condition, *combined));
        ARROW_ASSIGN_OR_RAISE(auto both, cp::And(undecided, cond));
        applies = both.chunked_array();
      }
      ARROW_ASSIGN_OR_RAISE(auto not_applies, cp::Invert(applies));
      ARROW_ASSIGN_OR_RAISE(auto rest, cp::And(undecided, not_applies));
      undecided = rest.chunked_array();
      if (touched) {
        ARROW_ASSIGN_OR_RAISE(auto t, cp::Or(touched, applies));
        touched = t.chunked_array();
      } else {
        touched = applies;
      }
      if (clause.action == MatchedClause::Action::kDelete) {
        if (deleted) {
          ARROW_ASSIGN_OR_RAISE(auto d, cp::Or(deleted, applies));
          deleted = d.chunked_array();
        } else {
          deleted = applies;
        }
        continue;
      }
      if (clause.action == MatchedClause::Action::kUpdateAll) {
        for (int c = 0; c < schema->num_fields(); ++c) {
          if (source->schema()->GetFieldIndex(schema->field(c)->name()) < 0) continue;
          ARROW_ASSIGN_OR_RAISE(auto chosen, cp::IfElse(applies, src_table->column(c), columns[c]));
          columns[c] = chosen.chunked_array();
        }
      } else {
        for (const auto& [idx, expr] : clause.sets) {
          ARROW_ASSIGN_OR_RAISE(auto value, EvaluateExpression(expr, *combined));
          ARROW_ASSIGN_OR_RAISE(auto chosen, cp::IfElse(applies, value, columns[idx]));
          columns[idx] = chosen.chunked_array();
        }
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto touched_count, cp::Sum(touched));
    int64_t n_touched = touched_count.scalar()->is_valid
                            ? static_cast<const arrow::UInt64Scalar&>(*touched_count.scalar()).value
                            : 0;
    if (n_touched == 0) continue;
    // Delta's rule: a target row modified by several source rows is ambiguous.
    for (int64_t i = 0; i < n; ++i) {
      if (!id_arr->IsNull(i) && group_first[id_arr->Value(i)] >= 0 &&
          group_count[id_arr->Value(i)] > 1) {
        ARROW_ASSIGN_OR_RAISE(auto t, touched->GetScalar(i));
        if (static_cast<const arrow::BooleanScalar&>(*t).value) {
          return arrow::Status::Invalid(
              "merge failed: ", group_count[id_arr->Value(i)],
              " source rows match the same target row (key ",
              rows->GetColumnByName(options.on[0])->GetScalar(i).ValueOrDie()->ToString(),
              "); deduplicate the source on the merge keys");
        }
      }
    }
    auto new_rows = arrow::Table::Make(rows->schema(), columns, n);
    int64_t n_del = 0;
    if (deleted) {
      ARROW_ASSIGN_OR_RAISE(auto dc, cp::Sum(deleted));
      n_del =
          dc.scalar()->is_valid ? static_cast<const arrow::UInt64Scalar&>(*dc.scalar()).value : 0;
      if (n_del > 0) {
        ARROW_ASSIGN_OR_RAISE(new_rows, FilterOut(new_rows, deleted));
      }
    }
    n_deleted += n_del;
    n_updated += n_touched - n_del;
    n_copied += n - n_touched;
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, *schema, *new_rows));
    txn.Remove(file, true);
    ARROW_ASSIGN_OR_RAISE(
        auto adds, WriteDataFiles(*impl.store, new_rows, FileOptions(md, now, "snappy", 4 << 20)));
    for (auto& a : adds) txn.Add(std::move(a));
  }

  // Inserts: source rows whose key matched no target row.
  int64_t n_inserted = 0;
  if (!options.when_not_matched.empty() && n_source > 0) {
    arrow::BooleanBuilder unmatched_b;
    ARROW_RETURN_NOT_OK(unmatched_b.Reserve(n_source));
    for (int64_t i = 0; i < n_source; ++i) {
      unmatched_b.UnsafeAppend(source_null_key[i] || !group_matched[source_group[i]]);
    }
    ARROW_ASSIGN_OR_RAISE(auto unmatched_arr, unmatched_b.Finish());
    auto undecided = std::make_shared<arrow::ChunkedArray>(unmatched_arr);
    // Conditions see source columns as bare names and as source.c.
    arrow::FieldVector sf;
    arrow::ChunkedArrayVector sc;
    for (int c = 0; c < schema->num_fields(); ++c) {
      sf.push_back(schema->field(c));
      sc.push_back(source_full->column(c));
    }
    for (int c = 0; c < schema->num_fields(); ++c) {
      sf.push_back(schema->field(c)->WithName("source." + schema->field(c)->name()));
      sc.push_back(source_full->column(c));
    }
    auto src_view = arrow::Table::Make(arrow::schema(sf), sc, n_source);
    std::shared_ptr<arrow::ChunkedArray> insert;
    for (const auto& c : options.when_not_matched) {
      std::shared_ptr<arrow::ChunkedArray> applies = undecided;
      if (!c.condition.empty()) {
        ARROW_ASSIGN_OR_RAISE(auto bound, BindPredicate(c.condition, *src_view->schema()));
        ARROW_ASSIGN_OR_RAISE(auto cond, EvaluatePredicate(bound, *src_view));
        ARROW_ASSIGN_OR_RAISE(auto both, cp::And(undecided, cond));
        applies = both.chunked_array();
      }
      ARROW_ASSIGN_OR_RAISE(auto na, cp::Invert(applies));
      ARROW_ASSIGN_OR_RAISE(auto rest, cp::And(undecided, na));
      undecided = rest.chunked_array();
      if (insert) {
        ARROW_ASSIGN_OR_RAISE(auto o, cp::Or(insert, applies));
        insert = o.chunked_array();
      } else {
        insert = applies;
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto ins, cp::Filter(source_full, insert));
    auto ins_rows = ins.table();
    n_inserted = ins_rows->num_rows();
    if (n_inserted > 0) {
      ARROW_RETURN_NOT_OK(EnforceConstraints(md, *schema, *ins_rows));
      ARROW_ASSIGN_OR_RAISE(auto adds, WriteDataFiles(*impl.store, ins_rows,
                                                      FileOptions(md, now, "snappy", 4 << 20)));
      for (auto& a : adds) txn.Add(std::move(a));
    }
  }
  std::map<std::string, int64_t> metrics = {
      {"numSourceRows", n_source},
      {"numTargetRowsInserted", n_inserted},
      {"numTargetRowsUpdated", n_updated},
      {"numTargetRowsDeleted", n_deleted},
      {"numTargetRowsCopied", n_copied},
      {"numTargetFilesAdded", static_cast<int64_t>(txn.adds().size())},
      {"numTargetFilesRemoved", static_cast<int64_t>(txn.removes().size())}};
  if (txn.adds().empty() && txn.removes().empty() && !new_metadata) {
    return CommitResult{snapshot->version(), true, metrics};
  }
  std::string on;
  for (const auto& k : options.on)
    on += (on.empty() ? "" : " AND ") + ("target." + k + " = source." + k);
  std::vector<std::string> matched, not_matched;
  for (const auto& c : options.when_matched) {
    std::string a = c.action == MatchedClause::Action::kDelete ? "delete" : "update";
    matched.push_back("{\"actionType\":\"" + a + "\"" +
                      (c.condition.empty() ? "" : ",\"predicate\":" + JsonQuote(c.condition)) +
                      "}");
  }
  for (const auto& c : options.when_not_matched) {
    not_matched.push_back("{\"actionType\":\"insert\"" +
                          (c.condition.empty() ? "" : ",\"predicate\":" + JsonQuote(c.condition)) +
                          "}");
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
    return s + "]";
  };
  ARROW_ASSIGN_OR_RAISE(auto version, txn.Commit("MERGE",
                                                 {{"predicate", JsonList({on})},
                                                  {"matchedPredicates", join(matched)},
                                                  {"notMatchedPredicates", join(not_matched)}},
                                                 metrics));
  return CommitResult{version, false, metrics};
}

// ---- history, restore -------------------------------------------------------

arrow::Result<std::vector<CommitInfo>> DeltaTable::History(int64_t limit) const {
  ARROW_ASSIGN_OR_RAISE(auto listing, impl_->store->List());
  if (!listing.log_dir_exists || (listing.commits.empty() && listing.checkpoints.empty())) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                     "no Delta table at '" + root() + "'");
  }
  std::vector<CommitInfo> out;
  for (auto it = listing.commits.rbegin(); it != listing.commits.rend(); ++it) {
    if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    ARROW_ASSIGN_OR_RAISE(auto text, impl_->store->Read(it->second.path));
    ARROW_ASSIGN_OR_RAISE(auto info, ParseCommitInfo(text, it->second.path));
    CommitInfo ci = info.value_or(CommitInfo{});
    ci.version = it->first;
    if (ci.timestamp == 0) {
      ARROW_ASSIGN_OR_RAISE(ci.timestamp, impl_->store->ModificationTime(it->second));
    }
    if (ci.json.empty()) ci.json = "{}";
    out.push_back(std::move(ci));
  }
  return out;
}

arrow::Result<CommitResult> DeltaTable::Restore(int64_t version) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto current, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*current));
  ARROW_ASSIGN_OR_RAISE(auto target, AtVersion(version));
  auto key = [&](const AddFile& f) {
    std::string k = CanonicalFilePath(root(), f.path);
    if (f.deletion_vector)
      k += "#" + f.deletion_vector->storage_type + f.deletion_vector->path_or_inline_dv;
    return k;
  };
  std::set<std::string> cur_keys, target_keys;
  for (const auto& f : current->files()) cur_keys.insert(key(f));
  for (const auto& f : target->files()) target_keys.insert(key(f));
  Transaction txn(*impl.store, current, impl.clock);
  txn.ReadWholeTable();
  txn.ReadFiles(current->files());
  int64_t restored_size = 0, removed_size = 0;
  for (const auto& f : target->files()) {
    if (cur_keys.count(key(f))) continue;
    std::string path = DataFilePath(root(), f.path);
    ARROW_ASSIGN_OR_RAISE(auto info, impl.fs->GetFileInfo(path));
    if (info.type() == arrow::fs::FileType::NotFound) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kFileNotFound,
                       "cannot restore to version " + std::to_string(version) +
                           ": its data file '" + path + "' no longer exists (removed by VACUUM)");
    }
    AddFile a = f;
    a.data_change = true;
    restored_size += a.size;
    txn.Add(std::move(a));
  }
  for (const auto& f : current->files()) {
    if (target_keys.count(key(f))) continue;
    removed_size += f.size;
    txn.Remove(f, true);
  }
  if (!(target->metadata() == current->metadata())) txn.SetMetadata(target->metadata());
  if (!(target->protocol() == current->protocol()) &&
      target->protocol().min_writer_version >= current->protocol().min_writer_version) {
    txn.SetProtocol(target->protocol());
  }
  std::map<std::string, int64_t> metrics = {
      {"numRestoredFiles", static_cast<int64_t>(txn.adds().size())},
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"restoredFilesSize", restored_size},
      {"removedFilesSize", removed_size},
      {"numOfFilesAfterRestore", static_cast<int64_t>(target->files().size())},
      {"tableSizeAfterRestore", target->SizeInBytes()}};
  ARROW_ASSIGN_OR_RAISE(
      auto v, txn.Commit("RESTORE", {{"version", std::to_string(version)}, {"timestamp", "null"}},
                         metrics));
  return CommitResult{v, false, metrics};
}

arrow::Result<CommitResult> DeltaTable::RestoreToTimestamp(int64_t timestamp_ms) {
  ARROW_ASSIGN_OR_RAISE(auto snap, AtTimestamp(timestamp_ms));
  return Restore(snap->version());
}

// ---- vacuum -----------------------------------------------------------------

arrow::Result<VacuumResult> DeltaTable::Vacuum(const VacuumOptions& options) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_ASSIGN_OR_RAISE(
      int64_t table_retention,
      ParseIntervalMs(snapshot->Property("delta.deletedFileRetentionDuration", "interval 1 week")));
  int64_t retention =
      options.retention_hours ? *options.retention_hours * 3600000 : table_retention;
  if (options.retention_hours && *options.retention_hours < 0) {
    return arrow::Status::Invalid("retention must not be negative");
  }
  if (retention < table_retention && !options.force) {
    return NotAllowed("VACUUM retention of " + std::to_string(retention / 3600000) +
                      " hours is below the table's delta.deletedFileRetentionDuration (" +
                      std::to_string(table_retention / 3600000) +
                      " hours): readers of older versions and concurrent writers may still need "
                      "those files. Pass force (--force) to vacuum anyway");
  }
  int64_t cutoff = impl.clock->NowMillis() - retention;
  std::set<std::string> keep;
  auto keep_dv = [&](const std::optional<DeletionVector>& dv) {
    if (!dv || dv->storage_type == "i") return;
    DeletionVectorDescriptor d{dv->storage_type, dv->path_or_inline_dv, dv->offset,
                               dv->size_in_bytes, dv->cardinality};
    auto p = DeletionVectorPath(d, root());
    if (p.ok()) keep.insert(*p);
  };
  for (const auto& f : snapshot->files()) {
    keep.insert(DataFilePath(root(), f.path));
    keep_dv(f.deletion_vector);
  }
  for (const auto& r : snapshot->tombstones()) {
    if (r.deletion_timestamp.value_or(0) > cutoff) {
      keep.insert(DataFilePath(root(), r.path));
      keep_dv(r.deletion_vector);
    }
  }
  arrow::fs::FileSelector sel;
  sel.base_dir = root();
  sel.recursive = true;
  ARROW_ASSIGN_OR_RAISE(auto infos, impl.fs->GetFileInfo(sel));
  VacuumResult result;
  std::string prefix = root() + "/";
  for (const auto& info : infos) {
    if (!info.IsFile()) continue;
    std::string rel = info.path().substr(prefix.size());
    // Skip the log and hidden files/folders ('_' or '.' prefixes), except
    // partition folders like "_c=1" which hold '='.
    bool hidden = false;
    size_t start = 0;
    while (start < rel.size()) {
      size_t end = rel.find('/', start);
      std::string part =
          rel.substr(start, end == std::string::npos ? std::string::npos : end - start);
      bool is_dir = end != std::string::npos;
      if ((part[0] == '_' || part[0] == '.') && !(is_dir && part.find('=') != std::string::npos)) {
        hidden = true;
      }
      if (end == std::string::npos) break;
      start = end + 1;
    }
    if (hidden && rel.rfind("deletion_vector_", 0) != 0) continue;
    if (keep.count(info.path())) continue;
    int64_t mtime =
        std::chrono::duration_cast<std::chrono::milliseconds>(info.mtime().time_since_epoch())
            .count();
    if (mtime > cutoff) continue;
    result.files.push_back(info.path());
    result.bytes += info.size();
  }
  std::sort(result.files.begin(), result.files.end());
  if (!options.dry_run) {
    for (const auto& f : result.files) ARROW_RETURN_NOT_OK(impl.fs->DeleteFile(f));
  }
  return result;
}

// ---- optimize ---------------------------------------------------------------

namespace {

// Interleave the bits of per-column ranks into one Z-order key per row.
arrow::Result<std::shared_ptr<arrow::Array>> ZOrderKeys(const arrow::Table& rows,
                                                        const std::vector<std::string>& columns) {
  int64_t n = rows.num_rows();
  int k = static_cast<int>(columns.size());
  int bits = std::max(1, 64 / k);
  if (bits > 32) bits = 32;
  std::vector<std::vector<uint64_t>> scaled;
  for (const auto& c : columns) {
    auto col = rows.GetColumnByName(c);
    cp::RankOptions opts({cp::SortKey(arrow::FieldRef(0))}, cp::NullPlacement::AtEnd,
                         cp::RankOptions::Dense);
    ARROW_ASSIGN_OR_RAISE(auto ranks, cp::CallFunction("rank", {arrow::Datum(col)}, &opts));
    auto arr = ranks.make_array();
    const auto& r = static_cast<const arrow::UInt64Array&>(*arr);
    uint64_t max_rank = 1;
    for (int64_t i = 0; i < n; ++i) max_rank = std::max<uint64_t>(max_rank, r.Value(i));
    std::vector<uint64_t> v(n);
    double scale = std::ldexp(1.0, bits) / static_cast<double>(max_rank + 1);
    for (int64_t i = 0; i < n; ++i)
      v[i] = static_cast<uint64_t>(static_cast<double>(r.Value(i)) * scale);
    scaled.push_back(std::move(v));
  }
  arrow::UInt64Builder b;
  ARROW_RETURN_NOT_OK(b.Reserve(n));
  for (int64_t i = 0; i < n; ++i) {
    uint64_t key = 0;
    for (int bit = bits - 1; bit >= 0; --bit) {
      for (int c = 0; c < k; ++c) key = (key << 1) | ((scaled[c][i] >> bit) & 1);
    }
    b.UnsafeAppend(key);
  }
  return b.Finish();
}

}  // namespace

arrow::Result<CommitResult> DeltaTable::Optimize(const OptimizeOptions& options) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  const auto& md = snapshot->metadata();
  const auto& schema = *snapshot->schema();
  for (const auto& c : options.zorder_by) {
    if (schema.GetFieldIndex(c) < 0) {
      return arrow::Status::Invalid("cannot Z-order by '", c, "': not a column of the table");
    }
    if (std::find(md.partition_columns.begin(), md.partition_columns.end(), c) !=
        md.partition_columns.end()) {
      return arrow::Status::Invalid("cannot Z-order by partition column '", c,
                                    "'; Z-order by data columns");
    }
  }
  std::optional<cp::Expression> where;
  if (!options.where.empty()) {
    ARROW_ASSIGN_OR_RAISE(where, BindPredicate(options.where, schema));
    for (const auto& ref : cp::FieldsInExpression(*where)) {
      if (ref.name() && std::find(md.partition_columns.begin(), md.partition_columns.end(),
                                  *ref.name()) == md.partition_columns.end()) {
        return arrow::Status::Invalid("OPTIMIZE --where may only use partition columns; '",
                                      *ref.name(), "' is not one");
      }
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanFiles(*snapshot, where));
  // Group candidate files by partition.
  std::map<std::string, std::vector<AddFile>> by_partition;
  for (const auto& f : plan.files) {
    std::string key;
    for (const auto& [k, v] : f.partition_values) key += k + "=" + v.value_or("\x01") + "/";
    bool small = f.size < options.target_size || f.deletion_vector.has_value();
    if (!options.zorder_by.empty() || small) by_partition[key].push_back(f);
  }
  std::vector<std::vector<AddFile>> bins;
  for (auto& [key, files] : by_partition) {
    if (!options.zorder_by.empty()) {
      bins.push_back(files);
      continue;
    }
    std::sort(files.begin(), files.end(),
              [](const AddFile& a, const AddFile& b) { return a.size < b.size; });
    std::vector<AddFile> bin;
    int64_t bin_size = 0;
    for (const auto& f : files) {
      if (!bin.empty() && bin_size + f.size > options.target_size) {
        bins.push_back(std::move(bin));
        bin.clear();
        bin_size = 0;
      }
      bin.push_back(f);
      bin_size += f.size;
    }
    if (!bin.empty()) bins.push_back(std::move(bin));
  }
  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  auto fields = AllFields(schema);
  int64_t removed_bytes = 0;
  for (const auto& bin : bins) {
    bool has_dv = std::any_of(bin.begin(), bin.end(),
                              [](const AddFile& f) { return f.deletion_vector.has_value(); });
    if (bin.size() < 2 && options.zorder_by.empty() && !has_dv) continue;
    if (bin.empty()) continue;
    ARROW_ASSIGN_OR_RAISE(auto rows, ReadFiles(*impl.fs, *snapshot, bin, fields, std::nullopt));
    if (!options.zorder_by.empty() && rows->num_rows() > 0) {
      ARROW_ASSIGN_OR_RAISE(rows, rows->CombineChunks());
      ARROW_ASSIGN_OR_RAISE(auto keys, ZOrderKeys(*rows, options.zorder_by));
      ARROW_ASSIGN_OR_RAISE(auto order, cp::SortIndices(*keys));
      ARROW_ASSIGN_OR_RAISE(auto sorted, cp::Take(rows, order));
      rows = sorted.table();
    }
    int64_t bytes = SumSizes(bin);
    removed_bytes += bytes;
    int64_t rows_per_file = rows->num_rows();
    if (bytes > options.target_size && rows->num_rows() > 0) {
      rows_per_file =
          std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(rows->num_rows()) *
                                                    options.target_size / bytes));
    }
    auto fo = FileOptions(md, now, "snappy", rows_per_file);
    fo.data_change = false;
    ARROW_ASSIGN_OR_RAISE(auto adds, WriteDataFiles(*impl.store, rows, fo));
    txn.ReadFiles(bin);
    for (const auto& f : bin) txn.Remove(f, false);
    for (auto& a : adds) txn.Add(std::move(a));
  }
  if (txn.removes().empty()) return CommitResult{snapshot->version(), true, {}};
  std::map<std::string, int64_t> metrics = {
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"numAddedFiles", static_cast<int64_t>(txn.adds().size())},
      {"numRemovedBytes", removed_bytes},
      {"numAddedBytes", SumSizes(txn.adds())}};
  ARROW_ASSIGN_OR_RAISE(
      auto v, txn.Commit("OPTIMIZE",
                         {{"predicate", JsonList(options.where.empty()
                                                     ? std::vector<std::string>{}
                                                     : std::vector<std::string>{options.where})},
                          {"zOrderBy", JsonList(options.zorder_by)}},
                         metrics));
  return CommitResult{v, false, metrics};
}

// ---- maintenance ------------------------------------------------------------

arrow::Result<int64_t> DeltaTable::Checkpoint() {
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  return WriteCheckpoint(*impl_->store, *snapshot, impl_->clock->NowMillis());
}

arrow::Result<int64_t> DeltaTable::CleanupLog() {
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  return CleanupExpiredLogFiles(*impl_->store, *snapshot, impl_->clock->NowMillis());
}

arrow::Result<CommitResult> DeltaTable::SetProperties(
    const std::map<std::string, std::string>& props) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  Metadata md = snapshot->metadata();
  ARROW_RETURN_NOT_OK(ValidateTableProperties(props, *snapshot->schema()));
  for (const auto& [k, v] : props) md.configuration[k] = v;
  Transaction txn(*impl.store, snapshot, impl.clock);
  // New CHECK constraints must hold for the existing rows.
  bool new_checks = false;
  for (const auto& [k, v] : props) new_checks |= k.rfind("delta.constraints.", 0) == 0;
  if (new_checks) {
    ARROW_ASSIGN_OR_RAISE(auto rows, Read(*snapshot, ReadOptions{}));
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, *snapshot->schema(), *rows));
    txn.ReadWholeTable();
    txn.ReadFiles(snapshot->files());
    if (auto up = ProtocolUpgrade(snapshot->protocol(),
                                  ProtocolFor(*snapshot->schema(), md.configuration))) {
      txn.SetProtocol(*up);
    }
  }
  txn.SetMetadata(md);
  std::string json = "{";
  for (const auto& [k, v] : props)
    json += (json.size() > 1 ? "," : "") + JsonQuote(k) + ":" + JsonQuote(v);
  json += "}";
  ARROW_ASSIGN_OR_RAISE(auto v, txn.Commit("SET TBLPROPERTIES", {{"properties", json}}, {}));
  return CommitResult{v, false, {}};
}

}  // namespace stratalake::delta
