// resolve(): names, numeric addresses and services, errors, cancellation;
// identical on every backend (getaddrinfo runs on the blocking pool).

#include "conformance.hpp"

#include <uthreads/dns.hpp>

#include <algorithm>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <vector>

namespace uthreads_conformance {
namespace {

class DnsTest : public backend_test {};  // NOLINT(readability-identifier-naming)

bool contains(const std::vector<ut::endpoint>& v, const std::string& s) {
    return std::any_of(v.begin(), v.end(),
                       [&](const ut::endpoint& e) { return e.to_string() == s; });
}

TEST_P(DnsTest, ResolvesNumericIPv4) {
    std::vector<ut::endpoint> r;
    run_on_backend([&]() -> ut::task<> { r = co_await ut::resolve("127.0.0.1", "80"); }());
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].family(), AF_INET);
    EXPECT_EQ(r[0].port(), 80);
    EXPECT_EQ(r[0].address(), "127.0.0.1");
    EXPECT_EQ(r[0].to_string(), "127.0.0.1:80");
}

TEST_P(DnsTest, ResolvesNumericIPv6) {
    std::vector<ut::endpoint> r;
    run_on_backend([&]() -> ut::task<> { r = co_await ut::resolve("::1", "8080"); }());
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].family(), AF_INET6);
    EXPECT_EQ(r[0].port(), 8080);
    EXPECT_EQ(r[0].address(), "::1");
    EXPECT_EQ(r[0].to_string(), "[::1]:8080");
}

TEST_P(DnsTest, ResolvesLocalhostToLoopbackOnce) {
    std::vector<ut::endpoint> r;
    run_on_backend([&]() -> ut::task<> { r = co_await ut::resolve("localhost", "443"); }());
    ASSERT_FALSE(r.empty());
    EXPECT_TRUE(contains(r, "127.0.0.1:443") || contains(r, "[::1]:443"));
    for (const auto& e : r) {
        EXPECT_EQ(e.port(), 443);
        EXPECT_EQ(std::count(r.begin(), r.end(), e), 1) << e.to_string() << " listed twice";
    }
}

TEST_P(DnsTest, EmptyEndpoint) {
    ut::endpoint e;
    EXPECT_EQ(e.family(), AF_UNSPEC);
    EXPECT_EQ(e.port(), 0);
    EXPECT_EQ(e.size(), 0u);
    EXPECT_EQ(e.to_string(), "?");
}

TEST_P(DnsTest, InvalidNameThrowsSystemErrorNamingIt) {
    bool threw = false;
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            // .invalid is reserved (RFC 6761): never resolves, and answered
            // without asking the network by a conforming resolver.
            co_await ut::resolve("no-such-host.invalid", "80");
        } catch (const std::system_error& e) {
            threw = true;
            what = e.what();
        }
    }());
    EXPECT_TRUE(threw);
    EXPECT_NE(what.find("no-such-host.invalid:80"), std::string::npos) << what;
}

TEST_P(DnsTest, InvalidServiceThrowsSystemError) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::resolve("127.0.0.1", "no-such-service-xyz");
        } catch (const std::system_error&) {
            threw = true;
        }
    }());
    EXPECT_TRUE(threw);
}

TEST_P(DnsTest, CancelledBeforeItStartsThrowsCancelled) {
    bool was_cancelled = false;
    std::vector<ut::endpoint> result;
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn(ut::resolve("localhost", "80"), "resolver");
        h.cancel();  // on one worker: before it ran, so its first checkpoint throws
        if (workers() == 1) {
            was_cancelled = co_await join_expect_cancelled(h);
            co_return;
        }
        // With several workers an idle worker may have started it before the
        // cancel (docs/threads.md): then, as under a deadline, either the cancel
        // reached resolve before getaddrinfo started, or the call ran to the end
        // and its complete result is returned.
        try {
            result = co_await h;
        } catch (const ut::cancelled&) {
            was_cancelled = true;
        }
    }());
    if (workers() == 1 || was_cancelled) {
        EXPECT_TRUE(was_cancelled);
        EXPECT_TRUE(result.empty());
    } else {
        ASSERT_FALSE(result.empty());
        EXPECT_TRUE(contains(result, "127.0.0.1:80") || contains(result, "[::1]:80"));
    }
}

TEST_P(DnsTest, UnderWithTimeout) {
    std::vector<ut::endpoint> generous;
    int timeouts = 0, complete = 0, other = 0;
    run_on_backend([&]() -> ut::task<> {
        generous = co_await ut::with_timeout(30s, ut::resolve("127.0.0.1", "53"));
        // A deadline that may pass during getaddrinfo: as documented, either the
        // deadline reached resolve before it started (timeout_error), or the
        // call ran to the end and its complete result is returned.
        for (int i = 0; i < 20; ++i) {
            try {
                auto r = co_await ut::with_timeout(std::chrono::microseconds(i * 50),
                                                   ut::resolve("localhost", "53"));
                if (!r.empty() && r[0].port() == 53)
                    ++complete;
                else
                    ++other;
            } catch (const ut::timeout_error&) {
                ++timeouts;
            }
        }
        // The runtime and the pool still work.
        auto again = co_await ut::resolve("127.0.0.1", "54");
        EXPECT_EQ(again.size(), 1u);
    }());
    ASSERT_EQ(generous.size(), 1u);
    EXPECT_EQ(generous[0].to_string(), "127.0.0.1:53");
    EXPECT_EQ(timeouts + complete, 20);
    EXPECT_EQ(other, 0);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, DnsTest, ::testing::ValuesIn(suite_params()), backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, DnsTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
