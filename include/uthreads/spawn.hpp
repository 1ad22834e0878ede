/// \file
/// Branching execution: `spawn` and `join_handle`.
///
/// `spawn(t, name)` starts `t` as a new microthread on the caller's runtime; it
/// runs when the caller next suspends. The returned handle joins it
/// (`co_await h` gives its value or rethrows its exception), cancels it, or —
/// when dropped — detaches it. An exception escaping a detached microthread, or a
/// joinable one whose handle is dropped without joining, is reported with the
/// microthread's name to the unhandled-exception handler, never lost silently.
#pragma once

#include <uthreads/runtime.hpp>

#include <exception>
#include <functional>
#include <atomic>
#include <string>
#include <string_view>
#include <utility>

namespace uthreads {

/// Called for an exception nobody will observe: the microthread's name (may be
/// empty) and the exception. The default prints both to stderr.
using unhandled_exception_handler = std::function<void(std::string_view name, std::exception_ptr)>;

/// Replace the handler (process-wide); returns the previous one. Passing an empty
/// function restores the default.
unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h);

namespace detail {
[[noreturn]] void throw_joined_twice();
[[noreturn]] void throw_empty_handle(const char* what);
void detach(microthread* m) noexcept;
struct join_operation;
std::coroutine_handle<> join_suspend_multi(join_operation* op, std::coroutine_handle<> h);
/// Cancel `m` from any worker of a multi-threaded runtime (delivered on `m`'s own
/// worker).
void cancel_multi(microthread* m);

/// `m->done`, read safely from any worker. acquire: with several workers, the
/// result written before it is visible. Always atomic: on x86 an acquire load is
/// a plain load, cheaper than testing which runtime we are on.
inline bool done_of(const microthread* m) noexcept {
    return std::atomic_ref<bool>(const_cast<microthread*>(m)->done).load(std::memory_order_acquire);
}

struct join_operation : wait_node {
    microthread* target;
    scheduler* s;
    microthread* waiter = nullptr;  // several workers: the joining microthread
    bool await_ready() const {
        if (cancel_pending(s->current_)) throw ::uthreads::cancelled{};
        return done_of(target);
    }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
        if (s->multi()) [[unlikely]]
            return join_suspend_multi(this, h);
        if (!park(*s, *this, h)) return h;  // resumes at once and throws cancelled
        target->joiner = s->current_;
        try_cancel = [](wait_node* w) {
            static_cast<join_operation*>(w)->target->joiner = nullptr;
            return true;
        };
        if (s->start_inline(target)) return target->resume;
        return std::noop_coroutine();
    }
};
}  // namespace detail

/// Owns the right to join, cancel or detach one microthread. Move-only.
template <class T>
class join_handle {
public:
    join_handle() noexcept = default;
    join_handle(detail::microthread* m, std::coroutine_handle<detail::task_promise<T>> h) noexcept
        : m_(m), h_(h) {}
    join_handle(join_handle&& o) noexcept
        : m_(std::exchange(o.m_, nullptr)), h_(std::exchange(o.h_, {})), joined_(o.joined_) {}
    join_handle& operator=(join_handle&& o) noexcept {
        if (this != &o) {
            reset();
            m_ = std::exchange(o.m_, nullptr);
            h_ = std::exchange(o.h_, {});
            joined_ = o.joined_;
        }
        return *this;
    }
    join_handle(const join_handle&) = delete;
    join_handle& operator=(const join_handle&) = delete;
    /// Dropping a handle detaches the microthread; it keeps running.
    ~join_handle() { reset(); }

    /// True once the microthread has finished (returned, thrown, or been cancelled).
    bool done() const {
        if (!m_) detail::throw_empty_handle("join_handle::done");
        return detail::done_of(m_);
    }

    /// Request cancellation: the microthread gets `cancelled` at its current or
    /// next suspension point. Idempotent; a no-op once it finished. Returns at once.
    void cancel() {
        if (!m_) detail::throw_empty_handle("join_handle::cancel");
        if (detail::tls_multi) [[unlikely]]
            detail::cancel_multi(m_);
        else if (!m_->done)
            m_->sched->cancel(m_);
    }

    /// Detach explicitly (same as dropping the handle).
    void detach() noexcept { reset(); }

    /// The microthread's numeric id (unique within its runtime).
    std::uint64_t id() const {
        if (!m_) detail::throw_empty_handle("join_handle::id");
        return m_->id;
    }

    struct awaiter : detail::join_operation {
        join_handle* self;
        T await_resume() {
            detail::throw_if_cancelled(*this);
            self->joined_ = true;
            self->m_->error_observed = true;
            return self->h_.promise().take();
        }
    };
    /// Wait for the microthread to finish; returns its value or rethrows its
    /// exception (including `cancelled` if it was cancelled). Joining twice throws
    /// std::logic_error. Suspension and cancellation point: cancelling the joiner
    /// loses nothing (the microthread keeps running and can be joined again).
    awaiter operator co_await() {
        if (!m_) detail::throw_empty_handle("join_handle: co_await");
        if (joined_) detail::throw_joined_twice();
        awaiter a{};
        a.target = m_;
        a.s = &detail::current_scheduler("join_handle: co_await");
        a.self = this;
        return a;
    }

private:
    void reset() noexcept {
        if (m_) detail::detach(std::exchange(m_, nullptr));
        h_ = {};
    }
    detail::microthread* m_ = nullptr;
    std::coroutine_handle<detail::task_promise<T>> h_;
    bool joined_ = false;
};

/// Start `t` as a new microthread named `name` on the calling thread's runtime.
/// Throws std::logic_error when no runtime is running, std::logic_error for an
/// empty task.
template <class T>
join_handle<T> spawn(task<T> t, std::string name = {}) {
    auto& s = detail::current_scheduler("spawn");
    if (!t.valid()) detail::throw_empty_task();
    auto h = t.release();
    detail::microthread* m = s.spawn(h, &h.promise(), std::move(name));
    return join_handle<T>(m, h);
}

}  // namespace uthreads
