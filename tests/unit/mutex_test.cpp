// Unit tests for mutex and mutex::lock_guard: mutual exclusion across
// suspension points, FIFO hand-off, try_lock, guard unlock and move semantics,
// and cancellation of a waiting lock().
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace ut = uthreads;

ut::options epoll() { return {.backend = "epoll"}; }

static_assert(!std::is_copy_constructible_v<ut::mutex::lock_guard>);
static_assert(std::is_nothrow_move_constructible_v<ut::mutex::lock_guard>);

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<> lock_and_log(ut::mutex& m, std::vector<int>& log, int id) {
    auto g = co_await m.lock();
    log.push_back(id);
    co_await ut::yield_now();  // hold it across a suspension point
}

TEST(MutexTest, MutualExclusionAcrossYields) {
    constexpr int workers = 20, iterations = 50;
    int counter = 0, holders = 0, max_holders = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            auto worker = [](ut::mutex& m, int& c, int& h, int& mh) -> ut::task<> {
                for (int i = 0; i < iterations; ++i) {
                    auto g = co_await m.lock();
                    EXPECT_TRUE(g.owns_lock());
                    ++h;
                    if (h > mh) mh = h;
                    int seen = c;
                    co_await ut::yield_now();  // a race would lose increments here
                    c = seen + 1;
                    --h;
                }
            };
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < workers; ++i)
                hs.push_back(ut::spawn(worker(m, counter, holders, max_holders)));
            for (auto& h : hs) co_await h;
            EXPECT_FALSE(m.is_locked());
        }(),
        epoll());
    EXPECT_EQ(counter, workers * iterations);
    EXPECT_EQ(max_holders, 1);
}

TEST(MutexTest, WaitersAcquireInFifoOrder) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            auto held = co_await m.lock();
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 6; ++i) hs.push_back(ut::spawn(lock_and_log(m, log, i)));
            co_await yield_times(3);
            EXPECT_TRUE(log.empty()) << "nobody may enter while the lock is held";
            held.unlock();
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(MutexTest, UnlockHandsOffWithoutBarging) {
    bool barged = true;
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            auto held = co_await m.lock();
            auto h = ut::spawn(lock_and_log(m, log, 1));
            co_await yield_times(3);
            held.unlock();
            // Handed to the waiter: still locked, and try_lock must not steal it.
            EXPECT_TRUE(m.is_locked());
            auto stolen = m.try_lock();
            barged = stolen.owns_lock();
            co_await h;
            EXPECT_FALSE(m.is_locked());
        }(),
        epoll());
    EXPECT_FALSE(barged);
    EXPECT_EQ(log, std::vector<int>{1});
}

TEST(MutexTest, TryLock) {
    ut::mutex m;
    EXPECT_FALSE(m.is_locked());
    {
        auto g = m.try_lock();
        EXPECT_TRUE(g.owns_lock());
        EXPECT_EQ(g.get(), &m);
        EXPECT_TRUE(m.is_locked());
        auto g2 = m.try_lock();
        EXPECT_FALSE(g2.owns_lock());
        EXPECT_EQ(g2.get(), nullptr);
        EXPECT_TRUE(m.is_locked());
    }
    EXPECT_FALSE(m.is_locked());
    EXPECT_TRUE(m.try_lock().owns_lock());  // a temporary guard unlocks at once
    EXPECT_FALSE(m.is_locked());
}

TEST(MutexTest, GuardUnlockIsIdempotent) {
    ut::mutex m;
    auto g = m.try_lock();
    ASSERT_TRUE(g.owns_lock());
    g.unlock();
    EXPECT_FALSE(g.owns_lock());
    EXPECT_FALSE(m.is_locked());
    // A second unlock must not release the mutex again (someone else holds it now).
    auto other = m.try_lock();
    ASSERT_TRUE(other.owns_lock());
    g.unlock();
    EXPECT_TRUE(m.is_locked());
    EXPECT_FALSE(m.try_lock().owns_lock());
}

TEST(MutexTest, GuardMoveTransfersOwnership) {
    ut::mutex m;
    auto a = m.try_lock();
    ASSERT_TRUE(a.owns_lock());
    ut::mutex::lock_guard b(std::move(a));
    EXPECT_FALSE(a.owns_lock());
    EXPECT_TRUE(b.owns_lock());
    EXPECT_TRUE(m.is_locked());
    { ut::mutex::lock_guard sink = std::move(b); }
    EXPECT_FALSE(m.is_locked()) << "the guard that ended up owning unlocks";
    EXPECT_FALSE(b.owns_lock());
}

TEST(MutexTest, GuardMoveAssignReleasesPreviouslyOwnedMutex) {
    ut::mutex m1, m2;
    auto g1 = m1.try_lock();
    auto g2 = m2.try_lock();
    ASSERT_TRUE(g1.owns_lock());
    ASSERT_TRUE(g2.owns_lock());
    g1 = std::move(g2);
    EXPECT_FALSE(m1.is_locked()) << "assigning over a guard unlocks what it held";
    EXPECT_TRUE(m2.is_locked());
    EXPECT_EQ(g1.get(), &m2);
    EXPECT_FALSE(g2.owns_lock());
    g1 = ut::mutex::lock_guard();
    EXPECT_FALSE(m2.is_locked());
}

TEST(MutexTest, LockGuardOwnsAfterCoAwait) {
    bool owned = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            auto g = co_await m.lock();
            owned = g.owns_lock() && g.get() == &m && m.is_locked();
        }(),
        epoll());
    EXPECT_TRUE(owned);
}

TEST(MutexTest, CancelledLockHoldsNothing) {
    std::vector<int> log;
    bool cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            auto held = co_await m.lock();
            auto body = [](ut::mutex& m, bool& c) -> ut::task<> {
                try {
                    auto g = co_await m.lock();
                    ADD_FAILURE() << "cancelled waiter got the lock";
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto victim = ut::spawn(body(m, cancelled));
            auto next = ut::spawn(lock_and_log(m, log, 2));
            co_await yield_times(3);
            victim.cancel();
            try {
                co_await victim;
            } catch (const ut::cancelled&) {
            }
            held.unlock();
            co_await next;
            EXPECT_FALSE(m.is_locked());
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(log, std::vector<int>{2});
}

TEST(MutexTest, ExceptionWhileHoldingReleasesTheLock) {
    bool relocked = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            auto failing = [](ut::mutex& m) -> ut::task<> {
                auto g = co_await m.lock();
                co_await ut::yield_now();
                throw std::runtime_error("inside critical section");
            };
            try {
                co_await failing(m);
            } catch (const std::runtime_error&) {
            }
            EXPECT_FALSE(m.is_locked());
            auto g = co_await m.lock();
            relocked = g.owns_lock();
        }(),
        epoll());
    EXPECT_TRUE(relocked);
}

}  // namespace
