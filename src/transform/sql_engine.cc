// SqlEngine: DuckDB through its C API. Tables come in as Arrow C streams
// (duckdb_arrow_scan) and are copied into the in-memory database once, so that a
// query may read a table several times (self-joins, CTEs used twice): the C API's
// arrow scan reads its stream once. Results go out as Arrow arrays, chunk by chunk
// (duckdb_data_chunk_to_arrow).
#include <arrow/api.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/compute/api.h>
#include <duckdb.h>

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

struct SqlEngine::Impl {
  duckdb_database db = nullptr;
  duckdb_connection conn = nullptr;
  int64_t scans = 0;
  ~Impl() {
    if (conn) duckdb_disconnect(&conn);
    if (db) duckdb_close(&db);
  }
};

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
  if (duckdb_connect(impl->db, &impl->conn) == DuckDBError) {
    return arrow::Status::IOError("cannot connect to the embedded DuckDB");
  }
  // Timestamps with a time zone come back in UTC, whatever the machine's zone.
  ARROW_RETURN_NOT_OK(Exec(impl->conn, "SET TimeZone = 'UTC'"));
  // Extensions built into the library load on use; none is downloaded (results must not
  // depend on the network).
  ARROW_RETURN_NOT_OK(Exec(impl->conn, "SET autoinstall_known_extensions = false"));
  return std::unique_ptr<SqlEngine>(new SqlEngine(std::move(impl)));
}

arrow::Status SqlEngine::LoadTable(const std::string& schema_name, const std::string& table,
                                   const std::shared_ptr<arrow::RecordBatchReader>& reader) {
  const std::string target = QuoteIdent(schema_name) + "." + QuoteIdent(table);
  ARROW_RETURN_NOT_OK(Exec(impl_->conn, "CREATE SCHEMA IF NOT EXISTS " + QuoteIdent(schema_name)));
  struct ArrowArrayStream stream;
  ARROW_RETURN_NOT_OK(arrow::ExportRecordBatchReader(reader, &stream));
  const std::string view = "__stratalake_scan_" + std::to_string(impl_->scans++);
  if (duckdb_arrow_scan(impl_->conn, view.c_str(),
                        reinterpret_cast<duckdb_arrow_stream>(&stream)) == DuckDBError) {
    stream.release(&stream);
    return arrow::Status::Invalid("DuckDB cannot scan the Arrow stream of ", schema_name, ".",
                                  table, " (", reader->schema()->ToString(), ")");
  }
  arrow::Status st =
      Exec(impl_->conn, "CREATE TABLE " + target + " AS SELECT * FROM " + QuoteIdent(view));
  arrow::Status dropped = Exec(impl_->conn, "DROP VIEW IF EXISTS " + QuoteIdent(view));
  if (stream.release) stream.release(&stream);
  if (!st.ok()) return st.WithMessage("cannot load ", schema_name, ".", table, ": ", st.message());
  return dropped;
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
  duckdb_result res;
  ARROW_RETURN_NOT_OK(RunStatements(impl_->conn, sql, &res));
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
