// End-to-end tests of DeltaTable: every operation, idempotency, constraints,
// schema evolution, time travel and vacuum (fake clock). The storage parts have
// unit tests beside them: src/storage/{actions,snapshot,checkpoint,transaction}_test.cc.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "storage/scan.h"
#include "storage/snapshot.h"
#include "storage/table_test_util.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"
#include "test_util.h"

namespace stratalake::delta {
namespace {

using stratalake::testing::SortedRows;
using stratalake::testing::TableFromJson;
using stratalake::testing::TempDir;

[[maybe_unused]] auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new stratalake::testing::ComputeEnvironment);

using table_test::Rows;
using table_test::Schema;

class DeltaTableTest : public table_test::TableTest {};

TEST_F(DeltaTableTest, WriteCreatesTableAndReadsBack) {
  auto r = Append(Rows("[1, 2]", R"(["a", null])", "[1.5, 2.5]", R"(["d1", "d2"])"));
  EXPECT_EQ(r.version, 0);
  EXPECT_EQ(r.metrics["numOutputRows"], 2);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1.5|d1", "2|null|2.5|d2"}));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->protocol().min_reader_version, 1);
  EXPECT_EQ(snap->protocol().min_writer_version, 2);
  EXPECT_EQ(snap->NumRecords(), 2);
}

TEST_F(DeltaTableTest, ProjectionInAnotherOrderWithAFilterOnOtherColumns) {
  // Regression: the filter was evaluated against the projected columns with the
  // snapshot schema's field positions (a crash or wrong rows).
  Append(Rows("[1, 2, 3]", R"(["a", "b", "c"])", "[1.5, 2.5, 3.5]", R"(["d1", "d2", "d3"])"));
  ReadOptions ro;
  ro.columns = std::vector<std::string>{"day", "name"};
  ro.filter = "score > 2 AND id < 3";
  ASSERT_OK_AND_ASSIGN(auto t, table_->Read(ro));
  EXPECT_EQ(SortedRows(t), (std::vector<std::string>{"d2|b"}));
}

TEST_F(DeltaTableTest, ReadsABigFileRowGroupRangeByRange) {
  // 2.5Mi rows in one file: three row groups of at most 1Mi rows.
  const int64_t n = (5 << 20) / 2;
  arrow::Int64Builder b;
  ASSERT_OK(b.Reserve(n));
  for (int64_t i = 0; i < n; ++i) b.UnsafeAppend(i);
  std::shared_ptr<arrow::Array> ids;
  ASSERT_OK(b.Finish(&ids));
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  Append(arrow::Table::Make(schema, {ids}));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  ASSERT_EQ(snap->files().size(), 1u);
  const AddFile& file = snap->files()[0];
  ASSERT_OK_AND_ASSIGN(int groups, CountRowGroups(*table_->filesystem(), *snap, file));
  EXPECT_EQ(groups, 3);
  int64_t next = 0;
  for (int first = 0; first < groups; ++first) {
    FileReadOptions fo;
    fo.row_group_range = std::make_pair(first, first + 1);
    ASSERT_OK_AND_ASSIGN(auto part, ReadDataFile(*table_->filesystem(), *snap, file, {0}, fo));
    ASSERT_GT(part->num_rows(), 0);
    auto col = std::static_pointer_cast<arrow::Int64Array>(part->column(0)->chunk(0));
    EXPECT_EQ(col->Value(0), next);  // ranges are contiguous and in order
    next += part->num_rows();
  }
  EXPECT_EQ(next, n);
  // Combined with a filter that rules out the middle row group: nothing left of it.
  ASSERT_OK_AND_ASSIGN(auto e, ParseExpression("id < 1000 OR id > 2500000", *snap->schema()));
  ASSERT_OK_AND_ASSIGN(auto bound, e.Bind(*snap->schema()));
  FileReadOptions fo;
  fo.row_group_filter = bound;
  fo.row_group_range = std::make_pair(1, 2);
  ASSERT_OK_AND_ASSIGN(auto middle, ReadDataFile(*table_->filesystem(), *snap, file, {0}, fo));
  EXPECT_EQ(middle->num_rows(), 0);
}

TEST_F(DeltaTableTest, PartitionedWritePrunesByPartitionAndSkipsByStats) {
  WriteOptions wo;
  wo.partition_by = {"day"};
  Append(Rows("[1, 2, 3, 4]", R"(["a", "b", "c", "d"])", "[1, 2, 3, 4]",
              R"(["d1", "d1", "d2", "d3"])"),
         wo);
  Append(Rows("[10, 11]", R"(["x", "y"])", "[10, 11]", R"(["d1", "d2"])"));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->files().size(), 5u);
  ASSERT_OK_AND_ASSIGN(auto p1, table_->PlanScan(*snap, "day = 'd1'"));
  EXPECT_EQ(p1.files.size(), 2u);
  EXPECT_EQ(p1.skipped_by_partition, 3);
  ASSERT_OK_AND_ASSIGN(auto p2, table_->PlanScan(*snap, "id >= 10"));
  EXPECT_EQ(p2.files.size(), 2u);
  EXPECT_EQ(p2.skipped_by_stats, 3);
  EXPECT_EQ(ReadAll(std::nullopt, "day = 'd1' AND id > 1"),
            (std::vector<std::string>{"10|x|10|d1", "2|b|2|d1"}));
  // Partition folders are Hive-style.
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("t/day=d1")));
}

