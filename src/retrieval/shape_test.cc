// The shape of a training set (issue 19, item 5): entity columns exactly as
// given, then the features in request order, in memory, streamed, in the
// output files and in saved datasets; and the warnings a retrieval from empty
// sources gives (issue 23, item 3).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <arrow/api.h>
#include <arrow/io/api.h>
#include <arrow/util/key_value_metadata.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>

#include "../../tests/test_util.h"
#include "stratalake/delta.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"

namespace stratalake::retrieval {
namespace {

using stratalake::testing::TempDir;

constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01T00:00:00Z in µs
constexpr int64_t kHour = 3600LL * 1000000;

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// Two views over two sources; a service whose items interleave them.
const char* kDefinitions = R"(entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: a_src
    type: delta
    path: gold/a
    timestamp_field: event_ts
    schema:
      - {name: customer_id, type: int64}
      - {name: event_ts, type: timestamp}
      - {name: x, type: float64}
      - {name: z, type: int64}
  - name: b_src
    type: delta
    path: gold/b
    timestamp_field: event_ts
    schema:
      - {name: customer_id, type: int64}
      - {name: event_ts, type: timestamp}
      - {name: y, type: string}
feature_views:
  - name: a
    entities: [customer]
    source: a_src
    ttl: 0
    features:
      - {name: x, type: float64}
      - {name: z, type: int64}
  - name: b
    entities: [customer]
    source: b_src
    ttl: 0
    features:
      - {name: y, type: string}
feature_services:
  - name: interleaved
    features:
      - a:z
      - b:y
      - a:x
)";

std::shared_ptr<arrow::Table> ARows() {
  auto ts = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  auto schema =
      arrow::schema({arrow::field("customer_id", arrow::int64()), arrow::field("event_ts", ts),
                     arrow::field("x", arrow::float64()), arrow::field("z", arrow::int64())});
  arrow::Int64Builder id, z;
  arrow::TimestampBuilder t(ts, arrow::default_memory_pool());
  arrow::DoubleBuilder x;
  for (int i = 1; i <= 3; ++i) {
    (void)id.Append(i);
    (void)t.Append(kT0 + i * kHour);
    (void)x.Append(i * 1.5);
    (void)z.Append(i * 10);
  }
  arrow::ArrayVector cols(4);
  (void)id.Finish(&cols[0]);
  (void)t.Finish(&cols[1]);
  (void)x.Finish(&cols[2]);
  (void)z.Finish(&cols[3]);
  return arrow::Table::Make(schema, cols);
}

std::shared_ptr<arrow::Table> BRows() {
  auto ts = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  auto schema = arrow::schema({arrow::field("customer_id", arrow::int64()),
                               arrow::field("event_ts", ts), arrow::field("y", arrow::utf8())});
  arrow::Int64Builder id;
  arrow::TimestampBuilder t(ts, arrow::default_memory_pool());
  arrow::StringBuilder y;
  for (int i = 1; i <= 3; ++i) {
    (void)id.Append(i);
    (void)t.Append(kT0 + i * kHour);
    (void)y.Append("y" + std::to_string(i));
  }
  arrow::ArrayVector cols(3);
  (void)id.Finish(&cols[0]);
  (void)t.Finish(&cols[1]);
  (void)y.Finish(&cols[2]);
  return arrow::Table::Make(schema, cols);
}

// Entity columns of many types, with field and schema metadata, one not nullable.
std::shared_ptr<arrow::Table> ExoticEntities() {
  const int64_t day = 86400;
  const int64_t t0_s = kT0 / 1000000 + day;  // a day after the features
  auto berlin = arrow::timestamp(arrow::TimeUnit::MICRO, "Europe/Berlin");
  auto field_meta = arrow::key_value_metadata({"origin"}, {"labels v2"});
  auto schema = arrow::schema(
      {arrow::field("customer_id", arrow::int64(), /*nullable=*/false),
       arrow::field("label_ts", berlin, true, field_meta),
       arrow::field("ts_ms", arrow::timestamp(arrow::TimeUnit::MILLI, "UTC")),
       arrow::field("ts_ns", arrow::timestamp(arrow::TimeUnit::NANO)),
       arrow::field("ts_s", arrow::timestamp(arrow::TimeUnit::SECOND, "America/New_York")),
       arrow::field("day", arrow::date32()), arrow::field("day64", arrow::date64()),
       arrow::field("note", arrow::large_utf8()),
       arrow::field("country", arrow::dictionary(arrow::int32(), arrow::utf8())),
       arrow::field("label", arrow::boolean())},
      arrow::key_value_metadata({"source"}, {"exotic"}));
  arrow::Int64Builder id;
  arrow::TimestampBuilder label_ts(berlin, arrow::default_memory_pool());
  arrow::TimestampBuilder ms(schema->field(2)->type(), arrow::default_memory_pool());
  arrow::TimestampBuilder ns(schema->field(3)->type(), arrow::default_memory_pool());
  arrow::TimestampBuilder s(schema->field(4)->type(), arrow::default_memory_pool());
  arrow::Date32Builder d32;
  arrow::Date64Builder d64;
  arrow::LargeStringBuilder note;
  arrow::StringDictionary32Builder country;
  arrow::BooleanBuilder label;
  for (int i = 0; i < 4; ++i) {
    (void)id.Append(i + 1);  // 4 is unknown to the features
    (void)label_ts.Append((t0_s + i * 3600) * 1000000);
    (void)ms.Append((t0_s + i) * 1000);
    (void)ns.Append((t0_s + i) * 1000000000LL + 7000);  // Delta keeps µs
    (void)s.Append(t0_s + i);
    (void)d32.Append(static_cast<int32_t>(t0_s / day + i));
    (void)d64.Append((t0_s / day + i) * day * 1000);
    i == 2 ? (void)note.AppendNull() : (void)note.Append("note " + std::to_string(i));
    (void)country.Append(i % 2 ? "DE" : "FR");
    (void)label.Append(i % 2 == 0);
  }
  arrow::ArrayVector cols(10);
  (void)id.Finish(&cols[0]);
  (void)label_ts.Finish(&cols[1]);
  (void)ms.Finish(&cols[2]);
  (void)ns.Finish(&cols[3]);
  (void)s.Finish(&cols[4]);
  (void)d32.Finish(&cols[5]);
  (void)d64.Finish(&cols[6]);
  (void)note.Finish(&cols[7]);
  (void)country.Finish(&cols[8]);
  (void)label.Finish(&cols[9]);
  return arrow::Table::Make(schema, cols);
}

class CollectingSink final : public HistoricalSink {
 public:
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    schema_ = schema;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    pieces_.push_back(rows);
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Table() const {
    if (pieces_.empty()) return arrow::Table::MakeEmpty(schema_);
    return arrow::ConcatenateTables(pieces_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::Table>> pieces_;
};

// Value for value, however the columns are chunked.
bool SameValues(const arrow::ChunkedArray& a, const arrow::ChunkedArray& b) {
  auto x = arrow::Concatenate(a.chunks());
  auto y = arrow::Concatenate(b.chunks());
  if (!x.ok() || !y.ok()) return false;
  return (*x)->Equals(**y);
}

bool SameRows(const arrow::Table& a, const arrow::Table& b) {
  if (a.num_columns() != b.num_columns()) return false;
  for (int c = 0; c < a.num_columns(); ++c) {
    if (!SameValues(*a.column(c), *b.column(c))) {
      ADD_FAILURE() << "column " << a.schema()->field(c)->name() << ": " << a.column(c)->ToString()
                    << "\nvs\n"
                    << b.column(c)->ToString();
      return false;
    }
  }
  return true;
}

std::string SchemaText(const arrow::Schema& s) { return s.ToString(/*show_metadata=*/true); }

class TrainingSetShapeTest : public ::testing::Test {
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
  }

  void Ingest() {
    ASSERT_OK_AND_ASSIGN(auto a, delta::DeltaTable::ForPath(repo_->TableUri("gold/a")));
    ASSERT_OK(a->Write(ARows(), delta::WriteOptions{}).status());
    ASSERT_OK_AND_ASSIGN(auto b, delta::DeltaTable::ForPath(repo_->TableUri("gold/b")));
    ASSERT_OK(b->Write(BRows(), delta::WriteOptions{}).status());
  }

  HistoricalRequest Request(std::vector<std::string> features) const {
    HistoricalRequest req;
    req.entities = ExoticEntities();
    req.timestamp_column = "label_ts";
    req.features = std::move(features);
    return req;
  }

  // In memory, and streamed in slices within a tiny budget.
  std::vector<std::shared_ptr<arrow::Table>> RunBothWays(const HistoricalRequest& req) {
    std::vector<std::shared_ptr<arrow::Table>> out;
    auto in_memory = GetHistoricalFeatures(*repo_, req);
    EXPECT_TRUE(in_memory.ok()) << in_memory.status().ToString();
    if (!in_memory.ok()) return out;
    out.push_back(in_memory->table);
    HistoricalRequest streamed_req = req;
    streamed_req.memory_budget_bytes = 64;  // forces the streamed retrieval
    CollectingSink sink;
    auto streamed = GetHistoricalFeatures(*repo_, streamed_req, &sink);
    EXPECT_TRUE(streamed.ok()) << streamed.status().ToString();
    if (!streamed.ok()) return out;
    EXPECT_EQ(streamed->feature_refs, in_memory->feature_refs);
    auto table = sink.Table();
    EXPECT_TRUE(table.ok());
    out.push_back(*table);
    return out;
  }

  TempDir dir_;
  std::unique_ptr<repo::FeatureRepository> repo_;
};

std::vector<std::string> Names(const arrow::Table& t) { return t.schema()->field_names(); }

const std::vector<std::string> kEntityNames = {"customer_id", "label_ts", "ts_ms", "ts_ns",
                                               "ts_s",        "day",      "day64", "note",
                                               "country",     "label"};

std::vector<std::string> WithEntities(std::vector<std::string> features) {
  std::vector<std::string> out = kEntityNames;
  out.insert(out.end(), features.begin(), features.end());
  return out;
}

TEST_F(TrainingSetShapeTest, Issue19FeaturesComeInRequestOrderAcrossViews) {
  Ingest();
  auto req = Request({"a:x", "b:y", "a:z"});
  for (const auto& t : RunBothWays(req)) {
    EXPECT_EQ(Names(*t), WithEntities({"x", "y", "z"}));
    ASSERT_EQ(t->num_rows(), 4);
    // Row 0: customer 1, a day after its features.
    auto x = t->GetColumnByName("x")->GetScalar(0);
    auto y = t->GetColumnByName("y")->GetScalar(0);
    auto z = t->GetColumnByName("z")->GetScalar(0);
    EXPECT_EQ((*x)->ToString(), "1.5");
    EXPECT_EQ((*y)->ToString(), "y1");
    EXPECT_EQ((*z)->ToString(), "10");
  }
  ASSERT_OK_AND_ASSIGN(auto r, GetHistoricalFeatures(*repo_, req));
  EXPECT_EQ(r.feature_refs, (std::vector<std::string>{"a:x", "b:y", "a:z"}));
  EXPECT_TRUE(r.warnings.empty());

  // A whole view takes its declared feature order at its place in the request.
  for (const auto& t : RunBothWays(Request({"b:y", "a"}))) {
    EXPECT_EQ(Names(*t), WithEntities({"y", "x", "z"}));
  }
  // Full names follow the same order; a feature asked for twice keeps its first place.
  auto full = Request({"a:z", "b:y", "a:x", "a:z"});
  full.full_feature_names = true;
  for (const auto& t : RunBothWays(full)) {
    EXPECT_EQ(Names(*t), WithEntities({"a__z", "b__y", "a__x"}));
  }
}

TEST_F(TrainingSetShapeTest, Issue19AFeatureServiceKeepsItsDeclaredOrder) {
  Ingest();
  HistoricalRequest req = Request({});
  req.feature_service = "interleaved";
  for (const auto& t : RunBothWays(req)) EXPECT_EQ(Names(*t), WithEntities({"z", "y", "x"}));
  ASSERT_OK_AND_ASSIGN(auto r, GetHistoricalFeatures(*repo_, req));
  EXPECT_EQ(r.feature_refs, (std::vector<std::string>{"a:z", "b:y", "a:x"}));
}

TEST_F(TrainingSetShapeTest, Issue19EntityColumnsComeBackExactlyAsGiven) {
  Ingest();
  auto entities = ExoticEntities();
  auto req = Request({"b:y", "a:x"});
  int run = 0;
  for (const auto& t : RunBothWays(req)) {
    SCOPED_TRACE(run++ == 0 ? "in memory" : "streamed");
    ASSERT_EQ(t->num_columns(), entities->num_columns() + 2);
    EXPECT_TRUE(t->schema()->HasMetadata());
    EXPECT_TRUE(t->schema()->metadata()->Equals(*entities->schema()->metadata()));
    for (int c = 0; c < entities->num_columns(); ++c) {
      EXPECT_TRUE(t->schema()->field(c)->Equals(*entities->schema()->field(c), true))
          << t->schema()->field(c)->ToString(true) << " vs "
          << entities->schema()->field(c)->ToString(true);
      EXPECT_TRUE(SameValues(*t->column(c), *entities->column(c)))
          << entities->schema()->field(c)->name() << "\n"
          << t->column(c)->ToString() << "\nvs\n"
          << entities->column(c)->ToString();
    }
  }
}

TEST_F(TrainingSetShapeTest, Issue19TheParquetFileKeepsTheExactSchema) {
  Ingest();
  auto req = Request({"b:y", "a:x"});
  ASSERT_OK_AND_ASSIGN(auto expected, GetHistoricalFeatures(*repo_, req));
  const std::string path = dir_.Join("train.parquet");
  {
    ParquetFileSink sink(path);
    ASSERT_OK(GetHistoricalFeatures(*repo_, req, &sink).status());
    ASSERT_OK(sink.Close());
  }
  ASSERT_OK_AND_ASSIGN(auto back, ReadTableFile(path));
  for (int c = 0; c < expected.table->num_columns(); ++c) {
    EXPECT_TRUE(back->schema()->field(c)->Equals(*expected.table->schema()->field(c), true))
        << back->schema()->field(c)->ToString(true) << " vs "
        << expected.table->schema()->field(c)->ToString(true);
    EXPECT_TRUE(SameValues(*back->column(c), *expected.table->column(c)))
        << expected.table->schema()->field(c)->name() << ": " << back->column(c)->ToString()
        << "\nvs\n"
        << expected.table->column(c)->ToString();
  }
  EXPECT_EQ(Names(*back), Names(*expected.table));
  EXPECT_EQ(back->schema()->metadata()->Get("source").ValueOr(""), "exotic");
}

TEST_F(TrainingSetShapeTest, Issue19TheCsvFileWritesTimesInTheirOwnZone) {
  Ingest();
  auto req = Request({"b:y", "a:x"});
  const std::string path = dir_.Join("train.csv");
  {
    CsvFileSink sink(path);
    ASSERT_OK(GetHistoricalFeatures(*repo_, req, &sink).status());
    ASSERT_OK(sink.Close());
  }
  std::ifstream in(path);
  std::string header, first;
  std::getline(in, header);
  std::getline(in, first);
  EXPECT_EQ(header,
            "\"customer_id\",\"label_ts\",\"ts_ms\",\"ts_ns\",\"ts_s\",\"day\",\"day64\","
            "\"note\",\"country\",\"label\",\"y\",\"x\"");
  // 2026-01-02T00:00:00Z is 01:00 in Berlin and 19:00 the day before in New York.
  EXPECT_EQ(first,
            "1,2026-01-02 01:00:00.000000+0100,2026-01-02 00:00:00.000Z,"
            "2026-01-02 00:00:00.000007000,2026-01-01 19:00:00-0500,2026-01-02,2026-01-02,"
            "\"note 0\",\"FR\",true,\"y1\",1.5");
}

TEST_F(TrainingSetShapeTest, Issue19SavedDatasetsGiveBackTheExactSchema) {
  Ingest();
  auto req = Request({"b:y", "a:x"});
  ASSERT_OK_AND_ASSIGN(auto result, GetHistoricalFeatures(*repo_, req));
  ASSERT_OK_AND_ASSIGN(auto m, SaveDataset(*repo_, "exotic", req, result));
  ASSERT_NE(m.schema, nullptr);
  EXPECT_TRUE(m.schema->Equals(*result.table->schema(), true));
  EXPECT_EQ(m.feature_refs, (std::vector<std::string>{"b:y", "a:x"}));
  ASSERT_OK_AND_ASSIGN(auto loaded, LoadDatasetManifest(*repo_, "exotic"));
  ASSERT_NE(loaded.schema, nullptr);
  EXPECT_TRUE(loaded.schema->Equals(*result.table->schema(), true))
      << SchemaText(*loaded.schema) << "\nvs\n"
      << SchemaText(*result.table->schema());

  ASSERT_OK_AND_ASSIGN(auto reader, ReadDataset(*repo_, "exotic"));
  ASSERT_OK_AND_ASSIGN(auto saved, reader->ToTable());
  EXPECT_TRUE(saved->schema()->Equals(*result.table->schema(), true))
      << SchemaText(*saved->schema()) << "\nvs\n"
      << SchemaText(*result.table->schema());
  EXPECT_TRUE(SameRows(*saved, *result.table));

  ASSERT_OK_AND_ASSIGN(auto rec, RecreateDataset(*repo_, "exotic"));
  EXPECT_TRUE(rec.identical) << rec.difference;
  EXPECT_TRUE(rec.table->schema()->Equals(*result.table->schema(), true))
      << SchemaText(*rec.table->schema());
  EXPECT_TRUE(SameRows(*rec.table, *result.table));
}

TEST_F(TrainingSetShapeTest, Issue23EmptySourcesAreReportedAsWarnings) {
  // Nothing ingested: both sources are missing and every feature is null.
  auto req = Request({"a:x", "b:y"});
  for (int64_t budget : {int64_t{0}, int64_t{64}}) {
    req.memory_budget_bytes = budget;
    CollectingSink sink;
    ASSERT_OK_AND_ASSIGN(auto r, GetHistoricalFeatures(*repo_, req, &sink));
    ASSERT_EQ(r.warnings.size(), 3u);
    EXPECT_EQ(r.warnings[0].code, Warning::Code::kSourceMissing);
    EXPECT_EQ(r.warnings[0].view, "a");
    EXPECT_EQ(r.warnings[0].source, "a_src");
    EXPECT_EQ(r.warnings[1].code, Warning::Code::kSourceMissing);
    EXPECT_EQ(r.warnings[1].view, "b");
    EXPECT_EQ(r.warnings[1].source, "b_src");
    EXPECT_EQ(r.warnings[2].code, Warning::Code::kAllFeaturesNull);
    EXPECT_EQ(r.warnings[2].rows_read, 0);
  }

  // An empty table for one source: kSourceEmpty; the other's rows give values.
  ASSERT_OK_AND_ASSIGN(auto a, delta::DeltaTable::ForPath(repo_->TableUri("gold/a")));
  ASSERT_OK(a->Write(ARows()->Slice(0, 0), delta::WriteOptions{}).status());
  ASSERT_OK_AND_ASSIGN(auto b, delta::DeltaTable::ForPath(repo_->TableUri("gold/b")));
  ASSERT_OK(b->Write(BRows(), delta::WriteOptions{}).status());
  req.memory_budget_bytes = 0;
  ASSERT_OK_AND_ASSIGN(auto r, GetHistoricalFeatures(*repo_, req));
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].code, Warning::Code::kSourceEmpty);
  EXPECT_EQ(r.warnings[0].view, "a");
  EXPECT_EQ(WarningCodeName(r.warnings[0].code), std::string("source_empty"));

  // Rows everywhere, but none at or before the entity times: all null, rows read.
  auto early = Request({"b:y"});
  auto entities = ExoticEntities();
  auto times = arrow::TimestampScalar(kT0 - kHour, entities->schema()->field(1)->type());
  ASSERT_OK_AND_ASSIGN(auto before, arrow::MakeArrayFromScalar(times, entities->num_rows()));
  ASSERT_OK_AND_ASSIGN(early.entities,
                       entities->SetColumn(1, entities->schema()->field(1),
                                           std::make_shared<arrow::ChunkedArray>(before)));
  ASSERT_OK_AND_ASSIGN(auto none, GetHistoricalFeatures(*repo_, early));
  ASSERT_EQ(none.warnings.size(), 1u);
  EXPECT_EQ(none.warnings[0].code, Warning::Code::kAllFeaturesNull);
}

}  // namespace
}  // namespace stratalake::retrieval
