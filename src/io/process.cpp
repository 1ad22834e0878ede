// Subprocesses: posix_spawn + pidfd_open, waiting on the pidfd's readiness
// like any descriptor, waitid(P_PIDFD) to reap. See uthreads/process.hpp for
// the promises; the reasoning behind the choices:
//
// - posix_spawn, not fork: glibc implements it with clone(CLONE_VM |
//   CLONE_VFORK) on a small private stack, so its cost does not grow with the
//   parent's address space, and an exec failure comes back as its return value
//   (the child writes errno into shared memory before _exit), which is what
//   lets spawn report ENOENT synchronously. glibc 2.34+ has the two extensions
//   we need: addchdir_np (cwd) and addclosefrom_np (the child keeps only 0-2).
// - pidfd_open after the fact, not clone3(CLONE_PIDFD) (glibc 2.36 has no
//   pidfd_spawn): no one but us waits for this child, so it stays unreaped
//   (a zombie at worst) until we reap it, and its pid cannot be reused in
//   between.
// - Real pipes, not a socketpair, for the child's stdio: a child may reopen
//   /dev/stdin (or /proc/self/fd/0), which fails with ENXIO on a socket, and
//   some programs behave differently on sockets. The price is SIGPIPE
//   handling on our writes (stream_socket.cpp, write_without_sigpipe).
#include "reaper.hpp"

#include <uthreads/cancel.hpp>
#include <uthreads/nursery.hpp>
#include <uthreads/process.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <stdexcept>
#include <string_view>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace uthreads {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), "uthreads: " + what);
}

// glibc 2.36's <sys/pidfd.h> declares its wrappers without __BEGIN_DECLS, so
// included from C++ they get C++ linkage and do not link (undefined reference
// to `pidfd_open(int, unsigned int)`): call the system calls directly.
int sys_pidfd_open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
}

int sys_pidfd_send_signal(int pidfd, int sig) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

std::string describe(const std::string& program, pid_t pid) {
    return program + " (pid " + std::to_string(pid) + ")";
}

void check_no_nul(const std::string& s, const std::string& what) {
    if (s.find('\0') != std::string::npos)
        throw std::invalid_argument("uthreads::process::spawn: " + what + " contains a NUL byte");
}

// Descriptors spawn opened and must close whatever happens: the child's ends
// of pipes and temporary duplicates (closed once the child has its copies),
// and our ends of pipes until they are handed to the process object.
struct fd_list {
    std::vector<int> fds;
    ~fd_list() {
        for (int fd : fds) ::close(fd);
    }
    int add(int fd) {
        fds.push_back(fd);
        return fd;
    }
};

struct file_actions {
    posix_spawn_file_actions_t fa;
    file_actions() {
        if (int e = posix_spawn_file_actions_init(&fa))
            throw_errno(e, "posix_spawn_file_actions_init");
    }
    ~file_actions() { posix_spawn_file_actions_destroy(&fa); }
    file_actions(const file_actions&) = delete;
    file_actions& operator=(const file_actions&) = delete;
};

struct spawn_attr {
    posix_spawnattr_t attr;
    spawn_attr() {
        if (int e = posix_spawnattr_init(&attr)) throw_errno(e, "posix_spawnattr_init");
    }
    ~spawn_attr() { posix_spawnattr_destroy(&attr); }
    spawn_attr(const spawn_attr&) = delete;
    spawn_attr& operator=(const spawn_attr&) = delete;
};

void check(int err, const char* what) {
    if (err != 0) throw_errno(err, std::string("process::spawn: ") + what);
}

// A descriptor for the child to dup2 onto 0, 1 or 2 must not itself be one of
// 0-2: an earlier dup2 could overwrite it, and dup2(fd, fd) would keep its
// CLOEXEC flag. Move such a descriptor above 2 (the copy is closed after spawn).
int above_stdio(int fd, fd_list& temps) {
    if (fd > 2) return fd;
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        throw_errno(errno, "process::spawn: duplicating descriptor " + std::to_string(fd));
    return temps.add(copy);
}

