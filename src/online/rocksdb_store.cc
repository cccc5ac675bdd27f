// The embedded online store: RocksDB with a merge operator that keeps the value
// with the larger version prefix, so writes are blind (no read per write) and
// the "newer wins" rule is applied when operands are combined (on read, flush
// and compaction).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <numeric>
#include <shared_mutex>
#include <string>
#include <vector>

#include <arrow/table.h>
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "common/errors.h"
#include "online/codec.h"
#include "stratalake/online.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

// Keeps the operand with the larger prefix; on equal prefixes the later one.
// Associative and idempotent, so RocksDB may combine operands in any grouping.
class NewerWinsOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    if (existing == nullptr ||
        std::memcmp(value.data(), existing->data(), kVersionPrefixSize) >= 0) {
      new_value->assign(value.data(), value.size());
    } else {
      new_value->assign(existing->data(), existing->size());
    }
    return true;
  }
  const char* Name() const override { return "stratalake.NewerWins"; }
};

arrow::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return arrow::Status::OK();
  return arrow::Status::IOError("online store (RocksDB): ", what, ": ", s.ToString());
}

#define RETURN_ROCKS(expr, what) ARROW_RETURN_NOT_OK(FromRocks((expr), (what)))

class RocksDbStore : public OnlineStore {
 public:
  RocksDbStore(std::string path, std::unique_ptr<rocksdb::DB> db, bool read_only)
      : path_(std::move(path)), db_(std::move(db)), read_only_(read_only) {}

  ~RocksDbStore() override {
    // Bulk writes that were never synced are flushed on a clean close.
    if (!read_only_) {
      rocksdb::FlushOptions fo;
      (void)db_->Flush(fo);
    }
    (void)db_->Close();
  }

