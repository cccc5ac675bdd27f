#include "storage/writer.h"

#include <cstdio>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/row/grouper.h>
#include <arrow/io/interfaces.h>
#include <arrow/util/future.h>
#include <parquet/arrow/writer.h>
#include <parquet/properties.h>

#include "common/os_error.h"
#include "common/parallel.h"
#include "storage/log_store.h"
#include "storage/object_store.h"
#include "storage/s3_client.h"
#include "storage/schema.h"
#include "storage/stats.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

// A data file to write: on S3 our own multipart upload (s3_client.h: parts
// uploaded concurrently while the file is encoded), unless
// STRATALAKE_S3_DATA_WRITES=arrow asks for Arrow's S3 client (to compare them).
arrow::Result<std::shared_ptr<arrow::io::OutputStream>> OpenForWrite(arrow::fs::FileSystem& fs,
                                                                     const std::string& path) {
  static const bool arrow_writes = [] {
    const char* v = std::getenv("STRATALAKE_S3_DATA_WRITES");
    return v != nullptr && std::string(v) == "arrow";
  }();
  if (fs.type_name() == "s3" && !arrow_writes) {
    ARROW_ASSIGN_OR_RAISE(S3Connection conn, SignedS3Connection(fs));
    return S3UploadStream::Open(std::move(conn), path);
  }
  return fs.OpenOutputStream(path);
}

namespace cp = arrow::compute;

struct PendingFile {
  std::shared_ptr<arrow::Table> rows;  // data columns only
  PartitionValues partition_values;
  std::string dir;  // "a=1/b=x/" or ""
};

arrow::Result<parquet::Compression::type> Codec(const std::string& name, std::string* ext) {
  if (name == "snappy") {
    *ext = ".snappy";
    return parquet::Compression::SNAPPY;
  }
  if (name == "zstd") {
    *ext = ".zstd";
    return parquet::Compression::ZSTD;
  }
  if (name == "gzip") {
    *ext = ".gz";
    return parquet::Compression::GZIP;
  }
  if (name == "lz4") {
    *ext = ".lz4";
    return parquet::Compression::LZ4;
  }
  if (name == "none" || name == "uncompressed") {
    *ext = "";
    return parquet::Compression::UNCOMPRESSED;
  }
  return arrow::Status::Invalid("unknown compression '", name,
                                "'; use snappy, zstd, gzip, lz4 or none");
}

