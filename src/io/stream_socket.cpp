// The byte-stream operations shared by tcp_stream, unix_stream and
// pipe_stream, and the accept loop shared by the listeners: try the system
// call, and only on EAGAIN hand the operation to a completion backend
// (io_uring) or park until the descriptor is ready. Pipes always park: io_uring
// honours O_NONBLOCK on a pipe by failing a read or write with EAGAIN, so a
// completion would only add a round trip.
#include "../core/scheduler_internal.hpp"
#include "completion.hpp"

#include <uthreads/net.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <ctime>
#include <sys/socket.h>
#include <sys/uio.h>
#include <system_error>
#include <unistd.h>

namespace uthreads::detail {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), "uthreads: " + what);
}

}  // namespace

task<int> await_completion(io_object& io, lowlevel::completion_op::kind kind, void* buf,
                           std::size_t len, int flags, bool is_read, const char* what, void* addr,
                           unsigned addrlen) {
    completion_wait w;
    w.s = &current_scheduler(what);
    w.what = what;
    w.op = kind;
    w.fd = io.fd();
    w.buf = buf;
    w.len = len;
    w.flags = flags;
    w.addr = addr;
    w.addrlen = addrlen;
    w.st = io.state();
    w.slot = is_read ? &w.st->read_completion : &w.st->write_completion;
    co_return co_await w;
}

bool backend_has_completions() {
    return tls_scheduler->backend().supports_completions();
}

namespace {

// A send would block and the backend performs completion operations: hand
// `chunk` to the kernel, which sends what fits once the socket is writable.
// Returns the bytes sent; 0 when it had to wait for writability instead or was
// interrupted (the caller simply goes round again).
task<std::size_t> send_by_completion(io_object& io, std::span<const std::byte> chunk,
                                     const char* what, const std::string& peer) {
    int r = co_await await_completion(io, lowlevel::completion_op::kind::send,
                                      const_cast<std::byte*>(chunk.data()), chunk.size(),
                                      MSG_NOSIGNAL, false, what);
    if (r >= 0) co_return static_cast<std::size_t>(r);
    int err = -r;
    if (err == EAGAIN || err == EWOULDBLOCK) {
        co_await io.wait_ready(lowlevel::writable, what);
        co_return 0;
    }
    if (err != EINTR) throw_errno(err, "write_all to " + peer);
    co_return 0;
}

// write(2) to a pipe whose reader is gone raises SIGPIPE, whose default action
// kills the process, and unlike send(2) it has no MSG_NOSIGNAL. Setting the
// process's disposition to SIG_IGN is not a library's business, so instead
// SIGPIPE is blocked in the calling thread for the duration of the call. The
// SIGPIPE a write raises is thread-directed and synchronous: it stays pending
// on this thread, and after an EPIPE it is consumed with a zero-timeout
// sigtimedwait before the old mask is restored. If the caller already had
// SIGPIPE blocked with one pending, that one is left alone (ours would merge
// with it, so there is nothing of ours to take). The price is two
// pthread_sigmask calls per write(2) on a pipe; the same technique as git's and
// curl's SIGPIPE guards.
ssize_t write_without_sigpipe(int fd, const void* data, std::size_t len) {
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    bool was_blocked = sigismember(&old, SIGPIPE) == 1;
    bool was_pending = false;
    if (was_blocked) {
        sigset_t pending;
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    ssize_t n = ::write(fd, data, len);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        const timespec zero{};
        while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    if (!was_blocked) pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = err;
    return n;
}

}  // namespace

stream_socket::stream_socket(int fd, std::string peer, const stream_names* names) noexcept
    : io_(fd)
    , peer_(std::move(peer))
    , names_(names) {}

task<std::size_t> stream_socket::read_some(std::span<std::byte> buf) {
    co_await checkpoint(names_->read_some);
    if (!io_.is_open()) throw_errno(EBADF, "read_some from " + peer_ + ": stream is closed");
    if (buf.empty()) co_return 0;
    for (;;) {
        // On a completion backend, a socket whose last receive had to wait goes
        // straight to a completion operation: the kernel tries the receive
        // itself when it takes the request, so data already there costs no
        // extra wait, and the nonblocking recv that would most likely fail with
        // EAGAIN (one system call per message on a request/response stream) is
        // skipped. A receive that fills the whole buffer suggests more is
        // queued: the next one tries the nonblocking call first again.
        io_state* st = io_.state();
        bool straight_to_completion = st && st->recv_waits && !names_->pipe;
        int err = EAGAIN;
        if (!straight_to_completion) {
            ssize_t n = names_->pipe ? ::read(io_.fd(), buf.data(), buf.size())
                                     : ::recv(io_.fd(), buf.data(), buf.size(), 0);
            if (n >= 0) co_return static_cast<std::size_t>(n);
            err = errno;
        }
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (names_->pipe || !backend_has_completions()) {
                co_await io_.wait_ready(lowlevel::readable, names_->read_some);
                continue;
            }
            int r = co_await await_completion(io_, lowlevel::completion_op::kind::recv, buf.data(),
                                              buf.size(), 0, true, names_->read_some);
            if (r >= 0) {
                if (io_state* now = io_.state()) now->recv_waits = static_cast<std::size_t>(r) < buf.size();
                co_return static_cast<std::size_t>(r);
            }
            err = -r;
            // A backend that honours O_NONBLOCK reports EAGAIN: wait for readiness.
            if (err == EAGAIN || err == EWOULDBLOCK) {
                if (io_state* now = io_.state()) now->recv_waits = false;
                co_await io_.wait_ready(lowlevel::readable, names_->read_some);
                continue;
            }
        }
        if (err != EINTR) throw_errno(err, "read_some from " + peer_);
    }
}

