// Unit tests for run(), options, backend selection, current_backend(), now(),
// yield_now and sleeping, and the end-of-run guarantees (leftover microthreads are
// cancelled and nothing is left alive).
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

/// Sets (or, for nullptr, unsets) UTHREADS_BACKEND for one test and restores
/// the previous value afterwards, so tests run under a CI-provided value too.
class backend_env {
public:
    explicit backend_env(const char* value) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value)
            ::setenv(name, value, 1);
        else
            ::unsetenv(name);
    }
    ~backend_env() {
        if (old_)
            ::setenv(name, old_->c_str(), 1);
        else
            ::unsetenv(name);
    }
    backend_env(const backend_env&) = delete;
    backend_env& operator=(const backend_env&) = delete;

private:
    static constexpr const char* name = "UTHREADS_BACKEND";
    std::optional<std::string> old_;
};

ut::task<std::string> backend_name() { co_return std::string(ut::current_backend()); }

TEST(RuntimeTest, RunReturnsValue) {
    EXPECT_EQ(ut::run([]() -> ut::task<int> { co_return 5; }(), epoll()), 5);
    EXPECT_EQ(ut::run([]() -> ut::task<std::string> { co_return "hi"; }(), epoll()), "hi");
}

TEST(RuntimeTest, RunWithDefaultOptionsWorks) {
    EXPECT_EQ(ut::run([]() -> ut::task<int> {
        co_await ut::yield_now();
        co_return 3;
    }()),
              3);
}

TEST(RuntimeTest, RunRethrows) {
    auto failing = []() -> ut::task<int> {
        co_await ut::yield_now();
        throw std::domain_error("from main");
    };
    try {
        ut::run(failing(), epoll());
        ADD_FAILURE() << "run did not rethrow";
    } catch (const std::domain_error& e) {
        EXPECT_STREQ(e.what(), "from main");
    }
}

TEST(RuntimeTest, RunRethrowsCancelledEscapingMain) {
    // `cancelled` is main's outcome like any other exception: run rethrows it,
    // it does not hang or swallow it.
    EXPECT_THROW(ut::run(
                     []() -> ut::task<> {
                         throw ut::cancelled{};
                         co_return;
                     }(),
                     epoll()),
                 ut::cancelled);
}

TEST(RuntimeTest, RunsAgainAfterAFailure) {
    EXPECT_THROW(ut::run(
                     []() -> ut::task<> {
                         throw std::runtime_error("x");
                         co_return;
                     }(),
                     epoll()),
                 std::runtime_error);
    EXPECT_EQ(ut::run([]() -> ut::task<int> { co_return 1; }(), epoll()), 1);
}

TEST(RuntimeTest, NestedRunThrowsLogicError) {
    bool threw = false;
    bool still_running = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                ut::run([]() -> ut::task<int> { co_return 1; }(), epoll());
            } catch (const std::logic_error&) {
                threw = true;
            }
            co_await ut::yield_now();  // the outer runtime is unharmed
            still_running = true;
        }(),
        epoll());
    EXPECT_TRUE(threw);
    EXPECT_TRUE(still_running);
}

TEST(RuntimeTest, MoreThanOneWorkerRunsMain) {
    bool ran = false;
    ut::options o = epoll();
    o.threads = 2;
    EXPECT_EQ(ut::run(
                  [&]() -> ut::task<int> {
                      ran = true;
                      co_return 7;
                  }(),
                  o),
              7);
    EXPECT_TRUE(ran);
}

TEST(RuntimeTest, ZeroThreadsMeansHardwareConcurrency) {
    ut::options o = epoll();
    o.threads = 0;
    EXPECT_EQ(ut::run([]() -> ut::task<int> { co_return 3; }(), o), 3);
}

TEST(RuntimeTest, AbsurdThreadCountIsRejected) {
    bool ran = false;
    ut::options o = epoll();
    o.threads = 100000;
    EXPECT_THROW(ut::run(
                     [&]() -> ut::task<> {
                         ran = true;
                         co_return;
                     }(),
                     o),
                 std::invalid_argument);
    EXPECT_FALSE(ran);
}

TEST(RuntimeTest, UnknownBackendThrowsInvalidArgumentListingAvailable) {
    const long long base = ut::lowlevel::live_frames();
    bool ran = false;
    try {
        ut::run(
            [&]() -> ut::task<> {
                ran = true;
                co_return;
            }(),
            {.backend = "no-such-backend"});
        ADD_FAILURE() << "unknown backend accepted";
    } catch (const std::invalid_argument& e) {
        std::string what = e.what();
        for (const std::string& name : ut::available_backends())
            EXPECT_NE(what.find(name), std::string::npos) << what << " should list " << name;
        EXPECT_NE(what.find("no-such-backend"), std::string::npos) << what;
    }
    EXPECT_FALSE(ran);
    EXPECT_EQ(ut::lowlevel::live_frames(), base) << "the rejected main task must be freed";
}

