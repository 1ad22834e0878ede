// runtime_handle: spawning onto a running runtime from other OS threads, and
// what happens when the runtime ends with spawns in flight (issue 5: "spawning
// works from any worker and from foreign threads").

#include "conformance.hpp"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace uthreads_conformance {
namespace {

class HandleTest : public backend_test {  // NOLINT(readability-identifier-naming)
protected:
    void SetUp() override {
        backend_test::SetUp();
        if (guest_mode())
            GTEST_SKIP() << "needs capability: runtime_handle (guest mode spawns from host "
                            "callbacks with guest_runtime::spawn instead)";
    }
};

ut::task<int> square(int v) {
    co_await ut::yield_now();
    co_return v * v;
}

ut::task<int> fail_with(std::string what) {
    co_await ut::yield_now();
    throw std::runtime_error(what);
}

// 4 foreign threads spawn 250 tasks each through a copied handle; main awaits
// every future: each value arrives exactly once.
TEST_P(HandleTest, ForeignThreadsSpawnAndMainAwaitsEveryResult) {
    constexpr int threads = 4, per_thread = 250;
    long long sum = run_on_backend([]() -> ut::task<long long> {
        ut::runtime_handle h = ut::this_runtime();
        EXPECT_TRUE(h.running());
        std::mutex mu;
        std::vector<ut::future<int>> futures;
        std::vector<std::thread> spawners;
        for (int t = 0; t < threads; ++t)
            spawners.emplace_back([&, h, t] {
                ut::runtime_handle mine = h;  // handles are copied across threads
                for (int i = 0; i < per_thread; ++i) {
                    ut::future<int> f = mine.spawn(square(t * per_thread + i));
                    std::lock_guard lk(mu);
                    futures.push_back(std::move(f));
                }
            });
        // Join the spawners from a blocking-pool thread, so this worker keeps
        // running the spawned microthreads meanwhile.
        co_await ut::to_thread([&] {
            for (std::thread& s : spawners) s.join();
        });
        long long total = 0;
        for (ut::future<int>& f : futures) total += co_await f;
        EXPECT_EQ(futures.size(), std::size_t{threads * per_thread});
        co_return total;
    }());
    long long want = 0;
    for (long long v = 0; v < threads * per_thread; ++v) want += v * v;
    EXPECT_EQ(sum, want);
}

TEST_P(HandleTest, ExceptionsReachTheFuture) {
    run_on_backend([]() -> ut::task<void> {
        ut::future<int> f;
        std::thread t([&, h = ut::this_runtime()]() mutable { f = h.spawn(fail_with("boom")); });
        co_await ut::to_thread([&] { t.join(); });
        try {
            co_await f;
            ADD_FAILURE() << "expected the task's exception";
        } catch (const std::runtime_error& e) {
            EXPECT_STREQ(e.what(), "boom");
        }
    }());
}

// After run() returned, spawn throws and running() is false; an empty handle
// throws too, naming the reason.
TEST_P(HandleTest, SpawnAfterTheRuntimeEndedThrows) {
    ut::runtime_handle h = run_on_backend([]() -> ut::task<ut::runtime_handle> {
        co_return ut::this_runtime();
    }());
    EXPECT_FALSE(h.running());
    try {
        (void)h.spawn(square(2));
        ADD_FAILURE() << "spawn on an ended runtime did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_NE(std::string(e.what()).find("the runtime has ended"), std::string::npos)
            << e.what();
    }
    ut::runtime_handle empty;
    EXPECT_FALSE(empty.running());
    EXPECT_THROW((void)empty.spawn(square(2)), std::logic_error);
    EXPECT_THROW(ut::this_runtime(), std::logic_error);  // outside a microthread
    expect_no_leaks("after spawns were refused");
}

// A foreign thread keeps spawning while main returns: every spawn either
// throws (the runtime had ended) or yields a future that completes with the
// value, `cancelled` (shut down while it ran) or logic_error (ended before it
// started). Nothing hangs or leaks; the futures are awaited by a second run.
TEST_P(HandleTest, SpawnsRacingTheEndOfTheRunAllResolve) {
    std::vector<ut::future<int>> futures;
    std::atomic<bool> started{false};
    int refused = 0;
    std::thread spawner;
    // ut::run, not run_on_backend: its leak check would run while the spawner
    // thread still holds the frames of tasks it made (counted per thread until
    // the thread ends). TearDown checks everything at the end.
    ut::run([&]() -> ut::task<void> {
        spawner = std::thread([&, h = ut::this_runtime()]() mutable {
            // Until the first refusal: the run ends once main saw `started`. The
            // time bound only turns a runtime that never ends into a failure.
            const auto give_up = wall_now() + 30s;
            for (int i = 0; wall_now() < give_up; ++i) {
                try {
                    futures.push_back(h.spawn(square(i % 1000)));
                } catch (const std::logic_error&) {
                    ++refused;
                    break;
                }
                if (i == 10) started = true;
            }
        });
        co_await ut::to_thread([&] {
            while (!started) std::this_thread::yield();
        });
    }(), backend_options());
    spawner.join();
    EXPECT_EQ(refused, 1) << "the spawner stops at the first refusal, after the run ended";
    int values = 0, cancelled = 0, not_started = 0;
    run_on_backend([&]() -> ut::task<void> {
        for (ut::future<int>& f : futures) {
            try {
                (void)co_await f;
                ++values;
            } catch (const ut::cancelled&) {
                ++cancelled;
            } catch (const std::logic_error& e) {
                EXPECT_NE(std::string(e.what()).find("ended before the task started"),
                          std::string::npos)
                    << e.what();
                ++not_started;
            }
        }
    }());
    EXPECT_EQ(values + cancelled + not_started, static_cast<int>(futures.size()));
    EXPECT_GE(futures.size(), 11u);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, HandleTest, ::testing::ValuesIn(suite_params()),
                         [](const auto& i) { return i.param; });
INSTANTIATE_TEST_SUITE_P(FourWorkers, HandleTest, ::testing::ValuesIn(threaded_params()),
                         [](const auto& i) { return i.param; });

}  // namespace
}  // namespace uthreads_conformance