  arrow::Status Write(std::span<const KeyValue> writes, const WriteOptions& options) override {
    if (read_only_) return ReadOnlyError();
    rocksdb::WriteBatch batch;
    for (const auto& kv : writes) {
      if (kv.value.size() < kVersionPrefixSize) {
        return arrow::Status::Invalid("online store: a value for key of ", kv.key.size(),
                                      " bytes is ", kv.value.size(),
                                      " bytes, shorter than the version prefix");
      }
    }
    if (options.bulk && writes.size() >= kIngestThreshold) return Ingest(writes);
    if (writes.size() >= kSortThreshold) {
      // In key order (stable: two writes of one key keep their order), which
      // finds the writes of one key together: the memtable's skiplist inserts
      // were most of a streamed batch's cost.
      std::vector<uint32_t> order(writes.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](uint32_t a, uint32_t b) { return writes[a].key < writes[b].key; });
      // Of several writes of one key only the one that would win goes in: the
      // highest version prefix, the later of equal ones (as merging all would).
      for (size_t i = 0; i < order.size();) {
        uint32_t winner = order[i];
        size_t j = i + 1;
        for (; j < order.size() && writes[order[j]].key == writes[winner].key; ++j) {
          if (std::memcmp(writes[order[j]].value.data(), writes[winner].value.data(),
                          kVersionPrefixSize) >= 0) {
            winner = order[j];
          }
        }
        RETURN_ROCKS(batch.Merge(writes[winner].key, writes[winner].value), "batch");
        i = j;
      }
    } else {
      for (const auto& kv : writes) {
        RETURN_ROCKS(batch.Merge(kv.key, kv.value), "batch");
      }
    }
    rocksdb::WriteOptions wo;
    wo.disableWAL = options.bulk;
    // Acknowledged means on disk: the WAL is fsynced before Write returns.
    // Concurrent writers share one fsync (RocksDB's write group), so the cost
    // falls as pushes overlap (docs/online-store.md, "Durability").
    wo.sync = !options.bulk && options.sync;
    std::shared_lock<std::shared_mutex> lock(ingest_mu_);  // see Ingest
    return FromRocks(db_->Write(wo, &batch), "write");
  }

  arrow::Status Repair(std::span<const KeyRepair> repairs) override {
    if (read_only_) return ReadOnlyError();
    ARROW_RETURN_NOT_OK(CheckRepairs(repairs));
    // Exclusive: no write lands between reading a key and replacing it.
    std::unique_lock<std::shared_mutex> lock(ingest_mu_);
    rocksdb::WriteBatch batch;
    std::string current;
    for (const auto& r : repairs) {
      rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), r.key, &current);
      if (!st.ok() && !st.IsNotFound()) return FromRocks(st, "read");
      if (st.ok() && current.size() >= kVersionPrefixSize &&
          std::memcmp(current.data(), r.bound.data(), kVersionPrefixSize) > 0) {
        continue;  // written since: newer than every deleted row
      }
      if (r.value.empty()) {
        RETURN_ROCKS(batch.Delete(r.key), "batch");
      } else {
        RETURN_ROCKS(batch.Put(r.key, r.value), "batch");
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Write(wo, &batch), "repair");
  }

  arrow::Status MultiGet(std::span<const std::string_view> keys,
                         std::vector<std::optional<std::string>>* values) override {
    values->assign(keys.size(), std::nullopt);
    if (keys.empty()) return arrow::Status::OK();
    rocksdb::ReadOptions ro;
    if (keys.size() == 1) {  // one entity of one view: Get has less set-up than MultiGet
      rocksdb::PinnableSlice value;
      rocksdb::Status st = db_->Get(ro, db_->DefaultColumnFamily(),
                                    rocksdb::Slice(keys[0].data(), keys[0].size()), &value);
      if (st.ok()) {
        (*values)[0].emplace(value.data(), value.size());
      } else if (!st.IsNotFound()) {
        return FromRocks(st, "read");
      }
      return arrow::Status::OK();
    }
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (auto k : keys) slices.emplace_back(k.data(), k.size());
    std::vector<rocksdb::PinnableSlice> out(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(ro, db_->DefaultColumnFamily(), keys.size(), slices.data(), out.data(),
                  statuses.data());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].ok()) {
        (*values)[i].emplace(out[i].data(), out[i].size());
      } else if (!statuses[i].IsNotFound()) {
        return FromRocks(statuses[i], "read");
      }
    }
    return arrow::Status::OK();
  }

  arrow::Status Sync() override {
    if (read_only_) return arrow::Status::OK();
    rocksdb::FlushOptions fo;
    fo.wait = true;
    ARROW_RETURN_NOT_OK(FromRocks(db_->Flush(fo), "flush"));
    return FromRocks(db_->FlushWAL(/*sync=*/true), "sync");
  }

  arrow::Status DeletePrefix(std::string_view prefix) override {
    if (read_only_) return ReadOnlyError();
    if (prefix.empty()) return arrow::Status::Invalid("online store: empty prefix to delete");
    std::string end(prefix);
    // The smallest key greater than every key starting with `prefix`.
    while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
    rocksdb::WriteOptions wo;
    wo.sync = true;  // rare (a view dropped or rebuilt): durable when it returns
    std::shared_lock<std::shared_mutex> lock(ingest_mu_);  // see Ingest
    if (end.empty()) {
      // The prefix is all 0xff bytes: delete key by key.
      ARROW_ASSIGN_OR_RAISE(auto kvs, Scan(prefix));
      rocksdb::WriteBatch batch;
      for (const auto& kv : kvs) RETURN_ROCKS(batch.Delete(kv.key), "batch");
      return FromRocks(db_->Write(wo, &batch), "delete");
    }
    end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
    return FromRocks(db_->DeleteRange(wo, db_->DefaultColumnFamily(),
                                      rocksdb::Slice(prefix.data(), prefix.size()), end),
                     "delete range");
  }

  arrow::Result<std::vector<KeyValue>> Scan(std::string_view prefix) override {
    std::vector<KeyValue> out;
    ARROW_RETURN_NOT_OK(
        ForEachWithPrefix(prefix, rocksdb::ReadOptions(), [&](rocksdb::Slice k, rocksdb::Slice v) {
          out.push_back({k.ToString(), v.ToString()});
        }));
    return out;
  }

  arrow::Status ScanVersions(std::string_view prefix, const VersionCallback& fn) override {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // one pass over the view: keep the readers' blocks cached
    return ForEachWithPrefix(prefix, ro, [&](rocksdb::Slice k, rocksdb::Slice v) {
      if (v.size() < kVersionPrefixSize) return;  // not a value of ours
      fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), kVersionPrefixSize));
    });
  }

  // fn(key, value) for every key starting with `prefix`, in byte order.
  template <typename Fn>
  arrow::Status ForEachWithPrefix(std::string_view prefix, const rocksdb::ReadOptions& ro,
                                  Fn&& fn) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key();
      if (k.size() < prefix.size() || std::memcmp(k.data(), prefix.data(), prefix.size()) != 0) {
        break;
      }
      fn(k, it->value());
    }
    return FromRocks(it->status(), "scan");
  }

  std::string Describe() const override { return "rocksdb:" + path_; }

 private:
  // Bulk loads bypass the memtable (random inserts into its skiplist dominate
  // otherwise): the batch is sorted, reduced to one value per key by the same
  // newer-wins rule, written as an SST file of merge operands and ingested.
  // Ingested operands are newer than everything stored, so the merge operator
  // still compares them with the stored values.
  //
  // When nothing is stored between the batch's first and last key (the first
  // load of a view, or of a new key range), the file holds plain values
  // instead: a read then returns the value as stored, without the merge
  // operator's copy and without searching the levels below for older values.
  // No write may land in that range between the check and the ingestion, so
  // ingestion holds ingest_mu_ exclusively and every other write shares it.
  static constexpr size_t kIngestThreshold = 4096;
  // Writes of at least this many keys go into the memtable in key order.
  static constexpr size_t kSortThreshold = 64;

  // Whether any key in [first, last] is stored (values, operands; deleted keys
  // are not).
  arrow::Result<bool> AnyKeyIn(const std::string& first, const std::string& last) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    it->Seek(first);
    if (it->Valid()) return it->key().compare(last) <= 0;
    RETURN_ROCKS(it->status(), "bulk load");
    return false;
  }

  arrow::Status Ingest(std::span<const KeyValue> writes) {
    // Sort on (the 16 bytes after the batch's common prefix, then — only for
    // longer keys — the rest, then the position): keys of integer join keys
    // fit, so comparisons are integer compares and equal keys are found
    // without touching their bytes.
    const std::string& first = writes[0].key;
    size_t common = first.size();
    for (const auto& kv : writes) {
      size_t n = std::min(common, kv.key.size());
      if (std::memcmp(kv.key.data(), first.data(), n) == 0) {
        common = n;
        continue;
      }
      size_t l = 0;
      while (kv.key[l] == first[l]) ++l;
      common = l;
    }
    // `version`: the value's (event, created) prefix, byte-comparable, so the
    // newest operand of a key sorts last without touching the values again.
    struct Entry {
      uint64_t head[2];
      uint64_t version[2];
      uint32_t index;
      uint32_t size;
    };
    static_assert(kVersionPrefixSize == 16);
    auto load = [&](const std::string& k, size_t at) {
      uint64_t v = 0;
      for (size_t b = 0; b < 8; ++b, ++at) {
        v = (v << 8) | (at < k.size() ? static_cast<unsigned char>(k[at]) : 0);
      }
      return v;
    };
    const size_t covered = common + 16;
    std::vector<Entry> entries(writes.size());
    for (size_t i = 0; i < writes.size(); ++i) {
      const std::string& k = writes[i].key;
      const std::string& v = writes[i].value;
      entries[i] = {{load(k, common), load(k, common + 8)},
                    {load(v, 0), load(v, 8)},
                    static_cast<uint32_t>(i),
                    static_cast<uint32_t>(k.size())};
    }
    // Keys ordered as byte strings; 0 when equal.
    auto compare_keys = [&](const Entry& a, const Entry& b) -> int {
      if (a.head[0] != b.head[0]) return a.head[0] < b.head[0] ? -1 : 1;
      if (a.head[1] != b.head[1]) return a.head[1] < b.head[1] ? -1 : 1;
      if (a.size <= covered && b.size <= covered) {
        return a.size == b.size ? 0 : (a.size < b.size ? -1 : 1);  // zero padding tied them
      }
      return writes[a.index].key.compare(writes[b.index].key);
    };
    std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
      int c = compare_keys(a, b);
      if (c != 0) return c < 0;
      if (a.version[0] != b.version[0]) return a.version[0] < b.version[0];
      if (a.version[1] != b.version[1]) return a.version[1] < b.version[1];
      return a.index < b.index;
    });
    const std::string& first_key = writes[entries.front().index].key;
    const std::string& last_key = writes[entries.back().index].key;
    ARROW_ASSIGN_OR_RAISE(bool stored, AnyKeyIn(first_key, last_key));
    // One value per key: the newest of the batch (the later one on a tie),
    // which sorted last among the key's entries.
    auto write_file = [&](bool as_values) -> arrow::Result<std::string> {
      static std::atomic<uint64_t> counter{0};
      std::string file = path_ + "/bulk-" + std::to_string(getpid()) + "-" +
                         std::to_string(counter.fetch_add(1)) + ".sst";
      rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), db_->GetOptions());
      RETURN_ROCKS(writer.Open(file), "bulk load");
      // In key order the pairs are read at random places: while one is copied,
      // fetch the pair 2 * kAhead entries on, and the bytes of the one kAhead on
      // (whose pair was fetched kAhead entries ago).
      constexpr size_t kAhead = 8;
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i + 2 * kAhead < entries.size())
          __builtin_prefetch(&writes[entries[i + 2 * kAhead].index]);
        if (i + kAhead < entries.size()) {
          const KeyValue& next = writes[entries[i + kAhead].index];
          __builtin_prefetch(next.key.data());
          for (size_t b = 0; b < next.value.size(); b += 64)
            __builtin_prefetch(next.value.data() + b);
        }
        if (i + 1 < entries.size() && compare_keys(entries[i], entries[i + 1]) == 0) continue;
        const KeyValue& best = writes[entries[i].index];
        rocksdb::Status st =
            as_values ? writer.Put(best.key, best.value) : writer.Merge(best.key, best.value);
        if (!st.ok()) {
          ::unlink(file.c_str());
          return FromRocks(st, "bulk load");
        }
      }
      rocksdb::Status st = writer.Finish();
      if (!st.ok()) {
        ::unlink(file.c_str());
        return FromRocks(st, "bulk load");
      }
      return file;
    };
    ARROW_ASSIGN_OR_RAISE(std::string file, write_file(!stored));
    std::unique_lock<std::shared_mutex> lock(ingest_mu_);
    if (!stored) {
      // Written as values: still nothing stored in the range? (A concurrent
      // write may have landed there while the file was written.)
      auto again = AnyKeyIn(first_key, last_key);
      if (!again.ok() || *again) {
        ::unlink(file.c_str());
        ARROW_RETURN_NOT_OK(again.status());
        ARROW_ASSIGN_OR_RAISE(file, write_file(false));
      }
    }
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;
    rocksdb::Status st = db_->IngestExternalFile({file}, io);
    if (!st.ok()) ::unlink(file.c_str());
    return FromRocks(st, "bulk load");
  }

  arrow::Status IngestSstFiles(const std::vector<std::string>& files) override {
    if (read_only_) return ReadOnlyError();
    // Exclusive, as a bulk load: no write lands while the files go in.
    std::unique_lock<std::shared_mutex> lock(ingest_mu_);
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;  // RocksDB copies when a link is not possible
    return FromRocks(db_->IngestExternalFile(files, io), "ingest SST files");
  }

  arrow::Status ReadOnlyError() const {
    return arrow::Status::Invalid("the online store at ", path_, " was opened read-only");
  }

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  bool read_only_ = false;
  // Writes share it; a bulk load of plain values holds it alone (see Ingest).
  std::shared_mutex ingest_mu_;
};

