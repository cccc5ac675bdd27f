// get_historical_features end to end over a repository: the streamed retrieval
// (bounded memory, slices of the entity rows) gives the in-memory result row
// for row.
#include <filesystem>
#include <fstream>
#include <random>

#include <arrow/api.h>
#include <arrow/io/api.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>

#include "../../tests/test_util.h"
#include "stratalake/delta.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"

namespace stratalake::retrieval {
namespace {

using stratalake::testing::TempDir;

constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01T00:00:00Z in µs
constexpr int kCustomers = 3000;
constexpr int kMerchants = 200;

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// Two sources, three views (two over one source, with different TTLs), keys
// of two types.
const char* kDefinitions = R"(entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
  - name: merchant
    join_keys: [{name: merchant, type: string}]
sources:
  - name: stats
    type: delta
    path: gold/stats
    timestamp_field: event_ts
    created_timestamp_field: created_ts
    schema:
      - {name: customer_id, type: int64}
      - {name: event_ts, type: timestamp}
      - {name: created_ts, type: timestamp}
      - {name: spend, type: float64}
      - {name: tier, type: string}
  - name: merchants
    type: delta
    path: gold/merchants
    timestamp_field: event_ts
    schema:
      - {name: merchant, type: string}
      - {name: event_ts, type: timestamp}
      - {name: rating, type: float64}
feature_views:
  - name: stats
    entities: [customer]
    source: stats
    ttl: 10h
    features:
      - {name: spend, type: float64}
      - {name: tier, type: string}
  - name: recent
    entities: [customer]
    source: stats
    ttl: 1h
    features:
      - {name: spend, type: float64}
  - name: merchants
    entities: [merchant]
    source: merchants
    ttl: 0
    features:
      - {name: rating, type: float64}
)";

arrow::TimestampBuilder TimeBuilder() {
  return arrow::TimestampBuilder(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                                 arrow::default_memory_pool());
}

// Stats rows: ties in event time broken by created time (sometimes null), null features.
std::shared_ptr<arrow::Table> RandomStats(std::mt19937_64* rng, int rows) {
  arrow::Int64Builder id;
  auto ts = TimeBuilder();
  auto created = TimeBuilder();
  arrow::DoubleBuilder spend;
  arrow::StringBuilder tier;
  std::uniform_int_distribution<int> key(0, kCustomers - 1), hour(0, 48), coin(0, 9);
  for (int i = 0; i < rows; ++i) {
    (void)id.Append(key(*rng));
    (void)ts.Append(kT0 + hour(*rng) * kHour);
    coin(*rng) == 0 ? (void)created.AppendNull() : (void)created.Append(kT0 + coin(*rng) * kHour);
    coin(*rng) == 0 ? (void)spend.AppendNull()
                    : (void)spend.Append(static_cast<double>((*rng)() % 100000) / 100.0);
    (void)tier.Append(coin(*rng) < 5 ? "gold" : "silver");
  }
  arrow::ArrayVector cols(5);
  (void)id.Finish(&cols[0]);
  (void)ts.Finish(&cols[1]);
  (void)created.Finish(&cols[2]);
  (void)spend.Finish(&cols[3]);
  (void)tier.Finish(&cols[4]);
  auto ts_type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  return arrow::Table::Make(
      arrow::schema({arrow::field("customer_id", arrow::int64()), arrow::field("event_ts", ts_type),
                     arrow::field("created_ts", ts_type), arrow::field("spend", arrow::float64()),
                     arrow::field("tier", arrow::utf8())}),
      cols, rows);
}

std::shared_ptr<arrow::Table> RandomMerchants(std::mt19937_64* rng, int rows) {
  arrow::StringBuilder merchant;
  auto ts = TimeBuilder();
  arrow::DoubleBuilder rating;
  std::uniform_int_distribution<int> key(0, kMerchants - 1), minute(0, 48 * 60);
  for (int i = 0; i < rows; ++i) {
    (void)merchant.Append("m" + std::to_string(key(*rng)));
    (void)ts.Append(kT0 + minute(*rng) * kHour / 60);
    (void)rating.Append(static_cast<double>((*rng)() % 50) / 10.0);
  }
  arrow::ArrayVector cols(3);
  (void)merchant.Finish(&cols[0]);
  (void)ts.Finish(&cols[1]);
  (void)rating.Finish(&cols[2]);
  return arrow::Table::Make(arrow::schema({arrow::field("merchant", arrow::utf8()),
                                           arrow::field("event_ts", TimeBuilder().type()),
                                           arrow::field("rating", arrow::float64())}),
                            cols, rows);
}

// Entity rows: unknown keys, null keys and times, duplicated rows, a label.
std::shared_ptr<arrow::Table> RandomEntities(std::mt19937_64* rng, int rows) {
  arrow::Int64Builder id, label;
  arrow::StringBuilder merchant;
  auto ts = TimeBuilder();
  std::uniform_int_distribution<int> key(0, kCustomers + 100), mkey(0, kMerchants + 10),
      minute(-120, 50 * 60), coin(0, 49);
  int64_t prev_id = 0, prev_ts = kT0;
  for (int i = 0; i < rows; ++i) {
    bool dup = i > 0 && coin(*rng) == 0;
    int64_t c = dup ? prev_id : key(*rng);
    int64_t t = dup ? prev_ts : kT0 + minute(*rng) * kHour / 60;
    (void)id.Append(c);
    coin(*rng) == 1 ? (void)ts.AppendNull() : (void)ts.Append(t);
    coin(*rng) == 2 ? (void)merchant.AppendNull()
                    : (void)merchant.Append("m" + std::to_string(mkey(*rng)));
    (void)label.Append(i);
    prev_id = c;
    prev_ts = t;
  }
  arrow::ArrayVector cols(4);
  (void)id.Finish(&cols[0]);
  (void)merchant.Finish(&cols[1]);
  (void)ts.Finish(&cols[2]);
  (void)label.Finish(&cols[3]);
  return arrow::Table::Make(arrow::schema({arrow::field("customer_id", arrow::int64()),
                                           arrow::field("merchant", arrow::utf8()),
                                           arrow::field("event_timestamp", TimeBuilder().type()),
                                           arrow::field("label", arrow::int64())}),
                            cols, rows);
}

// Collects what a streamed retrieval writes.
class CollectingSink final : public HistoricalSink {
 public:
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    if (schema_) return arrow::Status::Invalid("Begin called twice");
    schema_ = schema;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    if (!schema_) return arrow::Status::Invalid("Write before Begin");
    if (!rows->schema()->Equals(*schema_)) return arrow::Status::Invalid("schema changed");
    pieces_.push_back(rows);
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Table() const {
    if (pieces_.empty()) return arrow::Table::MakeEmpty(schema_);
    return arrow::ConcatenateTables(pieces_);
  }
  size_t writes() const { return pieces_.size(); }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::Table>> pieces_;
};

class StreamedRetrievalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.Join("stratalake.yaml"),
              "project: t\noffline_store: lake\nregistry: registry.db\n"
              "definitions: [definitions]\n");
    WriteFile(dir_.Join("definitions/defs.yaml"), kDefinitions);
    ASSERT_OK_AND_ASSIGN(repo_, repo::FeatureRepository::Open(dir_.path()));
    ASSERT_OK_AND_ASSIGN(auto defs, repo_->LoadValidatedDefinitions());
    ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
    ASSERT_OK(reg->Apply(defs, registry::CompatibilityPolicy::kNone, "test", "").status());
    std::mt19937_64 rng(20261121);
    // Two commits per source: the arrival order matters for ties.
    for (int i = 0; i < 2; ++i) {
      ASSERT_OK_AND_ASSIGN(auto stats, delta::DeltaTable::ForPath(repo_->TableUri("gold/stats")));
      ASSERT_OK(stats->Write(RandomStats(&rng, 40000), delta::WriteOptions{}).status());
      ASSERT_OK_AND_ASSIGN(auto merch,
                           delta::DeltaTable::ForPath(repo_->TableUri("gold/merchants")));
      ASSERT_OK(merch->Write(RandomMerchants(&rng, 10000), delta::WriteOptions{}).status());
    }
    entities_ = RandomEntities(&rng, 200000);
  }

  HistoricalRequest Request() const {
    HistoricalRequest req;
    req.features = {"stats:spend", "stats:tier", "recent:spend", "merchants:rating"};
    req.full_feature_names = true;
    return req;
  }

  // The in-memory result, the reference for the streamed ones.
  std::shared_ptr<arrow::Table> Reference() {
    HistoricalRequest req = Request();
    req.entities = entities_;
    auto r = GetHistoricalFeatures(*repo_, req);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r->table;
  }

  static void ExpectSameRows(const arrow::Table& expected, const arrow::Table& actual) {
    ASSERT_TRUE(expected.schema()->Equals(*actual.schema()))
        << expected.schema()->ToString() << "\nvs\n"
        << actual.schema()->ToString();
    ASSERT_EQ(expected.num_rows(), actual.num_rows());
    for (int c = 0; c < expected.num_columns(); ++c) {
      EXPECT_TRUE(expected.column(c)->Equals(*actual.column(c)))
          << "column " << expected.schema()->field(c)->name() << " differs";
    }
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
  std::shared_ptr<arrow::Table> entities_;
};

