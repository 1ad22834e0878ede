/// \file
/// Cancellation scopes: shields, `with_timeout`, `move_on_after`.
///
/// Cancellation in uthreads is level-triggered (as in Trio): once requested it is
/// delivered as `cancelled` at the microthread's next suspension point, and at
/// every one after that until the cancelled scope has been left.
#pragma once

#include <uthreads/runtime.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace uthreads {

/// RAII: while alive, cancellation requested from outside is not delivered to the
/// current microthread (use it around cleanup that must await, e.g. a goodbye
/// message). Pending cancellation is delivered again at the first suspension point
/// after the shield ends. Must be created inside a microthread and destroyed in
/// the same coroutine (LIFO), as any local variable is.
class cancel_shield {
public:
    cancel_shield();
    ~cancel_shield();
    cancel_shield(const cancel_shield&) = delete;
    cancel_shield& operator=(const cancel_shield&) = delete;

private:
    detail::microthread* m_;
    detail::cancel_scope_node node_;
};

namespace detail {

/// A cancel scope with a deadline, pushed on the current microthread.
class deadline_scope : timer_node {
public:
    deadline_scope(clock::duration d, const char* what);
    ~deadline_scope();
    deadline_scope(const deadline_scope&) = delete;
    deadline_scope& operator=(const deadline_scope&) = delete;
    /// True if the deadline passed and nothing outside this scope is cancelled, so
    /// a `cancelled` seen inside was caused by this scope.
    bool expired_alone() const noexcept;

private:
    scheduler* s_;
    microthread* m_;
    cancel_scope_node node_;
};

}  // namespace detail

/// Await `aw` (a task or any awaitable) for at most `d`. Returns its value; if the
/// deadline passes first, the operation is cancelled and `timeout_error` is thrown
/// (never before the deadline). What the cancelled operation loses is what
/// cancelling it loses (docs/cancel-safety.md). Throws std::invalid_argument for a
/// negative `d`.
template <class Rep, class Period, class A>
task<detail::await_result_t<A>> with_timeout(std::chrono::duration<Rep, Period> d, A aw) {
    detail::deadline_scope scope(detail::to_clock_duration(d, "with_timeout: duration"),
                                 "with_timeout");
    try {
        co_return co_await std::move(aw);
    } catch (const cancelled&) {
        if (scope.expired_alone()) throw timeout_error();
        throw;
    }
}

/// Like `with_timeout`, but a passed deadline yields an empty optional (for a
/// void operation: `false`) instead of an exception.
template <class Rep, class Period, class A>
task<std::conditional_t<std::is_void_v<detail::await_result_t<A>>, bool,
                        std::optional<detail::await_result_t<A>>>>
move_on_after(std::chrono::duration<Rep, Period> d, A aw) {
    using R = detail::await_result_t<A>;
    detail::deadline_scope scope(detail::to_clock_duration(d, "move_on_after: duration"),
                                 "move_on_after");
    try {
        if constexpr (std::is_void_v<R>) {
            co_await std::move(aw);
            co_return true;
        } else {
            co_return std::optional<R>(co_await std::move(aw));
        }
    } catch (const cancelled&) {
        if (!scope.expired_alone()) throw;
    }
    if constexpr (std::is_void_v<R>)
        co_return false;
    else
        co_return std::nullopt;
}

}  // namespace uthreads
