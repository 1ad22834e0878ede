// Unit tests for wait_queue: parking, FIFO wake_one, wake_all counts, and
// cancellation of a parked waiter (it leaves the queue and consumes no wake-up).
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace {

namespace ut = uthreads;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<> wait_and_log(ut::wait_queue& q, std::vector<int>& log, int id) {
    co_await q.wait();
    log.push_back(id);
}

TEST(WaitQueueTest, WaitParksUntilWoken) {
    bool woke = false;
    bool woke_before_wake = true;
    ut::run(
        [&]() -> ut::task<> {
            ut::wait_queue q;
            EXPECT_TRUE(q.empty());
            auto waiter = [](ut::wait_queue& q, bool& w) -> ut::task<> {
                co_await q.wait();
                w = true;
            };
            auto h = ut::spawn(waiter(q, woke));
            co_await yield_times(5);
            woke_before_wake = woke;
            EXPECT_FALSE(q.empty());
            EXPECT_FALSE(h.done());
            EXPECT_TRUE(q.wake_one());
            EXPECT_TRUE(q.empty());
            co_await h;
        }(),
        epoll());
    EXPECT_FALSE(woke_before_wake);
    EXPECT_TRUE(woke);
}

TEST(WaitQueueTest, WakeOneOnEmptyQueueReturnsFalseAndIsNotRemembered) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::wait_queue q;
            EXPECT_FALSE(q.wake_one());
            EXPECT_EQ(q.wake_all(), 0u);
            // A wake-up with nobody waiting is lost, not stored for a later waiter.
            auto h = ut::spawn(wait_and_log(q, log, 1));
            co_await yield_times(5);
            EXPECT_TRUE(log.empty());
            EXPECT_FALSE(h.done());
            q.wake_one();
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(log, std::vector<int>{1});
}

TEST(WaitQueueTest, WakeOneIsFifo) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::wait_queue q;
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 5; ++i) hs.push_back(ut::spawn(wait_and_log(q, log, i)));
            co_await yield_times(3);
            for (int i = 0; i < 5; ++i) {
                EXPECT_TRUE(q.wake_one());
                co_await yield_times(3);
                EXPECT_EQ(log.size(), static_cast<std::size_t>(i + 1)) << "wake_one woke exactly one";
            }
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(WaitQueueTest, WakeAllWakesEveryoneAndReturnsCount) {
    std::vector<int> log;
    std::size_t woken = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::wait_queue q;
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 4; ++i) hs.push_back(ut::spawn(wait_and_log(q, log, i)));
            co_await yield_times(3);
            woken = q.wake_all();
            EXPECT_TRUE(q.empty());
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(woken, 4u);
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3}));
}

TEST(WaitQueueTest, CancelledWaiterLeavesTheQueue) {
    std::vector<int> log;
    bool first_cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::wait_queue q;
            auto a = ut::spawn(wait_and_log(q, log, 1));
            auto b = ut::spawn(wait_and_log(q, log, 2));
            co_await yield_times(3);
            a.cancel();
            try {
                co_await a;
            } catch (const ut::cancelled&) {
                first_cancelled = true;
            }
            // The single wake-up goes to the remaining waiter, not the cancelled one.
            EXPECT_TRUE(q.wake_one());
            co_await b;
            EXPECT_TRUE(q.empty());
            EXPECT_FALSE(q.wake_one());
        }(),
        epoll());
    EXPECT_TRUE(first_cancelled);
    EXPECT_EQ(log, std::vector<int>{2});
}

TEST(WaitQueueTest, CancelledBeforeParkingDoesNotEnterTheQueue) {
    bool cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::wait_queue q;
            auto body = [](ut::wait_queue& q, bool& c) -> ut::task<> {
                try {
                    co_await q.wait();
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto h = ut::spawn(body(q, cancelled));
            h.cancel();  // before it ever ran
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
            EXPECT_TRUE(q.empty());
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
}

TEST(WaitQueueTest, WaitOutsideRunThrowsLogicError) {
    ut::wait_queue q;
    bool threw = false;
    try {
        auto op = q.wait();
        (void)op.await_ready();
    } catch (const std::logic_error&) {
        threw = true;
    }
    EXPECT_TRUE(threw);
}

}  // namespace
