#include "storage/scan.h"

#include <algorithm>
#include <mutex>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/filesystem/filesystem.h>
#include <arrow/io/file.h>
#include <arrow/util/key_value_metadata.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>
#include <parquet/statistics.h>

#include "common/parallel.h"
#include "storage/deletion_vector.h"
#include "storage/file_cache.h"
#include "storage/schema.h"
#include "storage/snapshot.h"
#include "storage/stats.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

namespace cp = arrow::compute;

std::optional<int64_t> ParquetFieldId(const arrow::Field& f) {
  if (!f.metadata()) return std::nullopt;
  auto v = f.metadata()->Get("PARQUET:field_id");
  if (!v.ok()) return std::nullopt;
  return std::stoll(*v);
}

// Index of the child of `fields` that stores logical field `logical`.
int FindStoredField(const arrow::FieldVector& fields, const arrow::Field& logical,
                    const std::string& mode) {
  if (mode == "id") {
    auto id = ColumnId(logical);
    if (id) {
      for (size_t i = 0; i < fields.size(); ++i) {
        if (ParquetFieldId(*fields[i]) == id) return static_cast<int>(i);
      }
    }
  }
  std::string phys = PhysicalName(logical, mode);
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i]->name() == phys) return static_cast<int>(i);
  }
  return -1;
}

// Convert an array read from a data file to the logical field's type: rename
// column-mapped children, fill missing struct children with nulls, cast widened
// or differently-encoded primitives. Keeps offsets: child data stay aligned.
arrow::Result<std::shared_ptr<arrow::ArrayData>> Conform(
    const std::shared_ptr<arrow::ArrayData>& data, const arrow::Field& logical,
    const std::string& mode) {
  const auto& ltype = logical.type();
  if (data->type->Equals(*ltype, /*check_metadata=*/false) && mode == "none" &&
      ltype->id() != arrow::Type::STRUCT) {
    return data;
  }
  switch (ltype->id()) {
    case arrow::Type::STRUCT: {
      if (data->type->id() != arrow::Type::STRUCT) break;
      auto out = data->Copy();
      out->type = ltype;
      out->child_data.clear();
      const auto& stored = data->type->fields();
      for (const auto& child : ltype->fields()) {
        int idx = FindStoredField(stored, *child, mode);
        if (idx < 0) {
          ARROW_ASSIGN_OR_RAISE(auto nulls,
                                arrow::MakeArrayOfNull(child->type(), data->offset + data->length));
          out->child_data.push_back(nulls->data());
        } else {
          ARROW_ASSIGN_OR_RAISE(auto c, Conform(data->child_data[idx], *child, mode));
          out->child_data.push_back(std::move(c));
        }
      }
      return out;
    }
    case arrow::Type::LIST: {
      auto src = data;
      if (src->type->id() == arrow::Type::LARGE_LIST) {
        ARROW_ASSIGN_OR_RAISE(auto casted,
                              cp::Cast(arrow::MakeArray(src), arrow::list(src->type->field(0))));
        src = casted.make_array()->data();
      }
      if (src->type->id() != arrow::Type::LIST) break;
      auto out = src->Copy();
      out->type = ltype;
      ARROW_ASSIGN_OR_RAISE(auto values, Conform(src->child_data[0], *ltype->field(0), mode));
      out->child_data = {values};
      return out;
    }
    case arrow::Type::MAP: {
      if (data->type->id() != arrow::Type::MAP) break;
      const auto& mt = static_cast<const arrow::MapType&>(*ltype);
      auto entries = data->child_data[0]->Copy();
      entries->type = mt.value_type();
      ARROW_ASSIGN_OR_RAISE(auto k, Conform(entries->child_data[0], *mt.key_field(), mode));
      ARROW_ASSIGN_OR_RAISE(auto v, Conform(entries->child_data[1], *mt.item_field(), mode));
      entries->child_data = {k, v};
      auto out = data->Copy();
      out->type = ltype;
      out->child_data = {entries};
      return out;
    }
    default: {
      if (data->type->Equals(*ltype, false)) return data;
      auto casted = cp::Cast(arrow::MakeArray(data), ltype, cp::CastOptions::Unsafe(ltype));
      if (!casted.ok()) {
        return MakeError(arrow::StatusCode::TypeError, ErrorKind::kSchemaMismatch,
                         "column '" + logical.name() + "' is stored as " + data->type->ToString() +
                             " but the table schema says " + DeltaTypeName(*ltype) + ": " +
                             casted.status().message());
      }
      return casted->make_array()->data();
    }
  }
  return MakeError(arrow::StatusCode::TypeError, ErrorKind::kSchemaMismatch,
                   "column '" + logical.name() + "' is stored as " + data->type->ToString() +
                       " but the table schema says " + DeltaTypeName(*ltype));
}

