// Unit tests for spawn / join_handle: branching execution, joining values and
// exceptions, cancellation of a microthread through its handle, detaching, and
// the unhandled-exception handler that keeps failures of detached microthreads
// from being lost.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

/// One report received by the unhandled-exception handler.
struct report {
    std::string name;
    std::string what;
};

/// Installs a recording handler for the test's lifetime and restores the
/// previous one afterwards.
class recording_handler {
public:
    recording_handler() {
        old_ = ut::set_unhandled_exception_handler(
            [this](std::string_view name, std::exception_ptr e) {
                report r{std::string(name), "<not a std::exception>"};
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    r.what = ex.what();
                } catch (...) {
                }
                reports.push_back(std::move(r));
            });
    }
    ~recording_handler() { ut::set_unhandled_exception_handler(std::move(old_)); }
    recording_handler(const recording_handler&) = delete;
    recording_handler& operator=(const recording_handler&) = delete;

    std::vector<report> reports;

private:
    ut::unhandled_exception_handler old_;
};

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<int> times_two(int x) {
    co_await ut::yield_now();
    co_return x * 2;
}

ut::task<int> fail_after_yield(std::string msg) {
    co_await ut::yield_now();
    throw std::runtime_error(msg);
}

ut::task<> fail_at_once(std::string msg) {
    throw std::runtime_error(msg);
    co_return;
}

TEST(SpawnTest, JoinReturnsValue) {
    const long long base = ut::lowlevel::live_frames();
    int got = ut::run(
        []() -> ut::task<int> {
            auto h = ut::spawn(times_two(21), "doubler");
            co_return co_await h;
        }(),
        epoll());
    EXPECT_EQ(got, 42);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

TEST(SpawnTest, JoinVoidAndMoveOnlyValues) {
    bool ran = false;
    int value = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto set = [](bool& b) -> ut::task<> {
                b = true;
                co_return;
            };
            auto make = []() -> ut::task<std::unique_ptr<int>> {
                co_return std::make_unique<int>(9);
            };
            auto h1 = ut::spawn(set(ran));
            auto h2 = ut::spawn(make());
            co_await h1;
            auto p = co_await h2;
            value = p ? *p : -1;
        }(),
        epoll());
    EXPECT_TRUE(ran);
    EXPECT_EQ(value, 9);
}

TEST(SpawnTest, SpawnedMicrothreadStartsWhenTheCallerSuspends) {
    std::vector<std::string> log;
    ut::run(
        [&]() -> ut::task<> {
            auto child = [](std::vector<std::string>& l) -> ut::task<> {
                l.push_back("child");
                co_return;
            };
            auto h = ut::spawn(child(log));
            log.push_back("parent before suspend");
            EXPECT_FALSE(h.done());
            co_await ut::yield_now();
            log.push_back("parent after suspend");
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<std::string>{"parent before suspend", "child",
                                             "parent after suspend"}));
}

TEST(SpawnTest, DoneReflectsCompletion) {
    bool before = true, after = false, after_join = false;
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(times_two(1));
            before = h.done();
            co_await yield_times(5);
            after = h.done();
            EXPECT_EQ(co_await h, 2);
            after_join = h.done();
        }(),
        epoll());
    EXPECT_FALSE(before);
    EXPECT_TRUE(after);
    EXPECT_TRUE(after_join);
}

TEST(SpawnTest, IdsAreUniqueWithinARuntime) {
    ut::run(
        []() -> ut::task<> {
            auto a = ut::spawn(times_two(1));
            auto b = ut::spawn(times_two(2));
            auto c = ut::spawn(times_two(3));
            EXPECT_NE(a.id(), b.id());
            EXPECT_NE(b.id(), c.id());
            EXPECT_NE(a.id(), c.id());
            co_await a;
            co_await b;
            co_await c;
        }(),
        epoll());
}

