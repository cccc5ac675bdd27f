// "Acknowledged means on disk": power cuts at random points of appends, merges,
// deletes and checkpoints (FaultInjectionFileSystem forgets every unsynced byte
// and, at random, unsynced folder entries), and a disk that fills up mid-write.
#include <algorithm>
#include <cerrno>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "common/os_error.h"
#include "storage/fault_injection_fs.h"
#include "storage/log_store.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake::delta {
namespace {

using Model = std::map<int64_t, int64_t>;  // id -> val

std::shared_ptr<arrow::Schema> TableSchema() {
  return arrow::schema({arrow::field("id", arrow::int64()), arrow::field("val", arrow::int64()),
                        arrow::field("p", arrow::int64())});
}

// Rows (id, val, p = id % 3) for `rows`.
std::shared_ptr<arrow::Table> MakeRows(const Model& rows) {
  arrow::Int64Builder ids, vals, ps;
  for (const auto& [id, val] : rows) {
    (void)ids.Append(id);
    (void)vals.Append(val);
    (void)ps.Append(id % 3);
  }
  return arrow::Table::Make(TableSchema(), {ids.Finish().ValueOrDie(), vals.Finish().ValueOrDie(),
                                            ps.Finish().ValueOrDie()});
}

arrow::Result<Model> ToModel(const std::shared_ptr<arrow::Table>& table) {
  ARROW_ASSIGN_OR_RAISE(auto t, table->CombineChunks());
  Model out;
  auto id = t->GetColumnByName("id"), val = t->GetColumnByName("val"), p = t->GetColumnByName("p");
  if (!id || !val || !p)
    return arrow::Status::Invalid("missing columns: ", t->schema()->ToString());
  for (int64_t r = 0; r < t->num_rows(); ++r) {
    ARROW_ASSIGN_OR_RAISE(auto i, id->GetScalar(r));
    ARROW_ASSIGN_OR_RAISE(auto v, val->GetScalar(r));
    ARROW_ASSIGN_OR_RAISE(auto q, p->GetScalar(r));
    int64_t iv = static_cast<const arrow::Int64Scalar&>(*i).value;
    if (static_cast<const arrow::Int64Scalar&>(*q).value != iv % 3) {
      return arrow::Status::Invalid("row ", iv, " has the wrong partition value");
    }
    if (!out.emplace(iv, static_cast<const arrow::Int64Scalar&>(*v).value).second) {
      return arrow::Status::Invalid("id ", iv, " twice");
    }
  }
  return out;
}

std::shared_ptr<FaultInjectionFileSystem> NewDisk() {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  EXPECT_TRUE(fs->CreateDir("/t", true).ok());
  EXPECT_TRUE(fs->SyncDir("/").ok());
  return fs;
}

TableOpenOptions On(const std::shared_ptr<FaultInjectionFileSystem>& fs) {
  TableOpenOptions o;
  o.log_store = std::make_shared<FaultInjectionLogStore>(fs, "/t/table");
  return o;
}

TEST(FaultInjectionFileSystemTest, PowerCutKeepsOnlySyncedBytesAndEntries) {
  auto write = [](FaultInjectionFileSystem& fs, const std::string& path, const std::string& s) {
    auto out = fs.OpenOutputStream(path).ValueOrDie();
    EXPECT_TRUE(out->Write(s.data(), static_cast<int64_t>(s.size())).ok());
    EXPECT_TRUE(out->Close().ok());
  };
  auto read = [](FaultInjectionFileSystem& fs, const std::string& path) -> std::string {
    auto in = fs.OpenInputFile(path);
    if (!in.ok()) return "<absent>";
    auto size = (*in)->GetSize().ValueOrDie();
    return (*in)->ReadAt(0, size).ValueOrDie()->ToString();
  };
  int kept_unsynced_entry = 0;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    auto fs = NewDisk();
    write(*fs, "/t/a", "hello");
    ASSERT_OK(fs->SyncFile("/t/a"));
    ASSERT_OK(fs->SyncDir("/t"));
    write(*fs, "/t/a", "hello world");  // rewritten, never synced
    write(*fs, "/t/b", "bbb");          // synced, but not its folder entry
    ASSERT_OK(fs->SyncFile("/t/b"));
    write(*fs, "/t/c", "ccc");  // nothing synced
    fs->PowerCut(seed);
    EXPECT_EQ(read(*fs, "/t/a"), "hello");
    std::string b = read(*fs, "/t/b"), c = read(*fs, "/t/c");
    EXPECT_TRUE(b == "<absent>" || b == "bbb") << b;
    EXPECT_TRUE(c == "<absent>" || c == "") << c;
    kept_unsynced_entry += b == "bbb";
  }
  // Some seeds keep the unsynced entry, some drop it.
  EXPECT_GT(kept_unsynced_entry, 0);
  EXPECT_LT(kept_unsynced_entry, 16);
}

