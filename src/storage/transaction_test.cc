// Optimistic commits: WriteSerializable conflict rules between concurrent
// transactions, and crash safety at the transaction level without killing a
// process (FaultInjectionFileSystem: power cuts at chosen points, in memory).
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "storage/fault_injection_fs.h"
#include "storage/log_store.h"
#include "storage/snapshot.h"
#include "storage/table_test_util.h"
#include "storage/transaction.h"
#include "storage/writer.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake::delta {
namespace {

using stratalake::testing::SortedRows;
using table_test::Rows;

[[maybe_unused]] auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new stratalake::testing::ComputeEnvironment);

class TransactionTest : public table_test::TableTest {};

TEST_F(TransactionTest, ConcurrentBlindAppendsBothCommit) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  LocalLogStore store(table_->filesystem(), table_->root());
  // Two transactions read version 0; the second loses the race for version 1.
  Transaction t1(store, snap, clock_), t2(store, snap, clock_);
  AddFile a;
  a.path = "a.parquet";
  a.size = 1;
  AddFile b = a;
  b.path = "b.parquet";
  t1.Add(a);
  t2.Add(b);
  ASSERT_OK_AND_ASSIGN(auto v1, t1.Commit("WRITE", {}, {}));
  ASSERT_OK_AND_ASSIGN(auto v2, t2.Commit("WRITE", {}, {}));
  EXPECT_EQ(v1, 1);
  EXPECT_EQ(v2, 2);
}