// The id of the process that holds RocksDB's LOCK file in `path` (a POSIX
// record lock), or 0 when none does or it cannot be told. Must not be called
// while this process holds the lock (closing the descriptor would release it).
pid_t LockHolder(const std::string& path) {
  int fd = ::open((std::filesystem::path(path) / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct flock fl;
  std::memset(&fl, 0, sizeof(fl));
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  pid_t pid = 0;
  if (::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) pid = fl.l_pid;
  ::close(fd);
  return pid;
}

}  // namespace

namespace {

// The store's options (OpenRocksDbStore; OnlineSstWriter writes its files with
// the same table format).
rocksdb::Options StoreOptions() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.merge_operator = std::make_shared<NewerWinsOperator>();
  options.IncreaseParallelism(2);
  options.OptimizeLevelStyleCompaction();
  // Point lookups dominate reads: bloom filters and a block cache.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_cache = rocksdb::NewLRUCache(256 << 20);
  // No row_cache: tried (128 MiB), it made single-key Gets 30% faster but
  // changed the benchmark's answers (not investigated further). RocksDB's row
  // cache has known wrong answers for merge operands over a range tombstone
  // (facebook/rocksdb#5576), and DeletePrefix writes range tombstones.
  // Index and filter blocks are charged to the cache but pinned by their table
  // readers on every level (not only L0; bulk loads land on the last level): a
  // single-key Get finds them without two block-cache lookups of its own.
  table.cache_index_and_filter_blocks = true;
  table.metadata_cache_options.top_level_index_pinning = rocksdb::PinningTier::kAll;
  table.metadata_cache_options.partition_pinning = rocksdb::PinningTier::kAll;
  table.metadata_cache_options.unpartitioned_pinning = rocksdb::PinningTier::kAll;
  // A hash index inside each data block: a point lookup finds its key without
  // the binary search over the block's restart points.
  table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  // Values are hundreds of bytes: a block holds a handful of entries, so a
  // restart point per entry costs little and lets the hash index land on the
  // entry itself (no scan parsing its neighbours).
  table.block_restart_interval = 1;
  // A lookup whose hash bucket another key of the block shares falls back to the
  // binary search. At the default 0.75 keys per bucket that is about half of all
  // lookups (1 - e^-0.75); at 0.25, a fifth, for 4 bytes per ~500-byte value.
  table.data_block_hash_table_util_ratio = 0.25;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  for (auto c : rocksdb::GetSupportedCompressions()) {
    if (c == rocksdb::kLZ4Compression) options.compression = c;
  }
  options.max_write_buffer_number = 4;
  options.write_buffer_size = 64 << 20;
  return options;
}

}  // namespace