TEST_F(DeltaTableTest, RowGroupsAreSkippedByParquetStatistics) {
  // 2,500,000 sorted ids in one file: row groups of 1,048,576 rows.
  arrow::Int64Builder ids;
  ASSERT_OK(ids.Reserve(2500000));
  for (int64_t i = 0; i < 2500000; ++i) ids.UnsafeAppend(i);
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  auto data = arrow::Table::Make(schema, {ids.Finish().ValueOrDie()});
  ASSERT_OK(table_->Write(data, {}).status());
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  ASSERT_EQ(snap->files().size(), 1u);
  auto filter = arrow::compute::greater_equal(arrow::compute::field_ref("id"),
                                              arrow::compute::literal(int64_t{2000000}))
                    .Bind(*snap->schema())
                    .ValueOrDie();
  FileReadOptions fo;
  fo.row_group_filter = filter;
  ASSERT_OK_AND_ASSIGN(auto rows,
                       ReadDataFile(*table_->filesystem(), *snap, snap->files()[0], {0}, fo));
  // Row groups hold ids [0, 1048576), [1048576, 2097152), [2097152, 2500000): the
  // first cannot match id >= 2000000 and is not decoded.
  EXPECT_EQ(rows->num_rows(), 2500000 - 1048576);
  ReadOptions ro;
  ro.filter = "id >= 2000000 AND id < 2000010";
  ASSERT_OK_AND_ASSIGN(auto matched, table_->Read(ro));
  EXPECT_EQ(matched->num_rows(), 10);
}

TEST_F(DeltaTableTest, OverwriteAndReplaceWhere) {
  WriteOptions part;
  part.partition_by = {"day"};
  Append(Rows("[1, 2, 3]", R"(["a", "b", "c"])", "[1, 2, 3]", R"(["d1", "d2", "d2"])"), part);
  WriteOptions rw;
  rw.mode = WriteMode::kOverwrite;
  rw.replace_where = "day = 'd2'";
  Append(Rows("[7]", R"(["z"])", "[7]", R"(["d2"])"), rw);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|d1", "7|z|7|d2"}));
  // New rows outside the predicate are refused, and nothing is committed.
  auto bad = table_->Write(Rows("[8]", R"(["q"])", "[8]", R"(["d1"])"), rw);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(HasErrorKind(bad.status(), ErrorKind::kConstraintViolation));
  EXPECT_NE(bad.status().message().find("do not match the replaceWhere predicate"),
            std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->version(), 1);
  WriteOptions ow;
  ow.mode = WriteMode::kOverwrite;
  Append(Rows("[9]", R"(["n"])", "[9]", R"(["d9"])"), ow);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"9|n|9|d9"}));
  EXPECT_EQ(ReadAll(1), (std::vector<std::string>{"1|a|1|d1", "7|z|7|d2"}));
}

