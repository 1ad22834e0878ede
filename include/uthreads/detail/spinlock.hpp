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
/// The hot operations of the primitives (channel, semaphore, wait_queue, event)
/// are written once as a template on `Multi` and dispatched by `by_workers`: a
/// one-worker runtime runs the `Multi = false` instantiation inline, with no lock
/// and no extra branch inside; a worker of a multi-threaded runtime calls the
/// `Multi = true` one out of line. So `threads = 1` pays one thread-local load
/// and a predictable branch per operation, and keeps its code layout. Cold
/// paths use `sync_guard`, which tests `tls_multi` itself.
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

/// Holds a spinlock for its scope when `Locked`; otherwise an empty object.
template <bool Locked>
class guard_if {
public:
    explicit guard_if(spinlock&) noexcept {}
};
template <>
class guard_if<true> {
public:
    explicit guard_if(spinlock& l) noexcept
        : l_(l) {
        l_.lock();
    }
    ~guard_if() { l_.unlock(); }
    guard_if(const guard_if&) = delete;
    guard_if& operator=(const guard_if&) = delete;

private:
    spinlock& l_;
};

/// For the template lambdas given to `by_workers`: the one-worker instantiation
/// must inline into the operation, as the code it replaced did.
#define UTHREADS_ALWAYS_INLINE __attribute__((always_inline))

/// The out-of-line half of `by_workers`.
template <class F, class... A>
[[gnu::noinline]] decltype(auto) call_multi(F f, A... args) {
    return f.template operator()<true>(args...);
}

/// Runs `f.template operator()<Multi>(args...)` with `Multi` true on the worker
/// of a multi-threaded runtime (out of line) and false otherwise (inline). `f` is
/// a template lambda: `by_workers([&]<bool Multi>() { ... })`. Both are passed
/// by value: a lambda that captures only `this` and takes the rest as `args`
/// travels in registers, so the single-worker path stores nothing for the other.
template <class F, class... A>
UTHREADS_ALWAYS_INLINE inline decltype(auto) by_workers(F f, A... args) {
    if (tls_multi) [[unlikely]]
        return call_multi(f, args...);
    return f.template operator()<false>(args...);
}

/// Holds `l` for its scope when the calling thread is a worker of a
/// multi-threaded runtime; otherwise does nothing.
class sync_guard {
public:
    explicit sync_guard(spinlock& l) noexcept
        : l_(tls_multi ? &l : nullptr) {
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
