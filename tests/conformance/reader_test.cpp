// buffered_reader over a real stream on every backend: lines split across
// writes, CRLF, the max-size guard, end of stream in mid-line, read_until,
// read_exact/read_some serving buffered bytes first, cancellation.

#include "conformance.hpp"

#include <uthreads/buffered_reader.hpp>
#include <uthreads/unix.hpp>

#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace uthreads_conformance {
namespace {

class ReaderTest : public backend_test {};  // NOLINT(readability-identifier-naming)

using opt = std::optional<std::string>;

std::string abstract_name() {
    static int counter = 0;
    return "@uthreads-reader-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

ut::task<std::pair<ut::unix_stream, ut::unix_stream>> connected_pair() {
    auto l = ut::unix_listener::bind(abstract_name());
    auto client = ut::spawn(ut::unix_stream::connect(l.path()), "connect");
    ut::unix_stream server = co_await l.accept();
    ut::unix_stream c = co_await client;
    co_return std::pair<ut::unix_stream, ut::unix_stream>(std::move(server), std::move(c));
}

/// Writes each piece separately (with a short pause, so the reader sees them
/// as separate reads), then closes the stream.
ut::task<void> write_pieces(ut::unix_stream s, std::vector<std::string> pieces) {
    for (const std::string& p : pieces) {
        co_await s.write_all(std::string_view(p));
        co_await ut::sleep_for(1ms);
    }
    s.close();  // now: the frame (and its parameters) lives until joined
}

TEST_P(ReaderTest, LinesSplitAcrossWrites) {
    std::vector<opt> got;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        auto w = ut::spawn(
            write_pieces(std::move(client), {"hel", "lo\nwor", "ld\r", "\n", "\n", "last\n"}));
        ut::buffered_reader r(server);
        for (int i = 0; i < 6; ++i) got.push_back(co_await r.read_line(100));
        co_await w;
    }());
    EXPECT_EQ(got, (std::vector<opt>{"hello", "world", "", "last", std::nullopt, std::nullopt}));
}

TEST_P(ReaderTest, CrlfAndLfEndLinesALoneCrIsData) {
    std::vector<opt> got;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        auto w = ut::spawn(write_pieces(std::move(client), {"a\r\nb\rc\n\r\nx\r\r\n"}));
        ut::buffered_reader r(server);
        for (int i = 0; i < 5; ++i) got.push_back(co_await r.read_line(100));
        co_await w;
    }());
    EXPECT_EQ(got, (std::vector<opt>{"a", "b\rc", "", "x\r", std::nullopt}));
}

TEST_P(ReaderTest, EndOfStreamInMidLineReturnsTheTailThenNullopt) {
    std::vector<opt> got;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        auto w = ut::spawn(write_pieces(std::move(client), {"one\ntw", "o\r"}));
        ut::buffered_reader r(server);
        for (int i = 0; i < 4; ++i) got.push_back(co_await r.read_line(100));
        co_await w;
    }());
    // The unterminated tail is returned as is (its "\r" is not a terminator).
    EXPECT_EQ(got, (std::vector<opt>{"one", "two\r", std::nullopt, std::nullopt}));
}

TEST_P(ReaderTest, LineLongerThanMaxThrowsAndLosesNothing) {
    std::vector<opt> before;
    std::string what, rest;
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        std::string long_line(1000, 'x');
        auto w = ut::spawn(write_pieces(
            std::move(client), {"short\n0123456789\r\n012345678", "9\n", long_line, "\nafter\n"}));
        ut::buffered_reader r(server, 64);
        before.push_back(co_await r.read_line(10));
        before.push_back(co_await r.read_line(10));  // exactly max, CRLF
        before.push_back(co_await r.read_line(10));  // exactly max, LF
        try {
            co_await r.read_line(10);
        } catch (const std::length_error& e) {
            threw = true;
            what = e.what();
        }
        // Bounded: the reader never buffered the whole long line.
        EXPECT_LE(r.buffered(), std::size_t{10 + 2 + 64});
        // Nothing was consumed: the rest of the stream is still readable.
        char buf[256];
        for (;;) {
            std::size_t n = co_await r.read_some(std::span<char>(buf));
            if (n == 0) break;
            rest.append(buf, n);
        }
        co_await w;
    }());
    EXPECT_EQ(before, (std::vector<opt>{"short", "0123456789", "0123456789"}));
    EXPECT_TRUE(threw);
    EXPECT_NE(what.find("10 bytes"), std::string::npos) << what;
    EXPECT_EQ(rest, std::string(1000, 'x') + "\nafter\n");
}

