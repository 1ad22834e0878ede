// Unit tests for task<T>: lazy start, move-only ownership, values, exceptions,
// misuse (empty or already-awaited tasks), frame recycling, and symmetric transfer
// (deep chains and long runs of synchronous completions do not grow the stack).
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace {

namespace ut = uthreads;

ut::options epoll() { return {.backend = "epoll"}; }

static_assert(!std::is_copy_constructible_v<ut::task<int>>);
static_assert(!std::is_copy_assignable_v<ut::task<int>>);
static_assert(std::is_nothrow_move_constructible_v<ut::task<int>>);
static_assert(std::is_nothrow_move_assignable_v<ut::task<int>>);
static_assert(std::is_same_v<ut::task<>, ut::task<void>>);

ut::task<int> answer() { co_return 42; }

ut::task<int> add_one(ut::task<int> inner) { co_return co_await std::move(inner) + 1; }

ut::task<void> set_flag(bool& flag) {
    flag = true;
    co_return;
}

ut::task<int> throws_runtime_error() {
    throw std::runtime_error("boom");
    co_return 0;
}

ut::task<void> throws_in_void() {
    throw std::out_of_range("void boom");
    co_return;
}

ut::task<int> rethrow_through(int depth) {
    if (depth == 0) co_return co_await throws_runtime_error();
    co_return co_await rethrow_through(depth - 1);
}

ut::task<long> deep_chain(int depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await deep_chain(depth - 1);
}

ut::task<int> ready_value(int v) { co_return v; }

TEST(TaskTest, BodyDoesNotRunUntilAwaited) {
    bool ran = false;
    bool ran_at_creation = true;
    bool ran_after_await = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::task<> t = set_flag(ran);
            ran_at_creation = ran;
            co_await ut::yield_now();  // even a scheduling round does not start it
            EXPECT_FALSE(ran);
            co_await std::move(t);
            ran_after_await = ran;
        }(),
        epoll());
    EXPECT_FALSE(ran_at_creation);
    EXPECT_TRUE(ran_after_await);
}

// Clang elides the heap allocation of a coroutine frame (CoroElide) when it can
// see the task created and destroyed in one function without escaping; the
// TSan build (-O1) does so for the tasks below, so their frames never reach
// the frame pool and live_frames() cannot count them. These tests are about
// heap frames: make each task's address escape, which rules the elision out.
template <class T>
void keep_on_heap(T& t) {
    asm volatile("" : : "r"(&t) : "memory");
}

TEST(TaskTest, TaskNeverAwaitedNeverRunsAndFreesItsFrame) {
    bool ran = false;
    const long long base = ut::lowlevel::live_frames();
    {
        ut::task<> t = set_flag(ran);
        keep_on_heap(t);
        EXPECT_TRUE(t.valid());
        EXPECT_EQ(ut::lowlevel::live_frames(), base + 1);
    }
    EXPECT_FALSE(ran);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

TEST(TaskTest, ReturnsValue) {
    EXPECT_EQ(ut::run(answer(), epoll()), 42);
    int got = ut::run(
        []() -> ut::task<int> {
            int a = co_await answer();
            int b = co_await add_one(answer());
            co_return a + b;
        }(),
        epoll());
    EXPECT_EQ(got, 85);
}

TEST(TaskTest, ReturnsMoveOnlyAndNonTrivialValues) {
    auto p = ut::run(
        []() -> ut::task<std::unique_ptr<int>> {
            auto make = []() -> ut::task<std::unique_ptr<int>> {
                co_return std::make_unique<int>(7);
            };
            co_return co_await make();
        }(),
        epoll());
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 7);

    std::string s = ut::run(
        []() -> ut::task<std::string> { co_return std::string(1000, 'x'); }(), epoll());
    EXPECT_EQ(s, std::string(1000, 'x'));
}

TEST(TaskTest, VoidTaskRuns) {
    bool flag = false;
    ut::run(
        [&]() -> ut::task<> {
            co_await set_flag(flag);
            EXPECT_TRUE(flag);
        }(),
        epoll());
    EXPECT_TRUE(flag);
}

TEST(TaskTest, ExceptionPropagatesThroughCoAwait) {
    std::string caught;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await throws_runtime_error();
                ADD_FAILURE() << "no exception";
            } catch (const std::runtime_error& e) {
                caught = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(caught, "boom");
}

