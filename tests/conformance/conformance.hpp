/// \file
/// Shared fixture of the conformance suite.
///
/// Every conformance test is a value-parameterized GoogleTest whose parameter is a
/// backend name; each `<topic>_test.cpp` instantiates its fixture over
/// `uthreads::available_backends()`, so a backend added to the build is tested by
/// every test without touching them (DESIGN.md §7). Test logic never names a
/// backend: a test that needs something only some backends have asks for the
/// capability (`has_virtual_clock`) and skips with the capability named.
///
/// `backend_test::run_on_backend` runs a main task on the parameter's backend and
/// then checks DESIGN.md §3 "No leaks": the frame count of this thread is back to
/// its value when the test started, no microthread is alive, and the process has
/// exactly as many open descriptors as before. The baseline is taken in SetUp
/// (before the test body creates its main task's frame), so a test may build its
/// task before the call and may call run_on_backend several times. A test whose
/// objects must outlive the run (a listener bound before it, say) calls `ut::run`
/// itself with `backend_options()`; TearDown repeats the checks at the end.
///
/// Writing tests here: ASSERT_* cannot be used inside a coroutine (it expands to a
/// `return`), so coroutine bodies use EXPECT_* or record what happened into
/// variables of the test body that are asserted after the run. State shared with
/// microthreads that may outlive `main` (detached ones are cancelled and drained
/// after `main` returns) lives in the test body, never in `main`'s frame.
///
/// Suites instantiated for "FourWorkers" run their children in parallel: state
/// that two microthreads touch, unless one joined the other first (a join, an
/// event, a primitive hand-off orders them), is a `std::atomic` or a
/// `shared_log`; a test that relies on an ordering only one worker guarantees
/// checks it when `workers() == 1` and the multi-worker contract otherwise
/// (docs/threads.md lists every such difference).
#pragma once

#include "conformance/guest_host.hpp"
#include "fd_count.hpp"

#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace uthreads_conformance {

namespace ut = uthreads;
using namespace std::chrono_literals;

/// Test-name suffix for a backend: GoogleTest allows only [A-Za-z0-9_].
struct backend_name {
    std::string operator()(const ::testing::TestParamInfo<std::string>& info) const {
        std::string s = info.param;
        for (char& c : s)
            if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
        return s.empty() ? std::string("default") : s;
    }
};

/// Wall-clock time, for bounds that must hold whatever the backend's clock is.
inline std::chrono::steady_clock::time_point wall_now() {
    return std::chrono::steady_clock::now();
}

/// Capability probe: does `backend` run on a virtual clock (time that passes only
/// when every microthread is idle, so a long sleep takes no real time)? Asked
/// through the public API: a 200 ms sleep that advances `ut::now()` by 200 ms
/// while less than 100 ms of real time passes cannot happen on a real clock,
/// because timers never fire early. Costs one 200 ms sleep per real-clock backend
/// per process (the answer is cached).
inline bool has_virtual_clock(const std::string& backend) {
    static std::map<std::string, bool> cache;
    if (auto it = cache.find(backend); it != cache.end()) return it->second;
    bool is_virtual = ut::run(
        []() -> ut::task<bool> {
            auto v0 = ut::now();
            auto w0 = wall_now();
            co_await ut::sleep_for(200ms);
            co_return ut::now() - v0 >= 200ms && wall_now() - w0 < 100ms;
        }(),
        ut::options{.backend = backend});
    cache.emplace(backend, is_virtual);
    return is_virtual;
}

inline constexpr std::string_view guest_suffix = "_guest";

/// Every parameter the suite is instantiated for: each compiled backend in owned
/// mode (`ut::run`), and "<name>_guest" for each backend with a guest host
/// (guest_hosts/*.cpp): the host program owns the loop and the test runs on a
/// guest runtime attached to it.
inline std::vector<std::string> suite_params() {
    std::vector<std::string> out = ut::available_backends();
    for (const std::string& b : ut::available_backends())
        if (conformance::guest_hosts().count(b)) out.push_back(b + std::string(guest_suffix));
    return out;
}