TEST_F(StreamedRetrievalTest, TinyBudgetGivesTheInMemoryResultRowForRow) {
  auto expected = Reference();
  ASSERT_TRUE(expected);
  // Matches happen, and so do misses (unknown keys, null times, TTL).
  for (const char* name : {"stats__spend", "recent__spend", "merchants__rating"}) {
    auto col = expected->GetColumnByName(name);
    EXPECT_GT(col->null_count(), 1000) << name;
    EXPECT_LT(col->null_count(), expected->num_rows() - 1000) << name;
  }

  // The entity rows as a Parquet file read batch by batch, and as a table.
  std::string path = dir_.Join("entities.parquet");
  {
    ASSERT_OK_AND_ASSIGN(auto out, arrow::io::FileOutputStream::Open(path));
    ASSERT_OK(parquet::arrow::WriteTable(*entities_, arrow::default_memory_pool(), out, 10000));
    ASSERT_OK(out->Close());
  }
  int opens = 0;
  EntityReaderFactory from_file =
      [&]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
    ++opens;
    ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::ReadableFile::Open(path));
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
    ARROW_ASSIGN_OR_RAISE(auto table_reader, reader->GetRecordBatchReader());
    // Keep the file reader alive with the batches: read them all here (small test file).
    ARROW_ASSIGN_OR_RAISE(auto table, table_reader->ToTable());
    return std::make_shared<arrow::TableBatchReader>(table);
  };
  // The budget is far below the entity rows (~8 MB) and the output (~15 MB).
  const int64_t budget = 2 << 20;
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "from a table" : "from a file");
    HistoricalRequest req = Request();
    req.memory_budget_bytes = budget;
    if (variant == 0) {
      // Re-chunked so that no single batch is over the budget.
      arrow::TableBatchReader rechunk(*entities_);
      rechunk.set_chunksize(8192);
      ASSERT_OK_AND_ASSIGN(req.entities, rechunk.ToTable());
    } else {
      req.open_entities = from_file;
    }
    CollectingSink sink;
    ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req, &sink));
    EXPECT_EQ(result.table, nullptr);
    EXPECT_EQ(result.rows, entities_->num_rows());
    EXPECT_TRUE(result.schema->Equals(*expected->schema()));
    EXPECT_GT(sink.writes(), 10u) << "the retrieval did not stream";
    ASSERT_OK_AND_ASSIGN(auto got, sink.Table());
    ExpectSameRows(*expected, *got);
    EXPECT_EQ(result.sources.size(), 2u);
  }
  EXPECT_EQ(opens, 2) << "a streamed retrieval reads the entity rows twice";
}

