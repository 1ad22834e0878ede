// The per-thread scheduler: ready queue, timer heap, remote wake-ups, the loop.
//
// Invariants:
// - A microthread is in the ready queue at most once: it is scheduled only by
//   whoever took it off the thing it waited on (or by itself when yielding).
// - Backend callbacks only schedule; they never resume a microthread, so the
//   backend may keep iterating its event list.
// - `all_` holds every microthread that has not finished; `index` is its slot.
//   With several workers: every microthread this worker has started and that
//   has not finished (one that never ran is in no all_, only in a deque).
//
// The multi-threaded half (options.threads > 1) is at the end of this file;
// docs/threads.md describes its rules.
#include "scheduler_internal.hpp"

#include <uthreads/lowlevel/backend.hpp>
#include <uthreads/spawn.hpp>
#include <uthreads/task.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace uthreads::detail {

namespace {
// How long an idle worker looks for work before it sleeps (spin_for_work).
constexpr std::chrono::microseconds spin_time{50};
// Returned by spin_for_work when the worker's own remote queue has items.
microthread* const spun_remote = finished_mark();

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

thread_local long long tls_live_microthreads = 0;
// Microthreads of multi-threaded runtimes are created on one thread and may be
// released on another, so per-thread counts do not balance: a worker thread
// folds its count in here when it ends (fold_microthread_count).
std::atomic<long long> folded_microthreads{0};
}  // namespace

struct scheduler::fresh_deque {
    ws_deque<microthread*> q;
    // Pushes so far (written by the owner only): lets a thief tell an item that
    // has been waiting from one pushed just now (scheduler::steal_fresh).
    std::atomic<std::uint64_t> pushes{0};
    /// Returns how many items were queued before (as ws_deque::push).
    std::size_t push(microthread* m) {
        const std::size_t before = q.push(m);
        pushes.store(pushes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return before;
    }
};

struct remote_item {
    microthread* m;          // a wake-up of m, when fn is null
    void (*fn)(void*);       // else a call of fn(arg) on the worker
    void* arg;
};

struct scheduler::remote_queue {
    std::mutex mu;
    std::vector<remote_item> items;  // guarded by mu
    std::vector<remote_item> spare;  // the owner's: drained items' storage, reused
    // invariant: true whenever items is non-empty. Written under mu; read without
    // it (relaxed is enough: a stale false is corrected by the backend wake-up that
    // push_remote issues after setting it when the owner may sleep; a worker of a
    // multi-threaded runtime re-reads it after the parker's fence).
    std::atomic<bool> pending{false};
    blocking_pool pool;
};

void ready_queue::grow() {
    std::vector<microthread*> bigger(buf_.size() * 2);
    std::size_t n = size();
    for (std::size_t i = 0; i < n; ++i) {
        bigger[i] = buf_[(head_ + i) & mask_];
        if (bigger[i]) bigger[i]->ready_pos = i;
    }
    buf_ = std::move(bigger);
    mask_ = buf_.size() - 1;
    head_ = 0;
    tail_ = n;
}

scheduler::scheduler(lowlevel::backend& b, std::uint64_t seed, bool shuffle)
    : backend_(b), rng_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull), shuffle_(shuffle),
      remote_(new remote_queue) {}

scheduler::~scheduler() {
    release_registrations();
    // A thread completing a future or a blocking job may still be inside
    // schedule_remote (it holds the mutex while it wakes the backend); wait for
    // it before the backend and this object go away.
    { std::lock_guard lk(remote_->mu); }
    delete remote_;
    delete fresh_;
}

void scheduler::release_registrations() noexcept {
    while (backend_registration* r = registrations_) {
        unlink(r);
        r->on_runtime_end(r);
    }
}

void scheduler::link(backend_registration* r) noexcept {
    r->prev = nullptr;
    r->next = registrations_;
    if (registrations_) registrations_->prev = r;
    registrations_ = r;
    ++registered_fds_;
}

void scheduler::unlink(backend_registration* r) noexcept {
    if (r->prev)
        r->prev->next = r->next;
    else
        registrations_ = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = nullptr;
    --registered_fds_;
}

blocking_pool& scheduler_blocking_pool(scheduler& s) { return s.remote_->pool; }

void scheduler::push_remote(microthread* m, void (*fn)(void*), void* arg) {
    std::lock_guard lk(remote_->mu);
    remote_->items.push_back({m, fn, arg});
    remote_->pending.store(true, std::memory_order_relaxed);
    // A worker of a multi-threaded runtime that is running re-checks `pending`
    // before it sleeps: wake its backend (a system call) only if it sleeps or
    // is about to (parker::notify). One thread on its own loop: always.
    if (!multi_ || group_->park.notify(index_)) backend_.wake();
}

