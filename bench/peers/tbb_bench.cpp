// tbb_bench — peer of bench/threads_bench.cpp for its fork-join rows: skynet 1M and
// fib(30) written with Intel oneTBB's `task_group` (Debian libtbb-dev, oneTBB 2021),
// run inside a `task_arena` of 1 and of 2 threads.
//
//   skynet 1M   every node with more than one leaf runs its 10 children as tasks of
//               a task_group and waits for them, summing their results (the tree and
//               the check of bench/threads_bench.cpp's skynet)
//   fib(30)     fork-join: run fib(n-1) as a task, compute fib(n-2) in place, wait
//               (threads_bench spawns fib(n-1) and awaits fib(n-2) the same way)
//
// Every measurement: one warm-up run, then the best (minimum) of 3, each timed with
// steady_clock inside the arena (bench/harness.hpp). A `task_arena` of N threads
// admits the calling thread and N-1 of TBB's workers.
//
// Output (consumed by scripts/run-bench), on stdout only:
//     RESULT skynet_ms_<N>w <v> ms      RESULT fib30_ms_<N>w <v> ms
// for N = 1 and 2 — the names threads_bench prints for its workers; here N counts
// the arena's threads. Commentary goes to stderr.

#include "../harness.hpp"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/version.h>

#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace {

using bench::Clock;
using bench::die;
using bench::ms_since;
using bench::result;

// ---------------------------------------------------------------- skynet
constexpr std::int64_t skynet_leaves = 1'000'000;
constexpr std::int64_t skynet_sum = skynet_leaves * (skynet_leaves - 1) / 2;

std::int64_t skynet(std::int64_t num, std::int64_t size) {
    if (size == 1) return num;
    const std::int64_t sub = size / 10;
    std::array<std::int64_t, 10> sums{};
    tbb::task_group g;
    for (std::int64_t i = 0; i < 10; ++i)
        g.run([&sums, i, num, sub] {
            sums[static_cast<std::size_t>(i)] = skynet(num + i * sub, sub);
        });
    g.wait();
    std::int64_t sum = 0;
    for (auto s : sums) sum += s;
    return sum;
}

double skynet_run() {
    auto t0 = Clock::now();
    std::int64_t sum = skynet(0, skynet_leaves);
    double ms = ms_since(t0);
    bench::check_skynet_sum(sum, skynet_sum);
    return ms;
}

// ---------------------------------------------------------------- fib(30)
long fib(int n) {
    if (n < 2) return n;
    long a = 0;
    tbb::task_group g;
    g.run([&a, n] { a = fib(n - 1); });
    long b = fib(n - 2);
    g.wait();
    return a + b;
}

double fib_run() {
    auto t0 = Clock::now();
    long v = fib(30);
    double ms = ms_since(t0);
    if (v != 832040) die("fib: wrong value");
    return ms;
}

// Warm-up and best of 3 of `run`, every run inside `arena`.
void row(tbb::task_arena& arena, int threads, const char* name,
         const std::function<double()>& run) {
    std::string label = std::string(name) + "_" + std::to_string(threads) + "w";
    double best = bench::best_of_3(label.c_str(), [&] {
        double v = 0;
        arena.execute([&] { v = run(); });
        return v;
    });
    result(label.c_str(), best, "ms");
}

}  // namespace

int main() {
    bench::program = "tbb_bench";
    std::fprintf(stderr, "tbb_bench: oneTBB %s, %u hardware threads, default parallelism %zu\n",
                 TBB_VERSION_STRING, std::thread::hardware_concurrency(),
                 tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
    try {
        for (int threads : {1, 2}) {
            tbb::task_arena arena(threads);
            arena.initialize();
            std::fprintf(stderr, "tbb_bench: task_arena of %d thread(s) (max_concurrency %d)\n",
                         threads, arena.max_concurrency());
            if (arena.max_concurrency() != threads) die("task_arena refused the thread count");
            row(arena, threads, "skynet_ms", skynet_run);
            row(arena, threads, "fib30_ms", fib_run);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tbb_bench: exception: %s\n", e.what());
        return 1;
    }
    return 0;
}
