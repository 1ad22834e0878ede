// signal_set, identical on every backend: real signals raised to this process
// (raise, kill, from another thread) reach the set, are queued while nobody
// waits, reach every set that lists them, survive a cancelled wait, and the
// process's previous disposition comes back exactly when the last set goes.
//
// These tests share one process with the rest of the suite: a set always
// exists before a signal is raised, and every set is gone (and the previous
// disposition restored) when a test ends, so SIGTERM never meets its default
// action.

#include "conformance.hpp"

#include <uthreads/signal.hpp>

#include <atomic>
#include <csignal>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace uthreads_conformance {
namespace {

class SignalTest : public backend_test {};  // NOLINT(readability-identifier-naming)

/// The disposition of `sig` right now.
struct sigaction query(int sig) {
    struct sigaction sa {};
    EXPECT_EQ(::sigaction(sig, nullptr, &sa), 0) << std::strerror(errno);
    return sa;
}

std::atomic<int> test_handler_calls{0};
void test_handler(int) {
    test_handler_calls.fetch_add(1, std::memory_order_relaxed);
}

/// Installs a known handler for `sig` for the scope of a test, then puts back
/// what was there before.
struct known_handler {
    int sig;
    struct sigaction before {};
    struct sigaction installed {};  // as the kernel reports it back
    explicit known_handler(int s)
        : sig(s) {
        struct sigaction sa {};
        sa.sa_handler = test_handler;
        sigemptyset(&sa.sa_mask);
        sigaddset(&sa.sa_mask, SIGHUP);
        sa.sa_flags = SA_NODEFER;
        EXPECT_EQ(::sigaction(sig, &sa, &before), 0) << std::strerror(errno);
        installed = query(sig);
        test_handler_calls = 0;
    }
    ~known_handler() { ::sigaction(sig, &before, nullptr); }

    /// True if `sa` is exactly the disposition installed: handler, flags, mask.
    bool is(const struct sigaction& sa) const {
        if (sa.sa_handler != installed.sa_handler || sa.sa_flags != installed.sa_flags)
            return false;
        for (int i = 1; i < NSIG; ++i)
            if (sigismember(&sa.sa_mask, i) != sigismember(&installed.sa_mask, i)) return false;
        return true;
    }
};

TEST_P(SignalTest, SigtermAndSigusr1RaisedToOurselvesAreDelivered) {
    std::vector<int> got;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set sigs{SIGTERM, SIGUSR1};
        // A waiter already parked when the signal arrives.
        auto waiter = ut::spawn(sigs.wait());
        for (int i = 0; i < 5; ++i) co_await ut::yield_now();
        EXPECT_EQ(::kill(::getpid(), SIGTERM), 0);
        got.push_back(co_await waiter);
        EXPECT_EQ(::raise(SIGUSR1), 0);
        got.push_back(co_await sigs.wait());
    }());
    EXPECT_EQ(got, (std::vector<int>{SIGTERM, SIGUSR1}));
    EXPECT_EQ(query(SIGTERM).sa_handler, SIG_DFL) << "SIGTERM's default action was not restored";
}

TEST_P(SignalTest, SignalRaisedBeforeWaitIsNotLost) {
    std::optional<int> before;
    int got = 0;
    std::optional<int> after;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set sigs{SIGUSR1};
        before = sigs.try_wait();
        EXPECT_EQ(::raise(SIGUSR1), 0);
        co_await ut::sleep_for(5ms);  // nobody waits while it arrives
        got = co_await sigs.wait();
        after = sigs.try_wait();
    }());
    EXPECT_FALSE(before.has_value());
    EXPECT_EQ(got, SIGUSR1);
    EXPECT_FALSE(after.has_value()) << "one delivery was returned twice";
}

TEST_P(SignalTest, EachDeliveryIsOneWaitInArrivalOrder) {
    std::vector<int> got;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set sigs{SIGUSR1, SIGUSR2};
        // raise() runs the handler before it returns, so these are three
        // separate deliveries (the kernel merges only a signal already pending).
        EXPECT_EQ(::raise(SIGUSR2), 0);
        EXPECT_EQ(::raise(SIGUSR1), 0);
        EXPECT_EQ(::raise(SIGUSR1), 0);
        for (int i = 0; i < 3; ++i) got.push_back(co_await sigs.wait());
        EXPECT_FALSE(sigs.try_wait().has_value());
    }());
    EXPECT_EQ(got, (std::vector<int>{SIGUSR2, SIGUSR1, SIGUSR1}));
}

