// TCP on loopback, identical on every backend: bind/accept/connect, echo of
// several sizes, end of stream, errors, serve_tcp, cancellation; options
// (timeouts, TCP_NODELAY, SO_REUSEPORT, IPv6), endpoints, gather writes and
// serve_tcp's connection limit.

#include "conformance.hpp"
#include "io_helpers.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <span>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <tuple>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class TcpTest : public backend_test {};  // NOLINT(readability-identifier-naming)



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
        // The stream stays usable and the cancelled read consumed no byte.
        std::tie(read_cancelled, got) = co_await cancel_parked_read_then_exchange(server, client);
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
    // Atomic: handlers and clients run in parallel with several workers.
    std::atomic<int> handled{0}, ok_clients{0};
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
                n.spawn([](std::uint16_t p, int k, std::atomic<int>& ok) -> ut::task<> {
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
    EXPECT_EQ(ok_clients.load(), 100);
    EXPECT_EQ(handled.load(), 100);
    EXPECT_TRUE(server_cancelled);
}

TEST_P(TcpTest, CancellingServeTcpJoinsItsHandlers) {
    constexpr int clients = 10;
    // Atomic: handlers and clients run in parallel with several workers.
    std::atomic<int> entered{0}, handler_cancelled{0}, handler_returned{0};
    int eof_at_client = 0;
    int alive_when_server_joined = -1;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        ut::event all_in;
        std::atomic<int> in_handler{0};
        auto server = ut::spawn(
            ut::serve_tcp(l,
                          [&](ut::tcp_stream s) -> ut::task<> {
                              ++in_handler;
                              if (++entered == clients) all_in.set();
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
    EXPECT_EQ(entered.load(), clients);
    EXPECT_EQ(handler_cancelled.load(), clients);
    EXPECT_EQ(handler_returned.load(), 0);
    EXPECT_EQ(alive_when_server_joined, 0) << "serve_tcp returned while handlers still ran";
    EXPECT_EQ(eof_at_client, clients);
}

TEST_P(TcpTest, HandlerExceptionDoesNotStopServer) {
    // Atomic: handlers and clients run in parallel with several workers.
    std::atomic<int> reports{0};
    int served = 0;
    auto previous = ut::set_unhandled_exception_handler(
        [&](std::string_view, const std::exception_ptr&) { ++reports; });
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        std::atomic<int> calls{0};
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
    EXPECT_EQ(reports.load(), 1) << "a failing handler was not reported exactly once";
}

// ---- options, endpoints, gather writes, errors (issue 4) ------------------

/// getsockopt(TCP_NODELAY) as the kernel reports it.
bool kernel_no_delay(int fd) {
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    return v != 0;
}

std::vector<std::byte> concat(const std::vector<std::vector<std::byte>>& parts) {
    std::vector<std::byte> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

std::vector<std::span<const std::byte>> spans_of(const std::vector<std::vector<std::byte>>& parts) {
    std::vector<std::span<const std::byte>> out;
    out.reserve(parts.size());
    for (const auto& p : parts) out.emplace_back(p);
    return out;
}

TEST_P(TcpTest, ConnectionRefusedNamesThePeer) {
    std::string what;
    std::uint16_t port = 0;
    run_on_backend([&]() -> ut::task<> {
        {
            auto l = ut::tcp_listener::bind("127.0.0.1", 0);
            port = l.port();
        }
        try {
            co_await ut::tcp_stream::connect("127.0.0.1", port, 5s);
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code(), std::errc::connection_refused) << e.what();
            what = e.what();
        }
    }());
    EXPECT_NE(what.find("connect to 127.0.0.1:" + std::to_string(port)), std::string::npos) << what;
}

TEST_P(TcpTest, ConnectTimeoutThrowsEtimedoutNamingThePeer) {
    // A listener with backlog 0 whose accept queue is full drops further SYNs,
    // so a connect to it neither succeeds nor fails until the client gives up.
    // The queue is filled with raw non-blocking connects nobody accepts.
    std::error_code code;
    std::string what;
    bool connected = false, premise = true, usable_after = false;
    std::uint16_t port = 0;
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0, ut::listen_options{.backlog = 1});
        premise = ::listen(l.native_handle(), 0) == 0;
        port = l.port();
        std::vector<int> fillers;
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (int i = 0; i < 4; ++i) {
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            // Non-blocking: EINPROGRESS, or connected at once; either way it
            // takes its place in the queue.
            (void)::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
            fillers.push_back(fd);
        }
        // Real time for the handshakes that fit to complete (sleep_for would
        // not wait on a virtual clock).
        co_await ut::to_thread([] { std::this_thread::sleep_for(100ms); });
        try {
            co_await ut::tcp_stream::connect("127.0.0.1", port,
                                             ut::connect_options{.timeout = 300ms});
            connected = true;
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        for (int fd : fillers) ::close(fd);
        // The runtime is fine after the timed-out connect's cleanup.
        auto l2 = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l2);
        usable_after = server.is_open() && client.is_open();
    }());
    EXPECT_TRUE(premise);
    EXPECT_FALSE(connected) << "the accept queue was not full: the test's premise failed";
    EXPECT_EQ(code, std::errc::timed_out) << what;
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << what;
    EXPECT_LT(wall_now() - w0, 30s) << "the timeout did not cut the connect short";
    EXPECT_TRUE(usable_after);
}

TEST_P(TcpTest, ConnectWithTimeoutSucceedsWhenThePeerAnswers) {
    bool ok = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto acc = ut::spawn(l.accept(), "accept");
        auto c = co_await ut::tcp_stream::connect("127.0.0.1", l.port(), 10s);
        auto s = co_await acc;
        co_await c.write_all(std::string_view("x"));
        char b = 0;
        co_await s.read_exact(std::span<char>(&b, 1));
        ok = b == 'x';
    }());
    EXPECT_TRUE(ok);
}

