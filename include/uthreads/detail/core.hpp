/// \file
/// Core internals shared by every awaitable in the library: the microthread
/// record, the per-thread scheduler's hot path, wait nodes and cancel scopes.
///
/// Not part of the public contract; exposed in a header only so that the hot
/// path (resume, hand-off, budget checks) inlines and never crosses a virtual
/// call. Everything slow lives in src/core/.
///
/// The one rule every awaitable follows when it suspends a microthread:
///   1. `m->resume = h` (the innermost coroutine to resume),
///   2. `m->wait = &node` where `node.try_cancel` can unlink it,
///   3. link itself wherever it waits (wait list, timer heap, fd).
/// Whoever completes the wait sets `m->wait = nullptr` and calls `schedule(m)`.
/// Cancellation calls `try_cancel`; if that unlinks the waiter, the canceller
/// marks `node.cancelled` and schedules the microthread, and the awaiter's
/// `await_resume` throws `cancelled`.
#pragma once

#include <uthreads/detail/frame_pool.hpp>
#include <uthreads/detail/spinlock.hpp>
#include <uthreads/errors.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace uthreads {
using clock = std::chrono::steady_clock;
namespace lowlevel {
class backend;
}
}  // namespace uthreads

namespace uthreads::detail {

struct microthread;
class scheduler;
struct promise_base;
class blocking_pool;
struct worker_group;
struct runtime_link;
blocking_pool& scheduler_blocking_pool(scheduler& s);

/// A link in a microthread's chain of cancel scopes, innermost first. The root
/// scope lives in the microthread; `with_timeout`, nurseries and shields push
/// more from their coroutine frames (strictly LIFO, as frames are).
struct cancel_scope_node {
    cancel_scope_node* parent = nullptr;
    bool cancelled = false;
    bool shield = false;  // cancellation of scopes outside this one is not seen inside
};

/// Published by a suspended microthread so that cancellation can reach it.
struct wait_node {
    /// Runs on the microthread's scheduler thread. Returns true if it unlinked the
    /// waiter (the caller then resumes the microthread with `cancelled`), false if
    /// a completion is already on its way (cancellation then waits for the next
    /// suspension point, so a completed operation's result is never lost).
    bool (*try_cancel)(wait_node*) = nullptr;
    bool cancelled = false;
};

/// Who wants to hear that a microthread finished (nurseries, when_all/any).
struct completion_listener {
    virtual void on_child_done(microthread* m) noexcept = 0;

protected:
    ~completion_listener() = default;
};

/// One microthread: a root coroutine frame plus scheduling and cancellation
/// state. Allocated from the frame pool. Reference counted by the scheduler (while
/// it runs) and by its join_handle or owning nursery.
struct microthread {
    std::coroutine_handle<> resume;  // innermost frame to resume next
    scheduler* sched = nullptr;      // the scheduler it belongs to
    cancel_scope_node root_scope;
    cancel_scope_node* scope = &root_scope;
    wait_node* wait = nullptr;          // non-null while suspended at a cancellable point
    promise_base* root = nullptr;       // promise of the root task frame
    std::coroutine_handle<> frame;      // the root frame itself
    microthread* joiner = nullptr;      // microthread suspended in `co_await handle`
    completion_listener* listener = nullptr;
    std::string* name = nullptr;        // heap-allocated only when non-empty
    std::size_t index = 0;              // position in scheduler::all_
    std::size_t index_in_owner = 0;     // position in the owning nursery's list
    std::uint64_t id = 0;
    std::uint32_t refs = 0;
    std::uint32_t xflags = 0;           // several workers: xf_* bits, set by atomic OR
    std::size_t ready_pos = 0;          // slot in the ready queue while queued
    bool started = false;               // has run at least once
    bool done = false;
    bool detached = false;
    bool cancel_hint = false;           // some scope was cancelled: take the slow check
    bool error_observed = false;

