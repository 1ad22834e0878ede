// TCP under load, identical on every backend: echo round trips from 1 byte to
// 16 MiB, large transfers over a half-closed connection, ten thousand connections opened and closed
// with the descriptor count back to its baseline, partial writes through tiny socket buffers to a
// slow reader, and every operation cancelled at random points.

#include "conformance.hpp"
#include "io_helpers.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class TcpStressTest : public backend_test {};  // NOLINT(readability-identifier-naming)

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
    std::vector<std::byte> v(n);
    std::mt19937 rng(seed);
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        std::uint32_t x = rng();
        for (int k = 0; k < 4; ++k) v[i + static_cast<std::size_t>(k)] = std::byte(x >> (8 * k));
    }
    for (; i < n; ++i) v[i] = std::byte(rng());
    return v;
}


void set_buffer(int fd, int opt, int bytes) {
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes), 0);
}

TEST_P(TcpStressTest, EchoRoundTripsFromOneByteTo16MiB) {
    const std::vector<std::size_t> sizes{
        1, 2, 100, 1460, 4096, 65535, 65537, std::size_t{1} << 20, std::size_t{16} << 20};
    std::vector<std::string> mismatches;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        // The server echoes whatever arrives, chunk by chunk, until end of stream.
        auto echo = ut::spawn(
            [](ut::tcp_stream& s) -> ut::task<> {
                std::vector<std::byte> buf(std::size_t{256} * 1024);
                for (;;) {
                    std::size_t n = co_await s.read_some(std::span<std::byte>(buf));
                    if (n == 0) break;
                    co_await s.write_all(std::span<const std::byte>(buf.data(), n));
                }
                s.shutdown_write();
            }(server),
            "echo");
        std::uint32_t seed = 1;
        for (std::size_t n : sizes) {
            auto data = random_bytes(n, seed++);
            std::vector<std::byte> back(n);
            co_await ut::when_all(client.write_all(std::span<const std::byte>(data)),
                                  client.read_exact(std::span<std::byte>(back)));
            if (back != data) mismatches.push_back(std::to_string(n));
        }
        client.shutdown_write();
        char c;
        EXPECT_EQ(co_await client.read_some(std::span<char>(&c, 1)), 0u);
        co_await echo;
    }());
    EXPECT_TRUE(mismatches.empty())
        << "echo differs for sizes: " << ::testing::PrintToString(mismatches);
}

TEST_P(TcpStressTest, HalfCloseCarriesLargeTransfersBothWays) {
    // The client sends 4 MiB and shuts down its side; the server reads to the
    // end of stream and only then answers with 4 MiB of its own over the
    // direction that is still open, then closes.
    auto request = random_bytes(std::size_t{4} << 20, 41);
    auto response = random_bytes(std::size_t{4} << 20, 42);
    std::vector<std::byte> got_request, got_response;
    bool client_write_failed_after_shutdown = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        auto srv = ut::spawn(
            [](ut::tcp_stream& s, std::vector<std::byte>& in,
               const std::vector<std::byte>& out) -> ut::task<> {
                std::vector<std::byte> buf(std::size_t{64} * 1024);
                while (std::size_t n = co_await s.read_some(std::span<std::byte>(buf)))
                    in.insert(in.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
                co_await s.write_all(std::span<const std::byte>(out));
                s.close();
            }(server, got_request, response),
            "server");
        co_await client.write_all(std::span<const std::byte>(request));
        client.shutdown_write();
        try {
            co_await client.write_all(std::string_view("late"));
        } catch (const std::system_error& e) {
            client_write_failed_after_shutdown = e.code() == std::errc::broken_pipe;
        }
        std::vector<std::byte> buf(std::size_t{64} * 1024);
        while (std::size_t n = co_await client.read_some(std::span<std::byte>(buf)))
            got_response.insert(got_response.end(), buf.begin(),
                                buf.begin() + static_cast<std::ptrdiff_t>(n));
        co_await srv;
    }());
    EXPECT_TRUE(got_request == request) << got_request.size() << " bytes arrived";
    EXPECT_TRUE(got_response == response) << got_response.size() << " bytes came back";
    EXPECT_TRUE(client_write_failed_after_shutdown) << "writing after shutdown_write succeeded";
}

