#include "retrieval/asof_join.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/initialize.h>
#include <arrow/util/byte_size.h>

#include "common/compute_init.h"
#include "common/parallel.h"
#include "retrieval/asof_gather.h"
#include "retrieval/asof_keys.h"
#include "retrieval/asof_runs.h"
#include "retrieval/asof_spill.h"
#include "stratalake/status.h"

namespace stratalake::retrieval {

namespace {

using asof::KeyBytes;
using asof::KeyClass;
using asof::KeyColumnRule;
using asof::kNoRow;
using asof::kNullTime;
using asof::LeftRec;
using asof::LocChunk;
using asof::LocRow;
using asof::MakeLoc;
using asof::RecVector;
using asof::RightRec;

// Per buffered right row, beyond its columns: its record (32 bytes) and, while
// the records are built, its hash and partition.
constexpr int64_t kRowOverhead = 48;
// A spilled partition joined in memory: its file's bytes plus, per row, its
// record and the record's copy while sorting.
constexpr int64_t kLeafRowBytes = 64;
// Spilled partitions are not split below this many bytes (file plus records).
constexpr int64_t kMinPartitionBytes = int64_t{256} << 10;
// Partition splitting stops after this many hash bits (a hot key cannot be split).
constexpr int kMaxPartitionBits = 40;
constexpr uint16_t kNoPart = 0xFFFF;
// In-memory partitions aim at this many feature rows (their records stay in cache while sorted).
constexpr int64_t kRowsPerPartition = int64_t{1} << 16;

// Spill file columns: normalized key, event time and created time (int64
// microseconds; kNullTime for a null created time), then the features.
constexpr int kSpillKey = 0;
constexpr int kSpillTime = 1;
constexpr int kSpillCreated = 2;
constexpr int kSpillFeatures = 3;

int CeilLog2(uint64_t x) {
  int b = 0;
  while (b < 63 && (uint64_t{1} << b) < x) ++b;
  return b;
}

int64_t DefaultBudget() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return int64_t{1} << 30;
  return static_cast<int64_t>(pages) * page_size / 4;
}

std::string ColumnList(const arrow::Schema& schema) {
  std::string out;
  for (int i = 0; i < schema.num_fields(); ++i) {
    if (i > 0) out += ", ";
    out += schema.field(i)->name();
  }
  return out.empty() ? "none" : out;
}

std::string NameList(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

// The index of column `name` in `schema`, or an error naming its role and the
// columns there are.
arrow::Result<int> FindColumn(const arrow::Schema& schema, const std::string& name,
                              const std::string& role, const std::string& where) {
  int idx = schema.GetFieldIndex(name);
  if (idx >= 0) return idx;
  if (schema.GetAllFieldIndices(name).size() > 1) {
    return arrow::Status::Invalid(role, " '", name, "' appears more than once in ", where);
  }
  return arrow::Status::Invalid(role, " '", name, "' is not in ", where,
                                " (columns: ", ColumnList(schema), ")");
}

bool IsUnsigned64(const arrow::DataType& type) {
  const arrow::DataType& t = type.id() == arrow::Type::DICTIONARY
                                 ? *static_cast<const arrow::DictionaryType&>(type).value_type()
                                 : type;
  return t.id() == arrow::Type::UINT64;
}

bool IsSigned(const arrow::DataType& type) {
  const arrow::DataType& t = type.id() == arrow::Type::DICTIONARY
                                 ? *static_cast<const arrow::DictionaryType&>(type).value_type()
                                 : type;
  switch (t.id()) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
      return true;
    default:
      return false;
  }
}

// The bytes a column holds: the referenced ranges of its buffers (a slice counts
// its part only), or all of its buffers where Arrow cannot tell (view types).
int64_t BufferBytes(const arrow::ArrayData& column) {
  auto referenced = arrow::util::ReferencedBufferSize(column);
  return referenced.ok() ? *referenced : arrow::util::TotalBufferSize(column);
}

arrow::Status FirstError(const std::vector<arrow::Status>& statuses) {
  for (const auto& st : statuses) ARROW_RETURN_NOT_OK(st);
  return arrow::Status::OK();
}

// One chunk of the left or right side routed to partitions: normalized keys,
// their hashes, and each row's partition (kNoPart: the row can never match).
struct Routed {
  std::shared_ptr<arrow::ArrayData> keys;
  RecVector<uint64_t> hash;
  RecVector<uint16_t> part;
};

// Routes one chunk; adds its rows per partition to `counts`.
arrow::Result<Routed> Route(const std::vector<std::shared_ptr<arrow::ArrayData>>& key_columns,
                            const arrow::ArrayData& time_column,
                            const std::vector<KeyColumnRule>& rules, int bits, int64_t* counts) {
  Routed r;
  ARROW_ASSIGN_OR_RAISE(r.keys, asof::NormalizeKeys(key_columns, rules));
  const int64_t n = r.keys->length;
  r.hash.resize(n);
  asof::HashKeys(*r.keys, r.hash.data());
  r.part.resize(n);
  const uint8_t* key_valid = r.keys->MayHaveNulls() ? r.keys->GetValues<uint8_t>(0, 0) : nullptr;
  const uint8_t* time_valid =
      time_column.MayHaveNulls() ? time_column.GetValues<uint8_t>(0, 0) : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    if (asof::KeyValid(key_valid, r.keys->offset, i) &&
        asof::KeyValid(time_valid, time_column.offset, i)) {
      auto p = static_cast<uint16_t>(r.hash[i] >> (64 - bits));
      r.part[i] = p;
      ++counts[p];
    } else {
      r.part[i] = kNoPart;
    }
  }
  return r;
}

// The records of every partition in one array: partition p at [start[p], start[p + 1]).
template <typename Rec>
struct Runs {
  RecVector<Rec> recs;
  std::vector<int64_t> start;
  std::span<Rec> Part(size_t p) {
    return {recs.data() + start[p], static_cast<size_t>(start[p + 1] - start[p])};
  }
};