TEST_F(StreamedRetrievalTest, WithinTheBudgetItIsOneInMemoryPiece) {
  auto expected = Reference();
  ASSERT_TRUE(expected);
  HistoricalRequest req = Request();
  req.entities = entities_;
  req.memory_budget_bytes = int64_t{1} << 30;
  CollectingSink sink;
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req, &sink));
  EXPECT_EQ(sink.writes(), 1u);
  ASSERT_OK_AND_ASSIGN(auto got, sink.Table());
  ExpectSameRows(*expected, *got);
}

TEST_F(StreamedRetrievalTest, EmptyEntityRowsGiveTheSchema) {
  HistoricalRequest req = Request();
  req.entities = entities_->Slice(0, 0);
  req.memory_budget_bytes = 1 << 20;
  CollectingSink sink;
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req, &sink));
  EXPECT_EQ(result.rows, 0);
  ASSERT_OK_AND_ASSIGN(auto got, sink.Table());
  EXPECT_EQ(got->num_rows(), 0);
  EXPECT_EQ(got->num_columns(), 8);
}

TEST_F(StreamedRetrievalTest, ErrorsNameTheProblemBeforeAnyRowIsWritten) {
  HistoricalRequest req = Request();
  req.features = {"stats:nope"};
  req.entities = entities_;
  req.memory_budget_bytes = 1 << 20;
  CollectingSink sink;
  EXPECT_FALSE(GetHistoricalFeatures(*repo_, req, &sink).ok());
  EXPECT_EQ(sink.writes(), 0u);
  HistoricalRequest none = Request();
  EXPECT_FALSE(GetHistoricalFeatures(*repo_, none, &sink).ok());
}

