// core_bench — the uthreads core workloads, one-for-one the same as
// bench/peers/asio_bench.cpp so that scripts/run-bench can print a fair ratio.
//
// A plain program (no Google Benchmark): one thread, one runtime per measured run,
// on the default backend, or the one named by argv[1] (else $UTHREADS_BACKEND).
// `--only <workload>` runs one workload, for profiling.
//
// Output contract (consumed by scripts/run-bench): stdout carries only lines
//     RESULT <name> <value> <unit>
// Everything else goes to stderr.
//
// Every measurement: one warm-up run, then the best (minimum) of 3 runs, each on a
// fresh `ut::run` (as asio_bench uses a fresh io_context), timed with
// std::chrono::steady_clock inside the measured microthread.
//
// Where the Asio side needs a different spelling (parallel groups for joining,
// a capacity-1 channel as a lock), the comment at each workload says what the
// uthreads equivalent is and why it does the same work.

#include "harness.hpp"
#include "scheduler_workloads.hpp"

#include <uthreads/uthreads.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ut = uthreads;
using Clock = std::chrono::steady_clock;

namespace {

// The backend every run uses: "" lets ut::run pick $UTHREADS_BACKEND or the default.
ut::options g_opts;

using bench::die;
using bench::ms_since;
using bench::ns_since;
using bench::result;

// Runs one measuring task as the main microthread of a fresh runtime and returns
// the value it reports.
double run_once(const std::function<ut::task<double>()>& make) {
    return ut::run(make(), g_opts);
}

// Warm-up, then best of 3 (bench/harness.hpp), each run on a fresh runtime.
double best_of_3(const char* name, const std::function<ut::task<double>()>& make) {
    return bench::best_of_3(name, [&] { return run_once(make); });
}

// ---------------------------------------------------------------- skynet
// Every node with size > 1 spawns its 10 children as independent microthreads
// (`ut::spawn`, the Asio side's co_spawn) and joins them in order with
// `co_await handle` (the Asio side's wait_for_all parallel group), summing their
// results. Leaves are spawned microthreads too and return their number. As on the
// Asio side, the root is a nested call from the measuring microthread.
using bench::kSkynetLeaves;
using bench::kSkynetSum;
using bench::skynet;

ut::task<double> skynet_run() {
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

// ---------------------------------------------------------------- spawn+join, ping-pong
// Shared with the other scheduler benchmark: bench/scheduler_workloads.hpp.
ut::task<double> spawn_join_run() { return bench::spawn_join_run<Clock>(); }
ut::task<double> pingpong_run(std::ptrdiff_t capacity) {
    return bench::pingpong_run<Clock>(capacity);
}

// ---------------------------------------------------------------- yield
// Two microthreads alternately yielding via co_await ut::yield_now() (the Asio
// side's co_await post(ex)). ns per switch, switches = total yields of both.
// Both are spawned inside the timed region, as the Asio side's deferred
// co_spawns start only when the group is awaited.
constexpr int kYieldsEach = 1'000'000;

ut::task<> yielder(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<double> yield_run() {
    auto t0 = Clock::now();
    auto a = ut::spawn(yielder(kYieldsEach));
    auto b = ut::spawn(yielder(kYieldsEach));
    co_await a;
    co_await b;
    co_return ns_since(t0) / (2.0 * kYieldsEach);
}

// ---------------------------------------------------------------- mutex hand-off
// kLockers microthreads contend for one ut::mutex; each locks, bumps a shared
// counter, unlocks, and immediately tries to lock again — the Asio side's loop
// with its capacity-1 token channel standing in for a lock. ut::mutex hands a
// released lock straight to the longest waiter (no barging), so once the other
// locker is queued every unlock is a hand-off to it, as with the Asio token.
// (Before the second locker first runs, the first one re-locks uncontended until
// its cooperative budget makes it yield: at most a few hundred of the 1,000,000
// acquisitions.) ns per lock hand-off (= per acquisition).
constexpr int kLockers = 2;
constexpr int kLocksTotal = 1'000'000;

ut::task<> locker(ut::mutex& m, int n, long& counter) {
    for (int i = 0; i < n; ++i) {
        auto lock = co_await m.lock();  // lock
        ++counter;                      // critical section
    }                                   // unlock (guard destructor)
}

ut::task<double> mutex_run() {
    ut::mutex m;
    long counter = 0;
    std::vector<ut::join_handle<void>> hs;
    auto t0 = Clock::now();
    for (int k = 0; k < kLockers; ++k)
        hs.push_back(ut::spawn(locker(m, kLocksTotal / kLockers, counter)));
    for (auto& h : hs) co_await h;
    double ns = ns_since(t0) / kLocksTotal;
    if (counter != kLocksTotal) die("mutex: wrong count");
    co_return ns;
}

// ---------------------------------------------------------------- nesting
// A chain of nested co_await child(n-1) ut::task<int> calls, each level awaiting
// the next (a nested call inside the same microthread). uthreads tasks use
// symmetric transfer, so depth does not consume native stack.
constexpr int kNestingDepth = 1'000'000;

ut::task<int> child(int n) {
    if (n == 0) co_return 0;
    int v = co_await child(n - 1);
    co_return v + 1;
}

ut::task<double> nesting_run(int depth) {
    auto t0 = Clock::now();
    int v = co_await child(depth);
    double ms = ms_since(t0);
    if (v != depth) die("nesting: wrong result");
    co_return ms;
}

void bench_nesting() {
    // Each depth is probed in a forked child, so a stack overflow cannot kill us.
    int depth = bench::usable_depth(kNestingDepth, "ut::task", [](int d) {
        return bench::succeeds_in_child([d] { run_once([d] { return nesting_run(d); }); });
    });
    result("nesting_ms", best_of_3("nesting_ms", [depth] { return nesting_run(depth); }), "ms");
    if (depth != kNestingDepth) result("nesting_depth", depth, "levels");
}

ut::task<std::string> backend_name() {
    co_return std::string(ut::current_backend());
}

}  // namespace

int main(int argc, char** argv) {
    bench::program = "core_bench";
    // bench_core [backend] [--only <workload>]: --only runs one workload (by the
    // first RESULT name it prints), for profiling.
    std::string only;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else if (!a.empty() && a[0] != '-' && g_opts.backend.empty()) {
            g_opts.backend = a;
        } else {
            std::fprintf(stderr,
                         "usage: %s [backend] [--only <workload>]\n"
                         "  backend: default $UTHREADS_BACKEND, else the platform default\n",
                         argv[0]);
            return 2;
        }
    }
    auto want = [&](const char* name) { return only.empty() || only == name; };
    try {
        if (!g_opts.backend.empty()) {
            auto names = ut::available_backends();
            if (std::find(names.begin(), names.end(), g_opts.backend) == names.end()) {
                std::string list;
                for (auto& n : names) list += " " + n;
                std::fprintf(stderr, "core_bench: unknown backend \"%s\"; available:%s\n",
                             g_opts.backend.c_str(), list.c_str());
                return 2;
            }
        }
        // First, before this process starts any runtime, in a forked child: its VmHWM
        // is skynet's only.
        if (want("skynet_ms")) bench_skynet();
        std::string backend = ut::run(backend_name(), g_opts);
        std::fprintf(stderr, "core_bench: uthreads, backend \"%s\", single thread\n",
                     backend.c_str());
        if (want("spawn_join_ns"))
            result("spawn_join_ns", best_of_3("spawn_join_ns", spawn_join_run), "ns");
        if (want("chan0_pingpong_ns"))
            result("chan0_pingpong_ns",
                   best_of_3("chan0_pingpong_ns", [] { return pingpong_run(0); }), "ns");
        if (want("chan1_pingpong_ns"))
            result("chan1_pingpong_ns",
                   best_of_3("chan1_pingpong_ns", [] { return pingpong_run(1); }), "ns");
        if (want("yield_ns")) result("yield_ns", best_of_3("yield_ns", yield_run), "ns");
        if (want("mutex_handoff_ns"))
            result("mutex_handoff_ns", best_of_3("mutex_handoff_ns", mutex_run), "ns");
        if (want("nesting_ms")) bench_nesting();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "core_bench: exception: %s\n", e.what());
        return 1;
    } catch (const ut::cancelled&) {
        std::fprintf(stderr, "core_bench: main microthread was cancelled\n");
        return 1;
    }
    return 0;
}
