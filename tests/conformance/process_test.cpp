// Subprocesses, identical on every backend: run_process's {exit_code, out,
// err}, big concurrent input and output, exit codes and signals, spawn
// failures, timeouts and cancellation that leave no child and no zombie,
// environment and working directory, stdin/stdout redirections, the child's
// descriptor table, EPIPE without SIGPIPE, and the background reaper.
//
// Every test leaves no child process behind (checked through /proc), so that
// the zombie checks of later tests see only their own children.

#include "conformance.hpp"

#include <uthreads/process.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

namespace uthreads_conformance {
namespace {

class ProcessTest : public backend_test {  // NOLINT(readability-identifier-naming)
protected:
    void TearDown() override {
        EXPECT_EQ(live_children(), std::vector<pid_t>{}) << "child processes left behind";
        EXPECT_EQ(ut::lowlevel::unreaped_orphans(), 0u);
        backend_test::TearDown();
    }

public:
    /// Our child processes, zombies included, from /proc/<pid>/stat's ppid.
    static std::vector<pid_t> live_children() {
        std::vector<pid_t> out;
        pid_t me = ::getpid();
        std::error_code ec;
        for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
             it.increment(ec)) {
            std::string name = it->path().filename().string();
            if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
            std::ifstream f(it->path() / "stat");
            std::string line;
            if (!std::getline(f, line)) continue;
            // "pid (comm) state ppid ...": comm may contain spaces; ppid follows
            // the last ')'.
            auto close = line.rfind(')');
            if (close == std::string::npos) continue;
            std::istringstream rest(line.substr(close + 1));
            char state = 0;
            pid_t ppid = 0;
            rest >> state >> ppid;
            if (ppid == me) out.push_back(static_cast<pid_t>(std::stoi(name)));
        }
        return out;
    }

    /// A zombie child of ours, without reaping it (WNOWAIT); 0 if none.
    static pid_t zombie_child() {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return 0;  // ECHILD
        return info.si_pid;
    }

    /// Block (the test's own thread) until the reaper has nothing left, for at
    /// most 10 s of real time.
    static bool wait_for_orphans() {
        auto w0 = wall_now();
        while (ut::lowlevel::unreaped_orphans() != 0) {
            if (wall_now() - w0 > 10s) return false;
            std::this_thread::sleep_for(2ms);
        }
        return true;
    }
};

std::string pattern(std::size_t n) {
    std::string v(n, '\0');
    std::uint32_t x = 12345;
    for (char& c : v) {
        x = x * 1664525u + 1013904223u;
        c = static_cast<char>(x >> 24);
    }
    return v;
}

/// A temporary file, removed at the end.
struct temp_file {
    std::string path;
    explicit temp_file(const std::string& content = {}) {
        static int counter = 0;
        path = (std::filesystem::temp_directory_path() /
                ("uthreads-proc-" + std::to_string(::getpid()) + "-" + std::to_string(++counter)))
                   .string();
        std::ofstream(path, std::ios::binary) << content;
    }
    ~temp_file() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
    std::string read() const {
        std::ifstream f(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(f), {});
    }
};

TEST_P(ProcessTest, RunProcessReturnsExitCodeStdoutAndStderr) {
    ut::process_result r;
    run_on_backend([&]() -> ut::task<> {
        r = co_await ut::run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
    }());
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_EQ(r.signal, 0);
    EXPECT_FALSE(r.success());
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
}

TEST_P(ProcessTest, CatFedTenMebibytesReturnsIdenticalBytes) {
    // Far more than a pipe holds in either direction: without writing and
    // reading concurrently, cat and we would block on each other.
    const std::string data = pattern(std::size_t{10} << 20);
    ut::process_result r;
    run_on_backend([&]() -> ut::task<> { r = co_await ut::run_process({"cat"}, data); }());
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out.size(), data.size());
    EXPECT_TRUE(r.out == data) << "cat returned different bytes";
    EXPECT_EQ(r.err, "");
}

