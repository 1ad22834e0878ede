// Socket-address helpers shared by the I/O layer (tcp, udp, dns): formatting
// for messages, numeric parsing, blocking name resolution, errno exceptions.
#pragma once

#include <cstdint>
#include <string>
#include <sys/socket.h>

namespace uthreads::detail {

/// Throw std::system_error(err) with "uthreads: " + what.
[[noreturn]] void throw_errno(int err, const std::string& what);

/// Throw the std::system_error for getaddrinfo's failure `rc` on `target`: the
/// errno for EAI_SYSTEM, otherwise EHOSTUNREACH, with gai_strerror's text.
[[noreturn]] void throw_gai(int rc, const std::string& target);

/// "1.2.3.4:80", "[::1]:80", or "?" for another family.
std::string format_endpoint(const sockaddr* sa);

/// "host:port", bracketing a host that contains ':' (an IPv6 literal).
std::string format_target(const std::string& host, std::uint16_t port);

/// The port of an AF_INET or AF_INET6 address (0 for another family).
std::uint16_t port_of(const sockaddr_storage& ss) noexcept;

struct resolved {
    sockaddr_storage addr{};
    socklen_t len = 0;
};

/// Parse a numeric IPv4 or IPv6 address in place (no system call that can
/// block). False if `host` is not numeric.
bool parse_numeric(const std::string& host, std::uint16_t port, resolved& out);

/// Blocking name resolution: the first address getaddrinfo gives for `host`
/// (of `family`, AF_UNSPEC = any). Run on the blocking pool by suspension
/// points; directly by bind, which is not one.
resolved resolve_blocking(const std::string& host, std::uint16_t port, bool passive,
                          int socktype = SOCK_STREAM, int family = AF_UNSPEC);

}  // namespace uthreads::detail
