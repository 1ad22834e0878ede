// Descriptor registration and readiness waits.
//
// Registration is lazy: a socket that never sees EAGAIN never costs an
// epoll_ctl. Once registered, the descriptor stays registered until close (or,
// with several workers, until it moves to another worker), so an
// edge-triggered backend needs no system call per wait.
//
// Descriptors across workers (options.threads > 1)
// ------------------------------------------------
// A backend instance is touched only by its own worker's thread. A descriptor is
// registered with one worker's backend at a time, its owner (`io_state::s`);
// everything about the registration (the parked reader and writer, the
// interest, the backend calls) happens on the owner's thread. Microthreads that
// use the descriptor may run on other workers (a handler stolen before it
// started, a stream passed through a channel), so:
//
// - A wait from a microthread on worker V while worker W owns the descriptor
//   posts a request to W (`handle_request`) and suspends the microthread. On W:
//   if nothing is parked on the descriptor, W removes it from its backend and
//   its registration list and gives it up (`s = nullptr`); the microthread is
//   woken without the descriptor being ready, retries its system call and, on
//   EAGAIN, waits again: that wait claims the descriptor (CAS from nullptr) and
//   registers it on V. Nothing is lost across the move: every caller of
//   wait_ready retries the system call before waiting again, so readiness that
//   arrived in between is seen by the call itself.
// - If the other direction is parked on W (one microthread reads on W while
//   another writes on V: full duplex across workers), W parks the request in
//   the descriptor as if it were local, and its readiness wakes the microthread
//   on V through V's remote queue.
// - If the descriptor moved on meanwhile, W forwards the request to the new
//   owner; if nobody owns it, it answers at once (the waiter then claims it).
// - Cancellation runs on V and cannot touch W's state: `remote_try_cancel`
//   marks the request (W then answers it without parking it) or, if W parked
//   it, posts `handle_cancel` to W, which unlinks it. Either way the microthread
//   stays suspended until W answers, so the wait operation in its frame
//   outlives every message about it, and `try_cancel` returns false: the
//   cancellation is delivered at the next suspension point (the wait after the
//   retried system call), and nothing is lost.
// - A close on another worker than the owner marks the state closed, then posts
//   `close_on_owner` to the owner, which unregisters, wakes parked waits with
//   EBADF, cancels completion operations on the rings that submitted them, and
//   only then closes the number (so a reused number is never unregistered by
//   mistake). Requests that arrive after it see `closed` and fail with EBADF.
//   The state is reference counted (the io_object, each request and each
//   completion in flight), so a late message never touches freed memory.
// - Closing and claiming are ordered by seq_cst on `closed` and `s`: a close
//   sets `closed` then reads `s`; a claim sets `s` then reads `closed`. Either
//   the close sees the claimer (and posts to it) or the claimer sees the close
//   (and gives the descriptor up without registering it).
//
// With one worker none of this runs: `s` is compared with the current
// scheduler once per wait, and everything else is behind that branch (and
// behind tls_multi in close).
#include "completion.hpp"

