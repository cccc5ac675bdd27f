#include "sample/sample_data.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>
#include <rapidjson/document.h>

#include "../../tests/test_util.h"
#include "stratalake/clock.h"
#include "stratalake/init.h"

// The checks below re-derive everything from the written files with their own parsing
// (std::chrono for timestamps, RapidJSON for clicks), independent of the generator.

namespace stratalake::repo {
namespace {

using stratalake::testing::TempDir;

constexpr int64_t kDay = 86400;

/// Seconds since the epoch of "YYYY-MM-DDTHH:MM:SSZ", or nullopt when malformed.
std::optional<int64_t> ParseIso(const std::string& s) {
  int y, mo, d, h, mi, se;
  char z;
  if (s.size() != 20 ||
      std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 ||
      z != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T') {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo),
                                        std::chrono::day(d)};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 59) return std::nullopt;
  return std::chrono::sys_days(ymd).time_since_epoch().count() * kDay + h * 3600 + mi * 60 + se;
}

int64_t Iso(const std::string& s) { return ParseIso(s).value(); }

const int64_t kWindowStart = Iso("2026-06-01T00:00:00Z");
const int64_t kWindowEnd = Iso("2026-08-31T23:59:59Z");

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string f; std::getline(ss, f, ',');) out.push_back(f);
  return out;
}

/// "123.45" -> 12345; -1 when not exactly two decimals.
int64_t Cents(const std::string& s) {
  const auto dot = s.find('.');
  if (dot == std::string::npos || dot == 0 || s.size() - dot != 3) return -1;
  return std::stoll(s.substr(0, dot)) * 100 + std::stoll(s.substr(dot + 1));
}

struct CustomerRow {
  int64_t customer_id;
  std::string name, email, country, segment;
  int64_t age, signup_ts, updated_ts;
};

struct OrderRow {
  int64_t order_id, customer_id, cents;
  std::string currency, status;
  int64_t order_ts, ingested_ts;
};

struct ClickRow {
  int64_t customer_id;
  int64_t event_ts;
  int64_t dwell_ms;
};

std::vector<CustomerRow> ReadCustomers(const std::string& dir) {
  auto lines = Lines(dir + "/customers.csv");
  EXPECT_EQ(lines.at(0), "customer_id,name,email,country,segment,age,signup_ts,updated_ts");
  std::vector<CustomerRow> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto f = Split(lines[i]);
    EXPECT_EQ(f.size(), 8u) << lines[i];
    if (f.size() != 8) continue;
    rows.push_back(
        {std::stoll(f[0]), f[1], f[2], f[3], f[4], std::stoll(f[5]), Iso(f[6]), Iso(f[7])});
  }
  return rows;
}

std::vector<OrderRow> ReadOrders(const std::string& dir) {
  auto lines = Lines(dir + "/orders.csv");
  EXPECT_EQ(lines.at(0), "order_id,customer_id,amount,currency,status,order_ts,ingested_ts");
  std::vector<OrderRow> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto f = Split(lines[i]);
    EXPECT_EQ(f.size(), 7u) << lines[i];
    if (f.size() != 7) continue;
    rows.push_back(
        {std::stoll(f[0]), std::stoll(f[1]), Cents(f[2]), f[3], f[4], Iso(f[5]), Iso(f[6])});
  }
  return rows;
}

/// A well-formed click, or nullopt for a line the demo should reject.
std::optional<ClickRow> ParseClick(const std::string& line) {
  static const std::set<std::string> kPages = {"home", "search",   "product",
                                               "cart", "checkout", "account"};
  static const std::set<std::string> kDevices = {"web", "ios", "android"};
  rapidjson::Document d;
  d.Parse(line.c_str());
  if (d.HasParseError() || !d.IsObject() || d.MemberCount() != 6) return std::nullopt;
  for (const char* key : {"customer_id", "session_id", "page", "device", "event_ts", "dwell_ms"}) {
    if (!d.HasMember(key)) return std::nullopt;
  }
  if (!d["customer_id"].IsInt64() || !d["dwell_ms"].IsInt64() || !d["session_id"].IsString() ||
      !d["page"].IsString() || !d["device"].IsString() || !d["event_ts"].IsString()) {
    return std::nullopt;
  }
  const std::string session = d["session_id"].GetString();
  if (session.rfind("s-", 0) != 0 || !kPages.count(d["page"].GetString()) ||
      !kDevices.count(d["device"].GetString()) || d["dwell_ms"].GetInt64() < 0) {
    return std::nullopt;
  }
  auto ts = ParseIso(d["event_ts"].GetString());
  if (!ts) return std::nullopt;
  return ClickRow{d["customer_id"].GetInt64(), *ts, d["dwell_ms"].GetInt64()};
}

