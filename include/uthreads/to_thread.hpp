/// \file
/// `to_thread`: run a blocking call on the runtime's blocking thread pool.
#pragma once

#include <uthreads/task.hpp>

#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace uthreads {

namespace detail {
/// One blocking call in flight. `run` executes on a pool thread; completion
/// wakes the microthread through the scheduler's thread-safe queue.
struct blocking_job {
    std::function<void()> work;
    microthread* m = nullptr;
    scheduler* s = nullptr;
};

struct to_thread_operation {
    blocking_job job;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume() const noexcept {}
};
}  // namespace detail

/// Call `fn()` on the blocking pool and return its value (or rethrow its
/// exception). The pool grows on demand (up to 64 threads) and is joined when the
/// runtime ends. Suspension point; NOT interruptible: a cancelled caller waits
/// for `fn` to return (its result is then returned, and the cancellation is
/// delivered at the next suspension point), so nothing is lost.
template <class F>
task<std::invoke_result_t<F&>> to_thread(F fn) {
    using R = std::invoke_result_t<F&>;
    std::exception_ptr err;
    std::optional<detail::non_void_t<R>> out;
    detail::to_thread_operation op{};
    op.job.work = [&]() noexcept {
        try {
            if constexpr (std::is_void_v<R>) {
                fn();
                out.emplace();
            } else {
                out.emplace(fn());
            }
        } catch (...) {
            err = std::current_exception();
        }
    };
    co_await op;
    if (err) std::rethrow_exception(err);
    if constexpr (!std::is_void_v<R>) co_return std::move(*out);
}

}  // namespace uthreads
