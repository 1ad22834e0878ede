// Cancellation (DESIGN.md §3): delivered as `cancelled` at the current or next
// suspension point, whatever the microthread waits on; level-triggered;
// `cancel_shield` lets cleanup await; cancelled is not a std::exception.

#include "conformance.hpp"

#include <atomic>

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class CancelTest : public backend_test {};  // NOLINT(readability-identifier-naming)

static_assert(!std::is_base_of_v<std::exception, ut::cancelled>,
              "cancelled must not be caught by catch (std::exception&)");

/// What a cancelled microthread observed.
struct observed {
    bool started = false;            // reached the wait
    bool completed = false;          // the wait returned normally (must not happen)
    bool saw_cancelled = false;      // caught ut::cancelled
    bool saw_std_exception = false;  // caught something as std::exception (must not happen)
};

/// Runs `op` (a task) recording how it ended, then rethrows what ended it so the
/// joiner sees it too.
template <class Op>
ut::task<void> observe(observed& o, ut::event& started, Op op) {
    o.started = true;
    started.set();
    try {
        co_await std::move(op);
        o.completed = true;
    } catch (const std::exception&) {
        o.saw_std_exception = true;
        throw;
    } catch (const ut::cancelled&) {
        o.saw_cancelled = true;
        throw;
    }
}

ut::task<void> sleep_task(ut::clock::duration d) {
    co_await ut::sleep_for(d);
}

/// Spawns `observe(op)`, waits until it is parked in `op`, cancels it from the
/// main microthread and joins it. Returns true if the join rethrew `cancelled`.
template <class Op>
ut::task<bool> cancel_while_waiting(observed& o, Op op) {
    ut::event started;
    auto h = ut::spawn(observe(o, started, std::move(op)), "victim");
    co_await started.wait();
    // `observe` set the event and went on to park in `op` before we ran again
    // (run to suspension). A few yields cover an operation that first spent its
    // cooperative budget, and a backend that shuffles the ready queue.
    for (int i = 0; i < 3; ++i) co_await ut::yield_now();
    h.cancel();
    co_return co_await join_expect_cancelled(h);
}

void expect_cancelled(const observed& o, bool join_saw_cancelled) {
    EXPECT_TRUE(o.started);
    EXPECT_FALSE(o.completed) << "the wait returned normally although it was cancelled";
    EXPECT_TRUE(o.saw_cancelled) << "the microthread did not see ut::cancelled";
    EXPECT_FALSE(o.saw_std_exception) << "catch (std::exception&) caught the cancellation";
    EXPECT_TRUE(join_saw_cancelled)
        << "joining the cancelled microthread did not rethrow cancelled";
}

TEST_P(CancelTest, WhileSleeping) {
    observed o;
    bool joined_cancelled = false;
    ut::clock::duration elapsed{};
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        auto t0 = ut::now();
        joined_cancelled = co_await cancel_while_waiting(o, sleep_task(1h));
        elapsed = ut::now() - t0;
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_LT(elapsed, 1min) << "the sleeper was not woken by the cancellation";
    EXPECT_LT(wall_now() - w0, 30s);
}

TEST_P(CancelTest, FromAThirdMicrothread) {
    observed o;
    bool joined_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event started;
        auto victim = ut::spawn(observe(o, started, sleep_task(1h)), "victim");
        auto canceller = ut::spawn(
            [](ut::join_handle<void>& v, ut::event& s) -> ut::task<> {
                co_await s.wait();
                co_await ut::sleep_for(1ms);
                v.cancel();
            }(victim, started),
            "canceller");
        co_await canceller;
        joined_cancelled = co_await join_expect_cancelled(victim);
    }());
    expect_cancelled(o, joined_cancelled);
}

TEST_P(CancelTest, WhileWaitingOnMutexHeldByAnother) {
    observed o;
    bool joined_cancelled = false, still_locked = false, lockable_after = false;
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        auto held = co_await m.lock();
        joined_cancelled = co_await cancel_while_waiting(o, [](ut::mutex& mx) -> ut::task<> {
            auto g = co_await mx.lock();
            ADD_FAILURE() << "acquired a mutex that was held";
        }(m));
        still_locked = m.is_locked() && held.owns_lock();
        held.unlock();
        // The cancelled waiter holds nothing and is no longer queued.
        auto again = m.try_lock();
        lockable_after = again.owns_lock() && !m.try_lock().owns_lock();
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_TRUE(still_locked);
    EXPECT_TRUE(lockable_after) << "the cancelled lock() left the mutex taken or queued";
}