    static void* operator new(std::size_t n) { return frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }
};

/// With several workers, what other workers do to a microthread's record is
/// ordered by atomic operations on the record itself (std::atomic_ref on these
/// plain fields, only on that path; see src/core/scheduler.cpp):
/// - `xflags`: `xf_started` when a worker takes it to run (`sched` is final from
///   then on), `xf_cancel` when cancelled before that; whoever sets the second
///   bit applies the cancellation;
/// - `done` (release store) and `joiner`, which the finishing worker exchanges
///   for `finished_mark()`: a joiner that installed itself first is woken, one
///   that finds the mark does not wait.
inline constexpr std::uint32_t xf_started = 1;
inline constexpr std::uint32_t xf_cancel = 2;
inline microthread* finished_mark() noexcept {
    return reinterpret_cast<microthread*>(std::uintptr_t{1});
}

/// True if cancellation is pending for `m` as seen from its innermost scope.
bool cancel_pending_slow(const microthread* m) noexcept;

inline bool cancel_pending(const microthread* m) noexcept {
    return m->cancel_hint && cancel_pending_slow(m);
}

/// Power-of-two ring of microthreads. Invariant: a microthread is in at most
/// one ready queue at most once (it is scheduled only when suspended, and only by
/// whoever unlinked it from its wait), so the ring never needs more slots than
/// there are live microthreads. A slot may be emptied (nullptr) when a
/// microthread that never ran is started directly by its joiner; `pop` then
/// returns nullptr for it and the caller skips it.
class ready_queue {
public:
    ready_queue() : buf_(256), mask_(255) {}
    bool empty() const noexcept { return head_ == tail_; }
    std::size_t size() const noexcept { return tail_ - head_; }
    void push(microthread* m);
    microthread* pop() noexcept { return buf_[head_++ & mask_]; }
    /// Empty the slot of `m`, which must be in the queue.
    void remove(microthread* m) noexcept;
    /// Swap the head with the element `k` places behind it (k < size()).
    void swap_head(std::size_t k) noexcept;

private:
    void grow();
    std::vector<microthread*> buf_;
    std::size_t mask_;
    std::size_t head_ = 0, tail_ = 0;
};

inline void ready_queue::push(microthread* m) {
    if (tail_ - head_ == buf_.size()) grow();
    m->ready_pos = tail_;
    buf_[tail_++ & mask_] = m;
}

inline void ready_queue::remove(microthread* m) noexcept {
    buf_[m->ready_pos & mask_] = nullptr;
    // Trim emptied slots at the tail, so that spawn-then-join (which empties the
    // most recently pushed slots) keeps the ring small.
    while (tail_ != head_ && buf_[(tail_ - 1) & mask_] == nullptr) --tail_;
}

inline void ready_queue::swap_head(std::size_t k) noexcept {
    microthread*& a = buf_[head_ & mask_];
    microthread*& b = buf_[(head_ + k) & mask_];
    std::swap(a, b);
    if (a) a->ready_pos = head_;
    if (b) b->ready_pos = head_ + k;
}

/// Timer heap entry; lives inside the awaiter that waits on it.
struct timer_node {
    clock::time_point deadline;
    std::uint64_t seq = 0;                  // FIFO among equal deadlines
    std::size_t heap_index = static_cast<std::size_t>(-1);
    void (*fire)(timer_node*) = nullptr;    // runs on the scheduler thread; must not resume
    bool armed() const noexcept { return heap_index != static_cast<std::size_t>(-1); }
};

/// A descriptor registered with a run's backend on behalf of an object that may
/// outlive the run (a listener bound before `run` and closed after it). The
/// scheduler keeps these in a list and, when the run ends, calls
/// `on_runtime_end` for each one still there, so no registration outlives it.
struct backend_registration {
    backend_registration* prev = nullptr;
    backend_registration* next = nullptr;
    void (*on_runtime_end)(backend_registration*) noexcept = nullptr;
};

inline constexpr int budget_per_resume = 128;

/// The per-thread scheduler. Hot-path members are public and inline; the rest is
/// in src/core/scheduler.cpp.
class scheduler {
public:
    explicit scheduler(lowlevel::backend& b, std::uint64_t seed, bool shuffle);
    ~scheduler();
    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    /// Make `m` runnable. Same-thread only (and, with several workers, only for a
    /// microthread of this worker; others go through `unpark`, which routes).
    void schedule(microthread* m) {
        ready_.push(m);
        // Guest mode, outside a drive (host code cancelled a microthread or set an
        // event): nothing else would make the host loop run us.
        if (guest_idle_) [[unlikely]]
            arm_guest();
    }

    /// If `m` has never run (so it sits in the ready queue), take it out and make
    /// it current: the caller transfers to `m->resume` directly. Used by a joiner
    /// that is about to wait for `m` anyway, which keeps spawn-then-join
    /// depth-first (bounded memory) and saves a queue round trip. Spends budget;
    /// returns false when it ran out or `m` already ran.
    /// Never with several workers (the caller checks): `m` may be in the middle
    /// of being stolen.
    bool start_inline(microthread* m) noexcept {
        if (m->started || --budget_ <= 0) return false;
        ready_.remove(m);
        m->started = true;
        current_ = m;
        return true;
    }

    /// start_inline for a worker of a multi-threaded runtime: only if `m` is the
    /// newest entry of this worker's deque and this worker wins it from thieves.
    bool start_inline_multi(microthread* m) noexcept;

    /// Make `m` runnable from any thread (or a host callback on another thread).
    void schedule_remote(microthread* m);

    // ---- Several workers (options.threads > 1); see docs/threads.md ----------