TEST_P(TcpTest, BadOptionsThrowInvalidArgumentNamingThem) {
    std::string backlog_msg, timeout_msg, limit_msg;
    run_on_backend([&]() -> ut::task<> {
        try {
            ut::tcp_listener::bind("127.0.0.1", 0, ut::listen_options{.backlog = 0});
        } catch (const std::invalid_argument& e) {
            backlog_msg = e.what();
        }
        try {
            co_await ut::tcp_stream::connect("127.0.0.1", 1, -1ms);
        } catch (const std::invalid_argument& e) {
            timeout_msg = e.what();
        }
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        try {
            co_await ut::serve_tcp(
                l, [](ut::tcp_stream) -> ut::task<> { co_return; },
                ut::serve_limits{.max_connections = SIZE_MAX});
        } catch (const std::invalid_argument& e) {
            limit_msg = e.what();
        }
    }());
    EXPECT_NE(backlog_msg.find("backlog"), std::string::npos) << backlog_msg;
    EXPECT_NE(timeout_msg.find("timeout"), std::string::npos) << timeout_msg;
    EXPECT_NE(limit_msg.find("max_connections"), std::string::npos) << limit_msg;
}

TEST_P(TcpTest, PeerResetIsEconnresetForTheReaderAndAnErrorForTheWriter) {
    std::error_code read_code, write_code;
    std::string read_what;
    std::string peer;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        // Reader: parked in read_some when the peer resets.
        {
            auto [server, client] = co_await connected_pair(l);
            peer = server.peer();
            auto reader = ut::spawn(
                [](ut::tcp_stream& s, std::error_code& code, std::string& what) -> ut::task<> {
                    char buf[16];
                    try {
                        co_await s.read_some(std::span<char>(buf));
                        ADD_FAILURE() << "read_some returned after a reset";
                    } catch (const std::system_error& e) {
                        code = e.code();
                        what = e.what();
                    }
                }(server, read_code, read_what));
            co_await ut::yield_now();
            linger lg{1, 0};  // close with RST
            ::setsockopt(client.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            client.close();
            co_await reader;
        }
        // Writer: keeps writing after the peer reset; MSG_NOSIGNAL turns the
        // broken pipe into an error (a SIGPIPE would kill the test binary).
        {
            auto [server, client] = co_await connected_pair(l);
            linger lg{1, 0};
            ::setsockopt(client.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            client.close();
            std::vector<std::byte> chunk(std::size_t{64} * 1024, std::byte{7});
            try {
                for (int i = 0; i < 1000; ++i)
                    co_await server.write_all(std::span<const std::byte>(chunk));
            } catch (const std::system_error& e) {
                write_code = e.code();
            }
        }
    }());
    EXPECT_EQ(read_code, std::errc::connection_reset) << read_what;
    EXPECT_NE(read_what.find(peer), std::string::npos) << read_what;
    EXPECT_TRUE(write_code == std::errc::broken_pipe || write_code == std::errc::connection_reset)
        << write_code.message();
}

