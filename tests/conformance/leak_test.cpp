// DESIGN.md §3 "No leaks": when run() returns, no microthread, registration,
// fd or frame it made is left alive, whatever was still running or blocked.
// (Every conformance test checks this through run_on_backend; these tests
// build the situations most likely to leak.)

#include "conformance.hpp"

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class LeakTest : public backend_test {};  // NOLINT(readability-identifier-naming)

ut::task<void> sleep_task(ut::clock::duration d) {
    co_await ut::sleep_for(d);
}

ut::task<int> deep_sleep(int n) {
    if (n == 0) {
        co_await ut::sleep_for(1h);
        co_return 0;
    }
    co_return 1 + co_await deep_sleep(n - 1);
}

// Threads of this process. ThreadSanitizer starts a helper thread of its own at
// the process's first thread creation: one thread made and joined first puts it
// in every count, so only threads the runtime leaves behind make a difference.
long thread_count() {
    static const bool helpers_started = [] {
        std::thread([] {}).join();
        return true;
    }();
    (void)helpers_started;
    std::error_code ec;
    long n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
         it.increment(ec))
        ++n;
    return n;
}

TEST_P(LeakTest, ThousandDetachedSleepersAtReturn) {
    long long alive_inside = 0;
    run_on_backend([&]() -> ut::task<> {
        for (int i = 0; i < 1000; ++i) ut::spawn(sleep_task(1h), "sleeper " + std::to_string(i));
        co_await ut::yield_now();
        alive_inside = ut::lowlevel::live_microthreads();
    }());
    EXPECT_GE(alive_inside, 1001);
}

TEST_P(LeakTest, DetachedNeverStartedAtReturn) {
    long long alive_inside = 0;
    run_on_backend([&]() -> ut::task<> {
        for (int i = 0; i < 100; ++i) ut::spawn(sleep_task(1h)).detach();
        alive_inside = ut::lowlevel::live_microthreads();
        co_return;  // none of them has run yet
    }());
    EXPECT_GE(alive_inside, 101);
}

TEST_P(LeakTest, DeepNestedChainsSuspendedAtReturn) {
    run_on_backend([]() -> ut::task<> {
        for (int i = 0; i < 10; ++i) ut::spawn(deep_sleep(1000));
        co_await ut::sleep_for(1ms);
    }());
}

TEST_P(LeakTest, UnfinishedJoinHandlesAtReturn) {
    run_on_backend([]() -> ut::task<> {
        // Handles held by main until it returns, never joined.
        auto a = ut::spawn(sleep_task(1h));
        auto b = ut::spawn([]() -> ut::task<int> { co_return 1; }());
        co_await ut::sleep_for(1ms);
        // With several workers b may have been taken by a worker the OS has not
        // run yet.
        co_await yield_until([&] { return b.done(); }, "b.done()");
        EXPECT_TRUE(b.done());
        EXPECT_FALSE(a.done());
    }());
}

TEST_P(LeakTest, TasksCreatedButNeverAwaited) {
    run_on_backend([]() -> ut::task<> {
        std::vector<ut::task<int>> unused;
        unused.reserve(100);
        for (int i = 0; i < 100; ++i) unused.push_back(deep_sleep(i));
        auto moved = std::move(unused.front());
        unused.clear();
        co_return;
    }());
}

TEST_P(LeakTest, DetachedBlockedOnPrimitivesAtReturn) {
    // The primitives outlive the run (they are the test's), as a correct
    // program's would outlive the microthreads waiting on them.
    ut::mutex m;
    ut::channel<std::string> empty(0), full(1);
    ut::event never;
    ut::semaphore sem(0);
    ut::condition_variable cv;
    ut::wait_queue q;
    ut::mutex cv_mutex;
    // Each waiter appends to `blocked` in the same step as it parks; the
    // condition variable's waiter parks before it unlocks cv_mutex.
    shared_log<int> blocked;
    run_on_backend([&]() -> ut::task<> {
        auto held = co_await m.lock();
        EXPECT_TRUE(full.try_send("x"));
        ut::spawn([](ut::mutex& mx, shared_log<int>& b) -> ut::task<> {
            auto g = co_await b.queued(mx.lock(), 0);
        }(m, blocked));
        ut::spawn([](ut::channel<std::string>& c, shared_log<int>& b) -> ut::task<> {
            co_await b.queued(c.recv(), 1);
        }(empty, blocked));
        ut::spawn([](ut::channel<std::string>& c, shared_log<int>& b) -> ut::task<> {
            co_await b.queued(c.send(std::string(1000, 'y')), 2);
        }(full, blocked));
        ut::spawn([](ut::event& e, shared_log<int>& b) -> ut::task<> {
            co_await b.queued(e.wait(), 3);
        }(never, blocked));
        ut::spawn([](ut::semaphore& s, shared_log<int>& b) -> ut::task<> {
            co_await b.queued(s.acquire(), 4);
        }(sem, blocked));
        ut::spawn([](ut::wait_queue& wq, shared_log<int>& b) -> ut::task<> {
            co_await b.queued(wq.wait(), 5);
        }(q, blocked));
        ut::spawn([](ut::condition_variable& c, ut::mutex& mx, shared_log<int>& b) -> ut::task<> {
            auto g = co_await mx.lock();
            b.add(6);
            co_await c.wait(g);
        }(cv, cv_mutex, blocked));
        co_await yield_until([&] { return blocked.size() >= 7; }, "blocked >= 7");
        {
            auto g = co_await cv_mutex.lock();  // the cv waiter has parked
        }
        held.unlock();  // the mutex waiter gets it and is then cancelled at shutdown
    }());
    EXPECT_EQ(blocked.size(), 7u);
    // Nobody is left queued on any primitive.
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(m.is_locked());
    EXPECT_EQ(empty.try_recv(), std::nullopt);
    EXPECT_EQ(full.size(), 1u) << "a send cancelled at shutdown delivered its value";
}