// Data files (not the log) under the table's folder.
int CountDataFiles(const std::string& root) {
  int n = 0;
  if (!std::filesystem::exists(root)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().extension() == ".parquet" &&
        e.path().string().find("_delta_log") == std::string::npos) {
      ++n;
    }
  }
  return n;
}

TEST_F(DeltaTableTest, AWriterCommitsItsPiecesAsOneVersionInOrder) {
  WriteOptions wo;
  ASSERT_OK_AND_ASSIGN(auto writer, table_->OpenWriter(Schema(), wo));
  ASSERT_OK(writer->Write(Rows("[1, 2]", R"(["a", "b"])", "[1, 2]", R"(["d1", "d1"])")));
  ASSERT_OK(writer->Write(Rows("[]", "[]", "[]", "[]")));
  ASSERT_OK(writer->Write(Rows("[3]", R"(["c"])", "[3]", R"(["d2"])")));
  // Written but not committed: no table yet.
  EXPECT_EQ(CountDataFiles(dir_.Join("t")), 2);
  ASSERT_OK_AND_ASSIGN(bool exists, table_->Exists());
  EXPECT_FALSE(exists);
  ASSERT_OK_AND_ASSIGN(auto commit, writer->Commit());
  EXPECT_EQ(commit.version, 0);
  EXPECT_EQ(commit.metrics["numOutputRows"], 3);
  EXPECT_EQ(commit.metrics["numFiles"], 2);
  EXPECT_FALSE(writer->Commit().ok()) << "a writer commits once";
  EXPECT_FALSE(writer->Write(Rows("[4]", R"(["d"])", "[4]", R"(["d"])")).ok());
  // The files in the log are in write order, so a read gives the rows as written.
  ASSERT_OK_AND_ASSIGN(auto rows, table_->Read(ReadOptions{}));
  ASSERT_OK_AND_ASSIGN(auto all, arrow::Concatenate(rows->GetColumnByName("id")->chunks()));
  EXPECT_EQ(all->ToString(),
            arrow::json::ArrayFromJSONString(arrow::int64(), "[1, 2, 3]").ValueOrDie()->ToString());
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->version(), 0);
  EXPECT_EQ(snap->NumRecords(), 3);

  // An overwrite through a writer replaces the table at commit, not before.
  WriteOptions ow;
  ow.mode = WriteMode::kOverwrite;
  ASSERT_OK_AND_ASSIGN(auto over, table_->OpenWriter(Schema(), ow));
  ASSERT_OK(over->Write(Rows("[9]", R"(["n"])", "[9]", R"(["d9"])")));
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|d1", "2|b|2|d1", "3|c|3|d2"}));
  ASSERT_OK(over->Commit().status());
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"9|n|9|d9"}));
}