// Routes chunks to 2^bits partitions and lays out one record per routable row,
// partition by partition, in chunk order. Consecutive chunks are handled as
// one task of at least kRowsPerTask rows, so that the per-task partition
// counters stay few however small the batches are.
//   route(c, counts) -> Result<Routed> routes chunk c (see Route);
//   fill(c, routed, cursor, recs) writes chunk c's records at recs[cursor[p]++].
template <typename Rec, typename RouteFn, typename FillFn>
arrow::Status BuildRuns(const std::vector<int64_t>& lengths, int bits, size_t threads,
                        RouteFn&& route, FillFn&& fill, std::vector<Routed>* routed,
                        Runs<Rec>* runs) {
  constexpr int64_t kRowsPerTask = int64_t{1} << 16;
  std::vector<std::pair<size_t, size_t>> tasks;
  for (size_t c = 0; c < lengths.size();) {
    size_t end = c;
    int64_t rows = 0;
    while (end < lengths.size() && (end == c || rows < kRowsPerTask)) rows += lengths[end++];
    tasks.emplace_back(c, end);
    c = end;
  }
  const size_t parts = size_t{1} << bits;
  std::vector<std::vector<int64_t>> cursors(tasks.size(), std::vector<int64_t>(parts, 0));
  routed->resize(lengths.size());
  std::vector<arrow::Status> statuses(tasks.size());
  ParallelFor(tasks.size(), threads, [&](size_t t) {
    for (size_t c = tasks[t].first; c < tasks[t].second && statuses[t].ok(); ++c) {
      auto r = route(c, cursors[t].data());
      if (r.ok()) {
        (*routed)[c] = std::move(r).ValueUnsafe();
      } else {
        statuses[t] = r.status();
      }
    }
  });
  ARROW_RETURN_NOT_OK(FirstError(statuses));
  // Counts per task become each task's first position in every partition.
  runs->start.assign(parts + 1, 0);
  for (const auto& task_counts : cursors) {
    for (size_t p = 0; p < parts; ++p) runs->start[p + 1] += task_counts[p];
  }
  for (size_t p = 0; p < parts; ++p) runs->start[p + 1] += runs->start[p];
  std::vector<int64_t> next(runs->start.begin(), runs->start.end() - 1);
  for (auto& task_counts : cursors) {
    for (size_t p = 0; p < parts; ++p) {
      int64_t n = task_counts[p];
      task_counts[p] = next[p];
      next[p] += n;
    }
  }
  runs->recs.resize(runs->start[parts]);
  ParallelFor(tasks.size(), threads, [&](size_t t) {
    for (size_t c = tasks[t].first; c < tasks[t].second; ++c) {
      fill(c, &(*routed)[c], cursors[t].data(), runs->recs.data());
    }
  });
  return arrow::Status::OK();
}

// Sort buffers, reused by the partitions that one thread joins one after another.
class ScratchPool {
 public:
  struct Scratch {
    RecVector<RightRec> right;
    RecVector<LeftRec> left;
  };
  std::unique_ptr<Scratch> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<Scratch>();
    auto s = std::move(free_.back());
    free_.pop_back();
    return s;
  }
  void Put(std::unique_ptr<Scratch> s) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(s));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Scratch>> free_;
};

// The entity side: normalized keys per batch and records per partition.
struct LeftSide {
  std::vector<std::shared_ptr<arrow::ArrayData>> keys;  // keeps KeyBytes' arrays alive
  std::vector<int64_t> starts;                          // first row of each batch
  KeyBytes bytes;
  Runs<LeftRec> runs;
  int64_t Row(uint64_t loc) const { return starts[LocChunk(loc)] + LocRow(loc); }
};

class AsOfJoinImpl final : public AsOfJoin {
 public:
  AsOfJoinImpl(AsOfSpec spec, std::shared_ptr<arrow::Schema> right_schema, AsOfOptions options)
      : spec_(std::move(spec)),
        options_(std::move(options)),
        right_schema_(std::move(right_schema)) {}

  arrow::Status Init();
  arrow::Status AddRight(const std::shared_ptr<arrow::RecordBatch>& batch) override;
  arrow::Result<std::shared_ptr<arrow::Table>> Finish(const arrow::Table& left) override;
  arrow::Result<std::shared_ptr<arrow::Table>> Match(const arrow::Table& left) override;
  AsOfStats stats() const override { return stats_; }

 private:
  // One buffered right batch: the kept columns (see kept_).
  struct Chunk {
    std::vector<std::shared_ptr<arrow::ArrayData>> columns;
    int64_t length = 0;
  };

  // A spilled partition waiting to be joined.
  struct Leaf {
    std::string path;
    int64_t rows = 0;
    int64_t bytes = 0;
    int shift = 0;  // hash bits fixed by the partitioning so far
    // The hash bits that select this partition: its `prefix_bits` high bits
    // equal `prefix`. (shift may be larger: a hot key's partition is not split.)
    uint64_t prefix = 0;
    int prefix_bits = 0;
    std::span<LeftRec> left;   // the entity rows: in LeftSide::runs, or in `owned`
    RecVector<LeftRec> owned;  // (a moved vector keeps its buffer, so `left` stays valid)
  };

  std::vector<std::shared_ptr<arrow::ArrayData>> KeyColumns(const Chunk& c) const {
    std::vector<std::shared_ptr<arrow::ArrayData>> keys;
    for (int k : key_cols_) keys.push_back(c.columns[k]);
    return keys;
  }
  void NoteBuffered(int64_t bytes) {
    stats_.peak_buffered_bytes = std::max(stats_.peak_buffered_bytes, bytes);
  }

  arrow::Status StartSpilling();
  arrow::Status Flush();
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ToSpillBatch(const Chunk& chunk,
                                                                  RecVector<uint64_t>* hash,
                                                                  RecVector<uint8_t>* keep) const;
  arrow::Result<std::pair<std::shared_ptr<arrow::RecordBatch>, std::vector<int64_t>>> GroupRows(
      const arrow::RecordBatch& batch, const uint64_t* hash, const uint8_t* keep, int shift,
      int bits) const;
  arrow::Status WriteGroup(std::vector<std::unique_ptr<asof::SpillWriter>>* writers,
                           const std::string& prefix, int part,
                           const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
                           const std::vector<std::vector<int64_t>>& bounds);
  arrow::Result<LeftSide> PrepareLeft(const arrow::Table& left, int bits) const;
  arrow::Result<std::shared_ptr<arrow::Table>> FinishInMemory(LeftSide* left, int64_t n,
                                                              bool keep_right);
  arrow::Result<std::vector<Leaf>> CloseRoots(LeftSide* left);
  arrow::Result<std::shared_ptr<arrow::Table>> JoinLeaves(std::vector<Leaf> leaves, LeftSide* left,
                                                          int64_t n, bool keep_files);
  arrow::Status Seal();
  arrow::Status SplitLeaf(Leaf leaf, bool keep_all, std::vector<Leaf>* leaves, std::mutex* mu);
  arrow::Result<std::vector<std::shared_ptr<arrow::ChunkedArray>>> JoinLeaf(
      Leaf* leaf, const LeftSide& left, uint64_t leaf_index, bool keep_file, uint64_t* final_locs);
  void ChooseMemoryBits();
  arrow::Result<std::shared_ptr<arrow::Table>> MakeOutput(
      std::vector<std::shared_ptr<arrow::ChunkedArray>> columns, int64_t n) const;

