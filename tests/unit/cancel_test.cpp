// Unit tests for cancellation: the `cancelled` exception, level-triggered
// delivery, cancel_shield, with_timeout, move_on_after and nested deadlines.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

static_assert(!std::is_base_of_v<std::exception, ut::cancelled>,
              "catch (std::exception&) must not swallow cancellation");
static_assert(std::is_base_of_v<std::runtime_error, ut::timeout_error>);

ut::task<int> value_after(ut::clock::duration d, int v) {
    co_await ut::sleep_for(d);
    co_return v;
}

ut::task<> sleep_task(ut::clock::duration d) { co_await ut::sleep_for(d); }

/// Join `h`, returning true if it ended with `cancelled`.
template <class T>
ut::task<bool> joined_cancelled(ut::join_handle<T>& h) {
    try {
        co_await h;
    } catch (const ut::cancelled&) {
        co_return true;
    }
    co_return false;
}

TEST(CancelTest, CancelledIsNotCaughtByStdExceptionHandlers) {
    bool caught_as_std = false, caught_as_cancelled = false;
    try {
        try {
            throw ut::cancelled{};
        } catch (const std::exception&) {
            caught_as_std = true;
        }
    } catch (const ut::cancelled& c) {
        caught_as_cancelled = true;
        EXPECT_NE(c.what(), nullptr);
    }
    EXPECT_FALSE(caught_as_std);
    EXPECT_TRUE(caught_as_cancelled);
}

TEST(CancelTest, CancellationIsLevelTriggered) {
    // Once cancelled, every later suspension point throws again until the
    // microthread unwinds: swallowing one `cancelled` does not undo the request.
    int deliveries = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto stubborn = [](int& n) -> ut::task<> {
                for (int i = 0; i < 3; ++i) {
                    try {
                        co_await ut::sleep_for(10s);
                    } catch (const ut::cancelled&) {
                        ++n;  // deliberately swallowed
                    }
                }
                co_await ut::yield_now();  // and once more, not caught
            };
            auto h = ut::spawn(stubborn(deliveries));
            co_await ut::yield_now();
            h.cancel();
            EXPECT_TRUE(co_await joined_cancelled(h));
        }(),
        epoll());
    EXPECT_EQ(deliveries, 3);
}

TEST(CancelTest, CancelBeforeStartIsDeliveredAtFirstSuspensionPoint) {
    int steps = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](int& s) -> ut::task<> {
                co_await ut::yield_now();
                for (int i = 0; i < 100; ++i) ++s;
            };
            auto h = ut::spawn(body(steps));
            h.cancel();  // before it runs: the yield inside throws
            EXPECT_TRUE(co_await joined_cancelled(h));
        }(),
        epoll());
    EXPECT_EQ(steps, 0);
}

TEST(CancelTest, CodeAfterTheLastSuspensionPointRunsToCompletion) {
    // Cancellation requested while the microthread is already runnable (its yield
    // completed) is delivered at the next suspension point; if there is none, the
    // microthread finishes normally and its join succeeds.
    int steps = 0;
    bool join_ok = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](int& s) -> ut::task<int> {
                co_await ut::yield_now();
                for (int i = 0; i < 100; ++i) ++s;
                co_return 1;
            };
            auto h = ut::spawn(body(steps));
            co_await ut::yield_now();  // the child runs up to its yield and is queued
            h.cancel();
            join_ok = co_await h == 1;
        }(),
        epoll());
    EXPECT_EQ(steps, 100);
    EXPECT_TRUE(join_ok);
}