TEST_F(TransactionTest, ConflictingDeletesFailWithConcurrentDeleteDelete) {
  Append(Rows("[1, 2]", R"(["a", "b"])", "[1, 2]", R"(["x", "x"])"));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  LocalLogStore store(table_->filesystem(), table_->root());
  Transaction t1(store, snap, clock_), t2(store, snap, clock_);
  for (auto* t : {&t1, &t2}) {
    t->ReadWholeTable();
    t->ReadFiles(snap->files());
    t->Remove(snap->files()[0], true);
  }
  ASSERT_OK(t1.Commit("DELETE", {}, {}).status());
  auto r = t2.Commit("DELETE", {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorKind(r.status(), ErrorKind::kConcurrentDeleteDelete));
  EXPECT_TRUE(IsCommitConflict(r.status()));
}

TEST_F(TransactionTest, ReadAfterConcurrentNonBlindAppendConflicts) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  LocalLogStore store(table_->filesystem(), table_->root());
  // A winner that read the table and added a file matching our read predicate.
  Transaction winner(store, snap, clock_), loser(store, snap, clock_);
  AddFile f;
  f.path = "w.parquet";
  f.size = 1;
  f.stats = R"({"numRecords":1,"minValues":{"id":5},"maxValues":{"id":5},"nullCount":{"id":0}})";
  winner.ReadWholeTable();
  winner.Add(f);
  ASSERT_OK(winner.Commit("MERGE", {}, {}).status());
  auto pred =
      arrow::compute::greater(arrow::compute::field_ref("id"), arrow::compute::literal(int64_t{3}))
          .Bind(*snap->schema())
          .ValueOrDie();
  loser.ReadPredicate(pred);
  AddFile g = f;
  g.path = "l.parquet";
  loser.Add(g);
  auto r = loser.Commit("UPDATE", {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorKind(r.status(), ErrorKind::kConcurrentAppend));
  // A predicate the winner's file cannot match (id < 3) does not conflict.
  ASSERT_OK_AND_ASSIGN(auto snap2, table_->AtVersion(0));
  Transaction ok_txn(store, snap2, clock_);
  ok_txn.ReadPredicate(
      arrow::compute::less(arrow::compute::field_ref("id"), arrow::compute::literal(int64_t{3}))
          .Bind(*snap->schema())
          .ValueOrDie());
  ASSERT_OK_AND_ASSIGN(auto v, ok_txn.Commit("DELETE", {}, {}));
  EXPECT_EQ(v, 2);
}

TEST_F(TransactionTest, MetadataChangeConflicts) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  ASSERT_OK(table_->SetProperties({{"delta.appendOnly", "false"}}).status());
  LocalLogStore store(table_->filesystem(), table_->root());
  Transaction t(store, snap, clock_);
  AddFile f;
  f.path = "x.parquet";
  t.Add(f);
  auto r = t.Commit("WRITE", {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorKind(r.status(), ErrorKind::kMetadataChanged));
}

// ---- crash safety without SIGKILL --------------------------------------------

// A table at /t/table on an in-memory disk that loses what was not synced at a
// power cut, with version 0 holding rows 1 and 2.
struct Disk {
  std::shared_ptr<FaultInjectionFileSystem> fs;
  std::shared_ptr<FaultInjectionLogStore> store;
  std::shared_ptr<FakeClock> clock;
  std::unique_ptr<DeltaTable> table;
};

Disk NewDisk() {
  Disk d;
  d.fs = std::make_shared<FaultInjectionFileSystem>();
  EXPECT_TRUE(d.fs->CreateDir("/t", true).ok());
  EXPECT_TRUE(d.fs->SyncDir("/").ok());
  d.store = std::make_shared<FaultInjectionLogStore>(d.fs, "/t/table");
  d.clock = std::make_shared<FakeClock>(1700000000000);
  TableOpenOptions o;
  o.log_store = d.store;
  o.clock = d.clock;
  d.table = DeltaTable::ForPath("", o).ValueOrDie();
  auto v0 = d.table->Write(Rows("[1, 2]", R"(["a", "b"])", "[1, 2]", R"(["x", "x"])"), {});
  EXPECT_TRUE(v0.ok()) << v0.status().ToString();
  return d;
}

std::vector<std::string> ReadRows(const Disk& d) {
  auto rows = d.table->Read({});
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() ? SortedRows(*rows) : std::vector<std::string>{};
}

const std::vector<std::string> kVersion0 = {"1|a|1|x", "2|b|2|x"};

// A transaction over version 0 that replaces its data file by one holding rows
// 5 and 6: half of it committed would show as a mix of the two.
struct Replace {
  std::unique_ptr<Transaction> txn;
  std::vector<AddFile> adds;
};

Replace PrepareReplace(const Disk& d) {
  Replace r;
  auto snap = d.table->Latest().ValueOrDie();
  r.txn = std::make_unique<Transaction>(*d.store, snap, d.clock);
  r.txn->ReadWholeTable();
  r.txn->ReadFiles(snap->files());
  for (const auto& f : snap->files()) r.txn->Remove(f, true);
  r.adds = WriteDataFiles(*d.store, Rows("[5, 6]", R"(["e", "f"])", "[5, 6]", R"(["y", "y"])"), {})
               .ValueOrDie();
  for (const auto& a : r.adds) r.txn->Add(a);
  return r;
}

const std::vector<std::string> kReplaced = {"5|e|5|y", "6|f|6|y"};

TEST(TransactionCrashTest, APowerCutBetweenDataFilesAndCommitKeepsThePreviousVersion) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto d = NewDisk();
    auto replace = PrepareReplace(d);
    ASSERT_EQ(replace.adds.size(), 1u);
    d.fs->FailAfterOps(0);  // the data file is on disk; the power goes off now
    auto committed = replace.txn->Commit("WRITE", {}, {});
    ASSERT_FALSE(committed.ok());
    EXPECT_TRUE(committed.status().IsIOError()) << committed.status().ToString();
    EXPECT_EQ(committed.status().message().rfind("cannot write '/t/table/_delta_log/.", 0), 0u)
        << committed.status().message();
    EXPECT_NE(committed.status().message().find(".tmp': simulated power cut: create"),
              std::string::npos)
        << committed.status().message();
    d.fs->PowerCut(seed);

    // The previous version is what readers see; the new data file survived
    // (it was synced) but no version names it.
    ASSERT_OK_AND_ASSIGN(auto latest, d.table->Latest());
    EXPECT_EQ(latest->version(), 0);
    EXPECT_EQ(ReadRows(d), kVersion0);
    ASSERT_OK_AND_ASSIGN(auto orphan,
                         d.fs->GetFileInfo(DataFilePath("/t/table", replace.adds[0].path)));
    EXPECT_TRUE(orphan.IsFile());
    for (const auto& f : latest->files()) EXPECT_NE(f.path, replace.adds[0].path);

    // The next writer commits version 1 as if nothing had happened.
    ASSERT_OK_AND_ASSIGN(auto next, d.table->Write(Rows("[3]", R"(["c"])", "[3]", R"(["z"])"), {}));
    EXPECT_EQ(next.version, 1);
    EXPECT_EQ(ReadRows(d), (std::vector<std::string>{"1|a|1|x", "2|b|2|x", "3|c|3|z"}));
  }
}

