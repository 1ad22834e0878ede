// Branching execution: spawn, join_handle (value, exception, done, detach),
// the unhandled-exception handler, and which backend runs us.

#include "conformance.hpp"

#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class SpawnTest : public backend_test {};  // NOLINT(readability-identifier-naming)

ut::task<int> add_later(int a, int b) {
    co_await ut::sleep_for(1ms);
    co_return a + b;
}

ut::task<void> sleep_task(ut::clock::duration d) {
    co_await ut::sleep_for(d);
}

ut::task<std::string> fail_later(std::string msg) {
    co_await ut::yield_now();
    throw std::runtime_error(msg);
}

TEST_P(SpawnTest, JoinReturnsValue) {
    int v = run_on_backend([]() -> ut::task<int> {
        auto h = ut::spawn(add_later(40, 2), "adder");
        co_return co_await h;
    }());
    EXPECT_EQ(v, 42);
}

TEST_P(SpawnTest, JoinRethrowsRuntimeError) {
    std::string what;
    bool other = false;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn(fail_later("joined failure"));
        try {
            co_await h;
        } catch (const std::runtime_error& e) {
            what = e.what();
        } catch (...) {
            other = true;
        }
    }());
    EXPECT_EQ(what, "joined failure");
    EXPECT_FALSE(other);
}

TEST_P(SpawnTest, JoinRethrowsExceptionOfMicrothreadThatThrewBeforeSuspending) {
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn([]() -> ut::task<int> {
            throw std::invalid_argument("immediately");
            co_return 0;
        }());
        try {
            co_await h;
        } catch (const std::invalid_argument& e) {
            what = e.what();
        }
    }());
    EXPECT_EQ(what, "immediately");
}

TEST_P(SpawnTest, ManyMicrothreadsAllJoined) {
    long long sum = run_on_backend([]() -> ut::task<long long> {
        std::vector<ut::join_handle<int>> hs;
        hs.reserve(1000);
        for (int i = 0; i < 1000; ++i) hs.push_back(ut::spawn(add_later(i, 1)));
        long long s = 0;
        for (auto& h : hs) s += co_await h;
        co_return s;
    }());
    EXPECT_EQ(sum, 1000LL * 999 / 2 + 1000);
}

TEST_P(SpawnTest, SpawnedMicrothreadDoesNotRunUntilSpawnerSuspends) {
    bool ran_before_suspend = true;
    bool ran_after = false;
    run_on_backend([&]() -> ut::task<> {
        std::atomic<bool> flag{false};
        auto h = ut::spawn([](std::atomic<bool>& f) -> ut::task<> {
            f = true;
            co_return;
        }(flag));
        ran_before_suspend = flag.load();  // no suspension since spawn
        co_await h;
        ran_after = flag.load();
    }());
    // One worker runs the spawned microthread only once the spawner suspends.
    // With several workers an idle worker may start it at once (docs/threads.md):
    // what must hold there is that it ran, and that joining it sees its effects.
    if (workers() == 1) EXPECT_FALSE(ran_before_suspend);
    EXPECT_TRUE(ran_after);
}

TEST_P(SpawnTest, DoneReflectsCompletion) {
    bool before = true, after = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event go;
        auto h = ut::spawn([](ut::event& e) -> ut::task<int> {
            co_await e.wait();
            co_return 1;
        }(go));
        co_await ut::yield_now();
        before = h.done();
        go.set();
        co_await yield_until([&] { return h.done(); }, "h.done()");
        after = h.done();
        EXPECT_EQ(co_await h, 1);
    }());
    EXPECT_FALSE(before);
    EXPECT_TRUE(after);
}

TEST_P(SpawnTest, CancelAfterCompletionIsANoOp) {
    int v = run_on_backend([]() -> ut::task<int> {
        auto h = ut::spawn([]() -> ut::task<int> { co_return 7; }());
        co_await yield_until([&] { return h.done(); }, "h.done()");
        h.cancel();
        h.cancel();  // idempotent
        co_return co_await h;
    }());
    EXPECT_EQ(v, 7);
}