void scheduler::schedule_remote(microthread* m) { push_remote(m, nullptr, nullptr); }

bool scheduler::ending() const noexcept {
    return multi_ ? group_->shutdown.load(std::memory_order_acquire) : shutting_down_;
}

void scheduler::close_link_and_drain() {
    link_->close();
    drain_remote();
}

void scheduler::post(void (*fn)(void*), void* arg) { push_remote(nullptr, fn, arg); }

void scheduler::unpark_multi(microthread* m) {
    if (this == tls_scheduler) {
        m->wait = nullptr;
        if (current_) {
            // Woken by the microthread running here (a channel send, a mutex
            // hand-off): into the LIFO slot, so it runs next, while what it was
            // handed is still in this core's cache. The one it displaces goes to
            // the back of the FIFO; run_worker bounds how long the slot may keep
            // the FIFO waiting.
            if (lifo_) ready_.push(lifo_);
            lifo_ = m;
            return;
        }
        schedule(m);
    } else {
        // invariant: m is a started microthread of this worker (started ones never
        // migrate), so m->wait is only written here, by drain_remote.
        schedule_remote(m);
    }
}

void scheduler::drain_remote() {
    if (!remote_->pending.load(std::memory_order_relaxed)) return;
    // Swap in the spare vector, so a busy queue does not allocate per drain.
    std::vector<remote_item> items = std::move(remote_->spare);
    items.clear();
    {
        std::lock_guard lk(remote_->mu);
        items.swap(remote_->items);
        remote_->pending.store(false, std::memory_order_relaxed);
    }
    // In order: a cancellation posted before a wake-up is seen before it.
    for (const remote_item& it : items) {
        if (it.fn) {
            it.fn(it.arg);
        } else {
            it.m->wait = nullptr;
            schedule(it.m);
        }
    }
    items.clear();
    remote_->spare = std::move(items);
}

UTHREADS_ALWAYS_INLINE microthread* scheduler::create(std::coroutine_handle<> frame, promise_base* root,
                                                 std::string&& name) {
    auto* m = new microthread;
    m->sched = this;
    m->frame = frame;
    m->resume = frame;
    m->root = root;
    root->owner = m;
    m->refs = 2;  // the scheduler's, until it finishes; and its handle's
    if (!name.empty()) m->name = new std::string(std::move(name));
    if (multi_) [[unlikely]]
        return spawn_multi(m);
    m->id = next_id_++;
    m->index = all_.size();
    all_.push_back(m);
    ++tls_live_microthreads;
    if (shutting_down_) {
        m->root_scope.cancelled = true;
        m->cancel_hint = true;
    }
    return m;
}

microthread* scheduler::spawn(std::coroutine_handle<> frame, promise_base* root,
                              std::string name) {
    microthread* m = create(frame, root, std::move(name));
    // One test of multi_ for both halves (create's is the same branch once
    // inlined into this one).
    if (multi_) [[unlikely]]
        publish_multi(m);
    else
        schedule(m);
    return m;
}

UTHREADS_ALWAYS_INLINE void scheduler::publish(microthread* m) {
    if (multi_) [[unlikely]] {
        publish_multi(m);
        return;
    }
    schedule(m);
}

void scheduler::publish_multi(microthread* m) {
    scheduler* here = tls_scheduler;
    if (here && here->group_ == group_) {
        // invariant: only the owning worker pushes to its deque.
        here->push_fresh(m);
    } else {
        // Not on a worker of this runtime: let worker `this` queue it.
        post([](void* p) { tls_scheduler->push_fresh(static_cast<microthread*>(p)); }, m);
    }
}

void scheduler::push_fresh(microthread* m) {
    // Wake a parked worker only when the deque was empty: a push onto a non-empty
    // one has a predecessor that already notified (its fence is the cost, about
    // 13 ns). A worker that parked since then re-checked this deque after its
    // announcement and saw that predecessor (or took it); a thief that finds
    // more behind what it stole wakes the next worker (run_worker), so a
    // backlog still spreads over every parked worker.
    if (fresh_->push(m) == 0) group_->notify();
}

void scheduler::cancel(microthread* m) {
    if (multi_) [[unlikely]] {
        cancel_multi(m);
        return;
    }
    m->root_scope.cancelled = true;
    m->cancel_hint = true;
    deliver_cancel(m);
}

