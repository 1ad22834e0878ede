/// \file
/// The backend interface: the one virtual class a loop implements so that
/// uthreads can run on it. docs/backend-contract.md is its formal contract.
///
/// The ready queue, the timer heap and the frame allocator live in core, so the
/// hot path (spawn, resume, hand-off) never calls through this interface. A
/// backend only has to watch file descriptors, sleep until a deadline or a
/// wake-up, and report what happened.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace uthreads::lowlevel {

/// Readiness bits reported to an io_watcher.
enum io_events : unsigned {
    readable = 1u,
    writable = 2u,
    io_error = 4u,  // error or hang-up: wake every direction and let the syscall tell
};

/// One file descriptor the core wants readiness for. Owned by core (inside the
/// socket object); the backend keeps only a pointer between `add` and `remove`.
struct io_watcher {
    int fd = -1;
    /// Called by the backend from inside `run_once` on the loop thread. Must only
    /// make microthreads runnable; it never runs user code, so the backend may
    /// keep iterating its event list after calling it.
    void (*ready)(io_watcher*, unsigned events) = nullptr;
    /// For the backend's own bookkeeping.
    void* backend_data = nullptr;
};

/// The interface. All members except `wake` are called on the loop thread only.
class backend {
public:
    virtual ~backend() = default;

    /// The name `options.backend` selects it by.
    virtual std::string_view name() const noexcept = 0;

    /// Start watching `w.fd`. The backend reports readable/writable transitions
    /// for the directions last requested through `want` (and may report more:
    /// an edge-triggered backend registers both directions once and ignores
    /// `want`). Throws std::system_error on failure.
    virtual void add(io_watcher& w) = 0;

    /// Directions the core currently has microthreads parked on (a subset of
    /// readable|writable; 0 = none). Level-triggered backends must narrow their
    /// interest to this to avoid spinning.
    virtual void want(io_watcher& w, unsigned events) = 0;

    /// Stop watching; after return the backend never touches `w` again. Called
    /// before the fd is closed.
    virtual void remove(io_watcher& w) noexcept = 0;

    /// Wait for I/O, a `wake`, or until `timeout` elapses (nullopt = no limit,
    /// zero = poll), dispatching ready watchers. May return early spuriously.
    virtual void run_once(std::optional<std::chrono::nanoseconds> timeout) = 0;

    /// Make a concurrent or later `run_once` return soon. Thread-safe and
    /// async-signal-safe enough to be called from any thread.
    virtual void wake() noexcept = 0;

    /// The clock core's timers run on. Real backends use steady_clock; "sim" a
    /// virtual clock it advances when it would otherwise sleep.
    virtual std::chrono::steady_clock::time_point now() const {
        return std::chrono::steady_clock::now();
    }

    /// True if core should shuffle its ready queue (deterministically, from the
    /// run's seed) — the simulation backend's way to explore schedules.
    virtual bool shuffles_ready_queue() const noexcept { return false; }
};

/// Build the backend called `name`. Throws std::invalid_argument for an unknown
/// name, listing the available ones.
std::unique_ptr<backend> make_backend(std::string_view name);

/// Frames and microthread records allocated and not yet freed on this thread
/// (coroutine frames, microthread records); for leak tests.
long long live_frames() noexcept;

/// Microthreads alive in all runtimes on this thread.
long long live_microthreads() noexcept;

}  // namespace uthreads::lowlevel