std::shared_ptr<arrow::Table> ReadParquet(const std::string& path) {
  auto input = arrow::io::ReadableFile::Open(path);
  EXPECT_TRUE(input.ok()) << input.status().ToString();
  auto reader = parquet::arrow::OpenFile(*input, arrow::default_memory_pool());
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  std::shared_ptr<arrow::Table> table;
  auto st = (*reader)->ReadTable(&table);
  EXPECT_TRUE(st.ok()) << st.ToString();
  auto combined = table->CombineChunks();
  EXPECT_TRUE(combined.ok());
  return *combined;
}

template <typename ArrayType>
const ArrayType& Column(const arrow::Table& t, const std::string& name) {
  auto col = t.GetColumnByName(name);
  EXPECT_NE(col, nullptr) << name;
  return static_cast<const ArrayType&>(*col->chunk(0));
}

/// The files for 1000 customers, generated once for the read-only tests.
class SampleDataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SampleDataOptions options;
    options.anchor_s = Iso("2026-09-01T00:00:00Z");  // the dates the checks below name
    auto summary = WriteSampleData(dir_->path(), options);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    summary_ = new SampleDataSummary(*summary);
  }
  static void TearDownTestSuite() {
    delete summary_;
    delete dir_;
  }
  static std::string Dir() { return dir_->path(); }
  static const SampleDataSummary& Summary() { return *summary_; }

 private:
  static TempDir* dir_;
  static SampleDataSummary* summary_;
};
TempDir* SampleDataTest::dir_ = nullptr;
SampleDataSummary* SampleDataTest::summary_ = nullptr;

const std::vector<std::string> kFiles = {"customers.csv", "orders.csv", "clicks.jsonl",
                                         "customer_daily_stats.parquet", "churn_labels.parquet"};

TEST(SampleDataDeterminism, SameSeedWritesByteIdenticalFiles) {
  TempDir a, b, c;
  SampleDataOptions options;
  options.customers = 300;
  options.seed = 7;
  ASSERT_OK_AND_ASSIGN(auto summary_a, WriteSampleData(a.path(), options));
  ASSERT_OK_AND_ASSIGN(auto summary_b, WriteSampleData(b.path(), options));
  EXPECT_EQ(summary_a, summary_b);
  for (const auto& f : kFiles) {
    const std::string bytes = ReadFile(a.Join(f));
    EXPECT_FALSE(bytes.empty()) << f;
    EXPECT_TRUE(bytes == ReadFile(b.Join(f))) << f << " differs between two runs";
  }
  options.seed = 8;
  ASSERT_OK(WriteSampleData(c.path(), options).status());
  EXPECT_NE(ReadFile(a.Join("orders.csv")), ReadFile(c.Join("orders.csv")));
}

TEST(SampleDataOptionsTest, ZeroOrNegativeCustomersIsAnError) {
  TempDir dir;
  for (int64_t n : {int64_t{0}, int64_t{-3}}) {
    SampleDataOptions options;
    options.customers = n;
    auto result = WriteSampleData(dir.path(), options);
    ASSERT_FALSE(result.ok());
    EXPECT_TRUE(result.status().IsInvalid());
    EXPECT_NE(result.status().message().find("customers"), std::string::npos)
        << result.status().ToString();
    EXPECT_FALSE(std::filesystem::exists(dir.Join("orders.csv")));
  }
}