TEST(CancelTest, ShieldBlocksCancellationUntilItEnds) {
    bool shielded_work_done = false, cancelled_after_shield = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](bool& done, bool& after) -> ut::task<> {
                {
                    ut::cancel_shield shield;
                    co_await ut::sleep_for(2ms);  // cancellation requested meanwhile
                    co_await ut::yield_now();
                    done = true;
                }
                try {
                    co_await ut::yield_now();
                } catch (const ut::cancelled&) {
                    after = true;
                    throw;
                }
            };
            auto h = ut::spawn(body(shielded_work_done, cancelled_after_shield));
            co_await ut::yield_now();
            h.cancel();
            EXPECT_TRUE(co_await joined_cancelled(h));
        }(),
        epoll());
    EXPECT_TRUE(shielded_work_done);
    EXPECT_TRUE(cancelled_after_shield);
}

TEST(CancelTest, ShieldCreatedAfterCancellationStillShields) {
    // Cleanup code typically enters a shield in a catch-and-rethrow path: it must
    // be able to await even though cancellation is already pending.
    bool cleanup_done = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](bool& done) -> ut::task<> {
                bool was_cancelled = false;
                try {
                    co_await ut::sleep_for(10s);
                } catch (const ut::cancelled&) {
                    was_cancelled = true;
                }
                if (was_cancelled) {
                    ut::cancel_shield shield;
                    co_await ut::sleep_for(1ms);
                    done = true;
                }
                co_await ut::yield_now();  // delivered again here
            };
            auto h = ut::spawn(body(cleanup_done));
            co_await ut::yield_now();
            h.cancel();
            EXPECT_TRUE(co_await joined_cancelled(h));
        }(),
        epoll());
    EXPECT_TRUE(cleanup_done);
}

TEST(CancelTest, ShieldOutsideRunThrowsLogicError) {
    EXPECT_THROW(ut::cancel_shield{}, std::logic_error);
}

TEST(CancelTest, WithTimeoutReturnsValueWhenInTime) {
    int v = 0, w = 0;
    bool later_ok = false;
    ut::run(
        [&]() -> ut::task<> {
            v = co_await ut::with_timeout(1s, value_after(0ms, 7));
            w = co_await ut::with_timeout(1s, value_after(1ms, 8));
            // The scope was left cleanly: nothing fires later.
            co_await ut::sleep_for(2ms);
            later_ok = true;
        }(),
        epoll());
    EXPECT_EQ(v, 7);
    EXPECT_EQ(w, 8);
    EXPECT_TRUE(later_ok);
}

TEST(CancelTest, WithTimeoutOfVoidTask) {
    bool done = false;
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_timeout(1s, sleep_task(0ms));
            done = true;
        }(),
        epoll());
    EXPECT_TRUE(done);
}

TEST(CancelTest, WithTimeoutThrowsTimeoutErrorNotBeforeDeadline) {
    bool timed_out = false;
    bool inner_saw_cancelled = false;
    ut::clock::duration elapsed{};
    ut::run(
        [&]() -> ut::task<> {
            auto inner = [](bool& saw) -> ut::task<int> {
                try {
                    co_await ut::sleep_for(10s);
                } catch (const ut::cancelled&) {
                    saw = true;
                    throw;
                }
                co_return 1;
            };
            auto start = ut::clock::now();
            try {
                (void)co_await ut::with_timeout(3ms, inner(inner_saw_cancelled));
            } catch (const ut::timeout_error&) {
                timed_out = true;
            }
            elapsed = ut::clock::now() - start;
        }(),
        epoll());
    EXPECT_TRUE(timed_out);
    EXPECT_TRUE(inner_saw_cancelled) << "the operation is cancelled, not abandoned";
    EXPECT_GE(elapsed, 3ms);
    EXPECT_LT(elapsed, 5s);
}

TEST(CancelTest, TimeoutErrorIsCatchableAsStdException) {
    bool caught = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_timeout(1ms, sleep_task(10s));
            } catch (const std::exception& e) {
                caught = dynamic_cast<const ut::timeout_error*>(&e) != nullptr;
            }
        }(),
        epoll());
    EXPECT_TRUE(caught);
}