TEST_P(ProcessTest, FalseExitsWithOneAndTrueWithZero) {
    ut::process_result f, t;
    run_on_backend([&]() -> ut::task<> {
        f = co_await ut::run_process({"false"});
        t = co_await ut::run_process({"true"});
    }());
    EXPECT_EQ(f.exit_code, 1);
    EXPECT_FALSE(f.success());
    EXPECT_EQ(t.exit_code, 0);
    EXPECT_TRUE(t.success());
}

TEST_P(ProcessTest, MissingProgramIsEnoentNamingItFromSpawnItself) {
    std::vector<std::pair<int, std::string>> errors;
    run_on_backend([&]() -> ut::task<> {
        for (std::string prog : {"uthreads-no-such-program", "/nonexistent/uthreads-prog"}) {
            try {
                ut::process p = ut::process::spawn({prog, "arg"});
                ADD_FAILURE() << "spawn of " << prog << " succeeded";
            } catch (const std::system_error& e) {
                errors.emplace_back(e.code().value(), e.what());
            }
        }
        try {
            co_await ut::run_process({"uthreads-no-such-program"});
            ADD_FAILURE() << "run_process of a missing program succeeded";
        } catch (const std::system_error& e) {
            errors.emplace_back(e.code().value(), e.what());
        }
    }());
    ASSERT_EQ(errors.size(), 3u);
    for (auto& [code, what] : errors) EXPECT_EQ(code, ENOENT) << what;
    EXPECT_NE(errors[0].second.find("uthreads-no-such-program"), std::string::npos);
    EXPECT_NE(errors[1].second.find("/nonexistent/uthreads-prog"), std::string::npos);
    EXPECT_NE(errors[2].second.find("uthreads-no-such-program"), std::string::npos);
}

TEST_P(ProcessTest, BadArgumentsAreInvalidArgumentNamingThem) {
    std::vector<std::string> messages;
    run_on_backend([&]() -> ut::task<> {
        auto expect_invalid = [&](auto&& f) {
            try {
                f();
                ADD_FAILURE() << "no exception";
            } catch (const std::invalid_argument& e) {
                messages.emplace_back(e.what());
            }
        };
        expect_invalid([] { ut::process::spawn({}); });
        expect_invalid([] { ut::process::spawn({"sh", std::string("a\0b", 3)}); });
        expect_invalid([] {
            ut::process::spawn({"true"}, ut::process_options{.env = {{"A=B", "x"}}});
        });
        expect_invalid([] { ut::stdio::fd(-1); });
        try {
            co_await ut::run_process({"cat"}, "input",
                                     ut::process_options{.in = ut::stdio::null()});
            ADD_FAILURE() << "run_process accepted input with stdin not a pipe";
        } catch (const std::invalid_argument& e) {
            messages.emplace_back(e.what());
        }
    }());
    ASSERT_EQ(messages.size(), 5u);
    EXPECT_NE(messages[0].find("argv"), std::string::npos) << messages[0];
    EXPECT_NE(messages[1].find("argv[1]"), std::string::npos) << messages[1];
    EXPECT_NE(messages[2].find("A=B"), std::string::npos) << messages[2];
    EXPECT_NE(messages[3].find("fd"), std::string::npos) << messages[3];
    EXPECT_NE(messages[4].find("opts.in"), std::string::npos) << messages[4];
}

TEST_P(ProcessTest, DeathBySignalIsReportedAsSuch) {
    ut::exit_status term;
    ut::process_result self_killed;
    run_on_backend([&]() -> ut::task<> {
        ut::process p = ut::process::spawn({"sleep", "30"});
        p.kill(SIGTERM);
        term = co_await p.wait();
        // A second wait (and a kill after reaping) is harmless.
        ut::exit_status again = co_await p.wait();
        EXPECT_EQ(again.signal, SIGTERM);
        p.kill(SIGKILL);
        self_killed = co_await ut::run_process({"sh", "-c", "kill -KILL $$"});
    }());
    EXPECT_TRUE(term.signaled());
    EXPECT_FALSE(term.exited());
    EXPECT_EQ(term.signal, SIGTERM);
    EXPECT_EQ(term.exit_code, 128 + SIGTERM);
    EXPECT_EQ(self_killed.signal, SIGKILL);
    EXPECT_EQ(self_killed.exit_code, 128 + SIGKILL);
    EXPECT_FALSE(self_killed.success());
}