    /// True if this scheduler is one worker of a multi-threaded runtime.
    bool multi() const noexcept { return multi_; }
    /// The multi-threaded runtime this worker belongs to (null with one worker).
    worker_group* group() const noexcept { return group_; }
    /// Complete the wait of `m`, a microthread of this worker, from whatever
    /// worker the caller runs on: a local push, or this worker's remote queue and
    /// a backend wake(). The caller must not touch `m`'s wait node afterwards.
    void unpark_multi(microthread* m);
    /// Run `fn(arg)` on this worker, after everything posted to it before.
    void post(void (*fn)(void*), void* arg);
    /// The whole life of worker `index` of a multi-threaded runtime: runs until
    /// every microthread of the runtime finished. `main` is run's root (or null).
    void run_worker();

    /// Create a microthread for a root frame and make it runnable.
    microthread* spawn(std::coroutine_handle<> frame, promise_base* root, std::string name);
    /// The two halves of spawn: `create` makes the record (not runnable yet, so
    /// the caller may still set `listener` and friends without racing other
    /// workers); `publish` makes it runnable, on the calling worker.
    microthread* create(std::coroutine_handle<> frame, promise_base* root, std::string&& name);
    void publish(microthread* m);

    /// Ask `m` to stop; delivered at its current or next suspension point.
    void cancel(microthread* m);
    /// Re-check `m`'s scopes and, if it is parked at a cancellable point, wake it.
    void deliver_cancel(microthread* m);

    /// Called from a root frame's final suspend; returns where to transfer.
    std::coroutine_handle<> finish(microthread* m) noexcept;

    void add_timer(timer_node* t);
    void remove_timer(timer_node* t) noexcept;

    clock::time_point now() const;
    lowlevel::backend& backend() noexcept { return backend_; }

    /// Drive the loop until `main` is done, then cancel and drain everything else.
    void run_until_done(microthread* main);

    /// Guest mode: one round of work from a host callback (ready microthreads,
    /// expired timers, remote wake-ups), then re-arm the host via backend::arm.
    void drive_guest();
    /// Guest mode: cancel everything and run until no microthread is left,
    /// turning the host loop (backend::run_once) while they wait; then drop every
    /// backend registration. Idempotent.
    void shutdown_guest();
    /// Re-arm the host loop: a drive soon if anything is runnable, and at the
    /// next timer deadline.
    void arm_guest();
    /// Mark this scheduler as a guest's (driven by drive_guest, never run_until_done).
    void make_guest() noexcept { guest_idle_ = true; }