TEST(SampleDataSmall, TenCustomersWritesEveryFile) {
  TempDir dir;
  SampleDataOptions options;
  options.customers = 10;
  ASSERT_OK_AND_ASSIGN(auto summary, WriteSampleData(dir.Join("nested/data"), options));
  ASSERT_EQ(summary.size(), 5u);
  for (const auto& f : kFiles) {
    ASSERT_TRUE(summary.count(f)) << f;
    EXPECT_GT(summary[f], 0) << f;
  }
  auto customers = ReadCustomers(dir.Join("nested/data"));
  std::set<int64_t> ids;
  for (const auto& c : customers) ids.insert(c.customer_id);
  EXPECT_EQ(ids, (std::set<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  auto lines = Lines(dir.Join("nested/data/clicks.jsonl"));
  EXPECT_EQ(static_cast<int64_t>(lines.size()), summary["clicks.jsonl"]);
  int malformed = 0;
  for (const auto& l : lines) malformed += ParseClick(l) ? 0 : 1;
  EXPECT_EQ(malformed, 4);
  EXPECT_EQ(ReadParquet(dir.Join("nested/data/customer_daily_stats.parquet"))->num_rows(),
            summary["customer_daily_stats.parquet"]);
}

TEST_F(SampleDataTest, SummaryCountsTheRowsOfEachFile) {
  ASSERT_EQ(Summary().size(), 5u);
  EXPECT_EQ(static_cast<int64_t>(Lines(Dir() + "/customers.csv").size()) - 1,
            Summary().at("customers.csv"));
  EXPECT_EQ(static_cast<int64_t>(Lines(Dir() + "/orders.csv").size()) - 1,
            Summary().at("orders.csv"));
  EXPECT_EQ(static_cast<int64_t>(Lines(Dir() + "/clicks.jsonl").size()),
            Summary().at("clicks.jsonl"));
  EXPECT_EQ(ReadParquet(Dir() + "/customer_daily_stats.parquet")->num_rows(),
            Summary().at("customer_daily_stats.parquet"));
  EXPECT_EQ(ReadParquet(Dir() + "/churn_labels.parquet")->num_rows(),
            Summary().at("churn_labels.parquet"));
}

TEST_F(SampleDataTest, CustomersHaveOneFirstRowAndSomeLaterCorrections) {
  auto rows = ReadCustomers(Dir());
  std::map<int64_t, std::vector<CustomerRow>> by_id;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) {
      EXPECT_LE(rows[i - 1].updated_ts, rows[i].updated_ts) << "row " << i;
    }
    by_id[rows[i].customer_id].push_back(rows[i]);
  }
  ASSERT_EQ(by_id.size(), 1000u);
  EXPECT_EQ(by_id.begin()->first, 1);
  EXPECT_EQ(by_id.rbegin()->first, 1000);
  int corrected = 0, vip = 0;
  std::set<std::string> countries;
  for (const auto& [id, versions] : by_id) {
    ASSERT_LE(versions.size(), 2u);
    const CustomerRow& first = versions[0];
    EXPECT_EQ(first.updated_ts, first.signup_ts);
    EXPECT_GE(first.signup_ts, Iso("2026-01-01T00:00:00Z"));
    EXPECT_LE(first.signup_ts, Iso("2026-08-15T23:59:59Z"));
    EXPECT_GE(first.age, 18);
    EXPECT_LE(first.age, 80);
    EXPECT_NE(first.name.find(' '), std::string::npos);
    EXPECT_EQ(first.email.substr(first.email.size() - 12), "@example.com");
    EXPECT_NE(first.email.find("+" + std::to_string(id) + "@"), std::string::npos);
    countries.insert(first.country);
    vip += first.segment == "vip";
    if (versions.size() == 2) {
      ++corrected;
      const CustomerRow& fix = versions[1];
      EXPECT_GT(fix.updated_ts, first.signup_ts);
      EXPECT_GE(fix.updated_ts, kWindowStart);
      EXPECT_LE(fix.updated_ts, kWindowEnd);
      EXPECT_EQ(fix.signup_ts, first.signup_ts);
      EXPECT_EQ(fix.email, first.email);
      EXPECT_TRUE(fix.segment != first.segment || fix.age != first.age);
    }
  }
  EXPECT_GT(corrected, 60);
  EXPECT_LT(corrected, 140);
  EXPECT_GT(vip, 20);
  EXPECT_LT(vip, 90);
  EXPECT_EQ(countries, (std::set<std::string>{"DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"}));
}