arrow::Status SplitByPartition(const std::shared_ptr<arrow::Table>& data,
                               const DataFileOptions& options, std::vector<PendingFile>* out) {
  const auto& pcols = options.partition_columns;
  std::vector<int> data_idx;
  arrow::FieldVector data_fields;
  for (int i = 0; i < data->num_columns(); ++i) {
    if (std::find(pcols.begin(), pcols.end(), data->field(i)->name()) == pcols.end()) {
      data_idx.push_back(i);
      data_fields.push_back(data->field(i));
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto data_only, data->SelectColumns(data_idx));
  if (pcols.empty()) {
    out->push_back({data_only, {}, ""});
    return arrow::Status::OK();
  }
  ARROW_ASSIGN_OR_RAISE(auto combined, data->CombineChunks());
  std::vector<arrow::TypeHolder> key_types;
  std::vector<arrow::Datum> keys;
  for (const auto& c : pcols) {
    auto col = combined->GetColumnByName(c);
    key_types.emplace_back(col->type());
    keys.emplace_back(col->chunk(0));
  }
  ARROW_ASSIGN_OR_RAISE(auto grouper, cp::Grouper::Make(key_types));
  ARROW_ASSIGN_OR_RAISE(auto ids,
                        grouper->Consume(cp::ExecSpan(cp::ExecBatch(keys, combined->num_rows()))));
  ARROW_ASSIGN_OR_RAISE(auto uniques, grouper->GetUniques());
  ARROW_ASSIGN_OR_RAISE(
      auto groupings,
      cp::Grouper::MakeGroupings(*ids.array_as<arrow::UInt32Array>(), grouper->num_groups()));
  ARROW_ASSIGN_OR_RAISE(auto data_combined, data_only->CombineChunks());
  for (uint32_t g = 0; g < grouper->num_groups(); ++g) {
    auto indices = groupings->value_slice(g);
    ARROW_ASSIGN_OR_RAISE(auto taken, cp::Take(data_combined, indices));
    PendingFile pf;
    pf.rows = taken.table();
    for (size_t k = 0; k < pcols.size(); ++k) {
      ARROW_ASSIGN_OR_RAISE(auto scalar, uniques.values[k].make_array()->GetScalar(g));
      ARROW_ASSIGN_OR_RAISE(auto text, FormatPartitionValue(*scalar));
      pf.partition_values[pcols[k]] = text;
      pf.dir += EscapePartitionComponent(pcols[k]) + "=" +
                (text ? (text->empty() ? std::string("__HIVE_DEFAULT_PARTITION__")
                                       : EscapePartitionComponent(*text))
                      : std::string("__HIVE_DEFAULT_PARTITION__")) +
                "/";
    }
    out->push_back(std::move(pf));
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::vector<AddFile>> WriteDataFiles(const LogStore& store,
                                                   const std::shared_ptr<arrow::Table>& data,
                                                   const DataFileOptions& options) {
  arrow::fs::FileSystem& fs = *store.fs();
  const std::string& root = store.root();
  std::vector<AddFile> adds;
  if (data->num_rows() == 0) return adds;
  std::string ext;
  ARROW_ASSIGN_OR_RAISE(auto codec, Codec(options.compression, &ext));
  std::vector<PendingFile> groups;
  ARROW_RETURN_NOT_OK(SplitByPartition(data, options, &groups));
  // Cut each partition's rows into files of at most max_rows_per_file rows.
  std::vector<PendingFile> files;
  int64_t max_rows = std::max<int64_t>(1, options.max_rows_per_file);
  for (auto& g : groups) {
    for (int64_t off = 0; off < g.rows->num_rows(); off += max_rows) {
      files.push_back({g.rows->Slice(off, max_rows), g.partition_values, g.dir});
    }
  }
  // Create the table folder and every partition folder once, before the parallel writes.
  std::set<std::string> dirs;
  for (const auto& f : files) dirs.insert(f.dir);
  for (const auto& d : dirs) {
    std::string path = root + (d.empty() ? "" : "/" + d);
    if (!path.empty() && path.back() == '/') path.pop_back();
    ARROW_RETURN_NOT_OK(IoErrorOnPath(EnsureFolder(fs, path), "cannot create folder", path));
  }
  // Every folder that may have got a new entry: the partition folders, their
  // parents, the root. Synced once each after the files, before the commit.
  std::set<std::string> touched = {root};
  for (const auto& d : dirs) {
    for (size_t pos = d.find('/'); pos != std::string::npos; pos = d.find('/', pos + 1)) {
      touched.insert(root + "/" + d.substr(0, pos));
    }
  }
  auto props = parquet::WriterProperties::Builder()
                   .compression(codec)
                   // 1Mi-row row groups: 128Ki-row groups cost 3x the CPU and 20% more
                   // bytes (measured, docs/benchmarks.md). The page index (~12% CPU) lets
                   // DataFusion and Spark skip pages of our files.
                   ->max_row_group_length(1 << 20)
                   ->enable_write_page_index()
                   ->build();
  auto arrow_props = parquet::ArrowWriterProperties::Builder().build();
  std::vector<arrow::Result<AddFile>> results(files.size(),
                                              arrow::Status::UnknownError("not read"));
  std::vector<std::string> created(files.size());  // full paths, once opening was tried
  // On an object store a file's last part is uploaded while its thread goes on
  // to encode the next file (CloseAsync; awaited below, before the commit): a
  // file's uploads wait on the network, and a write is only network-bound
  // with several files' uploads in flight.
  const bool remote = fs.type_name() == "s3";
  std::vector<arrow::Future<>> closing(files.size());
  auto write_file = [&](size_t i, const std::string& path,
                        const PendingFile& f) -> arrow::Result<int64_t> {
    ARROW_ASSIGN_OR_RAISE(auto out, OpenForWrite(fs, path));
    auto st = parquet::arrow::WriteTable(*f.rows, arrow::default_memory_pool(), out, 1 << 20, props,
                                         arrow_props);
    if (!st.ok()) {
      (void)out->Abort();  // on an object store: the object is not created
      return st;
    }
    ARROW_ASSIGN_OR_RAISE(int64_t size, out->Tell());
    if (remote) {
      closing[i] = out->CloseAsync().Then([out] {});  // keeps the stream until it is done
      return size;
    }
    ARROW_RETURN_NOT_OK(out->Close());
    // In the writer threads: the files' fsyncs overlap.
    ARROW_RETURN_NOT_OK(store.SyncFile(path));
    return size;
  };
  auto work = [&](size_t i) -> arrow::Result<AddFile> {
    const auto& f = files[i];
    char name[64];
    std::snprintf(name, sizeof name, "part-%05zu-", i);
    std::string rel = f.dir + name + NewUuid() + "-c000" + ext + ".parquet";
    created[i] = root + "/" + rel;
    auto size = write_file(i, created[i], f);
    if (!size.ok()) return IoErrorOnPath(size.status(), "cannot write data file", created[i]);
    AddFile add;
    add.path = UrlEncodePath(rel);
    add.partition_values = f.partition_values;
    add.size = *size;
    add.modification_time = options.now_ms;
    add.data_change = options.data_change;
    ARROW_ASSIGN_OR_RAISE(add.stats, CollectStats(*f.rows, options.num_indexed_cols));
    return add;
  };
  ParallelFor(files.size(), CpuThreads(), [&](size_t i) { results[i] = work(i); });
  // The uploads still in flight (object stores): each must have completed.
  for (size_t i = 0; i < closing.size(); ++i) {
    if (!closing[i].is_valid()) continue;
    arrow::Status st = closing[i].status();
    if (!st.ok() && results[i].ok()) {
      results[i] = IoErrorOnPath(st, "cannot write data file", created[i]);
    }
  }
  arrow::Status failed;
  for (const auto& r : results) {
    if (!r.ok()) {
      failed = r.status();
      break;
    }
  }
  if (failed.ok()) {
    // In parallel: concurrent fsyncs can share the filesystem's journal commits.
    std::vector<std::string> to_sync(touched.begin(), touched.end());
    std::vector<arrow::Status> synced(to_sync.size());
    ParallelFor(to_sync.size(), CpuThreads(),
                [&](size_t i) { synced[i] = store.SyncDir(to_sync[i]); });
    for (const auto& st : synced) {
      if (!st.ok()) {
        failed = st;
        break;
      }
    }
  }
  if (!failed.ok()) {
    // Never committed: remove them all, the partly written one included (best
    // effort; what is left is never part of the table and VACUUM removes it).
    for (const auto& path : created) {
      if (!path.empty()) (void)fs.DeleteFile(path);
    }
    return failed;
  }
  for (auto& r : results) adds.push_back(std::move(r).ValueOrDie());
  return adds;
}

}  // namespace stratalake::delta
