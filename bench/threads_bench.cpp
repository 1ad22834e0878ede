// threads_bench — the multi-threaded runtime on fork-join and cross-worker
// workloads, with 1 and 2 workers (options.threads), and the 2-worker/1-worker
// ratio. A plain program like core_bench: one warm-up run, then the best of 3,
// each on a fresh `ut::run`; backend from argv[1] (else $UTHREADS_BACKEND).
//
//   skynet 1M        every node spawns 10 children and joins them (as core_bench)
//   fib(30)          fork-join: spawn fib(n-1), call fib(n-2), join
//   chan_pingpong    two microthreads bounce a value through two capacity-1
//                    channels (with 2 workers they usually sit on different
//                    workers: each side first blocks its OS thread briefly so
//                    the other is stolen)
//   spawn_join_many  8 producers each spawn and join 20,000 microthreads
//   loaded_hop       the ping-pong's bouncers, while 16 microthreads per worker
//                    yield in a loop: the cost of a hop behind a long ready queue
//
// Output: `RESULT <name> <value> <unit>` lines on stdout, commentary on stderr.
// Targets (issue 5): skynet on 2 workers <= 0.6x its 1-worker time.

#include "harness.hpp"
#include "scheduler_workloads.hpp"

#include <uthreads/uthreads.hpp>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace ut = uthreads;
using Clock = std::chrono::steady_clock;
using bench::die;
using bench::ms_since;
using bench::result;

namespace {

std::string g_backend;

unsigned g_run_threads = 1;  // workers of the run in progress

double run_with(unsigned threads, const std::function<ut::task<double>()>& make) {
    g_run_threads = threads;
    return ut::run(make(), ut::options{.backend = g_backend, .threads = threads});
}

double best_of_3(const char* name, unsigned threads, const std::function<ut::task<double>()>& make) {
    double warm = run_with(threads, make);
    double best = 1e300;
    std::fprintf(stderr, "  %-24s %u worker(s): warm-up %.3f |", name, threads, warm);
    for (int i = 0; i < 3; ++i) {
        double v = run_with(threads, make);
        std::fprintf(stderr, " %.3f", v);
        best = std::min(best, v);
    }
    std::fprintf(stderr, "  -> best %.3f\n", best);
    return best;
}

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

ut::task<long> fib(int n) {
    if (n < 2) co_return n;
    auto a = ut::spawn(fib(n - 1));
    long b = co_await fib(n - 2);
    co_return co_await a + b;
}

ut::task<double> fib_run() {
    auto t0 = Clock::now();
    long v = co_await fib(30);
    double ms = ms_since(t0);
    if (v != 832040) die("fib: wrong value");
    co_return ms;
}

constexpr int kPingPongs = 200'000;

// One side of a ping-pong: receives a count on `in` and sends it on, plus one,
// until it reaches `hops`. `spread` first blocks the OS thread briefly, so that
// with 2 workers the other side is stolen while it sleeps.
ut::task<void> bouncer(ut::channel<int>& in, ut::channel<int>& out, bool serve, int hops,
                       bool spread) {
    if (spread) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (serve) co_await out.send(0);
    for (;;) {
        auto v = co_await in.recv();
        if (!v || *v >= hops) {
            out.close();
            co_return;
        }
        co_await out.send(*v + 1);
    }
}

ut::task<double> pingpong_run() {
    ut::channel<int> a(1), b(1);
    auto t0 = Clock::now();
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        n.spawn(bouncer(a, b, true, kPingPongs, true));
        n.spawn(bouncer(b, a, false, kPingPongs, true));
        co_return;
    });
    // ns per one-way hand-off (the 4 ms of start-up sleeps included; small next
    // to 200,000 round trips).
    co_return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kPingPongs;
}

// Message passing on a loaded runtime: the same two bouncers, capacity 1, each
// hop a wake-up of the other, while 16 microthreads per worker keep every ready
// queue long by yielding until the bouncers are done. A woken bouncer that waits
// behind the whole queue pays for it on every hop; the LIFO slot of a worker
// (docs/threads.md) runs it next instead.
constexpr int kLoadedHops = 100'000, kYieldersPerWorker = 16;

