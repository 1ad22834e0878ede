/// \file
/// Guest mode: microthreads inside a loop the host program owns and runs.
///
/// `attach(...)` (declared in `<uthreads/backends/<name>.hpp>`: Boost.Asio's
/// io_context, libuv's uv_loop_t, libevent's event_base, GLib's GMainContext)
/// returns a `guest_runtime`. The host keeps running its loop as before
/// (`io.run()`, `uv_run`, `event_base_dispatch`, `g_main_loop_run`); microthreads
/// spawned on the guest run from the host loop's callbacks, interleaved with the
/// host's own. Everything that works under `uthreads::run` works here: the same
/// primitives, timers, sockets, cancellation.
///
/// Bridges: a host callback completes a `uthreads::promise` that a microthread
/// awaits; `spawn_then` delivers a microthread's result to a host callback.
///
/// Thread safety: a guest_runtime is used on the host loop's thread; promises may
/// be completed from any thread.
#pragma once

#include <uthreads/lowlevel/backend.hpp>
#include <uthreads/spawn.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace uthreads {

/// The result of a microthread handed to a host callback: a value or an
/// exception.
template <class T>
class outcome {
public:
    explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}
    template <class... A>
    explicit outcome(std::in_place_t, A&&... a) : value_(std::in_place, std::forward<A>(a)...) {}
    bool has_value() const noexcept { return !error_; }
    /// The value; rethrows the exception if there is none.
    T& value() {
        if (error_) std::rethrow_exception(error_);
        return *value_;
    }
    std::exception_ptr error() const noexcept { return error_; }

private:
    std::optional<T> value_;
    std::exception_ptr error_;
};

template <>
class outcome<void> {
public:
    outcome() noexcept = default;
    explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}
    bool has_value() const noexcept { return !error_; }
    void value() const {
        if (error_) std::rethrow_exception(error_);
    }
    std::exception_ptr error() const noexcept { return error_; }

private:
    std::exception_ptr error_;
};

class guest_runtime {
public:
    /// Used by the attach() functions: wraps a guest backend bound to the host loop
    /// identified by `host_key`. Throws std::logic_error if a guest is already
    /// attached to that host loop.
    guest_runtime(std::unique_ptr<lowlevel::backend> backend, const void* host_key);
    guest_runtime(guest_runtime&&) noexcept;
    guest_runtime& operator=(guest_runtime&&) noexcept;
    guest_runtime(const guest_runtime&) = delete;
    guest_runtime& operator=(const guest_runtime&) = delete;
    /// Calls shutdown().
    ~guest_runtime();

    /// Start `t` as a microthread; it runs at the host loop's next turn. Callable
    /// from host code (any host callback on the loop thread) and from microthreads
    /// of this guest. Throws std::logic_error after shutdown.
    template <class T>
    join_handle<T> spawn(task<T> t, std::string name = {}) {
        if (!t.valid()) detail::throw_empty_task();
        auto h = t.release();
        return join_handle<T>(spawn_raw(h, &h.promise(), std::move(name)), h);
    }

    /// Start `t` and call `on_done(outcome<T>&&)` from the host loop when it
    /// finishes (with its value, or its exception — also `cancelled`).
    template <class T, class F>
    void spawn_then(task<T> t, F on_done, std::string name = {}) {
        spawn(deliver(std::move(t), std::move(on_done)), std::move(name)).detach();
    }

    /// Cancel every microthread, let them unwind (turning the host loop while
    /// they wait on I/O or timers), then remove every registration the guest made
    /// from the host loop. Idempotent. Must not be called from a microthread.
    void shutdown();

    /// Microthreads alive on this guest.
    std::size_t live() const noexcept;
    /// The backend's name ("asio", "libuv", ...).
    std::string_view backend_name() const noexcept;
    /// True until shutdown() (or until the host loop went away, where the backend
    /// can tell).
    bool attached() const noexcept;

private:
    template <class T, class F>
    static task<void> deliver(task<T> t, F on_done) {
        std::exception_ptr err;
        if constexpr (std::is_void_v<T>) {
            try {
                co_await std::move(t);
            } catch (...) {
                err = std::current_exception();
            }
            on_done(err ? outcome<void>(err) : outcome<void>());
        } else {
            std::optional<outcome<T>> r;
            try {
                r.emplace(std::in_place, co_await std::move(t));
            } catch (...) {
                r.emplace(std::current_exception());
            }
            on_done(std::move(*r));
        }
    }

    detail::microthread* spawn_raw(std::coroutine_handle<> frame, detail::promise_base* root,
                                   std::string name);
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace uthreads