TEST_F(DeltaTableTest, AWriterDroppedBeforeCommitLeavesNothing) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["d1"])"));
  {
    ASSERT_OK_AND_ASSIGN(auto writer, table_->OpenWriter(Schema(), WriteOptions{}));
    ASSERT_OK(writer->Write(Rows("[2]", R"(["b"])", "[2]", R"(["d1"])")));
    EXPECT_EQ(CountDataFiles(dir_.Join("t")), 2);
    // A piece of other columns is refused and changes nothing.
    auto other =
        arrow::Table::Make(arrow::schema({arrow::field("id", arrow::int64())}),
                           {arrow::json::ArrayFromJSONString(arrow::int64(), "[5]").ValueOrDie()});
    auto bad = writer->Write(other);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("not the writer's"), std::string::npos) << bad.ToString();
    // A NOT NULL violation in a later piece fails that piece only.
    EXPECT_FALSE(writer->Write(Rows("[null]", R"(["x"])", "[1]", R"(["d1"])")).ok());
  }
  EXPECT_EQ(CountDataFiles(dir_.Join("t")), 1);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|d1"}));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->version(), 0);
  // Mode checks come before any rows.
  WriteOptions err;
  err.mode = WriteMode::kErrorIfExists;
  auto refused = table_->OpenWriter(Schema(), err);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(HasErrorKind(refused.status(), ErrorKind::kTableAlreadyExists));
  WriteOptions ignore;
  ignore.mode = WriteMode::kIgnore;
  ASSERT_OK_AND_ASSIGN(auto ignored, table_->OpenWriter(Schema(), ignore));
  ASSERT_OK(ignored->Write(Rows("[3]", R"(["c"])", "[3]", R"(["d1"])")));
  ASSERT_OK_AND_ASSIGN(auto noop, ignored->Commit());
  EXPECT_TRUE(noop.noop);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|d1"}));
}

TEST_F(DeltaTableTest, DeleteUpdateWithSqlNullSemantics) {
  Append(
      Rows("[1, 2, 3, 4]", R"(["a", "b", null, "d"])", "[1, 2, 3, 4]", R"(["x", "x", "x", "x"])"));
  ASSERT_OK_AND_ASSIGN(auto del, table_->Delete("name <> 'b'"));  // NULL name is kept
  EXPECT_EQ(del.metrics["numDeletedRows"], 2);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"2|b|2|x", "3|null|3|x"}));
  ASSERT_OK_AND_ASSIGN(auto upd, table_->Update("id = 3", "name = 'c', score = score * 10"));
  EXPECT_EQ(upd.metrics["numUpdatedRows"], 1);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"2|b|2|x", "3|c|30|x"}));
  ASSERT_OK_AND_ASSIGN(auto none, table_->Delete("id > 100"));
  EXPECT_TRUE(none.noop);
  ASSERT_OK_AND_ASSIGN(auto hist, table_->History());
  ASSERT_EQ(hist.size(), 3u);
  EXPECT_EQ(hist[0].operation, "UPDATE");
  EXPECT_EQ(hist[1].operation, "DELETE");
  EXPECT_EQ(hist[1].operation_parameters["predicate"], R"(["name <> 'b'"])");
}

TEST_F(DeltaTableTest, UpdatingAPartitionColumnMovesRowsToTheNewPartition) {
  WriteOptions wo;
  wo.partition_by = {"day"};
  Append(Rows("[1, 2]", R"(["a", "b"])", "[1, 2]", R"(["d1", "d1"])"), wo);
  ASSERT_OK(table_->Update("id = 1", "day = 'd9'").status());
  EXPECT_EQ(ReadAll(std::nullopt, "day = 'd9'"), (std::vector<std::string>{"1|a|1|d9"}));
  EXPECT_EQ(ReadAll(std::nullopt, "day = 'd1'"), (std::vector<std::string>{"2|b|2|d1"}));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("t/day=d9")));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  ASSERT_OK_AND_ASSIGN(auto plan, table_->PlanScan(*snap, "day = 'd9'"));
  EXPECT_EQ(plan.files.size(), 1u);
}

