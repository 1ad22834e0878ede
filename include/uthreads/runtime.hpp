/// \file
/// Running microthreads: `run`, `options`, backends, time and yielding.
#pragma once

#include <uthreads/task.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace uthreads {

/// How `run` sets up its runtime.
struct options {
    /// Backend name: "" means `$UTHREADS_BACKEND`, and if that is unset or empty the
    /// platform default ("epoll"). An unknown name throws std::invalid_argument that
    /// lists the available backends.
    std::string backend;
    /// Worker threads: 1 runs everything on the caller's thread; N > 1 runs N
    /// workers (the caller's thread and N-1 new ones), each with its own instance
    /// of the backend, sharing microthreads that have not started yet by work
    /// stealing (docs/threads.md); 0 means std::thread::hardware_concurrency().
    /// More than 1024 throws std::invalid_argument.
    unsigned threads = 1;
    /// Seed for the "sim" backend's schedule shuffling (ignored elsewhere).
    std::uint64_t seed = 0;
};

namespace detail {
void run_root(std::coroutine_handle<> frame, promise_base* root, const options& opts);
}

/// Run `main` as the first microthread of a new runtime that owns its loop on the
/// calling thread, until `main` finishes. Microthreads still alive then are
/// cancelled and drained, so when `run` returns nothing it created is left alive.
/// Returns `main`'s value or rethrows its exception.
/// Throws std::logic_error if a runtime is already running on this thread.
template <class T>
T run(task<T> main, options opts = {}) {
    if (!main.valid()) detail::throw_empty_task();
    auto h = main.release();
    struct frame_guard {
        std::coroutine_handle<detail::task_promise<T>> h;
        ~frame_guard() { h.destroy(); }
    } guard{h};
    detail::run_root(h, &h.promise(), opts);
    return h.promise().take();
}

/// Names of the backends compiled into this build, default first.
std::vector<std::string> available_backends();

/// The backend running the calling microthread (e.g. "epoll", "sim").
/// Throws std::logic_error outside a runtime.
std::string_view current_backend();

/// The runtime's clock: real monotonic time, or virtual time on "sim".
/// Outside a runtime, `clock::now()`.
clock::time_point now();

namespace detail {
struct yield_operation {
    scheduler* s;
    wait_node node{};
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
        microthread* m = s->current_;
        if (cancel_pending(m)) {
            node.cancelled = true;
            return false;
        }
        m->resume = h;
        s->schedule(m);
        return true;
    }
    void await_resume() const { throw_if_cancelled(node); }
};

struct sleep_operation : wait_node, timer_node {
    scheduler* s;
    microthread* m = nullptr;
    sleep_operation(scheduler* sch, clock::time_point when) : s(sch) { deadline = when; }
    // Movable only before it is awaited (with_timeout takes awaitables by value).
    sleep_operation(sleep_operation&& o) noexcept : wait_node(), timer_node(), s(o.s) { deadline = o.deadline; }
    sleep_operation& operator=(sleep_operation&&) = delete;
    ~sleep_operation() {
        if (armed()) s->remove_timer(this);
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!park(*s, *this, h)) return false;
        m = s->current_;
        try_cancel = [](wait_node* w) {
            auto* op = static_cast<sleep_operation*>(w);
            op->s->remove_timer(op);
            return true;
        };
        fire = [](timer_node* t) {
            auto* op = static_cast<sleep_operation*>(t);
            unpark(*op->s, op->m);
        };
        s->add_timer(this);
        return true;
    }
    void await_resume() const { throw_if_cancelled(*this); }
};

clock::duration checked_duration(clock::duration d, const char* what);

template <class Rep, class Period>
clock::duration to_clock_duration(std::chrono::duration<Rep, Period> d, const char* what) {
    // Round up: a timer may fire late, never early.
    return checked_duration(std::chrono::ceil<clock::duration>(d), what);
}
}  // namespace detail

/// Let every other runnable microthread run, then continue.
/// Suspension point; cancellation point (loses nothing).
inline detail::yield_operation yield_now() {
    return detail::yield_operation{&detail::current_scheduler("yield_now")};
}

/// Sleep until `deadline` (never wakes early). Suspension and cancellation point
/// (loses nothing).
inline detail::sleep_operation sleep_until(clock::time_point deadline) {
    return detail::sleep_operation(&detail::current_scheduler("sleep_until"), deadline);
}

/// Sleep for `d`. Throws std::invalid_argument if `d` is negative.
/// Suspension and cancellation point (loses nothing).
template <class Rep, class Period>
detail::sleep_operation sleep_for(std::chrono::duration<Rep, Period> d) {
    auto& s = detail::current_scheduler("sleep_for");
    return detail::sleep_operation(&s, s.now() + detail::to_clock_duration(d, "sleep_for: duration"));
}

}  // namespace uthreads
