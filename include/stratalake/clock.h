// Time behind an interface, so that retention, time travel and (later) TTL and
// watermark logic can be tested with a fake clock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace stratalake {

/// Thread-safe source of wall-clock time.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Milliseconds since the Unix epoch (UTC).
  virtual int64_t NowMillis() const = 0;
  /// The process-wide real clock.
  static std::shared_ptr<Clock> System();
};

/// A clock that returns what it was set to; for tests. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMillis() const override { return now_ms_.load(); }
  void Set(int64_t now_ms) { now_ms_.store(now_ms); }
  void Advance(int64_t delta_ms) { now_ms_.fetch_add(delta_ms); }

 private:
  std::atomic<int64_t> now_ms_;
};

/// µs since the epoch as RFC 3339 text, "2026-11-21T17:26:11.123456Z" (UTC;
/// the fraction omitted when 0; years outside 0..9999 as the C library prints them).
std::string FormatRfc3339Micros(int64_t us);

}  // namespace stratalake