// ---- saved datasets, streamed -------------------------------------------------------

TEST_F(StreamedRetrievalTest, DatasetsSaveAndRecreateStreamedWithinABudget) {
  auto expected = Reference();
  ASSERT_TRUE(expected);
  const int64_t budget = 2 << 20;  // far below the entity rows and the output
  // Saved while streamed: every piece becomes data files as it arrives.
  HistoricalRequest req = Request();
  {
    arrow::TableBatchReader rechunk(*entities_);
    rechunk.set_chunksize(8192);
    ASSERT_OK_AND_ASSIGN(req.entities, rechunk.ToTable());
  }
  req.memory_budget_bytes = budget;
  ASSERT_OK_AND_ASSIGN(auto writer, DatasetWriter::Open(*repo_, "streamed", req));
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req, writer.get()));
  ASSERT_OK_AND_ASSIGN(auto streamed, writer->Finish(result));
  // Saved whole, from the in-memory retrieval.
  HistoricalRequest whole_req = Request();
  whole_req.entities = entities_;
  ASSERT_OK_AND_ASSIGN(auto whole_result, GetHistoricalFeatures(*repo_, whole_req));
  ASSERT_OK_AND_ASSIGN(auto whole, SaveDataset(*repo_, "whole", whole_req, whole_result));

  EXPECT_EQ(streamed.rows, entities_->num_rows());
  EXPECT_EQ(whole.rows, entities_->num_rows());
  EXPECT_EQ(streamed.entity_columns,
            (std::vector<std::string>{"customer_id", "merchant", "event_timestamp", "label"}));
  EXPECT_EQ(streamed.entity_hash_version, 2);
  // The entity hash does not depend on how the rows arrived.
  EXPECT_EQ(streamed.entity_hash, whole.entity_hash);
  EXPECT_EQ(streamed.entity_hash.size(), 32u);
  for (const auto* m : {&streamed, &whole}) {
    ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::Open(m->table_uri));
    ASSERT_OK_AND_ASSIGN(auto saved, table->Read(delta::ReadOptions{}));
    ExpectSameRows(*expected, *saved);
  }
  ASSERT_OK_AND_ASSIGN(auto streamed_table, delta::DeltaTable::Open(streamed.table_uri));
  ASSERT_OK_AND_ASSIGN(auto snap, streamed_table->Latest());
  EXPECT_EQ(snap->version(), 0) << "one commit";
  EXPECT_GT(snap->files().size(), 10u) << "the save did not stream";
  ASSERT_OK_AND_ASSIGN(auto loaded, LoadDatasetManifest(*repo_, "streamed"));
  EXPECT_EQ(ManifestToJson(loaded), ManifestToJson(streamed));

  // The sources change; both recreate identically, streamed within the budget
  // or in memory.
  ASSERT_OK_AND_ASSIGN(auto stats, delta::DeltaTable::ForPath(repo_->TableUri("gold/stats")));
  std::mt19937_64 rng(7);
  ASSERT_OK(stats->Write(RandomStats(&rng, 40000), delta::WriteOptions{}).status());
  for (const char* name : {"streamed", "whole"}) {
    SCOPED_TRACE(name);
    CollectingSink sink;
    ASSERT_OK_AND_ASSIGN(auto rec, RecreateDataset(*repo_, name, &sink, budget));
    EXPECT_TRUE(rec.identical) << rec.difference;
    EXPECT_EQ(rec.rows, entities_->num_rows());
    EXPECT_EQ(rec.table, nullptr);
    EXPECT_GT(sink.writes(), 10u) << "the recreate did not stream";
    ASSERT_OK_AND_ASSIGN(auto got, sink.Table());
    ExpectSameRows(*expected, *got);
    ASSERT_OK_AND_ASSIGN(auto in_memory, RecreateDataset(*repo_, name));
    EXPECT_TRUE(in_memory.identical) << in_memory.difference;
    ExpectSameRows(*expected, *in_memory.table);
  }
}

