/// \file
/// TCP: `tcp_listener`, `tcp_stream`, `serve_tcp`.
///
/// IPv4 and IPv6 alike: a host is a numeric address ("127.0.0.1", "::1") or a
/// name. Options: `listen_options` (backlog, SO_REUSEPORT, IPV6_V6ONLY),
/// `connect_options` (a timeout, TCP_NODELAY), `serve_limits` (a cap on
/// concurrent connections).
///
/// Every operation tries the system call first and parks the microthread only
/// on EAGAIN, so a socket with data ready costs no wait (on io_uring, a
/// would-block operation is then handed to the kernel as a completion; connect
/// goes to the kernel as IORING_OP_CONNECT directly). Every awaitable here is
/// a suspension and cancellation point; docs/cancel-safety.md says what
/// cancelling each one can lose. Errors are std::system_error carrying errno and
/// naming the operation and the peer. Writes use MSG_NOSIGNAL: a closed peer is
/// an EPIPE error, never SIGPIPE. Every descriptor is CLOEXEC.
///
/// Thread safety: a socket is used by microthreads of one runtime, which may run
/// on different workers (its registration follows them; docs/threads.md,
/// "Descriptors across workers"); at most one microthread reads and one writes
/// at a time. close() may come from any of them.
#pragma once

#include <uthreads/dns.hpp>
#include <uthreads/lowlevel/backend.hpp>
#include <uthreads/nursery.hpp>
#include <uthreads/semaphore.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace uthreads {

namespace detail {
struct completion_wait;

/// Registration state of one descriptor. Heap-allocated so its address, which
/// the backend keeps, survives moves of the socket object.
///
/// With several workers, `s` is the owner: the one worker whose backend has the
/// descriptor registered, and the only thread that touches the registration
/// (reader/writer, interest, the backend). A wait from a microthread on another
/// worker asks the owner to give the registration up or to park the wait for it
/// (io_object.cpp, "Descriptors across workers"); a close from another worker is
/// posted to the owner. One worker: `s` is set once and read on one thread.
struct io_state : lowlevel::io_watcher, backend_registration {
    // invariant: written only by the owner (giving it up: store nullptr, release)
    // or by a claimer (CAS from nullptr); relaxed loads elsewhere.
    std::atomic<scheduler*> s{nullptr};  // runtime worker it is registered with, once registered
    microthread* reader = nullptr;  // parked readers/writers (at most one each)
    microthread* writer = nullptr;
    void* reader_op = nullptr;  // their io_object::wait_operation
    void* writer_op = nullptr;
    completion_wait* read_completion = nullptr;  // pending completion ops
    completion_wait* write_completion = nullptr;
    unsigned interest = 0;  // directions last passed to backend::want
    // Completion backends: the last receive had to wait, so the next one skips
    // the nonblocking attempt (it would most likely fail with EAGAIN) and goes
    // straight to a completion operation. See stream_socket::read_some.
    bool recv_waits = false;
    // Several workers only. `refs`: the io_object's reference plus one per
    // cross-worker message or completion in flight; the last one deletes the
    // state. `closed`: set (seq_cst) by a close before it looks for the owner.
    // `keep_fd`: the close is a release(), which handed the number (or a copy)
    // to the caller.
    std::atomic<unsigned> refs{1};
    std::atomic<bool> closed{false};
    bool keep_fd = false;

    static void* operator new(std::size_t n) { return frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }
};

/// A non-blocking, CLOEXEC descriptor, registered lazily (on its first EAGAIN)
/// with the runtime's backend. Move-only; closes on destruction.
///
/// With several workers the registration follows the microthreads that wait on
/// it (docs/threads.md, "Descriptors across workers"): a wait from another
/// worker moves it there when nothing is parked on it, or is parked for it by
/// the worker that has it; close() from any worker is safe.
class io_object {
public:
    io_object() noexcept = default;
    explicit io_object(int fd);
    io_object(io_object&& o) noexcept
        : st_(o.take()) {}
    io_object& operator=(io_object&& o) noexcept {
        if (this != &o) {
            close();
            st_.store(o.take(), std::memory_order_relaxed);
        }
        return *this;
    }
    ~io_object() { close(); }