task<void> stream_socket::read_exact(std::span<std::byte> buf) {
    std::size_t got = 0;
    while (got < buf.size()) {
        std::size_t n = co_await read_some(buf.subspan(got));
        if (n == 0) throw end_of_stream(got, buf.size());
        got += n;
    }
}

task<void> stream_socket::write_all(std::span<const std::byte> data) {
    co_await checkpoint(names_->write_all);
    if (!io_.is_open()) throw_errno(EBADF, "write_all to " + peer_ + ": stream is closed");
    std::size_t done = 0;
    while (done < data.size()) {
        // MSG_NOSIGNAL (or, on a pipe, SIGPIPE blocked around the write): a
        // closed peer is EPIPE here, never a process-killing SIGPIPE.
        ssize_t n = names_->pipe
                        ? write_without_sigpipe(io_.fd(), data.data() + done, data.size() - done)
                        : ::send(io_.fd(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (names_->pipe || !backend_has_completions()) {
                co_await io_.wait_ready(lowlevel::writable, names_->write_all);
                continue;
            }
            done += co_await send_by_completion(io_, data.subspan(done), names_->write_all, peer_);
            continue;
        }
        if (err != EINTR) throw_errno(err, "write_all to " + peer_);
    }
}

namespace {
// Buffers per sendmsg: well under IOV_MAX (1024), and the iovec array lives in
// the coroutine frame.
constexpr std::size_t gather_batch = 64;

// A position in a list of buffers: buffer `index`, byte `offset` in it. Kept
// normalised: never at the end of a buffer unless past the last one.
struct gather_cursor {
    std::span<const std::span<const std::byte>> bufs;
    std::size_t index = 0;
    std::size_t offset = 0;

    void skip_empty() noexcept {
        while (index < bufs.size() && offset == bufs[index].size()) {
            ++index;
            offset = 0;
        }
    }
    bool done() const noexcept { return index >= bufs.size(); }
    // Consume `n` bytes, which may end anywhere in any later buffer.
    void advance(std::size_t n) noexcept {
        while (n > 0) {
            std::size_t take = std::min(n, bufs[index].size() - offset);
            offset += take;
            n -= take;
            skip_empty();
        }
    }
    std::span<const std::byte> current() const noexcept { return bufs[index].subspan(offset); }
    // Fill `iov` from the cursor on; returns how many entries were used.
    std::size_t fill(iovec* iov, std::size_t max) const noexcept {
        std::size_t n = 0;
        for (std::size_t i = index, off = offset; i < bufs.size() && n < max; ++i, off = 0) {
            if (bufs[i].size() == off) continue;
            iov[n].iov_base = const_cast<std::byte*>(bufs[i].data() + off);
            iov[n].iov_len = bufs[i].size() - off;
            ++n;
        }
        return n;
    }
};
}  // namespace

task<void> stream_socket::write_all(std::span<const std::span<const std::byte>> buffers) {
    co_await checkpoint(names_->write_all);
    if (!io_.is_open()) throw_errno(EBADF, "write_all to " + peer_ + ": stream is closed");
    gather_cursor cur{buffers};
    cur.skip_empty();
    while (!cur.done()) {
        std::array<iovec, gather_batch> iov;
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = cur.fill(iov.data(), iov.size());
        // MSG_NOSIGNAL: a closed peer is EPIPE here, never a process-killing SIGPIPE.
        ssize_t n = ::sendmsg(io_.fd(), &msg, MSG_NOSIGNAL);
        if (n >= 0) {
            cur.advance(static_cast<std::size_t>(n));
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (!backend_has_completions()) {
                co_await io_.wait_ready(lowlevel::writable, names_->write_all);
                continue;
            }
            // The completion backend has no sendmsg operation: let it send the
            // rest of the current buffer (the kernel takes what fits once the
            // socket is writable), then gather again from where it stopped.
            cur.advance(co_await send_by_completion(io_, cur.current(), names_->write_all, peer_));
            continue;
        }
        if (err != EINTR) throw_errno(err, "write_all to " + peer_);
    }
}

void stream_socket::shutdown_write() {
    if (!io_.is_open()) throw_errno(EBADF, "shutdown_write to " + peer_ + ": stream is closed");
    if (::shutdown(io_.fd(), SHUT_WR) != 0) throw_errno(errno, "shutdown_write to " + peer_);
}

task<int> accept_socket(io_object& listener, const std::string& name, const char* what) {
    co_await checkpoint(what);
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        if (!listener.is_open()) throw_errno(EBADF, "accept on " + name + ": listener is closed");
        int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int err = errno;
        bool tried_completion = false;
        if (fd < 0 && (err == EAGAIN || err == EWOULDBLOCK) && backend_has_completions()) {
            tried_completion = true;
            fd = co_await await_completion(listener, lowlevel::completion_op::kind::accept, nullptr,
                                           0, SOCK_NONBLOCK | SOCK_CLOEXEC, true, what);
            if (fd < 0) err = -fd;
        }
        if (fd >= 0) co_return fd;
        switch (err) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            // Readiness backends wait here; a completion backend that reported
            // EAGAIN (it honours O_NONBLOCK) too.
            if (!backend_has_completions() || tried_completion)
                co_await listener.wait_ready(lowlevel::readable, what);
            backoff = std::chrono::milliseconds(1);
            break;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
            break;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            // Out of descriptors or memory: the pending connection stays in the
            // backlog and the listener stays readable, so waiting for readiness
            // would spin. Sleep instead, backing off to 100 ms.
            co_await sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
            break;
        default:
            throw_errno(err, "accept on " + name);
        }
    }
}

}  // namespace uthreads::detail
