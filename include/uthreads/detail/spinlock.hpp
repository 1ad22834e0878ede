/// \file
/// The small lock that guards a primitive's state when the runtime has more than
/// one worker, and `sync_guard`, which takes it only then.
///
/// Primitives (semaphore, wait_queue, event, channel, nurseries, join) keep their
/// single-threaded code; with N workers each operation runs under the object's
/// spinlock. Critical sections are a few pointer moves (never a resume, never a
/// system call other than a backend wake()), so spinning is cheaper than parking
/// the OS thread; after a short spin the waiter yields its time slice in case the
/// holder was preempted (workers may outnumber cores).
///
/// `sync_guard` locks only on a worker of a multi-threaded runtime
/// (`tls_multi`): a one-worker runtime pays one thread-local load and a branch,
/// no atomic read-modify-write, which keeps `threads = 1` as fast as before.
#pragma once

#include <atomic>
#include <thread>

#include <uthreads/detail/frame_pool.hpp>  // UTHREADS_TLS_FAST

namespace uthreads::detail {

/// True on the threads of a runtime with more than one worker. Set by the worker
/// loop for its whole life; never changes while a microthread runs.
inline thread_local bool tls_multi UTHREADS_TLS_FAST = false;

class spinlock {
public:
    void lock() noexcept {
        for (int spins = 0;; ++spins) {
            // acquire: what the previous holder wrote before unlock() is visible.
            if (!flag_.exchange(true, std::memory_order_acquire)) return;
            while (flag_.load(std::memory_order_relaxed)) {
                if (++spins > 64) {
                    std::this_thread::yield();
                    spins = 0;
                }
            }
        }
    }
    // release: publishes the critical section to the next holder.
    void unlock() noexcept { flag_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> flag_{false};
};

/// Holds `l` for its scope when the calling thread is a worker of a
/// multi-threaded runtime; otherwise does nothing.
class sync_guard {
public:
    explicit sync_guard(spinlock& l) noexcept : l_(tls_multi ? &l : nullptr) {
        if (l_) l_->lock();
    }
    ~sync_guard() {
        if (l_) l_->unlock();
    }
    sync_guard(const sync_guard&) = delete;
    sync_guard& operator=(const sync_guard&) = delete;

private:
    spinlock* l_;
};

}  // namespace uthreads::detail
