// echo_client.hpp — the TCP echo workload shared by bench/backends_bench.cpp (a
// uthreads server on each backend) and the echo peers in bench/peers/ (raw epoll,
// raw libuv, Boost.Asio coroutines), so that every server is driven by the same
// client and measured the same way. Header-only; Linux only (epoll, getrusage).
//
// The workload. A load generator opens `connections` (64) TCP connections to the
// server on 127.0.0.1 and keeps `depth` 64-byte messages in flight on each: every
// echoed message is checked byte for byte against what was sent on that
// connection, and answered with the next one. For each depth (1 and 16): connect,
// warm up (0.3 s), then one or more measured windows (2 s each), then stop sending,
// drain what is in flight, and close (the server reads end of stream). Every server
// reads into a buffer of `server_buffer_size` bytes and writes back what it read.
//
// What is reported, per depth, for the window:
//   msgs_per_s  echoed messages counted by the client / the client's window length;
//   cpu_ns      the SERVER process's user + system CPU time / echoed messages;
//   user_ns     the user-mode part of cpu_ns.
//
// How CPU time is read. cpu_ns: getrusage(RUSAGE_SELF) in the server process at
// the window's start and end. Its total (user + system) is exact — the scheduler's
// nanosecond runtime, given in microseconds (/proc/self/stat would only have 10 ms
// ticks) — and it is what the targets are checked on.
//
// user_ns: getrusage's user/system SPLIT is not usable here. With tick-based
// accounting (CONFIG_TICK_CPU_ACCOUNTING, HZ = 250 on this kernel) Linux samples the
// mode at each tick and divides the exact total in the ratio of the tick counts
// accumulated since the process started (cputime_adjust); and with NO_HZ_IDLE a
// server that runs in microsecond bursts between idle periods is rarely hit by a
// tick at all. Measured on this VM, a raw epoll server's "user" time came out
// anywhere from 0% to 100% of its total. So, after the measured windows, the client
// runs one more window (half as long) during which `detail::user_sampler` samples
// every CPU every 100 µs and counts the server process's samples in user mode and
// otherwise; user_ns = cpu_ns × that share. The sampling perturbs the server (see
// user_sampler), which is why it is kept out of the measured windows. Where perf
// events are unavailable (no CAP_PERFMON), user_ns falls back to the tick split and
// is printed with unit "ns/msg(tick)": treat it as unreliable. To keep even that
// fallback free of other work's history, `measure` runs every depth's server in a
// freshly forked process.
//
// Why the client is a separate process: its cost must not depend on the server
// under test, and getrusage(RUSAGE_SELF) must count the server alone. It is plain
// level-triggered epoll, forked once at the start of main() (`client_process`),
// before any thread or runtime exists, so the child inherits no locks or loops;
// it then serves one session per server over a SOCK_SEQPACKET socket pair.
//
// Why the server side has a meter thread (`session`): the window's start and end
// are decided by the client while the server's loop is busy serving it. A thread
// that sleeps in recv() on the control socket takes the getrusage snapshots when
// the client announces them, so no server needs any control logic in its loop; its
// own CPU cost (two wake-ups per window) is negligible against ~10^5 messages. When
// the client is done, the thread calls the server's `stop` function (which must be
// thread-safe: a uthreads promise, io_context::stop, uv_async_send, an eventfd).
//
// Results are printed by `print_results` as
//     RESULT echo_d<depth>_msgs_per_s@<label> <v> msg/s
//     RESULT echo_d<depth>_user_ns@<label> <v> ns/msg
//     RESULT echo_d<depth>_cpu_ns@<label> <v> ns/msg
// (scripts/run-bench reads them); progress goes to stderr.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace echo_bench {

/// Size of every message.
inline constexpr std::size_t message_size = 64;
/// Every server under test reads into a buffer this large and echoes what it read.
inline constexpr std::size_t server_buffer_size = 4096;
/// Largest depth the client supports (its read buffer holds depth + 1 messages).
inline constexpr int max_depth = 32;