inline constexpr std::string_view workers_suffix = "_x4";
inline constexpr unsigned suite_workers = 4;

inline bool has_suffix(const std::string& s, std::string_view suffix) {
    return s.size() > suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The parameters of the multi-threaded instantiation ("FourWorkers"): each
/// compiled backend in owned mode as "<name>_x4", run with 4 workers
/// (options.threads = 4). Guest mode with several workers is not supported.
/// Every suite instantiates it (the sim-only SimTest aside). "sim_x4" runs on
/// one virtual clock shared by the 4 workers (it jumps when all are idle), but
/// its schedule is not reproducible from the seed: the workers are real threads
/// (docs/threads.md).
inline std::vector<std::string> threaded_params() {
    std::vector<std::string> out;
    for (const std::string& b : ut::available_backends())
        out.push_back(b + std::string(workers_suffix));
    return out;
}

/// The backend a parameter names, without the guest or workers suffix.
inline std::string base_backend(const std::string& param) {
    if (has_suffix(param, guest_suffix)) return param.substr(0, param.size() - guest_suffix.size());
    if (has_suffix(param, workers_suffix))
        return param.substr(0, param.size() - workers_suffix.size());
    return param;
}

/// Guest mode's counterpart of `ut::run(main)`: a host program owns `backend`'s
/// loop, `main` is spawned on a guest runtime attached to it, the host loop runs
/// until main finished, then the guest shuts down (cancelling and draining what
/// is left, as run() does) and the host closes its loop.
template <class T>
T run_as_guest(const std::string& backend, ut::task<T> main) {
    std::optional<ut::outcome<T>> result;
    {
        std::unique_ptr<conformance::guest_host> host = conformance::guest_hosts().at(backend)();
        {
            ut::guest_runtime guest = host->attach();
            guest.spawn_then(
                std::move(main), [&](ut::outcome<T> r) { result.emplace(std::move(r)); }, "main");
            host->run_until([&] { return result.has_value(); });
            guest.shutdown();
        }
    }
    if constexpr (std::is_void_v<T>)
        result->value();
    else
        return std::move(result->value());
}

/// Base of every conformance fixture; the parameter is the backend name.
class backend_test : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        frames_before_ = ut::lowlevel::live_frames();
        fds_before_ = open_fd_count();
        ASSERT_GE(fds_before_, 0) << "cannot list /proc/self/fd";
        ASSERT_EQ(ut::lowlevel::live_microthreads(), 0) << "a previous test leaked microthreads";
    }

    void TearDown() override { expect_no_leaks("at the end of the test"); }

    /// The backend under test (for a guest parameter, the one the host runs).
    std::string backend() const { return base_backend(GetParam()); }
    /// True when the test runs on a guest runtime inside a host loop.
    bool guest_mode() const { return has_suffix(GetParam(), guest_suffix); }
    /// Workers this test's runtime has (4 for the "_x4" instantiation).
    unsigned workers() const { return has_suffix(GetParam(), workers_suffix) ? suite_workers : 1; }

    /// Options selecting this test's backend and worker count (owned mode: tests
    /// that call `ut::run` themselves run owned on the guest parameter's backend).
    ut::options backend_options(std::uint64_t seed = 0) const {
        return ut::options{.backend = backend(), .threads = workers(), .seed = seed};
    }

    /// `ut::run(main)` on this test's backend, then the leak checks (also when
    /// `run` throws, in which case the exception propagates).
    template <class T>
    T run_on_backend(ut::task<T> main, std::uint64_t seed = 0) {
        struct leak_check {
            backend_test* self;
            ~leak_check() { self->expect_no_leaks("after run() returned"); }
        } check{this};
        if (guest_mode()) return run_as_guest(backend(), std::move(main));
        return ut::run(std::move(main), backend_options(seed));
    }

    /// The leak checks, for tests that call `ut::run` themselves.
    void expect_no_leaks(const char* when) {
        EXPECT_EQ(ut::lowlevel::live_frames(), frames_before_)
            << "coroutine frames or microthread records leaked " << when;
        EXPECT_EQ(ut::lowlevel::live_microthreads(), 0) << "microthreads alive " << when;
        EXPECT_EQ(open_fd_count(), fds_before_) << "file descriptors leaked " << when;
    }

    /// True if this backend's clock is virtual (see has_virtual_clock).
    bool virtual_clock() const { return has_virtual_clock(backend()); }