TEST_F(StreamedRetrievalTest, RecreateNamesTheFirstDifferentValue) {
  HistoricalRequest req = Request();
  req.entities = entities_;
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req));
  ASSERT_OK_AND_ASSIGN(auto m, SaveDataset(*repo_, "pinned", req, result));
  // Pin the stats source to its first commit: the rebuilt rows differ from the
  // saved ones wherever a row of the second commit won.
  for (auto& s : m.sources) {
    if (s.source == "stats") {
      ASSERT_EQ(s.version, 1);
      s.version = 0;
    }
  }
  WriteFile(repo_->TableUri("datasets/pinned.manifest.json"), ManifestToJson(m));
  // Where the first difference is, from the in-memory retrieval at version 0.
  HistoricalRequest v0 = req;
  v0.source_versions["stats"] = 0;
  ASSERT_OK_AND_ASSIGN(auto other, GetHistoricalFeatures(*repo_, v0));
  int64_t first_row = -1;
  std::string first_column;
  for (int64_t r = 0; r < result.table->num_rows() && first_row < 0; ++r) {
    for (int c = 0; c < result.table->num_columns(); ++c) {
      ASSERT_OK_AND_ASSIGN(auto a, result.table->column(c)->GetScalar(r));
      ASSERT_OK_AND_ASSIGN(auto b, other.table->column(c)->GetScalar(r));
      if (!a->Equals(*b)) {
        first_row = r;
        first_column = result.table->schema()->field(c)->name();
        break;
      }
    }
  }
  ASSERT_GE(first_row, 0) << "the pinned version changes nothing";
  for (int64_t budget : {int64_t{0}, int64_t{2} << 20}) {
    ASSERT_OK_AND_ASSIGN(auto rec, RecreateDataset(*repo_, "pinned", nullptr, budget));
    EXPECT_FALSE(rec.identical);
    EXPECT_EQ(rec.difference.rfind(
                  "row " + std::to_string(first_row) + " column '" + first_column + "': saved ", 0),
              0u)
        << rec.difference;
  }
}

TEST_F(StreamedRetrievalTest, ADatasetWriterWithoutFinishLeavesNoDataset) {
  HistoricalRequest req = Request();
  req.entities = entities_->Slice(0, 1000);
  EXPECT_FALSE(DatasetWriter::Open(*repo_, "9lives", req).ok());
  EXPECT_FALSE(DatasetWriter::Open(*repo_, "a/b", req).ok());
  {
    ASSERT_OK_AND_ASSIGN(auto writer, DatasetWriter::Open(*repo_, "dropped", req));
    ASSERT_OK(GetHistoricalFeatures(*repo_, req, writer.get()).status());
  }
  ASSERT_OK_AND_ASSIGN(auto listed, ListDatasets(*repo_));
  EXPECT_TRUE(listed.empty());
  int files = 0;
  std::string dir = repo_->TableUri("datasets/dropped");
  if (std::filesystem::exists(dir)) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
      files += e.is_regular_file() ? 1 : 0;
    }
  }
  EXPECT_EQ(files, 0);
  // The name is free; once saved, it is taken.
  ASSERT_OK_AND_ASSIGN(auto writer, DatasetWriter::Open(*repo_, "dropped", req));
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req, writer.get()));
  ASSERT_OK_AND_ASSIGN(auto m, writer->Finish(result));
  EXPECT_EQ(m.rows, 1000);
  EXPECT_FALSE(writer->Finish(result).ok());
  auto again = DatasetWriter::Open(*repo_, "dropped", req);
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(HasErrorKind(again.status(), ErrorKind::kTableAlreadyExists));
}

