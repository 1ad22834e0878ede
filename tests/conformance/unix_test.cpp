// Unix domain stream sockets, identical on every backend: filesystem and
// abstract names, echo of several sizes, end of stream, errors, cancellation,
// and the socket-file rules documented in uthreads/unix.hpp.

#include "conformance.hpp"
#include "io_helpers.hpp"

#include <uthreads/unix.hpp>

#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>
#include <tuple>
#include <vector>

namespace uthreads_conformance {
namespace {

class UnixTest : public backend_test {};  // NOLINT(readability-identifier-naming)

namespace fs = std::filesystem;


std::string abstract_name() {
    static int counter = 0;
    return "@uthreads-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}


ut::task<std::pair<ut::unix_stream, ut::unix_stream>> connected_pair(ut::unix_listener& l) {
    auto client = ut::spawn(ut::unix_stream::connect(l.path()), "connect");
    ut::unix_stream server = co_await l.accept();
    ut::unix_stream c = co_await client;
    co_return std::pair<ut::unix_stream, ut::unix_stream>(std::move(server), std::move(c));
}

ut::task<std::vector<std::byte>> read_to_end(ut::unix_stream& s) {
    std::vector<std::byte> out;
    std::vector<std::byte> buf(std::size_t{16} * 1024);
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<std::byte>(buf));
        if (n == 0) co_return out;
        out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
}

/// Echo every size through a listener bound at `name`; returns how many matched.
ut::task<int> echo_sizes(std::string name) {
    auto l = ut::unix_listener::bind(name);
    int matched = 0;
    const std::vector<std::size_t> sizes{1, 1000, std::size_t{64} * 1024, std::size_t{1024} * 1024};
    for (std::size_t size : sizes) {
        auto [server, client] = co_await connected_pair(l);
        auto echo = ut::spawn([](ut::unix_stream s) -> ut::task<> {
            std::vector<std::byte> buf(8192);
            for (;;) {
                std::size_t n = co_await s.read_some(std::span<std::byte>(buf));
                if (n == 0) break;
                co_await s.write_all(std::span<const std::byte>(buf.data(), n));
            }
            s.shutdown_write();
        }(std::move(server)));
        std::vector<std::byte> data = pattern(size, static_cast<unsigned>(size));
        auto writer =
            ut::spawn([](ut::unix_stream& c, const std::vector<std::byte>& d) -> ut::task<> {
                co_await c.write_all(std::span<const std::byte>(d));
                c.shutdown_write();
            }(client, data));
        std::vector<std::byte> back = co_await read_to_end(client);
        co_await writer;
        co_await echo;
        EXPECT_EQ(back.size(), size);
        if (back == data) ++matched;
    }
    co_return matched;
}

TEST_P(UnixTest, EchoRoundTripOnAFilesystemPath) {
    temp_dir dir("uthreads-unix");
    int matched = run_on_backend(echo_sizes(dir.file("echo.sock")));
    EXPECT_EQ(matched, 4);
}

TEST_P(UnixTest, EchoRoundTripOnAnAbstractName) {
    int matched = run_on_backend(echo_sizes(abstract_name()));
    EXPECT_EQ(matched, 4);
}

TEST_P(UnixTest, ReadSomeReturnsZeroAndReadExactThrowsAtEndOfStream) {
    std::size_t zero = 99, eos_got = 0;
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::unix_listener::bind(abstract_name());
        {
            auto [server, client] = co_await connected_pair(l);
            client.close();
            char buf[8];
            zero = co_await server.read_some(std::span<char>(buf));
        }
        auto [server, client] = co_await connected_pair(l);
        co_await client.write_all(std::string_view("abc"));
        client.shutdown_write();
        char buf[8];
        try {
            co_await server.read_exact(std::span<char>(buf));
        } catch (const ut::end_of_stream& e) {
            threw = true;
            eos_got = e.bytes_read;
        }
    }());
    EXPECT_EQ(zero, 0u);
    EXPECT_TRUE(threw);
    EXPECT_EQ(eos_got, 3u);
}

TEST_P(UnixTest, ConnectToAMissingPathThrowsEnoent) {
    temp_dir dir("uthreads-unix");
    std::error_code code;
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::unix_stream::connect(dir.file("nobody.sock"));
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
    }());
    EXPECT_EQ(code, std::errc::no_such_file_or_directory) << code.message();
    EXPECT_NE(what.find("nobody.sock"), std::string::npos) << what;
}

TEST_P(UnixTest, ConnectToAnUnboundAbstractNameIsRefused) {
    std::error_code code;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::unix_stream::connect(abstract_name());
        } catch (const std::system_error& e) {
            code = e.code();
        }
    }());
    EXPECT_EQ(code, std::errc::connection_refused) << code.message();
}

TEST_P(UnixTest, BadPathsThrowInvalidArgument) {
    int invalid = 0;
    run_on_backend([&]() -> ut::task<> {
        const std::vector<std::string> bad{std::string(), std::string(200, 'x')};
        for (const std::string& p : bad) {
            try {
                co_await ut::unix_stream::connect(p);
            } catch (const std::invalid_argument&) {
                ++invalid;
            }
            try {
                ut::unix_listener::bind(p);
            } catch (const std::invalid_argument&) {
                ++invalid;
            }
        }
    }());
    EXPECT_EQ(invalid, 4);
}

