// Unit tests for event: set wakes every waiter, a set event completes waits at
// once until cleared, and waiting is a cancellation point.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<> wait_and_log(ut::event& e, std::vector<int>& log, int id) {
    co_await e.wait();
    log.push_back(id);
}

TEST(EventTest, StartsClearAndSetClearToggle) {
    ut::event e;
    EXPECT_FALSE(e.is_set());
    e.set();
    EXPECT_TRUE(e.is_set());
    e.set();  // idempotent
    EXPECT_TRUE(e.is_set());
    e.clear();
    EXPECT_FALSE(e.is_set());
}

TEST(EventTest, SetWakesAllWaiters) {
    std::vector<int> log;
    std::size_t woken_before_set = 99;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 5; ++i) hs.push_back(ut::spawn(wait_and_log(e, log, i)));
            co_await yield_times(5);
            woken_before_set = log.size();
            e.set();
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(woken_before_set, 0u);
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(EventTest, WaitOnSetEventCompletesWithoutBlocking) {
    int iterations = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            e.set();
            for (int i = 0; i < 1000; ++i) {
                co_await e.wait();
                ++iterations;
            }
        }(),
        epoll());
    EXPECT_EQ(iterations, 1000);
}

TEST(EventTest, ClearMakesLaterWaitsBlockAgain) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            e.set();
            e.clear();
            auto h = ut::spawn(wait_and_log(e, log, 1));
            co_await yield_times(5);
            EXPECT_TRUE(log.empty());
            e.set();
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(log, std::vector<int>{1});
}

TEST(EventTest, WaitersWokenBySetAreNotAffectedByAnImmediateClear) {
    // set() wakes the current waiters; a clear() before they run does not put
    // them back to sleep (the wake-up was delivered).
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            auto a = ut::spawn(wait_and_log(e, log, 1));
            auto b = ut::spawn(wait_and_log(e, log, 2));
            co_await yield_times(3);
            e.set();
            e.clear();
            co_await a;
            co_await b;
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
}

TEST(EventTest, WaitIsCancellable) {
    bool cancelled = false;
    bool others_unaffected = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            std::vector<int> log;
            auto body = [](ut::event& e, bool& c) -> ut::task<> {
                try {
                    co_await e.wait();
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto victim = ut::spawn(body(e, cancelled));
            auto other = ut::spawn(wait_and_log(e, log, 7));
            co_await yield_times(3);
            victim.cancel();
            try {
                co_await victim;
            } catch (const ut::cancelled&) {
            }
            e.set();
            co_await other;
            others_unaffected = log == std::vector<int>{7};
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(others_unaffected);
}

TEST(EventTest, WaitOnSetEventStillSeesCancellation) {
    // Even an immediately-ready wait is a cancellation point.
    bool cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            e.set();
            auto spinner = [](ut::event& e, bool& c) -> ut::task<> {
                try {
                    for (;;) co_await e.wait();
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto h = ut::spawn(spinner(e, cancelled));
            co_await ut::yield_now();
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
}

TEST(EventTest, SetFromTimerWakesSleepingWaiter) {
    bool woke = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            auto setter = [](ut::event& e) -> ut::task<> {
                co_await ut::sleep_for(1ms);
                e.set();
            };
            auto h = ut::spawn(setter(e));
            co_await e.wait();
            woke = true;
            co_await h;
        }(),
        epoll());
    EXPECT_TRUE(woke);
}

}  // namespace