TEST_F(SampleDataTest, OrdersLieInTheWindowAfterSignup) {
  std::map<int64_t, int64_t> signup;
  for (const auto& c : ReadCustomers(Dir())) signup[c.customer_id] = c.signup_ts;
  auto orders = ReadOrders(Dir());
  ASSERT_GT(orders.size(), 15000u);
  ASSERT_LT(orders.size(), 25000u);
  std::set<int64_t> ordered_in_august;
  for (size_t i = 0; i < orders.size(); ++i) {
    const OrderRow& o = orders[i];
    if (i > 0) {
      EXPECT_LE(orders[i - 1].ingested_ts, o.ingested_ts) << "row " << i;
    }
    ASSERT_TRUE(signup.count(o.customer_id));
    EXPECT_GE(o.order_ts, kWindowStart);
    EXPECT_LE(o.order_ts, kWindowEnd);
    EXPECT_GE(o.order_ts, signup[o.customer_id]);
    EXPECT_GT(o.ingested_ts, o.order_ts);
    EXPECT_EQ(o.currency, "EUR");
    EXPECT_GE(o.cents, 500) << o.order_id;
    EXPECT_LE(o.cents, 50000) << o.order_id;
    EXPECT_TRUE(o.status == "placed" || o.status == "shipped" || o.status == "delivered" ||
                o.status == "cancelled" || o.status == "refunded")
        << o.status;
    if (o.order_ts >= Iso("2026-08-01T00:00:00Z")) ordered_in_august.insert(o.customer_id);
  }
  // order_id ascends with order_ts.
  std::map<int64_t, int64_t> order_ts;
  for (const auto& o : orders) order_ts.emplace(o.order_id, o.order_ts);
  EXPECT_EQ(order_ts.begin()->first, 1);
  EXPECT_EQ(order_ts.rbegin()->first, static_cast<int64_t>(order_ts.size()));
  for (auto it = std::next(order_ts.begin()); it != order_ts.end(); ++it) {
    EXPECT_LE(std::prev(it)->second, it->second) << "order " << it->first;
  }
  // Some customers are very active; about 15% place no order in August.
  std::map<int64_t, int> per_customer;
  for (const auto& o : orders) per_customer[o.customer_id]++;
  int busiest = 0;
  for (const auto& [id, n] : per_customer) busiest = std::max(busiest, n);
  EXPECT_GT(busiest, 60);
  const double quiet = 1.0 - static_cast<double>(ordered_in_august.size()) / 1000.0;
  EXPECT_GT(quiet, 0.10);
  EXPECT_LT(quiet, 0.22);
}

TEST_F(SampleDataTest, CorrectionsRepeatAnEarlierOrderAndLandLater) {
  auto orders = ReadOrders(Dir());
  std::map<int64_t, std::vector<const OrderRow*>> by_id;  // in file order
  for (const auto& o : orders) by_id[o.order_id].push_back(&o);
  int corrections = 0, refunds = 0, amounts = 0;
  for (const auto& [id, rows] : by_id) {
    ASSERT_LE(rows.size(), 2u) << "order " << id;
    if (rows.size() < 2) continue;
    ++corrections;
    const OrderRow& original = *rows[0];
    const OrderRow& fix = *rows[1];
    EXPECT_EQ(fix.customer_id, original.customer_id);
    EXPECT_EQ(fix.order_ts, original.order_ts);
    EXPECT_NE(original.status, "cancelled");
    EXPECT_GE(fix.ingested_ts - original.ingested_ts, 1 * kDay);
    EXPECT_LE(fix.ingested_ts - original.ingested_ts, 14 * kDay);
    if (fix.status == "refunded") {
      ++refunds;
      EXPECT_EQ(fix.cents, original.cents);
    } else {
      ++amounts;
      EXPECT_EQ(fix.status, original.status);
      EXPECT_NE(fix.cents, original.cents);
    }
  }
  const double share = static_cast<double>(corrections) / static_cast<double>(by_id.size());
  EXPECT_GT(share, 0.01);
  EXPECT_LT(share, 0.03);
  EXPECT_GT(refunds, 0);
  EXPECT_GT(amounts, 0);
}

TEST_F(SampleDataTest, AboutThreePercentOfOrdersArriveLate) {
  auto orders = ReadOrders(Dir());
  std::set<int64_t> seen;
  int late = 0, originals = 0;
  for (const auto& o : orders) {
    if (!seen.insert(o.order_id).second) continue;  // a correction
    ++originals;
    const int64_t lag = o.ingested_ts - o.order_ts;
    if (lag >= kDay) {
      ++late;
      EXPECT_LE(lag, 5 * kDay);
    } else {
      EXPECT_GE(lag, 60);
      EXPECT_LE(lag, 600);
    }
  }
  const double share = static_cast<double>(late) / originals;
  EXPECT_GT(late, 0);
  EXPECT_GT(share, 0.02);
  EXPECT_LT(share, 0.04);
}

