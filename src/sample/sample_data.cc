#include "sample/sample_data.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/writer.h>
#include <parquet/properties.h>

#include "sample/rng.h"

namespace stratalake::repo {
namespace {

// ---- time ------------------------------------------------------------------
// All times are whole seconds since the Unix epoch, UTC.

constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kSlotSeconds = 6 * 3600;  // orders and sessions are drawn per 6-hour slot
constexpr int kSlotsPerDay = 4;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
constexpr int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

constexpr int64_t Midnight(int64_t y, int64_t m, int64_t d) {
  return DaysFromCivil(y, m, d) * kSecondsPerDay;
}

// The reference timeline (anchor kSampleReferenceAnchor = 2026-09-01): the data
// is drawn on it, then every time written is shifted by whole days so that the
// data ends the day before the requested anchor.
static_assert(Midnight(2026, 9, 1) == kSampleReferenceAnchor);
constexpr int64_t kSignupStart = Midnight(2026, 1, 1);
constexpr int64_t kSignupEnd = Midnight(2026, 8, 16) - 1;  // 2026-08-15T23:59:59Z
constexpr int64_t kWindowStart = Midnight(2026, 6, 1);
constexpr int64_t kWindowEnd = Midnight(2026, 9, 1) - 1;  // 2026-08-31T23:59:59Z
constexpr int kWindowDays = 92;
static_assert(kWindowStart + kWindowDays * kSecondsPerDay == kWindowEnd + 1);
constexpr int64_t kChurnFrom = Midnight(2026, 6, 15);
constexpr int64_t kChurnSignupBefore = Midnight(2026, 7, 15);
constexpr int64_t kAugust = Midnight(2026, 8, 1);
constexpr std::array<int64_t, 2> kLabelTimes = {Midnight(2026, 7, 1), Midnight(2026, 8, 1)};
constexpr int64_t kLabelHorizon = 30 * kSecondsPerDay;

// "2026-06-01T09:15:00Z" for the reference time `t` moved by `shift` seconds.
void AppendTimestamp(int64_t t, int64_t shift, std::string* out) {
  t += shift;
  int64_t days = t / kSecondsPerDay;
  int64_t secs = t % kSecondsPerDay;
  if (secs < 0) {
    secs += kSecondsPerDay;
    --days;
  }
  // Inverse of DaysFromCivil.
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ",
                        static_cast<long long>(y), static_cast<long long>(m),
                        static_cast<long long>(d), static_cast<long long>(secs / 3600),
                        static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  out->append(buf, static_cast<size_t>(n));
}

// Cents as "123.45".
void AppendCents(int64_t cents, std::string* out) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%lld.%02lld", static_cast<long long>(cents / 100),
                        static_cast<long long>(cents % 100));
  out->append(buf, static_cast<size_t>(n));
}

void AppendInt(int64_t v, std::string* out) { out->append(std::to_string(v)); }

enum Stream : uint64_t { kCustomerStream = 1, kOrderStream = 2, kClickStream = 3 };

// ---- vocabularies ----------------------------------------------------------

constexpr std::array<const char*, 8> kCountries = {"DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"};
constexpr std::array<int, 8> kCountryWeights = {30, 15, 20, 12, 8, 6, 5, 4};

// Ten first and ten last names per country, in kCountries order.
constexpr std::array<std::array<const char*, 10>, 8> kFirstNames = {{
    {"Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Lena", "Paul", "Hannah", "Leon"},
    {"Camille", "Louis", "Chloe", "Hugo", "Emma", "Lucas", "Manon", "Jules", "Ines", "Arthur"},
    {"Olivia", "Liam", "Emma", "Noah", "Ava", "James", "Mia", "Ethan", "Harper", "Mason"},
    {"Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Lily", "Jack", "Freya", "Charlie"},
    {"Julia", "Daan", "Sara", "Sem", "Tess", "Lucas", "Mila", "Finn", "Zoe", "Levi"},
    {"Lucia", "Hugo", "Martina", "Mateo", "Sofia", "Pablo", "Paula", "Daniel", "Julia", "Alvaro"},
    {"Giulia", "Leonardo", "Sofia", "Francesco", "Aurora", "Alessandro", "Ginevra", "Lorenzo",
     "Beatrice", "Mattia"},
    {"Zuzanna", "Antoni", "Julia", "Jan", "Zofia", "Jakub", "Hanna", "Aleksander", "Maja",
     "Franciszek"},
}};
constexpr std::array<std::array<const char*, 10>, 8> kLastNames = {{
    {"Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann",
     "Koch"},
    {"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
     "Moreau"},
    {"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
     "Taylor"},
    {"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas", "Roberts",
     "Walker"},
    {"Jansen", "Visser", "Smit", "Bakker", "Mulder", "Bos", "Vos", "Peters", "Hendriks", "Dekker"},
    {"Garcia", "Fernandez", "Gonzalez", "Rodriguez", "Lopez", "Martinez", "Sanchez", "Perez",
     "Gomez", "Ruiz"},
    {"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
     "Greco"},
    {"Nowak", "Kowalski", "Wisniewski", "Wojcik", "Kowalczyk", "Kaminski", "Lewandowski",
     "Zielinski", "Szymanski", "Wozniak"},
}};

