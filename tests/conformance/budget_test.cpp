// The cooperative budget (DESIGN.md §3 "Run to suspension"): a microthread
// looping on operations that always complete at once must still let timers,
// I/O, thread-pool completions and other microthreads run.
//
// Every spinning loop here gives up after `give_up_after` of real time and
// records that, so a starving runtime fails the test instead of hanging it.

#include "conformance.hpp"

#include <atomic>
#include <thread>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class BudgetTest : public backend_test {};  // NOLINT(readability-identifier-naming)

/// Tests whose waker sleeps for real time need a clock that moves while a
/// microthread is busy; a virtual clock only moves when everything is idle (the
/// "due timer" variants below cover those backends).
constexpr const char* needs_real_clock =
    "needs capability: real clock (virtual time does not pass while a microthread is always ready)";

constexpr auto give_up_after = 10s;

enum class spin_kind { channel, event, semaphore, yield };

/// Shared by the spinners and the waker, which may run on different workers.
struct race {
    std::atomic<bool> flag{false};     // set by the waker; ends the spinners
    std::atomic<bool> gave_up{false};  // a spinner hit give_up_after
};

/// Loops on an always-ready operation until `r.flag` is set.
ut::task<void> spin(race& r, spin_kind kind) {
    ut::channel<int> ch(1);
    ut::event set;
    set.set();
    ut::semaphore sem(1);
    auto w0 = wall_now();
    long iterations = 0;
    while (!r.flag) {
        switch (kind) {
        case spin_kind::channel:
            co_await ch.send(1);
            co_await ch.recv();
            break;
        case spin_kind::event:
            co_await set.wait();
            break;
        case spin_kind::semaphore:
            co_await sem.acquire();
            sem.release();
            break;
        case spin_kind::yield:
            co_await ut::yield_now();
            break;
        }
        if ((++iterations & 1023) == 0 && wall_now() - w0 > give_up_after) {
            r.gave_up = true;
            co_return;
        }
    }
}

ut::task<void> set_after_sleep(race& r, ut::clock::duration d) {
    co_await ut::sleep_for(d);
    r.flag = true;
}

/// Spawns `spinners` spinners of `kind` and the `waker`; joins the spinners,
/// then stops the waker if it is still waiting.
ut::task<void> run_race(race& r, spin_kind kind, int spinners, ut::task<void> waker) {
    std::vector<ut::join_handle<void>> hs;
    hs.reserve(static_cast<std::size_t>(spinners));
    for (int i = 0; i < spinners; ++i) hs.push_back(ut::spawn(spin(r, kind), "spinner"));
    auto w = ut::spawn(std::move(waker), "waker");
    for (auto& h : hs) co_await h;
    co_await cancel_and_join(w);
}

TEST_P(BudgetTest, ChannelLoopCannotStarveSleeper) {
    if (virtual_clock()) GTEST_SKIP() << needs_real_clock;
    race r;
    run_on_backend(run_race(r, spin_kind::channel, 1, set_after_sleep(r, 10ms)));
    EXPECT_FALSE(r.gave_up) << "an always-ready channel loop starved a 10ms sleeper";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, EventLoopCannotStarveSleeper) {
    if (virtual_clock()) GTEST_SKIP() << needs_real_clock;
    race r;
    run_on_backend(run_race(r, spin_kind::event, 1, set_after_sleep(r, 10ms)));
    EXPECT_FALSE(r.gave_up) << "a loop over a set event starved a 10ms sleeper";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, SemaphoreLoopCannotStarveSleeper) {
    if (virtual_clock()) GTEST_SKIP() << needs_real_clock;
    race r;
    run_on_backend(run_race(r, spin_kind::semaphore, 1, set_after_sleep(r, 10ms)));
    EXPECT_FALSE(r.gave_up) << "an uncontended semaphore loop starved a 10ms sleeper";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, YieldPingPongCannotStarveSleeper) {
    if (virtual_clock()) GTEST_SKIP() << needs_real_clock;
    race r;
    run_on_backend(run_race(r, spin_kind::yield, 2, set_after_sleep(r, 10ms)));
    EXPECT_FALSE(r.gave_up) << "two microthreads yielding to each other starved a 10ms sleeper";
    EXPECT_TRUE(r.flag);
}

// The same races with a timer that is already due, so they hold on any clock.