    int fd() const noexcept {
        io_state* st = state();
        return st ? st->fd : -1;
    }
    io_state* state() const noexcept { return st_.load(std::memory_order_relaxed); }
    bool is_open() const noexcept { return state() != nullptr; }
    /// Unregister, wake parked microthreads (their operation then fails with
    /// EBADF), and close. Idempotent. With several workers, when another worker
    /// has the descriptor registered, that worker does this a little later (and
    /// before the run ends): the number is closed only once its backend forgot it.
    void close() noexcept;
    /// As close(), but hand the descriptor to the caller instead of closing it
    /// (-1 if there was none). Used to give a process's pidfd to the reaper.
    /// When another worker has it registered, the caller gets a duplicate
    /// (F_DUPFD_CLOEXEC) and the original is closed by that worker; -1 if the
    /// duplicate could not be made.
    int release() noexcept;

    struct wait_operation : wait_node {
        io_state* st;
        unsigned dir;
        const char* what;
        microthread* m = nullptr;
        bool closed = false;
        // Several workers: set when the descriptor is registered on another
        // worker (`owner`, as last seen), which then answers the wait. `home` is
        // the waiting microthread's worker; `xstate` the hand-over's progress.
        scheduler* home = nullptr;
        scheduler* owner = nullptr;
        int xstate = 0;       // atomic_ref; see io_object.cpp
        bool busy = false;    // the owner found this direction taken
        bool linked = false;  // parked in st on `owner` (owner's thread only)
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h);
        void await_resume() const;
    };
    /// Park until the descriptor may be ready in direction `dir`
    /// (lowlevel::readable or lowlevel::writable). Throws std::system_error(EBADF)
    /// if closed. Suspension and cancellation point (loses nothing). May return
    /// without the descriptor being ready (with several workers, after moving its
    /// registration): callers retry the system call and wait again on EAGAIN.
    wait_operation wait_ready(unsigned dir, const char* what);

private:
    wait_operation wait_ready_slow(unsigned dir, const char* what, scheduler& s);
    /// Detach the state (plain load and store: moving or closing one object from
    /// two threads at once is a race in the program).
    io_state* take() noexcept {
        io_state* st = state();
        st_.store(nullptr, std::memory_order_relaxed);
        return st;
    }
    // Atomic (relaxed) only so that a close on one worker while a microthread
    // on another is parked in an operation, which read it before parking, is
    // not a data race; on x86 a relaxed load or store is a plain one.
    std::atomic<io_state*> st_{nullptr};
};

/// The names a stream kind uses in checkpoints and waits (static strings, since
/// the scheduler keeps the pointers while a microthread is parked), and which
/// system calls move its bytes.
struct stream_names {
    const char* read_some;
    const char* write_all;
    /// A pipe (pipe_stream) rather than a socket: read(2)/write(2) instead of
    /// recv/send, readiness waits only (no completion operations), and SIGPIPE
    /// kept from the process by blocking it in the calling thread around each
    /// write, since write(2) has no MSG_NOSIGNAL (see stream_socket.cpp).
    bool pipe = false;
};

/// The byte-stream half shared by tcp_stream, unix_stream and pipe_stream: one
/// implementation of read_some / read_exact / write_all / shutdown_write over a
/// connected, non-blocking SOCK_STREAM descriptor or one end of a pipe. `peer`
/// is a description for messages only. Semantics and cancel safety are those
/// documented on tcp_stream.
class stream_socket {
public:
    stream_socket() noexcept = default;
    stream_socket(int fd, std::string peer, const stream_names* names) noexcept;

    task<std::size_t> read_some(std::span<std::byte> buf);
    task<void> read_exact(std::span<std::byte> buf);
    task<void> write_all(std::span<const std::byte> data);
    task<void> write_all(std::span<const std::span<const std::byte>> buffers);
    void shutdown_write();
    void close() noexcept { io_.close(); }