TEST_P(SignalTest, TwoSetsForTheSameSignalBothSeeIt) {
    int a = 0, b = 0;
    std::optional<int> a_extra;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set first{SIGUSR1};
        ut::signal_set second{SIGUSR1, SIGUSR2};
        auto wa = ut::spawn(first.wait());
        auto wb = ut::spawn(second.wait());
        for (int i = 0; i < 5; ++i) co_await ut::yield_now();
        EXPECT_EQ(::raise(SIGUSR1), 0);
        a = co_await wa;
        b = co_await wb;
        EXPECT_EQ(::raise(SIGUSR2), 0);  // only `second` lists it
        EXPECT_EQ(co_await second.wait(), SIGUSR2);
        a_extra = first.try_wait();
    }());
    EXPECT_EQ(a, SIGUSR1);
    EXPECT_EQ(b, SIGUSR1);
    EXPECT_FALSE(a_extra.has_value());
}

TEST_P(SignalTest, DestroyingTheLastSetRestoresThePreviousDispositionExactly) {
    known_handler known(SIGUSR2);
    struct sigaction during {};
    struct sigaction after_first {};
    int got = 0;
    run_on_backend([&]() -> ut::task<> {
        std::optional<ut::signal_set> outer(ut::signal_set{SIGUSR2});
        {
            ut::signal_set inner{SIGUSR2, SIGUSR1};
            during = query(SIGUSR2);
            EXPECT_EQ(::raise(SIGUSR2), 0);
            got = co_await inner.wait();
        }
        // `outer` still lists SIGUSR2: our handler stays, and it got the delivery too.
        after_first = query(SIGUSR2);
        EXPECT_EQ(outer->try_wait(), std::optional<int>(SIGUSR2));
        outer.reset();
    }());
    EXPECT_EQ(got, SIGUSR2);
    EXPECT_NE(during.sa_handler, test_handler) << "the set did not install its handler";
    EXPECT_NE(after_first.sa_handler, test_handler) << "restored while a set still lists it";
    EXPECT_EQ(test_handler_calls.load(), 0) << "the previous handler ran while a set existed";

    struct sigaction now = query(SIGUSR2);
    EXPECT_EQ(now.sa_handler, test_handler);
    EXPECT_TRUE(known.is(now)) << "flags or mask differ from the previous disposition";
    EXPECT_TRUE(now.sa_flags & SA_NODEFER);
    EXPECT_FALSE(now.sa_flags & SA_RESTART);
    EXPECT_EQ(sigismember(&now.sa_mask, SIGHUP), 1);
    EXPECT_EQ(query(SIGUSR1).sa_handler, SIG_DFL);
    // And it is live again: the next delivery goes to it.
    EXPECT_EQ(::raise(SIGUSR2), 0);
    EXPECT_EQ(test_handler_calls.load(), 1);
}

TEST_P(SignalTest, CancelledWaitLosesNothing) {
    std::optional<int> timed_out;
    bool threw_timeout = false;
    bool waiter_cancelled = false;
    int got = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set sigs{SIGUSR1};
        timed_out = co_await ut::move_on_after(10ms, sigs.wait());
        try {
            (void)co_await ut::with_timeout(10ms, sigs.wait());
        } catch (const ut::timeout_error&) {
            threw_timeout = true;
        }
        auto waiter = ut::spawn(sigs.wait());
        for (int i = 0; i < 5; ++i) co_await ut::yield_now();
        waiter.cancel();
        waiter_cancelled = co_await join_expect_cancelled(waiter);
        // Delivered after three abandoned waits: still queued for the next one.
        EXPECT_EQ(::raise(SIGUSR1), 0);
        got = co_await sigs.wait();
    }());
    EXPECT_FALSE(timed_out.has_value());
    EXPECT_TRUE(threw_timeout);
    EXPECT_TRUE(waiter_cancelled);
    EXPECT_EQ(got, SIGUSR1);
}