enum Segment { kConsumer = 0, kBusiness = 1, kVip = 2 };
constexpr std::array<const char*, 3> kSegments = {"consumer", "business", "vip"};
constexpr std::array<int, 3> kSegmentWeights = {80, 15, 5};

// Age bands 18-24, 25-34, 35-44, 45-54, 55-64, 65-80.
constexpr std::array<int, 6> kAgeBandWeights = {15, 28, 24, 17, 10, 6};
constexpr std::array<std::pair<int, int>, 6> kAgeBands = {
    {{18, 24}, {25, 34}, {35, 44}, {45, 54}, {55, 64}, {65, 80}}};

// How active a customer is, as a weight (100 = typical); skewed on purpose.
constexpr std::array<int, 4> kActivityLevels = {400, 150, 70, 20};
constexpr std::array<int, 4> kActivityShares = {8, 27, 45, 20};

// Relative traffic per 6-hour slot of the day (night, morning, afternoon, evening).
constexpr std::array<int, kSlotsPerDay> kSlotWeights = {1, 4, 6, 7};
constexpr int kSlotWeightSum = 18;

// Orders per day of a customer with activity 100, in millionths.
constexpr int64_t kOrdersPerDayMicros = 250000;
// Browsing sessions per day of a customer with activity 100, in millionths.
constexpr int64_t kSessionsPerDayMicros = 150000;

constexpr int64_t kChurnerPerMillion = 130000;            // 13% stop ordering mid-window
constexpr int64_t kProfileCorrectionPerMillion = 100000;  // 10% get one corrected row
constexpr int64_t kLatePerMillion = 30000;                // 3% of orders land days late
constexpr int64_t kOrderCorrectionPerMillion = 21000;     // ~2% of orders get a second row

enum OrderStatus { kPlaced = 0, kShipped = 1, kDelivered = 2, kCancelled = 3, kRefunded = 4 };
constexpr std::array<const char*, 5> kOrderStatuses = {"placed", "shipped", "delivered",
                                                       "cancelled", "refunded"};

enum Page { kHome = 0, kSearch = 1, kProduct = 2, kCart = 3, kCheckout = 4, kAccount = 5 };
constexpr std::array<const char*, 6> kPages = {"home", "search",   "product",
                                               "cart", "checkout", "account"};
constexpr std::array<int, 6> kFirstPageWeights = {50, 35, 10, 0, 0, 5};
// Next-page weights, one row per current page.
constexpr std::array<std::array<int, 6>, 6> kPageTransitions = {{
    {0, 35, 45, 10, 0, 10},  // home
    {10, 20, 70, 0, 0, 0},   // search
    {10, 25, 35, 30, 0, 0},  // product
    {15, 0, 30, 0, 55, 0},   // cart
    {60, 0, 0, 0, 0, 40},    // checkout
    {60, 0, 40, 0, 0, 0},    // account
}};
// Events per session: 1..8.
constexpr std::array<int, 8> kSessionLengthWeights = {20, 22, 18, 13, 10, 8, 5, 4};

constexpr std::array<const char*, 3> kDevices = {"web", "ios", "android"};
constexpr std::array<int, 3> kDeviceWeights = {50, 30, 20};

// 1-based line numbers of the malformed lines in clicks.jsonl (documented in
// docs/sample-data.md): bad event_ts, string dwell_ms, negative dwell_ms, null customer_id.
constexpr std::array<int64_t, 4> kMalformedClickLines = {11, 101, 202, 303};

constexpr int64_t kMaxCustomers = 100000;

// ---- the generated world ---------------------------------------------------

