// asio_bench — peer benchmark: the uthreads core workloads written idiomatically
// with Boost.Asio (1.81) C++20 coroutines (awaitable / co_spawn / experimental
// channels and parallel groups), on a single-threaded io_context
// (concurrency hint 1).
//
// Output contract (consumed by scripts/run-bench): stdout carries only lines
//     RESULT <name> <value> <unit>
// Everything else goes to stderr.
//
// Every measurement: one warm-up run, then the best (minimum) of 3 runs,
// timed with std::chrono::steady_clock inside the measured coroutine.
//
// Build: clang++ -std=c++20 -O2 -pthread asio_bench.cpp -o asio_bench

#include "../harness.hpp"
#include "asio_skynet.hpp"
#include <boost/version.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using channel_t = asio::experimental::channel<void(boost::system::error_code, int)>;

namespace {

using bench::die;
using bench::ms_since;
using bench::ns_since;
using bench::result;

// Runs one measuring coroutine to completion on a fresh single-threaded
// io_context and returns the value it reports.
double run_once(const std::function<awaitable<double>()>& make) {
    asio::io_context ctx(1);  // concurrency hint 1
    double out = -1;
    std::exception_ptr err;
    asio::co_spawn(ctx, make(), [&](std::exception_ptr e, double v) {
        err = e;
        out = v;
    });
    ctx.run();
    if (err) std::rethrow_exception(err);
    return out;
}

// Warm-up, then best of 3 (bench/harness.hpp), each run on a fresh runtime.
double best_of_3(const char* name, const std::function<awaitable<double>()>& make) {
    return bench::best_of_3(name, [&] { return run_once(make); });
}

// ---------------------------------------------------------------- skynet
// bench/peers/asio_skynet.hpp.
constexpr std::int64_t kSkynetLeaves = 1'000'000;
constexpr std::int64_t kSkynetSum = kSkynetLeaves * (kSkynetLeaves - 1) / 2;  // 499999500000
using bench::asio_peer::skynet;

awaitable<double> skynet_run() {
    auto t0 = Clock::now();
    std::int64_t sum = co_await skynet(0, kSkynetLeaves);
    double ms = ms_since(t0);
    bench::check_skynet_sum(sum, kSkynetSum);
    co_return ms;
}

// Skynet (warm-up + best of 3) in a forked child, so the peak RSS is skynet's
// alone.
void bench_skynet() {
    auto [ms, mb] = bench::best_of_3_in_child("skynet_ms", [] { return run_once(skynet_run); });
    std::fprintf(stderr, "  skynet peak RSS (VmHWM of child) %.1f MB\n", mb);
    result("skynet_ms", ms, "ms");
    result("skynet_peak_rss_mb", mb, "MB");
}

// ---------------------------------------------------------------- spawn+join
// 1,000,000 trivial coroutines, each co_spawned separately; the spawner
// spawns them in batches of 1000 and joins each batch (ranged parallel group,
// wait_for_all), so up to 1000 are alive and runnable at a time.
constexpr int kSpawnTotal = 1'000'000;
constexpr int kSpawnBatch = 1000;

awaitable<void> trivial() { co_return; }

awaitable<double> spawn_join_run() {
    auto ex = co_await asio::this_coro::executor;
    using op_t = decltype(asio::co_spawn(ex, trivial(), asio::deferred));
    auto t0 = Clock::now();
    for (int done = 0; done < kSpawnTotal; done += kSpawnBatch) {
        std::vector<op_t> ops;
        ops.reserve(kSpawnBatch);
        for (int i = 0; i < kSpawnBatch; ++i) ops.push_back(asio::co_spawn(ex, trivial(), asio::deferred));
        auto [order, excs] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                 .async_wait(asio::experimental::wait_for_all(), use_awaitable);
        for (auto& e : excs)
            if (e) std::rethrow_exception(e);
    }
    co_return ns_since(t0) / kSpawnTotal;
}

// ---------------------------------------------------------------- channel ping-pong
// Two coroutines, two channels (ping: A->B, pong: B->A) of the given
// capacity; one round trip = A sends, B receives, B sends back, A receives.
constexpr int kRoundTrips = 1'000'000;

awaitable<void> ponger(channel_t& ping, channel_t& pong, int n) {
    for (int i = 0; i < n; ++i) {
        int v = co_await ping.async_receive(use_awaitable);
        co_await pong.async_send(boost::system::error_code{}, v + 1, use_awaitable);
    }
}

awaitable<double> pingpong_run(std::size_t capacity) {
    auto ex = co_await asio::this_coro::executor;
    channel_t ping(ex, capacity), pong(ex, capacity);
    auto t0 = Clock::now();
    asio::co_spawn(ex, ponger(ping, pong, kRoundTrips), asio::detached);
    for (int i = 0; i < kRoundTrips; ++i) {
        co_await ping.async_send(boost::system::error_code{}, i, use_awaitable);
        int v = co_await pong.async_receive(use_awaitable);
        if (v != i + 1) die("ping-pong: wrong value");
    }
    co_return ns_since(t0) / kRoundTrips;
}

// ---------------------------------------------------------------- yield
// Two coroutines alternately yielding via co_await asio::post(ex, use_awaitable).
// ns per switch, switches = total yields of both coroutines.
constexpr int kYieldsEach = 1'000'000;

awaitable<void> yielder(int n) {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < n; ++i) co_await asio::post(ex, use_awaitable);
}