void CollectLeafIndices(const parquet::arrow::SchemaField& f, std::vector<int>* out) {
  if (f.children.empty()) {
    if (f.column_index >= 0) out->push_back(f.column_index);
    return;
  }
  for (const auto& c : f.children) CollectLeafIndices(c, out);
}

// Row groups of a file whose statistics allow a row matching `filter`.
arrow::Result<std::vector<int>> SelectRowGroups(parquet::arrow::FileReader& reader,
                                                const arrow::FieldVector& stored,
                                                const Snapshot& snapshot,
                                                const cp::Expression& filter) {
  const auto& schema = *snapshot.schema();
  const std::string mode = snapshot.ColumnMappingMode();
  const auto& pcols = snapshot.metadata().partition_columns;
  const auto& manifest = reader.manifest();
  auto metadata = reader.parquet_reader()->metadata();
  // Filter columns stored as a single Parquet leaf.
  std::vector<std::pair<std::shared_ptr<arrow::Field>, int>> columns;
  for (const auto& ref : cp::FieldsInExpression(filter)) {
    if (!ref.name()) continue;
    auto field = schema.GetFieldByName(*ref.name());
    if (!field || std::find(pcols.begin(), pcols.end(), field->name()) != pcols.end()) continue;
    int idx = FindStoredField(stored, *field, mode);
    if (idx < 0 || !manifest.schema_fields[idx].children.empty()) continue;
    int leaf = manifest.schema_fields[idx].column_index;
    if (leaf >= 0) columns.emplace_back(field, leaf);
  }
  std::vector<int> out;
  for (int rg = 0; rg < metadata->num_row_groups(); ++rg) {
    auto rg_meta = metadata->RowGroup(rg);
    std::vector<cp::Expression> terms;
    for (const auto& [field, leaf] : columns) {
      auto chunk = rg_meta->ColumnChunk(leaf);
      auto stats = chunk->statistics();
      if (!stats) continue;
      auto ref = cp::field_ref(field->name());
      if (stats->HasNullCount() && stats->null_count() == rg_meta->num_rows()) {
        terms.push_back(cp::is_null(ref));
        continue;
      }
      if (!stats->HasMinMax()) continue;
      std::shared_ptr<arrow::Scalar> lo, hi;
      if (!parquet::arrow::StatisticsAsScalars(*stats, &lo, &hi).ok()) continue;
      auto lo_cast = lo->CastTo(field->type());
      auto hi_cast = hi->CastTo(field->type());
      if (!lo_cast.ok() || !hi_cast.ok()) continue;
      cp::Expression range = cp::and_(cp::greater_equal(ref, cp::literal(*lo_cast)),
                                      cp::less_equal(ref, cp::literal(*hi_cast)));
      if (!stats->HasNullCount() || stats->null_count() > 0)
        range = cp::or_(range, cp::is_null(ref));
      terms.push_back(std::move(range));
    }
    if (!terms.empty()) {
      ARROW_ASSIGN_OR_RAISE(auto simplified, cp::SimplifyWithGuarantee(filter, cp::and_(terms)));
      if (simplified.literal() && simplified.literal()->is_scalar()) {
        const auto& s = *simplified.literal()->scalar();
        if (!s.is_valid || (s.type->id() == arrow::Type::BOOL &&
                            !static_cast<const arrow::BooleanScalar&>(s).value)) {
          continue;
        }
      }
    }
    out.push_back(rg);
  }
  return out;
}