void scheduler::deliver_cancel(microthread* m) {
    wait_node* w = m->wait;
    if (!w || !cancel_pending_slow(m)) return;
    if (w->try_cancel(w)) {
        w->cancelled = true;
        m->wait = nullptr;
        schedule(m);
    }
}

namespace {
// The end of a microthread record, once its last reference is gone.
UTHREADS_ALWAYS_INLINE void destroy_record(microthread* m) noexcept {
    if (m->root && m->root->exception && !m->error_observed)
        report_unhandled(m->name ? *m->name : std::string(), m->root->exception);
    if (m->frame) m->frame.destroy();
    delete m->name;
    delete m;
}

// Several workers: the last reference may be dropped on any of them.
[[gnu::noinline]] void release_multi(microthread* m) noexcept {
    std::atomic_ref<std::uint32_t> refs(m->refs);
    // A count of 1 is our own reference: every other holder has dropped its
    // (release), and only a holder adds one (cancel_multi), so nobody can race
    // us, and the acquire load sees their writes. That skips the locked
    // decrement for the last reference, half of them. Otherwise acq_rel:
    // whoever frees sees every write made before the other drops.
    if (refs.load(std::memory_order_acquire) != 1 &&
        refs.fetch_sub(1, std::memory_order_acq_rel) != 1)
        return;
    destroy_record(m);
    tls_scheduler->count_release();
}

// One worker: plain counts.
UTHREADS_ALWAYS_INLINE void release_single(microthread* m) noexcept {
    if (--m->refs != 0) return;
    destroy_record(m);
    --tls_live_microthreads;
}
}  // namespace

std::coroutine_handle<> scheduler::finish(microthread* m) noexcept {
    if (multi_) [[unlikely]]
        return finish_multi(m);
    m->done = true;
    microthread* last = all_.back();
    all_[m->index] = last;
    last->index = m->index;
    all_.pop_back();
    microthread* j = std::exchange(m->joiner, nullptr);
    if (completion_listener* l = m->listener) l->on_child_done(m);
    release_single(m);
    if (j) {
        j->wait = nullptr;
        // The joiner continues at once, as after a function call (bounded by the
        // budget so that a spawn/join loop still lets others run).
        if (--budget_ > 0) {
            current_ = j;
            return j->resume;
        }
        schedule(j);
    }
    return std::noop_coroutine();
}

void release(microthread* m) noexcept {
    if (tls_multi) [[unlikely]] {
        release_multi(m);
        return;
    }
    release_single(m);
}

void detach(microthread* m) noexcept {
    m->detached = true;
    release(m);
}

void scheduler::add_timer(timer_node* t) {
    t->seq = timer_seq_++;
    t->heap_index = timers_.size();
    timers_.push_back(t);
    sift_up(t->heap_index);
}

void scheduler::remove_timer(timer_node* t) noexcept {
    std::size_t i = t->heap_index;
    t->heap_index = static_cast<std::size_t>(-1);
    timer_node* last = timers_.back();
    timers_.pop_back();
    if (last == t) return;
    timers_[i] = last;
    last->heap_index = i;
    sift_down(i);
    sift_up(last->heap_index);
}

namespace {
bool earlier(const timer_node* a, const timer_node* b) noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}
}  // namespace

void scheduler::sift_up(std::size_t i) noexcept {
    timer_node* t = timers_[i];
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (!earlier(t, timers_[parent])) break;
        timers_[i] = timers_[parent];
        timers_[i]->heap_index = i;
        i = parent;
    }
    timers_[i] = t;
    t->heap_index = i;
}

void scheduler::sift_down(std::size_t i) noexcept {
    timer_node* t = timers_[i];
    std::size_t n = timers_.size();
    for (;;) {
        std::size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && earlier(timers_[c + 1], timers_[c])) ++c;
        if (!earlier(timers_[c], t)) break;
        timers_[i] = timers_[c];
        timers_[i]->heap_index = i;
        i = c;
    }
    timers_[i] = t;
    t->heap_index = i;
}

void scheduler::fire_timers(clock::time_point t) {
    while (!timers_.empty() && timers_[0]->deadline <= t) {
        timer_node* n = timers_[0];
        remove_timer(n);
        n->fire(n);
    }
}

clock::time_point scheduler::now() const { return backend_.now(); }