TEST_P(ProcessTest, TimeoutKillsTheChildReapsItAndThrows) {
    bool timed_out = false;
    std::string message;
    std::vector<pid_t> children_after;
    pid_t zombie = -1;
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        try {
            co_await ut::run_process({"sleep", "30"}, "", {}, 200ms);
        } catch (const ut::timeout_error& e) {
            timed_out = true;
            message = e.what();
        }
        children_after = live_children();
        zombie = zombie_child();
    }());
    EXPECT_TRUE(timed_out);
    EXPECT_NE(message.find("sleep"), std::string::npos) << message;
    EXPECT_LT(wall_now() - w0, 20s);
    EXPECT_EQ(children_after, std::vector<pid_t>{});
    EXPECT_EQ(zombie, 0);
}

TEST_P(ProcessTest, EnvironmentIsExtendedReplacedOrCleared) {
    ut::process_result extended, removed, cleared;
    ::setenv("UTHREADS_PROC_TEST_INHERITED", "parent", 1);
    run_on_backend([&]() -> ut::task<> {
        extended = co_await ut::run_process(
            {"sh", "-c",
             "printf '%s,%s' \"$UTHREADS_PROC_TEST_SET\" \"$UTHREADS_PROC_TEST_INHERITED\""},
            "", ut::process_options{.env = {{"UTHREADS_PROC_TEST_SET", "hello world"}}});
        removed = co_await ut::run_process(
            {"sh", "-c", "printf '%s' \"${UTHREADS_PROC_TEST_INHERITED-unset}\""}, "",
            ut::process_options{.env = {{"UTHREADS_PROC_TEST_INHERITED", std::nullopt}}});
        cleared = co_await ut::run_process(
            {"env"}, "", ut::process_options{.env = {{"ONLY", "this"}}, .clear_env = true});
    }());
    ::unsetenv("UTHREADS_PROC_TEST_INHERITED");
    EXPECT_EQ(extended.out, "hello world,parent");
    EXPECT_EQ(removed.out, "unset");
    EXPECT_EQ(cleared.out, "ONLY=this\n");
}

TEST_P(ProcessTest, WorkingDirectoryIsHonoredAndAMissingOneIsEnoent) {
    auto dir = std::filesystem::canonical(std::filesystem::temp_directory_path());
    ut::process_result r;
    int missing_code = 0;
    std::string missing_what;
    run_on_backend([&]() -> ut::task<> {
        r = co_await ut::run_process({"pwd"}, "", ut::process_options{.cwd = dir.string()});
        try {
            co_await ut::run_process({"pwd"}, "",
                                     ut::process_options{.cwd = "/nonexistent/uthreads-dir"});
        } catch (const std::system_error& e) {
            missing_code = e.code().value();
            missing_what = e.what();
        }
    }());
    EXPECT_EQ(r.out, dir.string() + "\n");
    EXPECT_EQ(missing_code, ENOENT);
    EXPECT_NE(missing_what.find("/nonexistent/uthreads-dir"), std::string::npos) << missing_what;
}

