// TCP streams and listeners on readiness: try the system call, park on EAGAIN.
#include "../core/scheduler_internal.hpp"
#include "completion.hpp"

#include <uthreads/net.hpp>
#include <uthreads/to_thread.hpp>

#include <arpa/inet.h>
#include <cerrno>
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

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), "uthreads: " + what);
}

std::string format_endpoint(const sockaddr* sa) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        return std::string(host) + ":" + std::to_string(port);
    }
    if (sa->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        return "[" + std::string(host) + "]:" + std::to_string(port);
    }
    return "?";
}

std::string format_target(const std::string& host, std::uint16_t port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

struct resolved {
    sockaddr_storage addr{};
    socklen_t len = 0;
};

// Numeric addresses are parsed in place; names need getaddrinfo.
bool parse_numeric(const std::string& host, std::uint16_t port, resolved& out) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out.addr);
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        out.len = sizeof(sockaddr_in);
        return true;
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        out.len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

// Blocking name resolution (run on the blocking pool by connect; directly by
// bind, which is not a suspension point).
resolved resolve_blocking(const std::string& host, std::uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0)
        throw std::system_error(rc == EAI_SYSTEM ? errno : EHOSTUNREACH, std::system_category(),
                                "uthreads: resolving " + format_target(host, port) + ": " +
                                    gai_strerror(rc));
    resolved out;
    std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
    out.len = res->ai_addrlen;
    ::freeaddrinfo(res);
    return out;
}

int make_socket(int family, const std::string& what) {
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno(errno, what + ": socket");
    return fd;
}

void set_nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Read the peer of an accepted or connected socket, for messages.
std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    return format_endpoint(reinterpret_cast<sockaddr*>(&ss));
}

// Hand a would-block operation to a completion backend and wait for its result
// (>= 0, or -errno). Only called when the backend supports completions.
task<int> complete_on_backend(detail::io_object& io, lowlevel::completion_op::kind kind, void* buf,
                              std::size_t len, int flags, bool is_read, const char* what) {
    detail::completion_wait w;
    w.s = &detail::current_scheduler(what);
    w.what = what;
    w.op = kind;
    w.fd = io.fd();
    w.buf = buf;
    w.len = len;
    w.flags = flags;
    w.st = io.state();
    w.slot = is_read ? &w.st->read_completion : &w.st->write_completion;
    co_return co_await w;
}

bool use_completions() { return detail::tls_scheduler->backend().supports_completions(); }

}  // namespace

end_of_stream::end_of_stream(std::size_t got, std::size_t wanted)
    : std::runtime_error("uthreads: end of stream after " + std::to_string(got) + " of " +
                         std::to_string(wanted) + " bytes"),
      bytes_read(got) {}

// ---- tcp_stream ---------------------------------------------------------

tcp_stream::tcp_stream(int fd, std::string peer) noexcept : io_(fd), peer_(std::move(peer)) {}

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port) {
    co_await detail::checkpoint("tcp_stream::connect");
    if (host.empty()) throw std::invalid_argument("uthreads::tcp_stream::connect: host is empty");
    std::string target = format_target(host, port);
    resolved addr;
    if (!parse_numeric(host, port, addr))
        addr = co_await to_thread([&] { return resolve_blocking(host, port, false); });
    tcp_stream s(make_socket(addr.addr.ss_family, "connect to " + target), target);
    int fd = s.io_.fd();
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0) {
        if (errno != EINPROGRESS) throw_errno(errno, "connect to " + target);
        co_await s.io_.wait_ready(lowlevel::writable, "tcp_stream::connect");
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) throw_errno(err, "connect to " + target);
    }
    set_nodelay(fd);
    co_return s;
}

task<std::size_t> tcp_stream::read_some(std::span<std::byte> buf) {
    co_await detail::checkpoint("tcp_stream::read_some");
    if (!io_.is_open()) throw_errno(EBADF, "read_some from " + peer_ + ": stream is closed");
    if (buf.empty()) co_return 0;
    for (;;) {
        ssize_t n = ::recv(io_.fd(), buf.data(), buf.size(), 0);
        if (n >= 0) co_return static_cast<std::size_t>(n);
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (!use_completions()) {
                co_await io_.wait_ready(lowlevel::readable, "tcp_stream::read_some");
                continue;
            }
            int r = co_await complete_on_backend(io_, lowlevel::completion_op::kind::recv, buf.data(),
                                                 buf.size(), 0, true, "tcp_stream::read_some");
            if (r >= 0) co_return static_cast<std::size_t>(r);
            err = -r;
            // A backend that honours O_NONBLOCK reports EAGAIN: wait for readiness.
            if (err == EAGAIN || err == EWOULDBLOCK) {
                co_await io_.wait_ready(lowlevel::readable, "tcp_stream::read_some");
                continue;
            }
        }
        if (err != EINTR) throw_errno(err, "read_some from " + peer_);
    }
}

