// SqlEngine: DuckDB through its C API. Tables are not copied into the database:
// each is a view over the table function __stratalake_scan(ID), whose scans read
// our sources (a Delta snapshot's data files, or a RecordBatchReader) part by
// part on DuckDB's threads, only the columns the query uses (projection
// pushdown), and hand the Arrow arrays to DuckDB 2048 rows at a time
// (duckdb_data_chunk_from_arrow; fixed-width columns are referenced, not
// copied). Every reference to a table in a query is its own scan, so a query
// may read a table several times. Results go out as Arrow arrays, chunk by
// chunk (duckdb_data_chunk_to_arrow).
#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>

#include <arrow/api.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/compute/api.h>
#include <duckdb.h>

#include "storage/scan.h"
#include "stratalake/delta.h"
#include "stratalake/transform.h"

namespace stratalake::transform {

namespace {

std::string QuoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

// Runs `sql`, discarding its result; Invalid with DuckDB's message on failure.
arrow::Status Exec(duckdb_connection conn, const std::string& sql) {
  duckdb_result res;
  if (duckdb_query(conn, sql.c_str(), &res) == DuckDBError) {
    std::string msg = duckdb_result_error(&res) ? duckdb_result_error(&res) : "unknown error";
    duckdb_destroy_result(&res);
    return arrow::Status::Invalid(msg);
  }
  duckdb_destroy_result(&res);
  return arrow::Status::OK();
}

// Takes ownership of `err`; OK when it holds no error.
arrow::Status FromErrorData(duckdb_error_data err, const std::string& what) {
  if (err == nullptr) return arrow::Status::OK();
  arrow::Status st;
  if (duckdb_error_data_has_error(err)) {
    st = arrow::Status::Invalid(what, ": ", duckdb_error_data_message(err));
  }
  duckdb_destroy_error_data(&err);
  return st;
}

}  // namespace

namespace {

// ---- sources: what a scan of an attached table reads -------------------------

// One scan of a source, shared by DuckDB's threads: hands out parts (pieces read
// on their own, each as a RecordBatchReader) until none is left. Thread-safe.
class PartQueue {
 public:
  virtual ~PartQueue() = default;
  /// The next part, or null when every part was handed out.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Next() = 0;
  /// How many threads may usefully read parts at once.
  virtual idx_t MaxThreads() const = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual const std::shared_ptr<arrow::Schema>& schema() const = 0;
  /// Rows of the source when known without reading it (-1 otherwise).
  virtual int64_t EstimatedRows() const { return -1; }
  /// One scan of the columns `fields` (indices into schema(), at least one).
  virtual arrow::Result<std::unique_ptr<PartQueue>> Start(const std::vector<int>& fields) = 0;
};

// A Delta snapshot: parts are the data files' row groups (a file with a
// deletion vector is one part), read by the storage layer's ReadDataFile
// (partition values, column mapping, types and deletion vectors as every read).
class DeltaSource : public Source {
 public:
  DeltaSource(std::shared_ptr<const delta::DeltaTable> table,
              std::shared_ptr<const delta::Snapshot> snapshot)
      : table_(std::move(table)), snapshot_(std::move(snapshot)) {}

  const std::shared_ptr<arrow::Schema>& schema() const override { return snapshot_->schema(); }
  int64_t EstimatedRows() const override { return snapshot_->NumRecords(); }

  arrow::Result<std::unique_ptr<PartQueue>> Start(const std::vector<int>& fields) override;

 private:
  // Row groups per file, counted once (footers) and shared by every scan.
  arrow::Result<const std::vector<int>*> RowGroups();