TEST_P(ProcessTest, StdinNullInheritAndDescriptorRedirection) {
    temp_file input("from a file\n");
    temp_file output;
    ut::process_result from_null, from_file, inherited;
    std::string our_stdin, our_stderr;
    {
        char buf[256];
        ssize_t n = ::readlink("/proc/self/fd/0", buf, sizeof buf);
        our_stdin = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "(closed)";
        n = ::readlink("/proc/self/fd/2", buf, sizeof buf);
        our_stderr = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "(closed)";
    }
    run_on_backend([&]() -> ut::task<> {
        // Opened inside the run: the fixture counts descriptors when it ends.
        int in_fd = ::open(input.path.c_str(), O_RDONLY | O_CLOEXEC);
        int out_fd = ::open(output.path.c_str(), O_WRONLY | O_CLOEXEC);
        EXPECT_GE(in_fd, 0);
        EXPECT_GE(out_fd, 0);
        from_null =
            co_await ut::run_process({"cat"}, "", ut::process_options{.in = ut::stdio::null()});
        from_file =
            co_await ut::run_process({"cat"}, "", ut::process_options{.in = ut::stdio::fd(in_fd)});
        // stdout into a file of ours; stderr a pipe.
        ut::process p = ut::process::spawn(
            {"sh", "-c", "echo to the file; echo to the pipe >&2"},
            ut::process_options{.out = ut::stdio::fd(out_fd), .err = ut::stdio::pipe()});
        EXPECT_FALSE(p.out().is_open());
        EXPECT_EQ(co_await p.err().read_to_end(), "to the pipe\n");
        EXPECT_TRUE((co_await p.wait()).success());
        inherited = co_await ut::run_process(
            {"sh", "-c",
             "readlink /proc/self/fd/0 || echo '(closed)'; readlink /proc/self/fd/2 || echo "
             "'(closed)'"},
            "", ut::process_options{.in = ut::stdio::inherit(), .err = ut::stdio::inherit()});
        ::close(in_fd);
        ::close(out_fd);
    }());
    EXPECT_EQ(from_null.exit_code, 0);
    EXPECT_EQ(from_null.out, "");
    EXPECT_EQ(from_file.out, "from a file\n");
    EXPECT_EQ(output.read(), "to the file\n");
    EXPECT_EQ(inherited.out, our_stdin + "\n" + our_stderr + "\n");
}

TEST_P(ProcessTest, ChildHasOnlyDescriptorsZeroToTwo) {
    std::vector<std::string> child_fds;
    int leaky = -1;
    run_on_backend([&]() -> ut::task<> {
        // A descriptor without CLOEXEC, as a careless library might leave: the
        // child must not get it either.
        leaky = ::fcntl(1, F_DUPFD, 20);
        if (leaky < 0) leaky = ::open("/dev/null", O_RDONLY);  // F_DUPFD has no CLOEXEC: same
        ut::process p = ut::process::spawn({"cat"}, ut::process_options{.in = ut::stdio::pipe(),
                                                                        .out = ut::stdio::pipe(),
                                                                        .err = ut::stdio::null()});
        // posix_spawn returns right after the exec, while the program may still
        // be starting up (the dynamic loader and setlocale open and close
        // files): once cat has echoed a line it is in its read loop, and its
        // table holds only what it inherited.
        co_await p.in().write_all("ready\n");
        std::string echoed(6, '\0');
        co_await p.out().read_exact(std::span<char>(echoed));
        EXPECT_EQ(echoed, "ready\n");
        std::error_code ec;
        for (std::filesystem::directory_iterator it("/proc/" + std::to_string(p.pid()) + "/fd", ec),
             end;
             !ec && it != end; it.increment(ec))
            child_fds.push_back(it->path().filename().string());
        p.in().close();
        co_await p.wait();
        ::close(leaky);
    }());
    EXPECT_GE(leaky, 3);
    std::sort(child_fds.begin(), child_fds.end());
    EXPECT_EQ(child_fds, (std::vector<std::string>{"0", "1", "2"}));
}