TEST(SpawnTest, JoinRethrowsChildException) {
    std::string caught;
    recording_handler handler;
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(fail_after_yield("child failed"), "failing");
            try {
                co_await h;
            } catch (const std::runtime_error& e) {
                caught = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(caught, "child failed");
    EXPECT_TRUE(handler.reports.empty()) << "a joined failure was observed: nothing to report";
}

TEST(SpawnTest, DetachedExceptionGoesToHandlerWithName) {
    recording_handler handler;
    ut::run(
        []() -> ut::task<> {
            ut::spawn(fail_after_yield("detached boom"), "worker-7").detach();
            co_await yield_times(5);
        }(),
        epoll());
    ASSERT_EQ(handler.reports.size(), 1u);
    EXPECT_EQ(handler.reports[0].name, "worker-7");
    EXPECT_EQ(handler.reports[0].what, "detached boom");
}

TEST(SpawnTest, DroppedTemporaryHandleDetaches) {
    recording_handler handler;
    ut::run(
        []() -> ut::task<> {
            (void)ut::spawn(fail_at_once("dropped at once"), "temp");
            co_await yield_times(3);
        }(),
        epoll());
    ASSERT_EQ(handler.reports.size(), 1u);
    EXPECT_EQ(handler.reports[0].name, "temp");
    EXPECT_EQ(handler.reports[0].what, "dropped at once");
}

TEST(SpawnTest, UnnamedDetachedExceptionIsReportedWithEmptyName) {
    recording_handler handler;
    ut::run(
        []() -> ut::task<> {
            ut::spawn(fail_at_once("anonymous")).detach();
            co_await yield_times(3);
        }(),
        epoll());
    ASSERT_EQ(handler.reports.size(), 1u);
    EXPECT_EQ(handler.reports[0].name, "");
    EXPECT_EQ(handler.reports[0].what, "anonymous");
}

TEST(SpawnTest, DroppingHandleOfAlreadyFailedMicrothreadReports) {
    recording_handler handler;
    std::size_t reports_before_drop = 99;
    ut::run(
        [&]() -> ut::task<> {
            {
                auto h = ut::spawn(fail_at_once("failed, never joined"), "orphan");
                co_await yield_times(5);
                EXPECT_TRUE(h.done());
                // Still joinable: nobody may have been told yet.
                reports_before_drop = handler.reports.size();
            }  // handle dropped without joining
            co_await yield_times(2);
        }(),
        epoll());
    EXPECT_EQ(reports_before_drop, 0u) << "a joinable failure must not be reported before the "
                                          "handle is dropped";
    ASSERT_EQ(handler.reports.size(), 1u);
    EXPECT_EQ(handler.reports[0].name, "orphan");
    EXPECT_EQ(handler.reports[0].what, "failed, never joined");
}

TEST(SpawnTest, DroppingHandleBeforeFailureReports) {
    recording_handler handler;
    ut::run(
        []() -> ut::task<> {
            {
                auto h = ut::spawn(fail_after_yield("fails later"), "later");
                EXPECT_FALSE(h.done());
            }
            co_await yield_times(5);
        }(),
        epoll());
    ASSERT_EQ(handler.reports.size(), 1u);
    EXPECT_EQ(handler.reports[0].name, "later");
    EXPECT_EQ(handler.reports[0].what, "fails later");
}

TEST(SpawnTest, HandlerIsReplaceableAndRestorable) {
    int first_calls = 0, second_calls = 0;
    auto original = ut::set_unhandled_exception_handler(
        [&](std::string_view, std::exception_ptr) { ++first_calls; });
    auto returned_first = ut::set_unhandled_exception_handler(
        [&](std::string_view, std::exception_ptr) { ++second_calls; });
    ut::run(
        []() -> ut::task<> {
            ut::spawn(fail_at_once("x")).detach();
            co_await yield_times(3);
        }(),
        epoll());
    // The handler that was replaced is handed back and still callable.
    ASSERT_TRUE(static_cast<bool>(returned_first));
    returned_first("direct", nullptr);
    ut::set_unhandled_exception_handler(std::move(original));
    EXPECT_EQ(second_calls, 1);
    EXPECT_EQ(first_calls, 1);
}

TEST(SpawnTest, CancelledDetachedMicrothreadIsNotReported) {
    // Cancellation is not a failure: microthreads cancelled at the end of run()
    // or through their handle are not reported as unhandled exceptions.
    recording_handler handler;
    ut::run(
        []() -> ut::task<> {
            auto sleeper = []() -> ut::task<> { co_await ut::sleep_for(10s); };
            auto h = ut::spawn(sleeper(), "cancelled-by-handle");
            co_await ut::yield_now();
            h.cancel();
            h.detach();
            ut::spawn(sleeper(), "cancelled-by-run-end").detach();
            co_await yield_times(3);
        }(),
        epoll());
    EXPECT_TRUE(handler.reports.empty());
}

TEST(SpawnTest, JoiningTwiceThrowsLogicError) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(times_two(4));
            EXPECT_EQ(co_await h, 8);
            try {
                (void)co_await h;
            } catch (const std::logic_error&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

TEST(SpawnTest, JoiningTwiceAfterFailureThrowsLogicError) {
    bool first_runtime_error = false, second_logic_error = false;
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(fail_after_yield("once"));
            try {
                co_await h;
            } catch (const std::runtime_error&) {
                first_runtime_error = true;
            }
            try {
                co_await h;
            } catch (const std::runtime_error&) {
                ADD_FAILURE() << "second join rethrew the child's exception again";
            } catch (const std::logic_error&) {
                second_logic_error = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(first_runtime_error);
    EXPECT_TRUE(second_logic_error);
}

TEST(SpawnTest, SpawnOutsideRunThrowsLogicErrorMentioningSpawn) {
    const long long base = ut::lowlevel::live_frames();
    try {
        (void)ut::spawn(times_two(1));
        ADD_FAILURE() << "spawn outside run did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_NE(std::string(e.what()).find("spawn"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ut::lowlevel::live_frames(), base) << "the rejected task's frame must be freed";
}

TEST(SpawnTest, SpawnOfEmptyTaskThrowsLogicError) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::task<int> empty;
            try {
                (void)ut::spawn(std::move(empty));
            } catch (const std::logic_error&) {
                threw = true;
            }
            co_return;
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

TEST(SpawnTest, CancelMakesJoinThrowCancelled) {
    bool child_saw_cancelled = false;
    bool join_threw_cancelled = false;
    auto sleeper = [](bool& saw) -> ut::task<int> {
        try {
            co_await ut::sleep_for(10s);
        } catch (const ut::cancelled&) {
            saw = true;
            throw;
        }
        co_return 1;
    };
    auto start = std::chrono::steady_clock::now();
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(sleeper(child_saw_cancelled));
            co_await ut::yield_now();
            h.cancel();
            h.cancel();  // idempotent
            try {
                co_await h;
            } catch (const ut::cancelled&) {
                join_threw_cancelled = true;
            }
            EXPECT_TRUE(h.done());
        }(),
        epoll());
    EXPECT_TRUE(child_saw_cancelled);
    EXPECT_TRUE(join_threw_cancelled);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(SpawnTest, CancelOfFinishedMicrothreadIsANoOp) {
    int value = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(times_two(5));
            co_await yield_times(5);
            EXPECT_TRUE(h.done());
            h.cancel();  // finished: must not turn the result into `cancelled`
            co_await ut::yield_now();
            value = co_await h;
        }(),
        epoll());
    EXPECT_EQ(value, 10);
}

TEST(SpawnTest, CancelAfterJoinIsANoOp) {
    bool ok = false;
    ut::run(
        [&]() -> ut::task<> {
            auto h = ut::spawn(times_two(5));
            EXPECT_EQ(co_await h, 10);
            h.cancel();
            // The caller is unaffected: its next suspension point does not throw.
            co_await ut::yield_now();
            ok = true;
        }(),
        epoll());
    EXPECT_TRUE(ok);
}

TEST(SpawnTest, CancelledJoinerLosesNothing) {
    // Cancelling the microthread that joins does not affect the joined one, and
    // the handle can still be joined afterwards.
    int value = 0;
    bool joiner_cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::event go;
            auto slow = [](ut::event& e) -> ut::task<int> {
                co_await e.wait();
                co_return 77;
            };
            auto target = ut::spawn(slow(go), "target");
            auto joiner_body = [](ut::join_handle<int>& t, bool& c) -> ut::task<> {
                try {
                    (void)co_await t;
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto joiner = ut::spawn(joiner_body(target, joiner_cancelled), "joiner");
            co_await ut::yield_now();
            joiner.cancel();
            try {
                co_await joiner;
            } catch (const ut::cancelled&) {
            }
            EXPECT_FALSE(target.done());
            go.set();
            value = co_await target;
        }(),
        epoll());
    EXPECT_TRUE(joiner_cancelled);
    EXPECT_EQ(value, 77);
}

TEST(SpawnTest, EmptyHandleOperationsThrowLogicError) {
    ut::join_handle<int> h;
    EXPECT_THROW((void)h.done(), std::logic_error);
    EXPECT_THROW(h.cancel(), std::logic_error);
    EXPECT_THROW((void)h.id(), std::logic_error);
    h.detach();  // detaching nothing is harmless
}

TEST(SpawnTest, MovedHandleStillJoins) {
    int value = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto a = ut::spawn(times_two(6));
            ut::join_handle<int> b = std::move(a);
            EXPECT_THROW((void)a.done(), std::logic_error);
            ut::join_handle<int> c;
            c = std::move(b);
            value = co_await c;
        }(),
        epoll());
    EXPECT_EQ(value, 12);
}

TEST(SpawnTest, DetachedMicrothreadKeepsRunning) {
    int ticks = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto ticker = [](int& t) -> ut::task<> {
                for (int i = 0; i < 3; ++i) {
                    co_await ut::yield_now();
                    ++t;
                }
            };
            ut::spawn(ticker(ticks)).detach();
            co_await yield_times(10);
        }(),
        epoll());
    EXPECT_EQ(ticks, 3);
}

TEST(SpawnTest, ManyMicrothreadsAllJoinAndNothingLeaks) {
    const long long base = ut::lowlevel::live_frames();
    long long sum = ut::run(
        []() -> ut::task<long long> {
            std::vector<ut::join_handle<int>> hs;
            for (int i = 0; i < 2000; ++i) hs.push_back(ut::spawn(times_two(i)));
            long long s = 0;
            for (auto& h : hs) s += co_await h;
            co_return s;
        }(),
        epoll());
    EXPECT_EQ(sum, 2LL * (1999LL * 2000 / 2));
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

}  // namespace