private:
    long long frames_before_ = 0;
    long fds_before_ = 0;
};

/// Values appended by microthreads that may run on several workers at once: a
/// vector under a std::mutex (each access is brief and never suspends).
template <class T = int>
class shared_log {
public:
    void add(T v) {
        std::lock_guard<std::mutex> g(m_);
        v_.push_back(std::move(v));
    }
    std::size_t size() const {
        std::lock_guard<std::mutex> g(m_);
        return v_.size();
    }
    std::vector<T> values() const {
        std::lock_guard<std::mutex> g(m_);
        return v_;
    }

    /// The awaitable `op` (an operation that completes at once or queues its
    /// caller: `mutex::lock()`, `semaphore::acquire()`, `channel::recv()`...)
    /// with `v` appended in the same step: under the log's mutex, together with
    /// the operation's attempt to complete at once and, failing that, its parking.
    /// The log's order is then the order in which callers reached the operation
    /// (its queue's order), and its size counts the callers that completed or
    /// parked, also when they run on several workers.
    template <class Op>
    auto queued(Op op, T v) {
        return queued_awaiter<Op>{std::move(op), this, std::move(v)};
    }

private:
    template <class Op>
    struct queued_awaiter {
        Op op;
        shared_log* log;
        T v;
        bool await_ready() {
            std::lock_guard<std::mutex> g(log->m_);
            bool ready = op.await_ready();
            if (ready) log->v_.push_back(v);
            return ready;
        }
        // The caller's microthread cannot resume before this returns (a wake-up
        // from another worker goes through the caller's own worker).
        auto await_suspend(std::coroutine_handle<> h) {
            std::lock_guard<std::mutex> g(log->m_);
            if constexpr (std::is_void_v<decltype(op.await_suspend(h))>) {
                op.await_suspend(h);
                log->v_.push_back(v);
            } else {
                auto r = op.await_suspend(h);
                log->v_.push_back(v);
                return r;
            }
        }
        decltype(auto) await_resume() { return op.await_resume(); }
    };

    mutable std::mutex m_;
    std::vector<T> v_;
};

/// Yield until `pred()` holds: for waiting until other microthreads reached a
/// point (parked in an operation, say) whatever order the ready queue runs them
/// in. Gives up with a test failure after 10 s of real time instead of hanging.
template <class Pred>
ut::task<void> yield_until(Pred pred, const char* what = "condition") {
    auto w0 = wall_now();
    while (!pred()) {
        if (wall_now() - w0 > 10s) {
            ADD_FAILURE() << "gave up waiting for: " << what;
            co_return;
        }
        co_await ut::yield_now();
    }
}

/// Join `h`, expecting it to end by cancellation; returns true if it did. Any
/// other outcome is recorded as a test failure.
template <class T>
ut::task<bool> join_expect_cancelled(ut::join_handle<T>& h) {
    try {
        co_await h;
    } catch (const ut::cancelled&) {
        co_return true;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected cancelled, got exception: " << e.what();
        co_return false;
    }
    ADD_FAILURE() << "expected cancelled, the microthread returned normally";
    co_return false;
}

/// Cancel `h` (a no-op if it finished) and join it, swallowing only `cancelled`.
/// For helpers that a test stops once it has what it needs.
template <class T>
ut::task<void> cancel_and_join(ut::join_handle<T>& h) {
    h.cancel();
    try {
        co_await h;
    } catch (const ut::cancelled&) {
    }
}

}  // namespace uthreads_conformance
