// TCP streams and listeners: try the system call, and on EAGAIN park until
// the socket is ready or, on a completion backend (io_uring), let the kernel do
// the operation. Connect is the exception: on a completion backend the whole
// handshake is one IORING_OP_CONNECT, with no non-blocking attempt first (a
// second connect(2) on a socket already connecting fails with EALREADY).
#include "../core/scheduler_internal.hpp"
#include "completion.hpp"
#include "sockaddr.hpp"

#include <uthreads/cancel.hpp>
#include <uthreads/net.hpp>
#include <uthreads/to_thread.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdexcept>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

namespace uthreads {

namespace {

using detail::format_endpoint;
using detail::format_target;
using detail::parse_numeric;
using detail::resolve_blocking;
using detail::resolved;
using detail::throw_errno;

int make_socket(int family, const std::string& what) {
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno(errno, what + ": socket");
    return fd;
}

// Best effort on a fresh socket: TCP_NODELAY cannot fail on a TCP socket we
// own, except for a connection already reset, which its first read reports.
void set_nodelay(int fd, bool on) {
    int v = on ? 1 : 0;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

endpoint sock_name(int fd, bool peer, const std::string& what) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    auto* sa = reinterpret_cast<sockaddr*>(&ss);
    if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0)
        throw_errno(errno, what);
    return endpoint(sa, len);
}

// Read the peer of an accepted or connected socket, for messages.
std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    return format_endpoint(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

end_of_stream::end_of_stream(std::size_t got, std::size_t wanted)
    : std::runtime_error("uthreads: end of stream after " + std::to_string(got) + " of " +
                         std::to_string(wanted) + " bytes")
    , bytes_read(got) {}

// ---- tcp_stream ---------------------------------------------------------
// The byte-stream operations are detail::stream_socket's (stream_socket.cpp),
// shared with unix_stream.

namespace {
constexpr detail::stream_names tcp_names{"tcp_stream::read_some", "tcp_stream::write_all"};
}  // namespace

tcp_stream::tcp_stream(int fd, std::string peer) noexcept
    : sock_(fd, std::move(peer), &tcp_names) {}

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port) {
    return connect(std::move(host), port, connect_options{});
}

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port,
                                     clock::duration timeout) {
    return connect(std::move(host), port, connect_options{.timeout = timeout});
}

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port, connect_options opts) {
    co_await detail::checkpoint("tcp_stream::connect");
    if (host.empty()) throw std::invalid_argument("uthreads::tcp_stream::connect: host is empty");
    if (opts.timeout && *opts.timeout < clock::duration::zero())
        throw std::invalid_argument("uthreads::tcp_stream::connect: timeout must not be negative");
    if (!opts.timeout) co_return co_await connect_now(std::move(host), port, opts.no_delay);
    std::string target = format_target(host, port);
    // The timeout is a cancel scope around the whole connect: its cancellation
    // closes the half-open socket (or cancels the io_uring connect) as any
    // other would, and is reported as the kernel reports its own timeout.
    detail::deadline_scope scope(*opts.timeout, "tcp_stream::connect: timeout");
    try {
        co_return co_await connect_now(std::move(host), port, opts.no_delay);
    } catch (const cancelled&) {
        if (!scope.expired_alone()) throw;
    }
    throw_errno(
        ETIMEDOUT,
        "connect to " + target + ": no connection after " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(*opts.timeout).count()) +
            " ms");
}