TEST_P(ProcessTest, WritingToAChildThatExitedIsEpipeNotSigpipe) {
    int code = 0;
    std::string what;
    bool sigpipe_pending = true;
    run_on_backend([&]() -> ut::task<> {
        ut::process p = ut::process::spawn({"true"}, ut::process_options{.in = ut::stdio::pipe()});
        co_await p.wait();
        try {
            co_await p.in().write_all("nobody reads this");
            ADD_FAILURE() << "write to an exited child succeeded";
        } catch (const std::system_error& e) {
            code = e.code().value();
            what = e.what();
        }
        sigset_t pending;
        sigpending(&pending);
        sigpipe_pending = sigismember(&pending, SIGPIPE) == 1;
    }());
    // Still alive, so no SIGPIPE killed us; none is left pending either, and
    // the disposition was not touched.
    EXPECT_EQ(code, EPIPE);
    EXPECT_NE(what.find("stdin of true"), std::string::npos) << what;
    EXPECT_FALSE(sigpipe_pending);
    struct sigaction sa {};
    ::sigaction(SIGPIPE, nullptr, &sa);
    EXPECT_EQ(sa.sa_handler, SIG_DFL);
}

TEST_P(ProcessTest, PipeStreamOverAPlainPipeReadsWritesAndReportsEpipe) {
    std::string got;
    std::vector<int> codes;
    bool still_blocked = false, pending_after = true;
    run_on_backend([&]() -> ut::task<> {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
        ut::pipe_stream r(p[0], "test pipe (read end)");
        ut::pipe_stream w(p[1], "test pipe (write end)");
        // More than the pipe holds: the writer parks until the reader drains.
        const std::string data = pattern(std::size_t{1} << 20);
        auto writer = ut::spawn([](ut::pipe_stream& w, const std::string& d) -> ut::task<> {
            co_await w.write_all(d);
            w.close();
        }(w, data));
        got = co_await r.read_to_end();
        co_await writer;
        EXPECT_TRUE(got == data);
        r.close();

        // Reader gone: EPIPE, with SIGPIPE unblocked in this thread...
        EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
        ut::pipe_stream w2(p[1], "test pipe");
        ::close(p[0]);
        for (int round = 0; round < 2; ++round) {
            // ...and then with the caller blocking SIGPIPE itself: the mask is
            // left as it was, and the signal our write raised is not left
            // pending to kill the program when it unblocks.
            sigset_t pipe_only, old;
            sigemptyset(&pipe_only);
            sigaddset(&pipe_only, SIGPIPE);
            if (round == 1) pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
            try {
                co_await w2.write_all("x");
            } catch (const std::system_error& e) {
                codes.push_back(e.code().value());
            }
            if (round == 1) {
                sigset_t now, pending;
                pthread_sigmask(SIG_BLOCK, nullptr, &now);
                still_blocked = sigismember(&now, SIGPIPE) == 1;
                sigpending(&pending);
                pending_after = sigismember(&pending, SIGPIPE) == 1;
                pthread_sigmask(SIG_SETMASK, &old, nullptr);
            }
        }
    }());
    EXPECT_EQ(got.size(), std::size_t{1} << 20);
    EXPECT_EQ(codes, (std::vector<int>{EPIPE, EPIPE}));
    EXPECT_TRUE(still_blocked);
    EXPECT_FALSE(pending_after);
}

TEST_P(ProcessTest, RunProcessIgnoresAChildThatStopsReadingInput) {
    ut::process_result r;
    const std::string data = pattern(std::size_t{1} << 20);
    run_on_backend([&]() -> ut::task<> {
        r = co_await ut::run_process({"head", "-c", "10"}, data);
    }());
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out, data.substr(0, 10));
}

TEST_P(ProcessTest, CancellingWaitLosesNothing) {
    bool was_cancelled = false;
    ut::exit_status st;
    run_on_backend([&]() -> ut::task<> {
        ut::process p = ut::process::spawn({"sleep", "30"});
        std::atomic<bool> started{false};  // the waiter may run on another worker
        auto h = ut::spawn([](ut::process& p, std::atomic<bool>& started) -> ut::task<> {
            started = true;
            co_await p.wait();
        }(p, started));
        co_await yield_until([&] { return started.load(); }, "waiter started");
        co_await ut::yield_now();
        h.cancel();
        was_cancelled = co_await join_expect_cancelled(h);
        // The process is still there to be killed and waited for.
        EXPECT_FALSE(p.try_wait().has_value());
        p.kill(SIGKILL);
        st = co_await p.wait();
    }());
    EXPECT_TRUE(was_cancelled);
    EXPECT_EQ(st.signal, SIGKILL);
}

