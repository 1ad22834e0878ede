/// \file
/// `semaphore`: a counting semaphore with FIFO hand-off.
#pragma once

#include <uthreads/detail/waiter_list.hpp>

#include <cstddef>

namespace uthreads {

/// A unit released while microthreads wait is handed directly to the
/// longest-waiting one (no barging), so waiters cannot starve.
/// Thread safety: safe across the workers of one runtime (each operation runs
/// under a spinlock when the runtime has several workers).
class semaphore {
public:
    /// Throws std::invalid_argument if `initial` is negative.
    explicit semaphore(std::ptrdiff_t initial);
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    struct acquire_operation : detail::queued_waiter {
        semaphore* sem;
        bool await_ready() {
            if (!detail::enter_fast_path(detail::current_scheduler("semaphore::acquire")))
                return false;
            return sem->try_acquire();
        }
        UTHREADS_ALWAYS_INLINE bool await_suspend(std::coroutine_handle<> h) {
            return detail::by_workers(
                [this]<bool Multi>(std::coroutine_handle<> h) UTHREADS_ALWAYS_INLINE {
                    detail::guard_if<Multi> g(sem->lock_);
                    if (sem->try_acquire_locked()) {
                        detail::yield_after(*detail::tls_scheduler, h);
                        return true;
                    }
                    return detail::park_in<acquire_operation, &list_of, Multi>(this, sem->waiters_,
                                                                               h, sem->lock_);
                },
                h);
        }
        void await_resume() const { detail::throw_if_cancelled(*this); }
        static detail::waiter_list& list_of(acquire_operation* w) { return w->sem->waiters_; }
    };

    /// Take one unit, waiting while none is available. Suspension and cancellation
    /// point: a cancelled acquire has taken nothing (loses nothing).
    acquire_operation acquire() {
        acquire_operation op{};
        op.sem = this;
        return op;
    }

    /// Take one unit if available without waiting.
    bool try_acquire() noexcept {
        return detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
            detail::guard_if<Multi> g(lock_);
            return try_acquire_locked();
        });
    }

    /// Return one unit: to the longest waiter if any, else to the count.
    void release() {
        detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
            detail::guard_if<Multi> g(lock_);
            if (!waiters_.empty())
                detail::wake<Multi>(waiters_.pop_front());
            else
                ++count_;
        });
    }

    std::ptrdiff_t available() const noexcept {
        detail::sync_guard g(lock_);
        return count_;
    }

private:
    bool try_acquire_locked() noexcept {
        if (count_ > 0 && waiters_.empty()) {
            --count_;
            return true;
        }
        return false;
    }

    std::ptrdiff_t count_;
    detail::waiter_list waiters_;
    mutable detail::spinlock lock_;
};

}  // namespace uthreads