  std::shared_ptr<const delta::DeltaTable> table_;
  std::shared_ptr<const delta::Snapshot> snapshot_;
  std::mutex mu_;
  std::optional<std::vector<int>> row_groups_;  // per file; 0 = read whole
};

class DeltaParts : public PartQueue {
 public:
  struct Part {
    size_t file;
    std::optional<std::pair<int, int>> row_groups;
  };
  DeltaParts(std::shared_ptr<const delta::DeltaTable> table,
             std::shared_ptr<const delta::Snapshot> snapshot, std::vector<int> fields,
             std::vector<Part> parts)
      : table_(std::move(table)),
        snapshot_(std::move(snapshot)),
        fields_(std::move(fields)),
        parts_(std::move(parts)) {}

  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Next() override {
    const size_t i = next_.fetch_add(1);
    if (i >= parts_.size()) return nullptr;
    const Part& part = parts_[i];
    delta::FileReadOptions fo;
    fo.row_group_range = part.row_groups;
    // Few parts: decode each one's columns on Arrow's threads too.
    fo.use_threads = parts_.size() < 4;
    ARROW_ASSIGN_OR_RAISE(auto data,
                          delta::ReadDataFile(*table_->filesystem(), *snapshot_,
                                              snapshot_->files()[part.file], fields_, fo));
    return std::make_shared<TableReader>(std::move(data));
  }
  idx_t MaxThreads() const override { return std::max<idx_t>(1, parts_.size()); }

 private:
  // Batches of a table it keeps alive.
  class TableReader : public arrow::RecordBatchReader {
   public:
    explicit TableReader(std::shared_ptr<arrow::Table> table)
        : table_(std::move(table)), reader_(*table_) {}
    std::shared_ptr<arrow::Schema> schema() const override { return table_->schema(); }
    arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
      return reader_.ReadNext(out);
    }

   private:
    std::shared_ptr<arrow::Table> table_;
    arrow::TableBatchReader reader_;
  };

  std::shared_ptr<const delta::DeltaTable> table_;
  std::shared_ptr<const delta::Snapshot> snapshot_;
  std::vector<int> fields_;
  std::vector<Part> parts_;
  std::atomic<size_t> next_{0};
};

arrow::Result<const std::vector<int>*> DeltaSource::RowGroups() {
  std::lock_guard<std::mutex> lock(mu_);
  if (row_groups_) return &*row_groups_;
  const auto& files = snapshot_->files();
  std::vector<int> counts(files.size(), 0);
  // Many files are parts enough; splitting them would read every footer twice.
  if (files.size() < 64) {
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].deletion_vector) continue;
      ARROW_ASSIGN_OR_RAISE(counts[i],
                            delta::CountRowGroups(*table_->filesystem(), *snapshot_, files[i]));
    }
  }
  row_groups_ = std::move(counts);
  return &*row_groups_;
}

arrow::Result<std::unique_ptr<PartQueue>> DeltaSource::Start(const std::vector<int>& fields) {
  ARROW_ASSIGN_OR_RAISE(const auto* row_groups, RowGroups());
  std::vector<DeltaParts::Part> parts;
  for (size_t f = 0; f < row_groups->size(); ++f) {
    const int n = (*row_groups)[f];
    if (n <= 1) {
      parts.push_back({f, std::nullopt});
    } else {
      for (int g = 0; g < n; ++g) parts.push_back({f, std::make_pair(g, g + 1)});
    }
  }
  return std::make_unique<DeltaParts>(table_, snapshot_, fields, std::move(parts));
}

// A RecordBatchReader, read once: the first scan pulls its batches (under a
// lock) and keeps them; later scans, and other threads of the same scan, take
// the kept ones. A part is one batch.
class ReaderSource : public Source {
 public:
  explicit ReaderSource(std::shared_ptr<arrow::RecordBatchReader> reader)
      : reader_(std::move(reader)), schema_(reader_->schema()) {}

  const std::shared_ptr<arrow::Schema>& schema() const override { return schema_; }

  /// Batch `i` of the reader (null past its end).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Batch(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    while (batches_.size() <= i && reader_) {
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(reader_->ReadNext(&batch));
      if (!batch) {
        ARROW_RETURN_NOT_OK(reader_->Close());
        reader_.reset();
      } else if (batch->num_rows() > 0) {
        batches_.push_back(std::move(batch));
      }
    }
    return i < batches_.size() ? batches_[i] : nullptr;
  }

  arrow::Result<std::unique_ptr<PartQueue>> Start(const std::vector<int>& fields) override;

 private:
  std::mutex mu_;
  std::shared_ptr<arrow::RecordBatchReader> reader_;  // null once drained
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;
};