TEST_P(TcpTest, NoDelayIsOnByDefaultAndTogglable) {
    bool client_default = false, server_default = false, after_off = true, after_on = false;
    bool opt_client = true, opt_server = true, getter_matches = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        client_default = kernel_no_delay(client.native_handle());
        server_default = kernel_no_delay(server.native_handle());
        client.set_no_delay(false);
        after_off = kernel_no_delay(client.native_handle());
        getter_matches = !client.no_delay();
        client.set_no_delay(true);
        after_on = kernel_no_delay(client.native_handle()) && client.no_delay();
        // Options: off for the connecting side and for the accepted side.
        auto l2 = ut::tcp_listener::bind("127.0.0.1", 0, ut::listen_options{.no_delay = false});
        auto acc = ut::spawn(l2.accept(), "accept");
        auto c2 = co_await ut::tcp_stream::connect("127.0.0.1", l2.port(),
                                                   ut::connect_options{.no_delay = false});
        auto s2 = co_await acc;
        opt_client = kernel_no_delay(c2.native_handle());
        opt_server = kernel_no_delay(s2.native_handle());
    }());
    EXPECT_TRUE(client_default);
    EXPECT_TRUE(server_default);
    EXPECT_FALSE(after_off);
    EXPECT_TRUE(getter_matches);
    EXPECT_TRUE(after_on);
    EXPECT_FALSE(opt_client);
    EXPECT_FALSE(opt_server);
}

TEST_P(TcpTest, LocalAndPeerEndpointsMatchAcrossTheConnection) {
    ut::endpoint cl, cp, sl, sp, ll;
    std::uint16_t port = 0;
    std::error_code closed_code;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        port = l.port();
        ll = l.local_endpoint();
        auto [server, client] = co_await connected_pair(l);
        cl = client.local_endpoint();
        cp = client.peer_endpoint();
        sl = server.local_endpoint();
        sp = server.peer_endpoint();
        client.close();
        try {
            (void)client.peer_endpoint();
        } catch (const std::system_error& e) {
            closed_code = e.code();
        }
    }());
    EXPECT_EQ(ll.family(), AF_INET);
    EXPECT_EQ(ll.address(), "127.0.0.1");
    EXPECT_EQ(ll.port(), port);
    EXPECT_EQ(cp, ll);
    EXPECT_EQ(sl, ll);
    EXPECT_EQ(sp, cl);
    EXPECT_EQ(cl.address(), "127.0.0.1");
    EXPECT_NE(cl.port(), 0);
    EXPECT_NE(cl.port(), port);
    EXPECT_EQ(closed_code, std::errc::bad_file_descriptor);
}

TEST_P(TcpTest, Ipv6LoopbackRoundTrip) {
    ut::endpoint server_local, client_peer;
    std::vector<std::byte> back;
    auto data = pattern(std::size_t{256} * 1024, 6);
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("::1", 0);
        auto acc = ut::spawn(l.accept(), "accept");
        auto c = co_await ut::tcp_stream::connect("::1", l.port());
        auto s = co_await acc;
        server_local = s.local_endpoint();
        client_peer = c.peer_endpoint();
        auto echo = ut::spawn([](ut::tcp_stream& st) -> ut::task<> {
            auto in = co_await read_to_end(st);
            co_await st.write_all(std::span<const std::byte>(in));
            st.shutdown_write();
        }(s));
        co_await c.write_all(std::span<const std::byte>(data));
        c.shutdown_write();
        back = co_await read_to_end(c);
        co_await echo;
    }());
    EXPECT_EQ(server_local.family(), AF_INET6);
    EXPECT_EQ(server_local.address(), "::1");
    EXPECT_EQ(client_peer, server_local);
    EXPECT_TRUE(back == data) << "IPv6 echo differs (" << back.size() << " bytes)";
}

