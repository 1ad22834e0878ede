// UDP sockets on readiness: try the system call, park on EAGAIN.
//
// UDP uses readiness on every backend, completion backends included: a
// datagram is consumed only by the recvfrom that returns it, so a cancelled
// wait can never lose one, and no kernel operation outlives a cancelled call.
#include "../core/scheduler_internal.hpp"
#include "sockaddr.hpp"

#include <uthreads/to_thread.hpp>
#include <uthreads/udp.hpp>

#include <cerrno>
#include <netinet/in.h>
#include <optional>
#include <stdexcept>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

namespace uthreads {

using detail::throw_errno;

udp_socket::udp_socket(int fd, std::string name) noexcept
    : io_(fd)
    , name_(std::move(name)) {}

udp_socket udp_socket::bind(const std::string& host, std::uint16_t port) {
    std::string h = host.empty() ? "0.0.0.0" : host;
    std::string target = detail::format_target(h, port);
    detail::resolved addr;
    if (!detail::parse_numeric(h, port, addr))
        addr = detail::resolve_blocking(h, port, true, SOCK_DGRAM);
    int fd = ::socket(addr.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno(errno, "udp bind " + target + ": socket");
    udp_socket s(fd, target);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0)
        throw_errno(errno, "udp bind " + target);
    // Messages name the bound address, with the port chosen for port 0.
    s.name_ = s.local_endpoint().to_string();
    return s;
}

endpoint udp_socket::local_endpoint() const {
    if (!io_.is_open()) throw_errno(EBADF, "udp_socket::local_endpoint: socket is closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(io_.fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw_errno(errno, "getsockname of udp " + name_);
    return endpoint(reinterpret_cast<sockaddr*>(&ss), len);
}

std::uint16_t udp_socket::local_port() const {
    return local_endpoint().port();
}

std::string udp_socket::describe() const {
    return "udp " + name_ + (peer_.empty() ? std::string() : " -> " + peer_);
}

task<void> udp_socket::connect(std::string host, std::uint16_t port) {
    co_await detail::checkpoint("udp_socket::connect");
    if (host.empty()) throw std::invalid_argument("uthreads::udp_socket::connect: host is empty");
    if (!io_.is_open()) throw_errno(EBADF, "connect " + describe() + ": socket is closed");
    std::string target = detail::format_target(host, port);
    detail::resolved addr;
    if (!detail::parse_numeric(host, port, addr)) {
        int family = local_endpoint().family();
        addr = co_await to_thread(
            [&] { return detail::resolve_blocking(host, port, false, SOCK_DGRAM, family); });
        // The socket may have been closed while the name was resolved.
        if (!io_.is_open()) throw_errno(EBADF, "connect " + describe() + ": socket is closed");
    }
    if (::connect(io_.fd(), reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0)
        throw_errno(errno, "connect " + describe() + " to " + target);
    peer_ = target;
}

task<void> udp_socket::send_impl(std::span<const std::byte> data, std::optional<endpoint> to,
                                 const char* what) {
    co_await detail::checkpoint(what);
    for (;;) {
        if (!io_.is_open())
            throw_errno(EBADF, std::string(what) + " on " + describe() + ": socket is closed");
        // MSG_NOSIGNAL for symmetry with TCP (UDP raises no SIGPIPE anyway).
        ssize_t n =
            to ? ::sendto(io_.fd(), data.data(), data.size(), MSG_NOSIGNAL, to->data(), to->size())
               : ::send(io_.fd(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n >= 0) co_return;
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            co_await io_.wait_ready(lowlevel::writable, what);
            continue;
        }
        if (err != EINTR)
            throw_errno(err, std::string(what) + " on " + describe() +
                                 (to ? " to " + to->to_string() : std::string()));
    }
}

task<std::size_t> udp_socket::recv_impl(std::span<std::byte> buf, endpoint* from,
                                        const char* what) {
    co_await detail::checkpoint(what);
    for (;;) {
        if (!io_.is_open())
            throw_errno(EBADF, std::string(what) + " on " + describe() + ": socket is closed");
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ssize_t n =
            ::recvfrom(io_.fd(), buf.data(), buf.size(), 0,
                       from ? reinterpret_cast<sockaddr*>(&ss) : nullptr, from ? &len : nullptr);
        if (n >= 0) {
            if (from) *from = endpoint(reinterpret_cast<sockaddr*>(&ss), len);
            co_return static_cast<std::size_t>(n);
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            co_await io_.wait_ready(lowlevel::readable, what);
            continue;
        }
        if (err != EINTR) throw_errno(err, std::string(what) + " on " + describe());
    }
}

task<void> udp_socket::send_to(std::span<const std::byte> data, const endpoint& to) {
    return send_impl(data, to, "udp_socket::send_to");
}

task<void> udp_socket::send_to(std::string_view data, const endpoint& to) {
    return send_impl(std::as_bytes(std::span<const char>(data.data(), data.size())), to,
                     "udp_socket::send_to");
}

task<std::pair<std::size_t, endpoint>> udp_socket::recv_from(std::span<std::byte> buf) {
    endpoint from;
    std::size_t n = co_await recv_impl(buf, &from, "udp_socket::recv_from");
    co_return std::pair<std::size_t, endpoint>(n, from);
}

task<std::pair<std::size_t, endpoint>> udp_socket::recv_from(std::span<char> buf) {
    return recv_from(std::as_writable_bytes(buf));
}

task<void> udp_socket::send(std::span<const std::byte> data) {
    return send_impl(data, std::nullopt, "udp_socket::send");
}

task<void> udp_socket::send(std::string_view data) {
    return send_impl(std::as_bytes(std::span<const char>(data.data(), data.size())), std::nullopt,
                     "udp_socket::send");
}

task<std::size_t> udp_socket::recv(std::span<std::byte> buf) {
    return recv_impl(buf, nullptr, "udp_socket::recv");
}

task<std::size_t> udp_socket::recv(std::span<char> buf) {
    return recv_impl(std::as_writable_bytes(buf), nullptr, "udp_socket::recv");
}

}  // namespace uthreads
