// Table maintenance: VACUUM (files no version within the retention needs),
// OPTIMIZE (bin-packing small files, Z-ordering) and explicit checkpoints and
// log cleanup.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/filesystem/api.h>

#include "storage/checkpoint.h"
#include "storage/deletion_vector.h"
#include "storage/scan.h"
#include "storage/snapshot.h"
#include "storage/table_internal.h"
#include "storage/table_read.h"
#include "storage/transaction.h"
#include "storage/writer.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

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
  if (options.dry_run || result.files.empty()) return result;
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  // As Delta (and delta-rs) record a vacuum: a "VACUUM START" commit before any
  // file is deleted and a "VACUUM END" commit after, neither with actions, so the
  // log shows who deleted files and how many (a reader of an old version that
  // fails on a missing file can find out why).
  Transaction start(*impl.store, snapshot, impl.clock);
  ARROW_ASSIGN_OR_RAISE(
      int64_t start_version,
      start.Commit("VACUUM START",
                   {{"retentionCheckEnabled", options.force ? "false" : "true"},
                    {"specifiedRetentionMillis", std::to_string(retention)},
                    {"defaultRetentionMillis", std::to_string(table_retention)}},
                   {{"numFilesToDelete", static_cast<int64_t>(result.files.size())},
                    {"sizeOfDataToDelete", result.bytes}}));
  for (const auto& f : result.files) ARROW_RETURN_NOT_OK(impl.fs->DeleteFile(f));
  ARROW_ASSIGN_OR_RAISE(auto after_start, AtVersion(start_version));
  Transaction end(*impl.store, after_start, impl.clock);
  ARROW_RETURN_NOT_OK(end.Commit("VACUUM END", {{"status", "COMPLETED"}},
                                 {{"numDeletedFiles", static_cast<int64_t>(result.files.size())},
                                  {"numVacuumedDirectories", 0}})
                          .status());
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

}  // namespace stratalake::delta
