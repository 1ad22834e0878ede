// Unit tests for with_nursery: children are joined before it returns, the first
// failure cancels the body and the other children and is rethrown, n.cancel()
// ends it normally, and cancelling its microthread cancels the children.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<> sleep_then_count(ut::clock::duration d, int& count) {
    co_await ut::sleep_for(d);
    ++count;
}

ut::task<> yield_then_count(int yields, int& count) {
    for (int i = 0; i < yields; ++i) co_await ut::yield_now();
    ++count;
}

/// Sleeps "forever"; records whether it was cancelled.
ut::task<> sleep_forever(int& cancelled_count) {
    try {
        co_await ut::sleep_for(10s);
    } catch (const ut::cancelled&) {
        ++cancelled_count;
        throw;
    }
    ADD_FAILURE() << "sleep_forever was not cancelled";
}

ut::task<> fail_after(ut::clock::duration d, std::string msg) {
    co_await ut::sleep_for(d);
    throw std::runtime_error(msg);
}

TEST(NurseryTest, JoinsAllChildrenBeforeReturning) {
    int done = 0;
    int done_when_returned = -1;
    const long long base = ut::lowlevel::live_frames();
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(sleep_then_count(1ms, done), "sleeper");
                n.spawn(yield_then_count(5, done));
                n.spawn(yield_then_count(0, done));
                EXPECT_EQ(n.running(), 3u);
                co_return;
            });
            done_when_returned = done;
        }(),
        epoll());
    EXPECT_EQ(done_when_returned, 3);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

TEST(NurseryTest, EmptyNurseryReturnsAtOnce) {
    bool body_ran = false;
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery&) -> ut::task<> {
                body_ran = true;
                co_return;
            });
        }(),
        epoll());
    EXPECT_TRUE(body_ran);
}

TEST(NurseryTest, ChildValuesAreDiscardedAndChildrenRunConcurrently) {
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            auto child = [](std::vector<int>& l, int id) -> ut::task<int> {
                l.push_back(id);
                co_await ut::yield_now();
                l.push_back(id + 10);
                co_return id;
            };
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(child(log, 1));
                n.spawn(child(log, 2));
                co_return;
            });
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{1, 2, 11, 12}));
}

TEST(NurseryTest, BodyMayAwaitWhileChildrenRun) {
    int done = 0;
    int seen_by_body = -1;
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(yield_then_count(1, done));
                co_await ut::sleep_for(1ms);
                seen_by_body = done;
                n.spawn(yield_then_count(1, done));
            });
        }(),
        epoll());
    EXPECT_EQ(seen_by_body, 1);
    EXPECT_EQ(done, 2);
}

TEST(NurseryTest, ChildMaySpawnSiblingsWhileTheNurseryJoins) {
    int done = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto spawner = [](ut::nursery& n, int& d) -> ut::task<> {
                co_await ut::yield_now();
                n.spawn(yield_then_count(2, d), "sibling");
                ++d;
            };
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(spawner(n, done));
                co_return;  // the body ends before the sibling is spawned
            });
            EXPECT_EQ(done, 2) << "the late sibling was joined too";
        }(),
        epoll());
    EXPECT_EQ(done, 2);
}

TEST(NurseryTest, FirstChildFailureCancelsOthersAndIsRethrown) {
    int cancelled = 0;
    std::string what;
    auto start = std::chrono::steady_clock::now();
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(cancelled));
                    n.spawn(fail_after(1ms, "child failed"));
                    n.spawn(sleep_forever(cancelled));
                    co_return;
                });
                ADD_FAILURE() << "with_nursery did not rethrow";
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "child failed");
    EXPECT_EQ(cancelled, 2);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(NurseryTest, OnlyTheFirstFailureIsRethrown) {
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            auto fail_on_cancel = []() -> ut::task<> {
                try {
                    co_await ut::sleep_for(10s);
                } catch (const ut::cancelled&) {
                }
                throw std::runtime_error("second failure, during cleanup");
            };
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(fail_on_cancel());
                    n.spawn(fail_after(1ms, "first failure"));
                    co_return;
                });
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "first failure");
}

TEST(NurseryTest, FailureCancelsTheBodyToo) {
    bool body_cancelled = false;
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(fail_after(1ms, "child failed"));
                    try {
                        co_await ut::sleep_for(10s);
                    } catch (const ut::cancelled&) {
                        body_cancelled = true;
                        throw;
                    }
                });
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_TRUE(body_cancelled);
    EXPECT_EQ(what, "child failed");
}

TEST(NurseryTest, BodyFailureCancelsChildrenAndIsRethrown) {
    int cancelled = 0;
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(cancelled));
                    n.spawn(sleep_forever(cancelled));
                    co_await ut::yield_now();
                    throw std::logic_error("body failed");
                });
            } catch (const std::logic_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "body failed");
    EXPECT_EQ(cancelled, 2);
}

