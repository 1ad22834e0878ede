/// \file
/// `mutex`: mutual exclusion between microthreads (never blocks the OS thread).
#pragma once

#include <uthreads/semaphore.hpp>

#include <utility>

namespace uthreads {

/// FIFO hand-off mutex. `auto lock = co_await m.lock();` gives an RAII guard.
/// Not recursive. Thread safety: one runtime thread.
class mutex {
public:
    mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    /// Owns one lock of a mutex; unlocks on destruction. Movable.
    class lock_guard {
    public:
        lock_guard() noexcept = default;
        explicit lock_guard(mutex& m) noexcept : m_(&m) {}
        lock_guard(lock_guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
        lock_guard& operator=(lock_guard&& o) noexcept {
            if (this != &o) {
                unlock();
                m_ = std::exchange(o.m_, nullptr);
            }
            return *this;
        }
        ~lock_guard() { unlock(); }
        /// Unlock early; idempotent.
        void unlock() noexcept {
            if (m_) std::exchange(m_, nullptr)->unlock();
        }
        bool owns_lock() const noexcept { return m_ != nullptr; }
        mutex* get() const noexcept { return m_; }

    private:
        mutex* m_ = nullptr;
    };

    struct lock_operation : semaphore::acquire_operation {
        mutex* mx;
        lock_guard await_resume() const {
            detail::throw_if_cancelled(*this);
            return lock_guard(*mx);
        }
    };

    /// Lock, waiting while another microthread holds it. Suspension and
    /// cancellation point: a cancelled lock() holds nothing (loses nothing).
    lock_operation lock() {
        lock_operation op{};
        op.sem = &sem_;
        op.mx = this;
        return op;
    }

    /// Lock without waiting; an empty guard if it was held.
    lock_guard try_lock() noexcept { return sem_.try_acquire() ? lock_guard(*this) : lock_guard(); }

    bool is_locked() const noexcept { return sem_.available() == 0; }

    /// Unlock; hands the lock to the longest waiter. Prefer the guard.
    void unlock() noexcept { sem_.release(); }

private:
    semaphore sem_{1};
};

}  // namespace uthreads
