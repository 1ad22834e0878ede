// endpoint and resolve(): getaddrinfo on the blocking pool.
#include "../core/scheduler_internal.hpp"
#include "sockaddr.hpp"

#include <uthreads/dns.hpp>
#include <uthreads/to_thread.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <stdexcept>

namespace uthreads {

endpoint::endpoint(const sockaddr* addr, socklen_t len) {
    if (len > sizeof addr_)
        throw std::invalid_argument("uthreads::endpoint: len (" + std::to_string(len) +
                                    ") is larger than sockaddr_storage");
    std::memcpy(&addr_, addr, len);
    len_ = len;
}

std::uint16_t endpoint::port() const noexcept {
    return detail::port_of(addr_);
}

std::string endpoint::address() const {
    char host[INET6_ADDRSTRLEN] = "";
    if (family() == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr_)->sin_addr, host,
                  sizeof host);
    else if (family() == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr_)->sin6_addr, host,
                  sizeof host);
    return host;
}

std::string endpoint::to_string() const {
    return detail::format_endpoint(data());
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
    return a.len_ == b.len_ && std::memcmp(&a.addr_, &b.addr_, a.len_) == 0;
}

namespace {
std::vector<endpoint> resolve_blocking_all(const std::string& host, const std::string& service) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    // No AI_ADDRCONFIG: "::1" and "localhost" resolve the same whether or not
    // the machine has a non-loopback IPv6 address.
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                           service.empty() ? nullptr : service.c_str(), &hints, &res);
    std::string target =
        (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + service;
    if (rc != 0) detail::throw_gai(rc, target);
    std::vector<endpoint> out;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        // Without a socket type getaddrinfo lists each address once per type
        // (stream, datagram, raw): keep the first.
        endpoint e(ai->ai_addr, ai->ai_addrlen);
        if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
    }
    ::freeaddrinfo(res);
    return out;
}
}  // namespace

task<std::vector<endpoint>> resolve(std::string host, std::string service) {
    co_await detail::checkpoint("resolve");
    if (host.empty() && service.empty())
        throw std::invalid_argument("uthreads::resolve: host and service are both empty");
    co_return co_await to_thread([&] { return resolve_blocking_all(host, service); });
}

}  // namespace uthreads
