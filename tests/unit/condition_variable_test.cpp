// Unit tests for condition_variable: producer/consumer with a predicate,
// notify_one vs notify_all, the unlock-while-waiting and relock-before-return
// contract (also when the wait is cancelled), and argument checking.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <deque>
#include <stdexcept>
#include <vector>

namespace {

namespace ut = uthreads;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

struct shared_state {
    ut::mutex m;
    ut::condition_variable cv;
    int woken = 0;
    bool go = false;
};

// Waits once (no predicate), then counts itself as woken.
ut::task<> wait_once(shared_state& st) {
    auto g = co_await st.m.lock();
    co_await st.cv.wait(g);
    EXPECT_TRUE(g.owns_lock()) << "wait must return with the lock held";
    EXPECT_TRUE(st.m.is_locked());
    ++st.woken;
}

TEST(ConditionVariableTest, ProducerConsumerWithPredicate) {
    constexpr int items = 200;
    std::vector<int> received;
    ut::run(
        [&]() -> ut::task<> {
            ut::mutex m;
            ut::condition_variable cv;
            std::deque<int> queue;
            bool finished = false;
            auto consumer = [](ut::mutex& m, ut::condition_variable& cv, std::deque<int>& q,
                               bool& fin, std::vector<int>& out) -> ut::task<> {
                for (;;) {
                    auto g = co_await m.lock();
                    co_await cv.wait(g, [&] { return !q.empty() || fin; });
                    EXPECT_TRUE(g.owns_lock());
                    if (q.empty()) co_return;  // finished and drained
                    out.push_back(q.front());
                    q.pop_front();
                }
            };
            auto producer = [](ut::mutex& m, ut::condition_variable& cv, std::deque<int>& q,
                               bool& fin) -> ut::task<> {
                for (int i = 0; i < items; ++i) {
                    {
                        auto g = co_await m.lock();
                        q.push_back(i);
                    }
                    cv.notify_one();
                    if (i % 7 == 0) co_await ut::yield_now();
                }
                {
                    auto g = co_await m.lock();
                    fin = true;
                }
                cv.notify_all();
            };
            auto c = ut::spawn(consumer(m, cv, queue, finished, received));
            auto p = ut::spawn(producer(m, cv, queue, finished));
            co_await p;
            co_await c;
            EXPECT_FALSE(m.is_locked());
        }(),
        epoll());
    ASSERT_EQ(received.size(), static_cast<std::size_t>(items));
    for (int i = 0; i < items; ++i) EXPECT_EQ(received[i], i);
}

TEST(ConditionVariableTest, WaitReleasesTheMutexWhileWaiting) {
    bool could_lock_while_waiting = false;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            auto h = ut::spawn(wait_once(st));
            co_await yield_times(3);
            EXPECT_FALSE(st.m.is_locked());
            {
                auto g = st.m.try_lock();
                could_lock_while_waiting = g.owns_lock();
            }
            st.cv.notify_one();
            co_await h;
        }(),
        epoll());
    EXPECT_TRUE(could_lock_while_waiting);
}

TEST(ConditionVariableTest, WokenWaiterWaitsForTheMutex) {
    // A notified waiter must re-acquire the mutex before wait() returns.
    bool returned_while_held = true;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            auto h = ut::spawn(wait_once(st));
            co_await yield_times(3);
            auto g = co_await st.m.lock();
            st.cv.notify_one();
            co_await yield_times(5);
            returned_while_held = st.woken != 0;
            g.unlock();
            co_await h;
            EXPECT_EQ(st.woken, 1);
        }(),
        epoll());
    EXPECT_FALSE(returned_while_held);
}

TEST(ConditionVariableTest, NotifyOneWakesExactlyOneAndNotifyAllWakesTheRest) {
    int after_one = -1, after_all = -1;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 4; ++i) hs.push_back(ut::spawn(wait_once(st)));
            co_await yield_times(5);
            EXPECT_EQ(st.woken, 0);
            st.cv.notify_one();
            co_await yield_times(10);
            after_one = st.woken;
            st.cv.notify_all();
            for (auto& h : hs) co_await h;
            after_all = st.woken;
        }(),
        epoll());
    EXPECT_EQ(after_one, 1);
    EXPECT_EQ(after_all, 4);
}

