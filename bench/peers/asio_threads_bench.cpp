// asio_threads_bench — peer of bench/threads_bench.cpp: its four workloads written
// idiomatically with Boost.Asio (1.81) C++20 coroutines (awaitable, co_spawn,
// experimental parallel groups and concurrent channels) on ONE io_context run by
// 1 and by 2 threads (concurrency hint = the thread count):
//
//   skynet 1M        every node co_spawns its 10 children and joins them with a
//                    ranged parallel group (wait_for_all), as bench/peers/asio_bench.
//                    With --quick: skynet 100k, scaled to 1M by the node count
//                    (1,111,111 / 111,111).
//   fib(30)          fork-join: fib(n-1) and fib(n-2) both co_spawned and joined by a
//                    parallel group (wait_for_all). threads_bench spawns fib(n-1) and
//                    awaits fib(n-2) in place; Asio cannot start a coroutine and join
//                    it later from another thread except through such a group
//                    (experimental::promise is not thread-safe), so this side makes
//                    twice the spawns: the idiomatic cost of fork-join in Asio.
//                    fib(30) takes 4-13 s a run here, so fib(25) is run and its time
//                    scaled to fib(30) by the node count (2,692,537 / 242,785).
//                    The scaling is rough: the co_spawned children are queued FIFO,
//                    so the tree is walked breadth-first and its live frames (and
//                    the cost of a node) grow with the tree, and in one process the
//                    runs after the first are often 2x slower than it (probably allocation
//                    from a heap fragmented by the previous run). On a loaded 2-core
//                    machine fib(30) measured in full came out 0.4x to 1.5x the
//                    scaled fib(25) figure. Use --fib 30 to measure it in full.
//   chan_pingpong    two coroutines bounce a counter through two capacity-1
//                    concurrent_channels until it reaches 200,000; ns per one-way
//                    hand-off. Asio does not move a coroutine to the other thread
//                    unless that thread is idle when it is woken, and a handler
//                    posted from a running handler stays in that thread's private
//                    queue: with 2 threads the hops almost never cross threads (the
//                    share that did is printed on stderr). So a second figure,
//                    chan_pingpong_xthread_ns, runs each coroutine on its own
//                    io_context with its own thread: every hop crosses threads, as
//                    in threads_bench's 2-worker row.
//   spawn_join_many  8 producers each co_spawn and await (use_awaitable) 20,000
//                    trivial coroutines one at a time; ns per spawn+join.
//   loaded_hop       the ping-pong's bouncers (to 100,000) while 16 coroutines per
//                    thread yield (co_await post) in a loop; ns per hop.
//
// Every measurement: one warm-up run, then the best (minimum) of 3, each on a fresh
// io_context, timed with steady_clock inside the measured coroutine
// (bench/harness.hpp).
//
// Output (consumed by scripts/run-bench), on stdout only, for N = 1 and 2 threads:
//     RESULT <workload>_<N>w <value> <unit>
// with threads_bench's names (skynet_ms, fib30_ms, chan_pingpong_ns,
// spawn_join_many_ns, loaded_hop_ns), and RESULT chan_pingpong_xthread_ns <value> ns; commentary
// on stderr.
// Usage: asio_threads_bench [--quick] [--fib N]   (--fib: measure fib(N), N <= 30)

#include "../harness.hpp"
#include "asio_skynet.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>

#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using channel_t = asio::experimental::concurrent_channel<void(boost::system::error_code, int)>;