#include <uthreads/net.hpp>

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace uthreads::detail {

namespace {

using wait_operation = io_object::wait_operation;

void set_interest(io_state* st) {
    unsigned want = (st->reader ? lowlevel::readable : 0u) | (st->writer ? lowlevel::writable : 0u);
    if (want != st->interest) {
        st->interest = want;
        st->s.load(std::memory_order_relaxed)->backend().want(*st, want);
    }
}

// Record `op`, a wait of microthread `m`, as the one parked in direction `dir`
// of `st` (null and null: none is).
void set_parked(io_state* st, unsigned dir, microthread* m, wait_operation* op) noexcept {
    if (dir == lowlevel::readable) {
        st->reader = m;
        st->reader_op = op;
    } else {
        st->writer = m;
        st->writer_op = op;
    }
}

// Take the parked wait of direction `dir` out of `st` (a cancellation), and
// narrow the backend's interest to what is still parked.
void unlink_wait(io_state* st, unsigned dir) {
    set_parked(st, dir, nullptr, nullptr);
    set_interest(st);
}

// Progress of a cross-worker wait (wait_operation::xstate).
enum : int {
    x_requesting = 0,  // the request is on its way to (or queued at) an owner
    x_parked = 1,      // parked in the descriptor on `owner`
    x_cancel = 2,      // cancellation asked; the owner answers
    x_answered = 3,    // the wake-up is on its way to the waiter's worker
};

std::atomic_ref<int> xstate(wait_operation* op) noexcept {
    return std::atomic_ref<int>(op->xstate);
}

void unref(io_state* st) noexcept {
    // acq_rel: the last holder sees every write the others made before letting go.
    if (st->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete st;
}

// Wake the microthread of a cross-worker wait on its own worker, dropping the
// request's reference. `op` may be gone as soon as this returns.
void answer(wait_operation* op) {
    xstate(op).store(x_answered, std::memory_order_relaxed);
    io_state* st = op->st;
    scheduler* home = op->home;
    microthread* m = op->m;
    unref(st);
    unpark(*home, m);
}

// On the owner: a parked cross-worker wait was unlinked from the descriptor
// (ready, or closed). Wake it unless a cancellation claimed it first; then the
// handle_cancel message already posted to this worker wakes it.
void finish_parked(wait_operation* op) {
    op->linked = false;
    int expected = x_parked;
    if (xstate(op).compare_exchange_strong(expected, x_answered, std::memory_order_acq_rel))
        answer(op);
}

void handle_cancel(void* p) {
    auto* op = static_cast<wait_operation*>(p);
    if (op->linked) {
        // invariant: a linked wait keeps the descriptor from moving or being
        // freed (close unlinks it first), so st is alive and owned here.
        op->linked = false;
        unlink_wait(op->st, op->dir);
    }
    answer(op);
}

// Runs on the waiting microthread's worker.
bool remote_try_cancel(wait_node* w) {
    auto* op = static_cast<wait_operation*>(w);
    int expected = x_requesting;
    if (xstate(op).compare_exchange_strong(expected, x_cancel, std::memory_order_acq_rel))
        return false;  // the owner answers the request without parking it
    if (expected == x_parked &&
        xstate(op).compare_exchange_strong(expected, x_cancel, std::memory_order_acq_rel))
        op->owner->post(&handle_cancel, op);
    // Otherwise the answer is already on its way.
    return false;
}

void handle_request(void* p) {
    auto* op = static_cast<wait_operation*>(p);
    io_state* st = op->st;
    scheduler& here = *tls_scheduler;
    if (st->closed.load(std::memory_order_acquire)) {
        op->closed = true;
        answer(op);
        return;
    }
    if (xstate(op).load(std::memory_order_acquire) == x_cancel) {
        answer(op);  // the waiter sees its cancellation at its next wait
        return;
    }
    scheduler* owner = st->s.load(std::memory_order_acquire);
    if (owner != &here) {
        if (owner == nullptr || owner == op->home) {
            answer(op);  // free, or already on the waiter's worker: it retries
        } else {
            op->owner = owner;  // moved on meanwhile: follow it
            owner->post(&handle_request, op);
        }
        return;
    }
    bool read = op->dir == lowlevel::readable;
    if (read ? st->reader : st->writer) {
        op->busy = true;
        answer(op);
        return;
    }
    if (!st->reader && !st->writer) {
        // Nothing parked here: give the registration up. The waiter retries its
        // system call, and its next wait registers the descriptor on its worker.
        here.backend().remove(*st);
        here.unlink(st);
        st->interest = 0;
        st->s.store(nullptr, std::memory_order_release);
        answer(op);
        return;
    }
    // The other direction is parked here (full duplex across workers): park
    // this wait here too; readiness wakes it on its own worker. This loop may
    // have run since the waiter's system call failed with EAGAIN, and an
    // edge-triggered backend reports each change once: if the descriptor is
    // ready now, answer at once (the waiter retries); if not, the change that
    // makes it ready comes after this and reaches the parked wait.
    pollfd pfd{st->fd, static_cast<short>(read ? POLLIN : POLLOUT), 0};
    if (::poll(&pfd, 1, 0) != 0) {
        answer(op);
        return;
    }
    op->owner = &here;
    int expected = x_requesting;
    if (!xstate(op).compare_exchange_strong(expected, x_parked, std::memory_order_acq_rel)) {
        answer(op);  // cancelled meanwhile
        return;
    }
    op->linked = true;
    set_parked(st, op->dir, op->m, op);
    set_interest(st);
}

// Runs on the worker that submitted `c`: the descriptor was closed while `c`
// was in flight (the close took it out of its slot).
void close_completion(void* p) {
    auto* c = static_cast<completion_wait*>(p);
    c->closed = true;
    if (c->finished) {
        // It completed before this message: its wake-up waited for us.
        io_state* st = c->st;
        unpark(*c->s, c->m);
        unref(st);
        return;
    }
    if (!c->cancel_sent) {
        c->cancel_sent = true;
        c->s->backend().cancel(*c);
    }
}

// On the calling worker: unregister `st` if this worker owns it, waking parked
// waits with EBADF, and cancel its completion operations wherever they were
// submitted. The number itself is left to the caller.
void forget(io_state* st) noexcept {
    scheduler* here = tls_scheduler;
    if (here && st->s.load(std::memory_order_acquire) == here) {
        here->backend().remove(*st);
        here->unlink(st);
        st->interest = 0;
        st->s.store(nullptr, std::memory_order_release);
        void* ops[] = {st->reader_op, st->writer_op};
        st->reader = st->writer = nullptr;
        st->reader_op = st->writer_op = nullptr;
        for (void* p : ops) {
            if (auto* op = static_cast<wait_operation*>(p)) {
                op->closed = true;
                if (op->home)
                    finish_parked(op);
                else
                    unpark(*here, op->m);
            }
        }
    }
    for (completion_wait** slot : {&st->read_completion, &st->write_completion}) {
        completion_wait* c =
            std::atomic_ref<completion_wait*>(*slot).exchange(nullptr, std::memory_order_acq_rel);
        if (!c) continue;
        if (c->s == here)
            close_completion(c);
        else
            c->s->post(&close_completion, c);
    }
}

void close_on_owner(void* p) {
    auto* st = static_cast<io_state*>(p);
    forget(st);
    ::close(st->fd);
    unref(st);
}

// io_object::release with several workers (any worker may call it).
int release_multi(io_state* st, bool keep_fd) noexcept {
    // seq_cst pair with the claim in wait_ready_slow (see the top of the file).
    st->closed.store(true, std::memory_order_seq_cst);
    scheduler* owner = st->s.load(std::memory_order_seq_cst);
    if (owner == nullptr || owner == tls_scheduler) {
        forget(st);
        int fd = st->fd;
        unref(st);
        return fd;
    }
    // Another worker's backend has it: that worker closes the number once it
    // forgot it. A caller taking the descriptor over gets a duplicate.
    int fd = keep_fd ? ::fcntl(st->fd, F_DUPFD_CLOEXEC, 0) : -1;
    owner->post(&close_on_owner, st);
    return fd;
}

// The run ends while this socket stays open (it was created outside the run,
// or a close is still on its way to this worker): unregister, so it can be used
// again by a later run.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 takes the atomic accesses through a pointer adjusted from a base class
// (backend_registration is not io_state's first base) for writes into an
// object of size 0 and warns (-Wstringop-overflow): a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
void unregister_at_run_end(backend_registration* r) noexcept {
    auto* st = static_cast<io_state*>(r);
    st->s.load(std::memory_order_relaxed)->backend().remove(*st);
    st->s.store(nullptr, std::memory_order_release);
    st->interest = 0;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

bool suspend_remote(wait_operation& op, std::coroutine_handle<> h) {
    if (!park(*op.home, op, h)) {
        unref(op.st);
        return false;  // resumes at once and throws cancelled
    }
    op.m = op.home->current_;
    op.try_cancel = &remote_try_cancel;
    op.owner->post(&handle_request, &op);
    return true;
}

}  // namespace

void complete_multi(completion_wait* c) {
    io_state* st = c->st;
    if (!st || !c->slot) {
        unpark(*c->s, c->m);
        return;
    }
    completion_wait* expected = c;
    if (std::atomic_ref<completion_wait*>(*c->slot).compare_exchange_strong(
            expected, nullptr, std::memory_order_acq_rel)) {
        unpark(*c->s, c->m);
        unref(st);
        return;
    }
    // A close took this operation out of its slot and posted close_completion
    // to this worker; whichever of the two runs second wakes the microthread.
    c->finished = true;
    if (c->closed) {
        unpark(*c->s, c->m);
        unref(st);
    }
}

void publish_completion(completion_wait* c) {
    c->st->refs.fetch_add(1, std::memory_order_relaxed);
    std::atomic_ref<completion_wait*>(*c->slot).store(c, std::memory_order_release);
}

io_object::io_object(int fd) : st_(new io_state) {
    io_state* st0 = state();
    st0->fd = fd;
    st0->ready = [](lowlevel::io_watcher* w, unsigned events) {
        auto* st = static_cast<io_state*>(w);
        scheduler& s = *st->s.load(std::memory_order_relaxed);
        bool any = false;
        if ((events & (lowlevel::readable | lowlevel::io_error)) && st->reader) {
            auto* op = static_cast<wait_operation*>(st->reader_op);
            set_parked(st, lowlevel::readable, nullptr, nullptr);
            if (op->home) [[unlikely]]
                finish_parked(op);
            else
                unpark(s, op->m);
            any = true;
        }
        if ((events & (lowlevel::writable | lowlevel::io_error)) && st->writer) {
            auto* op = static_cast<wait_operation*>(st->writer_op);
            set_parked(st, lowlevel::writable, nullptr, nullptr);
            if (op->home) [[unlikely]]
                finish_parked(op);
            else
                unpark(s, op->m);
            any = true;
        }
        if (any) set_interest(st);
    };
}

void io_object::close() noexcept {
    if (tls_multi && is_open()) [[unlikely]] {
        int fd = release_multi(take(), false);
        if (fd >= 0) ::close(fd);
        return;
    }
    int fd = release();
    if (fd >= 0) ::close(fd);
}

int io_object::release() noexcept {
    io_state* st = take();
    if (!st) return -1;
    if (tls_multi) [[unlikely]]
        return release_multi(st, true);
    if (scheduler* s = st->s.load(std::memory_order_relaxed)) {
        s->backend().remove(*st);
        s->unlink(st);
        // Wake parked operations; they see `closed` and fail with EBADF without
        // touching the (soon freed) state or a descriptor number that may be
        // reused.
        for (void* p : {st->reader_op, st->writer_op}) {
            if (auto* op = static_cast<wait_operation*>(p)) {
                op->closed = true;
                unpark(*s, op->m);
            }
        }
    }
    // Completion operations in flight keep the kernel's file reference: cancel
    // them, and let their completion report EBADF without touching `st`.
    for (completion_wait* c : {st->read_completion, st->write_completion}) {
        if (!c) continue;
        c->st = nullptr;
        c->closed = true;
        if (!c->cancel_sent) {
            c->cancel_sent = true;
            c->s->backend().cancel(*c);
        }
    }
    int fd = st->fd;
    delete st;
    return fd;
}

io_object::wait_operation io_object::wait_ready(unsigned dir, const char* what) {
    io_state* st = state();
    if (!st)
        throw std::system_error(EBADF, std::system_category(),
                                std::string("uthreads: ") + what + " on a closed socket");
    scheduler& s = current_scheduler(what);
    // Registered on this worker: the common case. Everything else (the first
    // wait, another runtime, another worker) is out of line.
    if (st->s.load(std::memory_order_relaxed) != &s) [[unlikely]]
        return wait_ready_slow(dir, what, s);
    if ((dir == lowlevel::readable ? st->reader : st->writer) != nullptr)
        throw std::logic_error(std::string("uthreads: ") + what +
                               ": another microthread is already waiting in this direction");
    wait_operation op{};
    op.st = st;
    op.dir = dir;
    op.what = what;
    return op;
}

io_object::wait_operation io_object::wait_ready_slow(unsigned dir, const char* what, scheduler& s) {
    io_state* st = state();
    scheduler* owner = st->s.load(std::memory_order_relaxed);
    if (!owner) {
        // Claim the descriptor for this worker. With several workers a close or
        // another claimer may race us (see the top of the file).
        bool claimed = true;
        if (s.multi())
            claimed = st->s.compare_exchange_strong(owner, &s, std::memory_order_seq_cst);
        else
            st->s.store(&s, std::memory_order_relaxed);
        if (claimed) {
            if (s.multi() && st->closed.load(std::memory_order_seq_cst)) {
                st->s.store(nullptr, std::memory_order_release);
                throw std::system_error(EBADF, std::system_category(),
                                        std::string("uthreads: ") + what + " on a closed socket");
            }
            try {
                s.backend().add(*st);
            } catch (...) {
                st->s.store(nullptr, std::memory_order_release);
                throw;
            }
            st->on_runtime_end = &unregister_at_run_end;
            s.link(st);
            wait_operation op{};
            op.st = st;
            op.dir = dir;
            op.what = what;
            return op;
        }
        // Another worker claimed it first: ask it, below.
    }
    if (!s.multi() || owner->group() != s.group())
        throw std::logic_error(std::string("uthreads: ") + what +
                               ": socket belongs to another runtime");
    // Registered on another worker of this runtime: the request holds a
    // reference until it is answered.
    st->refs.fetch_add(1, std::memory_order_relaxed);
    wait_operation op{};
    op.st = st;
    op.dir = dir;
    op.what = what;
    op.home = &s;
    op.owner = owner;
    return op;
}

bool io_object::wait_operation::await_suspend(std::coroutine_handle<> h) {
    if (home) [[unlikely]]
        return suspend_remote(*this, h);
    scheduler& s = *st->s.load(std::memory_order_relaxed);
    if (!park(s, *this, h)) return false;
    m = s.current_;
    set_parked(st, dir, m, this);
    try_cancel = [](wait_node* w) {
        auto* op = static_cast<wait_operation*>(w);
        unlink_wait(op->st, op->dir);
        return true;
    };
    set_interest(st);
    return true;
}

void io_object::wait_operation::await_resume() const {
    throw_if_cancelled(*this);
    if (closed)
        throw std::system_error(EBADF, std::system_category(),
                                std::string("uthreads: ") + what + ": socket closed while waiting");
    if (busy) [[unlikely]]
        throw std::logic_error(std::string("uthreads: ") + what +
                               ": another microthread is already waiting in this direction");
}

}  // namespace uthreads::detail