arrow::Status FileError(const std::string& path, const arrow::Status& st) {
  if (st.IsIOError() && (st.message().find("No such file") != std::string::npos ||
                         st.message().find("does not exist") != std::string::npos ||
                         st.message().find("not found") != std::string::npos ||
                         // An object store's GET of a missing object (Arrow's S3 client).
                         st.message().find("RESOURCE_NOT_FOUND") != std::string::npos ||
                         st.message().find("NO_SUCH_KEY") != std::string::npos)) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
                     "data file '" + path +
                         "' named by the Delta log does not exist (was it deleted outside "
                         "Delta, or vacuumed?)");
  }
  return arrow::Status(st.code(), "cannot read data file '" + path + "': " + st.message());
}

}  // namespace

arrow::Result<ScanPlan> PlanFiles(const Snapshot& snapshot,
                                  const std::optional<cp::Expression>& filter) {
  ScanPlan plan;
  plan.total_files = static_cast<int64_t>(snapshot.files().size());
  if (!filter) {
    plan.files = snapshot.files();
    return plan;
  }
  std::set<std::string> columns;
  for (const auto& ref : cp::FieldsInExpression(*filter)) {
    if (ref.name()) columns.insert(*ref.name());
  }
  const auto& pcols = snapshot.metadata().partition_columns;
  for (const auto& file : snapshot.files()) {
    ARROW_ASSIGN_OR_RAISE(auto guarantee, FileGuarantee(snapshot, file, columns));
    ARROW_ASSIGN_OR_RAISE(auto simplified, cp::SimplifyWithGuarantee(*filter, guarantee));
    bool skip = false;
    if (simplified.literal()) {
      const auto& d = *simplified.literal();
      skip = d.is_scalar() && (!d.scalar()->is_valid ||
                               (d.type()->id() == arrow::Type::BOOL &&
                                !static_cast<const arrow::BooleanScalar&>(*d.scalar()).value));
    }
    if (skip) {
      // Attribute to partition pruning when the partition values alone decide it.
      bool partition_only = !columns.empty();
      for (const auto& c : columns) {
        if (std::find(pcols.begin(), pcols.end(), c) == pcols.end()) partition_only = false;
      }
      ++(partition_only ? plan.skipped_by_partition : plan.skipped_by_stats);
    } else {
      plan.files.push_back(file);
    }
  }
  return plan;
}

// Local files are memory-mapped: Parquet then decompresses straight from the
// page cache, without a read() copy into fresh buffers that the kernel must
// zero first (a third of a large retrieval's time). Delta data files are never
// changed once written (a new version adds new files), so a mapping cannot see
// a file shrink under it, and a cached copy of a remote one is never stale.
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenDataFile(arrow::fs::FileSystem& fs,
                                                                         const std::string& path,
                                                                         int64_t size) {
  if (fs.type_name() == "local") {
    auto mapped = arrow::io::MemoryMappedFile::Open(path, arrow::io::FileMode::READ);
    if (mapped.ok()) return *mapped;
  }
  // Remote files go through the local read cache (file_cache.h).
  if (fs.type_name() == "s3") return OpenRemoteDataFile(fs, path, size);
  return fs.OpenInputFile(path);
}

