// The multi-threaded runtime (options.threads > 1): work distribution, and the
// stress tests of docs/threads.md — cross-worker wake-ups, an MPMC channel,
// wake-then-drop hand-offs, shutdown and cancellation with work in flight.
//
// Every test runs under a watchdog: a lost wake-up shows up as a test that stops
// making progress, and the watchdog turns that into a failure with a message
// (abort) instead of a ctest timeout. Counts are exact (every value received
// once, every hand-off accounted for), never timing.
//
// Run under ThreadSanitizer too (`make test` runs this file in build/tsan).
#include <uthreads/uthreads.hpp>

#include "../fd_count.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__)
constexpr bool under_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool under_tsan = true;
#else
constexpr bool under_tsan = false;
#endif
#else
constexpr bool under_tsan = false;
#endif

/// Aborts the process with a message if not dismissed within `limit`.
class watchdog {
public:
    watchdog(std::chrono::seconds limit, std::string what) : what_(std::move(what)) {
        t_ = std::thread([this, limit] {
            std::unique_lock lk(mu_);
            if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
                std::fprintf(stderr, "watchdog: '%s' made no progress in %lld s (lost wake-up?)\n",
                             what_.c_str(), static_cast<long long>(limit.count()));
                std::abort();
            }
        });
    }
    ~watchdog() {
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        t_.join();
    }

private:
    std::string what_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread t_;
};

ut::options workers(unsigned n, std::string backend = "epoll") {
    return ut::options{.backend = std::move(backend), .threads = n};
}

/// Thread ids seen, from any worker.
struct thread_set {
    std::mutex mu;
    std::set<std::thread::id> ids;
    void note() {
        std::lock_guard lk(mu);
        ids.insert(std::this_thread::get_id());
    }
    std::size_t size() {
        std::lock_guard lk(mu);
        return ids.size();
    }
};

/// Notes the calling thread in `seen`, then holds it (not the microthread:
/// the OS thread, so its worker cannot take more work) until microthreads have
/// run on two workers, or 5 s passed: the idle workers take the others.
void hold_until_spread(thread_set& seen) {
    seen.note();
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (seen.size() < 2 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(100us);
}

/// True if `backend` runs on a virtual clock with 4 workers: a 200 ms sleep
/// ends in under 100 ms of real time. The tests of exact virtual times skip
/// without it, naming the capability.
bool virtual_clock(const std::string& backend) {
    static std::map<std::string, bool> cache;
    if (auto it = cache.find(backend); it != cache.end()) return it->second;
    const auto w0 = std::chrono::steady_clock::now();
    const bool v = ut::run(
        []() -> ut::task<bool> {
            const auto v0 = ut::now();
            co_await ut::sleep_for(200ms);
            co_return ut::now() - v0 >= 200ms;
        }(),
        workers(4, backend));
    const bool is_virtual = v && std::chrono::steady_clock::now() - w0 < 100ms;
    cache.emplace(backend, is_virtual);
    return is_virtual;
}

constexpr const char* no_virtual_clock =
    "needs a virtual clock (a 200 ms sleep that takes no real time)";

ut::task<long> fib(int n) {
    if (n < 2) co_return n;
    auto a = ut::spawn(fib(n - 1));
    long b = co_await fib(n - 2);
    co_return co_await a + b;
}

class ThreadsTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        frames_ = ut::lowlevel::live_frames();
        ASSERT_EQ(ut::lowlevel::live_microthreads(), 0);
    }
    void TearDown() override {
        EXPECT_EQ(ut::lowlevel::live_microthreads(), 0) << "microthreads left alive";
        EXPECT_EQ(ut::lowlevel::live_frames(), frames_) << "frames leaked";
    }
    ut::options opts(unsigned n = 4) const { return workers(n, GetParam()); }

private:
    long long frames_ = 0;
};

TEST_P(ThreadsTest, ForkJoinComputesTheRightAnswer) {
    watchdog w(60s, "fib");
    EXPECT_EQ(ut::run(fib(18), opts()), 2584);
}

TEST_P(ThreadsTest, IdleWorkersStealNeverStartedMicrothreads) {
    watchdog w(60s, "steal");
    thread_set seen;
    ut::run(
        [&]() -> ut::task<> {
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 64; ++i)
                hs.push_back(ut::spawn([](thread_set& s) -> ut::task<> {
                    s.note();
                    // Blocks this worker's OS thread: the others must take the rest.
                    std::this_thread::sleep_for(2ms);
                    co_return;
                }(seen)));
            for (auto& h : hs) co_await h;
        }(),
        opts());
    EXPECT_GE(seen.size(), 2u) << "no microthread ran on another worker";
}

TEST_P(ThreadsTest, ExceptionsPropagateAcrossWorkers) {
    watchdog w(60s, "exceptions");
    EXPECT_THROW(ut::run(
                     []() -> ut::task<> {
                         auto h = ut::spawn([]() -> ut::task<int> {
                             std::this_thread::sleep_for(1ms);
                             throw std::runtime_error("boom");
                             co_return 1;
                         }());
                         co_await h;
                     }(),
                     opts()),
                 std::runtime_error);
}

TEST_P(ThreadsTest, SleepsAndTimeoutsWorkOnEveryWorker) {
    watchdog w(60s, "timers");
    int timeouts = 0;
    ut::run(
        [&]() -> ut::task<> {
            std::atomic<int> n{0};
            co_await ut::with_nursery([&](ut::nursery& ns) -> ut::task<> {
                for (int i = 0; i < 16; ++i)
                    ns.spawn([](std::atomic<int>& n) -> ut::task<> {
                        co_await ut::sleep_for(2ms);
                        try {
                            co_await ut::with_timeout(1ms, ut::sleep_for(1h));
                        } catch (const ut::timeout_error&) {
                            n.fetch_add(1);
                        }
                    }(n));
                co_return;
            });
            timeouts = n.load();
        }(),
        opts());
    EXPECT_EQ(timeouts, 16);
}

