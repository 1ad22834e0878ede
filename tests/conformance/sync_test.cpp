// Primitives between microthreads: mutex, semaphore, event, condition_variable,
// wait_queue. None of them may block the OS thread.

#include "conformance.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class SyncTest : public backend_test {};  // NOLINT(readability-identifier-naming)

TEST_P(SyncTest, MutexGivesMutualExclusionAcrossSuspensions) {
    int counter = 0, overlaps = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        bool inside = false;
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 20; ++i)
                n.spawn([](ut::mutex& mx, bool& in, int& c, int& ov, int k) -> ut::task<> {
                    for (int j = 0; j < 10; ++j) {
                        auto g = co_await mx.lock();
                        if (in) ++ov;
                        in = true;
                        int v = c;
                        if ((j + k) % 3 == 0)
                            co_await ut::sleep_for(100us);
                        else
                            co_await ut::yield_now();
                        c = v + 1;
                        in = false;
                    }
                }(m, inside, counter, overlaps, i));
            co_return;
        });
    }());
    EXPECT_EQ(counter, 200);
    EXPECT_EQ(overlaps, 0);
}

TEST_P(SyncTest, MutexHandsOffInFifoOrder) {
    // `queued` is appended in the same step as each waiter parks, so its order
    // is the mutex's queue order also when waiters run on several workers.
    shared_log<int> queued;
    std::vector<int> acquired;  // appended under the mutex only
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        auto held = co_await m.lock();
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(6);
        for (int i = 0; i < 6; ++i)
            hs.push_back(ut::spawn(
                [](ut::mutex& mx, int k, shared_log<int>& q, std::vector<int>& a) -> ut::task<> {
                    auto g = co_await q.queued(mx.lock(), k);
                    a.push_back(k);
                    co_await ut::yield_now();
                }(m, i, queued, acquired)));
        co_await yield_until([&] { return queued.size() >= 6; }, "queued.size() >= 6");
        held.unlock();
        for (auto& h : hs) co_await h;
    }());
    ASSERT_EQ(queued.size(), 6u);
    EXPECT_EQ(acquired, queued.values())
        << "the mutex did not hand off in the order waiters queued";
}

TEST_P(SyncTest, MutexTryLockAndGuardSemantics) {
    bool try_while_held = true, try_after = false, moved_owns = false, early_unlock = false;
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        {
            auto g = co_await m.lock();
            try_while_held = m.try_lock().owns_lock();
            ut::mutex::lock_guard g2 = std::move(g);
            // NOLINTNEXTLINE(bugprone-use-after-move): a moved-from guard must own nothing
            moved_owns = g2.owns_lock() && !g.owns_lock() && g2.get() == &m;
            g2.unlock();
            early_unlock = !m.is_locked();
            g2.unlock();  // idempotent
        }
        try_after = m.try_lock().owns_lock();
    }());
    EXPECT_FALSE(try_while_held);
    EXPECT_TRUE(moved_owns);
    EXPECT_TRUE(early_unlock);
    EXPECT_TRUE(try_after);
}

TEST_P(SyncTest, SemaphoreLimitsConcurrency) {
    std::atomic<int> max_inside{0}, completed{0};
    run_on_backend([&]() -> ut::task<> {
        ut::semaphore s(3);
        std::atomic<int> inside{0};
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 12; ++i)
                n.spawn([](ut::semaphore& sem, std::atomic<int>& in, std::atomic<int>& mx,
                           std::atomic<int>& done) -> ut::task<> {
                    co_await sem.acquire();
                    int now = ++in;
                    for (int m = mx.load(); now > m && !mx.compare_exchange_weak(m, now);) {
                    }
                    co_await ut::sleep_for(1ms);
                    --in;
                    ++done;
                    sem.release();
                }(s, inside, max_inside, completed));
            co_return;
        });
        EXPECT_EQ(s.available(), 3);
    }());
    EXPECT_EQ(max_inside, 3);
    EXPECT_EQ(completed, 12);
}

TEST_P(SyncTest, SemaphoreReleaseWakesLongestWaiter) {
    // `queued` is appended in the same step as each waiter parks: the
    // semaphore's queue order, also with several workers.
    shared_log<int> queued, acquired;
    run_on_backend([&]() -> ut::task<> {
        ut::semaphore s(0);
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(4);
        for (int i = 0; i < 4; ++i)
            hs.push_back(ut::spawn([](ut::semaphore& sem, int k, shared_log<int>& q,
                                      shared_log<int>& a) -> ut::task<> {
                co_await q.queued(sem.acquire(), k);
                a.add(k);
            }(s, i, queued, acquired)));
        co_await yield_until([&] { return queued.size() >= 4; }, "queued.size() >= 4");
        for (std::size_t i = 0; i < 4; ++i) {
            s.release();
            // Let the one microthread that got the unit record it before the next
            // release, whatever order the ready queue runs things in.
            co_await yield_until([&] { return acquired.size() > i; }, "acquired.size() > i");
        }
        for (auto& h : hs) co_await h;
        EXPECT_EQ(s.available(), 0);
    }());
    ASSERT_EQ(queued.size(), 4u);
    EXPECT_EQ(acquired.values(), queued.values())
        << "release() did not wake the longest waiter first";
}