struct Customer {
  int64_t id = 0;
  int country = 0;
  int name = 0;  // index into the country's first names
  int surname = 0;
  int segment = kConsumer;
  int age = 0;
  int64_t signup_ts = 0;
  int activity = 100;
  int device = 0;                       // preferred device
  int64_t order_stop = kWindowEnd + 1;  // churners place no order from here on
  int64_t click_stop = kWindowEnd + 1;
  // The one later correction row, if any.
  bool corrected = false;
  int64_t updated_ts = 0;
  int new_segment = kConsumer;
  int new_age = 0;
};

struct Order {
  int64_t order_id = 0;
  int64_t customer_id = 0;
  int64_t cents = 0;
  int status = kPlaced;
  int64_t order_ts = 0;
  int64_t ingested_ts = 0;
  int64_t seq = 0;          // position in its customer's order history
  int64_t correction = -1;  // index into the corrections, or -1
};

struct Click {
  int64_t customer_id = 0;
  int64_t session = 0;  // the n of "s-<n>"
  int page = kHome;
  int device = 0;
  int64_t ts = 0;
  int64_t dwell_ms = 0;
  int seq = 0;  // position in its session
};

std::vector<Customer> MakeCustomers(int64_t n, uint64_t seed) {
  Rng rng(seed, kCustomerStream);
  std::vector<int64_t> signups(static_cast<size_t>(n));
  for (auto& s : signups) s = rng.Uniform(kSignupStart, kSignupEnd);
  std::sort(signups.begin(), signups.end());  // ids ascend with signup time

  std::vector<Customer> customers(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Customer& c = customers[static_cast<size_t>(i)];
    c.id = i + 1;
    c.signup_ts = signups[static_cast<size_t>(i)];
    c.country = static_cast<int>(rng.Pick(kCountryWeights));
    c.name = static_cast<int>(rng.Uniform(0, 9));
    c.surname = static_cast<int>(rng.Uniform(0, 9));
    c.segment = static_cast<int>(rng.Pick(kSegmentWeights));
    const auto& band = kAgeBands[rng.Pick(kAgeBandWeights)];
    c.age = static_cast<int>(rng.Uniform(band.first, band.second));
    c.activity = kActivityLevels[rng.Pick(kActivityShares)];
    c.device = static_cast<int>(rng.Pick(kDeviceWeights));
    // Every draw happens for every customer, so one decision never shifts the next.
    const bool churner = rng.Chance(kChurnerPerMillion);
    const int64_t churn_ts =
        rng.Uniform(std::min(std::max(kChurnFrom, c.signup_ts + 14 * kSecondsPerDay), kAugust - 1),
                    kAugust - 1);
    const int64_t browse_after_churn = rng.Uniform(0, 10 * kSecondsPerDay);
    if (churner && c.signup_ts < kChurnSignupBefore) {
      c.order_stop = churn_ts;
      c.click_stop = churn_ts + browse_after_churn;
    }
    const bool corrected = rng.Chance(kProfileCorrectionPerMillion);
    const int64_t updated_ts = rng.Uniform(std::max(c.signup_ts, kWindowStart) + 1, kWindowEnd);
    const bool upgrade = rng.Chance(600000);
    const bool to_vip = rng.Chance(300000);
    const int64_t age_delta = rng.Uniform(1, 5) * (rng.Chance(500000) ? 1 : -1);
    if (corrected) {
      c.corrected = true;
      c.updated_ts = updated_ts;
      c.new_segment = c.segment;
      c.new_age = c.age;
      if (upgrade && c.segment != kVip) {
        c.new_segment = c.segment == kBusiness || to_vip ? kVip : kBusiness;
      } else {
        int age = std::clamp<int>(c.age + static_cast<int>(age_delta), 18, 80);
        if (age == c.age) age = std::clamp<int>(c.age - static_cast<int>(age_delta), 18, 80);
        c.new_age = age;
      }
    }
  }
  return customers;
}

// Slot indexes (0 .. 4 * kWindowDays - 1) that start strictly after `after`.
int64_t FirstSlotAfter(int64_t after) {
  if (after < kWindowStart) return 0;
  return (after - kWindowStart) / kSlotSeconds + 1;
}

int64_t SlotChance(int64_t per_day_micros, int activity, int64_t slot) {
  const int64_t w = kSlotWeights[static_cast<size_t>(slot % kSlotsPerDay)];
  return std::min<int64_t>(1000000, per_day_micros * activity / 100 * w / kSlotWeightSum);
}

struct Orders {
  std::vector<Order> originals;    // ordered by order_id
  std::vector<Order> corrections;  // second rows, same order_id
};