struct config {
    int connections = 64;
    std::vector<int> depths{1, 16};
    double warmup_s = 0.3;
    double window_s = 2.0;
    /// Measured windows per depth; the best of them is reported.
    int windows = 1;
    /// Sampling period of the user-time sampler on every CPU, in microseconds;
    /// 0 = no sampler, getrusage's tick-based split instead (see the top of the file).
    int user_sample_us = 100;
    /// Also measure the request/response loop: one connection, one message in
    /// flight, so each message is a full round trip through the server.
    bool request_response = true;
};

/// Best over a depth's windows: highest msgs_per_s, lowest CPU per message.
struct depth_result {
    int connections = 0;
    int depth = 0;
    double msgs_per_s = 0;
    double user_ns = 0;
    double cpu_ns = 0;
    /// user_ns comes from getrusage's tick-sampled split, not the user sampler.
    bool user_from_ticks = false;
};

/// Consumes the echo option at argv[i] (and its value, advancing i); returns false
/// if argv[i] is not one. Throws std::invalid_argument for a bad value.
inline bool parse_option(int argc, char** argv, int& i, config& cfg) {
    std::string a = argv[i];
    auto value = [&]() -> double {
        if (i + 1 >= argc) throw std::invalid_argument(a + ": missing value");
        char* end = nullptr;
        double v = std::strtod(argv[++i], &end);
        if (end == argv[i] || *end != '\0' || !(v > 0))
            throw std::invalid_argument(a + ": expected a positive number, got '" + argv[i] + "'");
        return v;
    };
    if (a == "--quick") {
        cfg.warmup_s = 0.1;
        cfg.window_s = 0.5;
        cfg.windows = 1;
    } else if (a == "--seconds") {
        cfg.window_s = value();
    } else if (a == "--warmup") {
        cfg.warmup_s = value();
    } else if (a == "--windows") {
        cfg.windows = static_cast<int>(value());
    } else if (a == "--connections") {
        cfg.connections = static_cast<int>(value());
    } else if (a == "--no-rr") {
        cfg.request_response = false;
    } else if (a == "--user-sample-us") {
        if (i + 1 < argc && std::string(argv[i + 1]) == "0") {
            ++i;
            cfg.user_sample_us = 0;
        } else {
            cfg.user_sample_us = static_cast<int>(value());
        }
    } else {
        return false;
    }
    return true;
}

/// Usage lines for the options `parse_option` accepts.
inline constexpr const char* options_usage =
    "  --quick          short run: 0.1 s warm-up, one 0.5 s window per depth\n"
    "  --seconds S      length of a measured window (default 2)\n"
    "  --warmup S       warm-up per depth (default 0.3)\n"
    "  --windows N      measured windows per depth, best reported (default 1)\n"
    "  --connections N  client connections (default 64)\n"
    "  --no-rr          skip the request/response loop (1 connection, depth 1)\n"
    "  --user-sample-us N  user-time sampling period (default 100; 0 = getrusage ticks)\n";

namespace detail {

using clock = std::chrono::steady_clock;

// Messages on the control socket. Plain data: both ends are this header, in a
// parent and its forked child.
struct command {
    std::uint16_t port;
    std::int32_t connections;
    std::int32_t ndepths;
    std::int32_t depths[8];
    double warmup_s;
    double window_s;
    std::int32_t windows;
    double sample_window_s;  // > 0: one more window, for the user-time sampler
};

enum class event_kind : std::int32_t { window_start = 1, window_end, done, failed };

struct event {
    event_kind kind;
    std::int32_t depth;
    std::int32_t sampling;   // window_*: the extra window of the user-time sampler
    std::uint64_t messages;  // window_end: messages echoed in the window
    double wall_s;           // window_end: the window's length on the client's clock
    char error[240];         // failed: what went wrong
};

[[noreturn]] inline void fail(const std::string& what) {
    throw std::runtime_error("echo client: " + what);
}
[[noreturn]] inline void fail_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), "echo client: " + what);
}

inline std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Message `seq` of connection `conn`: distinct for every (conn, seq), so a byte
// echoed on the wrong connection or out of order is caught.
inline void make_message(std::uint32_t conn, std::uint64_t seq, char* out) {
    std::uint64_t x = (std::uint64_t{conn} << 40) ^ seq;
    for (std::size_t i = 0; i < message_size; i += 8) {
        std::uint64_t w = splitmix64(x);
        std::memcpy(out + i, &w, 8);
    }
}

