// Bridges between microthreads and OS threads: promise/future completed from a
// std::thread, and to_thread.

#include "conformance.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class BridgeTest : public backend_test {};  // NOLINT(readability-identifier-naming)

TEST_P(BridgeTest, FutureCompletedFromStdThreadWhileAwaited) {
    int got = 0;
    bool was_ready_before = true;
    std::thread setter;
    run_on_backend([&]() -> ut::task<> {
        ut::promise<int> p;
        ut::future<int> f = p.get_future();
        setter = std::thread([pr = std::move(p)]() mutable {
            std::this_thread::sleep_for(20ms);
            pr.set_value(123);
        });
        was_ready_before = f.is_ready();
        got = co_await f;
    }());
    setter.join();
    EXPECT_FALSE(was_ready_before);
    EXPECT_EQ(got, 123);
}

TEST_P(BridgeTest, FutureExceptionFromStdThread) {
    std::string what;
    std::thread setter;
    run_on_backend([&]() -> ut::task<> {
        ut::promise<std::string> p;
        auto f = p.get_future();
        setter = std::thread([pr = std::move(p)]() mutable {
            std::this_thread::sleep_for(5ms);
            pr.set_exception(std::make_exception_ptr(std::runtime_error("from a thread")));
        });
        try {
            co_await f;
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    }());
    setter.join();
    EXPECT_EQ(what, "from a thread");
}

TEST_P(BridgeTest, VoidFutureFromStdThread) {
    bool done = false;
    std::thread setter;
    run_on_backend([&]() -> ut::task<> {
        ut::promise<> p;
        auto f = p.get_future();
        setter = std::thread([pr = std::move(p)]() mutable { pr.set_value(); });
        co_await f;
        done = f.is_ready();
    }());
    setter.join();
    EXPECT_TRUE(done);
}

TEST_P(BridgeTest, ManyFuturesFromManyThreads) {
    std::atomic<long long> sum{0};
    std::vector<std::thread> threads;
    run_on_backend([&]() -> ut::task<> {
        std::vector<ut::future<int>> fs;
        for (int i = 0; i < 16; ++i) {
            ut::promise<int> p;
            fs.push_back(p.get_future());
            threads.emplace_back([pr = std::move(p), i]() mutable {
                std::this_thread::sleep_for(std::chrono::milliseconds(i % 4));
                pr.set_value(i);
            });
        }
        // Await them from several microthreads at once.
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (auto& f : fs)
                n.spawn([](ut::future<int>& fut, std::atomic<long long>& s) -> ut::task<> {
                    s += co_await fut;
                }(f, sum));
            co_return;
        });
    }());
    for (auto& t : threads) t.join();
    EXPECT_EQ(sum.load(), 16 * 15 / 2);
}

TEST_P(BridgeTest, WakeUpsFromRacingThreadsAreNeverLost) {
    // Threads complete futures while the loop is still consuming the previous
    // wake-up, round after round. A backend that acknowledges its wake-up
    // descriptor in the wrong order ends up with the "wake pending" flag set
    // over an empty descriptor and ignores every later wake(), so the loop
    // sleeps forever. No runtime timer can catch that (the sim backend's
    // virtual clock would fire it at once), so a watchdog thread fails the test.
    constexpr int n_threads = 3;
    constexpr int rounds = 5000;
    std::array<std::atomic<ut::promise<int>*>, n_threads> slots{};
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < n_threads; ++t)
        workers.emplace_back([&, t] {
            while (!stop.load()) {
                if (ut::promise<int>* p = slots[t].exchange(nullptr)) {
                    p->set_value(t);
                } else {
                    std::this_thread::yield();
                }
            }
        });
    std::atomic<int> done_rounds{0};
    std::thread watchdog([&] {
        int last = -1;
        for (int quiet = 0; !stop.load();) {
            std::this_thread::sleep_for(10ms);
            int now = done_rounds.load();
            quiet = now == last ? quiet + 1 : 0;
            last = now;
            if (quiet == 3000) {  // 30 s without a completed round
                std::fprintf(stderr, "FATAL: no progress after round %d: a wake-up was lost\n",
                             now);
                std::abort();
            }
        }
    });
    long long sum = 0;
    run_on_backend([&]() -> ut::task<> {
        for (int r = 0; r < rounds; ++r) {
            std::array<ut::promise<int>, n_threads> ps;
            std::array<ut::future<int>, n_threads> fs;
            for (int t = 0; t < n_threads; ++t) fs[t] = ps[t].get_future();
            for (int t = 0; t < n_threads; ++t) slots[t].store(&ps[t]);
            for (auto& f : fs) sum += co_await f;
            done_rounds.fetch_add(1);
        }
    }());
    stop.store(true);
    for (auto& w : workers) w.join();
    watchdog.join();
    EXPECT_EQ(done_rounds.load(), rounds);
    EXPECT_EQ(sum, static_cast<long long>(rounds) * (0 + 1 + 2));
}

TEST_P(BridgeTest, FutureAlreadySetCompletesAtOnce) {
    int got = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::promise<int> p;
        auto f = p.get_future();
        p.set_value(9);
        EXPECT_TRUE(f.is_ready());
        got = co_await f;
    }());
    EXPECT_EQ(got, 9);
}