TEST_P(TcpTest, Ipv6AnyAcceptsIpv4UnlessIpv6Only) {
    std::string mapped_peer;
    bool v6_ok = false;
    std::error_code v6only_code;
    run_on_backend([&]() -> ut::task<> {
        {
            auto l = ut::tcp_listener::bind("::", 0);
            EXPECT_EQ(l.local_endpoint().address(), "::");
            auto acc = ut::spawn(l.accept(), "accept");
            auto c4 = co_await ut::tcp_stream::connect("127.0.0.1", l.port());
            auto s4 = co_await acc;
            mapped_peer = s4.peer_endpoint().address();
            auto acc6 = ut::spawn(l.accept(), "accept");
            auto c6 = co_await ut::tcp_stream::connect("::1", l.port());
            auto s6 = co_await acc6;
            v6_ok = s6.peer_endpoint().address() == "::1";
        }
        auto l = ut::tcp_listener::bind("::", 0, ut::listen_options{.ipv6_only = true});
        try {
            co_await ut::tcp_stream::connect("127.0.0.1", l.port());
        } catch (const std::system_error& e) {
            v6only_code = e.code();
        }
    }());
    EXPECT_EQ(mapped_peer, "::ffff:127.0.0.1");
    EXPECT_TRUE(v6_ok);
    EXPECT_EQ(v6only_code, std::errc::connection_refused);
}

TEST_P(TcpTest, ReusePortLetsTwoListenersShareAPort) {
    std::error_code without;
    // Atomic: the two acceptors run in parallel with several workers.
    std::atomic<int> accepted{0};
    int connected = 0;
    bool same_port = false;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::tcp_listener::bind("127.0.0.1", 0, ut::listen_options{.reuse_port = true});
        auto b =
            ut::tcp_listener::bind("127.0.0.1", a.port(), ut::listen_options{.reuse_port = true});
        same_port = a.port() == b.port();
        try {
            auto c = ut::tcp_listener::bind("127.0.0.1", a.port());  // without the option
        } catch (const std::system_error& e) {
            without = e.code();
        }
        auto accept_all = [](ut::tcp_listener& l, std::atomic<int>& n) -> ut::task<> {
            for (;;) {
                auto s = co_await l.accept();
                ++n;
            }
        };
        auto ha = ut::spawn(accept_all(a, accepted), "accept a");
        auto hb = ut::spawn(accept_all(b, accepted), "accept b");
        for (int i = 0; i < 20; ++i) {
            auto c = co_await ut::tcp_stream::connect("127.0.0.1", a.port());
            ++connected;
        }
        co_await yield_until([&] { return accepted == 20; }, "20 accepts");
        co_await cancel_and_join(ha);
        co_await cancel_and_join(hb);
    }());
    EXPECT_TRUE(same_port);
    EXPECT_EQ(without, std::errc::address_in_use);
    EXPECT_EQ(connected, 20);
    EXPECT_EQ(accepted.load(), 20);
}

TEST_P(TcpTest, GatherWriteSendsEveryBufferInOrder) {
    // Odd sizes, empty buffers, and more buffers than one sendmsg takes.
    std::vector<std::vector<std::byte>> parts;
    std::vector<std::size_t> sizes{0, 1, 7, 0, 65536, 3, std::size_t{1024} * 1024 + 13, 0};
    for (unsigned i = 0; i < 150; ++i) sizes.push_back((i * 7919u) % 1500u);
    unsigned seed = 100;
    parts.reserve(sizes.size());
    for (std::size_t n : sizes) parts.push_back(pattern(n, seed++));
    auto whole = concat(parts);
    std::vector<std::byte> got;
    bool empty_ok = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto [server, client] = co_await connected_pair(l);
        auto reader = ut::spawn(read_to_end(server), "reader");
        auto spans = spans_of(parts);
        co_await client.write_all(std::span<const std::span<const std::byte>>(spans));
        // Nothing at all to send: returns at once.
        std::vector<std::span<const std::byte>> none{std::span<const std::byte>()};
        co_await client.write_all(std::span<const std::span<const std::byte>>(none));
        empty_ok = true;
        client.shutdown_write();
        got = co_await reader;
    }());
    EXPECT_TRUE(empty_ok);
    EXPECT_EQ(got.size(), whole.size());
    EXPECT_TRUE(got == whole);
}