// The load generator: one epoll set (level-triggered), `connections` sockets.
class load_generator {
public:
    load_generator(std::uint16_t port, int connections) {
        ep_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) fail_errno("epoll_create1");
        conns_.resize(static_cast<std::size_t>(connections));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            connection& c = conns_[i];
            c.id = static_cast<std::uint32_t>(i);
            c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (c.fd < 0) fail_errno("socket");
            // A blocking connect: the server's listen backlog completes it even
            // before the server's loop has accepted.
            if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
                fail_errno("connect to 127.0.0.1:" + std::to_string(port));
            int one = 1;
            ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u32 = c.id;
            if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) fail_errno("epoll_ctl");
        }
    }
    load_generator(const load_generator&) = delete;
    load_generator& operator=(const load_generator&) = delete;
    ~load_generator() {
        for (auto& c : conns_)
            if (c.fd >= 0) ::close(c.fd);
        if (ep_ >= 0) ::close(ep_);
    }

    /// Put `depth` messages in flight on every connection.
    void prime(int depth) {
        if (depth < 1 || depth > max_depth) fail("depth out of range: " + std::to_string(depth));
        sending_ = true;
        for (auto& c : conns_) {
            for (int d = 0; d < depth; ++d) queue(c);
            flush(c);
        }
    }

    /// Serve the echoes until `deadline`.
    void run_until(clock::time_point deadline) {
        while (clock::now() < deadline) poll(deadline);
    }

    /// Stop sending new messages and wait until every sent one came back.
    void drain(std::chrono::seconds limit) {
        sending_ = false;
        auto deadline = clock::now() + limit;
        for (;;) {
            bool idle = std::all_of(conns_.begin(), conns_.end(),
                                    [](const connection& c) { return c.received == c.sent; });
            if (idle) return;
            if (clock::now() >= deadline) fail("drain: echoes still missing after the window");
            poll(deadline);
        }
    }

    /// Messages echoed and verified so far, all connections.
    std::uint64_t echoed() const { return echoed_; }

private:
    struct connection {
        int fd = -1;
        std::uint32_t id = 0;
        std::uint64_t sent = 0, received = 0;  // message sequence numbers
        bool want_out = false;                 // EPOLLOUT registered
        std::size_t in_len = 0;
        std::size_t out_off = 0;
        std::vector<char> out;  // queued, not yet written
        std::array<char, message_size*(max_depth + 1)> in;
    };

    void poll(clock::time_point deadline) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        int timeout = static_cast<int>(std::clamp<long long>(left, 0, 1000));
        std::array<epoll_event, 64> evs;
        int n = ::epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
        if (n < 0) {
            if (errno == EINTR) return;
            fail_errno("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            connection& c = conns_[evs[static_cast<std::size_t>(i)].data.u32];
            std::uint32_t e = evs[static_cast<std::size_t>(i)].events;
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
            if (e & EPOLLOUT) flush(c);
        }
    }

    void on_readable(connection& c) {
        ssize_t n = ::read(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len);
        if (n == 0) fail("connection " + std::to_string(c.id) + ": server closed it");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            fail_errno("read on connection " + std::to_string(c.id));
        }
        c.in_len += static_cast<std::size_t>(n);
        std::size_t off = 0;
        char expected[message_size];
        while (c.in_len - off >= message_size) {
            if (c.received >= c.sent)
                fail("connection " + std::to_string(c.id) + ": more bytes echoed than sent");
            make_message(c.id, c.received, expected);
            if (std::memcmp(expected, c.in.data() + off, message_size) != 0)
                fail("connection " + std::to_string(c.id) + ": message " +
                     std::to_string(c.received) + " came back with wrong bytes");
            ++c.received;
            ++echoed_;
            off += message_size;
            if (sending_) queue(c);
        }
        std::memmove(c.in.data(), c.in.data() + off, c.in_len - off);
        c.in_len -= off;
        flush(c);
    }

    void queue(connection& c) {
        std::size_t at = c.out.size();
        c.out.resize(at + message_size);
        make_message(c.id, c.sent++, c.out.data() + at);
    }

    void flush(connection& c) {
        while (c.out_off < c.out.size()) {
            ssize_t n =
                ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) break;
                fail_errno("write on connection " + std::to_string(c.id));
            }
            c.out_off += static_cast<std::size_t>(n);
        }
        bool pending = c.out_off < c.out.size();
        if (!pending) {
            c.out.clear();
            c.out_off = 0;
        }
        if (pending != c.want_out) {
            epoll_event ev{};
            ev.events = EPOLLIN | (pending ? EPOLLOUT : 0u);
            ev.data.u32 = c.id;
            if (::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) != 0) fail_errno("epoll_ctl");
            c.want_out = pending;
        }
    }

    int ep_ = -1;
    bool sending_ = false;
    std::uint64_t echoed_ = 0;
    std::vector<connection> conns_;
};