// One virtual clock for all workers: 100 sleeps from 10 ms to 10 s (about 150
// virtual seconds in all), spread over the workers and started in a scrambled
// order, each end exactly at its deadline and in deadline order, and the run
// takes little real time. With a clock per worker, a sleep on an otherwise idle
// worker would end at once, out of order.
TEST_P(ThreadsTest, VirtualSleepsAcrossWorkersEndInDeadlineOrder) {
    if (!virtual_clock(GetParam())) GTEST_SKIP() << no_virtual_clock;
    watchdog w(60s, "virtual sleeps");
    constexpr int n = 100;
    std::vector<std::chrono::microseconds> d(n);
    for (int k = 0; k < n; ++k)  // geometric, strictly increasing (ratio ~1.07)
        d[k] = std::chrono::microseconds(std::llround(10'000.0 * std::pow(1000.0, k / (n - 1.0))));
    ASSERT_EQ(d.front(), 10ms);
    ASSERT_EQ(d.back(), 10s);
    std::vector<ut::clock::duration> late(n), slept(n);
    std::vector<int> rank(n, -1);
    std::atomic<int> next_rank{0};
    ut::clock::duration total{};
    thread_set seen;
    const auto w0 = std::chrono::steady_clock::now();
    ut::run(
        [&]() -> ut::task<> {
            const auto t0 = ut::now();
            co_await ut::with_nursery([&](ut::nursery& ns) -> ut::task<> {
                for (int i = 0; i < n; ++i) {
                    const int k = (i * 37) % n;  // 37 is prime to 100: a permutation
                    ns.spawn([](std::chrono::microseconds d, ut::clock::time_point t0,
                                ut::clock::duration& late, ut::clock::duration& slept, int& rank,
                                std::atomic<int>& next_rank, thread_set& seen) -> ut::task<> {
                        hold_until_spread(seen);
                        const auto start = ut::now();
                        late = start - t0;  // 0: nothing moves the clock while spawns start
                        co_await ut::sleep_for(d);
                        slept = ut::now() - start;
                        rank = next_rank.fetch_add(1);
                    }(d[k], t0, late[k], slept[k], rank[k], next_rank, seen));
                }
                co_return;
            });
            total = ut::now() - t0;
        }(),
        opts());
    const auto real = std::chrono::steady_clock::now() - w0;
    for (int k = 0; k < n; ++k) {
        EXPECT_EQ(late[k], ut::clock::duration::zero()) << "sleep " << k << " started late";
        EXPECT_EQ(slept[k], d[k]) << "sleep " << k << " did not end exactly at its deadline";
        EXPECT_EQ(rank[k], k) << "sleep " << k << " (" << d[k].count() << " us) ended out of order";
    }
    EXPECT_EQ(total, d.back());
    EXPECT_GE(seen.size(), 2u) << "no sleep ran on another worker";
    EXPECT_LT(real, 2s) << "virtual sleeps took real time";
    std::printf("100 virtual sleeps (10 ms .. 10 s) on %zu workers: %lld ms real\n", seen.size(),
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(real).count()));
}

// now() never goes backwards on a worker, and a value read after a hand-off
// from another worker is at least the sender's: a token goes round a ring of
// microthreads on different workers, carrying the time its sender read, and
// every tenth holder sleeps first (on "sim", the shared clock jumps then).
TEST_P(ThreadsTest, NowIsMonotonicAndConsistentAcrossWorkers) {
    watchdog w(60s, "now() across workers");
    constexpr int ring = 4, hops = 400;
    struct token {
        ut::clock::time_point sent;
        std::thread::id from;
        int hop;
    };
    std::atomic<int> backwards{0}, before_sender{0}, crossed{0}, hops_done{0};
    thread_set seen;
    ut::run(
        [&]() -> ut::task<> {
            std::vector<std::unique_ptr<ut::channel<token>>> ch;
            ch.reserve(ring);
            for (int i = 0; i < ring; ++i) ch.push_back(std::make_unique<ut::channel<token>>(1));
            co_await ut::with_nursery([&](ut::nursery& ns) -> ut::task<> {
                for (int i = 0; i < ring; ++i)
                    ns.spawn([](int i, ut::channel<token>& in, ut::channel<token>& out,
                                std::atomic<int>& backwards, std::atomic<int>& before_sender,
                                std::atomic<int>& crossed, std::atomic<int>& hops_done,
                                thread_set& seen) -> ut::task<> {
                        // With the ring on two workers or more, some hops cross.
                        hold_until_spread(seen);
                        auto last = ut::now();
                        if (i == 0)
                            co_await out.send(token{ut::now(), std::this_thread::get_id(), 0});
                        for (;;) {
                            std::optional<token> t = co_await in.recv();
                            const auto r = ut::now();
                            if (r < last) backwards.fetch_add(1);
                            if (r < t->sent) before_sender.fetch_add(1);
                            if (t->from != std::this_thread::get_id()) crossed.fetch_add(1);
                            last = r;
                            hops_done.fetch_add(1);
                            if (t->hop + 1 >= hops) {
                                // Pass the end on so the rest of the ring stops too.
                                if (t->hop + 1 < hops + ring - 1)
                                    co_await out.send(
                                        token{r, std::this_thread::get_id(), t->hop + 1});
                                co_return;
                            }
                            if (t->hop % 10 == 0) {
                                co_await ut::sleep_for(1ms);
                                const auto after = ut::now();
                                if (after < last) backwards.fetch_add(1);
                                last = after;
                            }
                            co_await out.send(
                                token{ut::now(), std::this_thread::get_id(), t->hop + 1});
                        }
                    }(i, *ch[i], *ch[(i + 1) % ring], backwards, before_sender, crossed, hops_done,
                                                  seen));
                co_return;
            });
        }(),
        opts());
    EXPECT_EQ(hops_done.load(), hops + ring - 1);
    EXPECT_EQ(backwards.load(), 0) << "now() went backwards on a worker";
    EXPECT_EQ(before_sender.load(), 0) << "now() after a hand-off was earlier than the sender's";
    EXPECT_GT(crossed.load(), 0) << "no hand-off crossed workers";
}

// with_timeout where the awaited value comes from another worker: pair p's
// sender sleeps a, its receiver waits with a deadline b; the receiver gets the
// value at exactly a if a < b, and times out at exactly b otherwise. With a
// clock per worker, the receiver's worker would jump to b while the sender's
// clock still stood at 0.
TEST_P(ThreadsTest, WithTimeoutAcrossWorkersOnTheSharedClock) {
    if (!virtual_clock(GetParam())) GTEST_SKIP() << no_virtual_clock;
    watchdog w(60s, "with_timeout across workers");
    constexpr int pairs = 16;
    struct outcome {
        bool received = false, timed_out = false;
        ut::clock::duration at{};
        std::thread::id receiver, sender;
    };
    // The placement is the workers' choice: run again (up to 5 times, each
    // checked in full) until some pair had its two sides on two workers.
    int crossed = 0;
    for (int attempt = 0; attempt < 5 && crossed == 0; ++attempt) {
        std::vector<outcome> out(pairs);
        thread_set seen;
        const auto w0 = std::chrono::steady_clock::now();
        ut::run(
            [&]() -> ut::task<> {
                const auto t0 = ut::now();
                std::vector<std::unique_ptr<ut::channel<int>>> ch;
                ch.reserve(pairs);
                for (int p = 0; p < pairs; ++p) ch.push_back(std::make_unique<ut::channel<int>>(1));
                co_await ut::with_nursery([&](ut::nursery& ns) -> ut::task<> {
                    for (int p = 0; p < pairs; ++p) {
                        const auto base = (p + 1) * 10ms;
                        const auto send_after = p % 2 == 0 ? base : 2 * base;
                        const auto deadline = p % 2 == 0 ? 2 * base : base;
                        ns.spawn([](ut::channel<int>& ch, ut::clock::duration after, outcome& o,
                                    thread_set& seen) -> ut::task<> {
                            o.sender = std::this_thread::get_id();
                            hold_until_spread(seen);
                            co_await ut::sleep_for(after);
                            co_await ch.send(1);
                        }(*ch[p], send_after, out[p], seen));
                        ns.spawn([](ut::channel<int>& ch, ut::clock::duration deadline,
                                    ut::clock::time_point t0, outcome& o,
                                    thread_set& seen) -> ut::task<> {
                            o.receiver = std::this_thread::get_id();
                            hold_until_spread(seen);
                            try {
                                o.received =
                                    (co_await ut::with_timeout(deadline, ch.recv())).has_value();
                            } catch (const ut::timeout_error&) {
                                o.timed_out = true;
                            }
                            o.at = ut::now() - t0;
                        }(*ch[p], deadline, t0, out[p], seen));
                    }
                    co_return;
                });
            }(),
            opts());
        const auto real = std::chrono::steady_clock::now() - w0;
        for (int p = 0; p < pairs; ++p) {
            const auto base = (p + 1) * 10ms;
            const outcome& o = out[p];
            if (p % 2 == 0) {
                EXPECT_TRUE(o.received) << "pair " << p << ": the value sent at " << base.count()
                                        << " ms did not arrive before the deadline";
                EXPECT_EQ(o.at, base) << "pair " << p;
            } else {
                EXPECT_TRUE(o.timed_out)
                    << "pair " << p << ": no timeout at " << base.count() << " ms";
                EXPECT_EQ(o.at, base) << "pair " << p;
            }
            if (o.receiver != o.sender) ++crossed;
        }
        EXPECT_LT(real, 2s) << "virtual timeouts took real time";
    }
    EXPECT_GT(crossed, 0) << "no pair ran on two workers in 5 runs";
}

// A timer on one worker while the others block in channel receives (one with a
// far deadline): the clock jumps only to the timer's deadlines, wakes nobody
// else, and the run ends once the values are sent.
TEST_P(ThreadsTest, ATimerOnOneWorkerWhileOthersBlockInRecv) {
    watchdog w(60s, "timer while others block");
    const bool exact = virtual_clock(GetParam());
    const auto step = exact ? 100ms : 2ms;
    constexpr int receivers = 3, steps = 10;
    std::vector<ut::clock::duration> ticks;  // timer microthread only
    ut::clock::duration sent_at{};
    std::vector<ut::clock::duration> got_at(receivers + 1);
    std::vector<int> got(receivers + 1, -1);
    std::atomic<int> started{0};
    thread_set seen;
    const auto w0 = std::chrono::steady_clock::now();
    ut::run(
        [&]() -> ut::task<> {
            const auto t0 = ut::now();
            ut::channel<int> ch(0);
            co_await ut::with_nursery([&](ut::nursery& ns) -> ut::task<> {
                for (int r = 0; r <= receivers; ++r)
                    ns.spawn([](int r, ut::channel<int>& ch, ut::clock::time_point t0, int& got,
                                ut::clock::duration& at, std::atomic<int>& started,
                                thread_set& seen) -> ut::task<> {
                        hold_until_spread(seen);
                        started.fetch_add(1);
                        std::optional<int> v;
                        if (r == receivers)
                            v = co_await ut::with_timeout(1h, ch.recv());
                        else
                            v = co_await ch.recv();
                        got = v.value_or(-2);
                        at = ut::now() - t0;
                    }(r, ch, t0, got[r], got_at[r], started, seen));
                ns.spawn([](ut::channel<int>& ch, ut::clock::duration step,
                            ut::clock::time_point t0, std::vector<ut::clock::duration>& ticks,
                            ut::clock::duration& sent_at, thread_set& seen) -> ut::task<> {
                    seen.note();
                    for (int i = 0; i < steps; ++i) {
                        co_await ut::sleep_for(step);
                        ticks.push_back(ut::now() - t0);
                    }
                    sent_at = ut::now() - t0;
                    for (int r = 0; r <= receivers; ++r) co_await ch.send(100 + r);
                }(ch, step, t0, ticks, sent_at, seen));
                co_return;
            });
        }(),
        opts());
    const auto real = std::chrono::steady_clock::now() - w0;
    EXPECT_EQ(started.load(), receivers + 1);
    ASSERT_EQ(ticks.size(), static_cast<std::size_t>(steps));
    std::multiset<int> values(got.begin(), got.end());
    EXPECT_EQ(values, (std::multiset<int>{100, 101, 102, 103})) << "a receiver got no value";
    for (int i = 0; i < steps; ++i) {
        if (exact)
            EXPECT_EQ(ticks[i], (i + 1) * step) << "tick " << i;
        else
            EXPECT_GE(ticks[i], (i + 1) * step) << "tick " << i;
    }
    for (int r = 0; r <= receivers; ++r) {
        if (exact)
            EXPECT_EQ(got_at[r], sent_at)
                << "receiver " << r << " woke at another time than the send";
        else
            EXPECT_GE(got_at[r], sent_at) << "receiver " << r;
    }
    EXPECT_GE(seen.size(), 2u) << "everything ran on one worker";
    if (exact) EXPECT_LT(real, 2s) << "virtual sleeps took real time";
}

// The same with a descriptor registered on an idle worker: a reader parked on a
// pipe while a timer on another worker ticks and then writes to it. On "sim"
// each jump then first waits for the whole group to stay idle for the real-time
// I/O threshold (so data in flight is not overtaken), and still happens; the
// reader gets the data at the virtual instant it was written.
TEST_P(ThreadsTest, ATimerOnOneWorkerWhileAnotherWaitsOnAPipe) {
    watchdog w(60s, "timer while another waits on a pipe");
    const bool exact = virtual_clock(GetParam());
    const auto step = exact ? 100ms : 2ms;
    constexpr int steps = 5;
    std::vector<ut::clock::duration> ticks;
    ut::clock::duration sent_at{}, got_at{};
    std::string got;
    thread_set seen;
    const auto w0 = std::chrono::steady_clock::now();
    ut::run(
        [&]() -> ut::task<> {
            const auto t0 = ut::now();
            int fds[2];
            if (::pipe2(fds, O_CLOEXEC) != 0)
                throw std::system_error(errno, std::generic_category(), "pipe2");
            ut::pipe_stream r(fds[0], "test pipe (read end)"), wr(fds[1], "test pipe (write end)");
            co_await ut::with_nursery([&](ut::nursery& ns) -> ut::task<> {
                ns.spawn([](ut::pipe_stream r, ut::clock::time_point t0, std::string& got,
                            ut::clock::duration& at, thread_set& seen) -> ut::task<> {
                    hold_until_spread(seen);
                    got = co_await r.read_to_end();
                    at = ut::now() - t0;
                }(std::move(r), t0, got, got_at, seen));
                ns.spawn([](ut::pipe_stream wr, ut::clock::duration step, ut::clock::time_point t0,
                            std::vector<ut::clock::duration>& ticks, ut::clock::duration& sent_at,
                            thread_set& seen) -> ut::task<> {
                    hold_until_spread(seen);
                    for (int i = 0; i < steps; ++i) {
                        co_await ut::sleep_for(step);
                        ticks.push_back(ut::now() - t0);
                    }
                    sent_at = ut::now() - t0;
                    co_await wr.write_all("tick");
                    wr.close();
                }(std::move(wr), step, t0, ticks, sent_at, seen));
                co_return;
            });
        }(),
        opts());
    const auto real = std::chrono::steady_clock::now() - w0;
    EXPECT_EQ(got, "tick");
    ASSERT_EQ(ticks.size(), static_cast<std::size_t>(steps));
    for (int i = 0; i < steps; ++i) {
        if (exact)
            EXPECT_EQ(ticks[i], (i + 1) * step) << "tick " << i;
        else
            EXPECT_GE(ticks[i], (i + 1) * step) << "tick " << i;
    }
    if (exact)
        EXPECT_EQ(got_at, sent_at);
    else
        EXPECT_GE(got_at, sent_at);
    EXPECT_GE(seen.size(), 2u) << "everything ran on one worker";
    if (exact) EXPECT_LT(real, 2s) << "virtual sleeps took real time";
}

// 10^6 wake-ups through semaphores between microthreads that (mostly) run on
// different workers; each pair ping-pongs.
TEST_P(ThreadsTest, AMillionCrossWorkerWakeupsLoseNone) {
    const long total = under_tsan ? 200'000 : 1'000'000;
    watchdog w(under_tsan ? 600s : 240s, "cross-worker wake-ups");
    constexpr int pairs = 8;
    const long rounds = total / (2 * pairs);
    std::atomic<long> wakeups{0}, cross{0};
    ut::run(
        [&]() -> ut::task<> {
            std::vector<std::unique_ptr<ut::semaphore>> sems;
            for (int i = 0; i < 2 * pairs; ++i) sems.push_back(std::make_unique<ut::semaphore>(0));
            // The id of the thread each side last ran on, to count hand-offs that
            // crossed workers.
            std::vector<std::atomic<std::thread::id>> where(2 * pairs);
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int p = 0; p < pairs; ++p) {
                    for (int side = 0; side < 2; ++side) {
                        n.spawn([](ut::semaphore& mine, ut::semaphore& other,
                                   std::atomic<std::thread::id>& me,
                                   std::atomic<std::thread::id>& peer, bool first, long rounds,
                                   std::atomic<long>& wakeups,
                                   std::atomic<long>& cross) -> ut::task<> {
                            // Hold this worker's OS thread for a moment so that idle
                            // workers steal the other sides before they start.
                            std::this_thread::sleep_for(2ms);
                            for (long r = 0; r < rounds; ++r) {
                                if (!(first && r == 0)) {
                                    co_await mine.acquire();
                                    wakeups.fetch_add(1, std::memory_order_relaxed);
                                    if (peer.load(std::memory_order_relaxed) !=
                                        std::this_thread::get_id())
                                        cross.fetch_add(1, std::memory_order_relaxed);
                                }
                                me.store(std::this_thread::get_id(), std::memory_order_relaxed);
                                other.release();
                            }
                            if (first) {
                                co_await mine.acquire();  // the other side's last release
                                wakeups.fetch_add(1, std::memory_order_relaxed);
                            }
                        }(*sems[2 * p + side], *sems[2 * p + 1 - side], where[2 * p + side],
                                                   where[2 * p + 1 - side], side == 0, rounds, wakeups,
                                                   cross));
                    }
                }
                co_return;
            });
        }(),
        opts());
    EXPECT_EQ(wakeups.load(), 2 * pairs * rounds);
    std::printf("cross-worker wake-ups: %ld of %ld\n", cross.load(), wakeups.load());
    EXPECT_GT(cross.load(), 0);
}