TEST(FaultInjectionFileSystemTest, PowerIsOffAfterTheArmedNumberOfOps) {
  auto fs = NewDisk();
  fs->FailAfterOps(1);
  ASSERT_OK(fs->CreateDir("/t/x", false));
  auto st = fs->CreateDir("/t/y", false);
  EXPECT_TRUE(st.IsIOError());
  EXPECT_NE(st.message().find("simulated power cut"), std::string::npos) << st.message();
  EXPECT_TRUE(fs->power_off());
  EXPECT_FALSE(fs->GetFileInfo("/t").ok());
  fs->PowerCut(1);
  EXPECT_FALSE(fs->power_off());
  ASSERT_OK(fs->CreateDir("/t/y", false));
}

// One random operation on the table; `model` becomes what it should hold after.
struct Op {
  enum Kind { kAppend, kMerge, kDelete, kCheckpoint } kind;
  Model before, after;
  Model source;       // append / merge rows
  int64_t bound = 0;  // delete: val < bound
};

Op RandomOp(std::mt19937_64& rng, const Model& model, int64_t* next_id, bool created) {
  Op op;
  op.before = model;
  op.after = model;
  int r = created ? static_cast<int>(rng() % 10) : 0;
  if (r < 4) {
    op.kind = Op::kAppend;
    int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) op.source[(*next_id)++] = static_cast<int64_t>(rng() % 1000);
  } else if (r < 7) {
    op.kind = Op::kMerge;
    for (const auto& [id, val] : model) {
      if (rng() % 3 == 0) op.source[id] = val + 1 + static_cast<int64_t>(rng() % 10);
    }
    int n = static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) op.source[(*next_id)++] = static_cast<int64_t>(rng() % 1000);
  } else if (r < 9) {
    op.kind = Op::kDelete;
    op.bound = static_cast<int64_t>(rng() % 300);
  } else {
    op.kind = Op::kCheckpoint;
  }
  switch (op.kind) {
    case Op::kAppend:
    case Op::kMerge:
      for (const auto& [id, val] : op.source) op.after[id] = val;
      break;
    case Op::kDelete:
      for (auto it = op.after.begin(); it != op.after.end();) {
        it = it->second < op.bound ? op.after.erase(it) : std::next(it);
      }
      break;
    case Op::kCheckpoint:
      break;
  }
  return op;
}

// The version the op committed, -1 for none (a checkpoint, a delete that matched nothing).
arrow::Result<int64_t> Apply(const std::shared_ptr<FaultInjectionFileSystem>& fs, const Op& op) {
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::ForPath("", On(fs)));
  CommitResult result;
  switch (op.kind) {
    case Op::kAppend: {
      WriteOptions wo;
      wo.partition_by = {"p"};
      wo.create.properties["delta.checkpointInterval"] = "3";
      ARROW_ASSIGN_OR_RAISE(result, table->Write(MakeRows(op.source), wo));
      break;
    }
    case Op::kMerge: {
      MergeOptions mo;
      mo.on = {"id"};
      mo.when_matched.push_back({});
      mo.when_not_matched.push_back({});
      ARROW_ASSIGN_OR_RAISE(result, table->Merge(MakeRows(op.source), mo));
      break;
    }
    case Op::kDelete: {
      ARROW_ASSIGN_OR_RAISE(result, table->Delete("val < " + std::to_string(op.bound)));
      break;
    }
    case Op::kCheckpoint:
      ARROW_RETURN_NOT_OK(table->Checkpoint().status());
      return -1;
  }
  return result.noop ? -1 : result.version;
}

