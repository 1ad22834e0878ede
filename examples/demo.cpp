// demo — `make demo`: one small network protocol, written once as coroutines, run
// unchanged on every backend compiled into this build.
//
// The protocol is a line echo: the client sends a line of 64 bytes (63 characters
// and '\n'), the server sends every complete line back. For each backend the demo
// runs one server microthread (ut::serve_tcp: one microthread per connection) and
// 1,000 client microthreads on 127.0.0.1, each doing 20 round trips, and prints
// throughput, latency percentiles and the number of microthreads it spawned.
//
// Clocks: throughput and latencies are measured with std::chrono::steady_clock on
// every backend, so the rows compare. ut::now() is the runtime's own clock — real
// time on "epoll", virtual time on "sim" — and is shown per row as "runtime clock"
// (the same program, measuring the same interval, on each backend's clock).
//
// Exit status: 0 if every reply matched its request byte for byte on every backend.

#include <uthreads/uthreads.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

namespace ut = uthreads;
using namespace std::chrono_literals;
using wall_clock = std::chrono::steady_clock;

namespace {

int g_clients = 1000;
constexpr int kRounds = 20;
constexpr std::size_t kMessageSize = 64;

/// What one backend's run measured.
struct run_stats {
    std::string backend;
    std::vector<double> latency_us;  // one entry per round trip (wall clock)
    long wrong_replies = 0;
    long spawned = 0;  // microthreads started, the main one included
    double wall_s = 0;
    double runtime_clock_ms = 0;  // the same interval on ut::now()
};

// ------------------------------------------------------------------ the protocol
// Server side: echo every complete line. One microthread per connection.
ut::task<> echo_session(ut::tcp_stream s, run_stats& st) {
    ++st.spawned;  // serve_tcp spawned this microthread
    std::string pending;
    char buf[4096];
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) break;  // the client shut down its sending side
        pending.append(buf, n);
        std::size_t end = pending.rfind('\n');
        if (end == std::string::npos) continue;
        co_await s.write_all(std::string_view(pending).substr(0, end + 1));
        pending.erase(0, end + 1);
    }
    s.close();
}

// Client side: `rounds` request/response round trips over one connection.
void format_request(std::string& line, int client, int round) {
    line.assign(kMessageSize - 1, '.');
    int n = std::snprintf(line.data(), line.size(), "client %04d round %02d ", client, round);
    line[static_cast<std::size_t>(n)] = ' ';  // overwrite snprintf's terminator
    line.push_back('\n');
}

ut::task<> client(std::uint16_t port, int id, run_stats& st) {
    ut::tcp_stream s = co_await ut::tcp_stream::connect("127.0.0.1", port);
    std::string request;
    std::string reply(kMessageSize, '\0');
    for (int r = 0; r < kRounds; ++r) {
        format_request(request, id, r);
        auto t0 = wall_clock::now();
        co_await s.write_all(request);
        co_await s.read_exact(std::span<char>(reply));
        st.latency_us.push_back(
            std::chrono::duration<double, std::micro>(wall_clock::now() - t0).count());
        if (reply != request) {
            if (st.wrong_replies++ == 0)
                std::fprintf(stderr, "demo: client %d round %d: wrong reply\n  sent %s  got  %s",
                             id, r, request.c_str(), reply.c_str());
        }
    }
    // Say goodbye: the server sees end of stream, and so do we.
    s.shutdown_write();
    char c;
    if (co_await s.read_some(std::span<char>(&c, 1)) != 0) ++st.wrong_replies;
    s.close();
}