TEST_F(DeltaTableTest, MergeUpdatesDeletesAndInserts) {
  Append(Rows("[1, 2, 3]", R"(["a", "b", "c"])", "[1, 2, 3]", R"(["x", "x", "x"])"));
  auto source = Rows("[2, 3, 4]", R"(["B", "C", "D"])", "[20, -1, 40]", R"(["y", "y", "y"])");
  MergeOptions mo;
  mo.on = {"id"};
  mo.when_matched.push_back({MatchedClause::Action::kDelete, "source.score < 0", ""});
  mo.when_matched.push_back({MatchedClause::Action::kUpdateAll, "", ""});
  mo.when_not_matched.push_back({""});
  ASSERT_OK_AND_ASSIGN(auto r, table_->Merge(source, mo));
  EXPECT_EQ(r.metrics["numTargetRowsUpdated"], 1);
  EXPECT_EQ(r.metrics["numTargetRowsDeleted"], 1);
  EXPECT_EQ(r.metrics["numTargetRowsInserted"], 1);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x", "2|B|20|y", "4|D|40|y"}));
  // Partial update with an expression over both sides.
  MergeOptions mo2;
  mo2.on = {"id"};
  mo2.when_matched.push_back(
      {MatchedClause::Action::kUpdate, "", "score = target.score + source.score"});
  ASSERT_OK(table_->Merge(Rows("[1]", R"(["ignored"])", "[100]", R"(["z"])"), mo2).status());
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|101|x", "2|B|20|y", "4|D|40|y"}));
}

TEST_F(DeltaTableTest, MergeRejectsSeveralSourceRowsForOneTargetRow) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  MergeOptions mo;
  mo.on = {"id"};
  mo.when_matched.push_back({MatchedClause::Action::kUpdateAll, "", ""});
  auto r = table_->Merge(Rows("[1, 1]", R"(["p", "q"])", "[1, 2]", R"(["x", "x"])"), mo);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("2 source rows match the same target row"),
            std::string::npos);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x"}));
}

TEST_F(DeltaTableTest, SchemaEvolutionNeedsMergeSchema) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  auto wider_schema = Schema()->AddField(4, arrow::field("extra", arrow::int32())).ValueOrDie();
  auto wider = TableFromJson(wider_schema, {"[2]", R"(["b"])", "[2]", R"(["x"])", "[42]"});
  auto refused = table_->Write(wider, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(HasErrorKind(refused.status(), ErrorKind::kSchemaMismatch));
  EXPECT_NE(refused.status().message().find("column 'extra' (integer) is not in the table schema"),
            std::string::npos);
  WriteOptions wo;
  wo.merge_schema = true;
  Append(wider, wo);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x|null", "2|b|2|x|42"}));
  auto wrong = TableFromJson(arrow::schema({arrow::field("id", arrow::utf8())}), {R"(["x"])"});
  auto r = table_->Write(wrong, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("column 'id' is long in the table but string in the data"),
            std::string::npos);
}

TEST_F(DeltaTableTest, AddingATimestampNtzColumnUpgradesTheProtocol) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  auto ntz = arrow::schema({arrow::field("id", arrow::int64()),
                            arrow::field("local", arrow::timestamp(arrow::TimeUnit::MICRO))});
  WriteOptions wo;
  wo.merge_schema = true;
  Append(TableFromJson(ntz, {"[2]", R"(["2024-01-02 03:04:05"])"}), wo);
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->protocol(),
            (Protocol{3, 7, std::vector<std::string>{"timestampNtz"},
                      std::vector<std::string>{"appendOnly", "invariants", "timestampNtz"}}));
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x|null",
                                                 "2|null|null|null|2024-01-02 03:04:05.000000"}));
}

TEST_F(DeltaTableTest, ConstraintsAndNotNullAreEnforced) {
  CreateOptions co;
  co.schema = Schema();
  co.properties["delta.constraints.positive"] = "score > 0";
  ASSERT_OK(DeltaTable::Create(dir_.Join("t"), co).status());
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->protocol().min_writer_version, 3);
  auto r = table_->Write(Rows("[1, 2]", R"(["a", "b"])", "[1, -2]", R"(["x", "x"])"), {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorKind(r.status(), ErrorKind::kConstraintViolation));
  EXPECT_NE(r.status().message().find("CHECK constraint positive (score > 0) violated by row 1"),
            std::string::npos);
  auto n = table_->Write(Rows("[null]", R"(["a"])", "[1]", R"(["x"])"), {});
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("NOT NULL constraint violated: column 'id'"),
            std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto after, table_->Latest());
  EXPECT_EQ(after->version(), 0);
  EXPECT_TRUE(after->files().empty());
}