TEST_F(StreamedRetrievalTest, Issue24DatasetNamesAreCheckedOnEveryCommand) {
  const std::string msg =
      "invalid dataset name '../../gold/stats': use letters, digits, '_' and '-', starting "
      "with a letter";
  auto describe = LoadDatasetManifest(*repo_, "../../gold/stats");
  ASSERT_FALSE(describe.ok());
  EXPECT_TRUE(HasErrorKind(describe.status(), ErrorKind::kDefinitionError));
  EXPECT_EQ(describe.status().message(), msg);
  auto recreate = RecreateDataset(*repo_, "../../gold/stats", nullptr);
  ASSERT_FALSE(recreate.ok());
  EXPECT_EQ(recreate.status().message(), msg);
  EXPECT_EQ(RecreateDataset(*repo_, "/etc/passwd", nullptr).status().message(),
            "invalid dataset name '/etc/passwd': use letters, digits, '_' and '-', starting "
            "with a letter");
}

TEST_F(StreamedRetrievalTest, Issue24AFailedSaveLeavesNoHalfWrittenDataset) {
  HistoricalRequest req = Request();
  req.entities = entities_->Slice(0, 1000);
  // The manifest cannot be put in place (a folder with a file is in its way: the
  // rename onto it fails): the commit is undone and no manifest is written.
  const std::string manifest = repo_->TableUri("datasets/half.manifest.json");
  {
    ASSERT_OK_AND_ASSIGN(auto writer, DatasetWriter::Open(*repo_, "half", req));
    std::filesystem::create_directories(manifest + "/blocker");
    ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req, writer.get()));
    EXPECT_FALSE(writer->Finish(result).ok());
    EXPECT_FALSE(std::filesystem::exists(repo_->TableUri("datasets/half")));
  }
  EXPECT_FALSE(std::filesystem::is_regular_file(manifest));
  std::filesystem::remove_all(manifest);
  ASSERT_OK_AND_ASSIGN(auto listed, ListDatasets(*repo_));
  EXPECT_TRUE(listed.empty());
  // The name is free again.
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req));
  ASSERT_OK_AND_ASSIGN(auto m, SaveDataset(*repo_, "half", req, result));
  EXPECT_EQ(m.rows, 1000);
  // Files in the folder but no table: refused, never deleted.
  std::filesystem::create_directories(repo_->TableUri("datasets/stray"));
  WriteFile(repo_->TableUri("datasets/stray/keep.txt"), "mine");
  auto stray = DatasetWriter::Open(*repo_, "stray", req);
  ASSERT_FALSE(stray.ok());
  EXPECT_EQ(stray.status().message(),
            "dataset folder " + repo_->TableUri("datasets/stray") +
                " holds files but no Delta table (left by a failed save?); remove it or choose "
                "another name");
  EXPECT_TRUE(std::filesystem::exists(repo_->TableUri("datasets/stray/keep.txt")));
}

