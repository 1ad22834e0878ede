// TCP on loopback, identical on every backend: bind/accept/connect, echo of
// several sizes, end of stream, errors, serve_tcp, cancellation.

#include "conformance.hpp"

#include <cerrno>
#include <cstddef>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class TcpTest : public backend_test {};  // NOLINT(readability-identifier-naming)

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : v) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<std::byte>(x >> 24);
    }
    return v;
}

/// Accepts one connection on `l` and connects to it; returns {server side, client side}.
ut::task<std::pair<ut::tcp_stream, ut::tcp_stream>> connected_pair(ut::tcp_listener& l) {
    auto client = ut::spawn(ut::tcp_stream::connect("127.0.0.1", l.port()), "connect");
    ut::tcp_stream server = co_await l.accept();
    ut::tcp_stream c = co_await client;
    co_return std::pair<ut::tcp_stream, ut::tcp_stream>(std::move(server), std::move(c));
}

/// Reads until end of stream.
ut::task<std::vector<std::byte>> read_to_end(ut::tcp_stream& s) {
    std::vector<std::byte> out;
    std::vector<std::byte> buf(std::size_t{16} * 1024);
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<std::byte>(buf));
        if (n == 0) co_return out;
        out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
}

TEST_P(TcpTest, BindPortZeroGivesAPort) {
    std::uint16_t port = 0;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        EXPECT_TRUE(l.is_open());
        port = l.port();
        co_return;
    }());
    EXPECT_NE(port, 0);
}

TEST_P(TcpTest, BindOutsideRuntimeThenServeInside) {
    // bind is not a suspension point and may be called before run(). The
    // listener outlives the run, so this test calls ut::run itself; TearDown
    // checks that nothing leaked once the listener is closed.
    auto l = ut::tcp_listener::bind("127.0.0.1", 0);
    std::string got;
    ut::run(
        [&]() -> ut::task<> {
            auto [server, client] = co_await connected_pair(l);
            co_await client.write_all(std::string_view("hello"));
            std::string buf(5, '\0');
            co_await server.read_exact(std::span<char>(buf));
            got = buf;
        }(),
        backend_options());
    EXPECT_EQ(ut::lowlevel::live_microthreads(), 0);
    l.close();
    EXPECT_FALSE(l.is_open());
    EXPECT_EQ(got, "hello");
}

TEST_P(TcpTest, EchoRoundTripOfSeveralSizes) {
    std::vector<std::size_t> sizes{1, std::size_t{64} * 1024, std::size_t{1024} * 1024};
    std::vector<bool> ok;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto server = ut::spawn(
            [](ut::tcp_listener& lst, std::vector<std::size_t> sz) -> ut::task<> {
                ut::tcp_stream s = co_await lst.accept();
                for (std::size_t n : sz) {
                    std::vector<std::byte> buf(n);
                    co_await s.read_exact(std::span<std::byte>(buf));
                    co_await s.write_all(std::span<const std::byte>(buf));
                }
            }(l, sizes),
            "echo server");
        ut::tcp_stream c = co_await ut::tcp_stream::connect("127.0.0.1", l.port());
        unsigned seed = 1;
        for (std::size_t n : sizes) {
            auto data = pattern(n, seed++);
            // Write and read concurrently, so neither side's buffers need to hold
            // the whole message.
            std::vector<std::byte> back(n);
            co_await ut::when_all(c.write_all(std::span<const std::byte>(data)),
                                  c.read_exact(std::span<std::byte>(back)));
            ok.push_back(back == data);
        }
        co_await server;
    }());
    EXPECT_EQ(ok, (std::vector<bool>{true, true, true}));
}

TEST_P(TcpTest, ReadSomeReturnsZeroAfterShutdownWrite) {
    std::string received;
    std::size_t after_eof = 99, again = 99;
    bool reply_ok = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        co_await client.write_all(std::string_view("last words"));
        client.shutdown_write();
        auto bytes = co_await read_to_end(server);
        received.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        char c;
        after_eof = co_await server.read_some(std::span<char>(&c, 1));
        again = co_await server.read_some(std::span<char>(&c, 1));
        // The other direction still works after a half close.
        co_await server.write_all(std::string_view("ok"));
        std::string buf(2, '\0');
        co_await client.read_exact(std::span<char>(buf));
        reply_ok = buf == "ok";
    }());
    EXPECT_EQ(received, "last words");
    EXPECT_EQ(after_eof, 0u);
    EXPECT_EQ(again, 0u);
    EXPECT_TRUE(reply_ok);
}

