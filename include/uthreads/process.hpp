/// \file
/// Subprocesses: `process::spawn`, `co_await p.wait()`, `p.kill(sig)`, and
/// `co_await run_process(argv, input)` → {exit_code, out, err}.
///
/// How it works, and what it promises:
/// - **Spawning** is posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), so it
///   costs no page-table copy however big the parent is) followed by
///   pidfd_open. It is synchronous: a program that cannot be executed (ENOENT,
///   EACCES, a bad cwd) is std::system_error from `spawn` itself, naming the
///   program. Not a suspension point; `spawn` may be called outside a runtime.
/// - **Descriptors**: the child gets exactly 0, 1 and 2 — everything else is
///   closed in the child (close_range from 3 up), whether or not it was CLOEXEC.
///   A `stdio::fd` is dup'ed onto the child's 0, 1 or 2; every descriptor
///   uthreads creates is CLOEXEC.
/// - **Signals**: the child starts with an empty signal mask and SIGPIPE and
///   SIGXFSZ at their default action, whatever the parent's thread had blocked
///   or ignored. The parent's dispositions are never changed and no SIGCHLD
///   handler is installed.
/// - **Waiting** is readiness of the pidfd (it becomes readable when the child
///   exits), through the same descriptor machinery as sockets, so it works on
///   every backend, owned or guest; the child is then reaped with
///   waitid(P_PIDFD). A process is never reaped by anyone else, so its pid
///   cannot be reused while a `process` refers to it, and `kill` cannot hit a
///   stranger. Do not call waitpid(-1) (or set SIGCHLD to SIG_IGN) in a
///   program that uses this: it would steal the exit status.
/// - **No zombies**: a `process` destroyed before its exit was collected does
///   not kill the child. Its pipes are closed (the child sees end of stream
///   on stdin and EPIPE on output), and the pidfd goes to a background reaper:
///   one helper thread, started on demand, all signals blocked, that waits for
///   every orphaned child with poll(2) on their pidfds, reaps each as it exits,
///   and ends when none is left. `lowlevel::unreaped_orphans()` counts them.
///
/// Thread safety: a process object is used by microthreads of one runtime, on
/// any of its workers (spawned on one, waited on another); at most one of them waits in `wait()` at a time (a second concurrent wait is
/// std::logic_error), as with a socket's reads. The reaper is process-wide and
/// thread-safe.
#pragma once

#include <uthreads/pipe.hpp>
#include <uthreads/runtime.hpp>

#include <csignal>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace uthreads {

/// How one of a child's standard streams (0, 1, 2) is set up.
class stdio {
public:
    enum class kind : unsigned char {
        unset,    ///< the default of the call: inherit for spawn, pipe for run_process
        inherit,  ///< the child shares the parent's descriptor
        null,     ///< /dev/null
        pipe,     ///< a pipe; the parent's end is process::in() / out() / err()
        fd,       ///< a descriptor of the caller's, dup'ed onto the child's
    };
    /// Default: `kind::unset`.
    constexpr stdio() noexcept = default;
    static constexpr stdio inherit() noexcept { return stdio(kind::inherit, -1); }
    static constexpr stdio null() noexcept { return stdio(kind::null, -1); }
    static constexpr stdio pipe() noexcept { return stdio(kind::pipe, -1); }
    /// The child gets a duplicate of `fd`, which stays the caller's (still open,
    /// still owned, and needed only until `spawn` returns). The open file is
    /// shared, flags included: pass a blocking descriptor. Throws
    /// std::invalid_argument for a negative `fd`.
    static stdio fd(int fd);

    constexpr kind mode() const noexcept { return kind_; }
    constexpr int descriptor() const noexcept { return fd_; }

private:
    constexpr stdio(kind k, int fd) noexcept
        : kind_(k)
        , fd_(fd) {}
    kind kind_ = kind::unset;
    int fd_ = -1;
};

/// Options of process::spawn and run_process.
struct process_options {
    /// Environment changes. By default the child gets the parent's environment
    /// (environ at the time of spawn) with these applied: a value sets (adds or
    /// replaces) the variable, std::nullopt removes it. With `clear_env`, the
    /// child's environment is exactly the variables given a value here. Names
    /// must be non-empty and contain no '=' (std::invalid_argument otherwise).
    std::map<std::string, std::optional<std::string>> env;
    bool clear_env = false;
    /// Working directory of the child ("" = the parent's). A relative program
    /// path (with a '/') is resolved from it; a bare name is searched in the
    /// *parent's* PATH, whatever `env` says.
    std::string cwd;
    /// The child's stdin, stdout, stderr (see stdio).
    stdio in;
    stdio out;
    stdio err;
};