TEST_P(ProcessTest, CancellingRunProcessMidwayKillsAndReapsTheChild) {
    temp_file marker;
    std::filesystem::remove(marker.path);
    bool was_cancelled = false;
    std::vector<pid_t> children_after;
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        auto h = ut::spawn(
            ut::run_process({"sh", "-c", "echo partial; : > \"$0\"; exec sleep 30", marker.path}));
        // Wait (real time) until the child is surely running and blocked.
        co_await yield_until([&] { return std::filesystem::exists(marker.path); }, "child started");
        h.cancel();
        was_cancelled = co_await join_expect_cancelled(h);
        children_after = live_children();
    }());
    EXPECT_TRUE(was_cancelled);
    EXPECT_EQ(children_after, std::vector<pid_t>{});
    EXPECT_LT(wall_now() - w0, 20s);
}

TEST_P(ProcessTest, RunProcessLeftRunningWhenMainReturnsIsKilledAndReaped) {
    temp_file marker;
    std::filesystem::remove(marker.path);
    auto w0 = wall_now();
    run_on_backend([&]() -> ut::task<> {
        // Detached: the end of the run cancels it, which must kill and reap
        // the child before run() returns.
        ut::spawn(ut::run_process({"sh", "-c", ": > \"$0\"; exec sleep 30", marker.path}),
                  "left running");
        co_await yield_until([&] { return std::filesystem::exists(marker.path); }, "child started");
    }());
    EXPECT_LT(wall_now() - w0, 20s);
    EXPECT_EQ(live_children(), std::vector<pid_t>{});
    EXPECT_EQ(zombie_child(), 0);
}

TEST_P(ProcessTest, DroppedProcessIsReapedInTheBackgroundNotKilled) {
    temp_file marker;
    std::filesystem::remove(marker.path);
    std::vector<pid_t> pids;
    bool drained = false;
    pid_t zombie = -1;
    run_on_backend([&]() -> ut::task<> {
        {
            // Exits as soon as its stdin pipe is closed by the destructor.
            ut::process quick = ut::process::spawn(
                {"cat"}, ut::process_options{.in = ut::stdio::pipe(), .out = ut::stdio::null()});
            // Still running when dropped; finishes its work (the marker proves
            // it was not killed) and is reaped by the reaper thread.
            ut::process slow =
                ut::process::spawn({"sh", "-c", "sleep 0.2; : > \"$0\"", marker.path});
            pids = {quick.pid(), slow.pid()};
        }
        drained = wait_for_orphans();
        zombie = zombie_child();
        co_return;
    }());
    EXPECT_TRUE(drained);
    EXPECT_EQ(zombie, 0);
    EXPECT_TRUE(std::filesystem::exists(marker.path)) << "the dropped child did not finish";
    for (pid_t pid : pids) EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)));
}

TEST_P(ProcessTest, ConcurrentProcessesAndTryWait) {
    std::vector<ut::process_result> results;
    std::optional<ut::exit_status> early;
    run_on_backend([&]() -> ut::task<> {
        std::vector<ut::task<ut::process_result>> runs;
        runs.reserve(8);
        for (int i = 0; i < 8; ++i)
            runs.push_back(ut::run_process({"sh", "-c", "echo $0; exit $0", std::to_string(i)}));
        results = co_await ut::when_all(std::move(runs));
        ut::process p = ut::process::spawn({"sleep", "30"});
        early = p.try_wait();
        p.kill();
        co_await p.wait();
    }());
    ASSERT_EQ(results.size(), 8u);
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(results[i].exit_code, i);
        EXPECT_EQ(results[i].out, std::to_string(i) + "\n");
    }
    EXPECT_FALSE(early.has_value());
}

INSTANTIATE_TEST_SUITE_P(AllBackends, ProcessTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, ProcessTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