TEST_P(SpawnTest, IdsAreUniqueWithinARun) {
    std::set<std::uint64_t> ids;
    run_on_backend([&]() -> ut::task<> {
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(100);
        for (int i = 0; i < 100; ++i) hs.push_back(ut::spawn(sleep_task(1ms)));
        for (auto& h : hs) ids.insert(h.id());
        for (auto& h : hs) co_await h;
    }());
    EXPECT_EQ(ids.size(), 100u);
}

TEST_P(SpawnTest, DetachedMicrothreadKeepsRunning) {
    int progress = 0;  // written by the detached microthread, read after the event
    run_on_backend([&]() -> ut::task<> {
        ut::event finished;
        {
            auto h = ut::spawn([](int& p, ut::event& f) -> ut::task<> {
                for (int i = 0; i < 5; ++i) {
                    co_await ut::sleep_for(1ms);
                    ++p;
                }
                f.set();
            }(progress, finished));
            // h dropped here: detached, not cancelled.
        }
        co_await finished.wait();
    }());
    EXPECT_EQ(progress, 5);
}

TEST_P(SpawnTest, ExplicitDetachKeepsRunning) {
    bool finished = false;
    run_on_backend([&]() -> ut::task<> {
        ut::event done;
        auto h = ut::spawn([](bool& f, ut::event& d) -> ut::task<> {
            co_await ut::sleep_for(2ms);
            f = true;
            d.set();
        }(finished, done));
        h.detach();
        co_await done.wait();
    }());
    EXPECT_TRUE(finished);
}

TEST_P(SpawnTest, ExceptionOfDetachedMicrothreadIsReportedWithItsName) {
    // The handler runs on the worker that ran the orphan.
    shared_log<std::pair<std::string, std::string>> reports;
    auto previous = ut::set_unhandled_exception_handler(
        [&](std::string_view name, const std::exception_ptr& e) {
            std::string what = "<not a std::exception>";
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                what = ex.what();
            } catch (...) {
            }
            reports.add({std::string(name), what});
        });
    run_on_backend([&]() -> ut::task<> {
        ut::spawn(fail_later("nobody joins me"), "orphan").detach();
        // Let it run and fail (with several workers, on whichever worker took it).
        for (int i = 0; i < 10; ++i) co_await ut::yield_now();
        co_await ut::sleep_for(1ms);
        co_await yield_until([&] { return reports.size() >= 1; }, "the orphan's failure reported");
    }());
    ut::set_unhandled_exception_handler(std::move(previous));
    auto got = reports.values();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].first, "orphan");
    EXPECT_EQ(got[0].second, "nobody joins me");
}

TEST_P(SpawnTest, JoinedExceptionIsNotReportedAsUnhandled) {
    std::atomic<int> reports{0};
    auto previous = ut::set_unhandled_exception_handler(
        [&](std::string_view, const std::exception_ptr&) { ++reports; });
    bool caught = false;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn(fail_later("observed"), "joined");
        try {
            co_await h;
        } catch (const std::runtime_error&) {
            caught = true;
        }
    }());
    ut::set_unhandled_exception_handler(std::move(previous));
    EXPECT_TRUE(caught);
    EXPECT_EQ(reports.load(), 0);
}

TEST_P(SpawnTest, CancelledDetachedMicrothreadsAreNotReportedAtShutdown) {
    std::atomic<int> reports{0};
    auto previous = ut::set_unhandled_exception_handler(
        [&](std::string_view, const std::exception_ptr&) { ++reports; });
    run_on_backend([]() -> ut::task<> {
        for (int i = 0; i < 10; ++i) ut::spawn(sleep_task(1h), "sleeper").detach();
        co_await ut::sleep_for(1ms);
    }());
    ut::set_unhandled_exception_handler(std::move(previous));
    EXPECT_EQ(reports.load(), 0);
}

TEST_P(SpawnTest, CurrentBackendNamesTheParameter) {
    std::string name;
    run_on_backend([&]() -> ut::task<> {
        name = std::string(ut::current_backend());
        co_return;
    }());
    EXPECT_EQ(name, backend());
}

TEST_P(SpawnTest, CurrentBackendInsideSpawnedMicrothread) {
    std::string name;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn([](std::string& n) -> ut::task<> {
            co_await ut::yield_now();
            n = std::string(ut::current_backend());
        }(name));
        co_await h;
    }());
    EXPECT_EQ(name, backend());
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SpawnTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, SpawnTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