TEST_F(DeltaTableTest, ColumnInvariantsAreEnforced) {
  auto md = std::make_shared<arrow::KeyValueMetadata>();
  md->Append("delta.metadata",
             R"({"delta.invariants":"{\"expression\":{\"expression\":\"score > 3\"}}"})");
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("score", arrow::float64(), true, md)});
  CreateOptions co;
  co.schema = schema;
  ASSERT_OK(DeltaTable::Create(dir_.Join("t"), co).status());
  auto bad = table_->Write(TableFromJson(schema, {"[1, 2]", "[5, 1]"}), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(HasErrorKind(bad.status(), ErrorKind::kConstraintViolation));
  EXPECT_EQ(bad.status().message(),
            "invariant on column score (score > 3) violated by row 1: score=1");
  ASSERT_OK(table_->Write(TableFromJson(schema, {"[1]", "[5]"}), {}).status());
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|5"}));
}

TEST_F(DeltaTableTest, InvalidTablePropertiesAreRefused) {
  CreateOptions co;
  co.schema = Schema();
  co.properties["delta.checkpointInterval"] = "abc";
  auto r = DeltaTable::Create(dir_.Join("t"), co);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "table property delta.checkpointInterval='abc' is invalid: it must be a positive "
            "integer");
  co.properties = {{"delta.constraints.bad", "nope > 1"}};
  auto c = DeltaTable::Create(dir_.Join("t"), co);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("CHECK constraint bad: "), std::string::npos);
  EXPECT_NE(c.status().message().find("unknown column 'nope'"), std::string::npos);
  EXPECT_FALSE(table_->Exists().ValueOrDie());
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  auto s = table_->SetProperties({{"delta.appendOnly", "yes"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "table property delta.appendOnly='yes' is invalid: it must be true or false");
  auto existing = table_->SetProperties({{"delta.constraints.pos", "score > 5"}});
  ASSERT_FALSE(existing.ok());  // the existing row has score 1
  EXPECT_TRUE(HasErrorKind(existing.status(), ErrorKind::kConstraintViolation));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->version(), 0);
}

TEST_F(DeltaTableTest, AppendOnlyRefusesDeletesButAllowsAppends) {
  CreateOptions co;
  co.schema = Schema();
  co.properties["delta.appendOnly"] = "true";
  ASSERT_OK(DeltaTable::Create(dir_.Join("t"), co).status());
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  auto d = table_->Delete("id = 1");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(HasErrorKind(d.status(), ErrorKind::kOperationNotAllowed));
  EXPECT_NE(d.status().message().find("append-only"), std::string::npos);
  WriteOptions ow;
  ow.mode = WriteMode::kOverwrite;
  EXPECT_FALSE(table_->Write(Rows("[2]", R"(["b"])", "[2]", R"(["x"])"), ow).ok());
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x"}));
}

TEST_F(DeltaTableTest, IdempotentWritesThroughAppTransactions) {
  WriteOptions wo;
  wo.txn = AppTransaction{"ingest-job", 5, std::nullopt};
  auto first = Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"), wo);
  EXPECT_FALSE(first.noop);
  auto replay = Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"), wo);
  EXPECT_TRUE(replay.noop);
  wo.txn->version = 4;  // an older batch is also already done
  EXPECT_TRUE(Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"), wo).noop);
  wo.txn->version = 6;
  EXPECT_FALSE(Append(Rows("[2]", R"(["b"])", "[2]", R"(["x"])"), wo).noop);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x", "2|b|2|x"}));
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->AppTransactionVersion("ingest-job"), 6);
}