arrow::Status OnlineStore::IngestSstFiles(const std::vector<std::string>& /*files*/) {
  return arrow::Status::NotImplemented(
      "the online store ", Describe(),
      " has no SST files to ingest; only the embedded (RocksDB) store does (write the rows "
      "with write_to_online_store instead)");
}

OnlineSstWriter::~OnlineSstWriter() = default;

arrow::Result<std::unique_ptr<OnlineSstWriter>> OnlineSstWriter::Open(
    std::shared_ptr<const registry::RegistryState> state, const std::string& view,
    std::string path) {
  const registry::FeatureView* v = state->defs.FindFeatureView(view);
  if (!v) {
    return UserError(ErrorKind::kFeatureNotFound, "unknown feature view '" + view + "'");
  }
  if (!v->online) {
    return UserError(
        ErrorKind::kFeatureNotFound,
        "feature view '" + view + "' is not served online (online: false in its definition)");
  }
  std::unique_ptr<OnlineSstWriter> w(new OnlineSstWriter());
  w->state_ = std::move(state);
  w->view_ = view;
  w->path_ = std::move(path);
  return w;
}

arrow::Result<int64_t> OnlineSstWriter::Add(const std::shared_ptr<arrow::Table>& data) {
  std::vector<KeyValue> encoded;
  ARROW_RETURN_NOT_OK(EncodeOnlineWrite(*state_, view_, data, &encoded));
  // encoded[0] is the layout, written by IngestOnlineSstFiles once per view.
  writes_.insert(writes_.end(), std::make_move_iterator(encoded.begin() + 1),
                 std::make_move_iterator(encoded.end()));
  return data->num_rows();
}

