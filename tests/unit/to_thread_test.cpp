// Unit tests for to_thread: values, exceptions and void results come back to the
// calling microthread; the call runs on another OS thread; the runtime keeps
// running microthreads meanwhile; many calls run concurrently on the pool.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

/// Spin-waits (sleeping briefly) until `pred` holds or `limit` passes; returns
/// whether it held. Used only on pool threads, never on the runtime's thread.
template <class Pred>
bool wait_for_condition(Pred pred, std::chrono::milliseconds limit = 2000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(50us);
    }
    return true;
}

TEST(ToThreadTest, ReturnsValue) {
    int got = ut::run([]() -> ut::task<int> { co_return co_await ut::to_thread([] { return 42; }); }(),
                      epoll());
    EXPECT_EQ(got, 42);
}

TEST(ToThreadTest, ReturnsMoveOnlyAndNonTrivialValues) {
    std::string s;
    int v = 0;
    ut::run(
        [&]() -> ut::task<> {
            s = co_await ut::to_thread([] { return std::string(500, 'q'); });
            auto p = co_await ut::to_thread([] { return std::make_unique<int>(6); });
            v = p ? *p : -1;
        }(),
        epoll());
    EXPECT_EQ(s, std::string(500, 'q'));
    EXPECT_EQ(v, 6);
}

TEST(ToThreadTest, RethrowsException) {
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            try {
                (void)co_await ut::to_thread([]() -> int { throw std::runtime_error("blocking failure"); });
                ADD_FAILURE() << "no exception";
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "blocking failure");
}

TEST(ToThreadTest, VoidCall) {
    std::atomic<int> calls{0};
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::to_thread([&] { calls.fetch_add(1); });
            EXPECT_EQ(calls.load(), 1) << "the call finished before co_await returned";
            co_await ut::to_thread([&] { calls.fetch_add(1); });
        }(),
        epoll());
    EXPECT_EQ(calls.load(), 2);
}

TEST(ToThreadTest, VoidCallException) {
    bool caught = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::to_thread([] { throw std::out_of_range("void"); });
            } catch (const std::out_of_range&) {
                caught = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(caught);
}

TEST(ToThreadTest, RunsOnAnotherThread) {
    std::thread::id runtime_thread, pool_thread;
    ut::run(
        [&]() -> ut::task<> {
            runtime_thread = std::this_thread::get_id();
            pool_thread = co_await ut::to_thread([] { return std::this_thread::get_id(); });
            EXPECT_EQ(std::this_thread::get_id(), runtime_thread) << "resumed on the runtime thread";
        }(),
        epoll());
    EXPECT_NE(pool_thread, std::thread::id{});
    EXPECT_NE(pool_thread, runtime_thread);
}

TEST(ToThreadTest, RuntimeKeepsRunningDuringTheCall) {
    // The blocking call waits for a flag that only another microthread sets: if
    // to_thread blocked the runtime's thread, the flag would never be set.
    std::atomic<bool> flag{false};
    bool saw_flag = false;
    ut::run(
        [&]() -> ut::task<> {
            auto setter = [](std::atomic<bool>& f) -> ut::task<> {
                co_await ut::sleep_for(1ms);
                f.store(true);
            };
            auto h = ut::spawn(setter(flag));
            saw_flag = co_await ut::to_thread([&] { return wait_for_condition([&] { return flag.load(); }); });
            co_await h;
        }(),
        epoll());
    EXPECT_TRUE(saw_flag);
}

TEST(ToThreadTest, ManyConcurrentCallsRunInParallel) {
    // Each call waits until all of them have started: possible only if the pool
    // runs them at the same time (it grows on demand).
    constexpr int n = 8;
    std::atomic<int> arrived{0};
    std::vector<bool> all_met(n, false);
    ut::run(
        [&]() -> ut::task<> {
            auto caller = [](std::atomic<int>& a, std::vector<bool>& met, int i) -> ut::task<> {
                met[i] = co_await ut::to_thread([&a] {
                    a.fetch_add(1);
                    return wait_for_condition([&a] { return a.load() == n; });
                });
            };
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < n; ++i) hs.push_back(ut::spawn(caller(arrived, all_met, i)));
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(arrived.load(), n);
    for (int i = 0; i < n; ++i) EXPECT_TRUE(all_met[i]) << "call " << i;
}

TEST(ToThreadTest, ManyQuickCallsAllComplete) {
    constexpr int n = 200;
    long long sum = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto caller = [](int i) -> ut::task<int> { co_return co_await ut::to_thread([i] { return i; }); };
            std::vector<ut::join_handle<int>> hs;
            for (int i = 0; i < n; ++i) hs.push_back(ut::spawn(caller(i)));
            for (auto& h : hs) sum += co_await h;
            // And sequentially from one microthread.
            for (int i = 0; i < 50; ++i) sum += co_await ut::to_thread([i] { return i; });
        }(),
        epoll());
    EXPECT_EQ(sum, n * (n - 1) / 2 + 50 * 49 / 2);
}

TEST(ToThreadTest, CancelledCallerStillGetsTheResultAndThenCancellation) {
    // to_thread is not interruptible: the call completes, its effect is kept,
    // and the cancellation arrives at the next suspension point.
    std::atomic<bool> release{false};
    bool call_returned = false, cancelled_after = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](std::atomic<bool>& rel, bool& ret, bool& c) -> ut::task<> {
                int v = co_await ut::to_thread([&rel] {
                    (void)wait_for_condition([&rel] { return rel.load(); });
                    return 5;
                });
                ret = v == 5;
                try {
                    co_await ut::yield_now();
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto h = ut::spawn(body(release, call_returned, cancelled_after));
            co_await ut::sleep_for(1ms);
            h.cancel();
            co_await ut::yield_now();
            release.store(true);
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
        }(),
        epoll());
    EXPECT_TRUE(call_returned);
    EXPECT_TRUE(cancelled_after);
}

TEST(ToThreadTest, RunReturnsOnlyAfterPoolWorkFinished) {
    // A detached microthread blocked in to_thread when main returns: run() waits
    // for the call (it cannot be interrupted) and leaves nothing behind.
    std::atomic<bool> finished{false};
    const long long base = ut::lowlevel::live_frames();
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](std::atomic<bool>& f) -> ut::task<> {
                co_await ut::to_thread([&f] {
                    std::this_thread::sleep_for(3ms);
                    f.store(true);
                });
            };
            ut::spawn(body(finished)).detach();
            co_await ut::yield_now();
        }(),
        epoll());
    EXPECT_TRUE(finished.load());
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

}  // namespace