namespace {

using bench::Clock;
using bench::die;
using bench::ms_since;
using bench::ns_since;
using bench::result;

// Runs the measuring coroutine on a fresh io_context run by `threads` threads (this
// one and threads - 1 others) until it has no work left; returns what it reported.
double run_once(unsigned threads, const std::function<awaitable<double>()>& make) {
    asio::io_context ctx(static_cast<int>(threads));
    double out = -1;
    std::exception_ptr err;
    asio::co_spawn(ctx, make(), [&](std::exception_ptr e, double v) {
        err = std::move(e);
        out = v;
    });
    std::vector<std::thread> others;
    for (unsigned i = 1; i < threads; ++i) others.emplace_back([&ctx] { ctx.run(); });
    ctx.run();
    for (auto& t : others) t.join();
    if (err) std::rethrow_exception(err);
    return out;
}

void rethrow_any(const std::vector<std::exception_ptr>& excs) {
    for (auto& e : excs)
        if (e) std::rethrow_exception(e);
}

// ---------------------------------------------------------------- skynet
// Nodes of a skynet tree with `leaves` leaves (a power of 10).
constexpr double skynet_nodes(std::int64_t leaves) {
    double n = 0;
    for (std::int64_t l = leaves; l >= 1; l /= 10) n += static_cast<double>(l);
    return n;
}
constexpr std::int64_t skynet_full = 1'000'000;
std::int64_t g_skynet_leaves = skynet_full;  // 100,000 with --quick

using bench::asio_peer::skynet;  // bench/peers/asio_skynet.hpp

// ms for skynet 1M: measured on g_skynet_leaves, scaled by the node count.
awaitable<double> skynet_run() {
    const std::int64_t leaves = g_skynet_leaves, expected = leaves * (leaves - 1) / 2;
    auto t0 = Clock::now();
    std::int64_t sum = co_await skynet(0, leaves);
    double ms = ms_since(t0);
    bench::check_skynet_sum(sum, expected);
    co_return ms* skynet_nodes(skynet_full) / skynet_nodes(leaves);
}

// ---------------------------------------------------------------- fib(30)
awaitable<long> fib(int n) {
    if (n < 2) co_return n;
    auto ex = co_await asio::this_coro::executor;
    auto [order, e1, a, e2, b] = co_await asio::experimental::make_parallel_group(
                                     asio::co_spawn(ex, fib(n - 1), asio::deferred),
                                     asio::co_spawn(ex, fib(n - 2), asio::deferred))
                                     .async_wait(asio::experimental::wait_for_all(), use_awaitable);
    if (e1) std::rethrow_exception(e1);
    if (e2) std::rethrow_exception(e2);
    co_return a + b;
}

constexpr long fib_value(int n) {
    long a = 0, b = 1;  // fib(0), fib(1)
    for (int i = 0; i < n; ++i) {
        long c = a + b;
        a = b;
        b = c;
    }
    return a;
}
// Calls of fib(n) in the recursion: 2 fib(n+1) - 1.
constexpr double fib_nodes(int n) {
    return 2.0 * static_cast<double>(fib_value(n + 1)) - 1;
}
static_assert(fib_value(30) == 832040 && fib_nodes(30) == 2'692'537 && fib_nodes(25) == 242'785);
int g_fib_measured = 25;  // --fib N

// ms for fib(30): fib(25) measured, scaled by the node count.
awaitable<double> fib_run() {
    auto t0 = Clock::now();
    const int n = g_fib_measured;
    long v = co_await fib(n);
    double ms = ms_since(t0);
    if (v != fib_value(n)) die("fib: wrong value");
    co_return ms* fib_nodes(30) / fib_nodes(n);
}

// ---------------------------------------------------------------- ping-pong
constexpr int ping_pongs = 200'000;

// Which thread sent the value in flight, and how many hops were received on
// another thread. Only the coroutine holding the value touches them, and the
// channel's hand-off orders each hop after the previous one.
struct hop_meter {
    std::thread::id last_sender;
    long crossed = 0;
};

// One side of a ping-pong: passes the count on, plus one, until it reaches `hops`.
awaitable<void> bouncer(channel_t& in, channel_t& out, bool serve, hop_meter& m,
                        int hops = ping_pongs) {
    boost::system::error_code ec;
    if (serve) {
        m.last_sender = std::this_thread::get_id();
        co_await out.async_send(ec, 0, use_awaitable);
    }
    for (;;) {
        int v = co_await in.async_receive(asio::redirect_error(use_awaitable, ec));
        if (ec || v >= hops) {
            out.close();
            co_return;
        }
        if (m.last_sender != std::this_thread::get_id()) ++m.crossed;
        m.last_sender = std::this_thread::get_id();
        co_await out.async_send(boost::system::error_code{}, v + 1, use_awaitable);
    }
}

// Shared between runs of one row, for the commentary only.
std::atomic<double> g_crossed_share{0};

awaitable<double> pingpong_run() {
    auto ex = co_await asio::this_coro::executor;
    channel_t a(ex, 1), b(ex, 1);
    hop_meter m;
    auto t0 = Clock::now();
    auto [order, e1, e2] = co_await asio::experimental::make_parallel_group(
                               asio::co_spawn(ex, bouncer(a, b, true, m), asio::deferred),
                               asio::co_spawn(ex, bouncer(b, a, false, m), asio::deferred))
                               .async_wait(asio::experimental::wait_for_all(), use_awaitable);
    double ns = ns_since(t0) / ping_pongs;
    if (e1) std::rethrow_exception(e1);
    if (e2) std::rethrow_exception(e2);
    g_crossed_share = static_cast<double>(m.crossed) / ping_pongs;
    co_return ns;
}

// Each bouncer on its own io_context, each context run by its own thread: every hop
// crosses threads. The channels belong to the first context; a receiver resumes on
// its own coroutine's executor.
double pingpong_xthread_once() {
    asio::io_context c1(1), c2(1);
    channel_t a(c1, 1), b(c1, 1);
    hop_meter m;
    std::exception_ptr err1, err2;
    auto t0 = Clock::now();
    asio::co_spawn(c1, bouncer(a, b, true, m), [&](std::exception_ptr e) { err1 = std::move(e); });
    asio::co_spawn(c2, bouncer(b, a, false, m), [&](std::exception_ptr e) { err2 = std::move(e); });
    std::thread other([&c2] { c2.run(); });
    c1.run();
    other.join();
    double ns = ns_since(t0) / ping_pongs;
    if (err1) std::rethrow_exception(err1);
    if (err2) std::rethrow_exception(err2);
    if (m.crossed < ping_pongs - 1) die("ping-pong across io_contexts: a hop stayed on one thread");
    return ns;
}

// ---------------------------------------------------------------- loaded hop
// threads_bench's loaded_hop: the same two bouncers (to 100,000), while 16
// coroutines per thread keep the io_context's queue long by yielding
// (co_await post) until the bouncers are done; ns per hop.
constexpr int loaded_hops = 100'000, yielders_per_thread = 16;
unsigned g_run_threads = 1;  // threads of the run in progress

awaitable<void> yielder(const std::atomic<bool>& stop) {
    auto ex = co_await asio::this_coro::executor;
    while (!stop.load(std::memory_order_relaxed)) co_await asio::post(ex, use_awaitable);
}

awaitable<double> loaded_hop_run() {
    auto ex = co_await asio::this_coro::executor;
    // Detached, so they start at once (a deferred or use_awaitable co_spawn starts
    // when awaited); run_once's io_context runs until they have stopped too.
    auto stop = std::make_shared<std::atomic<bool>>(false);
    for (unsigned i = 0; i < yielders_per_thread * g_run_threads; ++i)
        asio::co_spawn(ex, [stop]() { return yielder(*stop); }, asio::detached);
    channel_t a(ex, 1), b(ex, 1);
    hop_meter m;
    auto t0 = Clock::now();
    auto [order, e1, e2] = co_await asio::experimental::make_parallel_group(
                               asio::co_spawn(ex, bouncer(a, b, true, m, loaded_hops), asio::deferred),
                               asio::co_spawn(ex, bouncer(b, a, false, m, loaded_hops), asio::deferred))
                               .async_wait(asio::experimental::wait_for_all(), use_awaitable);
    double ns = ns_since(t0) / loaded_hops;
    stop->store(true, std::memory_order_relaxed);
    if (e1) std::rethrow_exception(e1);
    if (e2) std::rethrow_exception(e2);
    co_return ns;
}

// ---------------------------------------------------------------- spawn+join
constexpr int producers = 8, per_producer = 20'000;

awaitable<int> one() {
    co_return 1;
}

awaitable<std::int64_t> producer() {
    auto ex = co_await asio::this_coro::executor;
    std::int64_t s = 0;
    for (int i = 0; i < per_producer; ++i) s += co_await asio::co_spawn(ex, one(), use_awaitable);
    co_return s;
}

awaitable<double> spawn_join_many_run() {
    auto ex = co_await asio::this_coro::executor;
    using op_t = decltype(asio::co_spawn(ex, producer(), asio::deferred));
    std::vector<op_t> ops;
    ops.reserve(producers);
    auto t0 = Clock::now();
    for (int p = 0; p < producers; ++p)
        ops.push_back(asio::co_spawn(ex, producer(), asio::deferred));
    auto [order, excs, sums] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                   .async_wait(asio::experimental::wait_for_all(), use_awaitable);
    double ns = ns_since(t0) / (producers * per_producer);
    rethrow_any(excs);
    for (auto s : sums)
        if (s != per_producer) die("spawn_join_many: wrong sum");
    co_return ns;
}

void row(unsigned threads, const char* name, const char* unit,
         const std::function<awaitable<double>()>& make) {
    std::string label = std::string(name) + "_" + std::to_string(threads) + "w";
    result(label.c_str(), bench::best_of_3(label.c_str(), [&] { return run_once(threads, make); }),
           unit);
}

}  // namespace

int main(int argc, char** argv) {
    bench::program = "asio_threads_bench";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--quick") {
            g_skynet_leaves = 100'000;
        } else if (a == "--fib" && i + 1 < argc && std::atoi(argv[i + 1]) >= 2 &&
                   std::atoi(argv[i + 1]) <= 30) {
            g_fib_measured = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--quick] [--fib N (2..30, default 25)]\n", argv[0]);
            return 2;
        }
    }
    std::fprintf(stderr,
                 "asio_threads_bench: Boost %d.%d.%d, one io_context run by 1 and by 2 threads, "
                 "%u hardware threads\n",
                 BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100,
                 std::thread::hardware_concurrency());
    std::fprintf(stderr,
                 "asio_threads_bench: skynet_ms: skynet %" PRId64 " measured%s; fib30_ms: fib(%d) "
                 "measured, scaled to fib(30) by the node count\n",
                 g_skynet_leaves,
                 g_skynet_leaves == skynet_full ? "" : ", scaled to 1M by the node count",
                 g_fib_measured);
    try {
        for (unsigned threads : {1u, 2u}) {
            row(threads, "skynet_ms", "ms", skynet_run);
            row(threads, "fib30_ms", "ms", fib_run);
            row(threads, "chan_pingpong_ns", "ns", pingpong_run);
            std::fprintf(stderr,
                         "  chan_pingpong_ns_%uw: %.1f%% of the hops (last run) were received on "
                         "another thread than the one that sent them\n",
                         threads, 100 * g_crossed_share.load());
            row(threads, "spawn_join_many_ns", "ns", spawn_join_many_run);
            g_run_threads = threads;
            row(threads, "loaded_hop_ns", "ns", loaded_hop_run);
        }
        result("chan_pingpong_xthread_ns",
               bench::best_of_3("chan_pingpong_xthread_ns", pingpong_xthread_once), "ns");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "asio_threads_bench: exception: %s\n", e.what());
        return 1;
    }
    return 0;
}