TEST_P(TcpStressTest, TenThousandConnectionsLeaveNoDescriptorBehind) {
    constexpr int total = 10000, batch = 100;
    // Atomic: handlers and clients run in parallel with several workers.
    std::atomic<int> served{0}, ok{0};
    long fds_before = open_fd_count(), fds_after_run = -1;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto server = ut::spawn(ut::serve_tcp(l,
                                              [&served](ut::tcp_stream s) -> ut::task<> {
                                                  char b = 0;
                                                  co_await s.read_exact(std::span<char>(&b, 1));
                                                  co_await s.write_all(std::string_view(&b, 1));
                                                  ++served;
                                              }),
                                "server");
        std::uint16_t port = l.port();
        for (int done = 0; done < total; done += batch) {
            co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
                for (int i = 0; i < batch; ++i)
                    n.spawn([](std::uint16_t p, char tag, std::atomic<int>& okc) -> ut::task<> {
                        auto c = co_await ut::tcp_stream::connect("127.0.0.1", p);
                        co_await c.write_all(std::string_view(&tag, 1));
                        char b = 0;
                        co_await c.read_exact(std::span<char>(&b, 1));
                        if (b == tag) ++okc;
                    }(port, static_cast<char>('a' + i % 26), ok));
                co_return;
            });
        }
        co_await yield_until([&] { return served == total; }, "every handler finished");
        co_await cancel_and_join(server);
    }());
    fds_after_run = open_fd_count();
    EXPECT_EQ(ok.load(), total);
    EXPECT_EQ(served.load(), total);
    EXPECT_EQ(fds_after_run, fds_before) << "descriptors left open after 10,000 connections";
}

