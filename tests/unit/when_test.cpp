// Unit tests for when_all (variadic and vector forms) and when_any: results in
// input order, void carried as std::monostate, failure cancels the rest, and the
// winner of when_any is reported by index with the losers cancelled.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

namespace {

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<int> int_after(int yields, int v) {
    for (int i = 0; i < yields; ++i) co_await ut::yield_now();
    co_return v;
}

ut::task<std::string> string_after(int yields, std::string s) {
    for (int i = 0; i < yields; ++i) co_await ut::yield_now();
    co_return s;
}

ut::task<> void_after(int yields, bool& ran) {
    for (int i = 0; i < yields; ++i) co_await ut::yield_now();
    ran = true;
}

ut::task<int> int_after_sleep(ut::clock::duration d, int v) {
    co_await ut::sleep_for(d);
    co_return v;
}

/// Sleeps "forever" returning `v`; records whether it was cancelled.
ut::task<int> slow_int(int v, int& cancelled_count) {
    try {
        co_await ut::sleep_for(10s);
    } catch (const ut::cancelled&) {
        ++cancelled_count;
        throw;
    }
    co_return v;
}

ut::task<int> fail_after_yields(int yields, std::string msg) {
    for (int i = 0; i < yields; ++i) co_await ut::yield_now();
    throw std::runtime_error(msg);
}

TEST(WhenTest, WhenAllReturnsTupleInInputOrder) {
    std::tuple<int, std::string, int> result;
    ut::run(
        [&]() -> ut::task<> {
            // Completion order is the reverse of input order.
            result = co_await ut::when_all(int_after(6, 1), string_after(3, "two"), int_after(0, 3));
        }(),
        epoll());
    EXPECT_EQ(result, std::make_tuple(1, std::string("two"), 3));
}

TEST(WhenTest, WhenAllVoidBecomesMonostate) {
    bool ran = false;
    int first = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto r = co_await ut::when_all(int_after(1, 5), void_after(2, ran));
            static_assert(std::is_same_v<decltype(r), std::tuple<int, std::monostate>>);
            first = std::get<0>(r);
        }(),
        epoll());
    EXPECT_EQ(first, 5);
    EXPECT_TRUE(ran);
}

TEST(WhenTest, WhenAllRunsConcurrently) {
    // Each branch runs in its own microthread: their steps interleave instead of
    // running one branch to completion after another.
    std::vector<int> log;
    ut::run(
        [&]() -> ut::task<> {
            auto step = [](std::vector<int>& l, int id) -> ut::task<int> {
                l.push_back(id);
                co_await ut::yield_now();
                l.push_back(id);
                co_return id;
            };
            (void)co_await ut::when_all(step(log, 1), step(log, 2), step(log, 3));
        }(),
        epoll());
    EXPECT_EQ(log, (std::vector<int>{1, 2, 3, 1, 2, 3}));
}

TEST(WhenTest, WhenAllFailureCancelsOthersAndIsRethrown) {
    int cancelled = 0;
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            try {
                (void)co_await ut::when_all(slow_int(1, cancelled), fail_after_yields(2, "failed"),
                                            slow_int(3, cancelled));
                ADD_FAILURE() << "when_all did not rethrow";
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "failed");
    EXPECT_EQ(cancelled, 2);
}

TEST(WhenTest, WhenAllVectorKeepsInputOrder) {
    std::vector<int> result;
    ut::run(
        [&]() -> ut::task<> {
            std::vector<ut::task<int>> ts;
            for (int i = 0; i < 10; ++i) ts.push_back(int_after(10 - i, i * i));
            result = co_await ut::when_all(std::move(ts));
        }(),
        epoll());
    EXPECT_EQ(result, (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}));
}

TEST(WhenTest, WhenAllEmptyVector) {
    std::size_t n = 99;
    ut::run(
        [&]() -> ut::task<> {
            auto r = co_await ut::when_all(std::vector<ut::task<int>>{});
            n = r.size();
        }(),
        epoll());
    EXPECT_EQ(n, 0u);
}

TEST(WhenTest, WhenAllVectorOfVoid) {
    bool a = false, b = false;
    std::size_t n = 0;
    ut::run(
        [&]() -> ut::task<> {
            std::vector<ut::task<>> ts;
            ts.push_back(void_after(2, a));
            ts.push_back(void_after(1, b));
            auto r = co_await ut::when_all(std::move(ts));
            static_assert(std::is_same_v<decltype(r), std::vector<std::monostate>>);
            n = r.size();
        }(),
        epoll());
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
    EXPECT_EQ(n, 2u);
}