awaitable<double> yield_run() {
    auto ex = co_await asio::this_coro::executor;
    using op_t = decltype(asio::co_spawn(ex, yielder(1), asio::deferred));
    std::vector<op_t> ops;
    ops.push_back(asio::co_spawn(ex, yielder(kYieldsEach), asio::deferred));
    ops.push_back(asio::co_spawn(ex, yielder(kYieldsEach), asio::deferred));
    auto t0 = Clock::now();
    co_await asio::experimental::make_parallel_group(std::move(ops))
        .async_wait(asio::experimental::wait_for_all(), use_awaitable);
    co_return ns_since(t0) / (2.0 * kYieldsEach);
}

// ---------------------------------------------------------------- mutex hand-off
// Asio has no coroutine mutex. The idiomatic equivalent used here is a
// channel of capacity 1 holding a single token:
//     lock   = co_await token.async_receive(use_awaitable)
//     unlock = token.try_send(error_code{}, 0)
// (a strand serialises handlers, not multi-step critical sections spanning
// suspension points, so it is not a lock equivalent for coroutines).
// kLockers coroutines contend; each locks, bumps a shared counter, unlocks,
// and immediately tries to lock again. Since the others are already queued
// on async_receive, every unlock hands the token to a waiting coroutine.
// ns per lock hand-off (= per acquisition).
constexpr int kLockers = 2;
constexpr int kLocksTotal = 1'000'000;

awaitable<void> locker(channel_t& token, int n, long& counter) {
    for (int i = 0; i < n; ++i) {
        co_await token.async_receive(use_awaitable);  // lock
        ++counter;                                    // critical section
        if (!token.try_send(boost::system::error_code{}, 0)) die("mutex: token lost");  // unlock
    }
}

awaitable<double> mutex_run() {
    auto ex = co_await asio::this_coro::executor;
    channel_t token(ex, 1);
    if (!token.try_send(boost::system::error_code{}, 0)) die("mutex: initial token");
    long counter = 0;
    using op_t = decltype(asio::co_spawn(ex, locker(token, 1, counter), asio::deferred));
    std::vector<op_t> ops;
    for (int k = 0; k < kLockers; ++k)
        ops.push_back(asio::co_spawn(ex, locker(token, kLocksTotal / kLockers, counter), asio::deferred));
    auto t0 = Clock::now();
    co_await asio::experimental::make_parallel_group(std::move(ops))
        .async_wait(asio::experimental::wait_for_all(), use_awaitable);
    double ns = ns_since(t0) / kLocksTotal;
    if (counter != kLocksTotal) die("mutex: wrong count");
    co_return ns;
}

// ---------------------------------------------------------------- nesting
// A chain of nested co_await child(n-1) awaitable<int> calls, each level
// awaiting the next (a nested call inside the same coroutine "thread").
// Asio's awaitable keeps its own heap-allocated frame stack and resumes
// frames from a pump loop, so depth does not consume native stack.
constexpr int kNestingDepth = 1'000'000;

awaitable<int> child(int n) {
    if (n == 0) co_return 0;
    int v = co_await child(n - 1);
    co_return v + 1;
}

awaitable<double> nesting_run(int depth) {
    auto t0 = Clock::now();
    int v = co_await child(depth);
    double ms = ms_since(t0);
    if (v != depth) die("nesting: wrong result");
    co_return ms;
}

void bench_nesting() {
    // Each depth is probed in a forked child, so a stack overflow cannot kill us.
    int depth = bench::usable_depth(kNestingDepth, "Asio awaitable", [](int d) {
        return bench::succeeds_in_child([d] { run_once([d] { return nesting_run(d); }); });
    });
    result("nesting_ms", best_of_3("nesting_ms", [depth] { return nesting_run(depth); }), "ms");
    if (depth != kNestingDepth) result("nesting_depth", depth, "levels");
}

}  // namespace

int main() {
    bench::program = "asio_bench";
    std::fprintf(stderr, "asio_bench: Boost %d.%d.%d, single-threaded io_context (hint 1)\n",
                 BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
    try {
        bench_skynet();  // first, in a forked child: its VmHWM is skynet's only
        result("spawn_join_ns", best_of_3("spawn_join_ns", spawn_join_run), "ns");
        result("chan0_pingpong_ns", best_of_3("chan0_pingpong_ns", [] { return pingpong_run(0); }), "ns");
        result("chan1_pingpong_ns", best_of_3("chan1_pingpong_ns", [] { return pingpong_run(1); }), "ns");
        result("yield_ns", best_of_3("yield_ns", yield_run), "ns");
        result("mutex_handoff_ns", best_of_3("mutex_handoff_ns", mutex_run), "ns");
        bench_nesting();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "asio_bench: exception: %s\n", e.what());
        return 1;
    }
    return 0;
}