TEST(CancelTest, MicrothreadContinuesNormallyAfterTimeout) {
    // The deadline's cancellation is confined to its scope: after catching
    // timeout_error, suspension points no longer throw.
    int steps = 0;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_timeout(1ms, sleep_task(10s));
            } catch (const ut::timeout_error&) {
                ++steps;
            }
            co_await ut::yield_now();
            ++steps;
            co_await ut::sleep_for(1ms);
            ++steps;
            auto h = ut::spawn(value_after(0ms, 1));
            steps += co_await h;
        }(),
        epoll());
    EXPECT_EQ(steps, 4);
}

TEST(CancelTest, WithTimeoutOnLibraryAwaitables) {
    bool event_timeout = false, sleep_timeout = false;
    int recv_value = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::event e;
            try {
                co_await ut::with_timeout(1ms, e.wait());
            } catch (const ut::timeout_error&) {
                event_timeout = true;
            }
            try {
                co_await ut::with_timeout(1ms, ut::sleep_for(10s));
            } catch (const ut::timeout_error&) {
                sleep_timeout = true;
            }
            ut::channel<int> ch(1);
            co_await ch.send(3);
            auto v = co_await ut::with_timeout(1s, ch.recv());
            recv_value = v.value_or(-1);
        }(),
        epoll());
    EXPECT_TRUE(event_timeout);
    EXPECT_TRUE(sleep_timeout);
    EXPECT_EQ(recv_value, 3);
}

TEST(CancelTest, WithTimeoutNegativeDurationThrowsInvalidArgument) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                (void)co_await ut::with_timeout(-1ms, value_after(0ms, 1));
            } catch (const std::invalid_argument&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

TEST(CancelTest, WithTimeoutZeroDurationTimesOutAnythingThatSuspends) {
    bool timed_out = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_timeout(0ms, sleep_task(1s));
            } catch (const ut::timeout_error&) {
                timed_out = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(timed_out);
}

TEST(CancelTest, ExternalCancelInsideWithTimeoutIsCancelledNotTimeout) {
    bool saw_timeout = false, saw_cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](bool& t, bool& c) -> ut::task<> {
                try {
                    co_await ut::with_timeout(10s, sleep_task(10s));
                } catch (const ut::timeout_error&) {
                    t = true;
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto h = ut::spawn(body(saw_timeout, saw_cancelled));
            co_await ut::yield_now();
            h.cancel();
            EXPECT_TRUE(co_await joined_cancelled(h));
        }(),
        epoll());
    EXPECT_FALSE(saw_timeout);
    EXPECT_TRUE(saw_cancelled);
}

TEST(CancelTest, MoveOnAfterReturnsNulloptOnTimeout) {
    std::optional<int> late = 99, early;
    ut::run(
        [&]() -> ut::task<> {
            late = co_await ut::move_on_after(1ms, value_after(10s, 1));
            early = co_await ut::move_on_after(1s, value_after(0ms, 2));
        }(),
        epoll());
    EXPECT_EQ(late, std::nullopt);
    EXPECT_EQ(early, 2);
}

TEST(CancelTest, MoveOnAfterVoidReturnsBool) {
    bool completed_fast = false, completed_slow = true;
    ut::run(
        [&]() -> ut::task<> {
            completed_fast = co_await ut::move_on_after(1s, sleep_task(0ms));
            completed_slow = co_await ut::move_on_after(1ms, sleep_task(10s));
            co_await ut::yield_now();  // no cancellation left over
        }(),
        epoll());
    EXPECT_TRUE(completed_fast);
    EXPECT_FALSE(completed_slow);
}

TEST(CancelTest, MoveOnAfterLetsExternalCancellationThrough) {
    bool got_result = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](bool& r) -> ut::task<> {
                auto v = co_await ut::move_on_after(10s, value_after(10s, 1));
                r = true;
                (void)v;
            };
            auto h = ut::spawn(body(got_result));
            co_await ut::yield_now();
            h.cancel();
            EXPECT_TRUE(co_await joined_cancelled(h));
        }(),
        epoll());
    EXPECT_FALSE(got_result);
}