task<tcp_stream> tcp_stream::connect_now(std::string host, std::uint16_t port, bool no_delay) {
    std::string target = format_target(host, port);
    resolved addr;
    if (!parse_numeric(host, port, addr))
        addr = co_await to_thread([&] { return resolve_blocking(host, port, false); });
    tcp_stream s(make_socket(addr.addr.ss_family, "connect to " + target), target);
    int fd = s.native_handle();
    int err = 0;
    bool in_progress = false;
    if (detail::backend_has_completions()) {
        // `addr` lives in this frame, which waits for the completion (a
        // cancelled completion wait stays parked until the kernel is done).
        int r = co_await detail::await_completion(
            s.sock_.io(), lowlevel::completion_op::kind::connect, nullptr, 0, 0, false,
            "tcp_stream::connect", &addr.addr, static_cast<unsigned>(addr.len));
        err = r < 0 ? -r : 0;
        // A kernel that gives the non-blocking answer instead of waiting: fall
        // back to readiness.
        in_progress = err == EINPROGRESS || err == EALREADY || err == EAGAIN;
    } else if (::connect(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0) {
        err = errno;
        // EINTR: the handshake goes on asynchronously, as for EINPROGRESS.
        in_progress = err == EINPROGRESS || err == EINTR;
    }
    if (in_progress) {
        co_await s.sock_.io().wait_ready(lowlevel::writable, "tcp_stream::connect");
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
    if (err != 0) throw_errno(err, "connect to " + target);
    set_nodelay(fd, no_delay);
    co_return s;
}

task<std::size_t> tcp_stream::read_some(std::span<std::byte> buf) {
    return sock_.read_some(buf);
}

task<std::size_t> tcp_stream::read_some(std::span<char> buf) {
    return sock_.read_some(std::as_writable_bytes(buf));
}

task<void> tcp_stream::read_exact(std::span<std::byte> buf) {
    return sock_.read_exact(buf);
}

task<void> tcp_stream::read_exact(std::span<char> buf) {
    return sock_.read_exact(std::as_writable_bytes(buf));
}

task<void> tcp_stream::write_all(std::span<const std::byte> data) {
    return sock_.write_all(data);
}

task<void> tcp_stream::write_all(std::string_view data) {
    return sock_.write_all(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

task<void> tcp_stream::write_all(std::span<const std::span<const std::byte>> buffers) {
    return sock_.write_all(buffers);
}

void tcp_stream::shutdown_write() {
    sock_.shutdown_write();
}

void tcp_stream::set_no_delay(bool on) {
    if (!is_open()) throw_errno(EBADF, "set_no_delay on " + peer() + ": stream is closed");
    int v = on ? 1 : 0;
    if (::setsockopt(native_handle(), IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
        throw_errno(errno, "set_no_delay on " + peer());
}

bool tcp_stream::no_delay() const {
    if (!is_open()) throw_errno(EBADF, "no_delay of " + peer() + ": stream is closed");
    int v = 0;
    socklen_t len = sizeof v;
    if (::getsockopt(native_handle(), IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0)
        throw_errno(errno, "no_delay of " + peer());
    return v != 0;
}

endpoint tcp_stream::local_endpoint() const {
    if (!is_open()) throw_errno(EBADF, "local_endpoint of " + peer() + ": stream is closed");
    return sock_name(native_handle(), false, "local_endpoint (getsockname) of " + peer());
}

endpoint tcp_stream::peer_endpoint() const {
    if (!is_open()) throw_errno(EBADF, "peer_endpoint of " + peer() + ": stream is closed");
    return sock_name(native_handle(), true, "peer_endpoint (getpeername) of " + peer());
}

// ---- tcp_listener -------------------------------------------------------

tcp_listener::tcp_listener(int fd, std::string name) noexcept
    : io_(fd)
    , name_(std::move(name)) {}

tcp_listener tcp_listener::bind(const std::string& host, std::uint16_t port, int backlog) {
    return bind(host, port, listen_options{.backlog = backlog});
}

tcp_listener tcp_listener::bind(const std::string& host, std::uint16_t port,
                                const listen_options& opts) {
    if (opts.backlog <= 0)
        throw std::invalid_argument("uthreads::tcp_listener::bind: backlog must be positive (got " +
                                    std::to_string(opts.backlog) + ")");
    std::string h = host.empty() ? "0.0.0.0" : host;
    std::string target = format_target(h, port);
    resolved addr;
    if (!parse_numeric(h, port, addr)) addr = resolve_blocking(h, port, true);
    int fd = make_socket(addr.addr.ss_family, "bind " + target);
    tcp_listener l(fd, target);
    l.no_delay_ = opts.no_delay;
    auto set = [&](int level, int name, bool on, const char* what) {
        int v = on ? 1 : 0;
        if (::setsockopt(fd, level, name, &v, sizeof v) != 0)
            throw_errno(errno, std::string(what) + " on " + target);
    };
    set(SOL_SOCKET, SO_REUSEADDR, true, "setsockopt SO_REUSEADDR");
    if (opts.reuse_port) set(SOL_SOCKET, SO_REUSEPORT, true, "setsockopt SO_REUSEPORT");
    if (addr.addr.ss_family == AF_INET6)
        set(IPPROTO_IPV6, IPV6_V6ONLY, opts.ipv6_only, "setsockopt IPV6_V6ONLY");
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0)
        throw_errno(errno, "bind " + target);
    if (::listen(fd, opts.backlog) != 0) throw_errno(errno, "listen on " + target);
    return l;
}

std::uint16_t tcp_listener::port() const {
    if (!io_.is_open()) throw_errno(EBADF, "tcp_listener::port: listener is closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(io_.fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw_errno(errno, "getsockname of " + name_);
    return detail::port_of(ss);
}

endpoint tcp_listener::local_endpoint() const {
    if (!io_.is_open()) throw_errno(EBADF, "tcp_listener::local_endpoint: listener is closed");
    return sock_name(io_.fd(), false, "getsockname of " + name_);
}

task<tcp_stream> tcp_listener::accept() {
    int fd = co_await detail::accept_socket(io_, name_, "tcp_listener::accept");
    set_nodelay(fd, no_delay_);
    co_return tcp_stream(fd, peer_of(fd));
}

namespace detail {
void report_connection_error(const std::string& peer, std::exception_ptr e) noexcept {
    report_unhandled("serve_tcp: connection from " + peer, std::move(e));
}

void check_serve_limits(const serve_limits& limits) {
    if (limits.max_connections > static_cast<std::size_t>(PTRDIFF_MAX))
        throw std::invalid_argument("uthreads::serve_tcp: limits.max_connections (" +
                                    std::to_string(limits.max_connections) +
                                    ") exceeds PTRDIFF_MAX");
}
}  // namespace detail

}  // namespace uthreads