class ReaderParts : public PartQueue {
 public:
  ReaderParts(ReaderSource* source, std::vector<int> fields)
      : source_(source), fields_(std::move(fields)) {}
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Next() override {
    ARROW_ASSIGN_OR_RAISE(auto batch, source_->Batch(next_.fetch_add(1)));
    if (!batch) return nullptr;
    ARROW_ASSIGN_OR_RAISE(batch, batch->SelectColumns(fields_));
    return arrow::RecordBatchReader::Make({batch}, batch->schema());
  }
  idx_t MaxThreads() const override { return 64; }

 private:
  ReaderSource* source_;
  std::vector<int> fields_;
  std::atomic<size_t> next_{0};
};

arrow::Result<std::unique_ptr<PartQueue>> ReaderSource::Start(const std::vector<int>& fields) {
  return std::make_unique<ReaderParts>(this, fields);
}

// The DuckDB types of `schema`'s columns, as duckdb_data_chunk_from_arrow makes
// them (so that the table function declares exactly the vectors it hands out).
arrow::Result<std::vector<duckdb_logical_type>> DuckTypes(duckdb_connection conn,
                                                          const arrow::Schema& schema) {
  struct ArrowSchema c_schema;
  ARROW_RETURN_NOT_OK(arrow::ExportSchema(schema, &c_schema));
  duckdb_arrow_converted_schema converted = nullptr;
  arrow::Status st = FromErrorData(duckdb_schema_from_arrow(conn, &c_schema, &converted),
                                   "DuckDB cannot read the Arrow schema " + schema.ToString());
  if (c_schema.release) c_schema.release(&c_schema);
  ARROW_RETURN_NOT_OK(st);
  ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatch::MakeEmpty(arrow::schema(schema.fields())));
  struct ArrowArray c_array;
  st = arrow::ExportRecordBatch(*empty, &c_array);
  duckdb_data_chunk chunk = nullptr;
  if (st.ok()) {
    st = FromErrorData(duckdb_data_chunk_from_arrow(conn, &c_array, converted, &chunk),
                       "DuckDB cannot read the Arrow columns " + schema.ToString());
    if (c_array.release) c_array.release(&c_array);
  }
  duckdb_destroy_arrow_converted_schema(&converted);
  ARROW_RETURN_NOT_OK(st);
  std::vector<duckdb_logical_type> types;
  for (idx_t c = 0; c < duckdb_data_chunk_get_column_count(chunk); ++c) {
    types.push_back(duckdb_vector_get_column_type(duckdb_data_chunk_get_vector(chunk, c)));
  }
  duckdb_destroy_data_chunk(&chunk);
  return types;
}

// The engine's state, which DuckDB's callbacks reach through the scan function.
struct EngineState {
  duckdb_database db = nullptr;
  duckdb_connection conn = nullptr;
  // Converts Arrow to DuckDB (schemas and chunks) while `conn` runs a query.
  duckdb_connection convert_conn = nullptr;

  struct Attached {
    std::string name;  // "bronze.orders"
    std::unique_ptr<Source> source;
    std::vector<duckdb_logical_type> types;
  };
  std::vector<std::unique_ptr<Attached>> attached;  // index = the scan function's ID

  mutable std::mutex mu;      // guards the two below (scans run on DuckDB's threads)
  arrow::Status first_error;  // the first error of a source in the running query
  std::vector<std::shared_ptr<SqlEngine::ScanRecord>> scans;

  void RecordError(const arrow::Status& st) {
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = st;
  }

  ~EngineState() {
    for (auto& a : attached) {
      for (auto& t : a->types) duckdb_destroy_logical_type(&t);
    }
    if (convert_conn) duckdb_disconnect(&convert_conn);
    if (conn) duckdb_disconnect(&conn);
    if (db) duckdb_close(&db);
  }
};

using Impl = EngineState;

constexpr const char* kScanFunction = "__stratalake_scan";

