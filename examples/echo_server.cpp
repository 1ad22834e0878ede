// echo_server — a TCP echo server on serve_tcp, and a client that checks it.
//
//   echo_server               self-test: start the server on a free loopback port,
//                             run 20 concurrent clients against it, check every
//                             byte, exit 0 (or 1 on a mismatch).
//   echo_server --serve PORT  serve on [::]:PORT (IPv4 and IPv6) until killed;
//                             try `socat - TCP:127.0.0.1:PORT`.
//
// What it shows: serve_tcp with a connection limit (connections beyond it wait
// in the backlog), a gather write (a header and a body in one system call), and
// the stream's local and peer endpoints. UTHREADS_BACKEND picks the backend.

#include <uthreads/uthreads.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ut = uthreads;
using namespace std::chrono_literals;

namespace {

/// Copy everything the client sends back to it, until it shuts down its side.
ut::task<> echo(ut::tcp_stream s) {
    std::array<char, std::size_t{16} * 1024> buf;
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) co_return;  // the client closed its sending side: we are done
        co_await s.write_all(std::string_view(buf.data(), n));
    }
}

ut::task<> serve(ut::tcp_listener& l) {
    // At most 1,000 connections are served at once; more wait to be accepted.
    co_await ut::serve_tcp(l, echo, ut::serve_limits{.max_connections = 1000});
}

/// One client: a gather write of a header and a body, then read it all back.
ut::task<bool> client(std::uint16_t port, int id) {
    ut::tcp_stream c = co_await ut::tcp_stream::connect("127.0.0.1", port, 5s);
    std::string header =
        "client " + std::to_string(id) + " from " + c.local_endpoint().to_string() + "\n";
    std::string body(static_cast<std::size_t>(1000 + id * 4099), static_cast<char>('a' + id % 26));
    std::array<std::span<const std::byte>, 2> parts{std::as_bytes(std::span(header)),
                                                    std::as_bytes(std::span(body))};
    co_await c.write_all(std::span<const std::span<const std::byte>>(parts));
    c.shutdown_write();  // the server sees end of stream after the body
    std::string back;
    std::array<char, 4096> buf;
    while (std::size_t n = co_await c.read_some(std::span<char>(buf))) back.append(buf.data(), n);
    co_return back == header + body;
}

ut::task<int> self_test() {
    ut::tcp_listener l = ut::tcp_listener::bind("127.0.0.1", 0);
    std::printf("echo server on %s (%s backend)\n", l.local_endpoint().to_string().c_str(),
                std::string(ut::current_backend()).c_str());
    auto server = ut::spawn(serve(l), "server");
    int ok = 0;
    constexpr int clients = 20;
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int i = 0; i < clients; ++i)
            n.spawn([](std::uint16_t port, int id, int& good) -> ut::task<> {
                if (co_await client(port, id)) ++good;
            }(l.port(), i, ok));
        co_return;
    });
    server.cancel();  // cancels and joins every connection's microthread
    try {
        co_await server;
    } catch (const ut::cancelled&) {
    }
    std::printf("%d of %d clients got their bytes back\n", ok, clients);
    co_return ok == clients ? 0 : 1;
}

// A TCP port from the command line; a clear error instead of a silent wrap-around.
std::uint16_t parse_port(const std::string& s) {
    std::size_t end = 0;
    unsigned long v = std::stoul(s, &end);
    if (end != s.size() || v > 65535) throw std::invalid_argument("not a TCP port: \"" + s + "\"");
    return static_cast<std::uint16_t>(v);
}

ut::task<int> serve_forever(std::uint16_t port) {
    ut::tcp_listener l = ut::tcp_listener::bind("::", port);  // IPv4 too (ipv6_only = false)
    std::printf("echo server listening on %s\n", l.local_endpoint().to_string().c_str());
    std::fflush(stdout);
    co_await serve(l);
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 3 && std::strcmp(argv[1], "--serve") == 0)
            return ut::run(serve_forever(parse_port(argv[2])));
        if (argc != 1) {
            std::fprintf(stderr, "usage: %s [--serve PORT]\n", argv[0]);
            return 2;
        }
        return ut::run(self_test());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
}