TEST_F(StreamedRetrievalTest, ManifestsWithTheWholeTableHashStillRecreate) {
  // Manifests written before the streamed hash carry no entity_hash_version
  // and ContentHash of the whole entity table.
  HistoricalRequest req = Request();
  req.entities = entities_->Slice(0, 5000);
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req));
  ASSERT_OK_AND_ASSIGN(auto m, SaveDataset(*repo_, "legacy", req, result));
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::Open(m.table_uri));
  delta::ReadOptions ro;
  ro.columns = m.entity_columns;
  ASSERT_OK_AND_ASSIGN(auto stored, table->Read(ro));
  ASSERT_OK_AND_ASSIGN(std::string v1, ContentHash(*stored));
  EXPECT_NE(v1, m.entity_hash);
  std::string json = ManifestToJson(m);
  auto replace = [&](const std::string& from, const std::string& to) {
    auto at = json.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    json.replace(at, from.size(), to);
  };
  replace(m.entity_hash, v1);
  replace("\"entity_hash_version\": 2,", "");
  const std::string path = repo_->TableUri("datasets/legacy.manifest.json");
  WriteFile(path, json);
  ASSERT_OK_AND_ASSIGN(auto loaded, LoadDatasetManifest(*repo_, "legacy"));
  EXPECT_EQ(loaded.entity_hash_version, 1);
  ASSERT_OK_AND_ASSIGN(auto rec, RecreateDataset(*repo_, "legacy", nullptr, 0));
  EXPECT_TRUE(rec.identical) << rec.difference;
  // A hash that does not match the stored entity rows is reported.
  WriteFile(path, json.replace(json.find(v1), v1.size(), std::string(32, '0')));
  ASSERT_OK_AND_ASSIGN(auto bad, RecreateDataset(*repo_, "legacy", nullptr, 0));
  EXPECT_FALSE(bad.identical);
  EXPECT_NE(bad.difference.find("no longer match the manifest's hash"), std::string::npos);
  // An unknown hash version is refused, not guessed at.
  std::string future = ManifestToJson(m);
  future.replace(future.find("\"entity_hash_version\": 2"), 24, "\"entity_hash_version\": 3");
  WriteFile(path, future);
  auto refused = LoadDatasetManifest(*repo_, "legacy");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("entity_hash_version 3"), std::string::npos);
}

TEST(EntityHasherTest, TheHashDependsOnTheRowsNotOnTheirChunks) {
  std::mt19937_64 rng(11);
  const int64_t n = 150000;  // more than two blocks
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_OK(rng() % 7 == 0 ? ids.AppendNull() : ids.Append(static_cast<int64_t>(rng() % 1000)));
    ASSERT_OK(rng() % 5 == 0 ? names.AppendNull()
                             : names.Append(std::string(rng() % 12, 'a' + rng() % 26)));
  }
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())});
  ASSERT_OK_AND_ASSIGN(auto id_array, ids.Finish());
  ASSERT_OK_AND_ASSIGN(auto name_array, names.Finish());
  auto whole = arrow::RecordBatch::Make(schema, n, {id_array, name_array});
  auto hash = [&](const std::shared_ptr<arrow::Schema>& s, std::vector<int64_t> cuts,
                  std::shared_ptr<arrow::RecordBatch> rows) {
    EntityHasher h(s);
    int64_t at = 0;
    cuts.push_back(n);
    for (int64_t cut : cuts) {
      EXPECT_TRUE(h.Add(rows->Slice(at, cut - at)).ok());
      at = cut;
    }
    auto r = h.Finish();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::string();
  };
  const std::string one = hash(schema, {}, whole);
  EXPECT_EQ(one.size(), 32u);
  EXPECT_EQ(hash(schema, {1, 2, 65535, 65536, 65537, 100000, 149999}, whole), one);
  std::vector<int64_t> random_cuts;
  for (int64_t at = 0; at < n; at += 1 + static_cast<int64_t>(rng() % 20000)) {
    if (at > 0) random_cuts.push_back(at);
  }
  EXPECT_EQ(hash(schema, random_cuts, whole), one);
  // One changed value, or the same values under another name, hash differently.
  ASSERT_OK_AND_ASSIGN(
      auto changed_ids,
      arrow::Concatenate(
          {id_array->Slice(0, 70000),
           arrow::json::ArrayFromJSONString(arrow::int64(), "[123456789]").ValueOrDie(),
           id_array->Slice(70001)}));
  EXPECT_NE(hash(schema, {}, arrow::RecordBatch::Make(schema, n, {changed_ids, name_array})), one);
  auto renamed =
      arrow::schema({arrow::field("user", arrow::int64()), arrow::field("name", arrow::utf8())});
  EXPECT_NE(hash(renamed, {}, arrow::RecordBatch::Make(renamed, n, {id_array, name_array})), one);
  // Rows of another schema are refused.
  EntityHasher h(renamed);
  EXPECT_FALSE(h.Add(whole).ok());
}

}  // namespace
}  // namespace stratalake::retrieval
