// Structured concurrency: with_nursery, when_all, when_any.

#include "conformance.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class NurseryTest : public backend_test {};  // NOLINT(readability-identifier-naming)

ut::task<int> value_after(ut::clock::duration d, int v) {
    co_await ut::sleep_for(d);
    co_return v;
}

ut::task<std::string> string_after(ut::clock::duration d, std::string v) {
    co_await ut::sleep_for(d);
    co_return v;
}

ut::task<void> sleep_task(ut::clock::duration d) {
    co_await ut::sleep_for(d);
}

/// Sleeps `d`; records a cancellation in `saw` and rethrows it.
ut::task<int> sleep_recording_cancel(ut::clock::duration d, bool& saw, int v = 0) {
    try {
        co_await ut::sleep_for(d);
    } catch (const ut::cancelled&) {
        saw = true;
        throw;
    }
    co_return v;
}

ut::task<int> fail_after(ut::clock::duration d, std::string msg) {
    co_await ut::sleep_for(d);
    throw std::runtime_error(msg);
}

TEST_P(NurseryTest, FailingChildCancelsSiblingsAndIsRethrown) {
    bool sleeper_cancelled = false;
    std::string what;
    ut::clock::duration elapsed{};
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        auto t0 = ut::now();
        try {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(sleep_recording_cancel(1h, sleeper_cancelled), "sleeper");
                n.spawn(fail_after(1ms, "child failed"), "failer");
                co_return;
            });
            ADD_FAILURE() << "with_nursery returned normally";
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        elapsed = ut::now() - t0;
    }());
    EXPECT_EQ(what, "child failed");
    EXPECT_TRUE(sleeper_cancelled) << "the sibling of a failed child was not cancelled";
    EXPECT_GE(elapsed, 1ms);
    EXPECT_LT(elapsed, 1min);
    EXPECT_LT(wall_now() - w0, 30s);
}

TEST_P(NurseryTest, WaitsForAllChildren) {
    shared_log<int> finished;
    run_on_backend([&]() -> ut::task<> {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 3; i >= 1; --i)
                n.spawn([](int k, shared_log<int>& f) -> ut::task<> {
                    co_await ut::sleep_for(k * 2ms);
                    f.add(k);
                }(i, finished));
            co_return;
        });
        EXPECT_EQ(finished.size(), 3u) << "with_nursery returned before its children";
    }());
    std::vector<int> got = finished.values();
    // With several workers, timers on different workers fire in deadline order
    // only as far as the OS runs the workers' threads on time (docs/threads.md):
    // what must hold is that every child finished, once, before with_nursery ended.
    if (workers() > 1) std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
}

TEST_P(NurseryTest, ChildrenSpawnedAfterBodySuspended) {
    std::atomic<int> done{0};
    run_on_backend([&]() -> ut::task<> {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 5; ++i) {
                n.spawn([](std::atomic<int>& d) -> ut::task<> {
                    co_await ut::yield_now();
                    ++d;
                }(done));
                co_await ut::sleep_for(1ms);
            }
        });
    }());
    EXPECT_EQ(done.load(), 5);
}

TEST_P(NurseryTest, ChildrenCanSpawnIntoTheSameNursery) {
    std::atomic<int> done{0};
    run_on_backend([&]() -> ut::task<> {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            n.spawn([](ut::nursery& nn, std::atomic<int>& d) -> ut::task<> {
                co_await ut::yield_now();
                nn.spawn([](std::atomic<int>& dd) -> ut::task<> {
                    co_await ut::sleep_for(1ms);
                    ++dd;
                }(d));
                ++d;
            }(n, done));
            co_return;
        });
    }());
    EXPECT_EQ(done.load(), 2);
}