TEST_P(BudgetTest, ChannelLoopCannotStarveDueTimer) {
    race r;
    run_on_backend(run_race(r, spin_kind::channel, 1, set_after_sleep(r, 0ms)));
    EXPECT_FALSE(r.gave_up) << "an always-ready channel loop starved a due timer";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, EventLoopCannotStarveDueTimer) {
    race r;
    run_on_backend(run_race(r, spin_kind::event, 1, set_after_sleep(r, 0ms)));
    EXPECT_FALSE(r.gave_up) << "a loop over a set event starved a due timer";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, YieldPingPongCannotStarveDueTimer) {
    race r;
    run_on_backend(run_race(r, spin_kind::yield, 2, set_after_sleep(r, 0ms)));
    EXPECT_FALSE(r.gave_up) << "two microthreads yielding to each other starved a due timer";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, ChannelLoopCannotStarveReadyMicrothread) {
    race r;
    run_on_backend(run_race(r, spin_kind::channel, 1, [](race& rr) -> ut::task<> {
        co_await ut::yield_now();
        rr.flag = true;
    }(r)));
    EXPECT_FALSE(r.gave_up)
        << "an always-ready loop kept another runnable microthread from running";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, ChannelLoopCannotStarveThreadPoolCompletion) {
    race r;
    run_on_backend(run_race(r, spin_kind::channel, 1, [](race& rr) -> ut::task<> {
        co_await ut::to_thread([] { std::this_thread::sleep_for(10ms); });
        rr.flag = true;
    }(r)));
    EXPECT_FALSE(r.gave_up) << "an always-ready loop starved a to_thread completion";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, ChannelLoopCannotStarveFutureSetFromThread) {
    race r;
    std::thread setter;
    run_on_backend([&]() -> ut::task<> {
        ut::promise<int> p;
        auto f = p.get_future();
        setter = std::thread([pr = std::move(p)]() mutable {
            std::this_thread::sleep_for(10ms);
            pr.set_value(1);
        });
        co_await run_race(r, spin_kind::event, 1, [](race& rr, ut::future<int> fut) -> ut::task<> {
            int v = co_await fut;
            rr.flag = v == 1;
        }(r, std::move(f)));
    }());
    setter.join();
    EXPECT_FALSE(r.gave_up) << "an always-ready loop starved a future completed by another thread";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, ChannelLoopCannotStarveIo) {
    race r;
    run_on_backend([&]() -> ut::task<> {
        // Each socket is made, used and closed by one microthread (with several
        // workers a descriptor may not move between workers yet, and a spawned
        // coroutine's parameters are destroyed by whoever frees its frame, which
        // may be its joiner; docs/threads.md).
        co_await run_race(r, spin_kind::channel, 1, [](race& rr) -> ut::task<> {
            ut::channel<std::uint16_t> port(1);
            auto server = ut::spawn(
                [](ut::channel<std::uint16_t>& p) -> ut::task<char> {
                    auto listener = ut::tcp_listener::bind("127.0.0.1", 0);
                    co_await p.send(listener.port());
                    ut::tcp_stream server_side = co_await listener.accept();
                    char c = 0;
                    co_await server_side.read_exact(std::span<char>(&c, 1));
                    co_return c;
                }(port),
                "server");
            ut::tcp_stream client_side =
                co_await ut::tcp_stream::connect("127.0.0.1", *co_await port.recv());
            co_await client_side.write_all(std::string_view("x"));
            rr.flag = co_await server == 'x';
        }(r));
    }());
    EXPECT_FALSE(r.gave_up) << "an always-ready loop starved socket I/O";
    EXPECT_TRUE(r.flag);
}

TEST_P(BudgetTest, TwoAlwaysReadyLoopsShareTheThread) {
    // Neither may monopolise the thread: when one reaches its target, the other
    // must have progressed comparably (each gets a budget's worth in turn).
    long a = 0, b = 0;  // each loop's own count, read after both were joined
    std::atomic<bool> stop{false}, gave_up{false};
    run_on_backend([&]() -> ut::task<> {
        auto loop = [](long& mine, long target, std::atomic<bool>& st,
                       std::atomic<bool>& gu) -> ut::task<> {
            ut::event e;
            e.set();
            auto w0 = wall_now();
            while (!st) {
                co_await e.wait();
                if (++mine == target) st = true;
                if ((mine & 1023) == 0 && wall_now() - w0 > give_up_after) {
                    gu = true;
                    st = true;
                }
            }
        };
        auto ha = ut::spawn(loop(a, 100'000, stop, gave_up));
        auto hb = ut::spawn(loop(b, -1, stop, gave_up));
        co_await ha;
        co_await hb;
    }());
    EXPECT_FALSE(gave_up.load());
    EXPECT_EQ(a, 100'000);
    // On one worker the loops share the thread, so their counts stay comparable.
    // With several workers they may run on different workers at once, each at
    // the speed the OS gives its thread (docs/threads.md): what must hold there
    // is that the other loop was not starved.
    if (workers() == 1)
        EXPECT_GE(b * 4, a) << "the other always-ready loop got " << b << " turns to " << a;
    else
        EXPECT_GT(b, 0) << "the other always-ready loop never ran";
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BudgetTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, BudgetTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
