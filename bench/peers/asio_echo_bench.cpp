// asio_echo_bench — peer for the echo rows of bench_backends: a TCP echo server
// written idiomatically with Boost.Asio (1.81) C++20 coroutines — co_spawn per
// connection, async_read_some / async_write with use_awaitable — on a
// single-threaded io_context (concurrency hint 1), measured by the same client and
// meter (bench/echo_client.hpp). Rows are labelled @asio_coro.
//
// Facts about Asio this relies on: io_context::stop() is thread-safe (the meter
// thread calls it); destroying the io_context destroys the suspended accept loop's
// coroutine frame, which closes the acceptor. End of stream arrives as an exception
// (asio::error::eof) from async_read_some, once per connection, not per message.
//
// Output: RESULT echo_d<depth>_{msgs_per_s,user_ns,cpu_ns}@asio_coro lines on stdout.
// Usage: asio_echo_bench [echo options] (see echo_client.hpp).

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
#include <exception>
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

std::vector<echo_bench::depth_result> run(echo_bench::client_process& client,
                                          const echo_bench::config& cfg) {
    asio::io_context io(1);  // concurrency hint 1: single-threaded
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    echo_bench::session meter(client, acceptor.local_endpoint().port(), cfg, "asio_coro",
                              [&io] { io.stop(); });
    asio::co_spawn(io, listen(acceptor), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run();  // returns once the meter thread called io.stop()
    return meter.finish();
}

}  // namespace

int main(int argc, char** argv) {
    const std::string banner = "Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
                               std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                               std::to_string(BOOST_VERSION % 100) + ", single-threaded io_context";
    return echo_bench::peer_main(argc, argv, "asio_echo_bench", "asio_coro", banner, run);
}