exit_status decode(const siginfo_t& info) {
    exit_status st;
    switch (info.si_code) {
    case CLD_EXITED:
        st.exit_code = info.si_status;
        break;
    case CLD_DUMPED:
        st.core_dumped = true;
        [[fallthrough]];
    default:  // CLD_KILLED
        st.signal = info.si_status;
        st.exit_code = 128 + info.si_status;
        break;
    }
    return st;
}

}  // namespace

// ---- stdio ---------------------------------------------------------------

stdio stdio::fd(int fd) {
    if (fd < 0)
        throw std::invalid_argument("uthreads::stdio::fd: fd must not be negative (got " +
                                    std::to_string(fd) + ")");
    return stdio(kind::fd, fd);
}

// ---- process -------------------------------------------------------------

process::process(process&& o) noexcept
    : pidfd_(std::move(o.pidfd_))
    , pid_(o.pid_)
    , program_(std::move(o.program_))
    , status_(std::exchange(o.status_, std::nullopt))
    , in_(std::move(o.in_))
    , out_(std::move(o.out_))
    , err_(std::move(o.err_)) {}

process& process::operator=(process&& o) noexcept {
    if (this != &o) {
        orphan();
        pidfd_ = std::move(o.pidfd_);
        pid_ = o.pid_;
        program_ = std::move(o.program_);
        status_ = std::exchange(o.status_, std::nullopt);
        in_ = std::move(o.in_);
        out_ = std::move(o.out_);
        err_ = std::move(o.err_);
    }
    return *this;
}

process::~process() {
    orphan();
}

void process::orphan() noexcept {
    // Pipes first: a child blocked writing to us or reading from us then sees
    // EPIPE or end of stream instead of waiting for a reader that is gone.
    in_.close();
    out_.close();
    err_.close();
    if (pidfd_.is_open()) detail::reap_in_background(pidfd_.release());
}