  AsOfSpec spec_;
  AsOfOptions options_;
  std::shared_ptr<arrow::Schema> right_schema_;
  size_t threads_ = 1;
  int64_t budget_ = 0;

  // Right columns kept from each batch (indices into right_schema_, each once),
  // and where the key, time, created and feature columns are among them.
  std::vector<int> kept_;
  std::vector<int> key_cols_;
  int time_col_ = -1;
  int created_col_ = -1;
  std::vector<int> feature_cols_;
  std::vector<KeyColumnRule> right_rules_;
  bool bytes_layout_ = false;
  int mem_bits_ = 3;

  std::vector<Chunk> buffered_;
  int64_t buffered_bytes_ = 0;

  // Spilling (declared before the writers: the folder goes after its files close).
  std::unique_ptr<asof::SpillDir> spill_dir_;
  std::shared_ptr<arrow::Schema> spill_schema_;
  // Whether a partition's slices from one flush are concatenated before they are
  // written (not for dictionary or nested features: their batches may carry
  // different dictionaries; the IPC stream format takes them batch by batch).
  bool spill_concat_ = true;
  int spill_bits_ = 0;
  std::vector<std::unique_ptr<asof::SpillWriter>> writers_;
  std::atomic<int64_t> next_file_{0};
  std::atomic<int64_t> in_flight_bytes_{0};
  std::atomic<int64_t> spilled_partitions_{0};
  std::atomic<int64_t> spilled_bytes_{0};
  std::atomic<int64_t> peak_in_flight_{0};

  bool spilling_ = false;
  bool finished_ = false;
  // Match was called: the feature side is complete and kept for further calls.
  bool matching_ = false;
  // Spilled partitions after Seal (split to their share of the budget), kept on disk.
  bool sealed_ = false;
  std::vector<Leaf> sealed_leaves_;
  AsOfStats stats_;
};

arrow::Status AsOfJoinImpl::Init() {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  if (spec_.left_keys.empty() && spec_.right_keys.empty()) {
    return arrow::Status::Invalid("as-of join needs at least one key column pair");
  }
  if (spec_.left_keys.size() != spec_.right_keys.size()) {
    return arrow::Status::Invalid("as-of join has ", spec_.left_keys.size(),
                                  " left key column(s) (", NameList(spec_.left_keys), ") but ",
                                  spec_.right_keys.size(), " right key column(s) (",
                                  NameList(spec_.right_keys), "); keys are matched pairwise");
  }
  if (spec_.ttl_us < 0) {
    return arrow::Status::Invalid("ttl_us must be >= 0 (0 = unlimited), got ", spec_.ttl_us);
  }
  if (options_.memory_budget_bytes < 0) {
    return arrow::Status::Invalid("memory_budget_bytes must be >= 0, got ",
                                  options_.memory_budget_bytes);
  }
  if (options_.num_threads < 0) {
    return arrow::Status::Invalid("num_threads must be >= 0, got ", options_.num_threads);
  }
  if (!right_schema_) return arrow::Status::Invalid("as-of join needs the feature schema");
  threads_ = options_.num_threads > 0 ? static_cast<size_t>(options_.num_threads) : CpuThreads();
  budget_ = options_.memory_budget_bytes > 0 ? options_.memory_budget_bytes : DefaultBudget();

  const arrow::Schema& schema = *right_schema_;
  const std::string where = "the feature schema";
  auto keep = [&](int idx) {
    auto it = std::find(kept_.begin(), kept_.end(), idx);
    if (it != kept_.end()) return static_cast<int>(it - kept_.begin());
    kept_.push_back(idx);
    return static_cast<int>(kept_.size() - 1);
  };
  std::vector<std::shared_ptr<arrow::DataType>> key_types;
  for (const auto& name : spec_.right_keys) {
    ARROW_ASSIGN_OR_RAISE(int idx, FindColumn(schema, name, "right key column", where));
    const auto& type = schema.field(idx)->type();
    ARROW_ASSIGN_OR_RAISE(KeyClass cls, asof::KeyClassOf(*type, "right key column '" + name + "'"));
    right_rules_.push_back({cls, false});
    key_types.push_back(type);
    key_cols_.push_back(keep(idx));
  }
  bytes_layout_ = asof::UsesBytesLayout(right_rules_);
  {
    ARROW_ASSIGN_OR_RAISE(int idx,
                          FindColumn(schema, spec_.right_time, "right time column", where));
    const auto& type = schema.field(idx)->type();
    if (!asof::IsTimeType(*type)) {
      return arrow::Status::TypeError("right time column '", spec_.right_time, "' has type ",
                                      type->ToString(), "; it must be a timestamp or a date");
    }
    time_col_ = keep(idx);
  }
  if (!spec_.right_created.empty()) {
    ARROW_ASSIGN_OR_RAISE(int idx,
                          FindColumn(schema, spec_.right_created, "right created column", where));
    const auto& type = schema.field(idx)->type();
    if (!asof::IsTimeType(*type)) {
      return arrow::Status::TypeError("right created column '", spec_.right_created, "' has type ",
                                      type->ToString(), "; it must be a timestamp or a date");
    }
    created_col_ = keep(idx);
  }
  arrow::FieldVector spill_fields = {
      arrow::field("key", asof::NormalizedKeyType(key_types, right_rules_)),
      arrow::field("time", arrow::int64(), false), arrow::field("created", arrow::int64(), false)};
  for (size_t f = 0; f < spec_.features.size(); ++f) {
    const auto& name = spec_.features[f];
    if (std::find(spec_.features.begin(), spec_.features.begin() + f, name) !=
        spec_.features.begin() + f) {
      return arrow::Status::Invalid("feature '", name, "' is listed twice");
    }
    ARROW_ASSIGN_OR_RAISE(int idx, FindColumn(schema, name, "feature column", where));
    feature_cols_.push_back(keep(idx));
    const auto& type = schema.field(idx)->type();
    spill_fields.push_back(arrow::field("f" + std::to_string(f), type));
    if (type->id() == arrow::Type::DICTIONARY || type->num_fields() > 0) spill_concat_ = false;
  }
  spill_schema_ = arrow::schema(std::move(spill_fields));
  return arrow::Status::OK();
}