TEST_P(BridgeTest, DroppedPromiseBreaksFuture) {
    bool broken = false;
    std::thread dropper;
    run_on_backend([&]() -> ut::task<> {
        ut::future<int> f;
        {
            ut::promise<int> p;
            f = p.get_future();
            dropper = std::thread([pr = std::move(p)]() mutable {
                std::this_thread::sleep_for(2ms);
                ut::promise<int> gone = std::move(pr);
            });
        }
        try {
            co_await f;
        } catch (const ut::broken_promise&) {
            broken = true;
        }
    }());
    dropper.join();
    EXPECT_TRUE(broken);
}

TEST_P(BridgeTest, PromiseMisuseThrowsLogicError) {
    ut::promise<int> p;
    auto f = p.get_future();
    EXPECT_THROW((void)p.get_future(), std::logic_error);
    p.set_value(1);
    EXPECT_THROW(p.set_value(2), std::logic_error);
    EXPECT_THROW(p.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                 std::logic_error);
    EXPECT_TRUE(f.is_ready());
}

TEST_P(BridgeTest, ToThreadReturnsValueFromAnotherThread) {
    int value = 0;
    bool other_thread = false;
    run_on_backend([&]() -> ut::task<> {
        auto loop_thread = std::this_thread::get_id();
        std::thread::id pool_thread;
        value = co_await ut::to_thread([&] {
            pool_thread = std::this_thread::get_id();
            std::this_thread::sleep_for(5ms);
            return 6 * 7;
        });
        other_thread = pool_thread != loop_thread;
    }());
    EXPECT_EQ(value, 42);
    EXPECT_TRUE(other_thread) << "to_thread ran the blocking call on the loop thread";
}

TEST_P(BridgeTest, ToThreadPropagatesExceptions) {
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::to_thread(
                []() -> int { throw std::domain_error("blocking call failed"); });
        } catch (const std::domain_error& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "blocking call failed");
}

TEST_P(BridgeTest, ToThreadVoidAndMoveOnlyResults) {
    bool ran = false;
    int boxed = 0;
    run_on_backend([&]() -> ut::task<> {
        co_await ut::to_thread([&] { ran = true; });
        auto p = co_await ut::to_thread([] { return std::make_unique<int>(5); });
        boxed = *p;
    }());
    EXPECT_TRUE(ran);
    EXPECT_EQ(boxed, 5);
}

TEST_P(BridgeTest, ToThreadDoesNotBlockOtherMicrothreads) {
    int ticks_during_call = 0;  // the ticker's; read after it was joined
    run_on_backend([&]() -> ut::task<> {
        std::atomic<bool> release{false};
        std::atomic<bool> call_done{false};
        auto ticker =
            ut::spawn([](int& t, std::atomic<bool>& cd, std::atomic<bool>& rel) -> ut::task<> {
                while (!cd) {
                    co_await ut::yield_now();
                    if (++t == 100) rel = true;  // let the blocking call finish
                }
            }(ticks_during_call, call_done, release));
        co_await ut::to_thread([&] {
            auto w0 = wall_now();
            while (!release && wall_now() - w0 < 10s) std::this_thread::sleep_for(100us);
        });
        call_done = true;
        co_await ticker;
    }());
    EXPECT_GE(ticks_during_call, 100) << "the loop thread was blocked during to_thread";
}

TEST_P(BridgeTest, ConcurrentToThreadCallsOverlap) {
    // Four calls that each wait for all four to have started: they finish only
    // if the pool runs them at the same time.
    std::atomic<int> finished{0};
    run_on_backend([&]() -> ut::task<> {
        std::atomic<int> started{0};
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 4; ++i)
                n.spawn([](std::atomic<int>& st, std::atomic<int>& fin) -> ut::task<> {
                    bool all = co_await ut::to_thread([&st] {
                        ++st;
                        auto w0 = wall_now();
                        while (st.load() < 4 && wall_now() - w0 < 10s)
                            std::this_thread::sleep_for(100us);
                        return st.load() >= 4;
                    });
                    if (all) ++fin;
                }(started, finished));
            co_return;
        });
    }());
    EXPECT_EQ(finished.load(), 4);
}

TEST_P(BridgeTest, CancelledCallerGetsToThreadResultFirst) {
    // to_thread is not interruptible: the caller's cancellation waits for fn,
    // then is delivered at the next suspension point.
    bool fn_finished = false, result_seen = false, cancelled_after = false;
    run_on_backend([&]() -> ut::task<> {
        std::atomic<bool> in_call{false};
        auto h =
            ut::spawn([](bool& ff, bool& rs, bool& ca, std::atomic<bool>& started) -> ut::task<> {
                int v = co_await ut::to_thread([&ff, &started] {
                    started = true;
                    std::this_thread::sleep_for(20ms);
                    ff = true;
                    return 1;
                });
                rs = v == 1;
                try {
                    co_await ut::yield_now();
                } catch (const ut::cancelled&) {
                    ca = true;
                    throw;
                }
            }(fn_finished, result_seen, cancelled_after, in_call));
        // The call is running (with several workers the caller may otherwise
        // still be on its way to to_thread when cancelled).
        co_await yield_until([&] { return in_call.load(); }, "fn started");
        h.cancel();
        EXPECT_TRUE(co_await join_expect_cancelled(h));
    }());
    EXPECT_TRUE(fn_finished);
    EXPECT_TRUE(result_seen);
    EXPECT_TRUE(cancelled_after);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BridgeTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, BridgeTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