Orders MakeOrders(const std::vector<Customer>& customers, uint64_t seed) {
  Rng rng(seed, kOrderStream);
  Orders out;
  for (const Customer& c : customers) {
    int64_t seq = 0;
    for (int64_t slot = FirstSlotAfter(c.signup_ts); slot < kWindowDays * kSlotsPerDay; ++slot) {
      const int64_t slot_start = kWindowStart + slot * kSlotSeconds;
      if (slot_start >= c.order_stop) break;
      if (!rng.Chance(SlotChance(kOrdersPerDayMicros, c.activity, slot))) continue;
      const int64_t ts = slot_start + rng.Uniform(0, kSlotSeconds - 1);
      if (ts >= c.order_stop) continue;
      Order o;
      o.customer_id = c.id;
      o.order_ts = ts;
      o.seq = seq++;
      o.cents = rng.Skewed(50, 500, 50000);
      // Status as of the export: recent orders have not been delivered yet.
      const int64_t age = kWindowEnd - ts;
      const int64_t roll = rng.Uniform(0, 99);
      if (roll < 5) {
        o.status = kCancelled;
      } else if (age < 2 * kSecondsPerDay) {
        o.status = roll < 60 ? kPlaced : kShipped;
      } else if (age < 5 * kSecondsPerDay) {
        o.status = roll < 15 ? kPlaced : roll < 70 ? kShipped : kDelivered;
      } else {
        o.status = roll < 8 ? kShipped : kDelivered;
      }
      const bool late = rng.Chance(kLatePerMillion);
      const int64_t late_lag = rng.Uniform(kSecondsPerDay, 5 * kSecondsPerDay);
      const int64_t lag = rng.Uniform(60, 600);
      o.ingested_ts = ts + (late ? late_lag : lag);

      const bool corrected = rng.Chance(kOrderCorrectionPerMillion);
      const int64_t correction_lag = rng.Uniform(kSecondsPerDay, 14 * kSecondsPerDay);
      const bool refund = rng.Chance(500000);
      const int64_t pct = rng.Uniform(5, 20) * (rng.Chance(500000) ? 1 : -1);
      if (corrected && o.status != kCancelled) {
        Order fix = o;
        fix.ingested_ts = o.ingested_ts + correction_lag;
        const int64_t cents = std::clamp<int64_t>(o.cents + o.cents * pct / 100, 500, 50000);
        if (refund || cents == o.cents) {
          fix.status = kRefunded;
        } else {
          fix.cents = cents;
        }
        o.correction = static_cast<int64_t>(out.corrections.size());
        out.corrections.push_back(fix);
      }
      out.originals.push_back(o);
    }
  }
  // order_id ascends with order_ts.
  std::sort(out.originals.begin(), out.originals.end(), [](const Order& a, const Order& b) {
    return std::tie(a.order_ts, a.customer_id, a.seq) < std::tie(b.order_ts, b.customer_id, b.seq);
  });
  for (size_t i = 0; i < out.originals.size(); ++i) {
    Order& o = out.originals[i];
    o.order_id = static_cast<int64_t>(i) + 1;
    if (o.correction >= 0) out.corrections[static_cast<size_t>(o.correction)].order_id = o.order_id;
  }
  return out;
}

std::vector<Click> MakeClicks(const std::vector<Customer>& customers, uint64_t seed) {
  Rng rng(seed, kClickStream);
  struct Session {
    int64_t start;
    int64_t customer_id;
    int64_t seq;
    std::vector<Click> events;
  };
  std::vector<Session> sessions;
  for (const Customer& c : customers) {
    int64_t seq = 0;
    for (int64_t slot = FirstSlotAfter(c.signup_ts); slot < kWindowDays * kSlotsPerDay; ++slot) {
      const int64_t slot_start = kWindowStart + slot * kSlotSeconds;
      if (slot_start >= c.click_stop) break;
      if (!rng.Chance(SlotChance(kSessionsPerDayMicros, c.activity, slot))) continue;
      const int64_t start = slot_start + rng.Uniform(0, kSlotSeconds - 1);
      const int device = rng.Chance(750000) ? c.device : static_cast<int>(rng.Pick(kDeviceWeights));
      const int64_t length = static_cast<int64_t>(rng.Pick(kSessionLengthWeights)) + 1;
      Session s{start, c.id, seq++, {}};
      int64_t ts = start;
      int page = static_cast<int>(rng.Pick(kFirstPageWeights));
      for (int64_t k = 0; k < length; ++k) {
        if (k > 0) page = static_cast<int>(rng.Pick(kPageTransitions[static_cast<size_t>(page)]));
        Click e;
        e.customer_id = c.id;
        e.page = page;
        e.device = device;
        e.ts = ts;
        e.dwell_ms = rng.Skewed(120, 200, 600000);
        e.seq = static_cast<int>(k);
        ts += e.dwell_ms / 1000 + rng.Uniform(1, 5);
        if (e.ts < c.click_stop && e.ts <= kWindowEnd) s.events.push_back(e);
      }
      if (!s.events.empty()) sessions.push_back(std::move(s));
    }
  }
  std::sort(sessions.begin(), sessions.end(), [](const Session& a, const Session& b) {
    return std::tie(a.start, a.customer_id, a.seq) < std::tie(b.start, b.customer_id, b.seq);
  });
  std::vector<Click> clicks;
  for (size_t i = 0; i < sessions.size(); ++i) {
    for (Click e : sessions[i].events) {
      e.session = static_cast<int64_t>(i) + 1;
      clicks.push_back(e);
    }
  }
  std::sort(clicks.begin(), clicks.end(), [](const Click& a, const Click& b) {
    return std::tie(a.ts, a.session, a.seq) < std::tie(b.ts, b.session, b.seq);
  });
  return clicks;
}