TEST_F(DeltaTableTest, TimeTravelByVersionAndTimestampAndRestore) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  Append(Rows("[2]", R"(["b"])", "[2]", R"(["x"])"));
  ASSERT_OK(table_->Delete("id = 1").status());
  EXPECT_EQ(ReadAll(0), (std::vector<std::string>{"1|a|1|x"}));
  EXPECT_EQ(ReadAll(1), (std::vector<std::string>{"1|a|1|x", "2|b|2|x"}));
  // Timestamps come from commit file modification times.
  auto set_mtime = [&](int v, int64_t ms) {
    char name[64];
    std::snprintf(name, sizeof name, "t/_delta_log/%020d.json", v);
    auto tp =
        std::filesystem::file_time_type::clock::now() +
        std::chrono::milliseconds(ms - std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
    std::filesystem::last_write_time(dir_.Join(name), tp);
  };
  set_mtime(0, 1000000);
  set_mtime(1, 2000000);
  set_mtime(2, 3000000);
  ASSERT_OK_AND_ASSIGN(auto s, table_->AtTimestamp(2500000));
  EXPECT_EQ(s->version(), 1);
  auto before = table_->AtTimestamp(999999);
  ASSERT_FALSE(before.ok());
  EXPECT_TRUE(HasErrorKind(before.status(), ErrorKind::kVersionNotFound));
  ASSERT_OK_AND_ASSIGN(auto r, table_->Restore(1));
  EXPECT_EQ(r.version, 3);
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"1|a|1|x", "2|b|2|x"}));
  auto missing = table_->AtVersion(9);
  EXPECT_TRUE(HasErrorKind(missing.status(), ErrorKind::kVersionNotFound));
}

TEST_F(DeltaTableTest, VacuumHonoursRetentionWithFakeClock) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  WriteOptions ow;
  ow.mode = WriteMode::kOverwrite;
  Append(Rows("[2]", R"(["b"])", "[2]", R"(["x"])"), ow);
  // An untracked stray file and a hidden file.
  std::ofstream(dir_.Join("t/stray.parquet")) << "x";
  std::ofstream(dir_.Join("t/_hidden.txt")) << "x";
  VacuumOptions dry;
  dry.dry_run = true;
  ASSERT_OK_AND_ASSIGN(auto none, table_->Vacuum(dry));
  EXPECT_TRUE(none.files.empty());  // everything is younger than 7 days
  VacuumOptions short_retention;
  short_retention.retention_hours = 1;
  auto refused = table_->Vacuum(short_retention);
  EXPECT_TRUE(HasErrorKind(refused.status(), ErrorKind::kOperationNotAllowed));
  // Eight days later, the overwritten file and the stray file may go.
  clock_->Set(std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count() +
              8LL * 86400000);
  ASSERT_OK_AND_ASSIGN(auto listed, table_->Vacuum(dry));
  EXPECT_EQ(listed.files.size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("t/stray.parquet")));
  ASSERT_OK_AND_ASSIGN(auto before, table_->Latest());
  ASSERT_OK_AND_ASSIGN(auto done, table_->Vacuum({}));
  EXPECT_EQ(done.files, listed.files);
  // The vacuum is recorded as Delta does: VACUUM START, the deletes, VACUUM END
  // (dry runs and the refused vacuum above committed nothing).
  ASSERT_OK_AND_ASSIGN(auto history, table_->History(2));
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].version, before->version() + 1);
  EXPECT_EQ(history[1].operation, "VACUUM START");
  EXPECT_EQ(history[1].operation_parameters,
            (std::map<std::string, std::string>{{"defaultRetentionMillis", "604800000"},
                                                {"retentionCheckEnabled", "true"},
                                                {"specifiedRetentionMillis", "604800000"}}));
  EXPECT_EQ(history[1].operation_metrics.at("numFilesToDelete"), "2");
  EXPECT_EQ(history[1].operation_metrics.at("sizeOfDataToDelete"), std::to_string(done.bytes));
  EXPECT_EQ(history[0].operation, "VACUUM END");
  EXPECT_EQ(history[0].operation_parameters.at("status"), "COMPLETED");
  EXPECT_EQ(history[0].operation_metrics.at("numDeletedFiles"), "2");
  // Nothing left to delete: no commits.
  ASSERT_OK_AND_ASSIGN(auto again, table_->Vacuum({}));
  EXPECT_TRUE(again.files.empty());
  ASSERT_OK_AND_ASSIGN(auto after, table_->Latest());
  EXPECT_EQ(after->version(), before->version() + 2);
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("t/stray.parquet")));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("t/_hidden.txt")));
  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"2|b|2|x"}));
  // Time travel to the vacuumed version fails with a clear missing-file error.
  ReadOptions ro;
  ro.version = 0;
  auto old = table_->Read(ro);
  ASSERT_FALSE(old.ok());
  EXPECT_TRUE(HasErrorKind(old.status(), ErrorKind::kFileNotFound));
}