// 4 producers and 4 consumers move 10^6 distinct values through one channel;
// every value is received exactly once.
TEST_P(ThreadsTest, MpmcChannelMovesAMillionValuesExactlyOnce) {
    const long total = under_tsan ? 200'000 : 1'000'000;
    watchdog w(under_tsan ? 600s : 240s, "MPMC channel");
    constexpr int producers = 4, consumers = 4;
    std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(total));
    std::atomic<long> received{0};
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<long> ch(64);
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int c = 0; c < consumers; ++c)
                    n.spawn([](ut::channel<long>& ch, std::vector<std::atomic<std::uint8_t>>& seen,
                               std::atomic<long>& received) -> ut::task<> {
                        std::this_thread::sleep_for(2ms);  // let idle workers steal the rest
                        while (auto v = co_await ch.recv()) {
                            seen[static_cast<std::size_t>(*v)].fetch_add(1, std::memory_order_relaxed);
                            received.fetch_add(1, std::memory_order_relaxed);
                        }
                    }(ch, seen, received));
                co_await ut::with_nursery([&](ut::nursery& pn) -> ut::task<> {
                    for (int p = 0; p < producers; ++p)
                        pn.spawn([](ut::channel<long>& ch, long from, long to) -> ut::task<> {
                            std::this_thread::sleep_for(2ms);
                            for (long v = from; v < to; ++v) co_await ch.send(v);
                        }(ch, total * p / producers, total * (p + 1) / producers));
                    co_return;
                });
                ch.close();
            });
        }(),
        opts());
    EXPECT_EQ(received.load(), total);
    long bad = 0;
    for (auto& s : seen)
        if (s.load() != 1) ++bad;
    EXPECT_EQ(bad, 0) << "values lost or duplicated";
}

