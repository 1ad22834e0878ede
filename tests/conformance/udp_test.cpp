// UDP on loopback, identical on every backend: datagram round trips over IPv4
// and IPv6, connected sockets, truncation, errors, cancellation, close.

#include "conformance.hpp"

#include <uthreads/udp.hpp>

#include <atomic>
#include <cstddef>
#include <span>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <vector>

namespace uthreads_conformance {
namespace {

class UdpTest : public backend_test {};  // NOLINT(readability-identifier-naming)

std::string as_string(const std::vector<char>& buf, std::size_t n) {
    return std::string(buf.data(), n);
}

/// True if this machine can bind a UDP socket on IPv6 loopback.
bool have_ipv6_loopback() {
    try {
        ut::udp_socket::bind("::1", 0);
        return true;
    } catch (const std::system_error&) {
        return false;
    }
}

TEST_P(UdpTest, BindPortZeroGivesAPortOutsideARuntime) {
    auto s = ut::udp_socket::bind("127.0.0.1", 0);
    EXPECT_TRUE(s.is_open());
    EXPECT_NE(s.local_port(), 0);
    EXPECT_EQ(s.local_endpoint().to_string(), "127.0.0.1:" + std::to_string(s.local_port()));
    s.close();
    s.close();  // idempotent
    EXPECT_FALSE(s.is_open());
}

TEST_P(UdpTest, RoundTripIPv4) {
    std::string at_b, at_a;
    bool from_is_a = false;
    int family = 0;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("127.0.0.1", 0);
        auto b = ut::udp_socket::bind("127.0.0.1", 0);
        co_await a.send_to(std::string_view("ping"), b.local_endpoint());
        std::vector<char> buf(64);
        auto [n, from] = co_await b.recv_from(std::span<char>(buf));
        at_b = as_string(buf, n);
        from_is_a = from == a.local_endpoint();
        family = from.family();
        co_await b.send_to(std::string_view("pong"), from);
        auto [m, from2] = co_await a.recv_from(std::span<char>(buf));
        at_a = as_string(buf, m);
    }());
    EXPECT_EQ(at_b, "ping");
    EXPECT_EQ(at_a, "pong");
    EXPECT_TRUE(from_is_a);
    EXPECT_EQ(family, AF_INET);
}

TEST_P(UdpTest, RoundTripIPv6) {
    if (!have_ipv6_loopback()) GTEST_SKIP() << "needs IPv6 loopback (::1)";
    std::string at_b, at_a, from_text, a_text;
    int family = 0;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("::1", 0);
        auto b = ut::udp_socket::bind("::1", 0);
        co_await a.send_to(std::string_view("ping6"), b.local_endpoint());
        std::vector<char> buf(64);
        auto [n, from] = co_await b.recv_from(std::span<char>(buf));
        at_b = as_string(buf, n);
        from_text = from.to_string();
        a_text = "[::1]:" + std::to_string(a.local_port());
        family = from.family();
        co_await b.send_to(std::string_view("pong6"), from);
        auto [m, from2] = co_await a.recv_from(std::span<char>(buf));
        at_a = as_string(buf, m);
    }());
    EXPECT_EQ(at_b, "ping6");
    EXPECT_EQ(at_a, "pong6");
    EXPECT_EQ(from_text, a_text);
    EXPECT_EQ(family, AF_INET6);
}

TEST_P(UdpTest, ManyDatagramsArriveWhole) {
    constexpr int count = 200;
    int whole = 0;
    std::atomic<int> received{0};  // read by the sender while the receiver counts
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("127.0.0.1", 0);
        auto b = ut::udp_socket::bind("127.0.0.1", 0);
        auto receiver = ut::spawn(
            [](ut::udp_socket& s, int& ok, std::atomic<int>& got) -> ut::task<> {
                std::vector<char> buf(2048);
                for (int i = 0; i < count; ++i) {
                    auto [n, from] = co_await s.recv_from(std::span<char>(buf));
                    ++got;
                    // Loopback keeps order; each datagram is one whole message.
                    if (as_string(buf, n) ==
                        std::string(static_cast<std::size_t>(i % 50 + 1), char('a' + i % 26)))
                        ++ok;
                }
            }(b, whole, received),
            "receiver");
        ut::endpoint to = b.local_endpoint();
        for (int i = 0; i < count; ++i) {
            std::string msg(static_cast<std::size_t>(i % 50 + 1), char('a' + i % 26));
            co_await a.send_to(std::string_view(msg), to);
            // UDP has no flow control: let the receiver catch up now and then so
            // the receive buffer never overflows (that would drop datagrams).
            if (i % 16 == 15) co_await yield_until([&] { return received == i + 1; }, "receiver");
        }
        co_await receiver;
    }());
    EXPECT_EQ(received.load(), count);
    EXPECT_EQ(whole, count);
}