TEST_F(SampleDataTest, ExactlyFourMalformedClickLinesAtDocumentedPositions) {
  auto lines = Lines(Dir() + "/clicks.jsonl");
  std::map<size_t, std::string> malformed;  // 1-based line -> text
  int64_t previous_ts = 0;
  std::map<int64_t, int> per_customer;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto click = ParseClick(lines[i]);
    if (!click) {
      malformed[i + 1] = lines[i];
      continue;
    }
    EXPECT_GE(click->event_ts, previous_ts) << "line " << i + 1;
    EXPECT_GE(click->event_ts, kWindowStart);
    EXPECT_LE(click->event_ts, kWindowEnd);
    previous_ts = click->event_ts;
    per_customer[click->customer_id]++;
  }
  ASSERT_EQ(malformed.size(), 4u);
  auto it = malformed.begin();
  EXPECT_EQ(it->first, 11u);
  EXPECT_NE(it->second.find("\"event_ts\": \"not-a-time\""), std::string::npos) << it->second;
  ++it;
  EXPECT_EQ(it->first, 101u);
  EXPECT_NE(it->second.find("\"dwell_ms\": \"abc\""), std::string::npos) << it->second;
  ++it;
  EXPECT_EQ(it->first, 202u);
  EXPECT_NE(it->second.find("\"dwell_ms\": -5}"), std::string::npos) << it->second;
  ++it;
  EXPECT_EQ(it->first, 303u);
  EXPECT_NE(it->second.find("\"customer_id\": null"), std::string::npos) << it->second;
  // Every malformed line is still valid JSON with the usual keys: only a value is wrong.
  for (const auto& [line, text] : malformed) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    EXPECT_FALSE(d.HasParseError()) << text;
  }
  const double per = static_cast<double>(lines.size() - 4) / 1000.0;
  EXPECT_GT(per, 30);
  EXPECT_LT(per, 50);
}

// Every row of customer_daily_stats.parquet recomputed from orders.csv and clicks.jsonl.
TEST_F(SampleDataTest, DailyStatsAgreeWithOrdersAndClicks) {
  std::map<int64_t, int64_t> signup;
  for (const auto& c : ReadCustomers(Dir())) signup[c.customer_id] = c.signup_ts;
  std::map<int64_t, std::vector<OrderRow>> orders;  // by customer, file (landing) order
  for (const auto& o : ReadOrders(Dir())) orders[o.customer_id].push_back(o);
  std::map<int64_t, std::vector<ClickRow>> clicks;
  for (const auto& line : Lines(Dir() + "/clicks.jsonl")) {
    if (auto c = ParseClick(line)) clicks[c->customer_id].push_back(*c);
  }

  struct Expected {
    int64_t orders_7d = 0, cents_7d = 0, orders_30d = 0, cents_30d = 0, clicks_7d = 0, dwell_7d = 0;
    std::optional<int32_t> days_since_last_order;
  };
  auto expect = [&](int64_t customer, int64_t event_ts) {
    Expected e;
    std::map<int64_t, OrderRow> known;  // latest landed version per order_id
    for (const auto& o : orders[customer]) {
      if (o.ingested_ts <= event_ts) known[o.order_id] = o;
    }
    int64_t last = -1;
    for (const auto& [id, o] : known) {
      if (o.status == "cancelled" || o.status == "refunded") continue;
      if (o.order_ts > event_ts - 7 * kDay) e.orders_7d++, e.cents_7d += o.cents;
      if (o.order_ts > event_ts - 30 * kDay) e.orders_30d++, e.cents_30d += o.cents;
      last = std::max(last, o.order_ts);
    }
    if (last >= 0) e.days_since_last_order = static_cast<int32_t>((event_ts - last) / kDay);
    for (const auto& c : clicks[customer]) {
      if (c.event_ts > event_ts - 7 * kDay && c.event_ts <= event_ts) {
        e.clicks_7d++;
        e.dwell_7d += c.dwell_ms;
      }
    }
    return e;
  };

  auto table = ReadParquet(Dir() + "/customer_daily_stats.parquet");
  const auto utc_us = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  EXPECT_TRUE(table->schema()->GetFieldByName("event_ts")->type()->Equals(*utc_us));
  EXPECT_TRUE(table->schema()->GetFieldByName("computed_ts")->type()->Equals(*utc_us));
  EXPECT_TRUE(
      table->schema()->GetFieldByName("days_since_last_order")->type()->Equals(*arrow::int32()));
  const auto& customer_id = Column<arrow::Int64Array>(*table, "customer_id");
  const auto& event_ts = Column<arrow::TimestampArray>(*table, "event_ts");
  const auto& orders_7d = Column<arrow::Int64Array>(*table, "orders_7d");
  const auto& spend_7d = Column<arrow::DoubleArray>(*table, "spend_7d");
  const auto& orders_30d = Column<arrow::Int64Array>(*table, "orders_30d");
  const auto& spend_30d = Column<arrow::DoubleArray>(*table, "spend_30d");
  const auto& clicks_7d = Column<arrow::Int64Array>(*table, "clicks_7d");
  const auto& avg_dwell_7d = Column<arrow::DoubleArray>(*table, "avg_dwell_7d");
  const auto& days_since = Column<arrow::Int32Array>(*table, "days_since_last_order");
  const auto& computed_ts = Column<arrow::TimestampArray>(*table, "computed_ts");

  int64_t expected_rows = 0;
  for (int64_t day = 1; day <= 92; ++day) {
    for (const auto& [id, ts] : signup) expected_rows += ts < kWindowStart + day * kDay;
  }
  ASSERT_EQ(table->num_rows(), expected_rows);
  int64_t mismatches = 0;
  for (int64_t r = 0; r < table->num_rows() && mismatches < 5; ++r) {
    const int64_t id = customer_id.Value(r);
    const int64_t ts = event_ts.Value(r) / 1000000;
    ASSERT_EQ(ts % kDay, 0);
    ASSERT_GT(ts, kWindowStart);
    ASSERT_LE(ts, kWindowEnd + 1);
    ASSERT_LT(signup[id], ts);
    if (r > 0) {
      ASSERT_LT(std::make_pair(event_ts.Value(r - 1), customer_id.Value(r - 1)),
                std::make_pair(event_ts.Value(r), id));
    }
    const Expected e = expect(id, ts);
    const bool ok =
        orders_7d.Value(r) == e.orders_7d && spend_7d.Value(r) == e.cents_7d / 100.0 &&
        orders_30d.Value(r) == e.orders_30d && spend_30d.Value(r) == e.cents_30d / 100.0 &&
        clicks_7d.Value(r) == e.clicks_7d && avg_dwell_7d.IsNull(r) == (e.clicks_7d == 0) &&
        (e.clicks_7d == 0 ||
         avg_dwell_7d.Value(r) == static_cast<double>(e.dwell_7d) / e.clicks_7d) &&
        days_since.IsNull(r) == !e.days_since_last_order.has_value() &&
        (!e.days_since_last_order || days_since.Value(r) == *e.days_since_last_order) &&
        computed_ts.Value(r) == (ts + 7200) * 1000000;
    if (!ok) {
      ++mismatches;
      ADD_FAILURE() << "customer " << id << " at " << ts << ": got orders_7d " << orders_7d.Value(r)
                    << " spend_7d " << spend_7d.Value(r) << " orders_30d " << orders_30d.Value(r)
                    << " clicks_7d " << clicks_7d.Value(r) << "; want " << e.orders_7d << " "
                    << e.cents_7d / 100.0 << " " << e.orders_30d << " " << e.clicks_7d
                    << " (or a difference in the other columns)";
    }
  }
}