// One scan (global state): the columns, the parts, the Arrow -> DuckDB conversion.
struct ScanState {
  Impl* impl = nullptr;
  std::vector<idx_t> out_columns;  // output vectors to fill (empty: count rows only)
  std::unique_ptr<PartQueue> parts;
  duckdb_arrow_converted_schema converted = nullptr;
  std::shared_ptr<SqlEngine::ScanRecord> record;
  std::atomic<int64_t> rows{0};
  std::atomic<int64_t> parts_read{0};
  ~ScanState() {
    if (converted) duckdb_destroy_arrow_converted_schema(&converted);
    if (record) {
      std::lock_guard<std::mutex> lock(impl->mu);
      record->rows = rows;
      record->parts = parts_read;
    }
  }
};

// One thread of a scan: the part it reads and where it is in it.
struct ThreadState {
  std::shared_ptr<arrow::RecordBatchReader> part;
  std::shared_ptr<arrow::RecordBatch> batch;
  int64_t offset = 0;
};

void ScanBind(duckdb_bind_info info) {
  auto* impl = static_cast<Impl*>(duckdb_bind_get_extra_info(info));
  duckdb_value v = duckdb_bind_get_parameter(info, 0);
  const int64_t id = duckdb_get_int64(v);
  duckdb_destroy_value(&v);
  if (id < 0 || id >= static_cast<int64_t>(impl->attached.size())) {
    duckdb_bind_set_error(info, "__stratalake_scan: no such table");
    return;
  }
  auto* a = impl->attached[id].get();
  const auto& schema = a->source->schema();
  for (int i = 0; i < schema->num_fields(); ++i) {
    duckdb_bind_add_result_column(info, schema->field(i)->name().c_str(), a->types[i]);
  }
  const int64_t rows = a->source->EstimatedRows();
  if (rows >= 0) duckdb_bind_set_cardinality(info, static_cast<idx_t>(rows), false);
  duckdb_bind_set_bind_data(info, a, nullptr);
}

arrow::Status ScanInit(duckdb_init_info info, Impl* impl, Impl::Attached* a) {
  auto state = std::make_unique<ScanState>();
  state->impl = impl;
  const auto& schema = *a->source->schema();
  std::vector<int> fields;
  const idx_t n = duckdb_init_get_column_count(info);
  for (idx_t i = 0; i < n; ++i) {
    const idx_t col = duckdb_init_get_column_index(info, i);
    // DuckDB asks for a row id (or nothing) when it needs only the row count.
    if (col >= static_cast<idx_t>(schema.num_fields())) continue;
    fields.push_back(static_cast<int>(col));
    state->out_columns.push_back(i);
  }
  auto record = std::make_shared<SqlEngine::ScanRecord>();
  record->table = a->name;
  for (int f : fields) record->columns.push_back(schema.field(f)->name());
  std::vector<int> read = fields;
  if (read.empty() && schema.num_fields() > 0) read.push_back(0);  // rows still count
  ARROW_ASSIGN_OR_RAISE(state->parts, a->source->Start(read));
  if (!fields.empty()) {
    arrow::FieldVector out;
    for (int f : fields) out.push_back(schema.field(f));
    struct ArrowSchema c_schema;
    ARROW_RETURN_NOT_OK(arrow::ExportSchema(*arrow::schema(std::move(out)), &c_schema));
    arrow::Status st =
        FromErrorData(duckdb_schema_from_arrow(impl->convert_conn, &c_schema, &state->converted),
                      "DuckDB cannot read the columns of " + a->name);
    if (c_schema.release) c_schema.release(&c_schema);
    ARROW_RETURN_NOT_OK(st);
  }
  duckdb_init_set_max_threads(info, state->parts->MaxThreads());
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->scans.push_back(record);
  }
  state->record = std::move(record);
  duckdb_init_set_init_data(info, state.release(),
                            [](void* p) { delete static_cast<ScanState*>(p); });
  return arrow::Status::OK();
}

void ScanInitCallback(duckdb_init_info info) {
  auto* impl = static_cast<Impl*>(duckdb_init_get_extra_info(info));
  auto* a = static_cast<Impl::Attached*>(duckdb_init_get_bind_data(info));
  arrow::Status st = ScanInit(info, impl, a);
  if (!st.ok()) {
    impl->RecordError(st);
    duckdb_init_set_error(info, st.message().c_str());
  }
}