// ---- text files --------------------------------------------------------------

std::string Lower(std::string s) {
  for (char& ch : s) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return s;
}

std::string CustomersCsv(const std::vector<Customer>& customers, int64_t shift, int64_t* rows) {
  struct Row {
    int64_t ts;
    const Customer* c;
    bool correction;
  };
  std::vector<Row> order;
  for (const Customer& c : customers) {
    order.push_back({c.signup_ts, &c, false});
    if (c.corrected) order.push_back({c.updated_ts, &c, true});
  }
  std::sort(order.begin(), order.end(), [](const Row& a, const Row& b) {
    return std::tie(a.ts, a.c->id, a.correction) < std::tie(b.ts, b.c->id, b.correction);
  });
  std::string out = "customer_id,name,email,country,segment,age,signup_ts,updated_ts\n";
  for (const Row& r : order) {
    const Customer& c = *r.c;
    const std::string first =
        kFirstNames[static_cast<size_t>(c.country)][static_cast<size_t>(c.name)];
    const std::string last =
        kLastNames[static_cast<size_t>(c.country)][static_cast<size_t>(c.surname)];
    AppendInt(c.id, &out);
    out += ',' + first + ' ' + last + ',';
    out += Lower(first) + '.' + Lower(last) + '+' + std::to_string(c.id) + "@example.com,";
    out += kCountries[static_cast<size_t>(c.country)];
    out += ',';
    out += kSegments[static_cast<size_t>(r.correction ? c.new_segment : c.segment)];
    out += ',';
    AppendInt(r.correction ? c.new_age : c.age, &out);
    out += ',';
    AppendTimestamp(c.signup_ts, shift, &out);
    out += ',';
    AppendTimestamp(r.ts, shift, &out);
    out += '\n';
  }
  *rows = static_cast<int64_t>(order.size());
  return out;
}

std::string OrdersCsv(const Orders& orders, int64_t shift, int64_t* rows) {
  std::vector<const Order*> landed;
  for (const Order& o : orders.originals) landed.push_back(&o);
  for (const Order& o : orders.corrections) landed.push_back(&o);
  // As the rows landed; an original always lands before its correction.
  std::sort(landed.begin(), landed.end(), [](const Order* a, const Order* b) {
    return std::tie(a->ingested_ts, a->order_id) < std::tie(b->ingested_ts, b->order_id);
  });
  std::string out = "order_id,customer_id,amount,currency,status,order_ts,ingested_ts\n";
  for (const Order* o : landed) {
    AppendInt(o->order_id, &out);
    out += ',';
    AppendInt(o->customer_id, &out);
    out += ',';
    AppendCents(o->cents, &out);
    out += ",EUR,";
    out += kOrderStatuses[static_cast<size_t>(o->status)];
    out += ',';
    AppendTimestamp(o->order_ts, shift, &out);
    out += ',';
    AppendTimestamp(o->ingested_ts, shift, &out);
    out += '\n';
  }
  *rows = static_cast<int64_t>(landed.size());
  return out;
}

