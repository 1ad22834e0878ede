// TCP against peers outside the runtime, on every backend: Debian's socat as a
// client of our server and as a server for our client (a real, independently
// written TCP implementation at the other end), and an accept loop running out
// of descriptors (RLIMIT_NOFILE = 64) under a flood of connections from a
// separate process: it must back off instead of spinning, and accept again
// once descriptors are freed.
//
// Subprocesses are started here with posix_spawn / fork directly, not with the
// library's process API, so that these tests depend on TCP alone.

#include "conformance.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <netinet/in.h>
#include <random>
#include <span>
#include <spawn.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class TcpPeerTest : public backend_test {  // NOLINT(readability-identifier-naming)
protected:
    void out_of_descriptors(bool measure_cpu);
};

/// The CPU bound needs a clock that moves while the acceptor is backing off; a
/// virtual clock jumps over the back-off sleeps whenever the loop is idle, so
/// there the "sleeping" acceptor runs flat out by design.
constexpr const char* needs_real_clock =
    "needs capability: real clock (virtual time jumps over the accept back-off sleeps)";

constexpr const char* socat_path = "/usr/bin/socat";

/// Start `argv` with `stdio_fd` as its stdin and stdout (or /dev/null for both
/// if it is -1). Returns the pid, or -1 with the error recorded as a failure.
pid_t spawn_child(const std::vector<std::string>& argv, int stdio_fd) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdio_fd >= 0) {
        posix_spawn_file_actions_adddup2(&fa, stdio_fd, 0);
        posix_spawn_file_actions_adddup2(&fa, stdio_fd, 1);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    }
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
        return -1;
    }
    return pid;
}

/// Wait (on the blocking pool, so the loop keeps running) for `pid` to exit;
/// kill it if it has not after 20 s. Returns the raw wait status.
ut::task<int> reap(pid_t pid) {
    co_return co_await ut::to_thread([pid] {
        int status = 0;
        auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            pid_t r = ::waitpid(pid, &status, WNOHANG);
            if (r == pid || (r < 0 && errno != EINTR)) return status;
            if (std::chrono::steady_clock::now() - t0 > 20s) {
                ADD_FAILURE() << "child " << pid << " did not exit: killed";
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
                return status;
            }
            std::this_thread::sleep_for(5ms);
        }
    });
}

template <class Stream>
ut::task<std::string> read_all(Stream& s) {
    std::string out;
    char buf[4096];
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) co_return out;
        out.append(buf, n);
    }
}

TEST_P(TcpPeerTest, SocatClientTalksToOurServer) {
    std::string reply;
    int status = -1;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        // A line protocol on serve_tcp: each line comes back numbered.
        auto server = ut::spawn(ut::serve_tcp(l,
                                              [](ut::tcp_stream s) -> ut::task<> {
                                                  ut::buffered_reader r(s);
                                                  int n = 0;
                                                  while (auto line = co_await r.read_line(1024))
                                                      co_await s.write_all(std::to_string(++n) +
                                                                           ": " + *line + "\n");
                                              }),
                                "server");
        // socat's stdin and stdout are one end of a socket pair; we hold the other.
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            ADD_FAILURE() << "socketpair: " << std::strerror(errno);
            co_return;
        }
        ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);
        pid_t pid = spawn_child(
            {socat_path, "-t", "10", "-", "TCP:127.0.0.1:" + std::to_string(l.port())}, sv[1]);
        ::close(sv[1]);
        ut::unix_stream io(sv[0], "socat stdio");
        if (pid > 0) {
            co_await io.write_all(std::string_view("hello\nfrom socat\n"));
            io.shutdown_write();  // socat passes the end of stream on to our server
            reply = co_await read_all(io);
            status = co_await reap(pid);
        }
        co_await cancel_and_join(server);
    }());
    EXPECT_EQ(reply, "1: hello\n2: from socat\n");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "socat status " << status;
}