// ------------------------------------------------------------------ one backend
ut::task<> run_demo(run_stats& st) {
    st.backend = ut::current_backend();
    st.spawned = 1;  // this, the main microthread
    auto listener = ut::tcp_listener::bind("127.0.0.1", 0);
    const std::uint16_t port = listener.port();
    auto server = ut::spawn(
        ut::serve_tcp(listener, [&st](ut::tcp_stream s) { return echo_session(std::move(s), st); }),
        "echo server");
    ++st.spawned;

    auto w0 = wall_clock::now();
    auto r0 = ut::now();
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int i = 0; i < g_clients; ++i) {
            n.spawn(client(port, i, st), "client");
            ++st.spawned;
        }
        co_return;
    });
    st.wall_s = std::chrono::duration<double>(wall_clock::now() - w0).count();
    st.runtime_clock_ms = std::chrono::duration<double, std::milli>(ut::now() - r0).count();

    server.cancel();
    try {
        co_await server;
    } catch (const ut::cancelled&) {
        // The expected way for a server to stop.
    }
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// Each client and each server session holds one descriptor: make sure we may open
// them all, or run fewer clients and say so.
void ensure_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    const rlim_t need = static_cast<rlim_t>(2 * g_clients + 64);
    if (rl.rlim_cur < need) {
        rl.rlim_cur = std::min(need, rl.rlim_max);
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        g_clients = static_cast<int>((rl.rlim_cur - 64) / 2);
        std::fprintf(stderr, "demo: descriptor limit %llu: running %d clients instead of 1000\n",
                     static_cast<unsigned long long>(rl.rlim_cur), g_clients);
    }
}

}  // namespace

int main() {
    ensure_fd_limit();
    std::printf("uthreads demo: one line-echo protocol (server handler + client), written once as\n"
                "coroutines, run unchanged on every backend. Per backend: 1 server microthread\n"
                "(ut::serve_tcp, one microthread per connection) and %d client microthreads on\n"
                "127.0.0.1, each doing %d request/response round trips of %zu-byte lines.\n"
                "\n"
                "  messages/s     round trips completed per wall-clock second (all clients)\n"
                "  p50/p99        one round trip as a client sees it, wall clock (steady_clock);\n"
                "                 with every client busy at once this is mostly queueing\n"
                "  microthreads   spawned in the run: main + server + clients + server sessions\n"
                "  runtime clock  the same run timed with ut::now(): real time on epoll,\n"
                "                 virtual time on sim (it advances only to due timers)\n"
                "\n",
                g_clients, kRounds, kMessageSize);
    std::printf("%-8s | %12s | %16s | %16s | %20s | %18s\n", "backend", "messages/s",
                "p50 latency (µs)", "p99 latency (µs)", "microthreads spawned",
                "runtime clock (ms)");
    std::printf("---------+--------------+------------------+------------------+-------------------"
                "---+-------------------\n");
    std::fflush(stdout);

    int status = 0;
    for (const std::string& name : ut::available_backends()) {
        run_stats st;
        ut::options opts;
        opts.backend = name;
        try {
            ut::run(run_demo(st), opts);
        } catch (const std::exception& e) {
            std::printf("%-8s | failed: %s\n", name.c_str(), e.what());
            status = 1;
            continue;
        } catch (const ut::cancelled&) {
            std::printf("%-8s | failed: main microthread cancelled\n", name.c_str());
            status = 1;
            continue;
        }
        const auto expected = static_cast<std::size_t>(g_clients) * kRounds;
        const double msgs =
            st.wall_s > 0 ? static_cast<double>(st.latency_us.size()) / st.wall_s : 0;
        const double p50 = percentile(st.latency_us, 0.50);
        const double p99 = percentile(st.latency_us, 0.99);
        std::printf("%-8s | %12.0f | %16.1f | %16.1f | %20ld | %18.3f\n", st.backend.c_str(), msgs,
                    p50, p99, st.spawned, st.runtime_clock_ms);
        std::fflush(stdout);
        if (st.wrong_replies != 0 || st.latency_us.size() != expected) {
            std::fprintf(stderr, "demo: %s: %ld wrong replies, %zu of %zu round trips completed\n",
                         name.c_str(), st.wrong_replies, st.latency_us.size(), expected);
            status = 1;
        }
    }
    if (status == 0) std::printf("\nall replies matched their requests byte for byte.\n");
    return status;
}
