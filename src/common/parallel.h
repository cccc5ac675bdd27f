// Running independent tasks on a few threads.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace stratalake {

/// The number of threads for CPU-bound work: the hardware threads, at least 2.
/// The CPUs this process may run on (its affinity mask: taskset, cgroups), at least 1.
inline int UsableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

/// The CPUs this process may run on, in increasing order (empty if unknown).
inline std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

/// Pins the calling thread to `cpu`; false (and unpinned) where that fails.
inline bool PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

inline size_t CpuThreads() { return std::max(2u, std::thread::hardware_concurrency()); }

/// Call `fn(i)` for every i in [0, n) on up to `max_threads` threads (the caller's
/// thread alone when that is 1 or n is 1); returns when all calls have returned.
/// `fn` must be safe to call concurrently for different i and must not throw.
template <typename Fn>
void ParallelFor(size_t n, size_t max_threads, Fn&& fn) {
  size_t n_threads = std::min(max_threads, n);
  if (n_threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  threads.reserve(n_threads);
  for (size_t t = 0; t < n_threads; ++t) {
    threads.emplace_back([&]() {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace stratalake