// One clicks.jsonl line; the overrides make the malformed variants.
void AppendClick(const Click& e, std::string_view customer_id, std::string_view event_ts,
                 std::string_view dwell_ms, std::string* out) {
  *out += "{\"customer_id\": ";
  *out += customer_id;
  *out += ", \"session_id\": \"s-" + std::to_string(e.session) + "\", \"page\": \"";
  *out += kPages[static_cast<size_t>(e.page)];
  *out += "\", \"device\": \"";
  *out += kDevices[static_cast<size_t>(e.device)];
  *out += "\", \"event_ts\": \"";
  *out += event_ts;
  *out += "\", \"dwell_ms\": ";
  *out += dwell_ms;
  *out += "}\n";
}

void AppendMalformedClick(size_t which, const Click& like, int64_t shift, std::string* out) {
  std::string ts;
  AppendTimestamp(like.ts, shift, &ts);
  const std::string id = std::to_string(like.customer_id);
  const std::string dwell = std::to_string(like.dwell_ms);
  switch (which) {
    case 0:
      AppendClick(like, id, "not-a-time", dwell, out);
      break;
    case 1:
      AppendClick(like, id, ts, "\"abc\"", out);
      break;
    case 2:
      AppendClick(like, id, ts, "-5", out);
      break;
    default:
      AppendClick(like, "null", ts, dwell, out);
      break;
  }
}

std::string ClicksJsonl(const std::vector<Click>& clicks, int64_t shift, int64_t* rows) {
  std::string out;
  int64_t line = 0;
  size_t malformed = 0;
  Click fallback;  // only used when there are no clicks at all
  fallback.ts = kWindowStart;
  fallback.session = 1;
  fallback.customer_id = 1;
  fallback.dwell_ms = 1000;
  for (size_t i = 0; i < clicks.size(); ++i) {
    while (malformed < kMalformedClickLines.size() && line + 1 == kMalformedClickLines[malformed]) {
      AppendMalformedClick(malformed++, i > 0 ? clicks[i - 1] : clicks[i], shift, &out);
      ++line;
    }
    const Click& e = clicks[i];
    std::string ts;
    AppendTimestamp(e.ts, shift, &ts);
    AppendClick(e, std::to_string(e.customer_id), ts, std::to_string(e.dwell_ms), &out);
    ++line;
  }
  // A short file gets its remaining malformed lines at the end.
  while (malformed < kMalformedClickLines.size()) {
    AppendMalformedClick(malformed++, clicks.empty() ? fallback : clicks.back(), shift, &out);
    ++line;
  }
  *rows = line;
  return out;
}

arrow::Status WriteTextFile(const std::string& path, std::string_view contents) {
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::io::FileOutputStream::Open(path));
  ARROW_RETURN_NOT_OK(out->Write(contents.data(), static_cast<int64_t>(contents.size())));
  return out->Close();
}

// ---- Parquet files -----------------------------------------------------------

arrow::Status WriteParquetFile(const std::string& path, const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::io::FileOutputStream::Open(path));
  // Fixed properties (the library's default created_by names its version) so the same
  // Arrow build writes the same bytes.
  auto props = parquet::WriterProperties::Builder()
                   .compression(parquet::Compression::SNAPPY)
                   ->max_row_group_length(1 << 20)
                   ->build();
  auto arrow_props = parquet::ArrowWriterProperties::Builder().build();
  ARROW_RETURN_NOT_OK(parquet::arrow::WriteTable(table, arrow::default_memory_pool(), out, 1 << 20,
                                                 props, arrow_props));
  return out->Close();
}

std::shared_ptr<arrow::DataType> UtcMicros() {
  return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
}

constexpr int64_t kMicros = 1000000;