arrow::Result<int64_t> OnlineSstWriter::Finish() {
  if (writes_.empty()) return 0;
  // Key order; of one key's entries the newest, the later added on a tie (as
  // merging them in order would keep).
  std::vector<uint32_t> order(writes_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return writes_[a].key < writes_[b].key; });
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), StoreOptions());
  RETURN_ROCKS(writer.Open(path_), "SST file " + path_);
  int64_t keys = 0;
  for (size_t i = 0; i < order.size();) {
    uint32_t winner = order[i];
    size_t j = i + 1;
    for (; j < order.size() && writes_[order[j]].key == writes_[winner].key; ++j) {
      if (std::memcmp(writes_[order[j]].value.data(), writes_[winner].value.data(),
                      kVersionPrefixSize) >= 0) {
        winner = order[j];
      }
    }
    rocksdb::Status st = writer.Merge(writes_[winner].key, writes_[winner].value);
    if (!st.ok()) {
      ::unlink(path_.c_str());
      return FromRocks(st, "SST file " + path_);
    }
    ++keys;
    i = j;
  }
  rocksdb::Status st = writer.Finish();
  if (!st.ok()) {
    ::unlink(path_.c_str());
    return FromRocks(st, "SST file " + path_);
  }
  writes_.clear();
  return keys;
}

