// Unit tests for promise<T>/future<T>: completion from the same microthread,
// from another OS thread while the runtime is idle, exceptions, broken promises,
// misuse (get_future twice, set twice), and cancellation of a waiting co_await.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

static_assert(std::is_base_of_v<std::logic_error, ut::broken_promise>);
static_assert(!std::is_copy_constructible_v<ut::promise<int>>);
static_assert(!std::is_copy_constructible_v<ut::future<int>>);

TEST(PromiseTest, SetBeforeAwait) {
    int got = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::promise<int> p;
            auto f = p.get_future();
            EXPECT_TRUE(f.valid());
            EXPECT_FALSE(f.is_ready());
            p.set_value(11);
            EXPECT_TRUE(f.is_ready());
            got = co_await f;
        }(),
        epoll());
    EXPECT_EQ(got, 11);
}

TEST(PromiseTest, SetFromAnotherMicrothread) {
    std::string got;
    ut::run(
        [&]() -> ut::task<> {
            ut::promise<std::string> p;
            auto f = p.get_future();
            auto setter = [](ut::promise<std::string>& p) -> ut::task<> {
                co_await ut::yield_now();
                p.set_value("from a microthread");
            };
            auto h = ut::spawn(setter(p));
            got = co_await f;
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(got, "from a microthread");
}

TEST(PromiseTest, SetFromAnotherThreadWakesAnIdleRuntime) {
    // Nothing else is runnable and no timer is armed: the runtime sleeps in its
    // backend until the other thread's set_value wakes it.
    int got = 0;
    ut::promise<int> p;
    auto f = p.get_future();
    std::thread setter;
    ut::run(
        [&]() -> ut::task<> {
            setter = std::thread([&p] {
                std::this_thread::sleep_for(3ms);
                p.set_value(42);
            });
            got = co_await f;
        }(),
        epoll());
    setter.join();
    EXPECT_EQ(got, 42);
}

TEST(PromiseTest, SetFromManyThreads) {
    constexpr int n = 16;
    long long sum = 0;
    std::vector<ut::promise<int>> promises(n);
    std::vector<ut::future<int>> futures;
    for (auto& p : promises) futures.push_back(p.get_future());
    std::vector<std::thread> threads;
    ut::run(
        [&]() -> ut::task<> {
            for (int i = 0; i < n; ++i)
                threads.emplace_back([&promises, i] {
                    std::this_thread::sleep_for(std::chrono::microseconds(100 * (i % 4)));
                    promises[i].set_value(i);
                });
            for (auto& f : futures) sum += co_await f;
        }(),
        epoll());
    for (auto& t : threads) t.join();
    EXPECT_EQ(sum, n * (n - 1) / 2);
}

TEST(PromiseTest, SetFromAThreadWithoutARuntimeBeforeRunStarts) {
    ut::promise<int> p;
    auto f = p.get_future();
    std::thread([&p] { p.set_value(5); }).join();
    EXPECT_TRUE(f.is_ready());
    int got = ut::run([&]() -> ut::task<int> { co_return co_await f; }(), epoll());
    EXPECT_EQ(got, 5);
}

TEST(PromiseTest, VoidPromise) {
    bool done = false;
    ut::promise<> p;
    auto f = p.get_future();
    std::thread setter;
    ut::run(
        [&]() -> ut::task<> {
            setter = std::thread([&p] {
                std::this_thread::sleep_for(1ms);
                p.set_value();
            });
            co_await f;
            done = true;
        }(),
        epoll());
    setter.join();
    EXPECT_TRUE(done);
}

TEST(PromiseTest, MoveOnlyValue) {
    int got = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::promise<std::unique_ptr<int>> p;
            auto f = p.get_future();
            p.set_value(std::make_unique<int>(8));
            auto v = co_await f;
            got = v ? *v : -1;
        }(),
        epoll());
    EXPECT_EQ(got, 8);
}