ut::task<void> yielder(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) co_await ut::yield_now();
}

ut::task<double> loaded_hop_run() {
    const unsigned workers = g_run_threads;
    ut::channel<int> a(1), b(1);
    std::atomic<bool> stop{false};
    double ns = 0;
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (unsigned i = 0; i < kYieldersPerWorker * workers; ++i) n.spawn(yielder(stop));
        auto t0 = Clock::now();
        co_await ut::with_nursery([&](ut::nursery& pair) -> ut::task<> {
            pair.spawn(bouncer(a, b, true, kLoadedHops, false));
            pair.spawn(bouncer(b, a, false, kLoadedHops, false));
            co_return;
        });
        ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kLoadedHops;
        stop.store(true, std::memory_order_relaxed);
    });
    co_return ns;
}

constexpr int kProducers = 8, kPerProducer = 20'000;

ut::task<int> one() { co_return 1; }

ut::task<void> producer(std::int64_t& out) {
    std::int64_t s = 0;
    for (int i = 0; i < kPerProducer; ++i) s += co_await ut::spawn(one());
    out = s;
}

ut::task<double> spawn_join_many_run() {
    std::vector<std::int64_t> sums(kProducers);
    auto t0 = Clock::now();
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int p = 0; p < kProducers; ++p) n.spawn(producer(sums[static_cast<std::size_t>(p)]));
        co_return;
    });
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                (kProducers * kPerProducer);
    for (auto s : sums)
        if (s != kPerProducer) die("spawn_join_many: wrong sum");
    co_return ns;
}

unsigned g_workers = 0;  // --workers N: only N workers, no ratio (for profiling)

void ratio_row(const char* name, const char* unit, const std::function<ut::task<double>()>& make) {
    if (g_workers != 0) {
        std::string n = std::string(name) + "_" + std::to_string(g_workers) + "w";
        result(n.c_str(), best_of_3(name, g_workers, make), unit);
        return;
    }
    double one_w = best_of_3(name, 1, make);
    double two_w = best_of_3(name, 2, make);
    std::string n1 = std::string(name) + "_1w", n2 = std::string(name) + "_2w",
                r = std::string(name) + "_2w_over_1w";
    result(n1.c_str(), one_w, unit);
    result(n2.c_str(), two_w, unit);
    result(r.c_str(), two_w / one_w, "x");
}

}  // namespace

int main(int argc, char** argv) {
    bench::program = "threads_bench";
    // threads_bench [backend] [--only <workload>] [--workers N]: --only runs one
    // row and --workers one worker count, for profiling.
    const char* usage = "usage: threads_bench [backend] [--only skynet_ms|fib30_ms|"
                        "chan_pingpong_ns|spawn_join_many_ns|loaded_hop_ns] [--workers N]\n";
    std::string only;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else if (a == "--workers" && i + 1 < argc) {
            int n = std::atoi(argv[++i]);
            if (n < 1) {
                std::fprintf(stderr, "threads_bench: --workers needs a count >= 1\n%s", usage);
                return 2;
            }
            g_workers = static_cast<unsigned>(n);
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "%s", usage);
            return a == "--help" ? 0 : 2;
        } else {
            g_backend = a;
        }
    }
    if (!only.empty() && only != "skynet_ms" && only != "fib30_ms" && only != "chan_pingpong_ns" &&
        only != "spawn_join_many_ns" && only != "loaded_hop_ns") {
        std::fprintf(stderr, "threads_bench: --only: unknown workload '%s'\n%s", only.c_str(), usage);
        return 2;
    }
    std::fprintf(stderr, "threads_bench: backend \"%s\", %u hardware threads\n",
                 g_backend.empty() ? "(default)" : g_backend.c_str(),
                 std::thread::hardware_concurrency());
    auto row = [&](const char* name, const char* unit, auto run) {
        if (only.empty() || only == name) ratio_row(name, unit, run);
    };
    row("skynet_ms", "ms", skynet_run);
    row("fib30_ms", "ms", fib_run);
    row("chan_pingpong_ns", "ns", pingpong_run);
    row("spawn_join_many_ns", "ns", spawn_join_many_run);
    row("loaded_hop_ns", "ns", loaded_hop_run);
    return 0;
}