TEST_P(TcpTest, ReadSomeReturnsZeroAfterPeerClose) {
    std::size_t n = 99;
    bool closed = true;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        // Park a reader first, then close the peer: EOF must wake it.
        auto reader = ut::spawn([](ut::tcp_stream& s) -> ut::task<std::size_t> {
            char buf[16];
            co_return co_await s.read_some(std::span<char>(buf));
        }(server));
        co_await ut::yield_now();
        client.close();
        closed = client.is_open();
        n = co_await reader;
    }());
    EXPECT_FALSE(closed);
    EXPECT_EQ(n, 0u);
}

TEST_P(TcpTest, ReadExactAtEndOfStreamThrowsEndOfStream) {
    std::size_t bytes_read = 0;
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        co_await client.write_all(std::string_view("abc"));
        client.close();
        std::string buf(10, '\0');
        try {
            co_await server.read_exact(std::span<char>(buf));
        } catch (const ut::end_of_stream& e) {
            threw = true;
            bytes_read = e.bytes_read;
        }
    }());
    EXPECT_TRUE(threw);
    EXPECT_EQ(bytes_read, 3u);
}

TEST_P(TcpTest, ConnectionRefusedThrowsSystemError) {
    std::error_code code;
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        std::uint16_t port;
        {
            // A port that was just free: bind it, note it, close it.
            auto l = ut::tcp_listener::bind("127.0.0.1", 0);
            port = l.port();
        }
        try {
            co_await ut::tcp_stream::connect("127.0.0.1", port);
        } catch (const std::system_error& e) {
            threw = true;
            code = e.code();
        }
    }());
    EXPECT_TRUE(threw);
    EXPECT_EQ(code, std::errc::connection_refused) << code.message();
}

TEST_P(TcpTest, BindToPortInUseThrowsSystemError) {
    std::error_code code;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        try {
            auto l2 = ut::tcp_listener::bind("127.0.0.1", l.port());
        } catch (const std::system_error& e) {
            code = e.code();
        }
        co_return;
    }());
    EXPECT_EQ(code, std::errc::address_in_use) << code.message();
}

TEST_P(TcpTest, ConnectToEmptyHostThrowsInvalidArgument) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::tcp_stream::connect("", 80);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
    }());
    EXPECT_TRUE(threw);
}

TEST_P(TcpTest, WriteToClosedPeerIsAnErrorNotSigpipe) {
    bool threw = false;
    std::error_code code;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        client.close();
        std::vector<std::byte> chunk(std::size_t{64} * 1024, std::byte{1});
        try {
            for (int i = 0; i < 1000; ++i)
                co_await server.write_all(std::span<const std::byte>(chunk));
        } catch (const std::system_error& e) {
            threw = true;
            code = e.code();
        }
    }());
    EXPECT_TRUE(threw) << "writing 64 MiB to a closed peer succeeded";
    EXPECT_TRUE(code == std::errc::broken_pipe || code == std::errc::connection_reset)
        << code.message();
}

TEST_P(TcpTest, CancelledReadLosesNothing) {
    std::string got;
    bool read_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        ut::event started;
        auto reader = ut::spawn([](ut::tcp_stream& s, ut::event& st) -> ut::task<> {
            char buf[16];
            st.set();
            co_await s.read_some(std::span<char>(buf));
            ADD_FAILURE() << "read_some returned although nothing was sent";
        }(server, started));
        co_await started.wait();
        co_await ut::yield_now();
        reader.cancel();
        read_cancelled = co_await join_expect_cancelled(reader);
        // The stream is still usable and no byte was consumed by the cancelled read.
        co_await client.write_all(std::string_view("after"));
        std::string buf(5, '\0');
        co_await server.read_exact(std::span<char>(buf));
        got = buf;
    }());
    EXPECT_TRUE(read_cancelled);
    EXPECT_EQ(got, "after");
}

TEST_P(TcpTest, AcceptWithTimeout) {
    bool timed_out = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        try {
            co_await ut::with_timeout(20ms, l.accept());
        } catch (const ut::timeout_error&) {
            timed_out = true;
        }
        // The listener still works after the cancelled accept.
        auto [server, client] = co_await connected_pair(l);
        EXPECT_TRUE(server.is_open());
        EXPECT_TRUE(client.is_open());
    }());
    EXPECT_TRUE(timed_out);
}