// Wake-then-drop: a waiter is handed the mutex / a unit / a value and cancelled
// at once, from another worker. Either the hand-off reached it (then it gives the
// resource back as it unwinds) or the cancellation did (then it took nothing);
// never both, never neither.
TEST_P(ThreadsTest, WakeThenDropHandOffsLoseNothing) {
    const int rounds = under_tsan ? 20'000 : 100'000;
    watchdog w(under_tsan ? 600s : 240s, "wake-then-drop");
    long mutex_won = 0, sem_won = 0, chan_won = 0;
    bool mutex_ok = true, sem_ok = true, chan_ok = true;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex mx;
            ut::semaphore sem(0);
            ut::channel<int> ch(0);
            for (int r = 0; r < rounds; ++r) {
                // mutex
                {
                    auto g = co_await mx.lock();
                    bool got = false;
                    auto h = ut::spawn([](ut::mutex& mx, bool& got) -> ut::task<> {
                        auto g2 = co_await mx.lock();
                        got = true;
                        co_await ut::yield_now();  // cancelled here if it won
                    }(mx, got));
                    co_await ut::yield_now();
                    g.unlock();  // hand-off to h (if it is parked by now)
                    h.cancel();
                    try {
                        co_await h;
                    } catch (const ut::cancelled&) {
                    }
                    if (got) ++mutex_won;
                    if (mx.is_locked()) mutex_ok = false;
                }
                // semaphore
                {
                    bool got = false;
                    auto h = ut::spawn([](ut::semaphore& s, bool& got) -> ut::task<> {
                        co_await s.acquire();
                        got = true;
                    }(sem, got));
                    co_await ut::yield_now();
                    sem.release();
                    h.cancel();
                    try {
                        co_await h;
                    } catch (const ut::cancelled&) {
                    }
                    if (got) {
                        ++sem_won;
                    } else if (!sem.try_acquire()) {
                        sem_ok = false;  // the unit vanished
                    }
                    if (sem.available() != 0) sem_ok = false;
                }
                // channel (rendezvous: send completes only when a receiver took it)
                {
                    std::optional<int> got;
                    auto h = ut::spawn([](ut::channel<int>& ch, std::optional<int>& got) -> ut::task<> {
                        got = co_await ch.recv();
                    }(ch, got));
                    co_await ut::yield_now();
                    bool sent = ch.try_send(r);
                    h.cancel();
                    try {
                        co_await h;
                    } catch (const ut::cancelled&) {
                    }
                    if (sent) {
                        if (got && *got == r)
                            ++chan_won;
                        else
                            chan_ok = false;  // taken by nobody
                    } else if (got) {
                        chan_ok = false;  // received something never sent
                    }
                }
            }
        }(),
        opts());
    EXPECT_TRUE(mutex_ok) << "a mutex hand-off was lost";
    EXPECT_TRUE(sem_ok) << "a semaphore unit was lost";
    EXPECT_TRUE(chan_ok) << "a channel value was lost";
    std::printf("hand-offs won by the woken side: mutex %ld, semaphore %ld, channel %ld of %d\n",
                mutex_won, sem_won, chan_won, rounds);
}