task<std::size_t> tcp_stream::read_some(std::span<char> buf) {
    return read_some(std::as_writable_bytes(buf));
}

task<void> tcp_stream::read_exact(std::span<std::byte> buf) {
    std::size_t got = 0;
    while (got < buf.size()) {
        std::size_t n = co_await read_some(buf.subspan(got));
        if (n == 0) throw end_of_stream(got, buf.size());
        got += n;
    }
}

task<void> tcp_stream::read_exact(std::span<char> buf) { return read_exact(std::as_writable_bytes(buf)); }

task<void> tcp_stream::write_all(std::span<const std::byte> data) {
    co_await detail::checkpoint("tcp_stream::write_all");
    if (!io_.is_open()) throw_errno(EBADF, "write_all to " + peer_ + ": stream is closed");
    std::size_t done = 0;
    while (done < data.size()) {
        // MSG_NOSIGNAL: a closed peer is EPIPE here, never a process-killing SIGPIPE.
        ssize_t n = ::send(io_.fd(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (!use_completions()) {
                co_await io_.wait_ready(lowlevel::writable, "tcp_stream::write_all");
                continue;
            }
            int r = co_await complete_on_backend(
                io_, lowlevel::completion_op::kind::send, const_cast<std::byte*>(data.data() + done),
                data.size() - done, MSG_NOSIGNAL, false, "tcp_stream::write_all");
            if (r >= 0) {
                done += static_cast<std::size_t>(r);
                continue;
            }
            err = -r;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                co_await io_.wait_ready(lowlevel::writable, "tcp_stream::write_all");
                continue;
            }
        }
        if (err != EINTR) throw_errno(err, "write_all to " + peer_);
    }
}

task<void> tcp_stream::write_all(std::string_view data) {
    return write_all(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

void tcp_stream::shutdown_write() {
    if (!io_.is_open()) throw_errno(EBADF, "shutdown_write to " + peer_ + ": stream is closed");
    if (::shutdown(io_.fd(), SHUT_WR) != 0) throw_errno(errno, "shutdown_write to " + peer_);
}

// ---- tcp_listener -------------------------------------------------------

tcp_listener::tcp_listener(int fd, std::string name) noexcept : io_(fd), name_(std::move(name)) {}

tcp_listener tcp_listener::bind(const std::string& host, std::uint16_t port, int backlog) {
    if (backlog <= 0)
        throw std::invalid_argument("uthreads::tcp_listener::bind: backlog must be positive (got " +
                                    std::to_string(backlog) + ")");
    std::string h = host.empty() ? "0.0.0.0" : host;
    std::string target = format_target(h, port);
    resolved addr;
    if (!parse_numeric(h, port, addr)) addr = resolve_blocking(h, port, true);
    int fd = make_socket(addr.addr.ss_family, "bind " + target);
    tcp_listener l(fd, target);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0)
        throw_errno(errno, "bind " + target);
    if (::listen(fd, backlog) != 0) throw_errno(errno, "listen on " + target);
    return l;
}

std::uint16_t tcp_listener::port() const {
    if (!io_.is_open()) throw_errno(EBADF, "tcp_listener::port: listener is closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(io_.fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw_errno(errno, "getsockname of " + name_);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

task<tcp_stream> tcp_listener::accept() {
    co_await detail::checkpoint("tcp_listener::accept");
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        if (!io_.is_open()) throw_errno(EBADF, "accept on " + name_ + ": listener is closed");
        int fd = ::accept4(io_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int err = errno;
        bool tried_completion = false;
        if (fd < 0 && (err == EAGAIN || err == EWOULDBLOCK) && use_completions()) {
            tried_completion = true;
            fd = co_await complete_on_backend(io_, lowlevel::completion_op::kind::accept, nullptr, 0,
                                              SOCK_NONBLOCK | SOCK_CLOEXEC, true,
                                              "tcp_listener::accept");
            if (fd < 0) err = -fd;
        }
        if (fd >= 0) {
            set_nodelay(fd);
            co_return tcp_stream(fd, peer_of(fd));
        }
        switch (err) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            // Readiness backends wait here; a completion backend that reported
            // EAGAIN (it honours O_NONBLOCK) too.
            if (!use_completions() || tried_completion)
                co_await io_.wait_ready(lowlevel::readable, "tcp_listener::accept");
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
            throw_errno(err, "accept on " + name_);
        }
    }
}

namespace detail {
void report_connection_error(const std::string& peer, std::exception_ptr e) noexcept {
    report_unhandled("serve_tcp: connection from " + peer, std::move(e));
}
}  // namespace detail

}  // namespace uthreads
