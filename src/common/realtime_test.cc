#include "common/realtime.h"

#include <sched.h>

#include <thread>

#include <gtest/gtest.h>

namespace stratalake {
namespace {

// The calling thread's policy (without the reset-on-fork flag) and priority.
struct ThreadScheduling {
  int policy = 0;
  int priority = 0;
};
ThreadScheduling CurrentThreadScheduling() {
  ThreadScheduling s;
  const int policy = sched_getscheduler(0);
  s.policy = policy < 0 ? SCHED_OTHER : (policy & ~SCHED_RESET_ON_FORK);
  sched_param param{};
  if (sched_getparam(0, &param) == 0) s.priority = param.sched_priority;
  return s;
}

// Whether this process may use SCHED_FIFO at `priority` (root, CAP_SYS_NICE or
// RLIMIT_RTPRIO), asked of the kernel on a thread of its own.
bool MayUseRealtime(int priority) {
  bool ok = false;
  std::thread t([&] {
    sched_param p{};
    p.sched_priority = priority;
    ok = sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &p) == 0;
  });
  t.join();
  return ok;
}

TEST(RealtimeTest, OutOfRangePrioritiesAreRefusedWithTheRange) {
  EXPECT_EQ(MinRealtimePriority(), 1);
  EXPECT_EQ(MaxRealtimePriority(), 99);
  std::thread t([] {
    for (int bad : {0, -3, 100}) {
      auto st = SetRealtimePriority(bad);
      ASSERT_TRUE(st.IsInvalid()) << st.ToString();
      EXPECT_EQ(st.message(), "realtime priority " + std::to_string(bad) +
                                  " is out of range: use 1..99 (SCHED_FIFO; higher runs first)");
      EXPECT_EQ(CurrentThreadScheduling().policy, SCHED_OTHER);
    }
  });
  t.join();
}

// Only the calling thread changes; threads it starts afterwards, and the
// thread that started it, stay ordinary. Without permission, the error says
// how to get it and nothing changes.
TEST(RealtimeTest, OnlyTheCallingThreadRunsAtTheRealtimePriority) {
  const bool permitted = MayUseRealtime(7);
  ThreadScheduling rt, child;
  arrow::Status st;
  std::thread t([&] {
    st = SetRealtimePriority(7);
    rt = CurrentThreadScheduling();
    std::thread c([&] { child = CurrentThreadScheduling(); });
    c.join();
  });
  t.join();
  EXPECT_EQ(CurrentThreadScheduling().policy, SCHED_OTHER);
  EXPECT_EQ(child.policy, SCHED_OTHER);
  EXPECT_EQ(child.priority, 0);
  if (permitted) {
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(rt.policy, SCHED_FIFO);
    EXPECT_EQ(rt.priority, 7);
  } else {
    ASSERT_TRUE(st.IsIOError()) << st.ToString();
    EXPECT_NE(st.message().find("CAP_SYS_NICE"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("ulimit -r"), std::string::npos) << st.message();
    EXPECT_EQ(rt.policy, SCHED_OTHER);
  }
}

}  // namespace
}  // namespace stratalake