TEST_P(NurseryTest, FailingBodyCancelsChildren) {
    std::atomic<int> cancelled_children{0};
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int i = 0; i < 3; ++i)
                    n.spawn([](std::atomic<int>& c) -> ut::task<> {
                        try {
                            co_await ut::sleep_for(1h);
                        } catch (const ut::cancelled&) {
                            ++c;
                            throw;
                        }
                    }(cancelled_children));
                co_await ut::sleep_for(1ms);
                throw std::logic_error("body failed");
            });
        } catch (const std::logic_error& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "body failed");
    EXPECT_EQ(cancelled_children.load(), 3);
}

TEST_P(NurseryTest, FailingChildCancelsSuspendedBody) {
    bool body_cancelled = false;
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(fail_after(1ms, "child"));
                try {
                    co_await ut::sleep_for(1h);
                } catch (const ut::cancelled&) {
                    body_cancelled = true;
                    throw;
                }
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "child");
    EXPECT_TRUE(body_cancelled);
}

TEST_P(NurseryTest, FirstFailureWinsWhenSeveralFail) {
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(fail_after(1ms, "first"));
                n.spawn([]() -> ut::task<> {
                    // Fails while being cancelled by the first failure.
                    try {
                        co_await ut::sleep_for(1h);
                    } catch (const ut::cancelled&) {
                    }
                    throw std::runtime_error("second");
                }());
                co_return;
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "first");
}

TEST_P(NurseryTest, CancelIsNotAFailure) {
    std::atomic<int> cancelled_children{0};
    bool returned = false;
    run_on_backend([&]() -> ut::task<> {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 4; ++i)
                n.spawn([](std::atomic<int>& c) -> ut::task<> {
                    try {
                        co_await ut::sleep_for(1h);
                    } catch (const ut::cancelled&) {
                        ++c;
                        throw;
                    }
                }(cancelled_children));
            co_await ut::sleep_for(1ms);
            EXPECT_EQ(n.running(), 4u);
            n.cancel();
        });
        returned = true;
    }());
    EXPECT_TRUE(returned) << "nursery::cancel() made with_nursery throw";
    EXPECT_EQ(cancelled_children.load(), 4);
}

TEST_P(NurseryTest, SpawnOfEmptyTaskThrowsLogicError) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(ut::task<int>{});
                co_return;
            });
        } catch (const std::logic_error&) {
            threw = true;
        }
    }());
    EXPECT_TRUE(threw) << "nursery::spawn of an empty task did not throw std::logic_error";
}

TEST_P(NurseryTest, NothingOutlivesWithNursery) {
    // Children still running when the body ends are joined, not detached.
    int running_after = -1;
    long long live_inside = 0;
    run_on_backend([&]() -> ut::task<> {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 50; ++i) n.spawn(sleep_task(i * 100us));
            live_inside = ut::lowlevel::live_microthreads();
            co_return;
        });
        running_after = static_cast<int>(ut::lowlevel::live_microthreads());
    }());
    // With several workers a short child may already have finished when the body
    // counts; what must hold everywhere is that none outlives with_nursery.
    if (workers() == 1) EXPECT_GE(live_inside, 51);
    EXPECT_EQ(running_after, 1) << "children of a finished nursery are still alive";
}

TEST_P(NurseryTest, WhenAllReturnsTuple) {
    std::tuple<int, std::string, std::monostate> result;
    run_on_backend([&]() -> ut::task<> {
        result =
            co_await ut::when_all(value_after(3ms, 1), string_after(1ms, "two"), sleep_task(2ms));
    }());
    EXPECT_EQ(std::get<0>(result), 1);
    EXPECT_EQ(std::get<1>(result), "two");
}

TEST_P(NurseryTest, WhenAllRunsConcurrently) {
    // Each task needs the other to make progress: only concurrent execution ends.
    int result_sum = 0;
    bool timed_out = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event a_ran, b_ran;
        auto a = [](ut::event& mine, ut::event& other) -> ut::task<int> {
            mine.set();
            co_await other.wait();
            co_return 1;
        };
        try {
            auto [x, y] =
                co_await ut::with_timeout(10s, ut::when_all(a(a_ran, b_ran), a(b_ran, a_ran)));
            result_sum = x + y;
        } catch (const ut::timeout_error&) {
            timed_out = true;
        }
    }());
    EXPECT_FALSE(timed_out) << "when_all ran its tasks one after the other";
    EXPECT_EQ(result_sum, 2);
}