// main returns while microthreads on every worker sleep, wait on primitives,
// spin through yields, or are still unstarted: run() cancels and drains them all
// and leaves nothing alive (TearDown checks).
TEST_P(ThreadsTest, ShutdownWithWorkInFlightOnEveryWorker) {
    watchdog w(120s, "shutdown");
    for (int iter = 0; iter < 20; ++iter) {
        thread_set seen;
        std::atomic<int> unwound{0};
        ut::run(
            [&]() -> ut::task<> {
                auto ev = std::make_shared<ut::event>();
                auto ch = std::make_shared<ut::channel<int>>(0);
                auto mx = std::make_shared<ut::mutex>();
                auto held = co_await mx->lock();
                for (int i = 0; i < 200; ++i) {
                    ut::spawn([](int i, std::shared_ptr<ut::event> ev,
                                 std::shared_ptr<ut::channel<int>> ch, std::shared_ptr<ut::mutex> mx,
                                 thread_set& seen, std::atomic<int>& unwound) -> ut::task<> {
                        struct on_unwind {
                            std::atomic<int>& n;
                            ~on_unwind() { n.fetch_add(1); }
                        } u{unwound};
                        seen.note();
                        switch (i % 5) {
                        case 0: co_await ut::sleep_for(1h); break;
                        case 1: co_await ev->wait(); break;
                        case 2: (void)co_await ch->recv(); break;
                        case 3: (void)co_await mx->lock(); break;
                        default:
                            for (;;) co_await ut::yield_now();
                        }
                    }(i, ev, ch, mx, seen, unwound))
                        .detach();
                }
                // Let them start on whatever workers take them. (Not a sleep: on
                // "sim" virtual time stands still while anything is runnable, and
                // the yield loops below always are.)
                std::this_thread::sleep_for(1ms);
                for (int k = 0; k < 200; ++k) co_await ut::yield_now();
            }(),
            opts());
        EXPECT_EQ(unwound.load(), 200);
    }
}

