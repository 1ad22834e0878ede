// TCP streams and listeners on readiness: try the system call, park on EAGAIN.
#include "../core/scheduler_internal.hpp"
#include "completion.hpp"
#include "sockaddr.hpp"

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


}  // namespace

end_of_stream::end_of_stream(std::size_t got, std::size_t wanted)
    : std::runtime_error("uthreads: end of stream after " + std::to_string(got) + " of " +
                         std::to_string(wanted) + " bytes"),
      bytes_read(got) {}

// ---- tcp_stream ---------------------------------------------------------
// The byte-stream operations are detail::stream_socket's (stream_socket.cpp),
// shared with unix_stream.

namespace {
constexpr detail::stream_names tcp_names{"tcp_stream::read_some", "tcp_stream::write_all"};
}  // namespace

tcp_stream::tcp_stream(int fd, std::string peer) noexcept : sock_(fd, std::move(peer), &tcp_names) {}

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port) {
    co_await detail::checkpoint("tcp_stream::connect");
    if (host.empty()) throw std::invalid_argument("uthreads::tcp_stream::connect: host is empty");
    std::string target = format_target(host, port);
    resolved addr;
    if (!parse_numeric(host, port, addr))
        addr = co_await to_thread([&] { return resolve_blocking(host, port, false); });
    tcp_stream s(make_socket(addr.addr.ss_family, "connect to " + target), target);
    int fd = s.native_handle();
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0) {
        if (errno != EINPROGRESS) throw_errno(errno, "connect to " + target);
        co_await s.sock_.io().wait_ready(lowlevel::writable, "tcp_stream::connect");
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) throw_errno(err, "connect to " + target);
    }
    set_nodelay(fd);
    co_return s;
}

task<std::size_t> tcp_stream::read_some(std::span<std::byte> buf) { return sock_.read_some(buf); }

task<std::size_t> tcp_stream::read_some(std::span<char> buf) {
    return sock_.read_some(std::as_writable_bytes(buf));
}

task<void> tcp_stream::read_exact(std::span<std::byte> buf) { return sock_.read_exact(buf); }

task<void> tcp_stream::read_exact(std::span<char> buf) {
    return sock_.read_exact(std::as_writable_bytes(buf));
}

task<void> tcp_stream::write_all(std::span<const std::byte> data) { return sock_.write_all(data); }

task<void> tcp_stream::write_all(std::string_view data) {
    return sock_.write_all(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

void tcp_stream::shutdown_write() { sock_.shutdown_write(); }

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
    return detail::port_of(ss);
}

task<tcp_stream> tcp_listener::accept() {
    int fd = co_await detail::accept_socket(io_, name_, "tcp_listener::accept");
    set_nodelay(fd);
    co_return tcp_stream(fd, peer_of(fd));
}

namespace detail {
void report_connection_error(const std::string& peer, std::exception_ptr e) noexcept {
    report_unhandled("serve_tcp: connection from " + peer, std::move(e));
}
}  // namespace detail

}  // namespace uthreads