TEST_P(TcpPeerTest, OurClientTalksToSocatServer) {
    std::string sent(std::size_t{200} * 1024, '\0'), back;
    std::mt19937 rng(3);
    for (char& c : sent) c = static_cast<char>('a' + rng() % 26);
    int status = -1, attempts = 0;
    bool connected = false;
    run_on_backend([&]() -> ut::task<> {
        // A port that was free a moment ago; socat binds it itself.
        std::uint16_t port;
        {
            auto probe = ut::tcp_listener::bind("127.0.0.1", 0);
            port = probe.port();
        }
        pid_t pid = spawn_child({socat_path, "-t", "10",
                                 "TCP-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr",
                                 "EXEC:cat"},
                                -1);
        if (pid <= 0) co_return;
        // socat needs a moment to listen: retry while the connection is refused.
        ut::tcp_stream c;
        auto w0 = wall_now();
        while (!c.is_open() && wall_now() - w0 < 10s) {
            ++attempts;
            try {
                c = co_await ut::tcp_stream::connect("127.0.0.1", port, 5s);
            } catch (const std::system_error& e) {
                if (e.code() != std::errc::connection_refused) throw;
            }
            if (!c.is_open()) co_await ut::to_thread([] { std::this_thread::sleep_for(10ms); });
        }
        connected = c.is_open();
        if (connected) {
            // Write and read at once: cat echoes while we are still sending.
            auto reader = ut::spawn(read_all(c), "reader");
            co_await c.write_all(sent);
            c.shutdown_write();  // socat closes cat's stdin; cat ends; socat closes
            back = co_await reader;
        } else {
            ::kill(pid, SIGKILL);
        }
        status = co_await reap(pid);
    }());
    EXPECT_TRUE(connected) << "socat never listened (" << attempts << " attempts)";
    EXPECT_EQ(back.size(), sent.size());
    EXPECT_TRUE(back == sent);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "socat status " << status;
}

/// Restores RLIMIT_NOFILE on every path out of the test.
struct nofile_limit {
    rlimit saved{};
    nofile_limit() { ::getrlimit(RLIMIT_NOFILE, &saved); }
    bool lower_to(rlim_t soft) {
        rlimit r = saved;
        r.rlim_cur = soft;
        return ::setrlimit(RLIMIT_NOFILE, &r) == 0;
    }
    void restore() { ::setrlimit(RLIMIT_NOFILE, &saved); }
    ~nofile_limit() { restore(); }
};

/// CPU time (user + system, all threads) of this process.
std::chrono::microseconds process_cpu() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& tv) {
        return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
    };
    return std::chrono::duration_cast<std::chrono::microseconds>(us(ru.ru_utime) + us(ru.ru_stime));
}