arrow::Status AsOfJoinImpl::AddRight(const std::shared_ptr<arrow::RecordBatch>& batch) {
  if (finished_) return arrow::Status::Invalid("AddRight called after Finish");
  if (matching_) return arrow::Status::Invalid("AddRight called after Match");
  if (!batch) return arrow::Status::Invalid("AddRight got a null batch");
  std::vector<std::shared_ptr<arrow::ArrayData>> columns;
  for (int idx : kept_) {
    const auto& field = right_schema_->field(idx);
    int at = batch->schema()->GetFieldIndex(field->name());
    if (at < 0) {
      return arrow::Status::Invalid("feature batch has no column '", field->name(),
                                    "' (columns: ", ColumnList(*batch->schema()), ")");
    }
    if (!batch->column(at)->type()->Equals(*field->type())) {
      return arrow::Status::TypeError("feature batch column '", field->name(), "' has type ",
                                      batch->column(at)->type()->ToString(),
                                      " but the feature schema says ", field->type()->ToString());
    }
    columns.push_back(batch->column_data(at));
  }
  const int64_t n = batch->num_rows();
  stats_.right_rows += n;
  for (int64_t offset = 0; offset < n; offset += asof::kMaxChunkRows) {
    Chunk chunk;
    chunk.length = std::min(asof::kMaxChunkRows, n - offset);
    int64_t bytes = chunk.length * kRowOverhead;
    for (const auto& col : columns) {
      chunk.columns.push_back(offset == 0 && chunk.length == n ? col
                                                               : col->Slice(offset, chunk.length));
      bytes += BufferBytes(*chunk.columns.back());
    }
    if (bytes_layout_ && key_cols_.size() > 1) {
      bytes += chunk.length * 8 * static_cast<int64_t>(key_cols_.size() + 1);
    }
    buffered_.push_back(std::move(chunk));
    buffered_bytes_ += bytes;
    NoteBuffered(buffered_bytes_);
  }
  if (!spilling_) {
    if (buffered_bytes_ > budget_) return StartSpilling();
  } else if (buffered_bytes_ >= budget_ / 2) {
    return Flush();
  }
  return arrow::Status::OK();
}

arrow::Status AsOfJoinImpl::StartSpilling() {
  ARROW_ASSIGN_OR_RAISE(spill_dir_, asof::SpillDir::Create(options_.spill_dir));
  spill_bits_ = std::clamp(CeilLog2(8 * threads_), 6, 8);
  writers_.resize(size_t{1} << spill_bits_);
  spilling_ = true;
  return Flush();
}

// A buffered chunk in the spill layout, with each row's key hash and whether
// the row can ever match (non-null key and event time).
arrow::Result<std::shared_ptr<arrow::RecordBatch>> AsOfJoinImpl::ToSpillBatch(
    const Chunk& chunk, RecVector<uint64_t>* hash, RecVector<uint8_t>* keep) const {
  const int64_t n = chunk.length;
  ARROW_ASSIGN_OR_RAISE(auto keys, asof::NormalizeKeys(KeyColumns(chunk), right_rules_));
  hash->resize(n);
  asof::HashKeys(*keys, hash->data());
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> time_buf,
                        asof::AllocateOutput(n * static_cast<int64_t>(sizeof(int64_t))));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> created_buf,
                        asof::AllocateOutput(n * static_cast<int64_t>(sizeof(int64_t))));
  auto* times = reinterpret_cast<int64_t*>(time_buf->mutable_data());
  auto* created = reinterpret_cast<int64_t*>(created_buf->mutable_data());
  asof::TimesToMicros(*chunk.columns[time_col_], times);
  if (created_col_ >= 0) {
    asof::TimesToMicros(*chunk.columns[created_col_], created);
  } else {
    std::fill(created, created + n, kNullTime);
  }
  keep->resize(n);
  const uint8_t* key_valid = keys->MayHaveNulls() ? keys->GetValues<uint8_t>(0, 0) : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    (*keep)[i] = asof::KeyValid(key_valid, keys->offset, i) && times[i] != kNullTime;
  }
  arrow::ArrayVector columns = {arrow::MakeArray(keys),
                                std::make_shared<arrow::Int64Array>(n, std::move(time_buf)),
                                std::make_shared<arrow::Int64Array>(n, std::move(created_buf))};
  for (int f : feature_cols_) columns.push_back(arrow::MakeArray(chunk.columns[f]));
  return arrow::RecordBatch::Make(spill_schema_, n, std::move(columns));
}

// The rows of `batch` with keep[i] (all when null), grouped by the `bits` hash
// bits below the first `shift`, in their order within each group; and where
// each group starts (one more entry than groups).
arrow::Result<std::pair<std::shared_ptr<arrow::RecordBatch>, std::vector<int64_t>>>
AsOfJoinImpl::GroupRows(const arrow::RecordBatch& batch, const uint64_t* hash, const uint8_t* keep,
                        int shift, int bits) const {
  const int64_t n = batch.num_rows();
  const size_t groups = size_t{1} << bits;
  auto group_of = [&](int64_t i) { return static_cast<size_t>((hash[i] << shift) >> (64 - bits)); };
  std::vector<int64_t> bounds(groups + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (keep == nullptr || keep[i]) ++bounds[group_of(i) + 1];
  }
  for (size_t g = 0; g < groups; ++g) bounds[g + 1] += bounds[g];
  const int64_t m = bounds[groups];
  RecVector<uint64_t> locs(m);
  {
    std::vector<int64_t> next(bounds.begin(), bounds.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      if (keep == nullptr || keep[i]) locs[next[group_of(i)]++] = MakeLoc(0, i);
    }
  }
  arrow::ArrayVector columns;
  for (int c = 0; c < batch.num_columns(); ++c) {
    ARROW_ASSIGN_OR_RAISE(auto gathered, asof::Gather(batch.column(c)->type(),
                                                      {batch.column_data(c)}, locs.data(), m, 1));
    if (gathered->num_chunks() != 1) {
      return arrow::Status::CapacityError("spill batch column too large to regroup");
    }
    columns.push_back(gathered->chunk(0));
  }
  return std::make_pair(arrow::RecordBatch::Make(batch.schema(), m, std::move(columns)),
                        std::move(bounds));
}

// Appends group `part` of every batch to the partition's spill file (opened on
// first use).
arrow::Status AsOfJoinImpl::WriteGroup(
    std::vector<std::unique_ptr<asof::SpillWriter>>* writers, const std::string& prefix, int part,
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
    const std::vector<std::vector<int64_t>>& bounds) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> slices;
  for (size_t b = 0; b < batches.size(); ++b) {
    int64_t len = bounds[b][part + 1] - bounds[b][part];
    if (len > 0) slices.push_back(batches[b]->Slice(bounds[b][part], len));
  }
  if (slices.empty()) return arrow::Status::OK();
  auto& writer = (*writers)[part];
  if (!writer) {
    std::string path = spill_dir_->FilePath(prefix + "-" + std::to_string(next_file_++));
    ARROW_ASSIGN_OR_RAISE(writer, asof::SpillWriter::Open(path, spill_schema_));
  }
  if (slices.size() > 1 && spill_concat_) {
    ARROW_ASSIGN_OR_RAISE(auto merged, arrow::ConcatenateRecordBatches(slices));
    return writer->Write(*merged);
  }
  for (const auto& s : slices) ARROW_RETURN_NOT_OK(writer->Write(*s));
  return arrow::Status::OK();
}