TEST_P(UdpTest, ConnectedSendRecvIgnoresOtherSenders) {
    std::string first, second;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("127.0.0.1", 0);
        auto b = ut::udp_socket::bind("127.0.0.1", 0);
        auto stranger = ut::udp_socket::bind("127.0.0.1", 0);
        co_await a.connect("127.0.0.1", b.local_port());
        co_await b.connect("localhost", a.local_port());  // by name: resolved on the pool
        EXPECT_EQ(a.peer(), "127.0.0.1:" + std::to_string(b.local_port()));
        // The kernel drops datagrams to a connected socket from anyone but its peer.
        co_await stranger.send_to(std::string_view("noise"), a.local_endpoint());
        co_await b.send(std::string_view("from b"));
        std::vector<char> buf(64);
        first = as_string(buf, co_await a.recv(std::span<char>(buf)));
        co_await a.send(std::string_view("from a"));
        second = as_string(buf, co_await b.recv(std::span<char>(buf)));
    }());
    EXPECT_EQ(first, "from b");
    EXPECT_EQ(second, "from a");
}

TEST_P(UdpTest, LargeDatagramIsTruncatedToTheBuffer) {
    // Documented: a datagram larger than the buffer fills it, the rest of that
    // datagram is discarded, and the next receive returns the next datagram.
    std::size_t n1 = 0, n2 = 0;
    bool prefix_ok = false;
    std::string next;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("127.0.0.1", 0);
        auto b = ut::udp_socket::bind("127.0.0.1", 0);
        std::string big(8000, 'x');
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
        co_await a.send_to(std::string_view(big), b.local_endpoint());
        co_await a.send_to(std::string_view("next"), b.local_endpoint());
        std::vector<char> small(100);
        auto [n, from] = co_await b.recv_from(std::span<char>(small));
        n1 = n;
        prefix_ok = as_string(small, n) == big.substr(0, 100);
        n2 = co_await b.recv(std::span<char>(small));
        next = as_string(small, n2);
    }());
    EXPECT_EQ(n1, 100u);
    EXPECT_TRUE(prefix_ok);
    EXPECT_EQ(n2, 4u);
    EXPECT_EQ(next, "next");
}

TEST_P(UdpTest, CancelledRecvLosesNothingAndSocketStaysUsable) {
    bool timed_out = false;
    std::string got;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("127.0.0.1", 0);
        auto b = ut::udp_socket::bind("127.0.0.1", 0);
        std::vector<char> buf(64);
        try {
            co_await ut::with_timeout(20ms, b.recv_from(std::span<char>(buf)));
        } catch (const ut::timeout_error&) {
            timed_out = true;
        }
        co_await a.send_to(std::string_view("one"), b.local_endpoint());
        co_await a.send_to(std::string_view("two"), b.local_endpoint());
        // A receive cancelled before it runs takes no datagram. Only with one
        // worker: with several, an idle worker may start it before the cancel.
        if (workers() == 1) {
            auto h = ut::spawn(b.recv_from(std::span<char>(buf)), "cancelled recv");
            h.cancel();
            EXPECT_TRUE(co_await join_expect_cancelled(h));
        }
        auto [n1, f1] = co_await b.recv_from(std::span<char>(buf));
        got = as_string(buf, n1);
        auto [n2, f2] = co_await b.recv_from(std::span<char>(buf));
        got += "," + as_string(buf, n2);
    }());
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(got, "one,two");
}

TEST_P(UdpTest, CloseWhileRecvParkedGivesEbadf) {
    bool ebadf = false;
    run_on_backend([&]() -> ut::task<> {
        auto s = ut::udp_socket::bind("127.0.0.1", 0);
        ut::event started;
        auto reader = ut::spawn([](ut::udp_socket& u, ut::event& st, bool& err) -> ut::task<> {
            char buf[16];
            st.set();
            try {
                co_await u.recv(std::span<char>(buf));
                ADD_FAILURE() << "recv returned although nothing was sent";
            } catch (const std::system_error& e) {
                err = e.code() == std::errc::bad_file_descriptor;
            }
        }(s, started, ebadf));
        co_await started.wait();
        co_await ut::yield_now();
        s.close();
        co_await reader;
    }());
    EXPECT_TRUE(ebadf);
}

TEST_P(UdpTest, SendOnUnconnectedSocketThrows) {
    std::error_code code;
    run_on_backend([&]() -> ut::task<> {
        auto s = ut::udp_socket::bind("127.0.0.1", 0);
        try {
            co_await s.send(std::string_view("x"));
        } catch (const std::system_error& e) {
            code = e.code();
        }
    }());
    EXPECT_EQ(code, std::errc::destination_address_required) << code.message();
}

TEST_P(UdpTest, BindToPortInUseThrows) {
    std::error_code code;
    run_on_backend([&]() -> ut::task<> {
        auto a = ut::udp_socket::bind("127.0.0.1", 0);
        try {
            auto b = ut::udp_socket::bind("127.0.0.1", a.local_port());
        } catch (const std::system_error& e) {
            code = e.code();
        }
        co_return;
    }());
    EXPECT_EQ(code, std::errc::address_in_use) << code.message();
}

TEST_P(UdpTest, ConnectToEmptyHostThrowsInvalidArgument) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        auto s = ut::udp_socket::bind("127.0.0.1", 0);
        try {
            co_await s.connect("", 9);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
    }());
    EXPECT_TRUE(threw);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, UdpTest, ::testing::ValuesIn(suite_params()), backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, UdpTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
