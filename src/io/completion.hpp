// Waiting on a backend's completion operation (io_uring) from a microthread.
//
// The I/O layer tries the system call first; only when it would block does it
// hand the operation to a completion backend, which then performs it (so the
// data arrives with the wake-up and no retry call is needed). Cancellation
// cannot unlink such a wait synchronously — the kernel may be writing into the
// buffer — so it asks the backend to cancel and the microthread stays parked
// until the completion arrives: the buffer outlives the kernel's use of it. A
// completion that won the race against the cancel is returned, not lost; the
// cancellation is then delivered at the next suspension point.
#pragma once

#include <uthreads/net.hpp>

#include <cerrno>
#include <string>
#include <system_error>
#include <unistd.h>

namespace uthreads::detail {

struct completion_wait;
/// Several workers (io_object.cpp): record `c` in its descriptor's slot, holding
/// a reference to the descriptor's state until it completes; and its completion,
/// which a close on another worker may have taken over.
void publish_completion(completion_wait* c);
void complete_multi(completion_wait* c);

struct completion_wait : wait_node, lowlevel::completion_op {
    scheduler* s = nullptr;
    microthread* m = nullptr;
    io_state* st = nullptr;            // cleared by io_object::close while pending (one worker)
    completion_wait** slot = nullptr;  // where st records this pending op
    int result = 0;
    bool cancel_sent = false;
    bool closed = false;           // the socket was closed while pending
    bool finished = false;         // several workers: completed after a close took it
    const char* what = "";

    bool await_ready() const noexcept { return false; }

    bool await_suspend(std::coroutine_handle<> h) {
        if (!park(*s, *this, h)) return false;
        m = s->current_;
        complete = [](lowlevel::completion_op* o, int res) {
            auto* self = static_cast<completion_wait*>(o);
            --self->s->inflight_ops_;
            self->result = res;
            if (self->s->multi()) [[unlikely]] {
                complete_multi(self);
                return;
            }
            if (self->st && self->slot) *self->slot = nullptr;
            unpark(*self->s, self->m);
        };
        try_cancel = [](wait_node* w) {
            auto* self = static_cast<completion_wait*>(w);
            // `finished`: it completed; a close's message wakes it (io_object.cpp).
            if (!self->cancel_sent && !self->finished) {
                self->cancel_sent = true;
                self->s->backend().cancel(*self);
            }
            return false;  // stay parked until the completion arrives
        };
        try {
            s->backend().submit(*this);
        } catch (...) {
            m->wait = nullptr;
            throw;
        }
        // Counted so that the scheduler keeps reaping completions even while
        // microthreads are always runnable (it skips polling when nothing is
        // registered or in flight).
        ++s->inflight_ops_;
        if (slot) {
            if (s->multi()) [[unlikely]]
                publish_completion(this);
            else
                *slot = this;
        }
        return true;
    }

    /// The operation's result (>= 0), or throws: `cancelled` if it was cancelled
    /// before completing, EBADF if the socket was closed meanwhile, or returns
    /// the negative errno for the caller to interpret.
    int await_resume() const {
        throw_if_cancelled(*this);
        // An accept that completed after its listener was closed must not leak
        // the new connection (the caller gets EBADF, not the socket).
        if (closed && op == kind::accept && result >= 0) ::close(result);
        if (closed)
            throw std::system_error(EBADF, std::system_category(),
                                    std::string("uthreads: ") + what + ": socket closed while waiting");
        if (result == -ECANCELED && cancel_sent) throw ::uthreads::cancelled{};
        return result;
    }
};

/// True if the calling runtime's backend performs completion operations.
bool backend_has_completions();

/// Hand a would-block operation on `io` to the completion backend and wait for
/// its result (>= 0, or -errno). `is_read` picks the direction slot that
/// io_object::close cancels; `addr`/`addrlen` are connect's target (alive until
/// the task finishes). Only called when backend_has_completions().
task<int> await_completion(io_object& io, lowlevel::completion_op::kind kind, void* buf,
                           std::size_t len, int flags, bool is_read, const char* what,
                           void* addr = nullptr, unsigned addrlen = 0);

}  // namespace uthreads::detail