// Cancellation delivered to microthreads running on other workers while they
// work: a nursery whose children spread over the workers, cancelled by one of
// them (when_any), and a failure in one child cancelling the rest.
TEST_P(ThreadsTest, CancellationReachesEveryWorker) {
    watchdog w(120s, "cancellation");
    for (int iter = 0; iter < 50; ++iter) {
        std::atomic<int> cancelled{0};
        bool failed = false;
        ut::run(
            [&]() -> ut::task<> {
                auto v = co_await ut::when_any(
                    // Yields, not a sleep: on "sim" time stands still while the
                    // yield loop below is runnable.
                    []() -> ut::task<int> {
                        for (int k = 0; k < 50; ++k) co_await ut::yield_now();
                        co_return 1;
                    }(),
                    [](std::atomic<int>& c) -> ut::task<int> {
                        try {
                            for (;;) co_await ut::yield_now();
                        } catch (const ut::cancelled&) {
                            c.fetch_add(1);
                            throw;
                        }
                    }(cancelled),
                    // Waits on an event nobody sets.
                    [](std::atomic<int>& c) -> ut::task<int> {
                        ut::event never;
                        try {
                            co_await never.wait();
                        } catch (const ut::cancelled&) {
                            c.fetch_add(1);
                            throw;
                        }
                        co_return 3;
                    }(cancelled));
                EXPECT_EQ(v.index(), 0u);
                try {
                    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                        for (int i = 0; i < 8; ++i)
                            n.spawn([](std::atomic<int>& c) -> ut::task<> {
                                try {
                                    for (;;) co_await ut::yield_now();
                                } catch (const ut::cancelled&) {
                                    c.fetch_add(1);
                                    throw;
                                }
                            }(cancelled));
                        n.spawn([]() -> ut::task<> {
                            for (int k = 0; k < 50; ++k) co_await ut::yield_now();
                            throw std::runtime_error("child failed");
                        }());
                        co_return;
                    });
                } catch (const std::runtime_error&) {
                    failed = true;
                }
            }(),
            opts());
        EXPECT_TRUE(failed);
        EXPECT_EQ(cancelled.load(), 10);
    }
}

struct cv_state {
    ut::mutex mx;
    ut::condition_variable cv;
    long queued = 0, done_producing = 0, consumed = 0;
};

ut::task<> cv_consumer(cv_state& st) {
    for (;;) {
        auto g = co_await st.mx.lock();
        co_await st.cv.wait(g, [&] { return st.queued > 0 || st.done_producing == 2; });
        if (st.queued == 0) co_return;
        --st.queued;
        ++st.consumed;
    }
}

ut::task<> cv_producer(cv_state& st, int items) {
    for (int i = 0; i < items; ++i) {
        auto g = co_await st.mx.lock();
        ++st.queued;
        st.cv.notify_one();
    }
    auto g = co_await st.mx.lock();
    ++st.done_producing;
    st.cv.notify_all();
}

TEST_P(ThreadsTest, ConditionVariableAcrossWorkersLosesNoNotification) {
    watchdog w(120s, "condition_variable");
    constexpr int items = 20'000;
    cv_state st;
    ut::run(
        [](cv_state& st) -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int c = 0; c < 3; ++c) n.spawn(cv_consumer(st));
                for (int p = 0; p < 2; ++p) n.spawn(cv_producer(st, items / 2));
                co_return;
            });
        }(st),
        opts());
    EXPECT_EQ(st.consumed, items);
}

TEST_P(ThreadsTest, PromiseCompletedFromAForeignThread) {
    watchdog w(60s, "promise");
    int sum = 0;
    ut::run(
        [&]() -> ut::task<> {
            std::vector<ut::join_handle<int>> hs;
            std::vector<std::thread> ts;
            for (int i = 0; i < 8; ++i) {
                ut::promise<int> p;
                auto f = p.get_future();
                hs.push_back(ut::spawn([](ut::future<int> f) -> ut::task<int> { co_return co_await f; }(
                    std::move(f))));
                ts.emplace_back([p = std::move(p), i]() mutable {
                    std::this_thread::sleep_for(1ms);
                    p.set_value(i);
                });
            }
            for (auto& h : hs) sum += co_await h;
            for (auto& t : ts) t.join();
        }(),
        opts());
    EXPECT_EQ(sum, 28);
}

TEST_P(ThreadsTest, ToThreadFromEveryWorker) {
    watchdog w(60s, "to_thread");
    std::atomic<int> sum{0};
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int i = 0; i < 32; ++i)
                    n.spawn([](std::atomic<int>& sum, int i) -> ut::task<> {
                        int v = co_await ut::to_thread([i] { return i; });
                        sum.fetch_add(v);
                    }(sum, i));
                co_return;
            });
        }(),
        opts());
    EXPECT_EQ(sum.load(), 31 * 32 / 2);
}

// ---- Descriptors across workers (docs/threads.md) ---------------------------
//
// A connected socket pair wrapped as `Stream`: tcp_stream (recv/send, so
// completion operations on io_uring) or pipe_stream (read/write, readiness waits
// on every backend). Both ends non-blocking and close-on-exec.
template <class Stream>
std::pair<Stream, Stream> stream_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::system_error(errno, std::system_category(), "socketpair");
    // Small buffers, so that writes of a few hundred kilobytes park.
    for (int fd : fds) {
        int size = 16 * 1024;
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    return {Stream(fds[0], "pair end 0"), Stream(fds[1], "pair end 1")};
}

/// Open descriptors once a run with `o` has been made: a backend library may
/// keep process-wide descriptors from its first loop on (libuv's signal pipe).
long fds_after_first_run(const ut::options& o) {
    ut::run([]() -> ut::task<> { co_return; }(), o);
    return open_fd_count();
}