TEST(ConditionVariableTest, NotifyWithoutWaitersIsNotRemembered) {
    int woken_early = -1;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            st.cv.notify_one();
            st.cv.notify_all();
            auto h = ut::spawn(wait_once(st));
            co_await yield_times(5);
            woken_early = st.woken;
            st.cv.notify_one();
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(woken_early, 0);
}

TEST(ConditionVariableTest, PredicateIsRecheckedAfterSpuriousNotify) {
    bool returned_early = true;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            auto waiter = [](shared_state& st) -> ut::task<> {
                auto g = co_await st.m.lock();
                co_await st.cv.wait(g, [&] { return st.go; });
                EXPECT_TRUE(st.go);
                ++st.woken;
            };
            auto h = ut::spawn(waiter(st));
            co_await yield_times(3);
            st.cv.notify_all();  // predicate still false
            co_await yield_times(5);
            returned_early = st.woken != 0;
            {
                auto g = co_await st.m.lock();
                st.go = true;
            }
            st.cv.notify_all();
            co_await h;
        }(),
        epoll());
    EXPECT_FALSE(returned_early);
}

TEST(ConditionVariableTest, PredicateAlreadyTrueDoesNotWait) {
    bool done = false;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            st.go = true;
            auto g = co_await st.m.lock();
            co_await st.cv.wait(g, [&] { return st.go; });
            done = g.owns_lock();
        }(),
        epoll());
    EXPECT_TRUE(done);
}

TEST(ConditionVariableTest, GuardOwnsTheMutexAfterACancelledWait) {
    bool saw_cancelled = false;
    bool owned_after_cancel = false;
    bool finished_before_unlock = true;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            auto waiter = [](shared_state& st, bool& saw, bool& owned) -> ut::task<> {
                auto g = co_await st.m.lock();
                try {
                    co_await st.cv.wait(g);
                } catch (const ut::cancelled&) {
                    saw = true;
                    owned = g.owns_lock() && g.get() == &st.m && st.m.is_locked();
                    throw;
                }
            };
            auto h = ut::spawn(waiter(st, saw_cancelled, owned_after_cancel));
            co_await yield_times(3);
            // Hold the mutex while cancelling: the cancelled wait has to wait for
            // it before it can return.
            auto g = co_await st.m.lock();
            h.cancel();
            co_await yield_times(5);
            finished_before_unlock = h.done();
            g.unlock();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
            EXPECT_FALSE(st.m.is_locked()) << "the waiter's guard released the mutex on unwind";
        }(),
        epoll());
    EXPECT_TRUE(saw_cancelled);
    EXPECT_TRUE(owned_after_cancel);
    EXPECT_FALSE(finished_before_unlock) << "a cancelled wait returned without the mutex";
}

TEST(ConditionVariableTest, GuardOwnsTheMutexAfterACancelledWaitWithFreeMutex) {
    bool owned_after_cancel = false;
    ut::run(
        [&]() -> ut::task<> {
            shared_state st;
            auto waiter = [](shared_state& st, bool& owned) -> ut::task<> {
                auto g = co_await st.m.lock();
                try {
                    co_await st.cv.wait(g, [] { return false; });
                } catch (const ut::cancelled&) {
                    owned = g.owns_lock() && st.m.is_locked();
                    throw;
                }
            };
            auto h = ut::spawn(waiter(st, owned_after_cancel));
            co_await yield_times(3);
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
            EXPECT_FALSE(st.m.is_locked());
            // The cancelled waiter left the queue: a notification wakes nobody.
            st.cv.notify_one();
        }(),
        epoll());
    EXPECT_TRUE(owned_after_cancel);
}

TEST(ConditionVariableTest, WaitWithoutOwnedLockThrowsInvalidArgument) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::condition_variable cv;
            ut::mutex::lock_guard empty;
            try {
                co_await cv.wait(empty);
            } catch (const std::invalid_argument&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

}  // namespace
