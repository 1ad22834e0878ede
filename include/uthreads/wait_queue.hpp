/// \file
/// `wait_queue`: the low-level primitive to park microthreads until woken.
///
/// Thread safety: one runtime thread (same as every primitive until the
/// multi-threaded runtime lands).
#pragma once

#include <uthreads/detail/waiter_list.hpp>

#include <cstddef>

namespace uthreads {

class wait_queue {
public:
    wait_queue() = default;
    wait_queue(const wait_queue&) = delete;
    wait_queue& operator=(const wait_queue&) = delete;

    struct wait_operation : detail::queued_waiter {
        wait_queue* q;
        bool await_ready() const {
            detail::current_scheduler("wait_queue::wait");  // throws outside a runtime
            return false;
        }
        bool await_suspend(std::coroutine_handle<> h) {
            return detail::park_in<wait_operation, &list_of>(this, q->waiters_, h);
        }
        void await_resume() const { detail::throw_if_cancelled(*this); }
        static detail::waiter_list& list_of(wait_operation* w) { return w->q->waiters_; }
    };

    /// Park until `wake_one`/`wake_all`. Suspension and cancellation point (loses
    /// nothing: a wake-up that reached a cancelled waiter was not consumed by it
    /// only if it had not been delivered yet).
    wait_operation wait() {
        wait_operation op{};
        op.q = this;
        return op;
    }

    /// Wake the longest-waiting microthread. Returns false if none was waiting.
    bool wake_one() {
        if (waiters_.empty()) return false;
        detail::wake(waiters_.pop_front());
        return true;
    }

    /// Wake every waiting microthread; returns how many.
    std::size_t wake_all() {
        std::size_t n = 0;
        while (!waiters_.empty()) {
            detail::wake(waiters_.pop_front());
            ++n;
        }
        return n;
    }

    bool empty() const noexcept { return waiters_.empty(); }

private:
    detail::waiter_list waiters_;
};

}  // namespace uthreads
