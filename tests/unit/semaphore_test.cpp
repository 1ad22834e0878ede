// Unit tests for semaphore: counting, try_acquire, FIFO hand-off without
// barging, argument checking, and cancellation of a waiting acquire.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace {

namespace ut = uthreads;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<> acquire_and_log(ut::semaphore& s, std::vector<int>& log, int id) {
    co_await s.acquire();
    log.push_back(id);
}

TEST(SemaphoreTest, NegativeInitialCountThrowsInvalidArgument) {
    EXPECT_THROW(ut::semaphore(-1), std::invalid_argument);
    EXPECT_NO_THROW(ut::semaphore(0));
}

TEST(SemaphoreTest, TryAcquireCountsDown) {
    ut::semaphore s(2);
    EXPECT_EQ(s.available(), 2);
    EXPECT_TRUE(s.try_acquire());
    EXPECT_TRUE(s.try_acquire());
    EXPECT_FALSE(s.try_acquire());
    EXPECT_EQ(s.available(), 0);
    s.release();
    EXPECT_EQ(s.available(), 1);
    EXPECT_TRUE(s.try_acquire());
    s.release();
    s.release();
    s.release();  // releasing beyond the initial count is allowed (counting semaphore)
    EXPECT_EQ(s.available(), 3);
}

TEST(SemaphoreTest, AcquireWithUnitsAvailableDoesNotWait) {
    int got = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(3);
            for (int i = 0; i < 3; ++i) {
                co_await s.acquire();
                ++got;
            }
            EXPECT_EQ(s.available(), 0);
        }(),
        epoll());
    EXPECT_EQ(got, 3);
}

TEST(SemaphoreTest, WaitersAreServedFifo) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(0);
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 6; ++i) hs.push_back(ut::spawn(acquire_and_log(s, log, i)));
            co_await yield_times(3);
            EXPECT_TRUE(log.empty());
            for (int i = 0; i < 6; ++i) {
                s.release();
                co_await yield_times(2);
                EXPECT_EQ(log.size(), static_cast<std::size_t>(i + 1))
                    << "one release lets exactly one waiter through";
            }
            for (auto& h : hs) co_await h;
            EXPECT_EQ(s.available(), 0);
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(SemaphoreTest, ReleaseHandsOffToWaiterWithoutBarging) {
    bool barged = true;
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(0);
            auto h = ut::spawn(acquire_and_log(s, log, 1));
            co_await yield_times(3);
            s.release();
            // The unit went straight to the waiter, even though it has not run yet.
            EXPECT_EQ(s.available(), 0);
            barged = s.try_acquire();
            co_await h;
        }(),
        epoll());
    EXPECT_FALSE(barged);
    EXPECT_EQ(log, std::vector<int>{1});
}

TEST(SemaphoreTest, TryAcquireDoesNotJumpTheQueue) {
    // Units made available while microthreads wait belong to the waiters.
    bool jumped = true;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(0);
            std::vector<int> log;
            auto a = ut::spawn(acquire_and_log(s, log, 1));
            auto b = ut::spawn(acquire_and_log(s, log, 2));
            co_await yield_times(3);
            s.release();
            s.release();
            jumped = s.try_acquire();
            co_await a;
            co_await b;
        }(),
        epoll());
    EXPECT_FALSE(jumped);
}

TEST(SemaphoreTest, LimitsConcurrency) {
    int inside = 0, max_inside = 0, done = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(3);
            auto worker = [](ut::semaphore& s, int& in, int& mx, int& d) -> ut::task<> {
                for (int i = 0; i < 5; ++i) {
                    co_await s.acquire();
                    ++in;
                    mx = std::max(mx, in);
                    co_await ut::yield_now();
                    co_await ut::yield_now();
                    --in;
                    s.release();
                }
                ++d;
            };
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 10; ++i) hs.push_back(ut::spawn(worker(s, inside, max_inside, done)));
            for (auto& h : hs) co_await h;
            EXPECT_EQ(s.available(), 3);
        }(),
        epoll());
    EXPECT_EQ(done, 10);
    EXPECT_EQ(max_inside, 3);
    EXPECT_EQ(inside, 0);
}

TEST(SemaphoreTest, CancelledAcquireTakesNothing) {
    std::vector<int> log;
    bool cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(0);
            auto body = [](ut::semaphore& s, bool& c) -> ut::task<> {
                try {
                    co_await s.acquire();
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto victim = ut::spawn(body(s, cancelled));
            auto other = ut::spawn(acquire_and_log(s, log, 2));
            co_await yield_times(3);
            victim.cancel();
            try {
                co_await victim;
            } catch (const ut::cancelled&) {
            }
            s.release();
            co_await other;  // got the unit the cancelled waiter did not take
            EXPECT_EQ(s.available(), 0);
            s.release();
            EXPECT_EQ(s.available(), 1);
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(log, std::vector<int>{2});
}

TEST(SemaphoreTest, CancelledAfterReleaseKeepsTheUnit) {
    // If the unit was already handed to the waiter when cancellation arrives,
    // the acquire completes (nothing lost) and cancellation comes at the next
    // suspension point.
    bool acquired = false, cancelled_later = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::semaphore s(0);
            auto body = [](ut::semaphore& s, bool& a, bool& c) -> ut::task<> {
                co_await s.acquire();
                a = true;
                try {
                    co_await ut::yield_now();
                } catch (const ut::cancelled&) {
                    c = true;
                    s.release();
                    throw;
                }
            };
            auto h = ut::spawn(body(s, acquired, cancelled_later));
            co_await yield_times(3);
            s.release();  // hands the unit to the waiter...
            h.cancel();   // ...before it gets to run
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
            EXPECT_EQ(s.available(), 1);
        }(),
        epoll());
    EXPECT_TRUE(acquired);
    EXPECT_TRUE(cancelled_later);
}

}  // namespace