// One late order, followed by hand: it is invisible in the stats until the day it lands.
TEST_F(SampleDataTest, LateOrderCountsFromTheDayItLands) {
  auto orders = ReadOrders(Dir());
  const OrderRow* late = nullptr;
  std::map<int64_t, int> versions;
  for (const auto& o : orders) versions[o.order_id]++;
  for (const auto& o : orders) {
    // A late, valid, single-version order that lands on a later calendar day in the window.
    if (o.ingested_ts - o.order_ts >= 2 * kDay && versions[o.order_id] == 1 &&
        o.status != "cancelled" && o.ingested_ts < kWindowEnd - kDay) {
      late = &o;
      break;
    }
  }
  ASSERT_NE(late, nullptr);
  const int64_t order_day_end = (late->order_ts / kDay + 1) * kDay;
  const int64_t landed_day_end = (late->ingested_ts / kDay + 1) * kDay;
  ASSERT_LT(order_day_end, landed_day_end);

  auto table = ReadParquet(Dir() + "/customer_daily_stats.parquet");
  const auto& customer_id = Column<arrow::Int64Array>(*table, "customer_id");
  const auto& event_ts = Column<arrow::TimestampArray>(*table, "event_ts");
  const auto& orders_30d = Column<arrow::Int64Array>(*table, "orders_30d");
  std::map<int64_t, int64_t> orders_30d_at;
  for (int64_t r = 0; r < table->num_rows(); ++r) {
    if (customer_id.Value(r) == late->customer_id) {
      orders_30d_at[event_ts.Value(r) / 1000000] = orders_30d.Value(r);
    }
  }
  // Count the customer's other known orders in each 30-day window from the CSV; the late
  // order adds one only from landed_day_end on.
  auto others = [&](int64_t ts) {
    std::map<int64_t, OrderRow> known;
    for (const auto& o : orders) {
      if (o.customer_id == late->customer_id && o.order_id != late->order_id &&
          o.ingested_ts <= ts) {
        known[o.order_id] = o;
      }
    }
    int64_t n = 0;
    for (const auto& [id, o] : known) {
      n += o.status != "cancelled" && o.status != "refunded" && o.order_ts > ts - 30 * kDay;
    }
    return n;
  };
  for (int64_t ts = order_day_end; ts < landed_day_end; ts += kDay) {
    EXPECT_EQ(orders_30d_at.at(ts), others(ts)) << "order " << late->order_id << " at " << ts;
  }
  EXPECT_EQ(orders_30d_at.at(landed_day_end), others(landed_day_end) + 1);
}