TEST(WhenTest, WhenAllVectorFailureCancelsOthers) {
    int cancelled = 0;
    bool threw = false;
    ut::run(
        [&]() -> ut::task<> {
            std::vector<ut::task<int>> ts;
            ts.push_back(slow_int(1, cancelled));
            ts.push_back(fail_after_yields(1, "vector failure"));
            ts.push_back(slow_int(2, cancelled));
            try {
                (void)co_await ut::when_all(std::move(ts));
            } catch (const std::runtime_error&) {
                threw = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(threw);
    EXPECT_EQ(cancelled, 2);
}

TEST(WhenTest, WhenAnyReportsWinnerIndexAndCancelsLosers) {
    int cancelled = 0;
    std::variant<int, int, int> r;
    ut::run(
        [&]() -> ut::task<> {
            r = co_await ut::when_any(slow_int(1, cancelled), int_after(2, 20), slow_int(3, cancelled));
        }(),
        epoll());
    EXPECT_EQ(r.index(), 1u);
    EXPECT_EQ(std::get<1>(r), 20);
    EXPECT_EQ(cancelled, 2);
}

TEST(WhenTest, WhenAnyFirstToFinishWins) {
    std::size_t index = 99;
    std::string value;
    ut::run(
        [&]() -> ut::task<> {
            auto r = co_await ut::when_any(int_after_sleep(10s, 1), string_after(5, "slowish"),
                                           string_after(1, "fastest"));
            static_assert(std::is_same_v<decltype(r), std::variant<int, std::string, std::string>>);
            index = r.index();
            if (index == 2) value = std::get<2>(r);
        }(),
        epoll());
    EXPECT_EQ(index, 2u);
    EXPECT_EQ(value, "fastest");
}

TEST(WhenTest, WhenAnyVoidBecomesMonostate) {
    bool ran = false;
    std::size_t index = 99;
    int cancelled = 0;
    ut::run(
        [&]() -> ut::task<> {
            auto r = co_await ut::when_any(slow_int(1, cancelled), void_after(1, ran));
            static_assert(std::is_same_v<decltype(r), std::variant<int, std::monostate>>);
            index = r.index();
        }(),
        epoll());
    EXPECT_EQ(index, 1u);
    EXPECT_TRUE(ran);
    EXPECT_EQ(cancelled, 1);
}

TEST(WhenTest, WhenAnyFailureBeforeSuccessIsRethrown) {
    int cancelled = 0;
    std::string what;
    ut::run(
        [&]() -> ut::task<> {
            try {
                (void)co_await ut::when_any(slow_int(1, cancelled), fail_after_yields(1, "any failed"));
            } catch (const std::runtime_error& e) {
                what = e.what();
            }
        }(),
        epoll());
    EXPECT_EQ(what, "any failed");
    EXPECT_EQ(cancelled, 1);
}

TEST(WhenTest, WhenAnyLoserFailingAfterTheWinnerIsNotAnError) {
    // The loser is cancelled before its failure would happen; the winner stands.
    std::size_t index = 99;
    ut::run(
        [&]() -> ut::task<> {
            auto r = co_await ut::when_any(int_after(1, 1), fail_after_yields(50, "too late"));
            index = r.index();
        }(),
        epoll());
    EXPECT_EQ(index, 0u);
}

TEST(WhenTest, CancellingTheCallerCancelsAllBranches) {
    int cancelled = 0;
    bool all_caller_cancelled = false, any_caller_cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            auto caller = [](int& c) -> ut::task<> {
                (void)co_await ut::when_all(slow_int(1, c), slow_int(2, c));
            };
            auto h = ut::spawn(caller(cancelled));
            co_await ut::sleep_for(1ms);
            h.cancel();
            try {
                co_await h;
            } catch (const ut::cancelled&) {
                all_caller_cancelled = true;
            }
            auto any_caller = [](int& c) -> ut::task<> {
                (void)co_await ut::when_any(slow_int(1, c), slow_int(2, c));
            };
            auto h2 = ut::spawn(any_caller(cancelled));
            co_await ut::sleep_for(1ms);
            h2.cancel();
            try {
                co_await h2;
            } catch (const ut::cancelled&) {
                any_caller_cancelled = true;
            }
        }(),
        epoll());
    EXPECT_TRUE(all_caller_cancelled);
    EXPECT_TRUE(any_caller_cancelled);
    EXPECT_EQ(cancelled, 4);
}

TEST(WhenTest, NothingLeaks) {
    const long long base = ut::lowlevel::live_frames();
    int cancelled = 0;
    ut::run(
        [&]() -> ut::task<> {
            (void)co_await ut::when_all(int_after(1, 1), string_after(2, "x"));
            (void)co_await ut::when_any(slow_int(1, cancelled), int_after(1, 2));
            try {
                (void)co_await ut::when_all(slow_int(1, cancelled), fail_after_yields(1, "x"));
            } catch (const std::runtime_error&) {
            }
        }(),
        epoll());
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
}

}  // namespace