TEST(TransactionCrashTest, APowerCutAtAnyStepOfTheCommitIsReportedAndNeverHalfCommits) {
  // The mutating calls one commit of the log entry takes (write, sync, link,
  // folder sync, ...), counted on a disk without faults.
  int64_t commit_ops = 0;
  {
    auto d = NewDisk();
    auto replace = PrepareReplace(d);
    int64_t before = d.fs->ops();
    ASSERT_OK_AND_ASSIGN(auto v, replace.txn->Commit("WRITE", {}, {}));
    EXPECT_EQ(v, 1);
    commit_ops = d.fs->ops() - before;
  }
  ASSERT_GE(commit_ops, 4);
  int survived_unacknowledged = 0;
  for (int64_t k = 0; k <= commit_ops; ++k) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      SCOPED_TRACE("power off after " + std::to_string(k) + " calls, seed " + std::to_string(seed));
      auto d = NewDisk();
      auto replace = PrepareReplace(d);
      d.fs->FailAfterOps(k);
      auto committed = replace.txn->Commit("WRITE", {}, {});
      // Every cut inside the commit is reported; with all its calls done it is acknowledged.
      if (k < commit_ops) {
        ASSERT_FALSE(committed.ok());
        EXPECT_TRUE(committed.status().IsIOError()) << committed.status().ToString();
        EXPECT_NE(committed.status().message().find("simulated power cut"), std::string::npos)
            << committed.status().message();
      } else {
        ASSERT_OK(committed.status());
        EXPECT_EQ(*committed, 1);
      }
      if (!d.fs->power_off()) d.fs->FailAfterOps(0);
      d.fs->PowerCut(seed);

      // Exactly the old version or exactly the new one; acknowledged means new.
      ASSERT_OK_AND_ASSIGN(auto latest, d.table->Latest());
      if (committed.ok()) {
        ASSERT_EQ(latest->version(), 1);
      }
      if (latest->version() == 0) {
        EXPECT_EQ(ReadRows(d), kVersion0);
      } else {
        ASSERT_EQ(latest->version(), 1);
        EXPECT_EQ(ReadRows(d), kReplaced);
        ASSERT_EQ(latest->files().size(), 1u);
        EXPECT_EQ(latest->files()[0].path, replace.adds[0].path);
        survived_unacknowledged += !committed.ok();
      }
      // The next commit goes to the version after.
      ASSERT_OK_AND_ASSIGN(auto next,
                           d.table->Write(Rows("[3]", R"(["c"])", "[3]", R"(["z"])"), {}));
      EXPECT_EQ(next.version, latest->version() + 1);
    }
  }
  // A cut after the link but before the folder sync may keep the entry: the
  // commit was reported failed yet landed whole (an "in doubt" commit).
  EXPECT_GT(survived_unacknowledged, 0);
}

TEST(TransactionCrashTest, TwoCommitsRacingForOneVersionOneWinsTheOtherConflictsOrRetries) {
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto d = NewDisk();
    ASSERT_OK_AND_ASSIGN(auto snap, d.table->Latest());
    // Both delete the same file: one commits version 1, the other conflicts.
    Transaction t1(*d.store, snap, d.clock), t2(*d.store, snap, d.clock);
    for (auto* t : {&t1, &t2}) {
      t->ReadWholeTable();
      t->ReadFiles(snap->files());
      t->Remove(snap->files()[0], true);
    }
    std::atomic<int> ready{0};
    std::optional<arrow::Result<int64_t>> r1, r2;
    auto race = [&](Transaction* t, std::optional<arrow::Result<int64_t>>* out) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      *out = t->Commit("DELETE", {}, {});
    };
    std::thread a(race, &t1, &r1), b(race, &t2, &r2);
    a.join();
    b.join();
    ASSERT_NE(r1->ok(), r2->ok());
    const auto& winner = r1->ok() ? *r1 : *r2;
    const auto& loser = r1->ok() ? *r2 : *r1;
    EXPECT_EQ(*winner, 1);
    EXPECT_TRUE(HasErrorKind(loser.status(), ErrorKind::kConcurrentDeleteDelete))
        << loser.status().ToString();
    EXPECT_TRUE(IsCommitConflict(loser.status()));
    ASSERT_OK_AND_ASSIGN(auto latest, d.table->Latest());
    EXPECT_EQ(latest->version(), 1);
    EXPECT_TRUE(latest->files().empty());

    // Two blind appends racing: both commit, at versions 2 and 3.
    ASSERT_OK_AND_ASSIGN(auto snap1, d.table->Latest());
    Transaction t3(*d.store, snap1, d.clock), t4(*d.store, snap1, d.clock);
    AddFile f;
    f.path = "a.parquet";
    f.size = 1;
    t3.Add(f);
    f.path = "b.parquet";
    t4.Add(f);
    ready = 0;
    std::optional<arrow::Result<int64_t>> r3, r4;
    auto append = [&](Transaction* t, std::optional<arrow::Result<int64_t>>* out) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      *out = t->Commit("WRITE", {}, {});
    };
    std::thread c(append, &t3, &r3), e(append, &t4, &r4);
    c.join();
    e.join();
    ASSERT_OK(r3->status());
    ASSERT_OK(r4->status());
    EXPECT_EQ(std::min(**r3, **r4), 2);
    EXPECT_EQ(std::max(**r3, **r4), 3);
    // The losers left no temporary commit file behind.
    for (const auto& file : d.fs->AllFiles()) EXPECT_EQ(file.find(".tmp"), std::string::npos);
  }
}

}  // namespace
}  // namespace stratalake::delta