inline void send_event(int ctl, const event& ev) {
    if (::send(ctl, &ev, sizeof ev, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof ev)) _exit(1);
}

inline clock::duration to_duration(double seconds) {
    return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
}

inline void run_session(int ctl, const command& cmd) {
    for (int k = 0; k < cmd.ndepths; ++k) {
        const int depth = cmd.depths[k];
        load_generator load(cmd.port, cmd.connections);
        load.prime(depth);
        load.run_until(clock::now() + to_duration(cmd.warmup_s));
        const bool sample = cmd.sample_window_s > 0;
        for (int w = 0; w < cmd.windows + (sample ? 1 : 0); ++w) {
            const bool sampling = w == cmd.windows;
            event ev{};
            ev.depth = depth;
            ev.sampling = sampling;
            ev.kind = event_kind::window_start;
            const std::uint64_t before = load.echoed();
            const auto t0 = clock::now();
            send_event(ctl, ev);
            load.run_until(t0 + to_duration(sampling ? cmd.sample_window_s : cmd.window_s));
            ev.kind = event_kind::window_end;
            ev.messages = load.echoed() - before;
            ev.wall_s = std::chrono::duration<double>(clock::now() - t0).count();
            send_event(ctl, ev);
        }
        load.drain(std::chrono::seconds(10));
    }  // closes every connection: the server reads end of stream
}

// The forked child: serves sessions until the parent closes the control socket.
[[noreturn]] inline void client_main(int ctl) {
    for (;;) {
        command cmd{};
        ssize_t n = ::recv(ctl, &cmd, sizeof cmd, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) _exit(0);
        if (n != static_cast<ssize_t>(sizeof cmd)) _exit(1);
        event ev{};
        try {
            run_session(ctl, cmd);
            ev.kind = event_kind::done;
        } catch (const std::exception& e) {
            ev.kind = event_kind::failed;
            std::snprintf(ev.error, sizeof ev.error, "%s", e.what());
        }
        send_event(ctl, ev);
    }
}

inline double seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
}