TEST_P(TcpTest, ServeTcpLimitCapsConcurrentHandlers) {
    constexpr int limit = 3, clients = 10;
    // Atomic: handlers and clients run in parallel with several workers.
    std::atomic<int> max_seen{0}, served{0};
    int entered_while_held = -1;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        std::atomic<int> current{0}, entered{0};
        ut::event release;
        auto server =
            ut::spawn(ut::serve_tcp(
                          l,
                          [&](ut::tcp_stream s) -> ut::task<> {
                              ++entered;
                              int now = ++current;
                              int seen = max_seen.load();
                              while (seen < now && !max_seen.compare_exchange_weak(seen, now)) {
                              }
                              co_await release.wait();
                              co_await ut::sleep_for(1ms);  // overlap with the next handlers
                              char b = 0;
                              co_await s.read_exact(std::span<char>(&b, 1));
                              co_await s.write_all(std::string_view(&b, 1));
                              --current;
                          },
                          ut::serve_limits{.max_connections = limit}),
                      "server");
        std::uint16_t port = l.port();
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(clients);
        for (int i = 0; i < clients; ++i)
            hs.push_back(ut::spawn(
                [](std::uint16_t p, std::atomic<int>& ok) -> ut::task<> {
                    auto c = co_await ut::tcp_stream::connect("127.0.0.1", p);
                    co_await c.write_all(std::string_view("z"));
                    char b = 0;
                    co_await c.read_exact(std::span<char>(&b, 1));
                    if (b == 'z') ++ok;
                }(port, served),
                "client"));
        // Every client is connected (in the backlog) but only `limit` are
        // accepted while the handlers are held.
        co_await yield_until([&] { return entered == limit; }, "limit handlers entered");
        for (int i = 0; i < 50; ++i) co_await ut::sleep_for(1ms);
        entered_while_held = entered;
        release.set();
        for (auto& h : hs) co_await h;
        co_await cancel_and_join(server);
    }());
    EXPECT_EQ(entered_while_held, limit) << "serve_tcp accepted beyond its limit";
    EXPECT_EQ(max_seen.load(), limit);
    EXPECT_EQ(served.load(), clients);
}

TEST_P(TcpTest, CancellingALimitedServeTcpJoinsHandlersAndLeavesTheBacklog) {
    constexpr int limit = 2;
    // Atomic: handlers and clients run in parallel with several workers.
    std::atomic<int> entered{0}, cancelled_handlers{0};
    bool joined = false;
    int eof_or_reset = 0;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto server = ut::spawn(ut::serve_tcp(
                                    l,
                                    [&](ut::tcp_stream s) -> ut::task<> {
                                        ++entered;
                                        try {
                                            char b;
                                            co_await s.read_some(std::span<char>(&b, 1));
                                        } catch (const ut::cancelled&) {
                                            ++cancelled_handlers;
                                            throw;
                                        }
                                    },
                                    ut::serve_limits{.max_connections = limit}),
                                "server");
        std::vector<ut::tcp_stream> conns;
        conns.reserve(5);
        for (int i = 0; i < 5; ++i)
            conns.push_back(co_await ut::tcp_stream::connect("127.0.0.1", l.port()));
        co_await yield_until([&] { return entered == limit; }, "handlers entered");
        server.cancel();
        joined = co_await join_expect_cancelled(server);
        // The accepted ones were closed by their handlers; the rest stay in the
        // backlog until the listener closes.
        l.close();
        for (auto& c : conns) {
            char b;
            try {
                if (co_await c.read_some(std::span<char>(&b, 1)) == 0) ++eof_or_reset;
            } catch (const std::system_error&) {
                ++eof_or_reset;
            }
        }
    }());
    EXPECT_TRUE(joined);
    EXPECT_EQ(entered.load(), limit);
    EXPECT_EQ(cancelled_handlers.load(), limit);
    EXPECT_EQ(eof_or_reset, 5);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TcpTest, ::testing::ValuesIn(suite_params()), backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, TcpTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
