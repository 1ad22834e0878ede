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
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
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

/// An operation a completion-based backend (io_uring) performs itself. Core
/// fills it in, keeps it alive (with its buffer, and the path of an openat)
/// until `complete` runs, and prefers these to readiness when
/// `supports_completions()` is true.
struct completion_op {
    enum class kind : unsigned char { accept, connect, recv, send, read, write, fsync, openat };
    /// `offset` value for read/write meaning "at the file's own position, and
    /// advance it", as read(2)/write(2) do (io_uring's offset -1).
    static constexpr std::uint64_t current_position = ~std::uint64_t{0};
    /// `flags` bit for fsync: flush data only, as fdatasync(2) does.
    static constexpr int fsync_datasync = 1;

    kind op = kind::recv;
    int fd = -1;          // openat: ignored (paths are relative to the working directory)
    void* buf = nullptr;  // recv/send/read/write buffer
    std::size_t len = 0;
    std::uint64_t offset = 0;  // read/write: file offset, or current_position
    void* addr = nullptr;      // connect: target sockaddr; accept: may be null;
                               // openat: the NUL-terminated path
    unsigned addrlen = 0;
    int flags = 0;      // send/recv flags (MSG_NOSIGNAL), accept4 flags,
                        // openat: open(2) flags, fsync: fsync_datasync or 0
    unsigned mode = 0;  // openat: permission bits for a created file
    /// Called exactly once, on the loop thread from inside `run_once` (or a host
    /// callback in guest mode), with a system-call style result: >= 0 (for
    /// openat, the new descriptor), or -errno (-ECANCELED after a successful
    /// `cancel`). Like io_watcher::ready it only schedules microthreads.
    void (*complete)(completion_op*, int result) = nullptr;
    void* backend_data = nullptr;
};

/// What a guest backend calls to let core run (see backend::attach_driver).
class guest_driver {
public:
    /// Run ready microthreads, expired timers and remote wake-ups, then re-arm
    /// the host through backend::arm. Called on the host loop's thread, from the
    /// backend's host callbacks. A call made while a drive is on the stack (a
    /// microthread ran host code that dispatched one of the backend's callbacks)
    /// returns at once and makes the outer drive go round once more.
    virtual void drive() = 0;

protected:
    ~guest_driver() = default;
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

    // ---- multi-threaded runtime (optional) -------------------------------

    /// Called once per multi-threaded runtime (options.threads > 1), on worker
    /// 0's backend and thread, with the backends of all its workers (index =
    /// worker, `workers[0]` is this one, all made by make_backend with this
    /// backend's name): after every one of them exists and before any member of
    /// any of them is called again. Lets the instances of one runtime share state
    /// ("sim": one virtual clock). The default does nothing. Throws
    /// std::invalid_argument if `workers` is not such a group.
    virtual void connect_workers(std::span<backend* const> workers) { (void)workers; }

    // ---- completion operations (optional) --------------------------------

    /// True if `submit`/`cancel` work; core then uses them for sockets and files.
    virtual bool supports_completions() const noexcept { return false; }
    /// Start `op`. Throws std::system_error if it cannot be submitted.
    virtual void submit(completion_op& op);
    /// Ask a submitted `op` to finish early. `op.complete` still runs exactly
    /// once: with -ECANCELED, or with the real result if that won the race.
    virtual void cancel(completion_op& op) noexcept;

    // ---- guest mode (optional) -------------------------------------------
    //
    // In guest mode the host program runs its own loop and core never calls
    // run_once. Instead, core hands the backend a driver; the backend calls
    // driver->drive() from its host callbacks: after dispatching I/O, when the
    // deadline passed to `arm` is reached, when `arm` asked to run soon, and
    // after wake(). `wake()` must then be safe from any thread and make the host
    // loop call drive() soon.

    /// True if this instance runs inside a host loop (created by attach()).
    virtual bool is_guest() const noexcept { return false; }
    /// Install the driver (guest mode only; called once, before anything else).
    virtual void attach_driver(guest_driver*) {}
    /// At the end of every drive(): `run_soon` asks for another drive() as soon
    /// as the host loop has had a turn (microthreads are runnable); `deadline`
    /// asks for one at that time (nullopt: no timer). Replaces the previous arm.
    virtual void arm(bool run_soon, std::optional<std::chrono::steady_clock::time_point> deadline) {
        (void)run_soon;
        (void)deadline;
    }
    /// Remove every registration from the host loop. After it returns the
    /// backend never calls the driver again. Called when the guest runtime ends.
    virtual void detach_from_host() noexcept {}
    /// False once the backend knows the host loop is gone (e.g. the io_context
    /// was destroyed); the guest runtime then refuses new work instead of
    /// touching it, and `arm` must be a no-op.
    virtual bool host_alive() const noexcept { return true; }
    /// While `true`, keep the host's loop from returning for lack of work (an
    /// Asio work guard, a referenced uv handle): microthreads are alive and may be
    /// waiting on other threads (to_thread, a promise), which the host cannot see.
    /// Called by core at the end of every drive with whether any are alive.
    virtual void hold_host(bool) {}
};

/// Build the backend called `name`. Throws std::invalid_argument for an unknown
/// name, listing the available ones, or naming the missing library for a backend
/// this build knows but could not compile.
std::unique_ptr<backend> make_backend(std::string_view name);

/// Frames and microthread records allocated and not yet freed on this thread
/// (coroutine frames, microthread records); for leak tests.
long long live_frames() noexcept;

/// Microthreads alive in all runtimes on this thread.
long long live_microthreads() noexcept;

}  // namespace uthreads::lowlevel