arrow::Result<Model> ReadVersion(const std::shared_ptr<FaultInjectionFileSystem>& fs,
                                 std::optional<int64_t> version) {
  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::Open("", On(fs)));
  ReadOptions ro;
  ro.version = version;
  ARROW_ASSIGN_OR_RAISE(auto rows, table->Read(ro));
  return ToModel(rows);
}

TEST(DurabilityTest, AcknowledgedCommitsSurvivePowerCutsAtRandomPoints) {
  int cuts = 0, cuts_mid_commit = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto fs = NewDisk();
    std::map<int64_t, Model> acknowledged;  // version -> rows
    Model model;
    int64_t next_id = 0;
    // Three rounds of operations, each ended by a power cut at a random point.
    for (int round = 0; round < 3; ++round) {
      fs->FailAfterOps(static_cast<int64_t>(rng() % 700));
      std::optional<Op> in_flight;
      for (int step = 0; step < 8 && !in_flight; ++step) {
        Op op = RandomOp(rng, model, &next_id, !acknowledged.empty());
        auto version = Apply(fs, op);
        if (!version.ok()) {
          // Only the power cut may fail an operation.
          ASSERT_TRUE(fs->power_off()) << version.status().ToString();
          in_flight = op;
          break;
        }
        model = op.after;
        if (*version >= 0) acknowledged[*version] = model;
      }
      if (!fs->power_off()) fs->FailAfterOps(0);  // cut after the round
      ++cuts;
      fs->PowerCut(rng());

      // Every acknowledged version reads back exactly; the newest version is an
      // acknowledged one, or the one in flight at the cut, complete.
      if (acknowledged.empty()) {
        auto table = DeltaTable::Open("", On(fs));
        if (!table.ok()) {
          EXPECT_TRUE(HasErrorKind(table.status(), ErrorKind::kTableNotFound))
              << table.status().ToString();
          continue;
        }
        ASSERT_TRUE(in_flight.has_value());
        ASSERT_OK_AND_ASSIGN(auto latest, ReadVersion(fs, std::nullopt));
        EXPECT_EQ(latest, in_flight->after);
        acknowledged[0] = latest;
        model = latest;
        ++cuts_mid_commit;
        continue;
      }
      ASSERT_OK_AND_ASSIGN(auto table, DeltaTable::Open("", On(fs)));
      ASSERT_OK_AND_ASSIGN(auto snapshot, table->Latest());
      int64_t last = acknowledged.rbegin()->first;
      for (const auto& [version, rows] : acknowledged) {
        ASSERT_OK_AND_ASSIGN(auto read, ReadVersion(fs, version));
        EXPECT_EQ(read, rows) << "version " << version;
      }
      ASSERT_OK_AND_ASSIGN(auto latest, ReadVersion(fs, std::nullopt));
      if (snapshot->version() == last) {
        EXPECT_EQ(latest, acknowledged[last]);
      } else {
        // Committed, then cut before it was acknowledged.
        ASSERT_EQ(snapshot->version(), last + 1);
        ASSERT_TRUE(in_flight.has_value());
        EXPECT_EQ(latest, in_flight->after);
        acknowledged[last + 1] = latest;
        ++cuts_mid_commit;
      }
      model = latest;
    }
  }
  EXPECT_EQ(cuts, 180);
  EXPECT_GT(cuts_mid_commit, 0);
}