TEST_F(SampleDataTest, ChurnLabelsFollowTheOrders) {
  std::map<int64_t, int64_t> signup;
  for (const auto& c : ReadCustomers(Dir())) signup[c.customer_id] = c.signup_ts;
  auto orders = ReadOrders(Dir());
  auto table = ReadParquet(Dir() + "/churn_labels.parquet");
  EXPECT_TRUE(table->schema()->Equals(*arrow::schema(
      {arrow::field("customer_id", arrow::int64(), false),
       arrow::field("label_ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"), false),
       arrow::field("churned", arrow::boolean(), false)})));
  const auto& customer_id = Column<arrow::Int64Array>(*table, "customer_id");
  const auto& label_ts = Column<arrow::TimestampArray>(*table, "label_ts");
  const auto& churned = Column<arrow::BooleanArray>(*table, "churned");
  const int64_t july = Iso("2026-07-01T00:00:00Z"), august = Iso("2026-08-01T00:00:00Z");

  std::vector<std::pair<int64_t, int64_t>> expected_keys;
  for (int64_t label : {july, august}) {
    for (const auto& [id, ts] : signup) {
      if (ts < label) expected_keys.emplace_back(label, id);
    }
  }
  ASSERT_EQ(table->num_rows(), static_cast<int64_t>(expected_keys.size()));
  int64_t churners[2] = {0, 0};
  for (int64_t r = 0; r < table->num_rows(); ++r) {
    const int64_t label = label_ts.Value(r) / 1000000;
    const int64_t id = customer_id.Value(r);
    ASSERT_EQ(std::make_pair(label, id), expected_keys[static_cast<size_t>(r)]);
    bool ordered = false;
    for (const auto& o : orders) {
      ordered |= o.customer_id == id && o.status != "cancelled" && o.order_ts > label &&
                 o.order_ts <= label + 30 * kDay;
    }
    EXPECT_EQ(churned.Value(r), !ordered) << "customer " << id << " at " << label;
    churners[label == august] += churned.Value(r);
  }
  // Both classes are present at both label times.
  for (int64_t n : churners) {
    EXPECT_GT(n, 50);
    EXPECT_LT(n, 400);
  }
}