TEST(PromiseTest, SetExceptionIsRethrown) {
    std::string what;
    ut::promise<int> p;
    auto f = p.get_future();
    std::thread setter;
    ut::run(
        [&]() -> ut::task<> {
            setter = std::thread([&p] {
                std::this_thread::sleep_for(1ms);
                p.set_exception(std::make_exception_ptr(std::runtime_error("remote failure")));
            });
            try {
                (void)co_await f;
                ADD_FAILURE() << "no exception";
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    setter.join();
    EXPECT_EQ(what, "remote failure");
}

TEST(PromiseTest, DroppedPromiseBreaksTheFuture) {
    bool broken = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::future<int> f;
            {
                ut::promise<int> p;
                f = p.get_future();
            }
            EXPECT_TRUE(f.is_ready());
            try {
                (void)co_await f;
            } catch (const ut::broken_promise&) {
                broken = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(broken);
}

TEST(PromiseTest, PromiseDroppedOnAnotherThreadWhileAwaited) {
    bool broken = false;
    auto p = std::make_unique<ut::promise<int>>();
    auto f = p->get_future();
    std::thread dropper;
    ut::run(
        [&]() -> ut::task<> {
            dropper = std::thread([p = std::move(p)]() mutable {
                std::this_thread::sleep_for(2ms);
                p.reset();
            });
            try {
                (void)co_await f;
            } catch (const ut::broken_promise&) {
                broken = true;
            }
        }(),
        epoll());
    dropper.join();
    EXPECT_TRUE(broken);
}

TEST(PromiseTest, MovedFromPromiseDoesNotBreakTheFuture) {
    int got = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::promise<int> a;
            auto f = a.get_future();
            ut::promise<int> b = std::move(a);
            { ut::promise<int> dropped = std::move(a); }  // a moved-from promise owns nothing
            b.set_value(3);
            got = co_await f;
        }(),
        epoll());
    EXPECT_EQ(got, 3);
}

TEST(PromiseTest, GetFutureTwiceThrowsLogicError) {
    ut::promise<int> p;
    auto f = p.get_future();
    EXPECT_THROW((void)p.get_future(), std::logic_error);
    p.set_value(1);
}

TEST(PromiseTest, SetTwiceThrowsLogicError) {
    ut::promise<int> p;
    auto f = p.get_future();
    p.set_value(1);
    EXPECT_THROW(p.set_value(2), std::logic_error);
    EXPECT_THROW(p.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                 std::logic_error);
    // The first value is the one delivered.
    int got = ut::run([&]() -> ut::task<int> { co_return co_await f; }(), epoll());
    EXPECT_EQ(got, 1);
}

TEST(PromiseTest, SetExceptionThenSetValueThrowsLogicError) {
    ut::promise<> p;
    auto f = p.get_future();
    p.set_exception(std::make_exception_ptr(std::runtime_error("first")));
    EXPECT_THROW(p.set_value(), std::logic_error);
}

TEST(PromiseTest, CancelledAwaitLosesNothing) {
    bool cancelled = false;
    int got = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::promise<int> p;
            auto f = p.get_future();
            auto waiter = [](ut::future<int>& f, bool& c) -> ut::task<> {
                try {
                    (void)co_await f;
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto h = ut::spawn(waiter(f, cancelled));
            co_await ut::yield_now();
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
            p.set_value(21);  // after the cancelled waiter left
            got = co_await f;  // the future can be awaited again
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(got, 21);
}

TEST(PromiseTest, CancelledAwaitThenRemoteSetIsSafe) {
    // The other thread completes the promise after the waiter was cancelled; the
    // wake-up must not reach the dead wait (ASan would catch a use after free).
    int got = 0;
    ut::promise<int> p;
    auto f = p.get_future();
    std::thread setter;
    ut::run(
        [&]() -> ut::task<> {
            auto waiter = [](ut::future<int>& f) -> ut::task<> { (void)co_await f; };
            auto h = ut::spawn(waiter(f));
            co_await ut::yield_now();
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
            }
            setter = std::thread([&p] { p.set_value(4); });
            got = co_await f;
        }(),
        epoll());
    setter.join();
    EXPECT_EQ(got, 4);
}

TEST(PromiseTest, EmptyFutureAwaitThrowsLogicError) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::future<int> f;
            EXPECT_FALSE(f.valid());
            EXPECT_FALSE(f.is_ready());
            try {
                (void)co_await f;
            } catch (const std::logic_error&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

}  // namespace
