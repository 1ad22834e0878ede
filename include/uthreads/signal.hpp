/// \file
/// Unix signals as values a microthread waits for: `signal_set`.
///
///     ut::signal_set sigs{SIGINT, SIGTERM};
///     int sig = co_await sigs.wait();   // SIGINT or SIGTERM
///
/// While at least one `signal_set` lists a signal, uthreads' own handler is
/// installed for it (sigaction, SA_RESTART). The handler does only
/// async-signal-safe things: it writes the signal number to a non-blocking,
/// CLOEXEC pipe belonging to each set that lists the signal, and restores
/// errno. Deliveries are therefore queued in the set, in arrival order, until a
/// `wait` takes them: a signal that arrives while nobody waits is not lost. Two
/// sets listing the same signal each see every delivery. When the last set
/// listing a signal is destroyed, the disposition that was in place before the
/// first one was created is restored exactly (handler, mask and flags), so no
/// process-wide side effect outlives the sets.
///
/// What the kernel does before our handler runs still applies: a standard
/// (non-realtime) signal raised again while it is pending is merged into one
/// delivery, and a signal blocked (pthread_sigmask) in every thread stays
/// pending and is not seen. While a set exists, the previous handler is not
/// called. A set queues up to 64 KiB of undelivered signals (the pipe's
/// capacity); beyond that, further deliveries are dropped.
///
/// Works identically on every backend: `wait` waits for the pipe to become
/// readable through the runtime's readiness machinery.
///
/// Thread safety: sets may be created and destroyed from any thread (a
/// process-wide registry behind a mutex; the handler itself takes no lock). One
/// set is used by microthreads of one runtime, one `wait` at a time.
#pragma once

#include <uthreads/net.hpp>

#include <initializer_list>
#include <optional>
#include <vector>

namespace uthreads {

/// A set of signals delivered to microthreads instead of the process's
/// handlers. Move-only; destroying the last set for a signal restores the
/// signal's previous disposition.
class signal_set {
public:
    /// Start catching `signals` (duplicates are ignored). Throws
    /// std::invalid_argument naming the signal for a number that is not a
    /// signal, one that cannot be caught (SIGKILL, SIGSTOP), one whose handler
    /// could not return safely when the kernel raises it for a fault (SIGSEGV,
    /// SIGBUS, SIGFPE, SIGILL), or one the C library reserves for itself; and
    /// for an empty list. Throws std::system_error if the pipe or sigaction
    /// fails, std::length_error if 256 sets are alive already. Not a
    /// suspension point; may be called outside a runtime. Signals arriving
    /// from the moment the constructor returns are queued in the set.
    signal_set(std::initializer_list<int> signals);
    signal_set(signal_set&& o) noexcept;
    signal_set& operator=(signal_set&& o) noexcept;
    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;
    ~signal_set();

    /// Wait for the next delivery of one of the set's signals and return its
    /// number (deliveries queued before the call are returned first, oldest
    /// first). Suspension and cancellation point: cancelling it loses nothing
    /// (a delivery is taken from the queue only by a wait that returns it).
    /// Throws std::logic_error on a moved-from set. The set must not be moved
    /// while a wait is pending; destroying it makes the wait fail with EBADF.
    task<int> wait();

    /// The next queued delivery, or nullopt if none is queued. Never suspends.
    std::optional<int> try_wait();

    /// The signals this set catches, in ascending order (empty once moved from).
    const std::vector<int>& signals() const noexcept { return signals_; }

private:
    void release() noexcept;

    detail::io_object reader_;  // the pipe's read end
    std::vector<int> signals_;
    int slot_ = -1;  // our entry in the handler's table; -1: moved from
};

}  // namespace uthreads