void scheduler::run_ready_batch() {
    // Bounded so that I/O and timers are polled regularly even when the ready
    // queue never drains (two microthreads yielding to each other forever).
    for (int i = 0; i < 256 && !ready_.empty(); ++i) {
        if (shuffle_) {
            std::size_t window = std::min<std::size_t>(ready_.size(), 8);
            rng_ ^= rng_ << 13;
            rng_ ^= rng_ >> 7;
            rng_ ^= rng_ << 17;
            ready_.swap_head(rng_ % window);
        }
        microthread* m = ready_.pop();
        if (!m) continue;  // started directly by its joiner (start_inline)
        m->started = true;
        current_ = m;
        budget_ = budget_per_resume;
        m->resume.resume();
    }
    current_ = nullptr;
}

void scheduler::poll(bool may_block) {
    std::optional<std::chrono::nanoseconds> timeout;
    if (!may_block || remote_->pending.load(std::memory_order_relaxed)) {
        timeout = std::chrono::nanoseconds(0);
    } else if (!timers_.empty()) {
        auto d = timers_[0]->deadline - backend_.now();
        timeout = std::max(std::chrono::nanoseconds(0),
                           std::chrono::duration_cast<std::chrono::nanoseconds>(d));
    }
    // A non-blocking poll with no descriptors registered and no completion
    // operation in flight has nothing to report: skip the system call on the
    // busy path.
    if (timeout != std::chrono::nanoseconds(0) || registered_fds_ > 0 || inflight_ops_ > 0)
        backend_.run_once(timeout);
    drain_remote();
    if (!timers_.empty()) fire_timers(backend_.now());
}

void scheduler::run_until_done(microthread* main) {
    for (;;) {
        run_ready_batch();
        // When main returns, whatever is left is cancelled and drained, so run()
        // leaves nothing alive behind it.
        if (main->done && !shutting_down_) cancel_all();
        if (all_.empty()) break;
        poll(ready_.empty());
    }
}

void scheduler::cancel_all() {
    shutting_down_ = true;
    // Main has returned: refuse runtime_handle spawns from now on (queued ones
    // fail their futures, ending() is true). Not only at the very end: a
    // foreign thread spawning faster than the runtime fails its jobs would
    // otherwise keep the remote queue full and the run from ever ending.
    if (link_) link_->close();
    std::vector<microthread*> rest = all_;
    for (microthread* m : rest) cancel(m);
}

std::optional<clock::time_point> scheduler::next_deadline() const {
    if (timers_.empty()) return std::nullopt;
    return timers_[0]->deadline;
}

namespace {
// Makes `s` the thread's scheduler for the duration of a guest drive (host
// callbacks may run while another runtime is current, so restore it).
struct scoped_tls_scheduler {
    explicit scoped_tls_scheduler(scheduler* s) : prev(std::exchange(tls_scheduler, s)) {}
    ~scoped_tls_scheduler() { tls_scheduler = prev; }
    scoped_tls_scheduler(const scoped_tls_scheduler&) = delete;
    scoped_tls_scheduler& operator=(const scoped_tls_scheduler&) = delete;
    scheduler* prev;
};
}  // namespace

void scheduler::drive_guest() {
    guest_idle_ = false;
    {
        scoped_tls_scheduler tls(this);
        drain_remote();
        if (!timers_.empty()) fire_timers(backend_.now());
        // A few batches, then give the host loop a turn: its own callbacks and
        // I/O interleave with microthreads.
        for (int round = 0; round < 4 && !ready_.empty(); ++round) run_ready_batch();
        drain_remote();
        if (!timers_.empty()) fire_timers(backend_.now());
    }
    arm_guest();
    guest_idle_ = true;
}

void scheduler::arm_guest() {
    if (!backend_.host_alive()) return;
    backend_.arm(!ready_.empty() || remote_->pending.load(std::memory_order_relaxed),
                 next_deadline());
    backend_.hold_host(!all_.empty());
}

void scheduler::shutdown_guest() {
    guest_idle_ = false;
    if (!all_.empty()) {
        cancel_all();
        while (!all_.empty()) {
            {
                scoped_tls_scheduler tls(this);
                drain_remote();
                if (!timers_.empty()) fire_timers(backend_.now());
                run_ready_batch();
            }
            if (all_.empty() || !ready_.empty()) continue;
            // Everything left waits for I/O, a timer or another thread: turn the
            // host loop once (our own host callbacks may drive us meanwhile).
            std::optional<std::chrono::nanoseconds> timeout;
            if (auto d = next_deadline())
                timeout = std::max(std::chrono::nanoseconds(0),
                                   std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       *d - backend_.now()));
            arm_guest();
            backend_.run_once(timeout);
            guest_idle_ = false;  // a drive from inside run_once set it
        }
    }
    release_registrations();
    backend_.hold_host(false);
}