arrow::Result<int> CountRowGroups(arrow::fs::FileSystem& fs, const Snapshot& snapshot,
                                  const AddFile& file) {
  std::string path = DataFilePath(snapshot.table_root(), file.path);
  auto input = OpenDataFile(fs, path, file.size);
  if (!input.ok()) {
    auto info = fs.GetFileInfo(path);
    if (info.ok() && info->type() == arrow::fs::FileType::NotFound) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
                       "data file '" + path +
                           "' named by the Delta log does not exist (deleted outside Delta, or "
                           "vacuumed?)");
    }
    return FileError(path, input.status());
  }
  try {
    auto metadata = parquet::ReadMetaData(*input);
    if (!metadata) return FileError(path, arrow::Status::IOError("no Parquet footer"));
    return metadata->num_row_groups();
  } catch (const std::exception& e) {
    return FileError(path, arrow::Status::IOError(e.what()));
  }
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadDataFile(arrow::fs::FileSystem& fs,
                                                          const Snapshot& snapshot,
                                                          const AddFile& file,
                                                          const std::vector<int>& fields,
                                                          const FileReadOptions& options) {
  const auto& schema = *snapshot.schema();
  const std::string mode = snapshot.ColumnMappingMode();
  const auto& pcols = snapshot.metadata().partition_columns;
  std::string path = DataFilePath(snapshot.table_root(), file.path);

  auto input = options.input
                   ? arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>>(options.input)
                   : OpenDataFile(fs, path, file.size);
  if (!input.ok()) {
    auto info = fs.GetFileInfo(path);
    if (info.ok() && info->type() == arrow::fs::FileType::NotFound) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
                       "data file '" + path +
                           "' named by the Delta log does not exist (deleted outside Delta, or "
                           "vacuumed?)");
    }
    return FileError(path, input.status());
  }
  parquet::ArrowReaderProperties props;
  props.set_coerce_int96_timestamp_unit(arrow::TimeUnit::MICRO);
  props.set_pre_buffer(true);
  props.set_batch_size(64 * 1024);
  props.set_use_threads(options.use_threads);
  parquet::arrow::FileReaderBuilder builder;
  auto st = builder.Open(*input);
  if (!st.ok()) return FileError(path, st);
  builder.properties(props);
  std::unique_ptr<parquet::arrow::FileReader> reader;
  st = builder.Build(&reader);
  if (!st.ok()) return FileError(path, st);

  const auto& manifest = reader->manifest();
  arrow::FieldVector stored;
  for (const auto& sf : manifest.schema_fields) stored.push_back(sf.field);
  std::vector<int> leaves;
  std::vector<int> stored_index(fields.size(), -1);
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto& logical = *schema.field(fields[i]);
    if (std::find(pcols.begin(), pcols.end(), logical.name()) != pcols.end()) continue;
    int idx = FindStoredField(stored, logical, mode);
    stored_index[i] = idx;
    if (idx >= 0) CollectLeafIndices(manifest.schema_fields[idx], &leaves);
  }
  std::sort(leaves.begin(), leaves.end());
  leaves.erase(std::unique(leaves.begin(), leaves.end()), leaves.end());
  auto metadata = reader->parquet_reader()->metadata();
  int64_t num_rows = metadata->num_rows();
  // Row groups to read: all, unless statistics rule some out. Row positions matter
  // for deletion vectors, so files with one are read whole.
  std::vector<int> row_groups;
  bool pruned = false;
  if (options.row_group_filter && !file.deletion_vector && metadata->num_row_groups() > 1) {
    ARROW_ASSIGN_OR_RAISE(row_groups,
                          SelectRowGroups(*reader, stored, snapshot, *options.row_group_filter));
    pruned = static_cast<int>(row_groups.size()) < metadata->num_row_groups();
  }
  if (options.row_group_range && !file.deletion_vector) {
    const int first = options.row_group_range->first;
    const int last = options.row_group_range->second;
    if (!pruned) {
      row_groups.clear();
      for (int rg = 0; rg < metadata->num_row_groups(); ++rg) row_groups.push_back(rg);
    }
    std::erase_if(row_groups, [&](int rg) { return rg < first || rg >= last; });
    pruned = true;
  }
  if (pruned) {
    num_rows = 0;
    for (int rg : row_groups) num_rows += metadata->RowGroup(rg)->num_rows();
  }
  std::shared_ptr<arrow::Table> raw;
  if (!leaves.empty()) {
    st = pruned ? reader->ReadRowGroups(row_groups, leaves, &raw) : reader->ReadTable(leaves, &raw);
    if (!st.ok()) return FileError(path, st);
    num_rows = raw->num_rows();
  }

  arrow::FieldVector out_fields;
  arrow::ChunkedArrayVector out_columns;
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto& logical = schema.field(fields[i]);
    out_fields.push_back(logical);
    if (std::find(pcols.begin(), pcols.end(), logical->name()) != pcols.end()) {
      auto it = file.partition_values.find(PhysicalName(*logical, mode));
      std::optional<std::string> text;
      if (it != file.partition_values.end()) text = it->second;
      auto scalar = ParsePartitionValue(text, logical->type());
      if (!scalar.ok()) {
        return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                         "file '" + path + "': " + scalar.status().message());
      }
      ARROW_ASSIGN_OR_RAISE(auto arr, arrow::MakeArrayFromScalar(**scalar, num_rows));
      out_columns.push_back(std::make_shared<arrow::ChunkedArray>(arr));
      continue;
    }
    std::shared_ptr<arrow::ChunkedArray> col;
    if (stored_index[i] >= 0 && raw) {
      const auto& stored_field = stored[stored_index[i]];
      int raw_idx = raw->schema()->GetFieldIndex(stored_field->name());
      if (raw_idx >= 0) col = raw->column(raw_idx);
    }
    if (!col) {
      ARROW_ASSIGN_OR_RAISE(auto nulls, arrow::MakeArrayOfNull(logical->type(), num_rows));
      out_columns.push_back(std::make_shared<arrow::ChunkedArray>(nulls));
      continue;
    }
    arrow::ArrayVector chunks;
    for (const auto& chunk : col->chunks()) {
      ARROW_ASSIGN_OR_RAISE(auto data, Conform(chunk->data(), *logical, mode));
      chunks.push_back(arrow::MakeArray(data));
    }
    out_columns.push_back(std::make_shared<arrow::ChunkedArray>(chunks, logical->type()));
  }
  auto table = arrow::Table::Make(arrow::schema(out_fields), out_columns, num_rows);

  if (file.deletion_vector) {
    DeletionVectorDescriptor d;
    d.storage_type = file.deletion_vector->storage_type;
    d.path_or_inline_dv = file.deletion_vector->path_or_inline_dv;
    d.offset = file.deletion_vector->offset;
    d.size_in_bytes = file.deletion_vector->size_in_bytes;
    d.cardinality = file.deletion_vector->cardinality;
    ARROW_ASSIGN_OR_RAISE(auto deleted, LoadDeletionVector(d, fs, snapshot.table_root()));
    arrow::BooleanBuilder keep;
    ARROW_RETURN_NOT_OK(keep.Reserve(num_rows));
    size_t next = 0;
    for (int64_t r = 0; r < num_rows; ++r) {
      bool del = next < deleted.size() && deleted[next] == static_cast<uint64_t>(r);
      if (del) ++next;
      keep.UnsafeAppend(!del);
    }
    ARROW_ASSIGN_OR_RAISE(auto mask, keep.Finish());
    ARROW_ASSIGN_OR_RAISE(auto filtered, cp::Filter(table, mask));
    table = filtered.table();
  }
  return table;
}

