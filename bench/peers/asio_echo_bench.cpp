// asio_echo_bench — peer for the echo rows of bench_backends: a TCP echo server
// written idiomatically with Boost.Asio (1.81) C++20 coroutines — co_spawn per
// connection, async_read_some / async_write with use_awaitable — on a
// single-threaded io_context (concurrency hint 1), measured by the same client and
// meter (bench/echo_client.hpp). Rows are labelled @asio_coro. With --threads N
// (N > 1) the io_context (concurrency hint N) is run by N threads — this one and
// N - 1 others; a connection's coroutine runs on whichever of them Asio picks —
// and rows are labelled @asio_coro_<N>t.
//
// Facts about Asio this relies on: io_context::stop() is thread-safe (the meter
// thread calls it); destroying the io_context destroys the suspended accept loop's
// coroutine frame, which closes the acceptor. End of stream arrives as an exception
// (asio::error::eof) from async_read_some, once per connection, not per message.
//
// Output: RESULT echo_d<depth>_{msgs_per_s,user_ns,cpu_ns}@<label> lines on stdout.
// Usage: asio_echo_bench [--threads N] [echo options] (see echo_client.hpp).

#include "echo_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/version.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

awaitable<void> echo(tcp::socket s) {
    char buf[echo_bench::server_buffer_size];
    try {
        for (;;) {
            std::size_t n = co_await s.async_read_some(asio::buffer(buf), use_awaitable);
            co_await asio::async_write(s, asio::buffer(buf, n), use_awaitable);
        }
    } catch (const boost::system::system_error&) {
        // End of stream or a reset: the connection is done.
    }
}

awaitable<void> listen(tcp::acceptor& acceptor) {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
        tcp::socket s = co_await acceptor.async_accept(use_awaitable);
        s.set_option(tcp::no_delay(true));
        asio::co_spawn(ex, echo(std::move(s)), asio::detached);
    }
}

// Threads running the io_context (--threads).
int g_threads = 1;

std::string label() {
    return g_threads == 1 ? "asio_coro" : "asio_coro_" + std::to_string(g_threads) + "t";
}

std::vector<echo_bench::depth_result> run(echo_bench::client_process& client,
                                          const echo_bench::config& cfg) {
    asio::io_context io(g_threads);  // concurrency hint: the number of threads running it
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    echo_bench::session meter(client, acceptor.local_endpoint().port(), cfg, label(),
                              [&io] { io.stop(); });
    asio::co_spawn(io, listen(acceptor), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    // Every run() returns once the meter thread called io.stop().
    std::vector<std::thread> others;
    for (int i = 1; i < g_threads; ++i) others.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : others) t.join();
    return meter.finish();
}

}  // namespace

int main(int argc, char** argv) {
    // --threads N is ours; everything else goes to peer_main (the echo options).
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) != "--threads") {
            rest.push_back(argv[i]);
            continue;
        }
        char* end = nullptr;
        long n = i + 1 < argc ? std::strtol(argv[i + 1], &end, 10) : 0;
        if (i + 1 >= argc || *end != '\0' || n < 1 || n > 64) {
            std::fprintf(stderr, "asio_echo_bench: --threads: expected 1 to 64, got '%s'\n",
                         i + 1 < argc ? argv[i + 1] : "");
            return 2;
        }
        g_threads = static_cast<int>(n);
        ++i;
    }
    const std::string banner =
        "Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
        std::to_string(BOOST_VERSION / 100 % 1000) + "." + std::to_string(BOOST_VERSION % 100) +
        (g_threads == 1 ? std::string(", single-threaded io_context")
                        : ", io_context run by " + std::to_string(g_threads) + " threads");
    return echo_bench::peer_main(static_cast<int>(rest.size()), rest.data(), "asio_echo_bench",
                                 label(), banner, run);
}