// Issue 23: the sample ends the day before its anchor, whatever that day is, so
// that TTLs hold when it is generated; the rows are the reference rows moved
// by whole days.
TEST(SampleDataAnchor, TimesMoveByWholeDaysToEndTheDayBeforeTheAnchor) {
  TempDir ref, moved, same;
  SampleDataOptions options;
  options.customers = 200;
  options.anchor_s = Iso("2026-09-01T00:00:00Z");
  ASSERT_OK_AND_ASSIGN(auto summary_ref, WriteSampleData(ref.path(), options));
  options.anchor_s = Iso("2031-02-17T15:42:07Z");  // rounded down to its midnight
  ASSERT_OK_AND_ASSIGN(auto summary_moved, WriteSampleData(moved.path(), options));
  options.anchor_s = Iso("2031-02-17T00:00:00Z");
  ASSERT_OK(WriteSampleData(same.path(), options).status());
  EXPECT_EQ(summary_ref, summary_moved);
  for (const auto& f : kFiles) {
    EXPECT_TRUE(ReadFile(moved.Join(f)) == ReadFile(same.Join(f))) << f << " depends on the hour";
  }
  const int64_t shift = Iso("2031-02-17T00:00:00Z") - Iso("2026-09-01T00:00:00Z");

  auto orders_ref = ReadOrders(ref.path());
  auto orders_moved = ReadOrders(moved.path());
  ASSERT_EQ(orders_ref.size(), orders_moved.size());
  int64_t newest = INT64_MIN;
  for (size_t i = 0; i < orders_ref.size(); ++i) {
    EXPECT_EQ(orders_moved[i].order_id, orders_ref[i].order_id);
    EXPECT_EQ(orders_moved[i].cents, orders_ref[i].cents);
    EXPECT_EQ(orders_moved[i].order_ts, orders_ref[i].order_ts + shift);
    EXPECT_EQ(orders_moved[i].ingested_ts, orders_ref[i].ingested_ts + shift);
    newest = std::max(newest, orders_moved[i].order_ts);
  }
  EXPECT_LE(newest, Iso("2031-02-16T23:59:59Z"));
  EXPECT_GE(newest, Iso("2031-02-16T00:00:00Z"));

  auto customers_ref = ReadCustomers(ref.path());
  auto customers_moved = ReadCustomers(moved.path());
  ASSERT_EQ(customers_ref.size(), customers_moved.size());
  for (size_t i = 0; i < customers_ref.size(); ++i) {
    EXPECT_EQ(customers_moved[i].signup_ts, customers_ref[i].signup_ts + shift);
    EXPECT_EQ(customers_moved[i].updated_ts, customers_ref[i].updated_ts + shift);
  }
  auto clicks_ref = Lines(ref.Join("clicks.jsonl"));
  auto clicks_moved = Lines(moved.Join("clicks.jsonl"));
  ASSERT_EQ(clicks_ref.size(), clicks_moved.size());
  for (size_t i = 0; i < clicks_ref.size(); ++i) {
    auto a = ParseClick(clicks_ref[i]);
    auto b = ParseClick(clicks_moved[i]);
    ASSERT_EQ(a.has_value(), b.has_value()) << clicks_moved[i];
    if (a) {
      EXPECT_EQ(b->event_ts, a->event_ts + shift);
    }
  }

  for (const char* file : {"customer_daily_stats.parquet", "churn_labels.parquet"}) {
    auto t_ref = ReadParquet(ref.Join(file));
    auto t_moved = ReadParquet(moved.Join(file));
    ASSERT_EQ(t_ref->num_rows(), t_moved->num_rows()) << file;
    for (int c = 0; c < t_ref->num_columns(); ++c) {
      const auto& a = *t_ref->column(c)->chunk(0);
      const auto& b = *t_moved->column(c)->chunk(0);
      if (a.type_id() != arrow::Type::TIMESTAMP) {
        EXPECT_TRUE(a.Equals(b)) << file << " " << t_ref->schema()->field(c)->name();
        continue;
      }
      const auto& ta = static_cast<const arrow::TimestampArray&>(a);
      const auto& tb = static_cast<const arrow::TimestampArray&>(b);
      for (int64_t r = 0; r < ta.length(); ++r) {
        ASSERT_EQ(tb.Value(r), ta.Value(r) + shift * 1000000) << file << " row " << r;
      }
    }
  }
  // The newest daily stats are those of the anchor's midnight: fresh for their 2d TTL.
  auto stats = ReadParquet(moved.Join("customer_daily_stats.parquet"));
  const auto& event_ts = Column<arrow::TimestampArray>(*stats, "event_ts");
  int64_t newest_stats = INT64_MIN;
  for (int64_t r = 0; r < event_ts.length(); ++r)
    newest_stats = std::max(newest_stats, event_ts.Value(r));
  EXPECT_EQ(newest_stats, Iso("2031-02-17T00:00:00Z") * 1000000);
}

TEST(SampleDataAnchor, InitAnchorsTheSampleToTheClocksToday) {
  TempDir a, b;
  InitOptions options;
  options.customers = 50;
  options.clock = std::make_shared<FakeClock>(Iso("2030-05-20T08:30:00Z") * 1000);
  ASSERT_OK(InitRepository(a.path(), options).status());
  options.clock = nullptr;
  options.as_of_ms = Iso("2030-05-20T00:00:00Z") * 1000;
  ASSERT_OK(InitRepository(b.path(), options).status());
  for (const auto& f : kFiles) {
    EXPECT_TRUE(ReadFile(a.Join("data/" + f)) == ReadFile(b.Join("data/" + f))) << f;
  }
  int64_t newest = INT64_MIN;
  for (const auto& o : ReadOrders(a.Join("data"))) newest = std::max(newest, o.order_ts);
  EXPECT_GE(newest, Iso("2030-05-19T00:00:00Z"));
  EXPECT_LE(newest, Iso("2030-05-19T23:59:59Z"));
}

}  // namespace
}  // namespace stratalake::repo
