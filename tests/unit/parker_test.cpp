// Unit and stress tests of the park/wake protocol (detail/parker.hpp) with real
// threads. The model-checked tests (parker_model_test.cpp) cover every small
// interleaving; this one runs the production instantiation with real sleeps.
//
// The stress test never relies on timing: after each round of production it
// waits until the pool is *quiescent* (every worker asleep with no wake pending;
// with producers finished nothing can wake them any more) and then checks that
// the queue is empty. A lost wake-up shows up as a quiescent pool with items
// left: a failure, not a hang. Honest caveat: the race windows are a few
// instructions wide, and in trials this stress test did not catch a worker that
// skips the re-check; the model checker does, every time. This test is here for
// the real memory orders and for TSan.
#include <uthreads/detail/parker.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

namespace detail = uthreads::detail;

using parker = detail::parker<>;

TEST(ParkerTest, StartsWithEveryWorkerRunning) {
    parker p(3);
    EXPECT_EQ(p.workers(), 3u);
    EXPECT_EQ(p.idle_estimate(), 0u);
    for (std::size_t w = 0; w < 3; ++w) EXPECT_EQ(p.state_of(w), parker::state::running);
    EXPECT_EQ(p.notify_one(), parker::none);  // nobody to wake
}

TEST(ParkerTest, NotifyClaimsAParkedWorkerOnce) {
    parker p(2);
    p.prepare_park(1);
    EXPECT_EQ(p.state_of(1), parker::state::parked);
    EXPECT_EQ(p.idle_estimate(), 1u);
    EXPECT_EQ(p.notify_one(), 1u);
    EXPECT_EQ(p.state_of(1), parker::state::notified);
    EXPECT_EQ(p.idle_estimate(), 0u);
    EXPECT_EQ(p.notify_one(), parker::none);  // already claimed
    EXPECT_TRUE(p.finish_park(1));            // it was notified
    EXPECT_EQ(p.state_of(1), parker::state::running);
    EXPECT_EQ(p.idle_estimate(), 0u);
}

TEST(ParkerTest, UnclaimedWorkerLeavesByItself) {
    parker p(2);
    p.prepare_park(0);
    p.prepare_park(1);
    EXPECT_EQ(p.idle_estimate(), 2u);
    EXPECT_FALSE(p.finish_park(0));  // e.g. its re-check found work
    EXPECT_EQ(p.idle_estimate(), 1u);
    EXPECT_EQ(p.notify_one(), 1u);
    EXPECT_TRUE(p.finish_park(1));
    EXPECT_EQ(p.idle_estimate(), 0u);
}

TEST(ParkerTest, ParkSkipsTheSleepWhenTheRecheckFindsWork) {
    parker p(1);
    bool slept = false;
    EXPECT_FALSE(p.park(
        0, [] { return true; }, [&] { slept = true; }));
    EXPECT_FALSE(slept);
    EXPECT_EQ(p.state_of(0), parker::state::running);
    EXPECT_EQ(p.idle_estimate(), 0u);
}

TEST(ParkerTest, ParkSleepsAndReportsTheClaim) {
    parker p(1);
    bool slept = false;
    // The "backend" is woken by a notify that arrives while the worker sleeps.
    EXPECT_TRUE(p.park(
        0, [] { return false; },
        [&] {
            slept = true;
            EXPECT_EQ(p.notify_one(), 0u);
        }));
    EXPECT_TRUE(slept);
    EXPECT_EQ(p.state_of(0), parker::state::running);
}

// A worker's backend, reduced to what the protocol needs: wake() sets a pending
// flag; run_once() sleeps until one is pending and consumes it.
struct fake_backend {
    std::mutex mu;
    std::condition_variable cv;
    bool pending = false;
    bool sleeping = false;

    void wake() {
        std::lock_guard lk(mu);
        pending = true;
        cv.notify_one();
    }
    void run_once() {
        std::unique_lock lk(mu);
        sleeping = true;
        cv.wait(lk, [&] { return pending; });
        pending = false;
        sleeping = false;
    }
    bool asleep_for_good() {
        std::lock_guard lk(mu);
        return sleeping && !pending;
    }
};

TEST(ParkerTest, StressNoItemIsLeftWhileEveryWorkerSleeps) {
    constexpr std::size_t workers = 3;
    constexpr unsigned producers = 2;
    constexpr int rounds = 300;
    constexpr int items_per_producer = 50;

    parker p(workers);
    std::vector<std::unique_ptr<fake_backend>> backends;
    for (std::size_t w = 0; w < workers; ++w) backends.push_back(std::make_unique<fake_backend>());
    std::atomic<std::int64_t> queued{0};  // the shared queue, reduced to its length
    std::atomic<std::int64_t> consumed{0};
    std::atomic<bool> stop{false};

    auto try_take = [&] {
        std::int64_t n = queued.load(std::memory_order_relaxed);
        while (n > 0 && !queued.compare_exchange_weak(n, n - 1, std::memory_order_acquire)) {
        }
        return n > 0;
    };

    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < workers; ++w)
        threads.emplace_back([&, w] {
            while (!stop.load(std::memory_order_acquire)) {
                if (try_take()) {
                    consumed.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                p.park(
                    w, [&] { return queued.load(std::memory_order_relaxed) > 0; },
                    [&] { backends[w]->run_once(); });
            }
        });

    std::int64_t produced = 0;
    for (int round = 0; round < rounds; ++round) {
        std::vector<std::thread> prods;
        for (unsigned i = 0; i < producers; ++i)
            prods.emplace_back([&] {
                for (int k = 0; k < items_per_producer; ++k) {
                    queued.fetch_add(1, std::memory_order_release);
                    const std::size_t w = p.notify_one();
                    if (w != parker::none) backends[w]->wake();
                }
            });
        for (auto& t : prods) t.join();
        produced += std::int64_t{producers} * items_per_producer;

        // Wait for quiescence. Nothing but a producer wakes a worker, so once all
        // are asleep with nothing pending they stay asleep: the state is final.
        for (;;) {
            bool all = true;
            for (auto& b : backends) all = all && b->asleep_for_good();
            if (all) break;
            std::this_thread::yield();
        }
        ASSERT_EQ(queued.load(), 0) << "lost wake-up in round " << round;
        ASSERT_EQ(consumed.load(), produced);
        ASSERT_EQ(p.idle_estimate(), workers);
    }

    stop.store(true, std::memory_order_release);
    for (auto& b : backends) b->wake();
    for (auto& t : threads) t.join();
}

}  // namespace