process process::spawn(std::vector<std::string> argv, process_options opts) {
    if (argv.empty()) throw std::invalid_argument("uthreads::process::spawn: argv is empty");
    if (argv[0].empty()) throw std::invalid_argument("uthreads::process::spawn: argv[0] is empty");
    for (std::size_t i = 0; i < argv.size(); ++i)
        check_no_nul(argv[i], "argv[" + std::to_string(i) + "]");
    check_no_nul(opts.cwd, "cwd");

    // The environment: the parent's minus the names `env` mentions, plus the
    // ones it gives a value; or only the latter with clear_env.
    std::vector<std::string> added;
    std::vector<char*> envp;
    char** child_env = environ;
    if (!opts.env.empty() || opts.clear_env) {
        for (const auto& [name, value] : opts.env) {
            if (name.empty() || name.find('=') != std::string::npos)
                throw std::invalid_argument("uthreads::process::spawn: env name \"" + name +
                                            "\" is empty or contains '='");
            check_no_nul(name, "env name");
            if (value) {
                check_no_nul(*value, "env value of " + name);
                added.push_back(name + "=" + *value);
            }
        }
        if (!opts.clear_env) {
            for (char** e = environ; e && *e; ++e) {
                std::string_view kv(*e);
                std::string_view name = kv.substr(0, kv.find('='));
                if (opts.env.find(std::string(name)) == opts.env.end()) envp.push_back(*e);
            }
        }
        for (std::string& kv : added) envp.push_back(kv.data());
        envp.push_back(nullptr);
        child_env = envp.data();
    }

    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);

    file_actions fa;
    if (!opts.cwd.empty())
        check(posix_spawn_file_actions_addchdir_np(&fa.fa, opts.cwd.c_str()), "addchdir");

    fd_list close_after;  // child ends and temporary copies
    fd_list ours;         // our pipe ends, until the process object owns them
    int parent_end[3] = {-1, -1, -1};
    const stdio* streams[3] = {&opts.in, &opts.out, &opts.err};
    for (int target = 0; target < 3; ++target) {
        const stdio& s = *streams[target];
        switch (s.mode()) {
        case stdio::kind::unset:
        case stdio::kind::inherit:
            break;
        case stdio::kind::null:
            check(posix_spawn_file_actions_addopen(&fa.fa, target, "/dev/null",
                                                   target == 0 ? O_RDONLY : O_WRONLY, 0),
                  "addopen /dev/null");
            break;
        case stdio::kind::fd:
            check(posix_spawn_file_actions_adddup2(&fa.fa, above_stdio(s.descriptor(), close_after),
                                                   target),
                  "adddup2");
            break;
        case stdio::kind::pipe: {
            int p[2];
            if (::pipe2(p, O_CLOEXEC) != 0)
                throw_errno(errno, "process::spawn: pipe2 for " + argv[0]);
            int child = close_after.add(target == 0 ? p[0] : p[1]);
            int mine = ours.add(target == 0 ? p[1] : p[0]);
            // Only our end is non-blocking: O_NONBLOCK belongs to the open file,
            // and the child's end is a different one.
            if (::fcntl(mine, F_SETFL, O_NONBLOCK) != 0)
                throw_errno(errno, "process::spawn: making a pipe non-blocking");
            check(posix_spawn_file_actions_adddup2(&fa.fa, above_stdio(child, close_after), target),
                  "adddup2");
            parent_end[target] = mine;
            break;
        }
        }
    }
    // After the dup2s, which need their sources open: the child keeps 0-2 only.
    check(posix_spawn_file_actions_addclosefrom_np(&fa.fa, 3), "addclosefrom");

    // The child starts with an empty mask (the calling thread may block signals
    // for a signalfd) and default SIGPIPE/SIGXFSZ (the program may ignore them;
    // an ignored disposition survives exec). Caught signals are reset by exec.
    spawn_attr attr;
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    check(posix_spawnattr_setsigmask(&attr.attr, &empty), "setsigmask");
    check(posix_spawnattr_setsigdefault(&attr.attr, &defaults), "setsigdefault");
    check(posix_spawnattr_setflags(&attr.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
          "setflags");

    pid_t pid = 0;
    bool search = argv[0].find('/') == std::string::npos;
    int err = search ? ::posix_spawnp(&pid, args[0], &fa.fa, &attr.attr, args.data(), child_env)
                     : ::posix_spawn(&pid, args[0], &fa.fa, &attr.attr, args.data(), child_env);
    if (err != 0)
        throw_errno(err, "spawn \"" + argv[0] + "\"" +
                             (opts.cwd.empty() ? std::string() : " in \"" + opts.cwd + "\""));

    process p;
    p.pid_ = pid;
    p.program_ = std::move(argv[0]);
    // Without a pidfd the child cannot be waited for safely: do not leave it
    // running or unreaped.
    auto kill_and_reap = [pid] {
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
    };
    int pidfd = sys_pidfd_open(pid);
    if (pidfd < 0) {
        int e = errno;
        kill_and_reap();
        throw_errno(e, "pidfd_open for " + describe(p.program_, pid));
    }
    try {
        p.pidfd_ = detail::io_object(pidfd);
    } catch (...) {  // out of memory for the registration state
        ::close(pidfd);
        kill_and_reap();
        throw;
    }
    static const char* const stream_name[3] = {"stdin of ", "stdout of ", "stderr of "};
    pipe_stream* ends[3] = {&p.in_, &p.out_, &p.err_};
    for (int i = 0; i < 3; ++i) {
        if (parent_end[i] < 0) continue;
        *ends[i] = pipe_stream(pipe_stream::adopt_t{}, parent_end[i],
                               stream_name[i] + describe(p.program_, pid));
    }
    ours.fds.clear();  // owned by p now
    return p;
}

std::optional<exit_status> process::try_wait() {
    if (status_) return status_;
    if (!pidfd_.is_open())
        throw std::logic_error(
            "uthreads::process::try_wait: not a process (default-constructed or moved from)");
    siginfo_t info{};
    while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.fd()), &info,
                    WEXITED | WNOHANG) != 0) {
        if (errno != EINTR) throw_errno(errno, "waitid for " + describe(program_, pid_));
    }
    if (info.si_pid == 0) return std::nullopt;
    status_ = decode(info);
    pidfd_.close();
    return status_;
}