TEST(RuntimeTest, MakeBackendUnknownNameThrows) {
    EXPECT_THROW((void)ut::lowlevel::make_backend("no-such-backend"), std::invalid_argument);
    auto b = ut::lowlevel::make_backend("epoll");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->name(), "epoll");
}

TEST(RuntimeTest, AvailableBackendsHasEpollFirstAndSim) {
    std::vector<std::string> names = ut::available_backends();
    ASSERT_FALSE(names.empty());
    EXPECT_EQ(names.front(), "epoll");
    EXPECT_NE(std::find(names.begin(), names.end(), "sim"), names.end());
    // No duplicates.
    std::vector<std::string> sorted = names;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
}

TEST(RuntimeTest, EveryAvailableBackendRuns) {
    for (const std::string& name : ut::available_backends()) {
        std::string seen = ut::run(
            []() -> ut::task<std::string> {
                co_await ut::yield_now();
                co_await ut::sleep_for(1ms);
                co_return std::string(ut::current_backend());
            }(),
            {.backend = name});
        EXPECT_EQ(seen, name);
    }
}

TEST(RuntimeTest, CurrentBackendInsideRunIsTheChosenOne) {
    EXPECT_EQ(ut::run(backend_name(), {.backend = "epoll"}), "epoll");
    EXPECT_EQ(ut::run(backend_name(), {.backend = "sim"}), "sim");
}

TEST(RuntimeTest, CurrentBackendInSpawnedMicrothread) {
    std::string child_saw = ut::run(
        []() -> ut::task<std::string> {
            auto h = ut::spawn(backend_name());
            co_return co_await h;
        }(),
        {.backend = "sim"});
    EXPECT_EQ(child_saw, "sim");
}

TEST(RuntimeTest, CurrentBackendOutsideRunThrowsLogicError) {
    EXPECT_THROW((void)ut::current_backend(), std::logic_error);
    ut::run([]() -> ut::task<> { co_return; }(), epoll());
    EXPECT_THROW((void)ut::current_backend(), std::logic_error) << "after run returned";
}

TEST(RuntimeTest, EnvVarSelectsBackendWhenOptionIsEmpty) {
    backend_env env("sim");
    EXPECT_EQ(ut::run(backend_name()), "sim");
    EXPECT_EQ(ut::run(backend_name(), {.backend = ""}), "sim");
}

TEST(RuntimeTest, ExplicitBackendOverridesEnvVar) {
    backend_env env("sim");
    EXPECT_EQ(ut::run(backend_name(), {.backend = "epoll"}), "epoll");
}

TEST(RuntimeTest, DefaultBackendIsEpollWithoutEnvVar) {
    backend_env env(nullptr);
    EXPECT_EQ(ut::run(backend_name()), "epoll");
}

TEST(RuntimeTest, EmptyEnvVarMeansDefault) {
    backend_env env("");
    EXPECT_EQ(ut::run(backend_name()), "epoll");
}

TEST(RuntimeTest, UnknownBackendInEnvVarThrowsInvalidArgument) {
    backend_env env("no-such-backend");
    try {
        ut::run(backend_name());
        ADD_FAILURE() << "unknown backend from the environment accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("epoll"), std::string::npos) << e.what();
    }
}

TEST(RuntimeTest, NowIsMonotonic) {
    auto outside1 = ut::now();
    auto outside2 = ut::now();
    EXPECT_LE(outside1, outside2);
    ut::run(
        []() -> ut::task<> {
            auto prev = ut::now();
            for (int i = 0; i < 100; ++i) {
                if (i % 10 == 0)
                    co_await ut::sleep_for(100us);
                else
                    co_await ut::yield_now();
                auto t = ut::now();
                EXPECT_LE(prev, t);
                prev = t;
            }
        }(),
        epoll());
}

TEST(RuntimeTest, NowOnEpollIsRealTime) {
    auto before = ut::clock::now();
    auto inside = ut::run([]() -> ut::task<ut::clock::time_point> { co_return ut::now(); }(),
                          epoll());
    auto after = ut::clock::now();
    EXPECT_LE(before, inside);
    EXPECT_LE(inside, after);
}

TEST(RuntimeTest, SleepForNeverWakesEarly) {
    ut::run(
        []() -> ut::task<> {
            for (auto d : {1ms, 2ms, 3ms}) {
                auto start = ut::clock::now();
                co_await ut::sleep_for(d);
                EXPECT_GE(ut::clock::now() - start, d);
            }
        }(),
        epoll());
}