TEST_P(CancelTest, WhileReceivingOnEmptyChannel) {
    observed o;
    bool joined_cancelled = false, rendezvous_send_failed = false;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(0);
        joined_cancelled = co_await cancel_while_waiting(o, [](ut::channel<int>& c) -> ut::task<> {
            auto v = co_await c.recv();
            ADD_FAILURE() << "received " << (v ? *v : -1) << " from an empty channel";
        }(ch));
        // The cancelled receiver must be gone: a rendezvous send finds nobody.
        rendezvous_send_failed = !ch.try_send(1);
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_TRUE(rendezvous_send_failed) << "cancelled receiver still queued on the channel";
}

TEST_P(CancelTest, WhileSendingOnFullChannel) {
    observed o;
    bool joined_cancelled = false;
    std::optional<int> first, second;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(1);
        EXPECT_TRUE(ch.try_send(1));
        joined_cancelled = co_await cancel_while_waiting(o, [](ut::channel<int>& c) -> ut::task<> {
            co_await c.send(2);
            ADD_FAILURE() << "sent on a full channel nobody reads";
        }(ch));
        first = ch.try_recv();
        second = ch.try_recv();
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_EQ(first, std::optional<int>(1));
    EXPECT_EQ(second, std::nullopt) << "a cancelled send delivered its value";
}

TEST_P(CancelTest, WhileWaitingOnEvent) {
    observed o;
    bool joined_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event e;
        joined_cancelled = co_await cancel_while_waiting(
            o, [](ut::event& ev) -> ut::task<> { co_await ev.wait(); }(e));
        e.set();  // nobody is waiting any more; must not touch the dead waiter
        co_await e.wait();
    }());
    expect_cancelled(o, joined_cancelled);
}

TEST_P(CancelTest, WhileWaitingOnSemaphore) {
    observed o;
    bool joined_cancelled = false;
    std::ptrdiff_t available = -1;
    run_on_backend([&]() -> ut::task<> {
        ut::semaphore s(0);
        joined_cancelled = co_await cancel_while_waiting(
            o, [](ut::semaphore& sem) -> ut::task<> { co_await sem.acquire(); }(s));
        s.release();
        available = s.available();
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_EQ(available, 1) << "the released unit went to a cancelled waiter";
}

TEST_P(CancelTest, WhileWaitingOnConditionVariable) {
    observed o;
    bool joined_cancelled = false, relocked = false, exactly_one_unit = false;
    run_on_backend([&]() -> ut::task<> {
        ut::mutex m;
        ut::condition_variable cv;
        joined_cancelled = co_await cancel_while_waiting(
            o, [](ut::mutex& mx, ut::condition_variable& c, bool& rl) -> ut::task<> {
                auto g = co_await mx.lock();
                try {
                    co_await c.wait(g);
                } catch (const ut::cancelled&) {
                    // The relock is shielded: even when cancelled, the guard owns
                    // the mutex again.
                    rl = g.owns_lock() && mx.is_locked();
                    throw;
                }
                ADD_FAILURE() << "woke without notification";
            }(m, cv, relocked));
        // The guard released the mutex exactly once: one unit, not zero or two.
        auto first = m.try_lock();
        auto second = m.try_lock();
        exactly_one_unit = first.owns_lock() && !second.owns_lock();
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_TRUE(relocked) << "a cancelled condition_variable::wait did not relock";
    EXPECT_TRUE(exactly_one_unit) << "the mutex is not cleanly unlocked after the cancelled wait";
}

TEST_P(CancelTest, WhileJoiningAnotherMicrothread) {
    observed o;
    bool joined_cancelled = false, target_alive = false, target_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        auto target = ut::spawn(sleep_task(1h), "target");
        joined_cancelled = co_await cancel_while_waiting(
            o, [](ut::join_handle<void>& t) -> ut::task<> { co_await t; }(target));
        // Cancelling the joiner loses nothing: the target still runs and can be
        // joined again.
        target_alive = !target.done();
        target.cancel();
        target_cancelled = co_await join_expect_cancelled(target);
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_TRUE(target_alive);
    EXPECT_TRUE(target_cancelled);
}

TEST_P(CancelTest, WhileAwaitingFuture) {
    observed o;
    bool joined_cancelled = false;
    int later = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::promise<int> p;
        ut::future<int> f = p.get_future();
        joined_cancelled = co_await cancel_while_waiting(
            o, [](ut::future<int>& fut) -> ut::task<> { co_await fut; }(f));
        // The future can be awaited again after the cancelled wait.
        p.set_value(5);
        later = co_await f;
    }());
    expect_cancelled(o, joined_cancelled);
    EXPECT_EQ(later, 5);
}

TEST_P(CancelTest, WhileInNestedCallDeepDown) {
    observed o;
    bool joined_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        joined_cancelled = co_await cancel_while_waiting(o, []() -> ut::task<> {
            struct rec {
                static ut::task<int> down(int n) {
                    if (n == 0) {
                        co_await ut::sleep_for(1h);
                        co_return 0;
                    }
                    co_return 1 + co_await down(n - 1);
                }
            };
            co_await rec::down(100);
        }());
    }());
    expect_cancelled(o, joined_cancelled);
}

