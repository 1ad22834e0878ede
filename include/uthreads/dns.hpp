/// \file
/// Name resolution: `endpoint` (an IPv4 or IPv6 address and port) and
/// `co_await resolve(host, service)`.
///
/// `resolve` runs getaddrinfo on the runtime's blocking pool (`to_thread`), so
/// it never blocks the loop, and it behaves the same on every backend.
#pragma once

#include <uthreads/task.hpp>

#include <cstdint>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace uthreads {

/// An IPv4 or IPv6 socket address (address family, address and port), as
/// getaddrinfo, recvfrom or getsockname give it. A value type; cheap to copy.
class endpoint {
public:
    /// An empty endpoint (family AF_UNSPEC, size 0).
    endpoint() noexcept = default;
    /// Copy `len` bytes of `addr`. Throws std::invalid_argument if `len` is larger
    /// than sockaddr_storage.
    endpoint(const sockaddr* addr, socklen_t len);

    /// AF_INET, AF_INET6, or AF_UNSPEC for an empty endpoint.
    int family() const noexcept { return addr_.ss_family; }
    /// The port in host byte order (0 for an empty endpoint).
    std::uint16_t port() const noexcept;
    /// The address alone: "1.2.3.4" or "::1" ("" for an empty endpoint).
    std::string address() const;
    /// "1.2.3.4:80" or "[::1]:80" ("?" for an empty endpoint).
    std::string to_string() const;

    /// For system calls: the sockaddr and its length.
    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&addr_); }
    socklen_t size() const noexcept { return len_; }

    /// Same family, address and port (byte-wise comparison of the sockaddr).
    friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

private:
    sockaddr_storage addr_{};
    socklen_t len_ = 0;
};

/// Resolve `host` (a name such as "localhost", or a numeric IPv4/IPv6 address)
/// and `service` (a port number such as "80", or a service name such as "http")
/// into the addresses getaddrinfo returns, in its order (IPv4 and IPv6, each
/// address once). An empty `host` means the loopback addresses.
///
/// Throws std::system_error naming "host:service" with getaddrinfo's message
/// (gai_strerror) when resolution fails: the code is the errno for EAI_SYSTEM,
/// otherwise EHOSTUNREACH (e.g. an unknown name). Throws std::invalid_argument
/// if both `host` and `service` are empty.
///
/// Suspension and cancellation point, with to_thread's semantics: a resolve that
/// is cancelled before it starts (cancellation already pending) throws
/// `cancelled` without calling getaddrinfo; once getaddrinfo runs on the pool it
/// cannot be interrupted, so a cancellation or a `with_timeout` deadline that
/// arrives meanwhile waits for it, and the resolve then returns its complete
/// result (never a partial list) with `cancelled` delivered at the caller's next
/// suspension point. Cancelling it loses nothing. Thread safety: may be called
/// from any microthread of any runtime.
task<std::vector<endpoint>> resolve(std::string host, std::string service);

}  // namespace uthreads