void ScanLocalInit(duckdb_init_info info) {
  duckdb_init_set_init_data(info, new ThreadState,
                            [](void* p) { delete static_cast<ThreadState*>(p); });
}

// Fills `output` with the thread's next rows (none when the scan is done).
arrow::Status ScanNext(ScanState& g, ThreadState& t, duckdb_data_chunk output) {
  while (!t.batch || t.offset >= t.batch->num_rows()) {
    t.batch.reset();
    if (t.part) {
      ARROW_RETURN_NOT_OK(t.part->ReadNext(&t.batch));
      t.offset = 0;
      if (t.batch) continue;
      t.part.reset();
    }
    ARROW_ASSIGN_OR_RAISE(t.part, g.parts->Next());
    if (!t.part) {
      duckdb_data_chunk_set_size(output, 0);
      return arrow::Status::OK();
    }
    g.parts_read.fetch_add(1);
  }
  const int64_t n =
      std::min<int64_t>(static_cast<int64_t>(duckdb_vector_size()), t.batch->num_rows() - t.offset);
  std::shared_ptr<arrow::RecordBatch> slice = t.batch->Slice(t.offset, n);
  t.offset += n;
  g.rows.fetch_add(n);
  if (!g.out_columns.empty()) {
    struct ArrowArray c_array;
    ARROW_RETURN_NOT_OK(arrow::ExportRecordBatch(*slice, &c_array));
    duckdb_data_chunk chunk = nullptr;
    arrow::Status st = FromErrorData(
        duckdb_data_chunk_from_arrow(g.impl->convert_conn, &c_array, g.converted, &chunk),
        "DuckDB cannot read the Arrow arrays");
    if (c_array.release) c_array.release(&c_array);
    ARROW_RETURN_NOT_OK(st);
    for (size_t c = 0; c < g.out_columns.size(); ++c) {
      duckdb_vector_reference_vector(duckdb_data_chunk_get_vector(output, g.out_columns[c]),
                                     duckdb_data_chunk_get_vector(chunk, c));
    }
    duckdb_destroy_data_chunk(&chunk);
  }
  duckdb_data_chunk_set_size(output, static_cast<idx_t>(n));
  return arrow::Status::OK();
}

void ScanFunction(duckdb_function_info info, duckdb_data_chunk output) {
  auto* g = static_cast<ScanState*>(duckdb_function_get_init_data(info));
  auto* t = static_cast<ThreadState*>(duckdb_function_get_local_init_data(info));
  arrow::Status st = ScanNext(*g, *t, output);
  if (!st.ok()) {
    g->impl->RecordError(st);
    duckdb_function_set_error(info, st.message().c_str());
  }
}

arrow::Status RegisterScanFunction(Impl* impl) {
  duckdb_table_function f = duckdb_create_table_function();
  duckdb_table_function_set_name(f, kScanFunction);
  duckdb_logical_type bigint = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
  duckdb_table_function_add_parameter(f, bigint);
  duckdb_destroy_logical_type(&bigint);
  duckdb_table_function_set_extra_info(f, impl, nullptr);
  duckdb_table_function_set_bind(f, ScanBind);
  duckdb_table_function_set_init(f, ScanInitCallback);
  duckdb_table_function_set_local_init(f, ScanLocalInit);
  duckdb_table_function_set_function(f, ScanFunction);
  duckdb_table_function_supports_projection_pushdown(f, true);
  const bool failed = duckdb_register_table_function(impl->conn, f) == DuckDBError;
  duckdb_destroy_table_function(&f);
  if (failed) return arrow::Status::IOError("cannot register the table scan function in DuckDB");
  return arrow::Status::OK();
}