TEST_P(NurseryTest, WhenAllVectorKeepsInputOrder) {
    std::vector<int> out;
    run_on_backend([&]() -> ut::task<> {
        std::vector<ut::task<int>> ts;
        ts.reserve(10);
        for (int i = 0; i < 10; ++i) ts.push_back(value_after((10 - i) * 1ms, i * i));
        out = co_await ut::when_all(std::move(ts));
    }());
    ASSERT_EQ(out.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i], i * i);
}

TEST_P(NurseryTest, WhenAllFailureCancelsOthersAndIsRethrown) {
    bool other_cancelled = false;
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::when_all(sleep_recording_cancel(1h, other_cancelled),
                                  fail_after(1ms, "when_all child"));
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "when_all child");
    EXPECT_TRUE(other_cancelled);
}

TEST_P(NurseryTest, WhenAnyReturnsFirstFinisherAndCancelsLoser) {
    bool loser_cancelled = false;
    std::variant<int, std::string> result;
    ut::clock::duration elapsed{};
    run_on_backend([&]() -> ut::task<> {
        auto t0 = ut::now();
        result = co_await ut::when_any(sleep_recording_cancel(1h, loser_cancelled, 1),
                                       string_after(2ms, "fast"));
        elapsed = ut::now() - t0;
    }());
    ASSERT_EQ(result.index(), 1u);
    EXPECT_EQ(std::get<1>(result), "fast");
    EXPECT_TRUE(loser_cancelled) << "when_any did not cancel the loser";
    EXPECT_LT(elapsed, 1min);
}

TEST_P(NurseryTest, WhenAnyFirstIndexWins) {
    bool loser_cancelled = false;
    std::variant<int, int, std::monostate> result;
    run_on_backend([&]() -> ut::task<> {
        result = co_await ut::when_any(
            value_after(1ms, 10), sleep_recording_cancel(1h, loser_cancelled, 20), sleep_task(1h));
    }());
    ASSERT_EQ(result.index(), 0u);
    EXPECT_EQ(std::get<0>(result), 10);
    EXPECT_TRUE(loser_cancelled);
}

TEST_P(NurseryTest, WhenAnyWithVoidWinner) {
    std::variant<int, std::monostate> result{std::in_place_index<0>, 0};
    run_on_backend([&]() -> ut::task<> {
        result = co_await ut::when_any(value_after(1h, 1), sleep_task(1ms));
    }());
    EXPECT_EQ(result.index(), 1u);
}

TEST_P(NurseryTest, WhenAnyFailureBeforeSuccessIsRethrown) {
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::when_any(fail_after(1ms, "any failed"), value_after(1h, 2));
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "any failed");
}

TEST_P(NurseryTest, CancellingWhenAnyCallerCancelsAllAndRethrowsCancelled) {
    std::atomic<int> cancelled_children{0};
    bool caller_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        std::atomic<int> entered{0};
        auto h = ut::spawn([](std::atomic<int>& c, std::atomic<int>& in) -> ut::task<> {
            auto rec = [](std::atomic<int>& cc, std::atomic<int>& i) -> ut::task<int> {
                ++i;
                try {
                    co_await ut::sleep_for(1h);
                } catch (const ut::cancelled&) {
                    ++cc;
                    throw;
                }
                co_return 0;
            };
            co_await ut::when_any(rec(c, in), rec(c, in));
        }(cancelled_children, entered));
        // Both children run (with several workers the caller may otherwise be
        // cancelled before when_any started them).
        co_await yield_until([&] { return entered.load() >= 2; }, "both when_any children ran");
        co_await ut::sleep_for(1ms);
        h.cancel();
        caller_cancelled = co_await join_expect_cancelled(h);
    }());
    EXPECT_TRUE(caller_cancelled);
    EXPECT_EQ(cancelled_children.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, NurseryTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, NurseryTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