TEST(DurabilityTest, DiskFullNamesTheFileAndTheReasonAndRemovesTheDataFiles) {
  auto fs = NewDisk();
  Model first, second;
  for (int64_t i = 0; i < 30; ++i) first[i] = i;
  for (int64_t i = 1000; i < 21000; ++i) second[i] = i * 7;
  ASSERT_OK_AND_ASSIGN(auto table, DeltaTable::ForPath("", On(fs)));
  WriteOptions wo;
  wo.partition_by = {"p"};
  ASSERT_OK(table->Write(MakeRows(first), wo).status());
  auto files_before = fs->AllFiles();

  fs->SetSpaceLimit(20000);  // less than the second write's files
  auto result = table->Write(MakeRows(second), wo);
  ASSERT_FALSE(result.ok());
  const std::string& msg = result.status().message();
  EXPECT_TRUE(result.status().IsIOError()) << result.status().ToString();
  EXPECT_EQ(msg.rfind("cannot write data file '/t/table/p=", 0), 0u) << msg;
  EXPECT_NE(msg.find(".parquet': No space left on device (ENOSPC); free space on that disk"),
            std::string::npos)
      << msg;
  EXPECT_EQ(ErrnoOf(result.status()), ENOSPC);
  // Nothing new is left behind, and the table is as it was.
  EXPECT_EQ(fs->AllFiles(), files_before);
  ASSERT_OK_AND_ASSIGN(auto rows, ReadVersion(fs, std::nullopt));
  EXPECT_EQ(rows, first);

  // Space again: the same write succeeds.
  fs->SetSpaceLimit(-1);
  ASSERT_OK_AND_ASSIGN(auto ok, table->Write(MakeRows(second), wo));
  EXPECT_EQ(ok.version, 1);
}

TEST(DurabilityTest, DiskFullWhileCommittingLeavesTheTableAsItWas) {
  auto fs = NewDisk();
  Model first, second;
  for (int64_t i = 0; i < 30; ++i) first[i] = i;
  for (int64_t i = 100; i < 130; ++i) second[i] = i;
  ASSERT_OK_AND_ASSIGN(auto table, DeltaTable::ForPath("", On(fs)));
  ASSERT_OK(table->Write(MakeRows(first), {}).status());
  // Find how many bytes the data file of the second write takes, then allow
  // exactly that: the commit file is the write that fails.
  auto probe = NewDisk();
  ASSERT_OK_AND_ASSIGN(auto probe_table, DeltaTable::ForPath("", On(probe)));
  ASSERT_OK(probe_table->Write(MakeRows(second), {}).status());
  ASSERT_OK_AND_ASSIGN(auto snap, probe_table->Latest());
  fs->SetSpaceLimit(snap->files()[0].size);
  auto result = table->Write(MakeRows(second), {});
  ASSERT_FALSE(result.ok());
  const std::string& msg = result.status().message();
  EXPECT_EQ(msg.rfind("cannot write '/t/table/_delta_log/.", 0), 0u) << msg;
  EXPECT_NE(msg.find(".tmp': No space left on device (ENOSPC)"), std::string::npos) << msg;
  fs->SetSpaceLimit(-1);
  ASSERT_OK_AND_ASSIGN(auto latest, table->Latest());
  EXPECT_EQ(latest->version(), 0);
  ASSERT_OK_AND_ASSIGN(auto rows, ReadVersion(fs, std::nullopt));
  EXPECT_EQ(rows, first);
  // No temporary commit file is left in the log.
  for (const auto& f : fs->AllFiles()) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
}

TEST(OsErrorTest, ErrnoTextNamesTheCode) {
  EXPECT_EQ(ErrnoText(ENOSPC), "No space left on device (ENOSPC)");
  EXPECT_EQ(ErrnoText(EDQUOT), "Disk quota exceeded (EDQUOT)");
  auto st = IoErrorOnPath(arrow::Status::IOError("plain"), "cannot write", "/x");
  EXPECT_EQ(st.message(), "cannot write '/x': plain");
  EXPECT_TRUE(IoErrorOnPath(arrow::Status::OK(), "cannot write", "/x").ok());
}

}  // namespace
}  // namespace stratalake::delta