// Estimates this process's user-mode share of its CPU time by sampling: a
// cpu-clock perf event on every CPU interrupts it every `period` of wall time and
// records which process was running and in which mode; the samples of this process
// in user mode over all its samples is the user share.
// Why CPU-wide: a per-task event (task-clock, exclude_kernel: no privileges needed)
// makes every context switch of the task reprogram a timer, which on this VM
// doubled the echo server's CPU time per message. CPU-wide events cost a fixed
// interrupt rate instead — still ~20% more server CPU at 100 µs here, which is why
// the session samples only in an extra window after the measured ones. They need
// CAP_PERFMON (or root, or perf_event_paranoid <= 0); `ok()` is false and `why_not`
// says why otherwise.
// One bias remains: an interrupt that arrives while the kernel has interrupts
// disabled (the edges of every system call) is taken on the return to user mode
// and counted as user time.
//
// Threading: the kernel appends to the ring buffers from interrupt context; one
// thread (the meter) consumes them with `drain`, following the documented protocol
// (acquire data_head, release data_tail).
class user_sampler {
public:
    explicit user_sampler(int period_us)
        : pid_(static_cast<std::uint32_t>(::getpid())) {
        if (period_us <= 0) {
            why_not = "disabled (--user-sample-us 0)";
            return;
        }
        page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
        for (long cpu = 0; cpu < cpus; ++cpu) {
            perf_event_attr attr{};
            attr.size = sizeof attr;
            attr.type = PERF_TYPE_SOFTWARE;
            attr.config = PERF_COUNT_SW_CPU_CLOCK;
            attr.sample_period = static_cast<std::uint64_t>(period_us) * 1000;  // ns
            attr.sample_type = PERF_SAMPLE_TID;  // header.misc has the mode
            attr.exclude_hv = 1;
            attr.exclude_idle = 1;
            attr.disabled = 1;  // counts only between enable() and disable()
            int fd = static_cast<int>(::syscall(SYS_perf_event_open, &attr, -1,
                                                static_cast<int>(cpu), -1, PERF_FLAG_FD_CLOEXEC));
            if (fd < 0) {
                if (errno == ENODEV || errno == EINVAL) continue;  // offline CPU
                why_not = std::string("perf_event_open (CPU-wide): ") + std::strerror(errno);
                close_all();
                return;
            }
            void* m = ::mmap(nullptr, page_ * (1 + data_pages), PROT_READ | PROT_WRITE, MAP_SHARED,
                             fd, 0);
            if (m == MAP_FAILED) {
                why_not = std::string("mmap of a perf buffer: ") + std::strerror(errno);
                ::close(fd);
                close_all();
                return;
            }
            rings_.push_back({fd, static_cast<perf_event_mmap_page*>(m)});
        }
        if (rings_.empty()) why_not = "no CPU to sample";
    }
    user_sampler(const user_sampler&) = delete;
    user_sampler& operator=(const user_sampler&) = delete;
    ~user_sampler() { close_all(); }

    bool ok() const noexcept { return !rings_.empty(); }

    /// Start sampling, from zero.
    void enable() {
        drain();
        user_ = other_ = 0;
        for (ring& r : rings_) ::ioctl(r.fd, PERF_EVENT_IOC_ENABLE, 0);
    }
    /// Stop sampling and count what was sampled.
    void disable() {
        for (ring& r : rings_) ::ioctl(r.fd, PERF_EVENT_IOC_DISABLE, 0);
        drain();
    }

    /// Counts this process's samples written since the last call and frees the
    /// buffers. Call it often enough that no buffer fills (data_pages hold 1.6 s
    /// at the default period); a full buffer drops samples of every process alike.
    void drain() {
        const std::uint64_t size = page_ * data_pages;
        for (ring& r : rings_) {
            const std::uint64_t head = __atomic_load_n(&r.meta->data_head, __ATOMIC_ACQUIRE);
            std::uint64_t tail = r.meta->data_tail;
            const char* data = reinterpret_cast<const char*>(r.meta) + page_;
            while (tail < head) {
                // Records are 8-byte aligned and the buffer a power-of-two number
                // of pages, so neither the header nor the pid word ever wraps.
                perf_event_header h;
                std::memcpy(&h, data + tail % size, sizeof h);
                if (h.size == 0) break;
                if (h.type == PERF_RECORD_SAMPLE) {
                    std::uint32_t pid = 0;  // {header, u32 pid, u32 tid}
                    std::memcpy(&pid, data + (tail + sizeof h) % size, sizeof pid);
                    if (pid == pid_) {
                        if ((h.misc & PERF_RECORD_MISC_CPUMODE_MASK) == PERF_RECORD_MISC_USER)
                            ++user_;
                        else
                            ++other_;
                    }
                }
                tail += h.size;
            }
            __atomic_store_n(&r.meta->data_tail, tail, __ATOMIC_RELEASE);
        }
    }

    /// This process's samples so far (after `drain`): in user mode, and otherwise.
    std::uint64_t user_samples() const noexcept { return user_; }
    std::uint64_t other_samples() const noexcept { return other_; }

    std::string why_not;

private:
    struct ring {
        int fd;
        perf_event_mmap_page* meta;
    };
    void close_all() {
        for (ring& r : rings_) {
            ::munmap(r.meta, page_ * (1 + data_pages));
            ::close(r.fd);
        }
        rings_.clear();
    }

