// The per-thread scheduler: ready queue, timer heap, remote wake-ups, the loop.
//
// Invariants:
// - A microthread is in the ready queue at most once: it is scheduled only by
//   whoever took it off the thing it waited on (or by itself when yielding).
// - Backend callbacks only schedule; they never resume a microthread, so the
//   backend may keep iterating its event list.
// - `all_` holds every microthread that has not finished; `index` is its slot.
#include "scheduler_internal.hpp"

#include <uthreads/lowlevel/backend.hpp>
#include <uthreads/task.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>

namespace uthreads::detail {

namespace {
thread_local long long tls_live_microthreads = 0;
}

struct scheduler::remote_queue {
    std::mutex mu;
    std::vector<microthread*> items;  // guarded by mu
    // invariant: true whenever items is non-empty. Written under mu; read without
    // it (relaxed is enough: a stale false is corrected by the backend wake-up that
    // schedule_remote always issues after setting it).
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

void scheduler::schedule_remote(microthread* m) {
    std::lock_guard lk(remote_->mu);
    remote_->items.push_back(m);
    remote_->pending.store(true, std::memory_order_relaxed);
    backend_.wake();
}

void scheduler::drain_remote() {
    if (!remote_->pending.load(std::memory_order_relaxed)) return;
    std::vector<microthread*> items;
    {
        std::lock_guard lk(remote_->mu);
        items.swap(remote_->items);
        remote_->pending.store(false, std::memory_order_relaxed);
    }
    for (microthread* m : items) {
        m->wait = nullptr;
        schedule(m);
    }
}

microthread* scheduler::spawn(std::coroutine_handle<> frame, promise_base* root, std::string name) {
    auto* m = new microthread;
    m->sched = this;
    m->frame = frame;
    m->resume = frame;
    m->root = root;
    root->owner = m;
    m->refs = 2;  // the scheduler's, until it finishes; and its handle's
    m->id = next_id_++;
    if (!name.empty()) m->name = new std::string(std::move(name));
    m->index = all_.size();
    all_.push_back(m);
    ++tls_live_microthreads;
    if (shutting_down_) {
        m->root_scope.cancelled = true;
        m->cancel_hint = true;
    }
    schedule(m);
    return m;
}

void scheduler::cancel(microthread* m) {
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

std::coroutine_handle<> scheduler::finish(microthread* m) noexcept {
    m->done = true;
    microthread* last = all_.back();
    all_[m->index] = last;
    last->index = m->index;
    all_.pop_back();
    microthread* j = std::exchange(m->joiner, nullptr);
    if (completion_listener* l = m->listener) l->on_child_done(m);
    release(m);
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
    if (--m->refs != 0) return;
    if (m->root && m->root->exception && !m->error_observed)
        report_unhandled(m->name ? *m->name : std::string(), m->root->exception);
    if (m->frame) m->frame.destroy();
    delete m->name;
    delete m;
    --tls_live_microthreads;
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

void throw_no_runtime(const char* what) {
    throw std::logic_error(std::string("uthreads: ") + what +
                           " needs a running microthread (call it inside uthreads::run)");
}

}  // namespace uthreads::detail

namespace uthreads::lowlevel {
long long live_microthreads() noexcept { return detail::tls_live_microthreads; }
}  // namespace uthreads::lowlevel