TEST_P(ReaderTest, TailLongerThanMaxAtEndOfStreamThrows) {
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        auto w = ut::spawn(write_pieces(std::move(client), {"abcdef"}));
        ut::buffered_reader r(server);
        try {
            co_await r.read_line(5);
        } catch (const std::length_error&) {
            threw = true;
        }
        co_await w;
    }());
    EXPECT_TRUE(threw);
}

TEST_P(ReaderTest, ReadUntilWithAMultiByteDelimiterSplitAcrossWrites) {
    std::vector<opt> got;
    bool threw = false;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        auto w = ut::spawn(
            write_pieces(std::move(client), {"GET / HTTP/1.1\r\nHost: x\r", "\n\r", "\n",
                                             "body\r\n\r\n", "0123456789abcdef\r\n\r\n"}));
        ut::buffered_reader r(server, 4);
        got.push_back(co_await r.read_until("\r\n\r\n", 100));
        got.push_back(co_await r.read_until("\r\n\r\n", 4));  // "body": exactly max
        try {
            co_await r.read_until("\r\n\r\n", 8);
        } catch (const std::length_error&) {
            threw = true;
        }
        got.push_back(co_await r.read_until("\r\n\r\n", 16));
        got.push_back(co_await r.read_until("\r\n\r\n", 16));
        co_await w;
    }());
    EXPECT_EQ(got, (std::vector<opt>{"GET / HTTP/1.1\r\nHost: x", "body", "0123456789abcdef",
                                     std::nullopt}));
    EXPECT_TRUE(threw);
}

TEST_P(ReaderTest, ReadExactAndReadSomeServeBufferedBytesFirst) {
    opt line;
    std::string exact, some, big, tail;
    bool eos = false;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        std::string payload(100000, 'p');
        auto w = ut::spawn(write_pieces(std::move(client), {"line\nBINARY12345", payload, "end"}));
        ut::buffered_reader r(server);
        line = co_await r.read_line(10);
        exact = co_await r.read_exact(6);
        char buf[5];
        std::size_t n = co_await r.read_some(std::span<char>(buf));
        some.assign(buf, n);
        big = co_await r.read_exact(100000);
        try {
            co_await r.read_exact(10);
        } catch (const ut::end_of_stream& e) {
            eos = e.bytes_read == 3;
        }
        co_await w;
    }());
    EXPECT_EQ(line, opt("line"));
    EXPECT_EQ(exact, "BINARY");
    EXPECT_EQ(some, "12345");
    EXPECT_EQ(big, std::string(100000, 'p'));
    EXPECT_TRUE(eos);
}

TEST_P(ReaderTest, CancelledReadLineLosesNothing) {
    opt got;
    bool read_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        ut::buffered_reader r(server);
        co_await client.write_all(std::string_view("par"));
        ut::event started;
        auto reader =
            ut::spawn([](ut::buffered_reader<ut::unix_stream>& rd, ut::event& st) -> ut::task<> {
                st.set();
                co_await rd.read_line(100);
                ADD_FAILURE() << "read_line returned although no line was complete";
            }(r, started));
        co_await started.wait();
        co_await ut::sleep_for(5ms);  // let it read "par" and park
        reader.cancel();
        read_cancelled = co_await join_expect_cancelled(reader);
        co_await client.write_all(std::string_view("tial\n"));
        got = co_await r.read_line(100);
    }());
    EXPECT_TRUE(read_cancelled);
    EXPECT_EQ(got, opt("partial"));
}

TEST_P(ReaderTest, OneMebibyteLineOverManyWrites) {
    std::size_t len = 0;
    run_on_backend([&]() -> ut::task<> {
        auto [server, client] = co_await connected_pair();
        auto w = ut::spawn([](ut::unix_stream s) -> ut::task<> {
            std::string chunk(4096, 'z');
            for (int i = 0; i < 256; ++i) co_await s.write_all(std::string_view(chunk));
            co_await s.write_all(std::string_view("\n"));
            s.close();
        }(std::move(client)));
        ut::buffered_reader r(server);
        opt line = co_await r.read_line(std::size_t{2} * 1024 * 1024);
        len = line ? line->size() : 0;
        co_await w;
    }());
    EXPECT_EQ(len, std::size_t{1024} * 1024);
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(AllBackends, ReaderTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, ReaderTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace uthreads_conformance