    static constexpr std::size_t data_pages = 64;  // power of two
    std::uint32_t pid_;
    std::size_t page_ = 0;
    std::vector<ring> rings_;
    std::uint64_t user_ = 0, other_ = 0;
};

}  // namespace detail

/// The load generator process. Construct it first in main(), before any thread or
/// runtime exists: it forks. Destroying it ends the child and reaps it.
class client_process {
public:
    client_process() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
            throw std::system_error(errno, std::generic_category(), "echo client: socketpair");
        std::fflush(stdout);
        std::fflush(stderr);
        pid_ = ::fork();
        if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "echo client: fork");
        if (pid_ == 0) {
            ::close(sv[0]);
            detail::client_main(sv[1]);
        }
        ::close(sv[1]);
        fd_ = sv[0];
    }
    client_process(const client_process&) = delete;
    client_process& operator=(const client_process&) = delete;
    ~client_process() {
        ::close(fd_);  // the child reads end of stream and exits
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }

    int control_fd() const noexcept { return fd_; }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
};

/// One measured run against a server listening on 127.0.0.1:`port` in this
/// process. The constructor starts the meter thread, which asks the client to run
/// every depth of `cfg`, snapshots getrusage(RUSAGE_SELF) at each window's start
/// and end, and finally calls `stop` (from the meter thread: it must be
/// thread-safe) so the server's loop returns. Then call `finish`. Construct it once
/// the server is listening; its loop may start before or after.
class session {
public:
    session(client_process& client, std::uint16_t port, const config& cfg, std::string label,
            std::function<void()> stop)
        : label_(std::move(label))
        , sampler_(cfg.user_sample_us) {
        if (!sampler_.ok())
            std::fprintf(stderr,
                         "  echo %s: user-time sampler unavailable (%s); user ns/msg falls back "
                         "to getrusage's tick-sampled split\n",
                         label_.c_str(), sampler_.why_not.c_str());
        detail::command cmd{};
        cmd.port = port;
        cmd.connections = cfg.connections;
        if (cfg.depths.empty() || cfg.depths.size() > std::size(cmd.depths))
            throw std::invalid_argument("echo session: 1 to 8 depths");
        cmd.ndepths = static_cast<std::int32_t>(cfg.depths.size());
        std::copy(cfg.depths.begin(), cfg.depths.end(), cmd.depths);
        cmd.warmup_s = cfg.warmup_s;
        cmd.window_s = cfg.window_s;
        cmd.windows = std::max(1, cfg.windows);
        // Half a window is plenty for the share: >= 10^3 samples of the server.
        cmd.sample_window_s = sampler_.ok() ? cfg.window_s / 2 : 0;
        thread_ = std::thread([this, fd = client.control_fd(), cmd, stop = std::move(stop)] {
            meter(fd, cmd);
            stop();
        });
    }
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session() {
        if (thread_.joinable()) thread_.join();
    }

    /// Waits for the meter thread (returns at once once `stop` was called) and
    /// gives one result per depth. Throws std::runtime_error if the client failed.
    std::vector<depth_result> finish() {
        if (thread_.joinable()) thread_.join();
        if (!error_.empty()) throw std::runtime_error(error_);
        std::vector<depth_result> out;
        for (auto& [depth, r] : best_) out.push_back(r);
        return out;
    }

private:
    void meter(int fd, const detail::command& cmd) {
        if (::send(fd, &cmd, sizeof cmd, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof cmd)) {
            error_ = "echo session: cannot reach the client process";
            return;
        }
        rusage r0{};
        for (;;) {
            // Wake up at least every 200 ms to empty the sampler's buffer.
            pollfd p{fd, POLLIN, 0};
            int ready = ::poll(&p, 1, 200);
            sampler_.drain();
            if (ready <= 0) continue;
            detail::event ev{};
            ssize_t n = ::recv(fd, &ev, sizeof ev, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n != static_cast<ssize_t>(sizeof ev)) {
                error_ = "echo session: the client process died";
                return;
            }
            switch (ev.kind) {
            case detail::event_kind::window_start:
                if (ev.sampling)
                    sampler_.enable();
                else
                    ::getrusage(RUSAGE_SELF, &r0);
                break;
            case detail::event_kind::window_end: {
                if (ev.sampling) {
                    sampler_.disable();
                    record_share(ev.depth);
                    break;
                }
                rusage r1{};
                ::getrusage(RUSAGE_SELF, &r1);
                const double u0 = detail::seconds(r0.ru_utime), s0 = detail::seconds(r0.ru_stime);
                const double u1 = detail::seconds(r1.ru_utime), s1 = detail::seconds(r1.ru_stime);
                const double total = (u1 + s1) - (u0 + s0);  // exact
                // Until the sampler's window (if any): the user share of the whole
                // process's ticks (see the top).
                const double user_share = (u1 + s1) > 0 ? u1 / (u1 + s1) : 0;
                record(ev, total * user_share, total);
                break;
            }
            case detail::event_kind::done:
                return;
            case detail::event_kind::failed:
                ev.error[sizeof ev.error - 1] = '\0';
                error_ = ev.error;
                return;
            }
        }
    }

