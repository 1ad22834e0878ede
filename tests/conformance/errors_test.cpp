// Bad input and misuse (DESIGN.md §3 "Errors are values you can read"):
// unknown backend, no runtime, moved-from tasks, double joins, closed channels,
// negative durations.

#include "conformance.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class ErrorsTest : public backend_test {};  // NOLINT(readability-identifier-naming)

ut::task<int> answer() {
    co_return 42;
}
ut::task<void> nothing() {
    co_return;
}

/// Awaits `make()` and reports whether it threw std::logic_error.
template <class F>
ut::task<bool> throws_logic_error(F make) {
    try {
        co_await make();
    } catch (const std::logic_error&) {
        co_return true;
    }
    co_return false;
}

TEST_P(ErrorsTest, UnknownBackendNameListsAvailableOnes) {
    std::string what;
    try {
        ut::run(nothing(), ut::options{.backend = backend() + "-no-such-backend"});
        ADD_FAILURE() << "run() accepted an unknown backend";
    } catch (const std::invalid_argument& e) {
        what = e.what();
    }
    ASSERT_FALSE(what.empty());
    for (const auto& name : ut::available_backends())
        EXPECT_NE(what.find(name), std::string::npos) << "'" << what << "' does not list " << name;
    EXPECT_NE(what.find(backend() + "-no-such-backend"), std::string::npos)
        << "'" << what << "' does not name the rejected backend";
    expect_no_leaks("after run() rejected its options");
}

TEST_P(ErrorsTest, UnknownBackendThroughLowlevelFactory) {
    EXPECT_THROW(ut::lowlevel::make_backend("no-such-backend"), std::invalid_argument);
    auto b = ut::lowlevel::make_backend(backend());
    ASSERT_TRUE(b);
    EXPECT_EQ(b->name(), backend());
}

TEST_P(ErrorsTest, AvailableBackendsListsEachOnceAndThisOne) {
    auto names = ut::available_backends();
    int found = 0;
    for (const auto& n : names) found += n == backend();
    EXPECT_EQ(found, 1);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end())
        << "duplicate backend name";
}

TEST_P(ErrorsTest, SpawnWithoutRuntimeThrowsLogicError) {
    EXPECT_THROW(ut::spawn(answer()), std::logic_error);
    EXPECT_THROW(ut::spawn(nothing(), "named"), std::logic_error);
}

TEST_P(ErrorsTest, RuntimeOperationsOutsideRuntimeThrowLogicError) {
    EXPECT_THROW((void)ut::yield_now(), std::logic_error);
    EXPECT_THROW((void)ut::sleep_for(1ms), std::logic_error);
    EXPECT_THROW((void)ut::sleep_until(ut::clock::now()), std::logic_error);
    EXPECT_THROW((void)ut::current_backend(), std::logic_error);
}

TEST_P(ErrorsTest, NowOutsideRuntimeIsSteadyClock) {
    auto before = ut::clock::now();
    auto t = ut::now();
    auto after = ut::clock::now();
    EXPECT_LE(before, t);
    EXPECT_LE(t, after);
}

TEST_P(ErrorsTest, NestedRunThrowsLogicError) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        try {
            ut::run(nothing(), ut::options{.backend = backend()});
        } catch (const std::logic_error&) {
            threw = true;
        }
        co_return;
    }());
    EXPECT_TRUE(threw);
}

TEST_P(ErrorsTest, RunOfEmptyTaskThrowsLogicError) {
    EXPECT_THROW(ut::run(ut::task<int>{}, backend_options()), std::logic_error);
}

TEST_P(ErrorsTest, AwaitingMovedFromTaskThrowsLogicError) {
    bool threw = false;
    int moved_to = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::task<int> t = answer();
        ut::task<int> u = std::move(t);
        try {
            co_await t;  // NOLINT(bugprone-use-after-move): awaiting a moved-from task is the test
        } catch (const std::logic_error&) {
            threw = true;
        }
        moved_to = co_await u;
    }());
    EXPECT_TRUE(threw);
    EXPECT_EQ(moved_to, 42);
}

TEST_P(ErrorsTest, AwaitingTaskTwiceThrowsLogicError) {
    bool threw = false;
    int first = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::task<int> t = answer();
        first = co_await t;
        try {
            co_await t;
        } catch (const std::logic_error&) {
            threw = true;
        }
    }());
    EXPECT_EQ(first, 42);
    EXPECT_TRUE(threw);
}

TEST_P(ErrorsTest, DefaultConstructedTaskThrowsLogicError) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        threw = co_await throws_logic_error([] { return ut::task<void>{}; });
    }());
    EXPECT_TRUE(threw);
}