// Makes `source` the view schema_name.table over a scan function.
arrow::Status Attach(Impl* impl, const std::string& schema_name, const std::string& table,
                     std::unique_ptr<Source> source) {
  auto a = std::make_unique<Impl::Attached>();
  a->name = schema_name + "." + table;
  ARROW_ASSIGN_OR_RAISE(a->types, DuckTypes(impl->convert_conn, *source->schema()));
  a->source = std::move(source);
  const int64_t id = static_cast<int64_t>(impl->attached.size());
  impl->attached.push_back(std::move(a));
  ARROW_RETURN_NOT_OK(Exec(impl->conn, "CREATE SCHEMA IF NOT EXISTS " + QuoteIdent(schema_name)));
  arrow::Status st =
      Exec(impl->conn, "CREATE VIEW " + QuoteIdent(schema_name) + "." + QuoteIdent(table) +
                           " AS SELECT * FROM " + kScanFunction + "(" + std::to_string(id) + ")");
  if (!st.ok()) return st.WithMessage("cannot load ", schema_name, ".", table, ": ", st.message());
  return arrow::Status::OK();
}

}  // namespace

struct SqlEngine::Impl : EngineState {};

SqlEngine::SqlEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqlEngine::~SqlEngine() = default;

std::string SqlEngine::LibraryVersion() { return duckdb_library_version(); }

arrow::Result<std::unique_ptr<SqlEngine>> SqlEngine::Open() {
  auto impl = std::make_unique<Impl>();
  char* err = nullptr;
  if (duckdb_open_ext(nullptr, &impl->db, nullptr, &err) == DuckDBError) {
    std::string msg = err ? err : "unknown error";
    if (err) duckdb_free(err);
    return arrow::Status::IOError("cannot open the embedded DuckDB: ", msg);
  }
  if (duckdb_connect(impl->db, &impl->conn) == DuckDBError ||
      duckdb_connect(impl->db, &impl->convert_conn) == DuckDBError) {
    return arrow::Status::IOError("cannot connect to the embedded DuckDB");
  }
  // Timestamps with a time zone come back in UTC, whatever the machine's zone.
  ARROW_RETURN_NOT_OK(Exec(impl->conn, "SET TimeZone = 'UTC'"));
  // Extensions built into the library load on use; none is downloaded (results must not
  // depend on the network).
  ARROW_RETURN_NOT_OK(Exec(impl->conn, "SET autoinstall_known_extensions = false"));
  ARROW_RETURN_NOT_OK(RegisterScanFunction(impl.get()));
  return std::unique_ptr<SqlEngine>(new SqlEngine(std::move(impl)));
}

arrow::Status SqlEngine::LoadTable(const std::string& schema_name, const std::string& table,
                                   const std::shared_ptr<arrow::RecordBatchReader>& reader) {
  return Attach(impl_.get(), schema_name, table, std::make_unique<ReaderSource>(reader));
}

arrow::Status SqlEngine::AttachDeltaTable(const std::string& schema_name,
                                          const std::string& table_name,
                                          std::shared_ptr<const delta::DeltaTable> table,
                                          std::shared_ptr<const delta::Snapshot> snapshot) {
  return Attach(impl_.get(), schema_name, table_name,
                std::make_unique<DeltaSource>(std::move(table), std::move(snapshot)));
}

std::vector<SqlEngine::ScanRecord> SqlEngine::Scans() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<ScanRecord> out;
  for (const auto& s : impl_->scans) out.push_back(*s);
  return out;
}