    /// Several workers: a microthread record was freed on this worker's thread.
    void count_release() noexcept {
        released_.store(released_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    /// Several workers: records made minus records freed, over every worker.
    long long group_live() const noexcept;
    /// At the end of a run: move this worker's counts into the global one.
    void fold_live_count() noexcept;

    /// Number of microthreads alive on this scheduler.
    std::size_t live() const noexcept { return all_.size(); }

    microthread* current_ = nullptr;
    int budget_ = budget_per_resume;
    /// Track a registration (see backend_registration).
    void link(backend_registration* r) noexcept;
    void unlink(backend_registration* r) noexcept;
    std::size_t registered_fds_ = 0;  // length of the registrations_ list
    /// What runtime_handle reaches this runtime through (null in guest mode).
    std::shared_ptr<runtime_link> link_;
    /// True once the runtime is ending (main finished): a runtime_handle job
    /// that arrives now fails its future instead of starting.
    bool ending() const noexcept;
    /// Single worker, after run_until_done: refuse further runtime_handle
    /// spawns, then fail the ones already queued.
    void close_link_and_drain();
    std::size_t inflight_ops_ = 0;    // completion operations submitted, not yet completed

private:
    friend blocking_pool& scheduler_blocking_pool(scheduler&);
    void cancel_all();
    void release_registrations() noexcept;
    std::optional<clock::time_point> next_deadline() const;
    void run_ready_batch();
    void fire_timers(clock::time_point t);
    void drain_remote();
    void push_remote(microthread* m, void (*fn)(void*), void* arg);
    void poll(bool may_block);
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;
    // Several workers: out-of-line halves of spawn, cancel and finish.
    friend struct worker_group;
    microthread* spawn_multi(microthread* m);
    void cancel_multi(microthread* m);
    std::coroutine_handle<> finish_multi(microthread* m) noexcept;
    void start_stolen(microthread* m) noexcept;
    microthread* take_fresh() noexcept;
    microthread* next_local(bool woken_first) noexcept;
    void publish_multi(microthread* m);
    void push_fresh(microthread* m);
    microthread* steal_fresh() noexcept;
    microthread* spin_for_work() noexcept;
    bool has_work_multi() noexcept;

    ready_queue ready_;
    lowlevel::backend& backend_;
    std::vector<timer_node*> timers_;  // binary min-heap by (deadline, seq)
    std::uint64_t timer_seq_ = 0;
    std::vector<microthread*> all_;    // every live microthread, for shutdown
    std::uint64_t next_id_ = 1;
    std::uint64_t rng_;
    bool shuffle_;
    bool shutting_down_ = false;
    bool guest_idle_ = false;  // a guest scheduler that is not inside drive/shutdown
    backend_registration* registrations_ = nullptr;
    struct remote_queue;
    remote_queue* remote_;
    // Several workers: the group, this worker's stealable deque of microthreads
    // that never ran, and whether this worker has cancelled its own on shutdown.
    bool multi_ = false;
    bool cancelled_all_ = false;
    worker_group* group_ = nullptr;
    std::size_t index_ = 0;
    struct fresh_deque;
    fresh_deque* fresh_ = nullptr;
    std::vector<std::uint64_t> seen_pushes_;  // per victim, for steal_fresh
    bool stole_from_backlog_ = false;         // steal_fresh left items behind
    // The LIFO slot: a microthread woken by the one running on this worker runs
    // next (unpark_multi), at most max_lifo_runs times in a row (run_worker).
    microthread* lifo_ = nullptr;
    int lifo_runs_ = 0;
    static constexpr int max_lifo_runs = 3;
    // Microthreads created on and finished on this worker; each written only by
    // this worker, summed by worker_group::quiescent() once main has finished.
    std::atomic<std::uint64_t> spawned_{0}, finished_{0};
    // Records freed on this worker (release), for live_microthreads().
    std::atomic<std::uint64_t> released_{0};
};

inline thread_local scheduler* tls_scheduler UTHREADS_TLS_FAST = nullptr;

/// Drop one reference to `m`; at zero, reports an exception nobody observed,
/// then destroys the frame and the record. Needs no scheduler.
void release(microthread* m) noexcept;

[[noreturn]] void throw_no_runtime(const char* what);

/// The scheduler running on this thread; throws std::logic_error naming `what`
/// when called outside a microthread.
inline scheduler& current_scheduler(const char* what) {
    scheduler* s = tls_scheduler;
    if (!s || !s->current_) [[unlikely]]
        throw_no_runtime(what);
    return *s;
}

/// The awaiter every library operation starts with: delivers a pending
/// cancellation and spends one unit of the cooperative budget, yielding to the
/// ready queue when it runs out so that an always-ready loop cannot starve
/// timers, I/O or other microthreads.
struct checkpoint_operation {
    scheduler* s;
    bool await_ready() {
        microthread* m = s->current_;
        if (cancel_pending(m)) throw ::uthreads::cancelled{};
        return --s->budget_ > 0;
    }
    void await_suspend(std::coroutine_handle<> h) {
        microthread* m = s->current_;
        m->resume = h;
        s->schedule(m);
    }
    void await_resume() const noexcept {}
};

inline checkpoint_operation checkpoint(const char* what) {
    return checkpoint_operation{&current_scheduler(what)};
}

/// Fast-path check shared by operations that may complete at once: throws
/// `cancelled` if pending, then spends one unit of budget. Returns false when the
/// budget ran out; the operation should then complete anyway and `yield_after`.
inline bool enter_fast_path(scheduler& s) {
    if (cancel_pending(s.current_)) throw ::uthreads::cancelled{};
    return --s.budget_ > 0;
}

/// Requeue the current microthread behind the others (its operation has already
/// completed; this only delays the return, so nothing can be lost).
inline void yield_after(scheduler& s, std::coroutine_handle<> h) {
    microthread* m = s.current_;
    m->resume = h;
    s.schedule(m);
}

/// Suspend the current microthread on `node` (steps 1 and 2 of the rule above).
/// Returns false, with `node.cancelled` set, if cancellation is already pending,
/// in which case the caller must not link the node anywhere.
inline bool park(scheduler& s, wait_node& node, std::coroutine_handle<> h) noexcept {
    microthread* m = s.current_;
    if (cancel_pending(m)) {
        node.cancelled = true;
        return false;
    }
    m->resume = h;
    m->wait = &node;
    return true;
}

/// Complete a wait (the counterpart of `park`). `s` is the scheduler `m` parked
/// on. With several workers this may run on another worker than `s`: then `m` is
/// handed to `s` (see scheduler::unpark_multi).
inline void unpark(scheduler& s, microthread* m) {
    if (s.multi()) [[unlikely]] {
        s.unpark_multi(m);
        return;
    }
    m->wait = nullptr;
    s.schedule(m);
}

/// Throws `cancelled` if the wait ended by cancellation.
inline void throw_if_cancelled(const wait_node& node) {
    if (node.cancelled) throw ::uthreads::cancelled{};
}

}  // namespace uthreads::detail
