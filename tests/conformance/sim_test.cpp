// Determinism and virtual time (DESIGN.md §3 "Fairness and determinism"): on a
// backend with a virtual clock, one seed gives one schedule, and long sleeps
// take no real time. Skipped, with the capability named, elsewhere.

#include "conformance.hpp"

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class SimTest : public backend_test {};  // NOLINT(readability-identifier-naming)

constexpr const char* needs_virtual_clock = "needs capability: virtual clock (sim)";

struct trace_entry {
    long long t_ns;  // ut::now() - start
    int id;
    int step;
    long long value;
    bool operator==(const trace_entry&) const = default;
};

std::ostream& operator<<(std::ostream& os, const trace_entry& e) {
    return os << "{t=" << e.t_ns << "ns id=" << e.id << " step=" << e.step << " v=" << e.value
              << "}";
}

/// One microthread of the workload: a fixed pseudo-random walk (per id, not per
/// seed) over sleeps, yields, and timed channel sends/receives. What it records
/// depends on the schedule: when it wakes and what it receives.
ut::task<void> worker(std::vector<trace_entry>& trace, ut::clock::time_point start, int id,
                      ut::channel<int>& ch, ut::mutex& m) {
    std::uint32_t x = 0x9e3779b9u * static_cast<std::uint32_t>(id + 1);
    for (int step = 0; step < 30; ++step) {
        x = x * 1664525u + 1013904223u;
        long long value = -1;
        switch ((x >> 16) % 5) {
        case 0:
            co_await ut::sleep_for(std::chrono::microseconds((x >> 8) % 3000));
            break;
        case 1:
            co_await ut::yield_now();
            break;
        case 2:
            value = (co_await ut::move_on_after(700us, ch.send(id * 1000 + step))) ? 1 : 0;
            break;
        case 3: {
            auto r = co_await ut::move_on_after(900us, ch.recv());
            value = !r ? -3 : !*r ? -2 : **r;
            break;
        }
        case 4: {
            auto g = co_await m.lock();
            co_await ut::sleep_for(std::chrono::microseconds(x % 200));
            value = 7;
            break;
        }
        }
        trace.push_back({(ut::now() - start).count(), id, step, value});
    }
}

ut::task<std::vector<trace_entry>> workload() {
    std::vector<trace_entry> trace;
    ut::channel<int> ch(2);
    ut::mutex m;
    auto start = ut::now();
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int id = 0; id < 8; ++id) n.spawn(worker(trace, start, id, ch, m), "worker");
        co_return;
    });
    co_return trace;
}

TEST_P(SimTest, SameSeedGivesIdenticalTrace) {
    if (!virtual_clock()) GTEST_SKIP() << needs_virtual_clock;
    auto first = run_on_backend(workload(), 42);
    auto second = run_on_backend(workload(), 42);
    ASSERT_EQ(first.size(), 8u * 30u);
    EXPECT_GT(first.back().t_ns, 0) << "virtual time did not advance";
    EXPECT_EQ(first, second) << "two runs with one seed gave different schedules";
}

TEST_P(SimTest, SameSeedIdenticalAfterOtherSeeds) {
    // No hidden state carried from one run to the next.
    if (!virtual_clock()) GTEST_SKIP() << needs_virtual_clock;
    auto reference = run_on_backend(workload(), 7);
    int differing = 0;
    for (std::uint64_t seed : {1u, 2u, 3u, 99u}) {
        auto other = run_on_backend(workload(), seed);
        ASSERT_EQ(other.size(), 8u * 30u);
        if (other != reference) ++differing;
    }
    auto again = run_on_backend(workload(), 7);
    EXPECT_EQ(again, reference);
    // Different seeds are meant to explore different schedules; that is not
    // guaranteed for a given workload, so it is reported, not asserted.
    RecordProperty("seeds_with_a_different_trace", differing);
}

TEST_P(SimTest, HourLongSleepTakesNoRealTime) {
    if (!virtual_clock()) GTEST_SKIP() << needs_virtual_clock;
    ut::clock::duration virtual_elapsed{};
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        auto t0 = ut::now();
        co_await ut::sleep_for(1h);
        virtual_elapsed = ut::now() - t0;
    }());
    auto wall = wall_now() - w0;
    EXPECT_GE(virtual_elapsed, 1h);
    EXPECT_LT(wall, 1s);
}

TEST_P(SimTest, VirtualTimeJumpsExactlyToTheNextTimer) {
    if (!virtual_clock()) GTEST_SKIP() << needs_virtual_clock;
    std::vector<ut::clock::duration> woke;
    run_on_backend([&]() -> ut::task<> {
        auto t0 = ut::now();
        for (auto d : {5ms, 1ms, 250ms}) {
            co_await ut::sleep_for(d);
            woke.push_back(ut::now() - t0);
        }
    }());
    ASSERT_EQ(woke.size(), 3u);
    // Never early, and nothing else is running to make it later.
    EXPECT_GE(woke[0], 5ms);
    EXPECT_LT(woke[0], 6ms);
    EXPECT_GE(woke[1], 6ms);
    EXPECT_LT(woke[1], 7ms);
    EXPECT_GE(woke[2], 256ms);
    EXPECT_LT(woke[2], 257ms);
}

TEST_P(SimTest, ManyLongTimersFireInOrderInstantly) {
    if (!virtual_clock()) GTEST_SKIP() << needs_virtual_clock;
    std::vector<int> order;
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 500; ++i) {
                int k = (i * 7919) % 500;  // a permutation of 0..499
                n.spawn([](int kk, std::vector<int>& o) -> ut::task<> {
                    co_await ut::sleep_for(std::chrono::minutes(kk + 1));
                    o.push_back(kk);
                }(k, order));
            }
            co_return;
        });
    }());
    EXPECT_LT(wall_now() - w0, 5s);
    ASSERT_EQ(order.size(), 500u);
    for (int i = 0; i < 500; ++i) EXPECT_EQ(order[i], i);
}

TEST_P(SimTest, LongTimeoutOnStuckOperationTakesNoRealTime) {
    if (!virtual_clock()) GTEST_SKIP() << needs_virtual_clock;
    bool timed_out = false;
    ut::clock::duration virtual_elapsed{};
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        ut::event never;
        auto t0 = ut::now();
        try {
            co_await ut::with_timeout(24h, never.wait());
        } catch (const ut::timeout_error&) {
            timed_out = true;
        }
        virtual_elapsed = ut::now() - t0;
    }());
    EXPECT_TRUE(timed_out);
    EXPECT_GE(virtual_elapsed, 24h);
    EXPECT_LT(wall_now() - w0, 1s);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SimTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
