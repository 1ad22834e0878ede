// asio_guest — microthreads inside an ordinary Boost.Asio program.
//
// The program owns an io_context and runs it with io.run(), as any Asio program
// does. uthreads is attached to it as a guest, and plain Asio handlers and
// microthreads share the one loop:
//   1. a steady_timer handler completes a ut::promise that a microthread awaits,
//      and spawns another microthread from host code;
//   2. a microthread echo server (one microthread per connection) is talked to
//      by plain Asio clients: async_connect, then async_write and async_read at
//      the same time (one payload is large, so both sides wait to write);
//   3. microthreads' results reach host callbacks through spawn_then, and one of
//      those callbacks posts a plain Asio handler.
// io.run() returns once nothing is left to do (microthreads waiting for I/O or
// sleeping count as work, like pending Asio operations), the guest shuts down,
// and every result is checked. Exits non-zero if any check fails.
#include <uthreads/backends/asio.hpp>
#include <uthreads/uthreads.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace ut = uthreads;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what.c_str());
    if (!ok) ++failures;
}

// ---- microthreads -------------------------------------------------------------

// Awaits what the host's timer handler delivers.
ut::task<int> double_the_answer(ut::future<int> answer) {
    int v = co_await answer;  // suspends until the steady_timer handler runs
    std::printf("microthread: the Asio timer delivered %d\n", v);
    co_return 2 * v;
}

// Spawned from a host handler; sleeps on the guest's timer.
ut::task<int> slow_square(int x) {
    co_await ut::sleep_for(5ms);
    co_return x* x;
}

ut::task<std::size_t> echo(ut::tcp_stream s) {
    std::size_t total = 0;
    char buf[4096];
    while (std::size_t n = co_await s.read_some(std::span<char>(buf))) {
        co_await s.write_all(std::string_view(buf, n));
        total += n;
    }
    co_return total;
}

// Serves `clients` connections, each in its own microthread; returns the bytes echoed.
ut::task<std::size_t> echo_server(ut::tcp_listener& listener, int clients) {
    std::vector<ut::join_handle<std::size_t>> sessions;
    for (int i = 0; i < clients; ++i)
        sessions.push_back(ut::spawn(echo(co_await listener.accept()), "echo-session"));
    std::size_t total = 0;
    for (auto& h : sessions) total += co_await h;
    co_return total;
}

// ---- a plain Asio client --------------------------------------------------------

struct asio_client : std::enable_shared_from_this<asio_client> {
    asio_client(asio::io_context& io, std::string msg, std::vector<std::string>& results)
        : sock(io)
        , out(std::move(msg))
        , in(out.size(), '\0')
        , results(results) {}

    void start(const asio::ip::tcp::endpoint& server) {
        sock.async_connect(server, [self =
                                        shared_from_this()](const boost::system::error_code& ec) {
            if (ec) return self->fail("connect", ec);
            // Write and read at once: the echo comes back while we still send.
            asio::async_write(self->sock, asio::buffer(self->out),
                              [self](const boost::system::error_code& ec, std::size_t) {
                                  if (ec) return self->fail("write", ec);
                              });
            asio::async_read(self->sock, asio::buffer(self->in),
                             [self](const boost::system::error_code& ec, std::size_t) {
                                 if (ec) return self->fail("read", ec);
                                 self->results.push_back(self->in == self->out ? "match"
                                                                               : "mismatch");
                                 self->sock.close();  // the server's session reads end of stream
                             });
        });
    }
    void fail(const char* what, const boost::system::error_code& ec) {
        results.push_back(std::string(what) + ": " + ec.message());
        sock.close();
    }

    asio::ip::tcp::socket sock;
    std::string out, in;
    std::vector<std::string>& results;
};

}  // namespace

int main() {
    auto t0 = std::chrono::steady_clock::now();
    asio::io_context io;
    ut::tcp_listener listener = ut::tcp_listener::bind("127.0.0.1", 0);
    ut::guest_runtime guest = ut::attach(io);
    std::printf("attached a guest runtime (backend \"%s\") to an io_context\n",
                std::string(guest.backend_name()).c_str());

    // 1. A host timer completes a promise; its handler also spawns a microthread.
    ut::promise<int> answer;
    int doubled = 0, squared = 0;
    bool posted_ran = false;
    guest.spawn_then(double_the_answer(answer.get_future()), [&](ut::outcome<int> r) {
        doubled = r.value();
        std::printf("host callback: the microthread returned %d\n", doubled);
        // Host code again: hand the next step to a plain Asio handler.
        asio::post(io, [&] { posted_ran = true; });
    });
    asio::steady_timer timer(io, 10ms);
    timer.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        std::printf("host timer handler: completing the promise, spawning a microthread\n");
        answer.set_value(21);
        guest.spawn_then(slow_square(7), [&](ut::outcome<int> r) { squared = r.value(); });
    });

    // 2. A microthread echo server and plain Asio clients.
    std::vector<std::string> messages = {"hello from asio", std::string(64 * 1024, 'x'),
                                         std::string(512 * 1024, 'y')};
    std::size_t expected_bytes = 0;
    for (const auto& m : messages) expected_bytes += m.size();
    std::size_t echoed = 0;
    bool server_failed = false;
    guest.spawn_then(
        echo_server(listener, static_cast<int>(messages.size())),
        [&](ut::outcome<std::size_t> r) {
            if (r.has_value())
                echoed = r.value();
            else
                server_failed = true;
        },
        "echo-server");
    std::vector<std::string> results;
    asio::ip::tcp::endpoint server(asio::ip::make_address("127.0.0.1"), listener.port());
    for (const auto& m : messages) std::make_shared<asio_client>(io, m, results)->start(server);

    io.run();  // returns when host handlers and microthreads have all finished

    std::size_t left = guest.live();
    guest.shutdown();
    auto elapsed = std::chrono::steady_clock::now() - t0;

    std::printf("checks:\n");
    check(doubled == 42,
          "a timer handler's promise reached a microthread, its result a host callback");
    check(posted_ran, "the spawn_then callback posted a plain Asio handler, which ran");
    check(squared == 49, "a microthread spawned from a host handler slept and returned");
    check(results.size() == messages.size(), "every Asio client finished");
    for (std::size_t i = 0; i < results.size(); ++i)
        check(results[i] == "match", "Asio client " + std::to_string(i) + ": " + results[i]);
    check(!server_failed && echoed == expected_bytes,
          "the echo server echoed " + std::to_string(echoed) + " of " +
              std::to_string(expected_bytes) + " bytes");
    check(left == 0, "io.run() returned with no microthread left");
    check(!guest.attached(), "the guest detached on shutdown");
    check(elapsed < 2s, "done in under 2 s");
    if (failures) {
        std::printf("%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("all checks passed\n");
    return 0;
}