arrow::Result<std::shared_ptr<arrow::ChunkedArray>> EvaluateExpression(const cp::Expression& bound,
                                                                       const arrow::Table& table) {
  arrow::ArrayVector chunks;
  arrow::TableBatchReader reader(table);
  std::shared_ptr<arrow::RecordBatch> batch;
  while (true) {
    ARROW_RETURN_NOT_OK(reader.ReadNext(&batch));
    if (!batch) break;
    ARROW_ASSIGN_OR_RAISE(auto d, cp::ExecuteScalarExpression(bound, cp::ExecBatch(*batch)));
    if (d.is_scalar()) {
      ARROW_ASSIGN_OR_RAISE(auto arr, arrow::MakeArrayFromScalar(*d.scalar(), batch->num_rows()));
      chunks.push_back(arr);
    } else {
      chunks.push_back(d.make_array());
    }
  }
  if (chunks.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto empty, arrow::MakeEmptyArray(bound.type()->GetSharedPtr()));
    chunks.push_back(empty);
  }
  return std::make_shared<arrow::ChunkedArray>(chunks, bound.type()->GetSharedPtr());
}

arrow::Result<std::shared_ptr<arrow::ChunkedArray>> EvaluatePredicate(const cp::Expression& bound,
                                                                      const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto values, EvaluateExpression(bound, table));
  // NULL → false, so callers can treat the mask as plain booleans.
  ARROW_ASSIGN_OR_RAISE(
      auto filled,
      cp::CallFunction("coalesce", {arrow::Datum(values), arrow::Datum(arrow::MakeScalar(false))}));
  return filled.chunked_array();
}