    io_object& io() noexcept { return io_; }
    const io_object& io() const noexcept { return io_; }
    const std::string& peer() const noexcept { return peer_; }

private:
    io_object io_;
    std::string peer_;
    const stream_names* names_ = nullptr;
};
}  // namespace detail

/// Options of `tcp_stream::connect`.
struct connect_options {
    /// Give up once this much time has passed (resolving the name and the
    /// handshake together): the connect then throws std::system_error with
    /// ETIMEDOUT naming the peer, as the kernel's own timeout would. nullopt
    /// (the default) leaves only the kernel's limit (about two minutes on
    /// Linux). A negative timeout is std::invalid_argument. Name resolution runs
    /// on the blocking pool and cannot be interrupted: a slow resolve can
    /// overrun the timeout, which then fires as soon as it returns.
    std::optional<clock::duration> timeout;
    /// TCP_NODELAY (Nagle's algorithm off) on the new stream; see
    /// tcp_stream::set_no_delay.
    bool no_delay = true;
};

/// A connected TCP stream. Move-only; closes on destruction.
///
/// Streams made by `connect` and `accept` have TCP_NODELAY set by default
/// (small writes are sent at once, as request/response protocols want); turn it
/// off with `set_no_delay(false)` or the `no_delay` options.
class tcp_stream {
public:
    tcp_stream() noexcept = default;
    explicit tcp_stream(int fd, std::string peer = {}) noexcept;
    tcp_stream(tcp_stream&&) noexcept = default;
    tcp_stream& operator=(tcp_stream&&) noexcept = default;

    /// Connect to `host` (a numeric address or a name, resolved on the blocking
    /// pool) and `port`. Throws std::system_error (e.g. ECONNREFUSED) naming the
    /// peer, std::invalid_argument for an empty host.
    /// Cancellation point (loses nothing; the half-open socket is closed).
    static task<tcp_stream> connect(std::string host, std::uint16_t port);
    /// As above, with `opts` (see connect_options): a timeout, TCP_NODELAY.
    /// On a completion backend (io_uring) the handshake is the kernel's
    /// IORING_OP_CONNECT; elsewhere a non-blocking connect and a wait for
    /// writability. Cancellation point (loses nothing; the half-open socket is
    /// closed); a timeout is this cancellation, reported as ETIMEDOUT.
    static task<tcp_stream> connect(std::string host, std::uint16_t port, connect_options opts);
    /// Shorthand for connect(host, port, {.timeout = timeout}).
    static task<tcp_stream> connect(std::string host, std::uint16_t port, clock::duration timeout);

    /// Read at least one byte (returns 0 only at end of stream or for an empty
    /// buffer). Cancellation point: loses nothing (no bytes were consumed).
    task<std::size_t> read_some(std::span<std::byte> buf);
    task<std::size_t> read_some(std::span<char> buf);

    /// Fill `buf` completely; end of stream before it is full throws
    /// uthreads::end_of_stream (which says how many bytes arrived).
    /// Cancellation point: bytes already read into `buf` are consumed (lost to
    /// the stream if the caller drops `buf`).
    task<void> read_exact(std::span<std::byte> buf);
    task<void> read_exact(std::span<char> buf);

    /// Write every byte. Cancellation point: a cancelled write_all may have
    /// written a prefix of `data` (unknown length); the stream should be closed.
    task<void> write_all(std::span<const std::byte> data);
    task<void> write_all(std::string_view data);

    /// Gather write: every byte of every buffer, in order, as if they were one
    /// buffer, with sendmsg(2) and up to 64 buffers per system call (so a header
    /// and a body need no copy and no second system call). A write the kernel
    /// takes only in part resumes in the middle of the buffer it stopped in.
    /// Empty buffers are skipped. The buffers must stay alive and unchanged
    /// until the task finishes. Cancellation point: as write_all(data), a
    /// prefix of the concatenation of unknown length may have been written;
    /// close the stream.
    task<void> write_all(std::span<const std::span<const std::byte>> buffers);