arrow::Status IngestOnlineSstFiles(const registry::RegistryState& state, OnlineStore* store,
                                   const std::string& view, const std::vector<std::string>& files) {
  const registry::FeatureView* v = state.defs.FindFeatureView(view);
  if (!v) return UserError(ErrorKind::kFeatureNotFound, "unknown feature view '" + view + "'");
  if (!v->online) {
    return UserError(
        ErrorKind::kFeatureNotFound,
        "feature view '" + view + "' is not served online (online: false in its definition)");
  }
  if (!store) return arrow::Status::Invalid("ingest SST files: no online store");
  std::vector<KeyValue> layout{LayoutWrite(*v)};
  ARROW_RETURN_NOT_OK(store->Write(layout, WriteOptions{}));
  if (files.empty()) return arrow::Status::OK();
  return store->IngestSstFiles(files);
}

arrow::Result<std::unique_ptr<OnlineStore>> OpenRocksDbStore(const std::string& path,
                                                             bool read_only) {
  rocksdb::Options options = StoreOptions();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (read_only) {
    options.create_if_missing = false;
    s = rocksdb::DB::OpenForReadOnly(options, path, &raw);
    // RocksDB words a missing store as "does not exist" or as a missing CURRENT file.
    std::error_code ec;
    if (!s.ok() && (s.ToString().find("does not exist") != std::string::npos ||
                    !std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec))) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kObjectNotFound,
                       "the online store at " + path + " has not been written yet; run " +
                           Mention(Term::kMaterialize) + " first",
                       {Term::kMaterialize});
    }
  } else {
    // RocksDB makes the store's own folder but not its parents (with a
    // PostgreSQL registry, nothing else creates the repository's .stratalake/).
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (ec) {
      return MakeError(
          arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
          "cannot create the folder of the online store at " + path + ": " + ec.message());
    }
    s = rocksdb::DB::Open(options, path, &raw);
  }
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      // Closing a descriptor drops every POSIX lock its process holds on the file,
      // so the holder is only looked up when RocksDB says it is another process.
      bool here = s.ToString().find("current process") != std::string::npos;
      pid_t holder = here ? 0 : LockHolder(path);
      std::string who = here         ? "this process (by another handle)"
                        : holder > 0 ? "process " + std::to_string(holder)
                                     : "another process";
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kOnlineStoreLocked,
                       "the embedded online store at " + path + " is open in " + who +
                           " (a running `stratalake serve`, or another program or notebook "
                           "using this repository); it can be open in one process at a time: "
                           "close it there (FeatureStore.close()), or send the writes to the "
                           "running server (POST /materialize, /push)");
    }
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kFileNotFound,
                     "cannot open the online store at " + path + ": " + s.ToString());
  }
  return std::make_unique<RocksDbStore>(path, std::unique_ptr<rocksdb::DB>(raw), read_only);
}

}  // namespace stratalake::online
