/// \file
/// `condition_variable` for microthreads, used with `mutex::lock_guard`.
#pragma once

#include <uthreads/cancel.hpp>
#include <uthreads/mutex.hpp>
#include <uthreads/wait_queue.hpp>

#include <exception>

namespace uthreads {

/// Thread safety: safe across the workers of one runtime.
class condition_variable {
public:
    condition_variable() = default;
    condition_variable(const condition_variable&) = delete;
    condition_variable& operator=(const condition_variable&) = delete;

    /// Atomically unlock `lock`, wait for a notification, and lock again before
    /// returning — also when cancelled (the relock is shielded), so the guard
    /// always owns the mutex afterwards. Throws std::invalid_argument if `lock` does
    /// not own a mutex. Suspension and cancellation point (loses nothing).
    task<void> wait(mutex::lock_guard& lock);
    // (Implementation: parks, then unlocks, so no notification is lost.)

    /// Wait until `pred()` holds (checked under the lock).
    template <class Pred>
    task<void> wait(mutex::lock_guard& lock, Pred pred) {
        while (!pred()) co_await wait(lock);
    }

    void notify_one() { q_.wake_one(); }
    void notify_all() { q_.wake_all(); }

private:
    wait_queue q_;
};

}  // namespace uthreads