    /// Shut down the sending direction (the peer reads end of stream).
    void shutdown_write();

    /// Set or clear TCP_NODELAY. On (the default for every stream this library
    /// makes), small writes go out at once; off, Nagle's algorithm coalesces
    /// them while data is unacknowledged. Throws std::system_error naming the
    /// peer (EBADF if closed). Not a suspension point.
    void set_no_delay(bool on);
    /// Whether TCP_NODELAY is set (read back with getsockopt).
    bool no_delay() const;

    /// The local address and port of the connection (getsockname), and the
    /// peer's (getpeername). Throw std::system_error naming the peer: EBADF if
    /// closed, ENOTCONN for peer_endpoint once the connection was reset.
    endpoint local_endpoint() const;
    endpoint peer_endpoint() const;

    /// Close now; parked operations fail with EBADF. Idempotent.
    void close() noexcept { sock_.close(); }
    bool is_open() const noexcept { return sock_.io().is_open(); }
    int native_handle() const noexcept { return sock_.io().fd(); }
    /// "address:port" of the peer, for messages.
    const std::string& peer() const noexcept { return sock_.peer(); }

private:
    static task<tcp_stream> connect_now(std::string host, std::uint16_t port, bool no_delay);
    detail::stream_socket sock_;
};

/// Thrown by `read_exact` when the stream ends before the buffer is full.
class end_of_stream : public std::runtime_error {
public:
    explicit end_of_stream(std::size_t got, std::size_t wanted);
    std::size_t bytes_read;
};

/// Options of `tcp_listener::bind`.
struct listen_options {
    /// Connections the kernel queues before `accept` takes them (listen(2); the
    /// kernel caps it at net.core.somaxconn). Must be positive.
    int backlog = 1024;
    /// SO_REUSEPORT: several listening sockets, in this process or others, may
    /// bind the same address and port, and the kernel spreads new connections
    /// among them (DESIGN.md §5: outgrowing one process). Every socket sharing
    /// the port must set it, and belong to the same user.
    bool reuse_port = false;
    /// IPV6_V6ONLY, for an IPv6 address only: false (the default, whatever the
    /// system's net.ipv6.bindv6only) lets "::" accept IPv4 connections too, as
    /// IPv4-mapped addresses (::ffff:a.b.c.d); true keeps the socket IPv6-only.
    bool ipv6_only = false;
    /// TCP_NODELAY on every accepted stream (see tcp_stream::set_no_delay).
    bool no_delay = true;
};

/// A listening TCP socket. Move-only; closes on destruction.
class tcp_listener {
public:
    tcp_listener() noexcept = default;
    tcp_listener(tcp_listener&&) noexcept = default;
    tcp_listener& operator=(tcp_listener&&) noexcept = default;

    /// Bind and listen on `host` (numeric IPv4/IPv6 or a name; "" = all IPv4
    /// interfaces) and `port` (0 = any free port). SO_REUSEADDR is set. Throws
    /// std::system_error (e.g. EADDRINUSE) naming the address. Not a suspension
    /// point; may be called outside a runtime.
    static tcp_listener bind(const std::string& host, std::uint16_t port, int backlog = 1024);
    /// As above, with `opts` (see listen_options): backlog, SO_REUSEPORT,
    /// IPV6_V6ONLY, TCP_NODELAY of accepted streams. Throws
    /// std::invalid_argument naming `backlog` if it is not positive.
    static tcp_listener bind(const std::string& host, std::uint16_t port,
                             const listen_options& opts);

    /// The bound port (useful after binding port 0).
    std::uint16_t port() const;
    /// The bound address and port (getsockname). Throws std::system_error
    /// (EBADF if closed).
    endpoint local_endpoint() const;

    /// Accept one connection. On EMFILE/ENFILE it backs off (sleeping, doubling
    /// from 1 ms to 100 ms) instead of spinning. Cancellation point: loses
    /// nothing (a connection not returned stays in the backlog).
    task<tcp_stream> accept();