TEST(CancelTest, NestedOuterDeadlineFiresFirst) {
    // The outer scope's deadline passes first: the inner with_timeout sees
    // `cancelled` caused by the outer scope and must let it through unchanged; the
    // outer turns it into its own timeout_error.
    bool inner_saw_cancelled = false, inner_saw_timeout = false;
    bool outer_timeout = false;
    ut::run(
        [&]() -> ut::task<> {
            auto middle = [](bool& c, bool& t) -> ut::task<> {
                try {
                    co_await ut::with_timeout(10s, sleep_task(10s));
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                } catch (const ut::timeout_error&) {
                    t = true;
                    throw;
                }
            };
            try {
                co_await ut::with_timeout(2ms, middle(inner_saw_cancelled, inner_saw_timeout));
            } catch (const ut::timeout_error&) {
                outer_timeout = true;
            }
            co_await ut::yield_now();  // and the outer scope's cancellation is gone
        }(),
        epoll());
    EXPECT_TRUE(inner_saw_cancelled);
    EXPECT_FALSE(inner_saw_timeout);
    EXPECT_TRUE(outer_timeout);
}

TEST(CancelTest, NestedInnerDeadlineFiresFirst) {
    bool inner_timeout = false;
    int after = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto middle = [](bool& t) -> ut::task<int> {
                try {
                    co_await ut::with_timeout(1ms, sleep_task(10s));
                } catch (const ut::timeout_error&) {
                    t = true;
                }
                co_await ut::sleep_for(1ms);  // the outer scope is not affected
                co_return 5;
            };
            after = co_await ut::with_timeout(10s, middle(inner_timeout));
        }(),
        epoll());
    EXPECT_TRUE(inner_timeout);
    EXPECT_EQ(after, 5);
}

TEST(CancelTest, NestedInnerTimeoutErrorPropagatesThroughOuter) {
    // An inner timeout_error not caught inside is an ordinary exception to the
    // outer with_timeout, which passes it on.
    bool caught = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_timeout(10s, ut::with_timeout(1ms, sleep_task(10s)));
            } catch (const ut::timeout_error&) {
                caught = true;
            }
            co_await ut::yield_now();
        }(),
        epoll());
    EXPECT_TRUE(caught);
}

TEST(CancelTest, NestedMoveOnAfterInsideExpiredWithTimeout) {
    // An outer with_timeout that fires while an inner move_on_after is pending:
    // move_on_after must not swallow the outer cancellation as its own timeout.
    bool inner_returned = false, outer_timeout = false;
    ut::run(
        [&]() -> ut::task<> {
            auto middle = [](bool& r) -> ut::task<> {
                (void)co_await ut::move_on_after(10s, sleep_task(10s));
                r = true;
            };
            try {
                co_await ut::with_timeout(2ms, middle(inner_returned));
            } catch (const ut::timeout_error&) {
                outer_timeout = true;
            }
        }(),
        epoll());
    EXPECT_FALSE(inner_returned);
    EXPECT_TRUE(outer_timeout);
}

TEST(CancelTest, ShieldInsideWithTimeoutDelaysTheTimeout) {
    // A shield hides the deadline's cancellation too: the shielded sleep completes
    // and the timeout is reported afterwards.
    bool shielded_done = false, timed_out = false;
    ut::run(
        [&]() -> ut::task<> {
            auto body = [](bool& d) -> ut::task<> {
                {
                    ut::cancel_shield shield;
                    co_await ut::sleep_for(3ms);
                    d = true;
                }
                co_await ut::sleep_for(10s);
            };
            try {
                co_await ut::with_timeout(1ms, body(shielded_done));
            } catch (const ut::timeout_error&) {
                timed_out = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(shielded_done);
    EXPECT_TRUE(timed_out);
}

}  // namespace