arrow::Status AsOfJoinImpl::Flush() {
  std::vector<Chunk> chunks = std::move(buffered_);
  buffered_.clear();
  buffered_bytes_ = 0;
  std::vector<std::shared_ptr<arrow::RecordBatch>> grouped(chunks.size());
  std::vector<std::vector<int64_t>> bounds(chunks.size());
  std::vector<arrow::Status> statuses(chunks.size());
  ParallelFor(chunks.size(), threads_, [&](size_t c) {
    statuses[c] = [&]() -> arrow::Status {
      RecVector<uint64_t> hash;
      RecVector<uint8_t> keep;
      ARROW_ASSIGN_OR_RAISE(auto batch, ToSpillBatch(chunks[c], &hash, &keep));
      ARROW_ASSIGN_OR_RAISE(auto g, GroupRows(*batch, hash.data(), keep.data(), 0, spill_bits_));
      grouped[c] = std::move(g.first);
      bounds[c] = std::move(g.second);
      return arrow::Status::OK();
    }();
    chunks[c] = Chunk();  // release the buffered columns as soon as they are regrouped
  });
  ARROW_RETURN_NOT_OK(FirstError(statuses));
  const size_t parts = writers_.size();
  statuses.assign(parts, arrow::Status::OK());
  ParallelFor(parts, threads_, [&](size_t p) {
    statuses[p] =
        WriteGroup(&writers_, "p" + std::to_string(p), static_cast<int>(p), grouped, bounds);
  });
  return FirstError(statuses);
}

arrow::Result<LeftSide> AsOfJoinImpl::PrepareLeft(const arrow::Table& left, int bits) const {
  const arrow::Schema& schema = *left.schema();
  const std::string where = "the entity table";
  std::vector<int> indices;
  std::vector<KeyColumnRule> rules;
  for (size_t k = 0; k < spec_.left_keys.size(); ++k) {
    const auto& name = spec_.left_keys[k];
    ARROW_ASSIGN_OR_RAISE(int idx, FindColumn(schema, name, "left key column", where));
    const auto& type = schema.field(idx)->type();
    ARROW_ASSIGN_OR_RAISE(KeyClass cls, asof::KeyClassOf(*type, "left key column '" + name + "'"));
    const auto& right_type = right_schema_->field(kept_[key_cols_[k]])->type();
    if (cls != right_rules_[k].key_class) {
      return MakeError(arrow::StatusCode::TypeError, ErrorKind::kSchemaMismatch,
                       "left key column '" + name + "' (" + type->ToString() +
                           ") cannot be compared with right key column '" + spec_.right_keys[k] +
                           "' (" + right_type->ToString() + ")");
    }
    bool reject = (IsSigned(*type) && IsUnsigned64(*right_type)) ||
                  (IsUnsigned64(*type) && IsSigned(*right_type));
    rules.push_back({cls, reject});
    indices.push_back(idx);
  }
  {
    ARROW_ASSIGN_OR_RAISE(int idx, FindColumn(schema, spec_.left_time, "left time column", where));
    const auto& type = schema.field(idx)->type();
    if (!asof::IsTimeType(*type)) {
      return arrow::Status::TypeError("left time column '", spec_.left_time, "' has type ",
                                      type->ToString(), "; it must be a timestamp or a date");
    }
    indices.push_back(idx);
  }
  // Batches with aligned chunks of the key and time columns.
  ARROW_ASSIGN_OR_RAISE(auto selected, left.SelectColumns(indices));
  arrow::TableBatchReader reader(*selected);
  const int64_t n = left.num_rows();
  reader.set_chunksize(std::clamp<int64_t>(n / static_cast<int64_t>(4 * threads_) + 1, 1 << 16,
                                           asof::kMaxChunkRows));
  ARROW_ASSIGN_OR_RAISE(auto batches, reader.ToRecordBatches());
  const size_t nk = spec_.left_keys.size();

  LeftSide side;
  std::vector<int64_t> lengths;
  side.starts.assign(1, 0);
  for (const auto& b : batches) {
    lengths.push_back(b->num_rows());
    side.starts.push_back(side.starts.back() + b->num_rows());
  }
  std::vector<Routed> routed;
  ARROW_RETURN_NOT_OK(BuildRuns<LeftRec>(
      lengths, bits, threads_,
      [&](size_t b, int64_t* counts) {
        std::vector<std::shared_ptr<arrow::ArrayData>> keys;
        for (size_t k = 0; k < nk; ++k)
          keys.push_back(batches[b]->column_data(static_cast<int>(k)));
        return Route(keys, *batches[b]->column_data(static_cast<int>(nk)), rules, bits, counts);
      },
      [&](size_t b, Routed* r, int64_t* cursor, LeftRec* recs) {
        const int64_t m = batches[b]->num_rows();
        RecVector<int64_t> times(m);
        asof::TimesToMicros(*batches[b]->column_data(static_cast<int>(nk)), times.data());
        for (int64_t i = 0; i < m; ++i) {
          uint16_t p = r->part[i];
          if (p == kNoPart) continue;
          recs[cursor[p]++] = LeftRec{r->hash[i], times[i], MakeLoc(b, i)};
        }
        RecVector<uint64_t>().swap(r->hash);
        RecVector<uint16_t>().swap(r->part);
      },
      &routed, &side.runs));
  for (auto& r : routed) {
    if (bytes_layout_) side.bytes.AddChunk(*r.keys);
    side.keys.push_back(std::move(r.keys));
  }
  return side;
}

arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinImpl::MakeOutput(
    std::vector<std::shared_ptr<arrow::ChunkedArray>> columns, int64_t n) const {
  arrow::FieldVector fields;
  for (int f : feature_cols_) fields.push_back(right_schema_->field(kept_[f])->WithNullable(true));
  return arrow::Table::Make(arrow::schema(std::move(fields)), std::move(columns), n);
}

void AsOfJoinImpl::ChooseMemoryBits() {
  // Enough partitions for the threads, and small enough to sort in cache.
  int64_t rows = 0;
  for (const auto& c : buffered_) rows += c.length;
  mem_bits_ =
      std::clamp(std::max(CeilLog2(8 * threads_), CeilLog2(rows / kRowsPerPartition + 1)), 3, 12);
}

arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinImpl::Finish(const arrow::Table& left) {
  if (finished_) return arrow::Status::Invalid("Finish may be called only once");
  if (matching_) return arrow::Status::Invalid("Finish called after Match");
  finished_ = true;
  const int64_t n = left.num_rows();
  if (!spilling_) {
    ChooseMemoryBits();
    ARROW_ASSIGN_OR_RAISE(LeftSide side, PrepareLeft(left, mem_bits_));
    return FinishInMemory(&side, n, /*keep_right=*/false);
  }
  if (!buffered_.empty()) ARROW_RETURN_NOT_OK(Flush());
  ARROW_ASSIGN_OR_RAISE(LeftSide side, PrepareLeft(left, spill_bits_));
  auto result = [&]() -> arrow::Result<std::shared_ptr<arrow::Table>> {
    ARROW_ASSIGN_OR_RAISE(auto roots, CloseRoots(&side));
    std::vector<Leaf> leaves;
    std::mutex mu;
    std::vector<arrow::Status> statuses(roots.size());
    ParallelFor(roots.size(), threads_, [&](size_t i) {
      statuses[i] = SplitLeaf(std::move(roots[i]), /*keep_all=*/false, &leaves, &mu);
    });
    ARROW_RETURN_NOT_OK(FirstError(statuses));
    return JoinLeaves(std::move(leaves), &side, n, /*keep_files=*/false);
  }();
  writers_.clear();
  spill_dir_.reset();
  return result;
}

arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinImpl::Match(const arrow::Table& left) {
  if (finished_) return arrow::Status::Invalid("Match called after Finish");
  matching_ = true;
  const int64_t n = left.num_rows();
  if (!spilling_) {
    ChooseMemoryBits();
    ARROW_ASSIGN_OR_RAISE(LeftSide side, PrepareLeft(left, mem_bits_));
    return FinishInMemory(&side, n, /*keep_right=*/true);
  }
  if (!sealed_) ARROW_RETURN_NOT_OK(Seal());
  ARROW_ASSIGN_OR_RAISE(LeftSide side, PrepareLeft(left, spill_bits_));
  // Each kept partition gets the entity rows of this slice whose hash has its prefix.
  std::vector<Leaf> leaves;
  for (const Leaf& kept : sealed_leaves_) {
    const int extra = kept.prefix_bits - spill_bits_;
    std::span<LeftRec> root = side.runs.Part(static_cast<size_t>(kept.prefix >> extra));
    if (root.empty()) continue;
    Leaf leaf;
    leaf.path = kept.path;
    leaf.rows = kept.rows;
    leaf.bytes = kept.bytes;
    leaf.shift = kept.shift;
    if (extra == 0) {
      leaf.left = root;
    } else {
      for (const LeftRec& r : root) {
        if ((r.hash >> (64 - kept.prefix_bits)) == kept.prefix) leaf.owned.push_back(r);
      }
      if (leaf.owned.empty()) continue;
      leaf.left = std::span<LeftRec>(leaf.owned);
    }
    leaves.push_back(std::move(leaf));
  }
  return JoinLeaves(std::move(leaves), &side, n, /*keep_files=*/true);
}

