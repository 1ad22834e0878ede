// Descriptor registration and readiness waits.
//
// Registration is lazy: a socket that never sees EAGAIN never costs an
// epoll_ctl. Once registered, the descriptor stays registered until close, so
// an edge-triggered backend needs no system call per wait.
#include "completion.hpp"

#include <uthreads/net.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace uthreads::detail {

namespace {
// The parked operation for each direction, found again by on_ready.

void set_interest(io_state* st) {
    unsigned want = (st->reader ? lowlevel::readable : 0u) | (st->writer ? lowlevel::writable : 0u);
    if (want != st->interest) {
        st->interest = want;
        st->s->backend().want(*st, want);
    }
}
}  // namespace

io_object::io_object(int fd) : st_(new io_state) {
    st_->fd = fd;
    st_->ready = [](lowlevel::io_watcher* w, unsigned events) {
        auto* st = static_cast<io_state*>(w);
        bool any = false;
        if ((events & (lowlevel::readable | lowlevel::io_error)) && st->reader) {
            auto* op = static_cast<wait_operation*>(st->reader_op);
            st->reader = nullptr;
            st->reader_op = nullptr;
            unpark(*st->s, op->m);
            any = true;
        }
        if ((events & (lowlevel::writable | lowlevel::io_error)) && st->writer) {
            auto* op = static_cast<wait_operation*>(st->writer_op);
            st->writer = nullptr;
            st->writer_op = nullptr;
            unpark(*st->s, op->m);
            any = true;
        }
        if (any) set_interest(st);
    };
}

void io_object::close() noexcept {
    int fd = release();
    if (fd >= 0) ::close(fd);
}

int io_object::release() noexcept {
    io_state* st = std::exchange(st_, nullptr);
    if (!st) return -1;
    if (st->s && tls_multi && st->s != tls_scheduler) [[unlikely]] {
        // The registration belongs to another worker's backend, which only that
        // worker may touch, and closing the descriptor first could let a reused
        // number be unregistered later. Moving descriptors between workers is
        // the next milestone (docs/threads.md); fail loudly rather than corrupt.
        std::fprintf(stderr,
                     "uthreads: closing a descriptor registered on another worker is not "
                     "supported yet (docs/threads.md)\n");
        std::abort();
    }
    if (st->s) {
        st->s->backend().remove(*st);
        st->s->unlink(st);
        // Wake parked operations; they see `closed` and fail with EBADF without
        // touching the (soon freed) state or a descriptor number that may be
        // reused.
        for (void* p : {st->reader_op, st->writer_op}) {
            if (auto* op = static_cast<wait_operation*>(p)) {
                op->closed = true;
                unpark(*st->s, op->m);
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
    if (!st_)
        throw std::system_error(EBADF, std::system_category(),
                                std::string("uthreads: ") + what + " on a closed socket");
    scheduler& s = current_scheduler(what);
    if (!st_->s) {
        s.backend().add(*st_);
        st_->s = &s;
        st_->on_runtime_end = [](backend_registration* r) noexcept {
            // The run ends while this socket stays open (it was created outside
            // the run): unregister, so it can be used again by a later run.
            auto* st = static_cast<io_state*>(r);
            st->s->backend().remove(*st);
            st->s = nullptr;
            st->interest = 0;
        };
        s.link(st_);
    } else if (st_->s != &s) {
        throw std::logic_error(std::string("uthreads: ") + what +
                               ": socket belongs to another runtime");
    }
    if ((dir == lowlevel::readable ? st_->reader : st_->writer) != nullptr)
        throw std::logic_error(std::string("uthreads: ") + what +
                               ": another microthread is already waiting in this direction");
    wait_operation op{};
    op.st = st_;
    op.dir = dir;
    op.what = what;
    return op;
}

bool io_object::wait_operation::await_suspend(std::coroutine_handle<> h) {
    scheduler& s = *st->s;
    if (!park(s, *this, h)) return false;
    m = s.current_;
    if (dir == lowlevel::readable) {
        st->reader = m;
        st->reader_op = this;
    } else {
        st->writer = m;
        st->writer_op = this;
    }
    try_cancel = [](wait_node* w) {
        auto* op = static_cast<wait_operation*>(w);
        io_state* st = op->st;
        if (op->dir == lowlevel::readable) {
            st->reader = nullptr;
            st->reader_op = nullptr;
        } else {
            st->writer = nullptr;
            st->writer_op = nullptr;
        }
        set_interest(st);
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
}

}  // namespace uthreads::detail
