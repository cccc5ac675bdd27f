// Realtime scheduling for latency-critical threads (Linux SCHED_FIFO).
//
// A thread at a realtime priority runs as soon as it is ready, ahead of every
// ordinary (SCHED_OTHER) thread on its CPU, kernel housekeeping threads
// included: on a small VM those (memory reclaim, RCU callbacks, agents) take a
// CPU for milliseconds at a time, which is what sets a feature server's p99
// (docs/online-store.md, "Realtime priority"). The price: while such a thread
// is busy, ordinary threads on its CPU get only what the kernel's realtime
// throttling leaves them (sched_rt_runtime_us; 5% by default).
#pragma once

#include <arrow/status.h>

namespace stratalake {

/// The accepted priorities: [min, max] of SCHED_FIFO (1..99 on Linux).
int MinRealtimePriority();
int MaxRealtimePriority();

/// Switches the calling thread (only it) to SCHED_FIFO at `priority`, with
/// SCHED_RESET_ON_FORK: threads it starts afterwards run as ordinary threads.
/// Invalid when `priority` is out of range; IOError naming the ways to grant
/// the right (root, CAP_SYS_NICE, `ulimit -r`) when the kernel refuses. The
/// thread's policy is unchanged on error.
arrow::Status SetRealtimePriority(int priority);

}  // namespace stratalake