void TcpPeerTest::out_of_descriptors(bool measure_cpu) {
    // A child process (forked before the limit is lowered, so the limit does
    // not apply to it) opens `flood` connections and holds them; this process,
    // limited to 64 descriptors, accepts until EMFILE. With `measure_cpu`, the
    // accept loop must then sleep, not spin: under 5% CPU over 2 s of wall
    // time. Once the accepted streams are closed, it must accept the rest.
    constexpr int flood = 200;
    long base_fds = open_fd_count();
    std::size_t held_at_limit = 0;
    int accepted_total = 0;
    double cpu_share = -1;
    bool limited = false, child_ready = false;
    int child_status = -1;
    nofile_limit limit;
    run_on_backend([&]() -> ut::task<> {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        std::uint16_t port = l.port();
        {
            // Warm up every path used while descriptors are short (the blocking
            // pool's thread, accept, connect, timers): the sanitizers' first
            // check of a new dynamic type probes memory through a pipe, which
            // at the limit fails and is misreported as undefined behaviour.
            co_await ut::to_thread([] {});
            auto acc = ut::spawn(l.accept(), "warm-up accept");
            auto c = co_await ut::tcp_stream::connect("127.0.0.1", port);
            auto s = co_await acc;
            co_await ut::sleep_for(1ms);
        }
        int ready[2], stop[2];
        if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(stop, O_CLOEXEC) != 0) {
            ADD_FAILURE() << "pipe2: " << std::strerror(errno);
            co_return;
        }
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        pid_t pid = ::fork();
        if (pid == 0) {
            // The child: async-signal-safe system calls only (the parent has
            // other threads), then _exit, which closes everything. Its copies
            // of the pipes' other ends go first, so that the parent closing
            // stop[1] is an end of file here.
            ::close(ready[0]);
            ::close(stop[1]);
            for (int i = 0; i < flood; ++i) {
                int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
                    ::_exit(2);
            }
            char b = 'r';
            if (::write(ready[1], &b, 1) != 1) ::_exit(3);
            (void)::read(stop[0], &b, 1);  // returns 0 when the parent closes its end
            ::_exit(0);
        }
        ::close(ready[1]);
        ::close(stop[0]);
        // Shared with the acceptor, which may run on another worker: `mu` guards
        // held, freed and accepted_total (brief accesses, never across a wait).
        std::mutex mu;
        std::vector<ut::tcp_stream> held;
        bool freed = false;
        auto held_count = [&] {
            std::lock_guard g(mu);
            return held.size();
        };
        auto accepted_so_far = [&] {
            std::lock_guard g(mu);
            return accepted_total;
        };
        // Lowered before the acceptor exists: with several workers it may start
        // at once on another one and take every connection first.
        limited = limit.lower_to(64);
        auto acceptor = ut::spawn(
            [](ut::tcp_listener& lst, std::vector<ut::tcp_stream>& h, bool& fr, int& total,
               std::mutex& m) -> ut::task<> {
                for (;;) {
                    ut::tcp_stream s = co_await lst.accept();
                    std::lock_guard g(m);
                    ++total;
                    if (!fr) h.push_back(std::move(s));  // hold it: descriptors run out
                }
            }(l, held, freed, accepted_total, mu),
            "acceptor");
        char b = 0;
        child_ready = co_await ut::to_thread([&] { return ::read(ready[0], &b, 1) == 1; });
        // Wait until the acceptor stopped making progress: it is out of descriptors.
        for (std::size_t before = SIZE_MAX; before != held_count();) {
            before = held_count();
            co_await ut::to_thread([] { std::this_thread::sleep_for(300ms); });
        }
        held_at_limit = held_count();
        if (measure_cpu) {
            // CPU over 2 s of wall time while the acceptor is stuck.
            auto cpu0 = process_cpu();
            auto w0 = wall_now();
            co_await ut::to_thread([] { std::this_thread::sleep_for(2s); });
            auto cpu = process_cpu() - cpu0;
            auto wall = wall_now() - w0;
            cpu_share = std::chrono::duration<double>(cpu) / std::chrono::duration<double>(wall);
        }
        // Free the descriptors: the acceptor takes (and drops) the rest.
        {
            std::lock_guard g(mu);
            freed = true;
            held.clear();
        }
        // Sleeping, not yielding: on a virtual clock the acceptor's back-off
        // timer only fires when every microthread is idle.
        for (auto t0 = wall_now(); accepted_so_far() < flood && wall_now() - t0 < 10s;)
            co_await ut::sleep_for(5ms);
        limit.restore();
        co_await cancel_and_join(acceptor);
        ::close(stop[1]);  // the child exits
        ::close(ready[0]);
        child_status = co_await reap(pid);
    }());
    EXPECT_LT(base_fds, 48) << "too many descriptors open before the test for a limit of 64";
    EXPECT_TRUE(limited) << "setrlimit(RLIMIT_NOFILE, 64) failed";
    EXPECT_TRUE(child_ready) << "the flooding child did not connect";
    EXPECT_GT(held_at_limit, 0u);
    EXPECT_LT(held_at_limit, static_cast<std::size_t>(flood)) << "the limit was never reached";
    if (measure_cpu) {
        EXPECT_GE(cpu_share, 0.0);
        EXPECT_LT(cpu_share, 0.05) << "the accept loop spins while out of descriptors";
    }
    EXPECT_EQ(accepted_total, flood) << "accept did not recover after descriptors were freed";
    EXPECT_TRUE(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0)
        << "child status " << child_status;
}

TEST_P(TcpPeerTest, AcceptOutOfDescriptorsRecoversWhenFreed) {
    out_of_descriptors(false);
}

TEST_P(TcpPeerTest, AcceptOutOfDescriptorsBacksOffInsteadOfSpinning) {
    if (virtual_clock()) GTEST_SKIP() << needs_real_clock;
    out_of_descriptors(true);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TcpPeerTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, TcpPeerTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