    void close() noexcept { io_.close(); }
    bool is_open() const noexcept { return io_.is_open(); }
    int native_handle() const noexcept { return io_.fd(); }

private:
    explicit tcp_listener(int fd, std::string name) noexcept;
    detail::io_object io_;
    std::string name_;
    bool no_delay_ = true;
};

/// Limits of `serve_tcp`.
struct serve_limits {
    /// At most this many handlers run at once (0, the default: no limit). At the
    /// limit serve_tcp stops accepting, so further connections wait in the
    /// listen backlog (and beyond it, in the clients' SYN retries) until a
    /// handler finishes. Must not exceed PTRDIFF_MAX.
    std::size_t max_connections = 0;
};

namespace detail {
/// Accept one connection on `listener` (shared by tcp_listener and
/// unix_listener): returns a non-blocking, CLOEXEC descriptor. Backs off on
/// EMFILE/ENFILE/ENOBUFS/ENOMEM; `name` and `what` are for messages and waits.
task<int> accept_socket(io_object& listener, const std::string& name, const char* what);

void report_connection_error(const std::string& peer, std::exception_ptr e) noexcept;

/// Throws std::invalid_argument if `limits` cannot be honoured.
void check_serve_limits(const serve_limits& limits);

/// One unit of serve_tcp's connection semaphore, returned when the connection's
/// microthread ends (however it ends, even if it never started).
class connection_slot {
public:
    connection_slot() noexcept = default;
    explicit connection_slot(semaphore* s) noexcept
        : s_(s) {}
    connection_slot(connection_slot&& o) noexcept
        : s_(std::exchange(o.s_, nullptr)) {}
    connection_slot& operator=(connection_slot&&) = delete;
    ~connection_slot() {
        if (s_) s_->release();
    }

private:
    semaphore* s_ = nullptr;
};

template <class Handler>
task<void> serve_connection(Handler& handler, tcp_stream s, connection_slot slot) {
    (void)slot;  // held until the handler has finished
    std::string peer = s.peer();
    try {
        co_await handler(std::move(s));
    } catch (const cancelled&) {
        throw;
    } catch (...) {
        report_connection_error(peer, std::current_exception());
    }
}
}  // namespace detail

/// Callback style: accept connections forever, running `handler(tcp_stream)` (a
/// callable returning task<>) in its own microthread per connection. An
/// exception escaping one handler is reported to the unhandled-exception handler
/// (with the peer) and does not stop the server. Cancelling the server cancels and
/// joins every in-flight handler. The listener must outlive the call.
///
/// With `limits.max_connections` = N > 0, at most N handlers run at once: the
/// loop takes a unit of a semaphore before each accept and the connection's
/// microthread returns it when the handler ends, so at the limit connections
/// stay unaccepted in the backlog until one finishes. Throws
/// std::invalid_argument naming `max_connections` if it exceeds PTRDIFF_MAX.
/// Suspension and cancellation point (what the handlers lose; see
/// docs/cancel-safety.md).
template <class Handler>
task<void> serve_tcp(tcp_listener& listener, Handler handler, serve_limits limits = {}) {
    detail::check_serve_limits(limits);
    std::optional<semaphore> slots;
    if (limits.max_connections > 0)
        slots.emplace(static_cast<std::ptrdiff_t>(limits.max_connections));
    co_await with_nursery([&](nursery& n) -> task<void> {
        for (;;) {
            if (slots) co_await slots->acquire();
            // No suspension point between taking the unit and handing it to
            // the guard, so a cancellation cannot leak it.
            detail::connection_slot slot(slots ? &*slots : nullptr);
            tcp_stream s = co_await listener.accept();
            std::string name = "serve_tcp: " + s.peer();
            n.spawn(detail::serve_connection(handler, std::move(s), std::move(slot)),
                    std::move(name));
        }
    });
}

}  // namespace uthreads