// Ends the feature side for repeated matching: every partition is closed and
// split to its share of the budget once; the files stay until destruction.
arrow::Status AsOfJoinImpl::Seal() {
  if (!buffered_.empty()) ARROW_RETURN_NOT_OK(Flush());
  ARROW_ASSIGN_OR_RAISE(auto roots, CloseRoots(nullptr));
  std::mutex mu;
  std::vector<arrow::Status> statuses(roots.size());
  ParallelFor(roots.size(), threads_, [&](size_t i) {
    statuses[i] = SplitLeaf(std::move(roots[i]), /*keep_all=*/true, &sealed_leaves_, &mu);
  });
  ARROW_RETURN_NOT_OK(FirstError(statuses));
  sealed_ = true;
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinImpl::FinishInMemory(LeftSide* left, int64_t n,
                                                                          bool keep_right) {
  const int bits = mem_bits_;
  const int parts = 1 << bits;
  stats_.partitions = parts;
  // Route the buffered feature rows and lay out their records by partition.
  std::vector<int64_t> lengths;
  for (const auto& c : buffered_) lengths.push_back(c.length);
  std::vector<Routed> routed;
  Runs<RightRec> right;
  ARROW_RETURN_NOT_OK(BuildRuns<RightRec>(
      lengths, bits, threads_,
      [&](size_t c, int64_t* counts) {
        return Route(KeyColumns(buffered_[c]), *buffered_[c].columns[time_col_], right_rules_, bits,
                     counts);
      },
      [&](size_t c, Routed* r, int64_t* cursor, RightRec* recs) {
        const Chunk& chunk = buffered_[c];
        const int64_t m = chunk.length;
        RecVector<int64_t> times(m);
        asof::TimesToMicros(*chunk.columns[time_col_], times.data());
        RecVector<int64_t> created(m);
        if (created_col_ >= 0) {
          asof::TimesToMicros(*chunk.columns[created_col_], created.data());
        } else {
          std::fill(created.begin(), created.end(), kNullTime);
        }
        for (int64_t i = 0; i < m; ++i) {
          uint16_t p = r->part[i];
          if (p == kNoPart) continue;
          recs[cursor[p]++] = RightRec{r->hash[i], times[i], created[i], MakeLoc(c, i)};
        }
        RecVector<uint64_t>().swap(r->hash);
        RecVector<uint16_t>().swap(r->part);
      },
      &routed, &right));
  KeyBytes right_bytes;
  if (bytes_layout_) {
    for (const auto& r : routed) right_bytes.AddChunk(*r.keys);
  }
  const KeyBytes* rb = bytes_layout_ ? &right_bytes : nullptr;
  const KeyBytes* lb = bytes_layout_ ? &left->bytes : nullptr;

  // Sort and merge each partition.
  RecVector<uint64_t> match(n);
  std::fill(match.begin(), match.end(), kNoRow);
  ScratchPool scratch;
  ParallelFor(static_cast<size_t>(parts), threads_, [&](size_t p) {
    std::span<LeftRec> l = left->runs.Part(p);
    std::span<RightRec> r = right.Part(p);
    if (l.empty() || r.empty()) return;
    auto s = scratch.Get();
    auto sorted_right = asof::SortRun(r, bits, rb, &s->right);
    auto sorted_left = asof::SortRun(l, bits, lb, &s->left);
    asof::MergeAsOf(sorted_left, lb, sorted_right, rb, spec_.ttl_us,
                    [&](uint64_t lloc, uint64_t rloc) { match[left->Row(lloc)] = rloc; });
    scratch.Put(std::move(s));
  });
  right = Runs<RightRec>();
  left->runs = Runs<LeftRec>();

  // Gather the features of the matched rows in entity order.
  std::vector<std::shared_ptr<arrow::ChunkedArray>> columns;
  for (int f : feature_cols_) {
    std::vector<std::shared_ptr<arrow::ArrayData>> chunks;
    for (const auto& c : buffered_) chunks.push_back(c.columns[f]);
    ARROW_ASSIGN_OR_RAISE(auto col, asof::Gather(right_schema_->field(kept_[f])->type(), chunks,
                                                 match.data(), n, threads_));
    columns.push_back(std::move(col));
  }
  if (!keep_right) {
    buffered_.clear();
    buffered_bytes_ = 0;
  }
  return MakeOutput(std::move(columns), n);
}

// Splits a spilled partition that is too large to join in its share of the
// budget into sub-partitions on the next hash bits, recursively; a partition
// whose rows all land in one sub-partition (one hot key) is joined as it is.
// With keep_all (Seal), every sub-partition is kept: entity rows come later.
arrow::Status AsOfJoinImpl::SplitLeaf(Leaf leaf, bool keep_all, std::vector<Leaf>* leaves,
                                      std::mutex* mu) {
  const int64_t target = std::max(budget_ / static_cast<int64_t>(threads_), kMinPartitionBytes);
  const int64_t footprint = leaf.bytes + leaf.rows * kLeafRowBytes;
  if (footprint <= target || leaf.shift >= kMaxPartitionBits) {
    std::lock_guard<std::mutex> lock(*mu);
    leaves->push_back(std::move(leaf));
    return arrow::Status::OK();
  }
  const int bits = std::min(std::clamp(CeilLog2((footprint + target - 1) / target), 1, 8),
                            kMaxPartitionBits - leaf.shift);
  const int shift = leaf.shift;
  std::vector<RecVector<LeftRec>> left(size_t{1} << bits);
  for (const LeftRec& r : leaf.left) left[(r.hash << shift) >> (64 - bits)].push_back(r);
  leaf.left = {};
  RecVector<LeftRec>().swap(leaf.owned);
  std::vector<std::unique_ptr<asof::SpillWriter>> writers(left.size());
  {
    ARROW_ASSIGN_OR_RAISE(auto reader, asof::OpenSpillFile(leaf.path));
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
      if (!batch) break;
      RecVector<uint64_t> hash(batch->num_rows());
      asof::HashKeys(*batch->column_data(kSpillKey), hash.data());
      ARROW_ASSIGN_OR_RAISE(auto g, GroupRows(*batch, hash.data(), nullptr, shift, bits));
      const std::vector<std::shared_ptr<arrow::RecordBatch>> grouped = {g.first};
      const std::vector<std::vector<int64_t>> bounds = {g.second};
      for (size_t q = 0; q < writers.size(); ++q) {
        // Feature rows of a sub-partition without entity rows can never match.
        if (!keep_all && left[q].empty()) continue;
        ARROW_RETURN_NOT_OK(WriteGroup(&writers, "s", static_cast<int>(q), grouped, bounds));
      }
    }
  }
  asof::RemoveSpillFile(leaf.path);
  for (size_t q = 0; q < writers.size(); ++q) {
    if (!writers[q]) continue;
    ARROW_RETURN_NOT_OK(writers[q]->Close());
    ++spilled_partitions_;
    spilled_bytes_ += writers[q]->bytes();
    Leaf child;
    child.path = writers[q]->path();
    child.rows = writers[q]->rows();
    child.bytes = writers[q]->bytes();
    child.shift = shift + bits;
    child.prefix = (leaf.prefix << bits) | q;
    child.prefix_bits = leaf.prefix_bits + bits;
    child.owned = std::move(left[q]);
    child.left = std::span<LeftRec>(child.owned);
    if (child.rows == leaf.rows) child.shift = kMaxPartitionBits;  // not splittable: join it
    ARROW_RETURN_NOT_OK(SplitLeaf(std::move(child), keep_all, leaves, mu));
  }
  return arrow::Status::OK();
}

// Joins one spilled partition: reads it back, sorts and merges, and gathers the
// matched feature values (in merge order; final_locs says where each went).
arrow::Result<std::vector<std::shared_ptr<arrow::ChunkedArray>>> AsOfJoinImpl::JoinLeaf(
    Leaf* leaf, const LeftSide& left, uint64_t leaf_index, bool keep_file, uint64_t* final_locs) {
  ARROW_ASSIGN_OR_RAISE(auto batches, asof::ReadSpillFile(leaf->path));
  if (!keep_file) asof::RemoveSpillFile(leaf->path);
  KeyBytes right_bytes;
  RecVector<RightRec> right;
  right.reserve(leaf->rows);
  for (size_t b = 0; b < batches.size(); ++b) {
    const auto& batch = *batches[b];
    const int64_t m = batch.num_rows();
    RecVector<uint64_t> hash(m);
    asof::HashKeys(*batch.column_data(kSpillKey), hash.data());
    if (bytes_layout_) right_bytes.AddChunk(*batch.column_data(kSpillKey));
    const int64_t* times = batch.column_data(kSpillTime)->GetValues<int64_t>(1);
    const int64_t* created = batch.column_data(kSpillCreated)->GetValues<int64_t>(1);
    for (int64_t i = 0; i < m; ++i) {
      right.push_back(RightRec{hash[i], times[i], created[i], MakeLoc(b, i)});
    }
  }
  const KeyBytes* rb = bytes_layout_ ? &right_bytes : nullptr;
  const KeyBytes* lb = bytes_layout_ ? &left.bytes : nullptr;
  RecVector<uint64_t> right_locs;
  right_locs.reserve(leaf->left.size());
  {
    RecVector<RightRec> right_scratch;
    RecVector<LeftRec> left_scratch;
    auto sorted_right = asof::SortRun(std::span<RightRec>(right), leaf->shift, rb, &right_scratch);
    auto sorted_left = asof::SortRun(leaf->left, leaf->shift, lb, &left_scratch);
    asof::MergeAsOf(sorted_left, lb, sorted_right, rb, spec_.ttl_us,
                    [&](uint64_t lloc, uint64_t rloc) {
                      final_locs[left.Row(lloc)] = MakeLoc(leaf_index, right_locs.size());
                      right_locs.push_back(rloc);
                    });
  }
  RecVector<RightRec>().swap(right);
  leaf->left = {};
  RecVector<LeftRec>().swap(leaf->owned);
  std::vector<std::shared_ptr<arrow::ChunkedArray>> out;
  for (size_t f = 0; f < feature_cols_.size(); ++f) {
    std::vector<std::shared_ptr<arrow::ArrayData>> chunks;
    for (const auto& b : batches) chunks.push_back(b->column_data(kSpillFeatures + f));
    ARROW_ASSIGN_OR_RAISE(
        auto col,
        asof::Gather(spill_schema_->field(kSpillFeatures + static_cast<int>(f))->type(), chunks,
                     right_locs.data(), static_cast<int64_t>(right_locs.size()), 1));
    out.push_back(std::move(col));
  }
  return out;
}

