// The scheduler workloads shared by core_bench (against Asio, wall clock),
// backends_bench (across backends, thread CPU clock) and threads_bench (1 and 2
// workers): skynet, spawn+join and channel ping-pong. `Clock` is any clock type
// with now() and a time_point.
#pragma once

#include <uthreads/uthreads.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

namespace bench {

namespace ut = uthreads;

[[noreturn]] inline void workload_failed(const char* what) {
    std::fprintf(stderr, "benchmark workload failed: %s\n", what);
    std::exit(1);
}

// Skynet: every node spawns 10 children and joins them; 10^6 leaves, each a
// spawned microthread that returns its number, so the root sums 0..10^6-1.
// Leaves are spawned microthreads too. The children's handles are in a vector, as
// the Asio side's `ops`: a leaf's frame then holds 24 bytes for it, not ten
// handles, and only inner nodes allocate.
constexpr std::int64_t kSkynetLeaves = 1'000'000;
constexpr std::int64_t kSkynetSum = kSkynetLeaves * (kSkynetLeaves - 1) / 2;  // 499999500000

inline ut::task<std::int64_t> skynet(std::int64_t num, std::int64_t size) {
    if (size == 1) co_return num;
    const std::int64_t sub = size / 10;
    std::vector<ut::join_handle<std::int64_t>> kids;
    kids.reserve(10);
    for (std::int64_t i = 0; i < 10; ++i) kids.push_back(ut::spawn(skynet(num + i * sub, sub)));
    std::int64_t sum = 0;
    for (auto& k : kids) sum += co_await k;
    co_return sum;
}

template <class Clock>
double ns_between(typename Clock::time_point t0, typename Clock::time_point t1) {
    return std::chrono::duration<double, std::nano>(t1 - t0).count();
}

// 1,000,000 trivial microthreads, each spawned separately; the spawner spawns
// them in batches of 1000 and joins each batch (every handle awaited in turn; the
// Asio side's wait_for_all group), so up to 1000 are alive and runnable at a time.
inline constexpr int spawn_total = 1'000'000;
inline constexpr int spawn_batch = 1000;

inline ut::task<> trivial() {
    co_return;
}

template <class Clock>
ut::task<double> spawn_join_run() {
    auto t0 = Clock::now();
    for (int done = 0; done < spawn_total; done += spawn_batch) {
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(spawn_batch);
        for (int i = 0; i < spawn_batch; ++i) hs.push_back(ut::spawn(trivial()));
        for (auto& h : hs) co_await h;
    }
    co_return ns_between<Clock>(t0, Clock::now()) / spawn_total;
}

// Two microthreads, two channels (ping: A->B, pong: B->A) of the given
// capacity; one round trip = A sends, B receives, B sends back, A receives.
// As on the Asio side the ponger is spawned inside the timed region; it is joined
// after the clock stops (the Asio side detaches it).
inline constexpr int round_trips = 1'000'000;

inline ut::task<> ponger(ut::channel<int>& ping, ut::channel<int>& pong, int n) {
    for (int i = 0; i < n; ++i) {
        std::optional<int> v = co_await ping.recv();
        if (!v) workload_failed("ping-pong: ping channel closed");
        co_await pong.send(*v + 1);
    }
}

template <class Clock>
ut::task<double> pingpong_run(std::ptrdiff_t capacity) {
    ut::channel<int> ping(capacity), pong(capacity);
    auto t0 = Clock::now();
    auto h = ut::spawn(ponger(ping, pong, round_trips));
    for (int i = 0; i < round_trips; ++i) {
        co_await ping.send(i);
        std::optional<int> v = co_await pong.recv();
        if (!v || *v != i + 1) workload_failed("ping-pong: wrong value");
    }
    double ns = ns_between<Clock>(t0, Clock::now()) / round_trips;
    co_await h;
    co_return ns;
}

}  // namespace bench