namespace {

// Runs every statement of `sql` in order; `*out` gets the last one's result.
arrow::Status RunStatements(duckdb_connection conn, const std::string& sql, duckdb_result* out) {
  duckdb_extracted_statements stmts = nullptr;
  const idx_t n = duckdb_extract_statements(conn, sql.c_str(), &stmts);
  struct ExtractedGuard {
    duckdb_extracted_statements* s;
    ~ExtractedGuard() { duckdb_destroy_extracted(s); }
  } extracted_guard{&stmts};
  if (n == 0) {
    const char* err = stmts ? duckdb_extract_statements_error(stmts) : nullptr;
    if (err) return arrow::Status::Invalid(err);
    return arrow::Status::Invalid("the query holds no SQL statement");
  }
  for (idx_t i = 0; i < n; ++i) {
    duckdb_prepared_statement prepared = nullptr;
    if (duckdb_prepare_extracted_statement(conn, stmts, i, &prepared) == DuckDBError) {
      std::string msg = duckdb_prepare_error(prepared) ? duckdb_prepare_error(prepared)
                                                       : "cannot prepare the statement";
      duckdb_destroy_prepare(&prepared);
      return arrow::Status::Invalid(msg);
    }
    duckdb_result res;
    const bool failed = duckdb_execute_prepared(prepared, &res) == DuckDBError;
    duckdb_destroy_prepare(&prepared);
    if (failed) {
      std::string msg = duckdb_result_error(&res) ? duckdb_result_error(&res) : "unknown error";
      duckdb_destroy_result(&res);
      return arrow::Status::Invalid(msg);
    }
    if (i + 1 < n) {
      duckdb_destroy_result(&res);
    } else {
      *out = res;
    }
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Table>> SqlEngine::Query(const std::string& sql) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->first_error = arrow::Status::OK();
  }
  duckdb_result res;
  arrow::Status run = RunStatements(impl_->conn, sql, &res);
  if (!run.ok()) {
    // A source's own error (an unreadable data file...) as it was, not as DuckDB saw it.
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->first_error.ok() ? run : impl_->first_error;
  }
  struct ResultGuard {
    duckdb_result* r;
    ~ResultGuard() { duckdb_destroy_result(r); }
  } guard{&res};

  const idx_t ncol = duckdb_column_count(&res);
  std::vector<duckdb_logical_type> types(ncol);
  std::vector<const char*> names(ncol);
  std::vector<bool> hugeint(ncol, false);
  for (idx_t i = 0; i < ncol; ++i) {
    types[i] = duckdb_column_logical_type(&res, i);
    names[i] = duckdb_column_name(&res, i);
    const duckdb_type id = duckdb_get_type_id(types[i]);
    hugeint[i] = id == DUCKDB_TYPE_HUGEINT || id == DUCKDB_TYPE_UHUGEINT;
  }
  duckdb_arrow_options options = duckdb_result_get_arrow_options(&res);
  struct ArrowSchema c_schema;
  arrow::Status st =
      FromErrorData(duckdb_to_arrow_schema(options, types.data(), names.data(), ncol, &c_schema),
                    "cannot describe the result as Arrow");
  for (auto& t : types) duckdb_destroy_logical_type(&t);
  if (!st.ok()) {
    duckdb_destroy_arrow_options(&options);
    return st;
  }
  auto schema = arrow::ImportSchema(&c_schema);
  if (!schema.ok()) {
    duckdb_destroy_arrow_options(&options);
    return schema.status();
  }
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  while (true) {
    duckdb_data_chunk chunk = duckdb_fetch_chunk(res);
    if (chunk == nullptr) break;
    struct ArrowArray c_array;
    st = FromErrorData(duckdb_data_chunk_to_arrow(options, chunk, &c_array),
                       "cannot convert the result to Arrow");
    duckdb_destroy_data_chunk(&chunk);
    if (!st.ok()) break;
    auto batch = arrow::ImportRecordBatch(&c_array, *schema);
    if (!batch.ok()) {
      st = batch.status();
      break;
    }
    batches.push_back(std::move(*batch));
  }
  duckdb_destroy_arrow_options(&options);
  ARROW_RETURN_NOT_OK(st);
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(*schema, batches));
  // DuckDB sums integers into 128-bit integers, which Arrow sees as decimal(38,0):
  // give them back as int64 (an error names the column when a value does not fit).
  for (idx_t i = 0; i < ncol; ++i) {
    if (!hugeint[i]) continue;
    auto cast = arrow::compute::Cast(table->column(static_cast<int>(i)), arrow::int64());
    if (!cast.ok()) {
      return arrow::Status::Invalid("column '", names[i],
                                    "' holds integers beyond int64: cast it in the query (",
                                    cast.status().message(), ")");
    }
    ARROW_ASSIGN_OR_RAISE(
        table,
        table->SetColumn(static_cast<int>(i),
                         arrow::field(table->field(static_cast<int>(i))->name(), arrow::int64()),
                         cast->chunked_array()));
  }
  return table;
}

}  // namespace stratalake::transform