TEST_P(ErrorsTest, SpawningEmptyTaskThrowsLogicError) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        try {
            ut::task<int> t = answer();
            ut::task<int> u = std::move(t);
            // NOLINTNEXTLINE(bugprone-use-after-move): spawning a moved-from task is the test
            auto h = ut::spawn(std::move(t));
        } catch (const std::logic_error&) {
            threw = true;
        }
        co_return;
    }());
    EXPECT_TRUE(threw);
}

TEST_P(ErrorsTest, JoiningHandleTwiceThrowsLogicError) {
    bool threw = false;
    int first = 0;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn(answer());
        first = co_await h;
        try {
            co_await h;
        } catch (const std::logic_error&) {
            threw = true;
        }
    }());
    EXPECT_EQ(first, 42);
    EXPECT_TRUE(threw);
}

TEST_P(ErrorsTest, JoiningFailedHandleTwiceThrowsLogicErrorSecondTime) {
    int runtime_errors = 0, logic_errors = 0;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn([]() -> ut::task<> {
            co_await ut::yield_now();
            throw std::runtime_error("once");
        }());
        for (int i = 0; i < 2; ++i) {
            try {
                co_await h;
            } catch (const std::logic_error&) {
                ++logic_errors;
            } catch (const std::runtime_error&) {
                ++runtime_errors;
            }
        }
    }());
    EXPECT_EQ(runtime_errors, 1);
    EXPECT_EQ(logic_errors, 1);
}

TEST_P(ErrorsTest, EmptyJoinHandleRejectsUse) {
    ut::join_handle<int> empty;
    EXPECT_ANY_THROW((void)empty.done());
    EXPECT_ANY_THROW(empty.cancel());
    EXPECT_ANY_THROW((void)empty.id());
    EXPECT_NO_THROW(empty.detach());
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        ut::join_handle<int> e;
        try {
            co_await e;
        } catch (const std::exception&) {
            threw = true;
        }
    }());
    EXPECT_TRUE(threw);
}

TEST_P(ErrorsTest, ChannelSendAfterCloseThrowsChannelClosed) {
    int closed = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(4);
        ch.close();
        try {
            co_await ch.send(1);
        } catch (const ut::channel_closed&) {
            ++closed;
        }
        try {
            ch.try_send(1);
        } catch (const ut::channel_closed&) {
            ++closed;
        }
    }());
    EXPECT_EQ(closed, 2);
}

TEST_P(ErrorsTest, NegativeSleepThrowsInvalidArgumentNamingTheArgument) {
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::sleep_for(-1ms);
        } catch (const std::invalid_argument& e) {
            what = e.what();
        }
    }());
    EXPECT_NE(what.find("sleep_for"), std::string::npos)
        << "message '" << what << "' does not name sleep_for";
}

TEST_P(ErrorsTest, NegativeChannelCapacityAndSemaphoreCountThrow) {
    EXPECT_THROW(ut::channel<int>(-1), std::invalid_argument);
    EXPECT_THROW(ut::semaphore(-2), std::invalid_argument);
}

/// Sets $UTHREADS_BACKEND for its lifetime, then restores it.
class scoped_backend_env {
public:
    explicit scoped_backend_env(const std::string& value) {
        if (const char* old = std::getenv("UTHREADS_BACKEND")) saved_ = old;
        set(value);
    }
    ~scoped_backend_env() {
        if (saved_)
            ::setenv("UTHREADS_BACKEND", saved_->c_str(), 1);
        else
            ::unsetenv("UTHREADS_BACKEND");
    }
    void set(const std::string& value) { ::setenv("UTHREADS_BACKEND", value.c_str(), 1); }

private:
    std::optional<std::string> saved_;
};

TEST_P(ErrorsTest, BackendSelectedThroughEnvironment) {
    const std::string bogus = backend() + "-no-such-backend";
    std::string explicit_name, env_name;
    scoped_backend_env env(bogus);
    // An explicit options.backend wins over the environment.
    run_on_backend([&]() -> ut::task<> {
        explicit_name = std::string(ut::current_backend());
        co_return;
    }());
    // An empty options.backend defers to $UTHREADS_BACKEND...
    env.set(backend());
    ut::run([&]() -> ut::task<> {
        env_name = std::string(ut::current_backend());
        co_return;
    }());
    // ...which is validated like an explicit name.
    env.set(bogus);
    EXPECT_THROW(ut::run(nothing()), std::invalid_argument);
    EXPECT_EQ(explicit_name, backend());
    EXPECT_EQ(env_name, backend());
}

INSTANTIATE_TEST_SUITE_P(AllBackends, ErrorsTest,
                         ::testing::ValuesIn(suite_params()), backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, ErrorsTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