TEST_P(ThreadsTest, OneListenerAcceptedFromMicrothreadsOnEveryWorker) {
    watchdog w(120s, "listener across workers");
    const long fds = fds_after_first_run(opts());
    constexpr int conns = 64;
    thread_set acceptors;
    std::atomic<int> echoed{0};
    ut::run(
        [&]() -> ut::task<> {
            // Bound by main; accepted, one at a time, from microthreads that idle
            // workers stole before they started: the registration follows them.
            auto l = ut::tcp_listener::bind("127.0.0.1", 0);
            ut::mutex turn;
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int i = 0; i < conns; ++i) {
                    n.spawn(
                        [](ut::tcp_listener& l, ut::mutex& turn, thread_set& seen) -> ut::task<> {
                            // Holds this worker's thread a moment: the others steal the rest.
                            std::this_thread::sleep_for(1ms);
                            ut::tcp_stream s;
                            {
                                auto g = co_await turn.lock();
                                s = co_await l.accept();
                            }
                            seen.note();
                            char c = 0;
                            co_await s.read_exact(std::span<char>(&c, 1));
                            co_await s.write_all(std::string_view(&c, 1));
                        }(l, turn, acceptors));
                    n.spawn([](std::uint16_t port, int i, std::atomic<int>& echoed) -> ut::task<> {
                        auto s = co_await ut::tcp_stream::connect("127.0.0.1", port);
                        const char c = static_cast<char>('a' + i % 26);
                        co_await s.write_all(std::string_view(&c, 1));
                        char r = 0;
                        co_await s.read_exact(std::span<char>(&r, 1));
                        if (r == c) echoed.fetch_add(1);
                    }(l.port(), i, echoed));
                }
                co_return;
            });
        }(),
        opts());
    EXPECT_EQ(echoed.load(), conns);
    EXPECT_GE(acceptors.size(), 2u) << "every accept ran on one worker";
    EXPECT_EQ(open_fd_count(), fds) << "descriptors leaked";
}

// One end of a pair travels through a channel between relay microthreads
// (spread over the workers); each holder exchanges one byte with an echo
// microthread on the other end, which stays where it is.
template <class Stream>
void hand_a_stream_around(const ut::options& o, int hops) {
    const long fds = fds_after_first_run(o);
    std::atomic<int> done{0}, wrong{0}, crossed{0};
    std::atomic<std::thread::id> last{};
    thread_set holders;
    ut::run(
        [&]() -> ut::task<> {
            auto pair = stream_pair<Stream>();
            Stream& mine = pair.first;
            Stream& theirs = pair.second;
            ut::channel<Stream> ch(1);
            co_await ch.send(std::move(mine));
            thread_set relay_threads;
            auto relay = [&]() -> ut::task<> {
                relay_threads.note();
                // Holds this worker's thread a moment: idle workers steal the
                // other relays before they start.
                std::this_thread::sleep_for(1ms);
                while (std::optional<Stream> s = co_await ch.recv()) {
                    holders.note();
                    std::thread::id me = std::this_thread::get_id();
                    if (last.exchange(me) != me) crossed.fetch_add(1);
                    int hop = done.load();
                    const char c = static_cast<char>(hop);
                    co_await s->write_all(std::string_view(&c, 1));
                    char back = 0;
                    co_await s->read_exact(std::span<char>(&back, 1));
                    if (back != c) wrong.fetch_add(1);
                    if (done.fetch_add(1) + 1 == hops) {
                        ch.close();
                        s->close();  // the echo sees end of stream
                    } else {
                        co_await ch.send(std::move(*s));
                    }
                }
            };
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn([](Stream& s) -> ut::task<> {
                    char c = 0;
                    while (co_await s.read_some(std::span<char>(&c, 1)) == 1)
                        co_await s.write_all(std::string_view(&c, 1));
                }(theirs));
                // At least four relays, and more until two of them started on
                // different workers (a loaded machine may be slow to steal).
                for (int r = 0; r < 4 || (relay_threads.size() < 2 && r < 200); ++r) {
                    n.spawn(relay());
                    if (r >= 3) co_await ut::sleep_for(1ms);
                }
                co_return;
            });
        }(),
        o);
    EXPECT_EQ(done.load(), hops);
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_GE(holders.size(), 2u) << "the stream never left one worker";
    std::printf("  %d of %d hand-overs changed workers\n", crossed.load(), hops);
    EXPECT_GT(crossed.load(), 0);
    EXPECT_EQ(open_fd_count(), fds) << "descriptors leaked";
}

TEST_P(ThreadsTest, AStreamPassedBetweenWorkersThroughAChannel) {
    watchdog w(180s, "stream through a channel");
    hand_a_stream_around<ut::tcp_stream>(opts(), 1000);
    hand_a_stream_around<ut::pipe_stream>(opts(), 1000);
}

// A read parked on one worker; the stream closed by a microthread that is
// (mostly) on another: the read fails with EBADF, nothing leaks.
template <class Stream>
void close_while_parked(const ut::options& o, int rounds) {
    const long fds = fds_after_first_run(o);
    std::atomic<int> ebadf{0}, crossed{0};
    ut::run(
        [&]() -> ut::task<> {
            for (int r = 0; r < rounds; ++r) {
                auto pair = stream_pair<Stream>();
                Stream& a = pair.first;
                // pair.second stays open: the read has nothing to read.
                std::atomic<std::thread::id> reader{};
                auto read = [&]() -> ut::task<> {
                    std::this_thread::sleep_for(1ms);
                    reader = std::this_thread::get_id();
                    char buf[8];
                    try {
                        co_await a.read_some(std::span<char>(buf));
                    } catch (const std::system_error& e) {
                        if (e.code().value() == EBADF) ebadf.fetch_add(1);
                    }
                };
                auto close_it = [&]() -> ut::task<> {
                    std::this_thread::sleep_for(1ms);  // an idle worker may steal the reader
                    co_await ut::sleep_for(2ms);
                    if (reader.load() != std::this_thread::get_id()) crossed.fetch_add(1);
                    a.close();
                };
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(read());
                    n.spawn(close_it());
                    co_return;
                });
            }
        }(),
        o);
    EXPECT_EQ(ebadf.load(), rounds);
    std::printf("  %d of %d closes came from another worker\n", crossed.load(), rounds);
    EXPECT_GT(crossed.load(), 0);
    EXPECT_EQ(open_fd_count(), fds) << "descriptors leaked";
}

TEST_P(ThreadsTest, CloseFromAnotherWorkerWakesAParkedReadWithEbadf) {
    watchdog w(120s, "close from another worker");
    close_while_parked<ut::tcp_stream>(opts(), 40);
    close_while_parked<ut::pipe_stream>(opts(), 40);
}