/// How a child ended.
struct exit_status {
    /// exit(n) → n (0..255). Killed by signal s → 128 + s, as a shell's `$?`
    /// reports it; `signal` tells the two apart.
    int exit_code = 0;
    /// The signal that killed the child, or 0 if it exited.
    int signal = 0;
    /// True if it was killed by a signal and dumped core.
    bool core_dumped = false;

    bool exited() const noexcept { return signal == 0; }
    bool signaled() const noexcept { return signal != 0; }
    /// Exited with status 0.
    bool success() const noexcept { return signal == 0 && exit_code == 0; }
};

/// A child process started by `process::spawn`. Move-only.
class process {
public:
    process() noexcept = default;
    process(process&& o) noexcept;
    process& operator=(process&& o) noexcept;
    /// Closes the pipes; a child whose exit was not yet collected keeps running
    /// and is handed to the background reaper (see the file comment): never
    /// killed, never a zombie.
    ~process();

    /// Start `argv[0]` with arguments `argv` (argv[0] without a '/' is searched
    /// in PATH). Throws std::invalid_argument for an empty argv or an invalid
    /// option, std::system_error naming the program if it cannot be started
    /// (ENOENT for a missing program or cwd, EACCES...). Not a suspension point.
    static process spawn(std::vector<std::string> argv, process_options opts = {});

    /// The child's pid (still valid after it was reaped, for messages).
    pid_t pid() const noexcept { return pid_; }
    /// argv[0] as given, for messages.
    const std::string& program() const noexcept { return program_; }

    /// Our ends of the child's stdin / stdout / stderr when they were set up
    /// as stdio::pipe(); closed (operations fail with EBADF) otherwise. Move
    /// them out to hand them to other microthreads. Closing stdin is end of
    /// stream for the child.
    pipe_stream& in() noexcept { return in_; }
    pipe_stream& out() noexcept { return out_; }
    pipe_stream& err() noexcept { return err_; }

    /// Wait for the child to exit and reap it. Once collected, further calls
    /// return the same status at once. Suspension and cancellation point:
    /// cancelling loses nothing (the child is reaped by a later wait, or by the
    /// reaper after destruction).
    task<exit_status> wait();

    /// The status if the child has exited (reaping it), else std::nullopt.
    /// Never blocks; not a suspension point.
    std::optional<exit_status> try_wait();

    /// Send `sig` to the child (pidfd_send_signal). A no-op once the child was
    /// reaped; sending to an exited, not yet reaped child is harmless. Throws
    /// std::system_error (EINVAL for a bad signal number) naming the program,
    /// std::logic_error on a default-constructed process.
    void kill(int sig = SIGKILL);

    /// True for a process started by spawn (and not moved from).
    bool valid() const noexcept { return pidfd_.is_open() || status_.has_value(); }

private:
    void orphan() noexcept;
    detail::io_object pidfd_;
    pid_t pid_ = 0;
    std::string program_;
    std::optional<exit_status> status_;
    pipe_stream in_;
    pipe_stream out_;
    pipe_stream err_;
};

/// What run_process returns: `auto [code, out, err, sig] = co_await ...`.
struct process_result {
    /// As exit_status::exit_code: 128 + signal if the child was killed.
    int exit_code = 0;
    /// Everything the child wrote to stdout / stderr (empty if not piped).
    std::string out;
    std::string err;
    /// The signal that killed the child, or 0 if it exited.
    int signal = 0;

    bool success() const noexcept { return signal == 0 && exit_code == 0; }
};

/// Run `argv` to completion: spawn it with `opts` (stdin, stdout and stderr
/// left unset become pipes), write `input` to its stdin and close it, while
/// reading stdout and stderr concurrently (so a child that writes a lot before
/// reading everything cannot deadlock against us), then reap it. `input` must
/// be empty unless stdin is a pipe (std::invalid_argument). A child that exits
/// without reading all of `input` is not an error (the EPIPE is ignored).
///
/// `timeout` (real time; on the sim backend virtual time, which jumps when the
/// loop is idle, so a child that is quiet for a moment times out at once):
/// when it passes, the child is killed with SIGKILL, reaped, and
/// uthreads::timeout_error is thrown naming the program; its output is lost.
///
/// Cancellation point. Cancelling it (or an enclosing timeout) kills the child
/// with SIGKILL and, shielded, waits for it to be reaped before `cancelled`
/// propagates; the output is lost. No child or zombie outlives the call.
task<process_result> run_process(std::vector<std::string> argv, std::string input = {},
                                 process_options opts = {},
                                 std::optional<clock::duration> timeout = std::nullopt);

namespace lowlevel {
/// Children handed to the background reaper (a `process` destroyed before its
/// exit was collected) that have not been reaped yet. For tests and leak
/// checks: 0 means no orphan zombie or reaper thread or descriptor remains.
std::size_t unreaped_orphans() noexcept;
}  // namespace lowlevel

}  // namespace uthreads
