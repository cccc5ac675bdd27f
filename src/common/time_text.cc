#include "common/time_text.h"

#include <ctime>

namespace stratalake {

namespace {

void AppendDigits(unsigned v, int width, char* p) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian
// (H. Hinnant's civil_from_days).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

}  // namespace

void AppendRfc3339Micros(int64_t us, std::string* out) {
  int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
  auto frac = static_cast<unsigned>(us - secs * 1000000);
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  auto sod = static_cast<unsigned>(secs - days * 86400);
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  if (y < 0 || y > 9999) {  // outside RFC 3339: fall back to the C library
    time_t t = static_cast<time_t>(secs);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    out->append(buf);
  } else {
    char buf[19];  // YYYY-MM-DDTHH:MM:SS
    AppendDigits(static_cast<unsigned>(y), 4, buf);
    buf[4] = '-';
    AppendDigits(m, 2, buf + 5);
    buf[7] = '-';
    AppendDigits(d, 2, buf + 8);
    buf[10] = 'T';
    AppendDigits(sod / 3600, 2, buf + 11);
    buf[13] = ':';
    AppendDigits(sod / 60 % 60, 2, buf + 14);
    buf[16] = ':';
    AppendDigits(sod % 60, 2, buf + 17);
    out->append(buf, sizeof buf);
  }
  if (frac != 0) {
    char f[7];
    f[0] = '.';
    AppendDigits(frac, 6, f + 1);
    out->append(f, sizeof f);
  }
  out->push_back('Z');
}

std::string FormatRfc3339Micros(int64_t us) {
  std::string out;
  AppendRfc3339Micros(us, &out);
  return out;
}

}  // namespace stratalake
