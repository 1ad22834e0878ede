/// \file
/// UDP: `udp_socket`.
///
/// Like TCP (net.hpp), every operation tries the system call first and parks the
/// microthread only on EAGAIN (on every backend it waits for readiness; UDP does
/// not use completion operations). Every awaitable here is a checkpoint, a
/// suspension and a cancellation point, and cancelling one loses nothing: a
/// datagram is taken from the socket, or sent, only by the system call that
/// returns. Errors are std::system_error carrying errno and naming the operation
/// and the peer. The descriptor is non-blocking and CLOEXEC.
///
/// Datagrams are never split or joined: a send sends one whole datagram (or
/// fails, e.g. EMSGSIZE), a receive returns one datagram. A datagram larger than
/// the receive buffer is truncated to the buffer's size and the rest of it is
/// discarded (recvfrom's behaviour): use a buffer of the largest size the
/// protocol allows (65507 bytes for any UDP datagram over IPv4).
///
/// Thread safety: a socket is used by microthreads of one runtime, on any of its
/// workers (as net.hpp); at most one microthread receives and one sends at a time.
#pragma once

#include <uthreads/dns.hpp>
#include <uthreads/net.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace uthreads {

/// A UDP socket, bound at creation; optionally connected to one peer.
/// Move-only; closes on destruction.
class udp_socket {
public:
    udp_socket() noexcept = default;
    udp_socket(udp_socket&&) noexcept = default;
    udp_socket& operator=(udp_socket&&) noexcept = default;

    /// Create a socket bound to `host` (numeric IPv4/IPv6 or a name; "" = all
    /// IPv4 interfaces) and `port` (0 = any free port). The address family is the
    /// host's. Throws std::system_error (e.g. EADDRINUSE) naming the address. Not
    /// a suspension point; may be called outside a runtime.
    static udp_socket bind(const std::string& host, std::uint16_t port);

    /// The bound port (useful after binding port 0), and the whole local address.
    std::uint16_t local_port() const;
    endpoint local_endpoint() const;

    /// Fix the peer to `host` (numeric, or a name resolved on the blocking pool
    /// to an address of the socket's family) and `port`: `send`/`recv` then talk
    /// to it, and datagrams from other addresses are dropped by the kernel.
    /// Throws std::system_error naming the peer, std::invalid_argument for an
    /// empty host. Cancellation point, loses nothing: a connect that throws
    /// `cancelled` left the socket as it was. Resolving a name is not
    /// interruptible (to_thread): a cancellation arriving meanwhile lets the
    /// connect finish and is delivered at the next suspension point.
    task<void> connect(std::string host, std::uint16_t port);

    /// Send `data` as one datagram to `to`. Cancellation point: loses nothing
    /// (a cancelled send sent nothing).
    task<void> send_to(std::span<const std::byte> data, const endpoint& to);
    task<void> send_to(std::string_view data, const endpoint& to);

    /// Receive one datagram: the number of bytes stored in `buf` (truncated to
    /// its size, see above) and the sender. Cancellation point: loses nothing
    /// (a cancelled receive took no datagram).
    task<std::pair<std::size_t, endpoint>> recv_from(std::span<std::byte> buf);
    task<std::pair<std::size_t, endpoint>> recv_from(std::span<char> buf);

    /// On a connected socket: send one datagram to the peer, receive one from it
    /// (truncated to `buf`'s size). Unconnected, send fails with EDESTADDRREQ.
    /// Cancellation points: lose nothing.
    task<void> send(std::span<const std::byte> data);
    task<void> send(std::string_view data);
    task<std::size_t> recv(std::span<std::byte> buf);
    task<std::size_t> recv(std::span<char> buf);

    /// Close now; parked operations fail with EBADF. Idempotent.
    void close() noexcept { io_.close(); }
    bool is_open() const noexcept { return io_.is_open(); }
    int native_handle() const noexcept { return io_.fd(); }
    /// "address:port" of the connected peer ("" if not connected), for messages.
    const std::string& peer() const noexcept { return peer_; }

private:
    udp_socket(int fd, std::string name) noexcept;
    // `to` by value: the frame keeps its own copy whatever the caller passed.
    task<void> send_impl(std::span<const std::byte> data, std::optional<endpoint> to,
                         const char* what);
    task<std::size_t> recv_impl(std::span<std::byte> buf, endpoint* from, const char* what);
    /// "udp <local>" or "udp <local> -> <peer>", for messages.
    std::string describe() const;

    detail::io_object io_;
    std::string name_;  // the bound address, as given to bind
    std::string peer_;
};

}  // namespace uthreads