TEST_F(DeltaTableTest, OptimizeCompactsWithoutChangingData) {
  for (int i = 0; i < 5; ++i)
    Append(Rows("[" + std::to_string(i) + "]", R"(["n"])", "[1]", R"(["x"])"));
  auto before = ReadAll();
  OptimizeOptions oo;
  oo.zorder_by = {"id", "score"};
  ASSERT_OK_AND_ASSIGN(auto r, table_->Optimize(oo));
  EXPECT_EQ(r.metrics["numRemovedFiles"], 5);
  EXPECT_EQ(r.metrics["numAddedFiles"], 1);
  ASSERT_OK_AND_ASSIGN(auto snap, table_->Latest());
  EXPECT_EQ(snap->files().size(), 1u);
  EXPECT_FALSE(snap->files()[0].data_change);
  EXPECT_EQ(ReadAll(), before);
  ASSERT_OK_AND_ASSIGN(auto again, table_->Optimize({}));
  EXPECT_TRUE(again.noop);  // one file left: nothing to compact
}

TEST_F(DeltaTableTest, ScanStreamsTheRowsOfReadOneFileAtATime) {
  Append(Rows("[1, 2]", R"(["a", "b"])", "[1, 2]", R"(["x", "x"])"));
  Append(Rows("[3]", R"(["c"])", "[3]", R"(["y"])"));
  Append(Rows("[4, 5]", R"(["d", "e"])", "[4, 5]", R"(["y", "z"])"));
  ReadOptions ro;
  ro.columns = std::vector<std::string>{"NAME", "id"};  // case-insensitive, in the order given
  ro.filter = "score > 1.5";
  ASSERT_OK_AND_ASSIGN(auto reader, table_->Scan(ro));
  EXPECT_EQ(reader->schema()->field_names(), (std::vector<std::string>{"name", "id"}));
  ASSERT_OK_AND_ASSIGN(auto batches, reader->ToRecordBatches());
  EXPECT_EQ(batches.size(), 3u);  // one per file: each file's surviving rows
  ASSERT_OK_AND_ASSIGN(auto streamed, arrow::Table::FromRecordBatches(reader->schema(), batches));
  ASSERT_OK_AND_ASSIGN(auto read, table_->Read(ro));
  EXPECT_EQ(SortedRows(streamed), SortedRows(read));
  EXPECT_EQ(SortedRows(streamed), (std::vector<std::string>{"b|2", "c|3", "d|4", "e|5"}));
  // Errors come before any file is read.
  ro.columns = std::vector<std::string>{"nope"};
  auto bad = table_->Scan(ro);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "unknown column 'nope' (columns: id, name, score, day)");
  ro.columns.reset();
  ro.filter = "score + 1";
  auto not_bool = table_->Scan(ro);
  ASSERT_FALSE(not_bool.ok());
  EXPECT_EQ(not_bool.status().message(),
            "predicate 'score + 1' is not a boolean condition (it is double)");
  // An older version, by snapshot.
  ASSERT_OK_AND_ASSIGN(auto v0, table_->AtVersion(0));
  ASSERT_OK_AND_ASSIGN(auto old, table_->Scan(v0, ReadOptions{}));
  ASSERT_OK_AND_ASSIGN(auto old_rows, old->ToTable());
  EXPECT_EQ(old_rows->num_rows(), 2);
}

}  // namespace
}  // namespace stratalake::delta
