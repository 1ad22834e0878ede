/// \file
/// `event`: a flag microthreads can wait for.
#pragma once

#include <uthreads/wait_queue.hpp>

namespace uthreads {

/// Once `set`, every current and future `wait` completes until `clear`.
/// Thread safety: safe across the workers of one runtime (the flag shares the
/// wait queue's lock).
class event {
public:
    event() = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    /// Set the flag and wake every waiter.
    void set() {
        detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
            detail::guard_if<Multi> g(q_.lock_);
            set_ = true;
            q_.wake_all_locked<Multi>();
        });
    }
    void clear() noexcept {
        detail::sync_guard g(q_.lock_);
        set_ = false;
    }
    bool is_set() const noexcept {
        detail::sync_guard g(q_.lock_);
        return set_;
    }

    struct wait_operation : wait_queue::wait_operation {
        event* e;
        bool await_ready() {
            // A checkpoint even when already set, so a loop over a set event still
            // yields to others and sees cancellation.
            return detail::enter_fast_path(detail::current_scheduler("event::wait")) && e->is_set();
        }
        bool await_suspend(std::coroutine_handle<> h) {
            return detail::by_workers(
                [this]<bool Multi>(std::coroutine_handle<> h) UTHREADS_ALWAYS_INLINE {
                    detail::guard_if<Multi> g(q->lock_);
                    if (e->set_) {
                        detail::yield_after(*detail::tls_scheduler, h);
                        return true;
                    }
                    return detail::park_in<wait_queue::wait_operation, &list_of, Multi>(
                        this, q->waiters_, h, q->lock_);
                },
                h);
        }
    };
    /// Wait until the flag is set. Suspension and cancellation point (loses
    /// nothing).
    wait_operation wait() {
        wait_operation op{};
        op.q = &q_;
        op.e = this;
        return op;
    }

private:
    bool set_ = false;
    wait_queue q_;
};

}  // namespace uthreads