TEST_P(CancelTest, AlwaysReadyLoopIsCancellable) {
    observed o;
    bool joined_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event set;
        set.set();
        joined_cancelled = co_await cancel_while_waiting(o, [](ut::event& e) -> ut::task<> {
            auto w0 = wall_now();
            for (;;) {
                co_await e.wait();
                if (wall_now() - w0 > 20s) {
                    ADD_FAILURE() << "a loop over a set event never saw its cancellation";
                    co_return;
                }
            }
        }(set));
    }());
    expect_cancelled(o, joined_cancelled);
}

TEST_P(CancelTest, CancelledIsNotCaughtAsStdException) {
    bool std_caught = false, cancelled_caught = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event started;
        auto h = ut::spawn([](bool& std_c, bool& canc_c, ut::event& s) -> ut::task<> {
            try {
                try {
                    s.set();
                    co_await ut::sleep_for(1h);
                } catch (std::exception&) {
                    std_c = true;
                }
            } catch (ut::cancelled&) {
                canc_c = true;
            }
        }(std_caught, cancelled_caught, started));
        co_await started.wait();
        h.cancel();
        co_await h;  // the microthread swallowed cancelled, so it returns normally
    }());
    EXPECT_FALSE(std_caught);
    EXPECT_TRUE(cancelled_caught);
}

TEST_P(CancelTest, LevelTriggeredRedeliveredAtEverySuspensionPoint) {
    int deliveries = 0;
    bool slept_normally = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event started;
        auto h = ut::spawn([](int& n, bool& slept, ut::event& s) -> ut::task<> {
            s.set();
            try {
                co_await ut::sleep_for(1h);
            } catch (const ut::cancelled&) {
                ++n;
            }
            try {
                co_await ut::yield_now();
            } catch (const ut::cancelled&) {
                ++n;
            }
            try {
                co_await ut::sleep_for(1ms);
                slept = true;
            } catch (const ut::cancelled&) {
                ++n;
            }
            ut::event ready;
            ready.set();
            try {
                co_await ready.wait();  // even an immediately-ready wait
            } catch (const ut::cancelled&) {
                ++n;
            }
            co_await ut::yield_now();  // and this one ends the microthread
        }(deliveries, slept_normally, started));
        co_await started.wait();
        h.cancel();
        EXPECT_TRUE(co_await join_expect_cancelled(h));
    }());
    EXPECT_EQ(deliveries, 4);
    EXPECT_FALSE(slept_normally);
}

TEST_P(CancelTest, ShieldLetsCleanupAwait) {
    bool cleanup_slept = false, redelivered_after_shield = false;
    ut::clock::duration cleanup_took{};
    run_on_backend([&]() -> ut::task<> {
        ut::event started;
        auto h = ut::spawn(
            [](bool& slept, bool& again, ut::clock::duration& took, ut::event& s) -> ut::task<> {
                bool was_cancelled = false;
                try {
                    s.set();
                    co_await ut::sleep_for(1h);
                } catch (const ut::cancelled&) {
                    was_cancelled = true;
                }
                if (!was_cancelled) co_return;
                {
                    // Cleanup that must await, in a cancelled microthread.
                    ut::cancel_shield shield;
                    auto t0 = ut::now();
                    co_await ut::sleep_for(10ms);
                    co_await ut::yield_now();
                    took = ut::now() - t0;
                    slept = true;
                }
                try {
                    co_await ut::yield_now();
                } catch (const ut::cancelled&) {
                    again = true;
                    throw;
                }
            }(cleanup_slept, redelivered_after_shield, cleanup_took, started));
        co_await started.wait();
        h.cancel();
        EXPECT_TRUE(co_await join_expect_cancelled(h));
    }());
    EXPECT_TRUE(cleanup_slept) << "a shielded sleep in a cancelled microthread did not complete";
    EXPECT_GE(cleanup_took, 10ms);
    EXPECT_TRUE(redelivered_after_shield) << "cancellation not delivered again after the shield";
}