TEST_P(UnixTest, CancelledReadLosesNothing) {
    std::string got;
    bool read_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::unix_listener::bind(abstract_name());
        auto [server, client] = co_await connected_pair(l);
        // The stream stays usable and the cancelled read consumed no byte.
        std::tie(read_cancelled, got) = co_await cancel_parked_read_then_exchange(server, client);
    }());
    EXPECT_TRUE(read_cancelled);
    EXPECT_EQ(got, "after");
}

TEST_P(UnixTest, AcceptWithTimeoutThenAccepts) {
    bool timed_out = false;
    std::string peer;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::unix_listener::bind(abstract_name());
        try {
            co_await ut::with_timeout(20ms, l.accept());
        } catch (const ut::timeout_error&) {
            timed_out = true;
        }
        auto [server, client] = co_await connected_pair(l);
        EXPECT_TRUE(server.is_open());
        peer = client.peer();
        EXPECT_EQ(peer, l.path());
    }());
    EXPECT_TRUE(timed_out);
}

TEST_P(UnixTest, ListenerRemovesItsSocketFileOnClose) {
    temp_dir dir("uthreads-unix");
    std::string path = dir.file("l.sock");
    bool existed = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::unix_listener::bind(path);
        existed = fs::is_socket(path);
        auto [server, client] = co_await connected_pair(l);
        l.close();
        l.close();  // idempotent
        // Closing the listener leaves accepted streams working.
        co_await client.write_all(std::string_view("x"));
        char c = 0;
        co_await server.read_exact(std::span<char>(&c, 1));
        EXPECT_EQ(c, 'x');
    }());
    EXPECT_TRUE(existed);
    EXPECT_FALSE(fs::exists(path));
}

/// Leave a socket file nobody listens on, as a crashed server does.
void make_stale_socket(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path.copy(a.sun_path, sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
}

TEST_P(UnixTest, StaleSocketFileIsReplacedOnlyWhenAsked) {
    temp_dir dir("uthreads-unix");
    std::string path = dir.file("stale.sock");
    make_stale_socket(path);
    std::error_code without_flag, stale_connect;
    std::string got;
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::unix_stream::connect(path);
        } catch (const std::system_error& e) {
            stale_connect = e.code();
        }
        try {
            ut::unix_listener::bind(path);
        } catch (const std::system_error& e) {
            without_flag = e.code();
        }
        auto l = ut::unix_listener::bind(path, {.unlink_stale = true});
        auto [server, client] = co_await connected_pair(l);
        co_await client.write_all(std::string_view("ok"));
        std::string buf(2, '\0');
        co_await server.read_exact(std::span<char>(buf));
        got = buf;
    }());
    EXPECT_EQ(stale_connect, std::errc::connection_refused) << stale_connect.message();
    EXPECT_EQ(without_flag, std::errc::address_in_use) << without_flag.message();
    EXPECT_EQ(got, "ok");
    EXPECT_FALSE(fs::exists(path));
}

TEST_P(UnixTest, UnlinkStaleNeverRemovesALiveSocketOrAPlainFile) {
    temp_dir dir("uthreads-unix");
    std::string live = dir.file("live.sock"), plain = dir.file("plain");
    std::ofstream(plain) << "keep me";
    std::error_code live_code, plain_code;
    bool live_still_works = false;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::unix_listener::bind(live);
        try {
            ut::unix_listener::bind(live, {.unlink_stale = true});
        } catch (const std::system_error& e) {
            live_code = e.code();
        }
        try {
            ut::unix_listener::bind(plain, {.unlink_stale = true});
        } catch (const std::system_error& e) {
            plain_code = e.code();
        }
        auto [server, client] = co_await connected_pair(l);
        live_still_works = server.is_open();
    }());
    EXPECT_EQ(live_code, std::errc::address_in_use) << live_code.message();
    EXPECT_EQ(plain_code, std::errc::address_in_use) << plain_code.message();
    EXPECT_TRUE(live_still_works);
    EXPECT_TRUE(fs::is_regular_file(plain));
}

TEST_P(UnixTest, AbstractNameHasNoFileAndIsExclusive) {
    std::string name = abstract_name();
    std::error_code second;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::unix_listener::bind(name);
        EXPECT_EQ(l.path(), name);
        try {
            ut::unix_listener::bind(name);
        } catch (const std::system_error& e) {
            second = e.code();
        }
        co_return;
    }());
    EXPECT_EQ(second, std::errc::address_in_use) << second.message();
    EXPECT_FALSE(fs::exists(name));
    EXPECT_FALSE(fs::exists(name.substr(1)));
}

TEST_P(UnixTest, BindOutsideRuntimeThenServeInside) {
    auto l = ut::unix_listener::bind(abstract_name());
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
    l.close();
    EXPECT_EQ(got, "hello");
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(AllBackends, UnixTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, UnixTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace uthreads_conformance