    // The sampler's window: user_ns = the measured cpu_ns × the sampled user share.
    void record_share(int depth) {
        const double user = static_cast<double>(sampler_.user_samples());
        const double all = user + static_cast<double>(sampler_.other_samples());
        auto it = best_.find(depth);
        if (it == best_.end() || all < 1) return;  // keep the tick estimate
        it->second.user_ns = it->second.cpu_ns * user / all;
        it->second.user_from_ticks = false;
        std::fprintf(stderr,
                     "  echo d%-2d %-10s sampled user share %.1f%% (%.0f samples of the server)"
                     " -> user %.1f ns/msg\n",
                     depth, label_.c_str(), 100 * user / all, all, it->second.user_ns);
    }

    void record(const detail::event& ev, double user_s, double cpu_s) {
        const double msgs = static_cast<double>(ev.messages);
        depth_result r;
        r.depth = ev.depth;
        r.user_from_ticks = true;  // until record_share
        r.msgs_per_s = ev.wall_s > 0 ? msgs / ev.wall_s : 0;
        r.user_ns = msgs > 0 ? user_s * 1e9 / msgs : 0;
        r.cpu_ns = msgs > 0 ? cpu_s * 1e9 / msgs : 0;
        std::fprintf(stderr,
                     "  echo d%-2d %-10s %9.0f msg/s  server user+sys %7.1f ns/msg  "
                     "(tick-split user %.1f; %llu msgs in %.2f s)\n",
                     r.depth, label_.c_str(), r.msgs_per_s, r.cpu_ns, r.user_ns,
                     static_cast<unsigned long long>(ev.messages), ev.wall_s);
        auto [it, fresh] = best_.try_emplace(ev.depth, r);
        if (!fresh) {
            it->second.msgs_per_s = std::max(it->second.msgs_per_s, r.msgs_per_s);
            it->second.user_ns = std::min(it->second.user_ns, r.user_ns);
            it->second.cpu_ns = std::min(it->second.cpu_ns, r.cpu_ns);
        }
    }

    std::string label_;
    // Opened by the constructor (in the server's process: it keeps that pid's
    // samples); used by the meter thread only after that.
    detail::user_sampler sampler_;
    // Written by the meter thread only, read by finish() after joining it.
    std::string error_;
    std::map<int, depth_result> best_;
    std::thread thread_;
};

/// Runs `f` (returning std::vector<T>, T trivially copyable) in a forked child and
/// returns what it returned. Throws std::runtime_error if the child throws (it
/// prints the exception to stderr), crashes or exits early. Call it from a thread
/// that is the process's only one (the child inherits no other thread's locks).
template <class T, class F>
std::vector<T> in_child(F&& f) {
    static_assert(std::is_trivially_copyable_v<T>);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::system_error(errno, std::generic_category(), "in_child: pipe");
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "in_child: fork");
    if (pid == 0) {
        ::close(fds[0]);
        int rc = 1;
        try {
            std::vector<T> v = f();
            std::uint64_t n = v.size();
            if (::write(fds[1], &n, sizeof n) == sizeof n &&
                ::write(fds[1], v.data(), n * sizeof(T)) == static_cast<ssize_t>(n * sizeof(T)))
                rc = 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "  (child process) %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "  (child process) unknown exception\n");
        }
        std::fflush(stdout);
        _exit(rc);
    }
    ::close(fds[1]);
    std::vector<char> bytes;
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(fds[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        bytes.insert(bytes.end(), chunk, chunk + n);
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        throw std::runtime_error(std::string("child process killed by signal ") +
                                 std::to_string(WTERMSIG(status)));
    std::uint64_t n = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || bytes.size() < sizeof n)
        throw std::runtime_error("child process failed");
    std::memcpy(&n, bytes.data(), sizeof n);
    if (bytes.size() != sizeof n + n * sizeof(T))
        throw std::runtime_error("child process: truncated result");
    std::vector<T> out(n);
    std::memcpy(out.data(), bytes.data() + sizeof n, n * sizeof(T));
    return out;
}