// ---------------------------------------------------------------------------
// Several workers (options.threads > 1)
//
// The rule that keeps this small: a microthread may move to another worker
// only before it first runs (it sits in its spawner's `fresh_` deque until some
// worker pops or steals it). Once started it stays: its timers, descriptor
// registrations, wait nodes and `all_` slot belong to one worker, and whatever
// another worker does to it (wake it, cancel it, join it) goes through that
// worker's remote queue. What crosses workers on the record itself is ordered
// by atomic operations on it (core.hpp): `xflags` for its start and a
// cancellation that came before it, `done` and `joiner` for its end. Counts
// (spawned_, finished_, the live-microthread count) are per worker, so a spawn
// or a finish touches no cache line another worker writes.
// ---------------------------------------------------------------------------

microthread* scheduler::spawn_multi(microthread* m) {
    // Unique across workers without a shared counter (at most 1024 workers).
    m->id = (next_id_++ << 10) | index_;
    // Only this worker writes it; release: see worker_group::quiescent.
    spawned_.store(spawned_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    if (group_->shutdown.load(std::memory_order_acquire)) {
        m->root_scope.cancelled = true;
        m->cancel_hint = true;
    }
    return m;
}

long long scheduler::group_live() const noexcept {
    long long n = 0;
    for (const auto& w : group_->workers)
        n += static_cast<long long>(w->spawned_.load(std::memory_order_relaxed)) -
             static_cast<long long>(w->released_.load(std::memory_order_relaxed));
    return n;
}

void scheduler::fold_live_count() noexcept {
    folded_microthreads.fetch_add(static_cast<long long>(spawned_.exchange(0)) -
                                      static_cast<long long>(released_.exchange(0)),
                                  std::memory_order_relaxed);
}

void fold_microthread_count() noexcept {
    folded_microthreads.fetch_add(tls_live_microthreads, std::memory_order_relaxed);
    tls_live_microthreads = 0;
}

bool worker_group::quiescent() const noexcept {
    // Finishes first: each counted finish had its spawn happen before it, so the
    // spawn is counted too, and any microthread still alive keeps an ancestor
    // (or itself) counted as spawned and not finished.
    std::uint64_t finished = 0, spawned = 0;
    for (const auto& w : workers) finished += w->finished_.load(std::memory_order_acquire);
    for (const auto& w : workers) spawned += w->spawned_.load(std::memory_order_acquire);
    return spawned == finished;
}

namespace {
// Runs on m's worker: the cancellation cancel_multi() posted there.
void cancel_here(void* p) {
    auto* m = static_cast<microthread*>(p);
    if (!m->done) {
        m->root_scope.cancelled = true;
        m->cancel_hint = true;
        m->sched->deliver_cancel(m);
    }
    release(m);  // the reference cancel_multi took for this message
}

std::uint32_t or_flags(microthread* m, std::uint32_t bits) noexcept {
    // acq_rel: the starter publishes `sched` with it; the canceller reads it after.
    return std::atomic_ref<std::uint32_t>(m->xflags).fetch_or(bits, std::memory_order_acq_rel);
}
}  // namespace

void cancel_multi(microthread* m) {
    if (std::atomic_ref<bool>(m->done).load(std::memory_order_acquire)) return;
    // Not started yet: whoever starts it sees the bit and applies it.
    if (!(or_flags(m, xf_cancel) & xf_started)) return;
    scheduler* w = std::atomic_ref<scheduler*>(m->sched).load(std::memory_order_relaxed);
    if (w != tls_scheduler) {
        // Keep m alive until the message runs (the canceller may drop its
        // handle right after).
        std::atomic_ref<std::uint32_t>(m->refs).fetch_add(1, std::memory_order_relaxed);
        w->post(&cancel_here, m);
        return;
    }
    // m runs on this worker: nothing else touches its flags.
    if (m->done) return;
    m->root_scope.cancelled = true;
    m->cancel_hint = true;
    w->deliver_cancel(m);
}

void scheduler::cancel_multi(microthread* m) { detail::cancel_multi(m); }

std::coroutine_handle<> join_suspend_multi(join_operation* op, std::coroutine_handle<> h) {
    scheduler& s = *op->s;
    if (!park(s, *op, h)) return h;  // resumes at once and throws cancelled
    op->waiter = s.current_;
    microthread* expected = nullptr;
    // acq_rel: on failure (the finished mark) the result is visible.
    if (std::atomic_ref<microthread*>(op->target->joiner)
            .compare_exchange_strong(expected, op->waiter, std::memory_order_acq_rel)) {
        op->try_cancel = [](wait_node* w) {
            auto* o = static_cast<join_operation*>(w);
            microthread* me = o->waiter;
            // Fails once the target finished: its wake-up is on the way.
            return std::atomic_ref<microthread*>(o->target->joiner)
                .compare_exchange_strong(me, nullptr, std::memory_order_acq_rel);
        };
        // Spawn-then-join: run the target here and now if it is still the
        // newest entry of this worker's deque (as start_inline does on one worker).
        if (s.start_inline_multi(op->target)) return op->target->resume;
        return std::noop_coroutine();
    }
    // It finished since await_ready: continue at once.
    s.current_->wait = nullptr;
    return h;
}

std::coroutine_handle<> scheduler::finish_multi(microthread* m) noexcept {
    worker_group& g = *group_;
    microthread* last = all_.back();
    all_[m->index] = last;
    last->index = m->index;
    all_.pop_back();
    // The listener was set before m was published and only m's finish reads it.
    completion_listener* l = m->listener;
    std::atomic_ref<bool>(m->done).store(true, std::memory_order_release);
    microthread* j = std::atomic_ref<microthread*>(m->joiner)
                         .exchange(finished_mark(), std::memory_order_acq_rel);
    if (l) l->on_child_done(m);
    const bool was_main = m == g.main;
    release_multi(m);
    if (was_main) {
        g.shutdown.store(true, std::memory_order_release);
        g.wake_all();
    }
    std::coroutine_handle<> next = std::noop_coroutine();
    if (j) {
        // j is started (it is parked in a join), so j->sched is stable.
        if (j->sched == this) {
            j->wait = nullptr;
            if (--budget_ > 0) {
                current_ = j;
                next = j->resume;
            } else {
                schedule(j);
            }
        } else {
            j->sched->schedule_remote(j);
        }
    }
    finished_.store(finished_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    // After main: the last finish ends the run (others re-check before parking).
    if (g.shutdown.load(std::memory_order_acquire) && g.quiescent()) g.wake_all();
    return next;
}

void scheduler::start_stolen(microthread* m) noexcept {
    std::atomic_ref<scheduler*>(m->sched).store(this, std::memory_order_relaxed);
    m->started = true;
    // fetch_add: xf_started is set once, by this start, so adding it is OR-ing
    // it; `lock xadd` is one instruction where a fetch_or whose result is used
    // is a compare-exchange loop.
    if (std::atomic_ref<std::uint32_t>(m->xflags).fetch_add(xf_started, std::memory_order_acq_rel) &
        xf_cancel) {
        m->root_scope.cancelled = true;
        m->cancel_hint = true;
    }
    m->index = all_.size();
    all_.push_back(m);
    if (shutting_down_) {
        m->root_scope.cancelled = true;
        m->cancel_hint = true;
    }
}

bool scheduler::start_inline_multi(microthread* m) noexcept {
    if (fresh_->q.peek_bottom() != m || --budget_ <= 0) return false;
    // Still ours unless a thief took it as the last item: pop then returns
    // null (it takes the bottom item, the one just peeked, or nothing).
    if (fresh_->q.pop() != m) return false;
    start_stolen(m);
    current_ = m;
    return true;
}

microthread* scheduler::take_fresh() noexcept {
    microthread* m = fresh_->q.pop();
    if (m) start_stolen(m);
    return m;
}

microthread* scheduler::steal_fresh() noexcept {
    worker_group& g = *group_;
    const std::size_t n = g.workers.size();
    if (seen_pushes_.size() != n) seen_pushes_.assign(n, ~std::uint64_t{0});
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    for (int round = 0; round < 2; ++round) {
        bool contended = false;
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t vi = (rng_ + k) % n;
            scheduler* v = g.workers[vi].get();
            if (v == this) continue;
            // A lone item that was pushed since we last looked is probably the
            // child of a spawn-then-join that its owner is about to start
            // inline: stealing it would turn that join into a cross-worker
            // wake-up. Take it once it has waited one look (about a
            // microsecond while spinning); take at once when there are more.
            const std::size_t size = v->fresh_->q.size_estimate();
            if (size == 0) continue;
            const std::uint64_t pushes = v->fresh_->pushes.load(std::memory_order_relaxed);
            if (size == 1 && std::exchange(seen_pushes_[vi], pushes) != pushes) continue;
            steal_result<microthread*> r = v->fresh_->q.steal();
            if (r.status == steal_status::success) {
                stole_from_backlog_ = size > 1;
                return r.item;
            }
            if (r.status == steal_status::abort) contended = true;
        }
        if (!contended) break;
    }
    return nullptr;
}

microthread* scheduler::spin_for_work() noexcept {
    // Sleeping costs a system call on each side (the sleep, and the producer's
    // wake()) and microseconds of latency; work often turns up within that time
    // (the other end of a ping-pong, the next fork). So look around for a while
    // first: a stolen microthread, or `spun_remote` when our remote queue has
    // items. Only while there is a core for it: the workers that are not
    // parked (busy ones, spinners and this one) must not outnumber the cores,
    // so spinning never takes a core from a worker that has work (with more
    // workers than cores, idle ones park at once).
    worker_group& g = *group_;
    if (g.workers.size() - g.park.idle_estimate() > g.cores) return nullptr;
    std::size_t spinning = g.spinners.load(std::memory_order_relaxed);
    do {
        if (spinning >= g.cores) return nullptr;
    } while (!g.spinners.compare_exchange_weak(spinning, spinning + 1, std::memory_order_relaxed));
    microthread* found = nullptr;
    const auto until = std::chrono::steady_clock::now() + spin_time;
    // Our own remote queue is checked at every pause (its flag is written only
    // when something arrives); other workers' deques every 64 pauses, about a
    // microsecond, since each look pulls cache lines their owners keep writing.
    for (unsigned i = 1;; ++i) {
        if ((found = steal_fresh())) break;
        if (g.shutdown.load(std::memory_order_relaxed)) break;
        if (i % 4 == 0 && std::chrono::steady_clock::now() > until) break;
        for (int k = 0; k < 64 && !found; ++k) {
            if (remote_->pending.load(std::memory_order_relaxed)) found = spun_remote;
            cpu_relax();
        }
        if (found) break;
    }
    g.spinners.fetch_sub(1, std::memory_order_relaxed);
    return found;
}

bool scheduler::has_work_multi() noexcept {
    worker_group& g = *group_;
    if (lifo_ || !ready_.empty() || remote_->pending.load(std::memory_order_relaxed)) return true;
    if (g.shutdown.load(std::memory_order_acquire) && g.quiescent()) return true;
    if (!cancelled_all_ && g.shutdown.load(std::memory_order_acquire)) return true;
    for (auto& w : g.workers)
        if (w->fresh_->q.size_estimate() > 0) return true;
    return false;
}

microthread* scheduler::next_local(bool woken_first) noexcept {
    if (lifo_) {
        // At most max_lifo_runs in a row: two microthreads that keep waking each
        // other would otherwise keep the FIFO waiting forever.
        if (lifo_runs_ < max_lifo_runs) {
            ++lifo_runs_;
            return std::exchange(lifo_, nullptr);
        }
        ready_.push(std::exchange(lifo_, nullptr));
    }
    lifo_runs_ = 0;
    if (woken_first && !ready_.empty()) return ready_.pop();
    if (microthread* m = take_fresh()) return m;
    return !ready_.empty() ? ready_.pop() : nullptr;
}

void scheduler::run_worker() {
    worker_group& g = *group_;
    for (;;) {
        // A batch: the LIFO slot first, then alternating between never-run
        // microthreads (LIFO: the newest spawn first, depth-first like a call) and
        // the FIFO of woken ones, so that neither starves the other.
        for (int i = 0; i < 256; ++i) {
            microthread* m = next_local(i & 1);
            if (!m) break;
            current_ = m;
            budget_ = budget_per_resume;
            m->resume.resume();
        }
        current_ = nullptr;
        if (!cancelled_all_ && g.shutdown.load(std::memory_order_acquire)) {
            cancelled_all_ = true;
            cancel_all();
        }
        if (g.shutdown.load(std::memory_order_acquire) && g.quiescent()) {
            g.wake_all();  // the others may be parked
            break;
        }
        if (lifo_ || !ready_.empty() || fresh_->q.size_estimate() > 0) {
            poll(false);
            continue;
        }
        if (microthread* stolen = steal_fresh(); stolen || (stolen = spin_for_work())) {
            if (stolen != spun_remote) {
                // Items were left behind it: wake the next parked worker, since
                // their pushes did not (push_fresh). After spin_for_work, which
                // counts us as a spinner (and notify() defers to spinners).
                if (std::exchange(stole_from_backlog_, false)) g.notify();
                start_stolen(stolen);
                ready_.push(stolen);
            }
            poll(false);
            continue;
        }
        // Nothing anywhere: park in the backend (it still serves our I/O and
        // timers). The re-check comes after the announcement; producers of work
        // we would not otherwise see (a fresh microthread in another deque) call
        // notify(); remote queues and the end of the run always wake us.
        g.park.prepare_park(index_);
        const bool work = has_work_multi();
        poll(!work);
        g.park.finish_park(index_);
    }
    release_registrations();
}

void worker_group::make_worker(std::size_t i) {
    backends[i] = lowlevel::make_backend(backend_name);
    auto s = std::make_unique<scheduler>(*backends[i], seed + i, false);
    s->multi_ = true;
    s->group_ = this;
    s->index_ = i;
    s->fresh_ = new scheduler::fresh_deque;
    s->link_ = link;
    link->workers[i] = s.get();
    workers[i] = std::move(s);
}

void worker_group::worker_life(std::size_t i) {
    // Some backends (io_uring) must be made and run on the same thread, so each
    // worker makes its own, then waits until all exist (others steal from its
    // deque and wake its backend).
    if (i != 0) {
        try {
            make_worker(i);
        } catch (...) {
            std::lock_guard lk(error_mu);
            if (!error) error = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
    }
    ready.arrive_and_wait();
    if (i == 0) {
        if (!failed.load(std::memory_order_relaxed)) {
            try {
                std::vector<lowlevel::backend*> all;
                for (auto& b : backends) all.push_back(b.get());
                backends[0]->connect_workers(all);
            } catch (...) {
                std::lock_guard lk(error_mu);
                if (!error) error = std::current_exception();
                failed.store(true, std::memory_order_relaxed);
            }
        }
        connected.count_down();
    }
    connected.wait();
    if (!failed.load(std::memory_order_relaxed)) {
        tls_scheduler = workers[i].get();
        tls_multi = true;
        workers[i]->run_worker();
    }
    // Before any worker drains its remote queue for the last time: later
    // runtime_handle spawns throw, and queued ones fail (ending() is true).
    link->close();
    // Nobody steals from this worker's deque or wakes its backend once every
    // worker has left its loop.
    finished.arrive_and_wait();
    if (workers[i]) {
        // Every microthread finished, but a cancellation posted to this worker may
        // not have been drained before it saw the end: run those now (each drops
        // the reference it holds on a finished microthread).
        workers[i]->drain_remote();
        if (i != 0) {
            workers[i]->fold_live_count();
            workers[i].reset();
            backends[i].reset();
        }
    }
}

void worker_group::run(std::coroutine_handle<> frame, promise_base* root) {
    // main exists (live >= 1) before any worker looks: a worker that found the
    // count at 0 would take the run for finished.
    tls_scheduler = workers[0].get();
    tls_multi = true;
    main = workers[0]->create(frame, root, "main");
    workers[0]->publish(main);
    std::vector<std::thread> threads;
    threads.reserve(workers.size() - 1);
    for (std::size_t i = 1; i < workers.size(); ++i) {
        threads.emplace_back([this, i] {
            worker_life(i);
            tls_multi = false;
            tls_scheduler = nullptr;
            fold_frame_count();
            fold_microthread_count();
        });
    }
    worker_life(0);
    for (std::thread& t : threads) t.join();
    // run() owns main's frame (it takes the value from it) and rethrows its
    // exception itself.
    main->frame = {};
    main->error_observed = true;
    if (failed.load(std::memory_order_relaxed)) release(main);  // never ran: the scheduler's
    release(main);
    workers[0]->fold_live_count();
    tls_multi = false;
    if (error) std::rethrow_exception(error);
}

void throw_no_runtime(const char* what) {
    throw std::logic_error(std::string("uthreads: ") + what +
                           " needs a running microthread (call it inside uthreads::run)");
}

}  // namespace uthreads::detail

namespace uthreads::lowlevel {
long long live_microthreads() noexcept {
    // On a worker of a multi-threaded runtime, the workers' own counts too (they
    // are folded into folded_microthreads when the run ends).
    long long group = detail::tls_multi ? detail::tls_scheduler->group_live() : 0;
    return group + detail::tls_live_microthreads +
           detail::folded_microthreads.load(std::memory_order_relaxed);
}
}  // namespace uthreads::lowlevel
