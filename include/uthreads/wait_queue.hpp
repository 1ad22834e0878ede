/// \file
/// `wait_queue`: the low-level primitive to park microthreads until woken.
///
/// Thread safety: safe across the workers of one runtime (each operation runs
/// under a spinlock when the runtime has several workers).
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
            return detail::by_workers(
                [this]<bool Multi>(std::coroutine_handle<> h) UTHREADS_ALWAYS_INLINE {
                    detail::guard_if<Multi> g(q->lock_);
                    return detail::park_in<wait_operation, &list_of, Multi>(this, q->waiters_, h,
                                                                            q->lock_);
                },
                h);
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
        return detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
            detail::guard_if<Multi> g(lock_);
            if (waiters_.empty()) return false;
            detail::wake<Multi>(waiters_.pop_front());
            return true;
        });
    }

    /// Wake every waiting microthread; returns how many.
    std::size_t wake_all() {
        return detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
            detail::guard_if<Multi> g(lock_);
            return wake_all_locked<Multi>();
        });
    }

    bool empty() const noexcept {
        detail::sync_guard g(lock_);
        return waiters_.empty();
    }

private:
    friend class event;
    template <bool Multi>
    std::size_t wake_all_locked() {
        std::size_t n = 0;
        while (!waiters_.empty()) {
            detail::wake<Multi>(waiters_.pop_front());
            ++n;
        }
        return n;
    }
    detail::waiter_list waiters_;
    mutable detail::spinlock lock_;
};

}  // namespace uthreads