task<exit_status> process::wait() {
    co_await detail::checkpoint("process::wait");
    if (status_) co_return *status_;
    if (!pidfd_.is_open())
        throw std::logic_error(
            "uthreads::process::wait: not a process (default-constructed or moved from)");
    for (;;) {
        if (std::optional<exit_status> st = try_wait()) co_return *st;
        // The pidfd polls readable once the child has exited.
        co_await pidfd_.wait_ready(lowlevel::readable, "process::wait");
    }
}

void process::kill(int sig) {
    if (status_) return;
    if (!pidfd_.is_open())
        throw std::logic_error(
            "uthreads::process::kill: not a process (default-constructed or moved from)");
    if (sys_pidfd_send_signal(pidfd_.fd(), sig) != 0 && errno != ESRCH)
        throw_errno(errno,
                    "kill " + describe(program_, pid_) + " with signal " + std::to_string(sig));
}

// ---- run_process ---------------------------------------------------------

namespace {

task<void> feed(pipe_stream& in, const std::string& input) {
    try {
        co_await in.write_all(input);
    } catch (const std::system_error& e) {
        // The child exited (or closed stdin) without reading everything: its
        // business, not an error of ours; its exit status says how it went.
        if (e.code() != std::errc::broken_pipe) throw;
    }
    in.close();
}

task<void> drain(pipe_stream& from, std::string& into) {
    into = co_await from.read_to_end();
}

// Write the input, read both outputs to their end, reap the child.
task<void> communicate(process& p, const std::string& input, process_result& r) {
    if (p.in().is_open() && input.empty()) p.in().close();
    co_await with_nursery([&](nursery& n) -> task<void> {
        if (p.in().is_open()) n.spawn(feed(p.in(), input), "run_process: stdin");
        if (p.err().is_open()) n.spawn(drain(p.err(), r.err), "run_process: stderr");
        if (p.out().is_open()) co_await drain(p.out(), r.out);
    });
    exit_status st = co_await p.wait();
    r.exit_code = st.exit_code;
    r.signal = st.signal;
}

}  // namespace

task<process_result> run_process(std::vector<std::string> argv, std::string input,
                                 process_options opts, std::optional<clock::duration> timeout) {
    co_await detail::checkpoint("run_process");
    if (timeout && *timeout < clock::duration::zero())
        throw std::invalid_argument("uthreads::run_process: timeout is negative");
    for (stdio* s : {&opts.in, &opts.out, &opts.err})
        if (s->mode() == stdio::kind::unset) *s = stdio::pipe();
    if (!input.empty() && opts.in.mode() != stdio::kind::pipe)
        throw std::invalid_argument("uthreads::run_process: input given but opts.in is not a pipe");

    process p = process::spawn(std::move(argv), std::move(opts));
    process_result r;
    bool finished = false;
    std::exception_ptr failure;
    try {
        if (timeout)
            finished = co_await move_on_after(*timeout, communicate(p, input, r));
        else {
            co_await communicate(p, input, r);
            finished = true;
        }
    } catch (...) {  // including cancelled
        failure = std::current_exception();
    }
    if (finished) co_return r;

    // Timed out, cancelled or failed: the child must not outlive the call.
    // SIGKILL cannot be caught, so the shielded wait is short (unless the child
    // is stuck in an uninterruptible sleep, which delays us with it).
    p.in().close();
    p.out().close();
    p.err().close();
    p.kill(SIGKILL);
    {
        cancel_shield shield;
        co_await p.wait();
    }
    if (failure) std::rethrow_exception(failure);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count();
    throw timeout_error("uthreads: run_process: " + describe(p.program(), p.pid()) +
                        " did not finish within " + std::to_string(ms) +
                        " ms; killed with SIGKILL");
}

}  // namespace uthreads
