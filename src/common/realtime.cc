#include "common/realtime.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace stratalake {

int MinRealtimePriority() { return sched_get_priority_min(SCHED_FIFO); }
int MaxRealtimePriority() { return sched_get_priority_max(SCHED_FIFO); }

arrow::Status SetRealtimePriority(int priority) {
  const int lo = MinRealtimePriority();
  const int hi = MaxRealtimePriority();
  if (priority < lo || priority > hi) {
    return arrow::Status::Invalid("realtime priority ", priority, " is out of range: use ", lo,
                                  "..", hi, " (SCHED_FIFO; higher runs first)");
  }
  sched_param param{};
  param.sched_priority = priority;
  // pid 0: the calling thread (Linux schedules threads, not processes).
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) == 0) {
    return arrow::Status::OK();
  }
  const int err = errno;
  std::string msg = "cannot run at realtime priority " + std::to_string(priority) +
                    " (SCHED_FIFO): " + std::strerror(err);
  if (err == EPERM) {
    msg +=
        "; run as root, give the program CAP_SYS_NICE (setcap cap_sys_nice+ep PROGRAM), or "
        "allow realtime priorities up to " +
        std::to_string(priority) +
        " for this user (ulimit -r, or 'rtprio' in /etc/security/limits.conf)";
  }
  return arrow::Status::IOError(msg);
}

}  // namespace stratalake