// Closes the level-0 partitions. With `left`, those without entity rows are
// dropped and the others get their entity rows; without, all are kept.
arrow::Result<std::vector<AsOfJoinImpl::Leaf>> AsOfJoinImpl::CloseRoots(LeftSide* left) {
  std::vector<Leaf> roots;
  for (size_t p = 0; p < writers_.size(); ++p) {
    if (!writers_[p]) continue;
    ARROW_RETURN_NOT_OK(writers_[p]->Close());
    ++spilled_partitions_;
    spilled_bytes_ += writers_[p]->bytes();
    if (left != nullptr && left->runs.Part(p).empty()) {
      asof::RemoveSpillFile(writers_[p]->path());
      continue;
    }
    Leaf leaf;
    leaf.path = writers_[p]->path();
    leaf.rows = writers_[p]->rows();
    leaf.bytes = writers_[p]->bytes();
    leaf.shift = spill_bits_;
    leaf.prefix = p;
    leaf.prefix_bits = spill_bits_;
    if (left != nullptr) leaf.left = left->runs.Part(p);
    roots.push_back(std::move(leaf));
  }
  writers_.clear();
  return roots;
}

// Joins spilled partitions (with their entity rows) num_threads at a time and
// gathers the results in entity order.
arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinImpl::JoinLeaves(std::vector<Leaf> leaves,
                                                                      LeftSide* left, int64_t n,
                                                                      bool keep_files) {
  std::vector<arrow::Status> statuses;
  // Large partitions first, so that the last ones to finish are small.
  std::sort(leaves.begin(), leaves.end(),
            [](const Leaf& a, const Leaf& b) { return a.bytes > b.bytes; });

  RecVector<uint64_t> final_locs(n);
  std::fill(final_locs.begin(), final_locs.end(), kNoRow);
  std::vector<std::vector<std::shared_ptr<arrow::ChunkedArray>>> results(leaves.size());
  statuses.assign(leaves.size(), arrow::Status::OK());
  ParallelFor(leaves.size(), threads_, [&](size_t i) {
    const int64_t footprint = leaves[i].bytes + leaves[i].rows * kLeafRowBytes;
    int64_t now = in_flight_bytes_ += footprint;
    int64_t peak = peak_in_flight_.load();
    while (now > peak && !peak_in_flight_.compare_exchange_weak(peak, now)) {
    }
    auto r = JoinLeaf(&leaves[i], *left, i, keep_files, final_locs.data());
    in_flight_bytes_ -= footprint;
    if (r.ok()) {
      results[i] = std::move(r).ValueUnsafe();
    } else {
      statuses[i] = r.status();
    }
  });
  ARROW_RETURN_NOT_OK(FirstError(statuses));
  stats_.partitions = static_cast<int64_t>(leaves.size());
  stats_.spilled_partitions = spilled_partitions_;
  stats_.spilled_bytes = spilled_bytes_;
  NoteBuffered(peak_in_flight_);

  // Put the per-partition results in entity order, one feature at a time.
  std::vector<std::shared_ptr<arrow::ChunkedArray>> columns;
  for (size_t f = 0; f < feature_cols_.size(); ++f) {
    const auto& type = spill_schema_->field(kSpillFeatures + static_cast<int>(f))->type();
    std::vector<std::shared_ptr<arrow::ArrayData>> chunks;
    bool one_chunk_each = true;
    for (const auto& r : results) one_chunk_each = one_chunk_each && r[f]->num_chunks() == 1;
    RecVector<uint64_t> translated;
    const uint64_t* locs = final_locs.data();
    if (one_chunk_each) {
      for (const auto& r : results) chunks.push_back(r[f]->chunk(0)->data());
    } else {
      // A partition's result came in several chunks: renumber (partition, row)
      // as (chunk, row within chunk).
      std::vector<std::vector<int64_t>> chunk_starts(results.size());
      std::vector<size_t> first_chunk(results.size());
      for (size_t l = 0; l < results.size(); ++l) {
        first_chunk[l] = chunks.size();
        int64_t start = 0;
        for (const auto& c : results[l][f]->chunks()) {
          chunk_starts[l].push_back(start);
          start += c->length();
          chunks.push_back(c->data());
        }
      }
      translated.assign(final_locs.begin(), final_locs.end());
      for (auto& loc : translated) {
        if (loc == kNoRow) continue;
        const auto& starts = chunk_starts[LocChunk(loc)];
        size_t j = std::upper_bound(starts.begin(), starts.end(), LocRow(loc)) - starts.begin() - 1;
        loc = MakeLoc(first_chunk[LocChunk(loc)] + j, LocRow(loc) - starts[j]);
      }
      locs = translated.data();
    }
    ARROW_ASSIGN_OR_RAISE(auto col, asof::Gather(type, chunks, locs, n, threads_));
    columns.push_back(std::move(col));
    for (auto& r : results) r[f].reset();
  }
  return MakeOutput(std::move(columns), n);
}

}  // namespace

arrow::Result<std::unique_ptr<AsOfJoin>> AsOfJoin::Make(AsOfSpec spec,
                                                        std::shared_ptr<arrow::Schema> right_schema,
                                                        AsOfOptions options) {
  auto join =
      std::make_unique<AsOfJoinImpl>(std::move(spec), std::move(right_schema), std::move(options));
  ARROW_RETURN_NOT_OK(join->Init());
  return join;
}

int64_t DefaultMemoryBudget() { return DefaultBudget(); }

arrow::Result<std::shared_ptr<arrow::Table>> AsOfJoinTables(const arrow::Table& left,
                                                            const arrow::Table& right,
                                                            const AsOfSpec& spec,
                                                            const AsOfOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto join, AsOfJoin::Make(spec, right.schema(), options));
  arrow::TableBatchReader reader(right);
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader.ReadNext(&batch));
    if (!batch) break;
    ARROW_RETURN_NOT_OK(join->AddRight(batch));
  }
  return join->Finish(left);
}

}  // namespace stratalake::retrieval