// Reads that time out (nothing is sent) from microthreads on every worker,
// taking turns on one stream, while another microthread keeps a write parked on
// it: cancellation lands before, during and after the hand-over of the
// registration, and on reads parked for another worker. Afterwards the stream
// still works in both directions.
template <class Stream>
void cancel_during_hand_over(const ut::options& o, int readers, int tries) {
    const long fds = fds_after_first_run(o);
    std::atomic<int> timeouts{0};
    std::string got;
    ut::run(
        [&]() -> ut::task<> {
            auto pair = stream_pair<Stream>();
            Stream& a = pair.first;
            Stream& b = pair.second;
            const std::string big(256 * 1024, 'w');
            ut::mutex turn;
            auto timed_reads = [&](int i) -> ut::task<> {
                std::this_thread::sleep_for(1ms);
                for (int k = 0; k < tries; ++k) {
                    auto g = co_await turn.lock();
                    char c = 0;
                    try {
                        co_await ut::with_timeout(
                            std::chrono::microseconds((i * 37 + k * 11) % 300),
                            a.read_some(std::span<char>(&c, 1)));
                    } catch (const ut::timeout_error&) {
                        timeouts.fetch_add(1);
                    }
                }
            };
            auto final_read = [&]() -> ut::task<> {
                char c = 0;
                co_await a.read_exact(std::span<char>(&c, 1));
                got.assign(1, c);
            };
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                // Parks in the write direction until b is drained below.
                auto writer = ut::spawn(a.write_all(big));
                co_await ut::with_nursery([&](ut::nursery& rs) -> ut::task<> {
                    for (int i = 0; i < readers; ++i) rs.spawn(timed_reads(i));
                    co_return;
                });
                std::string sink(big.size(), '\0');
                co_await b.read_exact(std::span<char>(sink));
                co_await writer;
                EXPECT_EQ(sink, big);
                co_await b.write_all(std::string_view("z"));
                n.spawn(final_read());
                co_return;
            });
        }(),
        o);
    EXPECT_EQ(timeouts.load(), readers * tries) << "a read returned although nothing was sent";
    EXPECT_EQ(got, "z");
    EXPECT_EQ(open_fd_count(), fds) << "descriptors leaked";
}

TEST_P(ThreadsTest, CancelDuringTheHandOverOfADescriptor) {
    watchdog w(180s, "cancel during hand-over");
    cancel_during_hand_over<ut::tcp_stream>(opts(), 8, 25);
    cancel_during_hand_over<ut::pipe_stream>(opts(), 8, 25);
}

TEST_P(ThreadsTest, ProcessSpawnedOnOneWorkerWaitedOnAnother) {
    watchdog w(120s, "process across workers");
    const long fds = fds_after_first_run(opts());
    constexpr int rounds = 12;
    std::atomic<int> codes{0}, crossed{0};
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int i = 0; i < rounds; ++i) {
                    auto p = ut::process::spawn({"/bin/sh", "-c", "sleep 0.05; exit 3"});
                    // Registered here by a wait that gives up...
                    try {
                        co_await ut::with_timeout(1ms, p.wait());
                    } catch (const ut::timeout_error&) {
                    }
                    // ...and waited for by a microthread that may start anywhere.
                    n.spawn([](ut::process p, std::thread::id spawner, std::atomic<int>& codes,
                               std::atomic<int>& crossed) -> ut::task<> {
                        if (std::this_thread::get_id() != spawner) crossed.fetch_add(1);
                        ut::exit_status st = co_await p.wait();
                        if (st.exit_code == 3) codes.fetch_add(1);
                    }(std::move(p), std::this_thread::get_id(), codes, crossed));
                    std::this_thread::sleep_for(1ms);  // let idle workers steal it
                }
                co_return;
            });
        }(),
        opts());
    EXPECT_EQ(codes.load(), rounds);
    std::printf("  %d of %d waits ran on another worker\n", crossed.load(), rounds);
    EXPECT_GT(crossed.load(), 0);
    EXPECT_EQ(open_fd_count(), fds) << "descriptors leaked";
}

// One microthread writes a stream while another reads it (an echo on the other
// end), each started wherever an idle worker took it: when they run on
// different workers, the second direction's waits are parked by the worker
// that has the descriptor registered.
template <class Stream>
void full_duplex(const ut::options& o, int rounds) {
    const long fds = fds_after_first_run(o);
    std::atomic<int> ok{0}, crossed{0};
    ut::run(
        [&]() -> ut::task<> {
            for (int r = 0; r < rounds; ++r) {
                auto pair = stream_pair<Stream>();
                Stream& a = pair.first;
                Stream& b = pair.second;
                std::string data(128 * 1024, '\0');
                for (std::size_t i = 0; i < data.size(); ++i)
                    data[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(r)) % 251);
                std::string back(data.size(), '\0');
                std::atomic<std::thread::id> wt{}, rt{};
                auto echo = [&]() -> ut::task<> {  // echo
                    char buf[4096];
                    for (;;) {
                        std::size_t k = co_await b.read_some(std::span<char>(buf));
                        if (k == 0) break;
                        co_await b.write_all(std::string_view(buf, k));
                    }
                };
                // Each holds its worker's thread a moment first, so that an idle
                // worker steals the other.
                auto write_side = [&]() -> ut::task<> {
                    std::this_thread::sleep_for(1ms);
                    wt = std::this_thread::get_id();
                    for (std::size_t off = 0; off < data.size(); off += 1000)
                        co_await a.write_all(std::string_view(data).substr(off, 1000));
                };
                auto read_side = [&]() -> ut::task<> {
                    std::this_thread::sleep_for(1ms);
                    rt = std::this_thread::get_id();
                    co_await a.read_exact(std::span<char>(back));
                };
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(echo());
                    auto w = ut::spawn(write_side());
                    auto r = ut::spawn(read_side());
                    co_await w;
                    co_await r;
                    a.close();  // the echo sees end of stream
                    co_return;
                });
                if (back == data) ok.fetch_add(1);
                if (wt.load() != rt.load()) crossed.fetch_add(1);
            }
        }(),
        o);
    EXPECT_EQ(ok.load(), rounds);
    std::printf("  %d of %d rounds had reader and writer on different workers\n", crossed.load(),
                rounds);
    EXPECT_GT(crossed.load(), 0);
    EXPECT_EQ(open_fd_count(), fds) << "descriptors leaked";
}

TEST_P(ThreadsTest, FullDuplexAcrossWorkers) {
    watchdog w(180s, "full duplex across workers");
    full_duplex<ut::tcp_stream>(opts(), 20);
    full_duplex<ut::pipe_stream>(opts(), 20);
}

std::vector<std::string> thread_backends() { return ut::available_backends(); }

INSTANTIATE_TEST_SUITE_P(Backends, ThreadsTest, ::testing::ValuesIn(thread_backends()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
