// signal_set: a process-wide sigaction handler that forwards each delivery to
// the pipes of the sets listing the signal.
//
// Some facts about signal handlers this file depends on:
// - A handler may run on any thread that does not block the signal, at any
//   instruction, including while that thread holds a lock or is inside malloc.
//   It may therefore only call async-signal-safe functions (write(2) is one) and
//   touch lock-free atomics; it must leave errno as it found it.
// - The handler runs to completion before the interrupted code on its thread
//   continues, so code that waits for handlers to leave (release() below)
//   cannot be waiting for one interrupting itself.
// - sigaction(2) reads and replaces the whole disposition (handler, mask,
//   flags) in one call, which is how the previous one is restored exactly.
// - glibc reserves the two lowest realtime signals (32 and 33) for its threads;
//   SIGRTMIN is the first one applications may use.
//
// The table the handler reads is a fixed array of slots (no allocation, no
// lock). The registry that allocates slots and counts, per signal, how many
// sets want it is protected by a mutex that the handler never takes.
#include "../core/scheduler_internal.hpp"

#include <uthreads/signal.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace uthreads {

namespace {

constexpr int max_sets = 256;

// Signal numbers run from 1 to NSIG - 1; one bit each in a 64-bit mask.
static_assert(NSIG - 1 <= 64, "signal numbers must fit a 64-bit mask");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<int>::is_always_lock_free,
              "the signal handler may only use lock-free atomics");

std::uint64_t bit_of(int sig) noexcept {
    return std::uint64_t{1} << (sig - 1);
}

/// One live signal_set as the handler sees it.
struct slot {
    // Signals the set wants; 0 for a free slot. A nonzero mask is published
    // (seq_cst store) only after `fd` is set, and cleared before `fd` is.
    std::atomic<std::uint64_t> mask{0};
    // The write end of the set's pipe.
    std::atomic<int> fd{-1};
    // Handlers currently between checking `mask` and finishing their write.
    std::atomic<int> busy{0};
};

slot table[max_sets];
// Slots [0, table_size) may be in use; only grows (under the registry mutex).
std::atomic<int> table_size{0};

/// Everything else, changed only under `mu` (never touched by the handler).
struct registry {
    std::mutex mu;
    bool used[max_sets] = {};
    int refs[NSIG] = {};              // live sets listing each signal
    struct sigaction saved[NSIG] {};  // the disposition before the first of them
};

registry& the_registry() {
    static registry r;
    return r;
}

void on_signal(int sig) noexcept {
    const int saved_errno = errno;
    const std::uint64_t bit = bit_of(sig);
    const auto byte = static_cast<unsigned char>(sig);
    // acquire: pairs with the release in publish(), so slots below the size we
    // read are initialised.
    const int n = table_size.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) {
        slot& s = table[i];
        // relaxed: only a hint; the seq_cst load below decides.
        if (!(s.mask.load(std::memory_order_relaxed) & bit)) continue;
        // seq_cst on busy and mask, here and in release(): in the single total
        // order either release() sees busy > 0 and waits for us, or we see the
        // cleared mask and leave the descriptor alone. So we never write to a
        // descriptor number that release() has closed (and that may be reused).
        s.busy.fetch_add(1, std::memory_order_seq_cst);
        if (s.mask.load(std::memory_order_seq_cst) & bit) {
            // The mask we saw was stored after this fd (seq_cst store, a release).
            int fd = s.fd.load(std::memory_order_relaxed);
            // Non-blocking: a full pipe (64 KiB of undelivered signals) drops
            // this delivery rather than hang the thread in a handler.
            if (fd >= 0) (void)::write(fd, &byte, 1);
        }
        s.busy.fetch_sub(1, std::memory_order_seq_cst);
    }
    errno = saved_errno;
}

std::string signal_name(int sig) {
    std::string out = "signal " + std::to_string(sig);
    if (sig > 0 && sig < NSIG) {
        if (const char* abbrev = ::sigabbrev_np(sig)) out += std::string(" (SIG") + abbrev + ")";
    }
    return out;
}

void check_signal(int sig) {
    auto reject = [sig](const char* why) {
        throw std::invalid_argument("uthreads: signal_set: " + signal_name(sig) + " " + why);
    };
    if (sig <= 0 || sig >= NSIG) reject("is not a signal number");
    if (sig == SIGKILL || sig == SIGSTOP) reject("cannot be caught");
    // The kernel raises these for a faulting instruction; a handler that
    // returns would run the same instruction again, forever.
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL)
        reject("reports a fault and cannot be waited for");
    if (sig > SIGSYS && sig < SIGRTMIN) reject("is reserved by the C library");
}

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), "uthreads: signal_set: " + what);
}