arrow::Result<std::shared_ptr<arrow::Table>> DailyStats(const std::vector<Customer>& customers,
                                                        const Orders& orders,
                                                        const std::vector<Click>& clicks,
                                                        int64_t shift) {
  // Per customer: its orders (original + optional correction) and its clicks' times with
  // running dwell sums.
  const size_t n = customers.size();
  std::vector<std::vector<const Order*>> by_customer(n);
  for (const Order& o : orders.originals)
    by_customer[static_cast<size_t>(o.customer_id - 1)].push_back(&o);
  std::vector<std::vector<int64_t>> click_ts(n);
  std::vector<std::vector<int64_t>> dwell_prefix(n, std::vector<int64_t>{0});
  for (const Click& e : clicks) {  // already ordered by time
    const auto i = static_cast<size_t>(e.customer_id - 1);
    click_ts[i].push_back(e.ts);
    dwell_prefix[i].push_back(dwell_prefix[i].back() + e.dwell_ms);
  }

  arrow::Int64Builder customer_id, orders_7d, orders_30d, clicks_7d;
  arrow::TimestampBuilder event_ts(UtcMicros(), arrow::default_memory_pool());
  arrow::TimestampBuilder computed_ts(UtcMicros(), arrow::default_memory_pool());
  arrow::DoubleBuilder spend_7d, spend_30d, avg_dwell_7d;
  arrow::Int32Builder days_since_last_order;

  for (int day = 0; day < kWindowDays; ++day) {
    const int64_t end = kWindowStart + (day + 1) * kSecondsPerDay;
    for (size_t i = 0; i < n; ++i) {
      const Customer& c = customers[i];
      if (c.signup_ts >= end) continue;
      int64_t n7 = 0, n30 = 0, cents7 = 0, cents30 = 0, last = -1;
      for (const Order* o : by_customer[i]) {
        // The latest version known at `end`.
        const Order* known = nullptr;
        if (o->correction >= 0 &&
            orders.corrections[static_cast<size_t>(o->correction)].ingested_ts <= end) {
          known = &orders.corrections[static_cast<size_t>(o->correction)];
        } else if (o->ingested_ts <= end) {
          known = o;
        }
        if (known == nullptr || known->status == kCancelled || known->status == kRefunded) {
          continue;
        }
        const int64_t age = end - known->order_ts;
        if (age < 7 * kSecondsPerDay) {
          ++n7;
          cents7 += known->cents;
        }
        if (age < 30 * kSecondsPerDay) {
          ++n30;
          cents30 += known->cents;
        }
        last = std::max(last, known->order_ts);
      }
      const auto& ts = click_ts[i];
      const auto lo = std::upper_bound(ts.begin(), ts.end(), end - 7 * kSecondsPerDay) - ts.begin();
      const auto hi = std::upper_bound(ts.begin(), ts.end(), end) - ts.begin();
      const int64_t clicks7 = hi - lo;
      const int64_t dwell7 =
          dwell_prefix[i][static_cast<size_t>(hi)] - dwell_prefix[i][static_cast<size_t>(lo)];

      ARROW_RETURN_NOT_OK(customer_id.Append(c.id));
      ARROW_RETURN_NOT_OK(event_ts.Append((end + shift) * kMicros));
      ARROW_RETURN_NOT_OK(orders_7d.Append(n7));
      ARROW_RETURN_NOT_OK(spend_7d.Append(static_cast<double>(cents7) / 100.0));
      ARROW_RETURN_NOT_OK(orders_30d.Append(n30));
      ARROW_RETURN_NOT_OK(spend_30d.Append(static_cast<double>(cents30) / 100.0));
      ARROW_RETURN_NOT_OK(clicks_7d.Append(clicks7));
      if (clicks7 > 0) {
        ARROW_RETURN_NOT_OK(
            avg_dwell_7d.Append(static_cast<double>(dwell7) / static_cast<double>(clicks7)));
      } else {
        ARROW_RETURN_NOT_OK(avg_dwell_7d.AppendNull());
      }
      if (last >= 0) {
        ARROW_RETURN_NOT_OK(
            days_since_last_order.Append(static_cast<int32_t>((end - last) / kSecondsPerDay)));
      } else {
        ARROW_RETURN_NOT_OK(days_since_last_order.AppendNull());
      }
      ARROW_RETURN_NOT_OK(computed_ts.Append((end + shift + 2 * 3600) * kMicros));
    }
  }
  auto schema = arrow::schema({
      arrow::field("customer_id", arrow::int64(), false),
      arrow::field("event_ts", UtcMicros(), false),
      arrow::field("orders_7d", arrow::int64(), false),
      arrow::field("spend_7d", arrow::float64(), false),
      arrow::field("orders_30d", arrow::int64(), false),
      arrow::field("spend_30d", arrow::float64(), false),
      arrow::field("clicks_7d", arrow::int64(), false),
      arrow::field("avg_dwell_7d", arrow::float64()),
      arrow::field("days_since_last_order", arrow::int32()),
      arrow::field("computed_ts", UtcMicros(), false),
  });
  arrow::ArrayVector columns(10);
  ARROW_RETURN_NOT_OK(customer_id.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(event_ts.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(orders_7d.Finish(&columns[2]));
  ARROW_RETURN_NOT_OK(spend_7d.Finish(&columns[3]));
  ARROW_RETURN_NOT_OK(orders_30d.Finish(&columns[4]));
  ARROW_RETURN_NOT_OK(spend_30d.Finish(&columns[5]));
  ARROW_RETURN_NOT_OK(clicks_7d.Finish(&columns[6]));
  ARROW_RETURN_NOT_OK(avg_dwell_7d.Finish(&columns[7]));
  ARROW_RETURN_NOT_OK(days_since_last_order.Finish(&columns[8]));
  ARROW_RETURN_NOT_OK(computed_ts.Finish(&columns[9]));
  return arrow::Table::Make(schema, columns);
}

arrow::Result<std::shared_ptr<arrow::Table>> ChurnLabels(const std::vector<Customer>& customers,
                                                         const Orders& orders, int64_t shift) {
  // Order times of each customer's non-cancelled orders (corrections never change whether
  // an order was cancelled, so the original rows decide).
  std::vector<std::vector<int64_t>> order_ts(customers.size());
  for (const Order& o : orders.originals) {
    if (o.status != kCancelled)
      order_ts[static_cast<size_t>(o.customer_id - 1)].push_back(o.order_ts);
  }
  arrow::Int64Builder customer_id;
  arrow::TimestampBuilder label_ts(UtcMicros(), arrow::default_memory_pool());
  arrow::BooleanBuilder churned;
  for (int64_t label : kLabelTimes) {
    for (size_t i = 0; i < customers.size(); ++i) {
      if (customers[i].signup_ts >= label) continue;
      const bool ordered = std::any_of(order_ts[i].begin(), order_ts[i].end(), [&](int64_t t) {
        return t > label && t <= label + kLabelHorizon;
      });
      ARROW_RETURN_NOT_OK(customer_id.Append(customers[i].id));
      ARROW_RETURN_NOT_OK(label_ts.Append((label + shift) * kMicros));
      ARROW_RETURN_NOT_OK(churned.Append(!ordered));
    }
  }
  auto schema = arrow::schema({arrow::field("customer_id", arrow::int64(), false),
                               arrow::field("label_ts", UtcMicros(), false),
                               arrow::field("churned", arrow::boolean(), false)});
  arrow::ArrayVector columns(3);
  ARROW_RETURN_NOT_OK(customer_id.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(label_ts.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(churned.Finish(&columns[2]));
  return arrow::Table::Make(schema, columns);
}

}  // namespace

arrow::Result<SampleDataSummary> WriteSampleData(const std::string& data_dir,
                                                 const SampleDataOptions& options) {
  if (options.customers < 1 || options.customers > kMaxCustomers) {
    return arrow::Status::Invalid("sample data needs between 1 and ", kMaxCustomers,
                                  " customers, got ", options.customers,
                                  "; set SampleDataOptions::customers to a value in that range");
  }
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return arrow::Status::IOError("cannot create sample data folder '", data_dir,
                                  "': ", ec.message());
  }
  const std::filesystem::path dir(data_dir);
  // Whole days: the anchor rounded down to midnight UTC.
  const int64_t anchor =
      options.anchor_s - ((options.anchor_s % kSecondsPerDay) + kSecondsPerDay) % kSecondsPerDay;
  const int64_t shift = anchor - kSampleReferenceAnchor;

  const std::vector<Customer> customers = MakeCustomers(options.customers, options.seed);
  const Orders orders = MakeOrders(customers, options.seed);
  const std::vector<Click> clicks = MakeClicks(customers, options.seed);

  SampleDataSummary summary;
  int64_t rows = 0;
  ARROW_RETURN_NOT_OK(
      WriteTextFile((dir / "customers.csv").string(), CustomersCsv(customers, shift, &rows)));
  summary["customers.csv"] = rows;
  ARROW_RETURN_NOT_OK(
      WriteTextFile((dir / "orders.csv").string(), OrdersCsv(orders, shift, &rows)));
  summary["orders.csv"] = rows;
  ARROW_RETURN_NOT_OK(
      WriteTextFile((dir / "clicks.jsonl").string(), ClicksJsonl(clicks, shift, &rows)));
  summary["clicks.jsonl"] = rows;

  ARROW_ASSIGN_OR_RAISE(auto stats, DailyStats(customers, orders, clicks, shift));
  ARROW_RETURN_NOT_OK(WriteParquetFile((dir / "customer_daily_stats.parquet").string(), *stats));
  summary["customer_daily_stats.parquet"] = stats->num_rows();
  ARROW_ASSIGN_OR_RAISE(auto labels, ChurnLabels(customers, orders, shift));
  ARROW_RETURN_NOT_OK(WriteParquetFile((dir / "churn_labels.parquet").string(), *labels));
  summary["churn_labels.parquet"] = labels->num_rows();
  return summary;
}

}  // namespace stratalake::repo
