/// \file
/// `promise<T>` / `future<T>`: a one-shot value handed from any thread, or from a
/// host-loop callback, to a microthread.
///
/// `set_value`/`set_exception` may be called from any thread, including threads
/// that are not running a runtime. `co_await f` runs in a microthread. A future
/// has one consumer: it is move-only and can be awaited until it has produced its
/// value once. Dropping a promise without setting it makes the future throw
/// `broken_promise`.
#pragma once

#include <uthreads/detail/core.hpp>

#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

namespace uthreads {

/// Thrown by `co_await future` when its promise was destroyed unset.
class broken_promise : public std::logic_error {
public:
    broken_promise() : std::logic_error("uthreads::future: the promise was destroyed without a value") {}
};

namespace detail {
[[noreturn]] void throw_promise_error(const char* what);

/// State shared by a promise and its future.
struct future_state_base : wait_node {
    std::mutex mu;
    bool ready = false;
    std::exception_ptr error;
    // The parked consumer; guarded by mu.
    microthread* waiter = nullptr;
    scheduler* waiter_sched = nullptr;

    /// Publish readiness and wake the consumer, from any thread. Call with `mu`
    /// held by `lk`; releases it.
    void complete(std::unique_lock<std::mutex>& lk);
    bool await_suspend_impl(std::coroutine_handle<> h);
};

template <class T>
struct future_state : future_state_base {
    std::optional<T> value;
};
template <>
struct future_state<void> : future_state_base {};
}  // namespace detail

template <class T>
class future;

template <class T = void>
class promise {
public:
    promise() : st_(std::make_shared<detail::future_state<T>>()) {}
    promise(promise&&) noexcept = default;
    promise& operator=(promise&& o) noexcept {
        if (this != &o) {
            abandon();
            st_ = std::move(o.st_);
            retrieved_ = o.retrieved_;
        }
        return *this;
    }
    ~promise() { abandon(); }

    /// The future; throws std::logic_error if called twice.
    future<T> get_future() {
        if (!st_) detail::throw_promise_error("promise::get_future: moved-from promise");
        if (retrieved_) detail::throw_promise_error("promise::get_future: future already retrieved");
        retrieved_ = true;
        return future<T>(st_);
    }

    /// Complete with a value, from any thread. Throws std::logic_error if already
    /// completed.
    template <class... A>
    void set_value(A&&... a) {
        std::unique_lock lk(lock_state("promise::set_value"));
        if constexpr (!std::is_void_v<T>) st_->value.emplace(std::forward<A>(a)...);
        st_->complete(lk);
    }

    /// Complete with an exception, from any thread.
    void set_exception(std::exception_ptr e) {
        std::unique_lock lk(lock_state("promise::set_exception"));
        st_->error = std::move(e);
        st_->complete(lk);
    }

private:
    std::unique_lock<std::mutex> lock_state(const char* what) {
        if (!st_) detail::throw_promise_error(what);
        std::unique_lock lk(st_->mu);
        if (st_->ready) detail::throw_promise_error("promise: already satisfied");
        return lk;
    }
    void abandon() noexcept {
        if (!st_) return;
        {
            std::unique_lock lk(st_->mu);
            if (!st_->ready) {
                st_->error = std::make_exception_ptr(broken_promise());
                st_->complete(lk);
            }
        }
        // Only now: if the future is gone this frees the state, mutex included.
        st_.reset();
    }
    std::shared_ptr<detail::future_state<T>> st_;
    bool retrieved_ = false;
};

template <class T = void>
class future {
public:
    future() noexcept = default;
    explicit future(std::shared_ptr<detail::future_state<T>> st) noexcept : st_(std::move(st)) {}
    future(future&&) noexcept = default;
    future& operator=(future&&) noexcept = default;

    bool valid() const noexcept { return st_ != nullptr; }
    /// True once the promise completed (thread-safe).
    bool is_ready() const {
        if (!st_) return false;
        std::lock_guard lk(st_->mu);
        return st_->ready;
    }

    struct awaiter {
        detail::future_state<T>* st;
        bool await_ready() const {
            if (detail::cancel_pending(detail::current_scheduler("future: co_await").current_)) throw ::uthreads::cancelled{};
            std::lock_guard lk(st->mu);
            return st->ready;
        }
        bool await_suspend(std::coroutine_handle<> h) { return st->await_suspend_impl(h); }
        T await_resume() {
            detail::throw_if_cancelled(*st);
            if (st->error) std::rethrow_exception(st->error);
            if constexpr (!std::is_void_v<T>) return std::move(*st->value);
        }
    };
    /// Wait for the value (or rethrow the exception). Suspension and cancellation
    /// point: cancelling the wait loses nothing; the future can be awaited again.
    awaiter operator co_await() {
        if (!st_) detail::throw_promise_error("future: co_await on an empty future");
        st_->cancelled = false;
        return awaiter{st_.get()};
    }

private:
    std::shared_ptr<detail::future_state<T>> st_;
};

}  // namespace uthreads
