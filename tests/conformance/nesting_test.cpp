// Nested calls (`co_await task`) and immediately-ready awaits: results,
// exceptions, and no OS-stack growth (DESIGN.md §3 "Nested calls never grow the
// OS stack", "Exceptions propagate").

#include "conformance.hpp"

#include <stdexcept>
#include <string>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class NestingTest : public backend_test {};  // NOLINT(readability-identifier-naming)

constexpr int million = 1'000'000;

// Each level is a real coroutine frame awaiting the next: a chain `n` deep.
ut::task<int> depth(int n) {
    if (n == 0) co_return 0;
    int below = co_await depth(n - 1);
    co_return below + 1;
}

ut::task<long long> sum_down(int n) {
    if (n == 0) co_return 0;
    co_return n + co_await sum_down(n - 1);
}

ut::task<int> ready_value(int v) {
    co_return v;
}

ut::task<void> throw_at_depth(int n) {
    if (n == 0) throw std::out_of_range("thrown at the bottom");
    co_await throw_at_depth(n - 1);
}

ut::task<int> throw_through_values(int n) {
    if (n == 0) throw std::runtime_error("bottom:" + std::to_string(n));
    int v = co_await throw_through_values(n - 1);
    co_return v + 1;  // never reached
}

TEST_P(NestingTest, MillionDeepChainReturnsCorrectResult) {
    int result = run_on_backend(depth(million));
    EXPECT_EQ(result, million);
}

TEST_P(NestingTest, MillionDeepChainWithSumReturnsCorrectResult) {
    long long result = run_on_backend(sum_down(million));
    EXPECT_EQ(result, static_cast<long long>(million) * (million + 1) / 2);
}

TEST_P(NestingTest, MillionDeepChainInsideSpawnedMicrothread) {
    int result = run_on_backend([]() -> ut::task<int> {
        auto h = ut::spawn(depth(million), "deep");
        co_return co_await h;
    }());
    EXPECT_EQ(result, million);
}

TEST_P(NestingTest, MillionSynchronouslyCompletingCallsInALoop) {
    long long result = run_on_backend([]() -> ut::task<long long> {
        long long sum = 0;
        for (int i = 0; i < million; ++i) sum += co_await ready_value(i & 7);
        co_return sum;
    }());
    long long expected = 0;
    for (int i = 0; i < million; ++i) expected += i & 7;
    EXPECT_EQ(result, expected);
}

TEST_P(NestingTest, MillionReadyEventWaits) {
    int waits = run_on_backend([]() -> ut::task<int> {
        ut::event e;
        e.set();
        int n = 0;
        for (int i = 0; i < million; ++i) {
            co_await e.wait();
            ++n;
        }
        co_return n;
    }());
    EXPECT_EQ(waits, million);
}

TEST_P(NestingTest, MillionBufferedChannelRoundTrips) {
    long long sum = run_on_backend([]() -> ut::task<long long> {
        ut::channel<int> ch(1);
        long long s = 0;
        for (int i = 0; i < million; ++i) {
            co_await ch.send(i);
            std::optional<int> v = co_await ch.recv();
            if (!v || *v != i) {
                ADD_FAILURE() << "round trip " << i << " received " << (v ? *v : -1);
                co_return -1;
            }
            s += *v;
        }
        co_return s;
    }());
    EXPECT_EQ(sum, static_cast<long long>(million) * (million - 1) / 2);
}

TEST_P(NestingTest, MillionUncontendedSemaphoreAcquires) {
    std::ptrdiff_t left = -1;
    int acquired = run_on_backend([&]() -> ut::task<int> {
        ut::semaphore s(1);
        int n = 0;
        for (int i = 0; i < million; ++i) {
            co_await s.acquire();
            ++n;
            s.release();
        }
        left = s.available();
        co_return n;
    }());
    EXPECT_EQ(acquired, million);
    EXPECT_EQ(left, 1);
}

TEST_P(NestingTest, MillionUncontendedMutexLocks) {
    int locked = run_on_backend([]() -> ut::task<int> {
        ut::mutex m;
        int n = 0;
        for (int i = 0; i < million; ++i) {
            auto g = co_await m.lock();
            if (!g.owns_lock() || !m.is_locked()) co_return -1;
            ++n;
        }
        co_return m.is_locked() ? -2 : n;
    }());
    EXPECT_EQ(locked, million);
}

TEST_P(NestingTest, ExceptionThroughThousandLevels) {
    std::string caught;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await throw_at_depth(1000);
        } catch (const std::out_of_range& e) {
            caught = e.what();
        }
    }());
    EXPECT_EQ(caught, "thrown at the bottom");
}

TEST_P(NestingTest, ExceptionThroughValueReturningLevels) {
    std::string caught;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await throw_through_values(1000);
            ADD_FAILURE() << "no exception";
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
    }());
    EXPECT_EQ(caught, "bottom:0");
}

TEST_P(NestingTest, ExceptionEscapingMainIsRethrownByRun) {
    EXPECT_THROW(run_on_backend(throw_at_depth(1000)), std::out_of_range);
}

TEST_P(NestingTest, ExceptionCaughtMidChainDoesNotDisturbCaller) {
    int result = run_on_backend([]() -> ut::task<int> {
        int recovered = 0;
        for (int i = 0; i < 100; ++i) {
            try {
                co_await throw_at_depth(i);
            } catch (const std::out_of_range&) {
                ++recovered;
            }
        }
        // The stack of nested calls is intact after all those unwinds.
        co_return recovered + co_await depth(1000);
    }());
    EXPECT_EQ(result, 1100);
}

TEST_P(NestingTest, NestedCallSeesValueOfSuspendingCallee) {
    int result = run_on_backend([]() -> ut::task<int> {
        auto callee = []() -> ut::task<int> {
            co_await ut::sleep_for(1ms);
            co_await ut::yield_now();
            co_return 41;
        };
        int v = co_await callee();
        co_return v + 1;
    }());
    EXPECT_EQ(result, 42);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, NestingTest,
                         ::testing::ValuesIn(suite_params()), backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, NestingTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