TEST_P(TcpTest, CloseWakesParkedReaderWithError) {
    bool errored = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        ut::event started;
        auto reader = ut::spawn([](ut::tcp_stream& s, ut::event& st, bool& err) -> ut::task<> {
            char buf[4];
            st.set();
            try {
                co_await s.read_some(std::span<char>(buf));
            } catch (const std::system_error& e) {
                err = e.code() == std::errc::bad_file_descriptor;
            }
        }(server, started, errored));
        co_await started.wait();
        co_await ut::yield_now();
        server.close();  // parked operations fail with EBADF
        co_await reader;
    }());
    EXPECT_TRUE(errored);
}

TEST_P(TcpTest, ServeTcpWithHundredConcurrentClients) {
    int handled = 0, ok_clients = 0;
    bool server_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto server =
            ut::spawn(ut::serve_tcp(l,
                                    [&handled](ut::tcp_stream s) -> ut::task<> {
                                        ++handled;
                                        // Echo until end of stream.
                                        auto data = co_await read_to_end(s);
                                        co_await s.write_all(std::span<const std::byte>(data));
                                    }),
                      "server");
        std::uint16_t port = l.port();
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < 100; ++i)
                n.spawn([](std::uint16_t p, int k, int& ok) -> ut::task<> {
                    auto c = co_await ut::tcp_stream::connect("127.0.0.1", p);
                    auto msg =
                        pattern(100 + static_cast<std::size_t>(k) * 37, static_cast<unsigned>(k));
                    co_await c.write_all(std::span<const std::byte>(msg));
                    c.shutdown_write();
                    auto back = co_await read_to_end(c);
                    if (back == msg) ++ok;
                }(port, i, ok_clients));
            co_return;
        });
        server.cancel();
        server_cancelled = co_await join_expect_cancelled(server);
    }());
    EXPECT_EQ(ok_clients, 100);
    EXPECT_EQ(handled, 100);
    EXPECT_TRUE(server_cancelled);
}

TEST_P(TcpTest, CancellingServeTcpJoinsItsHandlers) {
    constexpr int clients = 10;
    int entered = 0, handler_cancelled = 0, handler_returned = 0, eof_at_client = 0;
    int alive_when_server_joined = -1;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        ut::event all_in;
        int in_handler = 0;
        auto server = ut::spawn(
            ut::serve_tcp(l,
                          [&](ut::tcp_stream s) -> ut::task<> {
                              ++entered;
                              ++in_handler;
                              if (entered == clients) all_in.set();
                              try {
                                  char buf[8];
                                  co_await s.read_some(std::span<char>(buf));  // clients never send
                                  ++handler_returned;
                              } catch (const ut::cancelled&) {
                                  ++handler_cancelled;
                                  --in_handler;
                                  throw;
                              }
                              --in_handler;
                          }),
            "server");
        std::vector<ut::tcp_stream> conns;
        conns.reserve(clients);
        for (int i = 0; i < clients; ++i)
            conns.push_back(co_await ut::tcp_stream::connect("127.0.0.1", l.port()));
        co_await all_in.wait();
        server.cancel();
        EXPECT_TRUE(co_await join_expect_cancelled(server));
        alive_when_server_joined = in_handler;
        // The handlers' streams were closed as they unwound: clients see EOF.
        for (auto& c : conns) {
            char b;
            if (co_await c.read_some(std::span<char>(&b, 1)) == 0) ++eof_at_client;
        }
    }());
    EXPECT_EQ(entered, clients);
    EXPECT_EQ(handler_cancelled, clients);
    EXPECT_EQ(handler_returned, 0);
    EXPECT_EQ(alive_when_server_joined, 0) << "serve_tcp returned while handlers still ran";
    EXPECT_EQ(eof_at_client, clients);
}

TEST_P(TcpTest, HandlerExceptionDoesNotStopServer) {
    int reports = 0, served = 0;
    auto previous = ut::set_unhandled_exception_handler(
        [&](std::string_view, const std::exception_ptr&) { ++reports; });
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        int calls = 0;
        auto server = ut::spawn(ut::serve_tcp(l,
                                              [&](ut::tcp_stream s) -> ut::task<> {
                                                  if (calls++ == 0)
                                                      throw std::runtime_error("handler failed");
                                                  co_await s.write_all(std::string_view("ok"));
                                              }),
                                "server");
        for (int i = 0; i < 3; ++i) {
            auto c = co_await ut::tcp_stream::connect("127.0.0.1", l.port());
            auto data = co_await read_to_end(c);
            if (data.size() == 2) ++served;
        }
        co_await cancel_and_join(server);
    }());
    ut::set_unhandled_exception_handler(std::move(previous));
    EXPECT_EQ(served, 2);
    EXPECT_EQ(reports, 1) << "a failing handler was not reported exactly once";
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TcpTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