TEST(NurseryTest, CallerContinuesNormallyAfterAFailedNursery) {
    // The nursery's internal cancellation does not leak into the caller.
    bool after = false;
    ut::run(
        [&]() -> ut::task<> {
            int cancelled = 0;
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(cancelled));
                    n.spawn(fail_after(0ms, "x"));
                    co_return;
                });
            } catch (const std::runtime_error&) {
            }
            co_await ut::yield_now();
            co_await ut::sleep_for(1ms);
            after = true;
        }(),
        epoll());
    EXPECT_TRUE(after);
}

TEST(NurseryTest, CancelEndsTheNurseryNormally) {
    int cancelled = 0;
    bool body_cancelled = false, returned = false;
    ut::run(
        [&]() -> ut::task<> {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(sleep_forever(cancelled));
                n.spawn(sleep_forever(cancelled));
                co_await ut::yield_now();
                n.cancel();
                try {
                    co_await ut::sleep_for(10s);
                } catch (const ut::cancelled&) {
                    body_cancelled = true;
                    throw;
                }
            });
            returned = true;
            co_await ut::yield_now();  // no cancellation left over for the caller
        }(),
        epoll());
    EXPECT_TRUE(returned);
    EXPECT_TRUE(body_cancelled);
    EXPECT_EQ(cancelled, 2);
}

TEST(NurseryTest, CancelFromAChildEndsTheNurseryNormally) {
    int cancelled = 0;
    bool returned = false;
    ut::run(
        [&]() -> ut::task<> {
            auto canceller = [](ut::nursery& n) -> ut::task<> {
                co_await ut::sleep_for(1ms);
                n.cancel();
            };
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(sleep_forever(cancelled));
                n.spawn(canceller(n));
                co_return;
            });
            returned = true;
        }(),
        epoll());
    EXPECT_TRUE(returned);
    EXPECT_EQ(cancelled, 1);
}

TEST(NurseryTest, CancellingTheOwnerCancelsChildren) {
    int cancelled = 0;
    bool owner_cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            auto owner = [](int& c) -> ut::task<> {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(c));
                    n.spawn(sleep_forever(c));
                    co_await ut::sleep_for(10s);
                });
            };
            auto h = ut::spawn(owner(cancelled));
            co_await ut::sleep_for(1ms);
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
                owner_cancelled = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(owner_cancelled);
    EXPECT_EQ(cancelled, 2);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

TEST(NurseryTest, CancellingTheOwnerWhileItJoinsCancelsChildren) {
    // The body has already returned; the owner is parked joining the children.
    int cancelled = 0;
    bool owner_cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            auto owner = [](int& c) -> ut::task<> {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(c));
                    co_return;
                });
            };
            auto h = ut::spawn(owner(cancelled));
            co_await ut::sleep_for(1ms);
            EXPECT_FALSE(h.done());
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
                owner_cancelled = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(owner_cancelled);
    EXPECT_EQ(cancelled, 1);
}

TEST(NurseryTest, CancelledChildIsNotAFailure) {
    // A child that ends with `cancelled` does not fail the nursery: only
    // exceptions other than `cancelled` do.
    int done = 0;
    bool returned = false;
    ut::run(
        [&]() -> ut::task<> {
            auto quitter = []() -> ut::task<> {
                throw ut::cancelled{};
                co_return;
            };
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                n.spawn(quitter());
                n.spawn(yield_then_count(3, done));
                co_return;
            });
            returned = true;
        }(),
        epoll());
    EXPECT_TRUE(returned);
    EXPECT_EQ(done, 1) << "siblings are not cancelled by a child's `cancelled`";
}

TEST(NurseryTest, NestedNurseriesPropagateFailureOutward) {
    int cancelled = 0;
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            auto inner = [](int& c) -> ut::task<> {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(c));
                    n.spawn(fail_after(1ms, "deep failure"));
                    co_return;
                });
            };
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(sleep_forever(cancelled));
                    n.spawn(inner(cancelled));
                    co_return;
                });
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "deep failure");
    EXPECT_EQ(cancelled, 2);
}

TEST(NurseryTest, FailureIsNotReportedAsUnhandled) {
    int reports = 0;
    auto old = ut::set_unhandled_exception_handler(
        [&](std::string_view, std::exception_ptr) { ++reports; });
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                    n.spawn(fail_after(0ms, "observed by the nursery"));
                    co_return;
                });
            } catch (const std::runtime_error&) {
            }
        }(),
        epoll());
    ut::set_unhandled_exception_handler(std::move(old));
    EXPECT_EQ(reports, 0);
}

}  // namespace