TEST(RuntimeTest, SleepUntilNeverWakesEarly) {
    ut::run(
        []() -> ut::task<> {
            auto deadline = ut::now() + 2ms;
            co_await ut::sleep_until(deadline);
            EXPECT_GE(ut::now(), deadline);
            // A deadline in the past completes without waiting.
            auto start = ut::clock::now();
            co_await ut::sleep_until(ut::now() - 1s);
            EXPECT_LT(ut::clock::now() - start, 1s);
        }(),
        epoll());
}

TEST(RuntimeTest, SleepForNegativeDurationThrowsInvalidArgument) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::sleep_for(-1ms);
            } catch (const std::invalid_argument&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

TEST(RuntimeTest, SleepersWakeInDeadlineOrder) {
    std::vector<int> order;
    ut::run(
        [&]() -> ut::task<> {
            auto sleeper = [](std::vector<int>& o, int ms) -> ut::task<> {
                co_await ut::sleep_for(std::chrono::milliseconds(ms));
                o.push_back(ms);
            };
            auto c = ut::spawn(sleeper(order, 3));
            auto a = ut::spawn(sleeper(order, 1));
            auto b = ut::spawn(sleeper(order, 2));
            co_await a;
            co_await b;
            co_await c;
        }(),
        epoll());
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(RuntimeTest, YieldNowRoundRobinsFifo) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            auto worker = [](std::vector<int>& l, int id) -> ut::task<> {
                for (int i = 0; i < 3; ++i) {
                    l.push_back(id);
                    co_await ut::yield_now();
                }
            };
            auto a = ut::spawn(worker(log, 1));
            auto b = ut::spawn(worker(log, 2));
            auto c = ut::spawn(worker(log, 3));
            co_await a;
            co_await b;
            co_await c;
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{1, 2, 3, 1, 2, 3, 1, 2, 3}));
}

TEST(RuntimeTest, YieldOutsideRunThrowsLogicError) {
    EXPECT_THROW((void)ut::yield_now(), std::logic_error);
    EXPECT_THROW((void)ut::sleep_for(1ms), std::logic_error);
}

TEST(RuntimeTest, LeftoverMicrothreadsAreCancelledWhenMainReturns) {
    const long long base = ut::lowlevel::live_frames();
    bool cancelled_seen = false;
    bool finished_normally = false;
    auto start = std::chrono::steady_clock::now();
    int v = ut::run(
        [&]() -> ut::task<int> {
            auto sleeper = [](bool& c, bool& f) -> ut::task<> {
                try {
                    co_await ut::sleep_for(10s);
                    f = true;
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            ut::spawn(sleeper(cancelled_seen, finished_normally), "leftover").detach();
            co_await ut::yield_now();
            co_return 11;
        }(),
        epoll());
    EXPECT_EQ(v, 11);
    EXPECT_TRUE(cancelled_seen);
    EXPECT_FALSE(finished_normally);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

TEST(RuntimeTest, LeftoverNeverStartedMicrothreadIsFreed) {
    const long long base = ut::lowlevel::live_frames();
    ut::run(
        []() -> ut::task<> {
            auto never = []() -> ut::task<> { co_await ut::sleep_for(10s); };
            ut::spawn(never()).detach();  // main returns before it ever runs
            co_return;
        }(),
        epoll());
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

TEST(RuntimeTest, LiveMicrothreadsCountsInsideRun) {
    long long during = -1;
    ut::run(
        [&]() -> ut::task<> {
            auto parked = [](ut::event& e) -> ut::task<> { co_await e.wait(); };
            ut::event e;
            auto a = ut::spawn(parked(e));
            auto b = ut::spawn(parked(e));
            co_await ut::yield_now();
            during = ut::lowlevel::live_microthreads();
            e.set();
            co_await a;
            co_await b;
        }(),
        epoll());
    EXPECT_EQ(during, 3) << "main plus two children";
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

TEST(RuntimeTest, BudgetForcesYieldInAlwaysReadyLoop) {
    // A loop over an always-set event completes at once every time, yet a
    // cooperative budget must let the other microthread run meanwhile.
    bool other_ran = false;
    bool loop_saw_other = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::event always;
            always.set();
            auto other = [](bool& r) -> ut::task<> {
                r = true;
                co_return;
            };
            auto h = ut::spawn(other(other_ran));
            for (int i = 0; i < 10'000 && !other_ran; ++i) co_await always.wait();
            loop_saw_other = other_ran;
            co_await h;
        }(),
        epoll());
    EXPECT_TRUE(loop_saw_other);
}

TEST(RuntimeTest, SimBackendVirtualClockJumpsOverLongSleeps) {
    // On "sim" a sleep with nothing else to do advances virtual time instantly.
    auto start = std::chrono::steady_clock::now();
    auto elapsed_virtual = ut::run(
        []() -> ut::task<ut::clock::duration> {
            auto t0 = ut::now();
            co_await ut::sleep_for(1h);
            co_return ut::now() - t0;
        }(),
        {.backend = "sim"});
    EXPECT_GE(elapsed_virtual, 1h);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
