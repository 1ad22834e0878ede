// port_forwarder — forward every connection to a target host and port.
//
//   port_forwarder                       self-test: start an echo target and a
//                                        forwarder in front of it, send 4 MiB
//                                        through from several clients, check
//                                        every byte, exit 0 (or 1).
//   port_forwarder --serve PORT HOST:TPORT
//                                        listen on [::]:PORT and forward each
//                                        connection to HOST:TPORT until killed.
//
// Each accepted connection gets a connection to the target (with a connect
// timeout) and two copying microthreads, one per direction. When one side
// shuts down its sending direction, the copier passes the end of stream on
// with shutdown_write, and the other direction keeps flowing: half-close is
// propagated, so request/response protocols that signal "end of request" by
// half-closing (as the self-test's clients do) work through the forwarder.

#include <uthreads/uthreads.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ut = uthreads;
using namespace std::chrono_literals;

namespace {

/// Copy `from` to `to` until end of stream, then pass the end of stream on.
ut::task<> copy_one_way(ut::tcp_stream& from, ut::tcp_stream& to) {
    std::array<std::byte, std::size_t{64} * 1024> buf;
    for (;;) {
        std::size_t n = co_await from.read_some(std::span<std::byte>(buf));
        if (n == 0) break;
        co_await to.write_all(std::span<const std::byte>(buf.data(), n));
    }
    to.shutdown_write();
}

struct target {
    std::string host;
    std::uint16_t port;
};

ut::task<> forward(ut::tcp_stream client, const target& t) {
    ut::tcp_stream upstream = co_await ut::tcp_stream::connect(t.host, t.port, 10s);
    // Both directions at once; if one fails (a reset), when_all cancels the
    // other and rethrows, and serve_tcp reports it with the client's address.
    co_await ut::when_all(copy_one_way(client, upstream), copy_one_way(upstream, client));
}

ut::task<> serve(ut::tcp_listener& l, target t) {
    co_await ut::serve_tcp(l, [&t](ut::tcp_stream s) { return forward(std::move(s), t); });
}

// ------------------------------------------------------------------ self-test

ut::task<> echo(ut::tcp_stream s) {
    std::array<char, std::size_t{16} * 1024> buf;
    while (std::size_t n = co_await s.read_some(std::span<char>(buf)))
        co_await s.write_all(std::string_view(buf.data(), n));
    // Returning closes the stream: the forwarder sees end of stream and passes it on.
}

/// Send `data`, half-close, and read until the far side closes.
ut::task<bool> round_trip(std::uint16_t port, std::vector<std::byte> data) {
    ut::tcp_stream c = co_await ut::tcp_stream::connect("127.0.0.1", port);
    std::vector<std::byte> back;
    auto reader = ut::spawn(
        [](ut::tcp_stream& s, std::vector<std::byte>& out) -> ut::task<> {
            std::array<std::byte, std::size_t{16} * 1024> buf;
            while (std::size_t n = co_await s.read_some(std::span<std::byte>(buf)))
                out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        }(c, back),
        "reader");
    co_await c.write_all(std::span<const std::byte>(data));
    c.shutdown_write();  // travels through the forwarder to the echo server
    co_await reader;     // ends when the echo server's close travels back
    co_return back == data;
}

ut::task<int> self_test() {
    ut::tcp_listener echo_l = ut::tcp_listener::bind("127.0.0.1", 0);
    ut::tcp_listener fwd_l = ut::tcp_listener::bind("127.0.0.1", 0);
    std::printf("forwarding %s -> %s (%s backend)\n", fwd_l.local_endpoint().to_string().c_str(),
                echo_l.local_endpoint().to_string().c_str(),
                std::string(ut::current_backend()).c_str());
    auto echo_server = ut::spawn(ut::serve_tcp(echo_l, echo), "echo target");
    auto forwarder = ut::spawn(serve(fwd_l, target{"127.0.0.1", echo_l.port()}), "forwarder");
    constexpr int clients = 4;
    int ok = 0;
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int i = 0; i < clients; ++i) {
            std::vector<std::byte> data(std::size_t{1} << 20);
            std::mt19937 rng(static_cast<unsigned>(i));
            for (auto& b : data) b = static_cast<std::byte>(rng());
            n.spawn([](std::uint16_t port, std::vector<std::byte> d, int& good) -> ut::task<> {
                if (co_await round_trip(port, std::move(d))) ++good;
            }(fwd_l.port(), std::move(data), ok));
        }
        co_return;
    });
    for (auto* h : {&forwarder, &echo_server}) {
        h->cancel();
        try {
            co_await *h;
        } catch (const ut::cancelled&) {
        }
    }
    std::printf("%d of %d clients got 1 MiB back through the forwarder\n", ok, clients);
    co_return ok == clients ? 0 : 1;
}

// A TCP port from the command line; a clear error instead of a silent wrap-around.
std::uint16_t parse_port(const std::string& s) {
    std::size_t end = 0;
    unsigned long v = std::stoul(s, &end);
    if (end != s.size() || v > 65535) throw std::invalid_argument("not a TCP port: \"" + s + "\"");
    return static_cast<std::uint16_t>(v);
}

ut::task<int> serve_forever(std::uint16_t port, target t) {
    ut::tcp_listener l = ut::tcp_listener::bind("::", port);
    std::printf("forwarding %s -> %s:%u\n", l.local_endpoint().to_string().c_str(), t.host.c_str(),
                static_cast<unsigned>(t.port));
    std::fflush(stdout);
    co_await serve(l, std::move(t));
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 4 && std::strcmp(argv[1], "--serve") == 0) {
            std::string to = argv[3];
            std::size_t colon = to.rfind(':');
            if (colon == std::string::npos || colon == 0) {
                std::fprintf(stderr, "port_forwarder: target must be HOST:PORT\n");
                return 2;
            }
            std::string host = to.substr(0, colon);
            if (host.size() > 2 && host.front() == '[' && host.back() == ']')
                host = host.substr(1, host.size() - 2);  // [::1]:80
            target t{host, parse_port(to.substr(colon + 1))};
            return ut::run(serve_forever(parse_port(argv[2]), t));
        }
        if (argc != 1) {
            std::fprintf(stderr, "usage: %s [--serve PORT HOST:PORT]\n", argv[0]);
            return 2;
        }
        return ut::run(self_test());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "port_forwarder: %s\n", e.what());
        return 1;
    }
}