/// Writer with a tiny send buffer, reader with a tiny receive buffer reading in
/// small pieces with pauses: most writes are partial, and the bytes must still
/// arrive identical. `gather` writes the payload as many uneven buffers.
ut::task<void> partial_writes(bool gather, const std::vector<std::byte>& data,
                              std::vector<std::byte>& out) {
    auto l = ut::tcp_listener::bind("127.0.0.1", 0);
    // Accepted sockets inherit the listener's receive buffer, so the window
    // is small from the handshake on.
    set_buffer(l.native_handle(), SO_RCVBUF, 4096);
    auto [server, client] = co_await connected_pair(l);
    set_buffer(client.native_handle(), SO_SNDBUF, 4096);
    auto reader = ut::spawn(
        [](ut::tcp_stream& s, std::vector<std::byte>& o) -> ut::task<> {
            std::vector<std::byte> buf(1000);
            for (int i = 0;; ++i) {
                std::size_t n = co_await s.read_some(std::span<std::byte>(buf));
                if (n == 0) co_return;
                o.insert(o.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
                if (i % 64 == 0)
                    co_await ut::sleep_for(1ms);  // a slow reader
                else
                    co_await ut::yield_now();
            }
        }(server, out),
        "slow reader");
    if (!gather) {
        co_await client.write_all(std::span<const std::byte>(data));
    } else {
        std::vector<std::span<const std::byte>> parts;
        std::mt19937 rng(5);
        for (std::size_t off = 0; off < data.size();) {
            std::size_t n = std::min<std::size_t>(data.size() - off, rng() % 9000);
            parts.emplace_back(data.data() + off, n);  // n == 0: an empty buffer
            off += n;
        }
        co_await client.write_all(std::span<const std::span<const std::byte>>(parts));
    }
    client.shutdown_write();
    co_await reader;
}

TEST_P(TcpStressTest, PartialWritesThroughTinyBuffersDeliverIdenticalBytes) {
    std::vector<std::byte> sent = random_bytes(std::size_t{3} * 1024 * 1024 + 17, 78), got;
    run_on_backend(partial_writes(false, sent, got));
    EXPECT_EQ(got.size(), sent.size());
    EXPECT_TRUE(got == sent);
}

TEST_P(TcpStressTest, PartialGatherWritesThroughTinyBuffersDeliverIdenticalBytes) {
    std::vector<std::byte> sent = random_bytes(std::size_t{3} * 1024 * 1024 + 17, 77), got;
    run_on_backend(partial_writes(true, sent, got));
    EXPECT_EQ(got.size(), sent.size());
    EXPECT_TRUE(got == sent);
}

/// Runs `op` and ends it at a random point: either a random deadline
/// (move_on_after) or a sibling that cancels it after a random number of
/// yields. System errors and end of stream are outcomes the random cut can
/// cause (a peer cancelled mid-exchange closes its end); anything else fails.
ut::task<void> cut_at_random(std::mt19937& rng, ut::task<void> op, int& completed, int& cut) {
    try {
        if (rng() % 2 == 0) {
            auto d = std::chrono::microseconds(rng() % 3000);
            if (co_await ut::move_on_after(d, std::move(op)))
                ++completed;
            else
                ++cut;
        } else {
            int yields = static_cast<int>(rng() % 40);
            auto h = ut::spawn(std::move(op), "op");
            for (int i = 0; i < yields && !h.done(); ++i) co_await ut::yield_now();
            h.cancel();
            try {
                co_await h;
                ++completed;
            } catch (const ut::cancelled&) {
                ++cut;
            }
        }
    } catch (const std::system_error&) {
        ++completed;
    } catch (const ut::end_of_stream&) {
        ++completed;
    }
}

TEST_P(TcpStressTest, EveryOperationCancelledAtRandomPoints) {
    constexpr int iterations = 1000;
    int completed = 0, cut = 0;
    bool works_after = false;
    run_on_backend([&]() -> ut::task<> {
        std::mt19937 rng(20261126);
        auto pairs = ut::tcp_listener::bind("127.0.0.1", 0);     // connected_pair
        auto connects = ut::tcp_listener::bind("127.0.0.1", 0);  // op: connect
        auto accepts = ut::tcp_listener::bind("127.0.0.1", 0);   // op: accept
        auto acceptor = ut::spawn(
            [](ut::tcp_listener& l) -> ut::task<> {
                for (;;) auto s = co_await l.accept();  // accept and close at once
            }(connects),
            "acceptor");
        const auto big = random_bytes(std::size_t{1} << 20, 9);
        for (int it = 0; it < iterations; ++it) {
            auto [server, client] = co_await connected_pair(pairs);
            // The other end does something useful at its own random pace.
            auto peer = ut::spawn(
                [](ut::tcp_stream& s, unsigned mode,
                   const std::vector<std::byte>& data) -> ut::task<> {
                    std::vector<std::byte> buf(std::size_t{64} * 1024);
                    try {
                        if (mode % 2 == 0) {
                            for (int i = 0; i < 16; ++i) {
                                co_await ut::yield_now();
                                co_await s.write_all(std::span<const std::byte>(data.data(), 4096));
                            }
                        } else {
                            for (;;)
                                if (co_await s.read_some(std::span<std::byte>(buf)) == 0) co_return;
                        }
                    } catch (const std::system_error&) {
                    }
                }(server, static_cast<unsigned>(rng()), big),
                "peer");
            switch (rng() % 6) {
            case 0:
                co_await cut_at_random(
                    rng,
                    [](std::uint16_t p) -> ut::task<> {
                        auto c = co_await ut::tcp_stream::connect("127.0.0.1", p, 1s);
                    }(connects.port()),
                    completed, cut);
                break;
            case 1: {
                auto dialer = ut::spawn(
                    [](std::uint16_t p, unsigned y) -> ut::task<> {
                        for (unsigned i = 0; i < y; ++i) co_await ut::yield_now();
                        auto c = co_await ut::tcp_stream::connect("127.0.0.1", p);
                    }(accepts.port(), static_cast<unsigned>(rng() % 20)),
                    "dialer");
                co_await cut_at_random(
                    rng,
                    [](ut::tcp_listener& l) -> ut::task<> {
                        auto s = co_await l.accept();
                    }(accepts),
                    completed, cut);
                co_await cancel_and_join(dialer);
                break;
            }
            case 2:
                co_await cut_at_random(
                    rng,
                    [](ut::tcp_stream& s) -> ut::task<> {
                        char b[100];
                        co_await s.read_some(std::span<char>(b));
                    }(client),
                    completed, cut);
                break;
            case 3:
                co_await cut_at_random(
                    rng,
                    [](ut::tcp_stream& s) -> ut::task<> {
                        std::vector<std::byte> b(std::size_t{16} * 4096);
                        co_await s.read_exact(std::span<std::byte>(b));
                    }(client),
                    completed, cut);
                break;
            case 4:
                co_await cut_at_random(
                    rng,
                    [](ut::tcp_stream& s, const std::vector<std::byte>& d) -> ut::task<> {
                        co_await s.write_all(std::span<const std::byte>(d));
                    }(client, big),
                    completed, cut);
                break;
            case 5:
                co_await cut_at_random(
                    rng,
                    [](ut::tcp_stream& s, const std::vector<std::byte>& d) -> ut::task<> {
                        std::vector<std::span<const std::byte>> parts;
                        for (std::size_t off = 0; off < d.size(); off += 100000)
                            parts.emplace_back(d.data() + off,
                                               std::min<std::size_t>(100000, d.size() - off));
                        co_await s.write_all(std::span<const std::span<const std::byte>>(parts));
                    }(client, big),
                    completed, cut);
                break;
            }
            // The exchange is in an unknown state: close both ends and stop the peer.
            client.close();
            co_await cancel_and_join(peer);
        }
        co_await cancel_and_join(acceptor);
        // After all that, a clean exchange still works.
        auto [server, client] = co_await connected_pair(pairs);
        std::vector<std::byte> back(big.size());
        co_await ut::when_all(client.write_all(std::span<const std::byte>(big)),
                              server.read_exact(std::span<std::byte>(back)));
        works_after = back == big;
    }());
    EXPECT_EQ(completed + cut, iterations);
    EXPECT_GT(cut, 0) << "no operation was actually cut";
    EXPECT_TRUE(works_after);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TcpStressTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, TcpStressTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