TEST_P(SyncTest, SemaphoreNoBargingPastWaiters) {
    bool barged = true;
    run_on_backend([&]() -> ut::task<> {
        ut::semaphore s(0);
        shared_log<int> parked;
        auto waiter = ut::spawn([](ut::semaphore& sem, shared_log<int>& p) -> ut::task<> {
            co_await p.queued(sem.acquire(), 0);
        }(s, parked));
        co_await yield_until([&] { return parked.size() >= 1; }, "waiter parked in acquire()");
        s.release();  // handed to the waiter, not to the count
        barged = s.try_acquire();
        co_await waiter;
    }());
    EXPECT_FALSE(barged) << "try_acquire took a unit released to a waiting microthread";
}

TEST_P(SyncTest, EventWakesAllWaitersAndStaysSet) {
    std::atomic<int> woken{0};
    bool set_after = false, cleared = true;
    run_on_backend([&]() -> ut::task<> {
        ut::event e;
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(10);
        for (int i = 0; i < 10; ++i)
            hs.push_back(ut::spawn([](ut::event& ev, std::atomic<int>& w) -> ut::task<> {
                co_await ev.wait();
                ++w;
            }(e, woken)));
        co_await ut::sleep_for(1ms);
        EXPECT_EQ(woken.load(), 0);
        EXPECT_FALSE(e.is_set());
        e.set();
        for (auto& h : hs) co_await h;
        co_await e.wait();  // still set: completes at once
        set_after = e.is_set();
        e.clear();
        cleared = e.is_set();
        auto r = co_await ut::move_on_after(2ms, e.wait());
        EXPECT_FALSE(r) << "wait on a cleared event completed";
    }());
    EXPECT_EQ(woken.load(), 10);
    EXPECT_TRUE(set_after);
    EXPECT_FALSE(cleared);
}

TEST_P(SyncTest, ConditionVariableProducerConsumer) {
    std::vector<int> consumed;
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        ut::condition_variable cv;
        std::vector<int> queue;
        bool done = false;
        auto consumer = ut::spawn([](ut::mutex& mx, ut::condition_variable& c, std::vector<int>& q,
                                     bool& d, std::vector<int>& out) -> ut::task<> {
            auto g = co_await mx.lock();
            for (;;) {
                co_await c.wait(g, [&] { return !q.empty() || d; });
                EXPECT_TRUE(g.owns_lock());
                if (q.empty() && d) co_return;
                out.insert(out.end(), q.begin(), q.end());
                q.clear();
            }
        }(m, cv, queue, done, consumed));
        for (int i = 0; i < 50; ++i) {
            {
                auto g = co_await m.lock();
                queue.push_back(i);
            }
            cv.notify_one();
            if (i % 7 == 0) co_await ut::sleep_for(100us);
        }
        {
            auto g = co_await m.lock();
            done = true;
        }
        cv.notify_all();
        co_await consumer;
    }());
    std::vector<int> expected(50);
    for (int i = 0; i < 50; ++i) expected[i] = i;
    EXPECT_EQ(consumed, expected);
}

TEST_P(SyncTest, ConditionVariableNotifyAllWakesEveryWaiter) {
    int woken = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        ut::condition_variable cv;
        bool go = false;              // go and woken: under the mutex
        std::atomic<int> waiting{0};  // read by main without it
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(5);
        for (int i = 0; i < 5; ++i)
            hs.push_back(ut::spawn([](ut::mutex& mx, ut::condition_variable& c, bool& g,
                                      std::atomic<int>& wt, int& w) -> ut::task<> {
                auto lk = co_await mx.lock();
                ++wt;
                co_await c.wait(lk, [&] { return g; });
                ++w;
            }(m, cv, go, waiting, woken)));
        co_await yield_until([&] { return waiting >= 5; }, "waiting >= 5");
        {
            auto lk = co_await m.lock();
            go = true;
        }
        cv.notify_all();
        for (auto& h : hs) co_await h;
    }());
    EXPECT_EQ(woken, 5);
}

TEST_P(SyncTest, ConditionVariableWaitWithoutLockThrows) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        ut::condition_variable cv;
        ut::mutex::lock_guard empty;
        try {
            co_await cv.wait(empty);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
    }());
    EXPECT_TRUE(threw);
}

TEST_P(SyncTest, WaitQueueWakeOneAndWakeAll) {
    bool wake_empty = true;
    std::size_t woke_all = 0;
    std::atomic<int> woken{0};
    run_on_backend([&]() -> ut::task<> {
        ut::wait_queue q;
        shared_log<int> waiting;
        wake_empty = q.wake_one();
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(4);
        for (int i = 0; i < 4; ++i)
            hs.push_back(ut::spawn(
                [](ut::wait_queue& wq, shared_log<int>& wt, std::atomic<int>& w) -> ut::task<> {
                    co_await wt.queued(wq.wait(), 0);
                    ++w;
                }(q, waiting, woken)));
        co_await yield_until([&] { return waiting.size() >= 4; }, "waiting.size() >= 4");
        EXPECT_TRUE(q.wake_one());
        // The woken one records itself; the other three stay parked.
        co_await yield_until([&] { return woken.load() >= 1; }, "woken >= 1");
        co_await ut::sleep_for(1ms);
        EXPECT_EQ(woken.load(), 1);
        woke_all = q.wake_all();
        EXPECT_TRUE(q.empty());
        for (auto& h : hs) co_await h;
    }());
    EXPECT_FALSE(wake_empty);
    EXPECT_EQ(woke_all, 3u);
    EXPECT_EQ(woken.load(), 4);
}

TEST_P(SyncTest, SemaphoreNegativeInitialThrows) {
    EXPECT_THROW(ut::semaphore(-1), std::invalid_argument);
    EXPECT_NO_THROW(ut::semaphore(0));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SyncTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, SyncTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