arrow::Result<ColumnsToRead> PlanColumns(const Snapshot& snapshot, const std::vector<int>& fields,
                                         const std::optional<cp::Expression>& filter) {
  const auto& schema = snapshot.schema();
  ColumnsToRead out;
  out.needed = fields;
  if (!filter) return out;
  for (const auto& ref : cp::FieldsInExpression(*filter)) {
    if (!ref.name()) continue;
    int idx = schema->GetFieldIndex(*ref.name());
    if (idx >= 0 && std::find(out.needed.begin(), out.needed.end(), idx) == out.needed.end()) {
      out.needed.push_back(idx);
    }
  }
  // The rows read have the `needed` columns in that order: bind the filter to them.
  arrow::FieldVector read_fields;
  for (int i : out.needed) read_fields.push_back(schema->field(i));
  ARROW_ASSIGN_OR_RAISE(out.row_filter, filter->Bind(*arrow::schema(read_fields)));
  return out;
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadFiles(
    arrow::fs::FileSystem& fs, const Snapshot& snapshot, const std::vector<AddFile>& files,
    const std::vector<int>& fields, const std::optional<cp::Expression>& filter) {
  const auto& schema = snapshot.schema();
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanColumns(snapshot, fields, filter));
  const std::vector<int>& needed = plan.needed;
  const std::optional<cp::Expression>& row_filter = plan.row_filter;
  arrow::FieldVector out_fields;
  for (int i : fields) out_fields.push_back(schema->field(i)->RemoveMetadata());
  auto out_schema = arrow::schema(out_fields);

  const size_t n_threads_wanted = CpuThreads();
  std::vector<arrow::Result<std::shared_ptr<arrow::Table>>> results(
      files.size(), arrow::Status::UnknownError("not read"));
  // Files on an object store are opened a few files ahead of the ones being
  // decoded: opening one starts fetching it into the read cache (file_cache.h),
  // so that its bytes arrive while earlier files are decoded.
  const bool remote = fs.type_name() == "s3";
  const size_t ahead = remote ? n_threads_wanted + 4 : 0;
  std::mutex opened_mu;
  std::vector<std::shared_ptr<arrow::io::RandomAccessFile>> opened(files.size());
  auto open_ahead = [&](size_t i) {
    if (i >= files.size()) return;
    auto input =
        OpenDataFile(fs, DataFilePath(snapshot.table_root(), files[i].path), files[i].size);
    if (!input.ok()) return;  // ReadDataFile opens it again and reports the error
    std::lock_guard<std::mutex> lock(opened_mu);
    opened[i] = *input;
  };
  for (size_t i = 0; i < ahead; ++i) open_ahead(i);
  auto work = [&](size_t i) -> arrow::Result<std::shared_ptr<arrow::Table>> {
    FileReadOptions fo;
    fo.row_group_filter = filter;
    fo.use_threads = files.size() < n_threads_wanted;
    if (remote) {
      open_ahead(i + ahead);
      std::lock_guard<std::mutex> lock(opened_mu);
      fo.input = std::move(opened[i]);
    }
    ARROW_ASSIGN_OR_RAISE(auto t, ReadDataFile(fs, snapshot, files[i], needed, fo));
    if (row_filter) {
      ARROW_ASSIGN_OR_RAISE(auto mask, EvaluatePredicate(*row_filter, *t));
      ARROW_ASSIGN_OR_RAISE(auto filtered, cp::Filter(t, mask));
      t = filtered.table();
    }
    arrow::ChunkedArrayVector cols;
    for (size_t c = 0; c < fields.size(); ++c) cols.push_back(t->column(static_cast<int>(c)));
    return arrow::Table::Make(out_schema, cols, t->num_rows());
  };
  // Without the read cache, remote files are read by more threads than there
  // are CPUs: each file's requests wait on the network, and a scan is only
  // network-bound with several files' requests in flight (the cache fetches
  // the files opened ahead on threads of its own).
  const size_t workers = remote && !ReadCacheEnabled() ? ahead : n_threads_wanted;
  ParallelFor(files.size(), workers, [&](size_t i) { results[i] = work(i); });
  std::vector<std::shared_ptr<arrow::Table>> tables;
  for (auto& r : results) {
    ARROW_ASSIGN_OR_RAISE(auto t, std::move(r));
    if (t->num_rows() > 0) tables.push_back(std::move(t));
  }
  if (tables.empty()) return arrow::Table::MakeEmpty(out_schema);
  return arrow::ConcatenateTables(tables);
}

}  // namespace stratalake::delta