TEST(TaskTest, ExceptionPropagatesThroughManyLevelsAndOutOfRun) {
    EXPECT_THROW(ut::run(rethrow_through(50), epoll()), std::runtime_error);
    EXPECT_THROW(ut::run(throws_in_void(), epoll()), std::out_of_range);
}

TEST(TaskTest, VoidTaskException) {
    bool caught = false;
    ut::run(
        [&]() -> ut::task<> {
            try {
                co_await throws_in_void();
            } catch (const std::out_of_range&) {
                caught = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(caught);
}

TEST(TaskTest, AwaitingMovedFromTaskThrowsLogicError) {
    bool threw = false;
    bool moved_to_still_works = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::task<int> a = answer();
            ut::task<int> b = std::move(a);
            EXPECT_FALSE(a.valid());
            EXPECT_TRUE(b.valid());
            try {
                co_await a;
            } catch (const std::logic_error&) {
                threw = true;
            }
            moved_to_still_works = co_await b == 42;
        }(),
        epoll());
    EXPECT_TRUE(threw);
    EXPECT_TRUE(moved_to_still_works);
}

TEST(TaskTest, AwaitingDefaultConstructedTaskThrowsLogicError) {
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::task<int> empty;
            EXPECT_FALSE(empty.valid());
            try {
                co_await empty;
            } catch (const std::logic_error&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
}

TEST(TaskTest, AwaitingTwiceThrowsLogicError) {
    int first = 0;
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::task<int> t = answer();
            first = co_await t;
            try {
                (void)co_await t;
            } catch (const std::logic_error&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_EQ(first, 42);
    EXPECT_TRUE(threw);
}

TEST(TaskTest, RunOfEmptyTaskThrowsLogicError) {
    ut::task<int> empty;
    EXPECT_THROW(ut::run(std::move(empty), epoll()), std::logic_error);
}

TEST(TaskTest, MoveAssignmentDestroysTheOldFrame) {
    const long long base = ut::lowlevel::live_frames();
    bool first_ran = false, second_ran = false;
    {
        ut::task<> a = set_flag(first_ran);
        ut::task<> b = set_flag(second_ran);
        keep_on_heap(a);
        keep_on_heap(b);
        EXPECT_EQ(ut::lowlevel::live_frames(), base + 2);
        a = std::move(b);  // a's original frame is destroyed unrun
        EXPECT_EQ(ut::lowlevel::live_frames(), base + 1);
        ut::run(std::move(a), epoll());
    }
    EXPECT_FALSE(first_ran);
    EXPECT_TRUE(second_ran);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

TEST(TaskTest, FramesAreRecycled) {
    const long long base = ut::lowlevel::live_frames();
    long long inside_before = -1, inside_during = -1, inside_after = -1;
    ut::run(
        [&]() -> ut::task<> {
            inside_before = ut::lowlevel::live_frames();
            {
                ut::task<int> t = answer();
                keep_on_heap(t);
                inside_during = ut::lowlevel::live_frames();
                EXPECT_EQ(co_await t, 42);
            }
            for (int i = 0; i < 1000; ++i) (void)co_await add_one(answer());
            inside_after = ut::lowlevel::live_frames();
        }(),
        epoll());
    EXPECT_EQ(inside_during, inside_before + 1);
    EXPECT_EQ(inside_after, inside_before) << "nested task frames must be freed after use";
    EXPECT_EQ(ut::lowlevel::live_frames(), base) << "run() must leave no frame alive";
}

TEST(TaskTest, FramesAreRecycledAfterExceptions) {
    const long long base = ut::lowlevel::live_frames();
    EXPECT_THROW(ut::run(rethrow_through(20), epoll()), std::runtime_error);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

TEST(TaskTest, DeepChainDoesNotGrowTheStack) {
    // Without symmetric transfer each level would cost a native stack frame;
    // 500'000 levels would overflow an 8 MiB stack many times over.
    constexpr int depth = 500'000;
    const long long base = ut::lowlevel::live_frames();
    EXPECT_EQ(ut::run(deep_chain(depth), epoll()), depth);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

TEST(TaskTest, ManySynchronousCompletionsDoNotGrowTheStack) {
    constexpr int n = 300'000;
    long long sum = ut::run(
        []() -> ut::task<long long> {
            long long s = 0;
            for (int i = 0; i < n; ++i) s += co_await ready_value(1);
            co_return s;
        }(),
        epoll());
    EXPECT_EQ(sum, n);
}

}  // namespace