TEST_P(LeakTest, DetachedTcpListenerAndStreamsAtReturn) {
    std::atomic<int> parked{0};
    run_on_backend([&]() -> ut::task<> {
        // A server accepting forever, owning its listener.
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        std::uint16_t port = l.port();
        ut::spawn(
            [](ut::tcp_listener lst, std::atomic<int>& p) -> ut::task<> {
                std::vector<ut::tcp_stream> accepted;
                for (;;) {
                    ++p;
                    accepted.push_back(co_await lst.accept());
                }
            }(std::move(l), parked),
            "acceptor");
        // Clients that connect and then block reading forever.
        for (int i = 0; i < 5; ++i)
            ut::spawn(
                [](std::uint16_t pt, std::atomic<int>& p) -> ut::task<> {
                    auto s = co_await ut::tcp_stream::connect("127.0.0.1", pt);
                    char b;
                    ++p;
                    co_await s.read_some(std::span<char>(&b, 1));
                }(port, parked),
                "reader");
        // A writer blocked on a full socket whose peer never reads.
        ut::spawn(
            [](std::uint16_t pt, std::atomic<int>& p) -> ut::task<> {
                auto s = co_await ut::tcp_stream::connect("127.0.0.1", pt);
                std::vector<std::byte> big(64 << 20, std::byte{7});
                ++p;
                co_await s.write_all(std::span<const std::byte>(big));
            }(port, parked),
            "writer");
        // Let everything connect and park.
        for (int i = 0; i < 200 && parked < 6 + 7; ++i) co_await ut::sleep_for(1ms);
    }());
    EXPECT_GE(parked.load(), 6 + 7) << "not every microthread reached its blocking operation";
}

TEST_P(LeakTest, MainThrowsWhileOthersRun) {
    EXPECT_THROW(run_on_backend([]() -> ut::task<> {
                     for (int i = 0; i < 50; ++i) ut::spawn(sleep_task(1h));
                     auto l = ut::tcp_listener::bind("127.0.0.1", 0);
                     ut::spawn([](ut::tcp_listener lst) -> ut::task<> {
                         co_await lst.accept();
                     }(std::move(l)));
                     co_await ut::sleep_for(1ms);
                     throw std::runtime_error("main failed");
                 }()),
                 std::runtime_error);
}

TEST_P(LeakTest, ShieldedCleanupRunsDuringShutdown) {
    bool cleanup_done = false;
    run_on_backend([&]() -> ut::task<> {
        ut::spawn([](bool& done) -> ut::task<> {
            bool was_cancelled = false;
            try {
                co_await ut::sleep_for(1h);
            } catch (const ut::cancelled&) {
                was_cancelled = true;
            }
            if (was_cancelled) {
                ut::cancel_shield shield;
                co_await ut::sleep_for(10ms);
                done = true;
            }
        }(cleanup_done));
        co_await ut::sleep_for(1ms);
    }());
    EXPECT_TRUE(cleanup_done) << "run() returned before a shielded cleanup finished";
}

TEST_P(LeakTest, ToThreadInFlightAtReturnIsWaitedFor) {
    bool blocking_call_finished = false;
    long threads_before = thread_count();
    run_on_backend([&]() -> ut::task<> {
        ut::spawn([](bool& f) -> ut::task<> {
            co_await ut::to_thread([&f] {
                std::this_thread::sleep_for(30ms);
                f = true;
            });
        }(blocking_call_finished));
        co_await ut::sleep_for(1ms);
    }());
    EXPECT_TRUE(blocking_call_finished) << "run() returned with a blocking call still running";
    EXPECT_EQ(thread_count(), threads_before) << "the blocking pool's threads outlived run()";
}

TEST_P(LeakTest, ManyRunsDoNotAccumulate) {
    for (int r = 0; r < 30; ++r) {
        int v = run_on_backend([]() -> ut::task<int> {
            auto l = ut::tcp_listener::bind("127.0.0.1", 0);
            ut::spawn(
                [](ut::tcp_listener lst) -> ut::task<> { co_await lst.accept(); }(std::move(l)));
            for (int i = 0; i < 20; ++i) ut::spawn(sleep_task(1h));
            co_await ut::sleep_for(100us);
            co_return 1;
        }());
        ASSERT_EQ(v, 1);
        if (HasFailure()) break;  // the leak checks already said which run
    }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, LeakTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, LeakTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