/// Measures every depth of `cfg` against a fresh server process: for each depth,
/// forks, and in the child calls `serve(one)` — `one` is `cfg` with that depth only —
/// which starts the server, constructs a `session` with `one`, runs the loop until
/// the session's stop, and returns session::finish(). Fresh processes make the
/// user/system split meaningful (see the top of this file). Call it from the
/// process's only thread.
template <class Serve>
std::vector<depth_result> measure(const config& cfg, Serve&& serve) {
    std::vector<depth_result> out;
    auto run_one = [&](const config& one) {
        for (depth_result r : in_child<depth_result>([&] { return serve(one); })) {
            r.connections = one.connections;
            out.push_back(r);
        }
    };
    for (int depth : cfg.depths) {
        config one = cfg;
        one.depths = {depth};
        run_one(one);
    }
    if (cfg.request_response) {
        config one = cfg;
        one.connections = 1;
        one.depths = {1};
        run_one(one);
    }
    return out;
}

/// Prints the RESULT lines for `results`, rows suffixed with "@<label>".
inline void print_results(const std::string& label, const std::vector<depth_result>& results) {
    for (const auto& r : results) {
        if (r.connections == 1 && r.depth == 1) {
            // The request/response loop: one round trip at a time.
            std::printf("RESULT rr_rtt_us@%s %.2f us\n", label.c_str(),
                        r.msgs_per_s > 0 ? 1e6 / r.msgs_per_s : 0.0);
            std::printf("RESULT rr_user_ns@%s %.1f %s\n", label.c_str(), r.user_ns,
                        r.user_from_ticks ? "ns/msg(tick)" : "ns/msg");
            std::printf("RESULT rr_cpu_ns@%s %.1f ns/msg\n", label.c_str(), r.cpu_ns);
            continue;
        }
        std::printf("RESULT echo_d%d_msgs_per_s@%s %.1f msg/s\n", r.depth, label.c_str(),
                    r.msgs_per_s);
        // The unit says when user time could only be read from getrusage's ticks.
        std::printf("RESULT echo_d%d_user_ns@%s %.1f %s\n", r.depth, label.c_str(), r.user_ns,
                    r.user_from_ticks ? "ns/msg(tick)" : "ns/msg");
        std::printf("RESULT echo_d%d_cpu_ns@%s %.1f ns/msg\n", r.depth, label.c_str(), r.cpu_ns);
    }
    std::fflush(stdout);
}

/// The whole main() of an echo peer: parses the echo options, forks the client
/// (first, before any thread), prints `banner` to stderr, measures every depth
/// against a fresh server process running `run(client, one_depth_config)`, and
/// prints the results as "@<label>". Returns the process's exit status.
template <class Run>
int peer_main(int argc, char** argv, const char* program, const std::string& label,
              const std::string& banner, Run&& run) {
    config cfg;
    try {
        for (int i = 1; i < argc; ++i) {
            if (!parse_option(argc, argv, i, cfg)) {
                std::fprintf(stderr, "usage: %s [options]\n%s", argv[0], options_usage);
                return 2;
            }
        }
        client_process client;  // forks: first, before any thread
        std::fprintf(stderr, "%s: %s\n", program, banner.c_str());
        print_results(label, measure(cfg, [&](const config& one) { return run(client, one); }));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        return 1;
    }
    return 0;
}

}  // namespace echo_bench