/// Install our handler for `sig` (under the registry mutex), saving the old
/// disposition if this is the first set for it.
void acquire_signal(registry& r, int sig) {
    if (r.refs[sig]++ > 0) return;
    struct sigaction act {};
    act.sa_handler = on_signal;
    // Every signal blocked while the handler runs keeps handlers from nesting
    // (harmless, but it keeps the busy counts small). SA_RESTART: interrupted
    // system calls elsewhere in the program resume instead of failing EINTR.
    sigfillset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    if (::sigaction(sig, &act, &r.saved[sig]) != 0) {
        int err = errno;
        --r.refs[sig];
        throw_errno(err, "sigaction " + signal_name(sig));
    }
}

/// The reverse of acquire_signal: the last set restores the saved disposition.
void release_signal(registry& r, int sig) noexcept {
    if (--r.refs[sig] > 0) return;
    (void)::sigaction(sig, &r.saved[sig], nullptr);
}

}  // namespace

signal_set::signal_set(std::initializer_list<int> signals) {
    for (int sig : signals) check_signal(sig);
    if (signals.size() == 0) throw std::invalid_argument("uthreads: signal_set: signals is empty");
    signals_.assign(signals.begin(), signals.end());
    std::sort(signals_.begin(), signals_.end());
    signals_.erase(std::unique(signals_.begin(), signals_.end()), signals_.end());
    std::uint64_t mask = 0;
    for (int sig : signals_) mask |= bit_of(sig);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno(errno, "pipe2");
    reader_ = detail::io_object(fds[0]);

    registry& r = the_registry();
    std::lock_guard lock(r.mu);
    int i = 0;
    while (i < max_sets && r.used[i]) ++i;
    if (i == max_sets) {
        ::close(fds[1]);
        throw std::length_error("uthreads: signal_set: more than " + std::to_string(max_sets) +
                                " signal sets are alive");
    }
    // Publish the slot before installing any handler, so that every delivery
    // from the first one on reaches this set.
    r.used[i] = true;
    table[i].fd.store(fds[1], std::memory_order_relaxed);
    table[i].mask.store(mask, std::memory_order_seq_cst);
    if (i >= table_size.load(std::memory_order_relaxed))
        table_size.store(i + 1, std::memory_order_release);
    slot_ = i;
    std::size_t installed = 0;
    try {
        for (int sig : signals_) {
            acquire_signal(r, sig);
            ++installed;
        }
    } catch (...) {
        for (std::size_t k = 0; k < installed; ++k) release_signal(r, signals_[k]);
        table[i].mask.store(0, std::memory_order_seq_cst);
        while (table[i].busy.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
        ::close(table[i].fd.exchange(-1, std::memory_order_relaxed));
        r.used[i] = false;
        slot_ = -1;
        throw;
    }
}

signal_set::signal_set(signal_set&& o) noexcept
    : reader_(std::move(o.reader_))
    , signals_(std::move(o.signals_))
    , slot_(std::exchange(o.slot_, -1)) {
    o.signals_.clear();
}

signal_set& signal_set::operator=(signal_set&& o) noexcept {
    if (this != &o) {
        release();
        reader_ = std::move(o.reader_);
        signals_ = std::move(o.signals_);
        o.signals_.clear();
        slot_ = std::exchange(o.slot_, -1);
    }
    return *this;
}

signal_set::~signal_set() {
    release();
}

void signal_set::release() noexcept {
    if (slot_ < 0) return;
    {
        registry& r = the_registry();
        std::lock_guard lock(r.mu);
        slot& s = table[slot_];
        // Unpublish first, then wait for handlers that saw the old mask: after
        // this loop no handler can be about to write to our pipe.
        s.mask.store(0, std::memory_order_seq_cst);
        while (s.busy.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
        ::close(s.fd.exchange(-1, std::memory_order_relaxed));
        // A delivery between the unpublish and here found no set and was
        // dropped; from here on the previous disposition handles it.
        for (int sig : signals_) release_signal(r, sig);
        r.used[slot_] = false;
    }
    slot_ = -1;
    signals_.clear();
    reader_.close();
}

std::optional<int> signal_set::try_wait() {
    if (slot_ < 0) throw std::logic_error("uthreads: signal_set::try_wait on a moved-from set");
    for (;;) {
        unsigned char sig = 0;
        ssize_t n = ::read(reader_.fd(), &sig, 1);
        if (n == 1) return static_cast<int>(sig);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
        // n == 0 cannot happen: we hold the write end until the set is gone.
        throw_errno(n < 0 ? errno : EIO, "read from the signal pipe");
    }
}

task<int> signal_set::wait() {
    if (slot_ < 0) throw std::logic_error("uthreads: signal_set::wait on a moved-from set");
    co_await detail::checkpoint("signal_set::wait");
    for (;;) {
        // Take a delivery only when we are about to return it: a wait cancelled
        // while parked below has taken nothing.
        if (std::optional<int> sig = try_wait()) co_return *sig;
        co_await reader_.wait_ready(lowlevel::readable, "signal_set::wait");
    }
}

}  // namespace uthreads