TEST_P(CancelTest, CancelRequestedWhileShieldedIsDeliveredAfterShield) {
    bool finished_shielded_sleep = false, delivered_after = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event in_shield;
        auto h = ut::spawn([](bool& fin, bool& after, ut::event& s) -> ut::task<> {
            {
                ut::cancel_shield shield;
                s.set();
                co_await ut::sleep_for(5ms);
                fin = true;
            }
            try {
                co_await ut::sleep_for(1h);
            } catch (const ut::cancelled&) {
                after = true;
                throw;
            }
        }(finished_shielded_sleep, delivered_after, in_shield));
        co_await in_shield.wait();
        h.cancel();
        EXPECT_TRUE(co_await join_expect_cancelled(h));
    }());
    EXPECT_TRUE(finished_shielded_sleep);
    EXPECT_TRUE(delivered_after);
}

TEST_P(CancelTest, CancelBeforeFirstRunIsDeliveredAtFirstSuspension) {
    if (workers() > 1)
        GTEST_SKIP() << "needs one worker: with several, an idle worker may start the "
                        "microthread before its spawner cancels it";
    bool reached_start = false, passed_suspension = false;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn([](bool& start, bool& passed) -> ut::task<> {
            start = true;
            co_await ut::yield_now();
            passed = true;
        }(reached_start, passed_suspension));
        h.cancel();  // before it ever ran
        EXPECT_TRUE(co_await join_expect_cancelled(h));
    }());
    EXPECT_FALSE(passed_suspension);
}

TEST_P(CancelTest, CancellingNurseryOwnerCancelsChildren) {
    // Atomic: with several workers the children unwind in parallel.
    std::atomic<int> children_cancelled{0};
    bool owner_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event started;
        auto owner = ut::spawn([](std::atomic<int>& cc, ut::event& s) -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int i = 0; i < 3; ++i)
                    n.spawn([](std::atomic<int>& c) -> ut::task<> {
                        try {
                            co_await ut::sleep_for(1h);
                        } catch (const ut::cancelled&) {
                            ++c;
                            throw;
                        }
                    }(cc));
                s.set();
                co_return;
            });
        }(children_cancelled, started));
        co_await started.wait();
        co_await ut::yield_now();
        owner.cancel();
        owner_cancelled = co_await join_expect_cancelled(owner);
    }());
    EXPECT_TRUE(owner_cancelled);
    EXPECT_EQ(children_cancelled.load(), 3);
}

TEST_P(CancelTest, CancelledMicrothreadKeepsItsResultIfCompletionAlreadyArrived) {
    // A completed operation's result is never lost to a cancellation racing it:
    // here the receiver's value is handed over in the same step as the cancel.
    std::optional<int> got;
    bool got_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(0);
        ut::event started;
        auto h = ut::spawn(
            [](ut::channel<int>& c, std::optional<int>& g, bool& gc, ut::event& s) -> ut::task<> {
                s.set();
                try {
                    g = co_await c.recv();
                } catch (const ut::cancelled&) {
                    gc = true;
                    throw;
                }
            }(ch, got, got_cancelled, started));
        co_await started.wait();
        co_await ut::yield_now();
        EXPECT_TRUE(ch.try_send(9));  // hands 9 to the parked receiver
        h.cancel();                   // after the hand-off: must not drop the 9
        try {
            co_await h;
        } catch (const ut::cancelled&) {
        }
    }());
    // Either the receiver got its value, or (if cancellation won) nothing was
    // handed over — but the value must not vanish silently.
    EXPECT_TRUE(got.has_value() && *got == 9)
        << "a value handed to a receiver was lost by cancel()";
    EXPECT_FALSE(got_cancelled);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, CancelTest,
                         ::testing::ValuesIn(suite_params()), backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, CancelTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
