/// \file
/// `task<T>`: a lazily started coroutine whose `co_await` is a nested call.
///
/// `co_await some_task()` runs the callee in the caller's microthread and gives
/// back its value or rethrows its exception, exactly like a function call. Control
/// moves between caller and callee by symmetric transfer, so a chain a million
/// calls deep, or a million calls that complete at once, never grows the OS
/// stack. Frames come from a per-thread recycling allocator.
///
/// A task is move-only and `[[nodiscard]]`: a task that is neither awaited nor
/// spawned never runs. Awaiting a moved-from (empty) or already-awaited task throws
/// `std::logic_error`.
///
/// Thread safety: a task is used by one microthread at a time.
/// Not a suspension point by itself: only what the callee awaits is.
#pragma once

#include <uthreads/detail/core.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace uthreads {

template <class T = void>
class task;

namespace detail {

struct promise_base {
    std::coroutine_handle<> continuation;  // the awaiting frame, if any
    microthread* owner = nullptr;           // set when this is a microthread's root frame
    std::exception_ptr exception;

    static void* operator new(std::size_t n) { return frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

    std::suspend_always initial_suspend() const noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
            promise_base& p = h.promise();
            if (p.continuation) return p.continuation;
            return tls_scheduler->finish(p.owner);
        }
        void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }
    void unhandled_exception() noexcept { exception = std::current_exception(); }
};

template <class T>
struct task_promise : promise_base {
    std::optional<T> value;
    task<T> get_return_object() noexcept;
    template <class U = T>
        requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) {
        value.emplace(std::forward<U>(v));
    }
    T take() {
        if (exception) std::rethrow_exception(exception);
        return std::move(*value);
    }
};

template <>
struct task_promise<void> : promise_base {
    task<void> get_return_object() noexcept;
    void return_void() const noexcept {}
    void take() const {
        if (exception) std::rethrow_exception(exception);
    }
};

[[noreturn]] void throw_empty_task();

}  // namespace detail

template <class T>
class [[nodiscard]] task {
public:
    using promise_type = detail::task_promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;
    using value_type = T;

    task() noexcept = default;
    explicit task(handle_type h) noexcept : h_(h) {}
    task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            if (h_) h_.destroy();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() {
        if (h_) h_.destroy();
    }

    /// True if this task holds a coroutine (not moved-from).
    bool valid() const noexcept { return static_cast<bool>(h_); }

    struct awaiter {
        handle_type h;
        bool await_ready() const {
            if (!h || h.done()) detail::throw_empty_task();
            return false;
        }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
            h.promise().continuation = caller;
            return h;
        }
        T await_resume() { return h.promise().take(); }
    };
    awaiter operator co_await() & noexcept { return awaiter{h_}; }
    awaiter operator co_await() && noexcept { return awaiter{h_}; }

    /// Give up ownership of the frame (used by spawn).
    handle_type release() noexcept { return std::exchange(h_, {}); }

private:
    handle_type h_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

template <class A>
decltype(auto) get_awaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); })
        return std::forward<A>(a).operator co_await();
    else if constexpr (requires { operator co_await(std::forward<A>(a)); })
        return operator co_await(std::forward<A>(a));
    else
        return std::forward<A>(a);
}

/// The type `co_await a` produces.
template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

/// `void` results are carried as std::monostate in tuples and variants.
template <class T>
using non_void_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
}  // namespace detail

}  // namespace uthreads