TEST_P(SignalTest, SignalSentFromAnotherThreadIsDelivered) {
    int got = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set sigs{SIGUSR2};
        std::thread t([] { ::kill(::getpid(), SIGUSR2); });
        got = co_await sigs.wait();
        t.join();
    }());
    EXPECT_EQ(got, SIGUSR2);
}

TEST_P(SignalTest, SetCreatedOutsideTheRuntimeServesTwoRuns) {
    std::vector<int> got;
    {
        ut::signal_set sigs{SIGUSR1};
        for (int run = 0; run < 2; ++run) {
            EXPECT_EQ(::raise(SIGUSR1), 0);  // queued while no runtime exists
            ut::run(
                [&]() -> ut::task<> {
                    got.push_back(co_await sigs.wait());
                    // The second wait parks: the pipe is registered with this run's backend.
                    auto w = ut::spawn(sigs.wait());
                    for (int i = 0; i < 5; ++i) co_await ut::yield_now();
                    EXPECT_EQ(::raise(SIGUSR1), 0);
                    got.push_back(co_await w);
                }(),
                backend_options());
        }
    }
    EXPECT_EQ(got, (std::vector<int>(4, SIGUSR1)));
    EXPECT_EQ(query(SIGUSR1).sa_handler, SIG_DFL);
}

TEST_P(SignalTest, MovedSetKeepsItsQueue) {
    int got = 0;
    bool moved_from_threw = false;
    run_on_backend([&]() -> ut::task<> {
        ut::signal_set a{SIGUSR1};
        EXPECT_EQ(::raise(SIGUSR1), 0);
        ut::signal_set b(std::move(a));
        // Using the moved-from set is the point here.
        // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
        EXPECT_TRUE(a.signals().empty());
        EXPECT_EQ(b.signals(), std::vector<int>{SIGUSR1});
        got = co_await b.wait();
        try {
            (void)co_await a.wait();  // NOLINT(clang-analyzer-cplusplus.Move)
        } catch (const std::logic_error&) {
            moved_from_threw = true;
        }
    }());
    EXPECT_EQ(got, SIGUSR1);
    EXPECT_TRUE(moved_from_threw);
    EXPECT_EQ(query(SIGUSR1).sa_handler, SIG_DFL);
}

/// The message of the std::invalid_argument that constructing `make()` throws.
template <class F>
std::string invalid_argument_message(F make) {
    try {
        make();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no std::invalid_argument thrown)";
}

TEST_P(SignalTest, InvalidSignalsAreRejectedNamingTheSignal) {
    auto msg = [](std::initializer_list<int> sigs) {
        return invalid_argument_message([&] { ut::signal_set s(sigs); });
    };
    EXPECT_NE(msg({SIGKILL}).find("SIGKILL"), std::string::npos) << msg({SIGKILL});
    EXPECT_NE(msg({SIGUSR1, SIGSTOP}).find("SIGSTOP"), std::string::npos) << msg({SIGSTOP});
    EXPECT_NE(msg({SIGSEGV}).find("SIGSEGV"), std::string::npos) << msg({SIGSEGV});
    EXPECT_NE(msg({0}).find("signal 0"), std::string::npos) << msg({0});
    EXPECT_NE(msg({-3}).find("signal -3"), std::string::npos) << msg({-3});
    EXPECT_NE(msg({NSIG}).find("signal " + std::to_string(NSIG)), std::string::npos) << msg({NSIG});
    EXPECT_NE(msg({32}).find("signal 32"), std::string::npos) << msg({32});
    EXPECT_NE(msg({}).find("signals"), std::string::npos) << msg({});
    // A rejected set changed nothing: SIGUSR1 (listed before SIGSTOP) is untouched.
    EXPECT_EQ(query(SIGUSR1).sa_handler, SIG_DFL);
    // Realtime signals from SIGRTMIN on are fine.
    EXPECT_NO_THROW(ut::signal_set({SIGRTMIN, SIGRTMAX}));
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(AllBackends, SignalTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, SignalTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace uthreads_conformance
