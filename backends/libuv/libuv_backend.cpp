// The libuv backend: uthreads on a uv_loop_t, either one of its own (owned mode,
// chosen by name through uthreads::run) or a host program's (guest mode, through
// uthreads::attach(uv_loop_t*), see include/uthreads/backends/libuv.hpp).
//
// Some facts about libuv (1.44, Unix) this file relies on:
// - uv_poll_t is level-triggered (epoll without EPOLLET underneath): while a
//   requested direction stays ready, its callback runs on every iteration. Each
//   poll is therefore narrowed to the directions core has microthreads parked on
//   (and stopped when there are none), or a socket that stays writable would spin
//   the loop. The narrowing is lazy: want() only widens, and a direction is
//   dropped the first time it fires with nobody waiting, which keeps the steady
//   read/wait cycle free of epoll_ctl calls. Being level-triggered, a poll started on a descriptor that is already
//   ready reports it at the next iteration: add() loses no readiness.
// - uv_poll_start on an active handle just replaces its event mask; it, uv_poll_stop
//   and uv_close may all be called from inside that handle's own callback (core's
//   ready callback calls want() on the same watcher). Stopping a poll drops events
//   for its descriptor that the current iteration collected but has not dispatched
//   yet (uv__platform_invalidate_fd), does EPOLL_CTL_DEL while the fd is still
//   open, and forgets the fd in the loop, so a reused descriptor number can get a
//   new uv_poll_t at once, before the old handle's close callback ran.
// - A poll error (EPOLLERR) is reported as a negative status, after libuv has
//   already stopped the handle; hang-ups (EPOLLHUP) come as the requested
//   directions. The record forgets its mask on an error so the next want() starts
//   the poll again. End of stream makes a socket readable, so UV_DISCONNECT
//   (EPOLLRDHUP) would add nothing and is not requested.
// - uv_close is asynchronous: a handle must stay allocated until its close
//   callback, which runs at the end of the loop's next iteration. Per-fd records
//   and the backend's own handles therefore live in heap blocks that free
//   themselves in their close callbacks and never point back at a destroyed
//   backend. The owned loop is run until they are all closed before uv_loop_close.
// - uv_async_send is the only thread-safe libuv call. Sends coalesce until the
//   callback has run, and a send made before uv_run still wakes it (an eventfd
//   underneath). Sending on a handle whose close callback has run is a
//   use-after-free, hence the guard around it in wake().
// - Timers count whole milliseconds against the loop's cached time (uv_now), which
//   is updated once per iteration and truncated, so it lags the real clock by up to
//   a millisecond (more with a coarse clock). A timer started right after
//   uv_update_time for ceil(ms) + 1 does not fire before the requested instant; the
//   guest timer callback still checks the real clock and re-arms if it did.
// - uv_run(UV_RUN_ONCE) blocks only while the loop is alive (an active, referenced
//   handle, a request, or a closing handle); otherwise it returns at once. It can
//   also return with no callback run before its timer is due: it returns at once
//   while close callbacks are pending, and with 1.44 we saw it return 1-2 ms
//   early with nothing dispatched and the timer not yet due, after io_uring
//   rings had been used and torn down on the same thread (its poll wait is
//   re-derived from the cached millisecond clock whenever epoll_wait returns
//   without a callback to run). Owned run_once therefore repeats it until one
//   of our callbacks ran.
//   UV_RUN_NOWAIT polls without blocking. Unreferenced handles still take part in
//   the poll timeout: an active idle handle makes the poll non-blocking, timers
//   bound it.
// - Check handles run right after the I/O phase of the same iteration, so poll
//   and async callbacks (which run inside the I/O phase) get one drive() per
//   iteration between them instead of one each.
// - uv_run is not reentrant: it must not be called from a callback of its own loop
//   (matters for guest_runtime::shutdown, documented in the public header).
#include <uthreads/backends/libuv.hpp>
#include <uthreads/lowlevel/backend.hpp>

#include <uv.h>

#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace uthreads::backends {

namespace {

using std::chrono::steady_clock;

[[noreturn]] void throw_uv(int rc, const char* what) {
    // On Unix, libuv errors are negated errno values.
    throw std::system_error(-rc, std::system_category(),
                            std::string("uthreads libuv backend: ") + what);
}

class libuv_backend;

// One descriptor core waits on. Allocated in add(); freed by the poll handle's
// close callback, which may run after the backend is gone (guest mode), so the
// callback touches nothing but the record.
struct fd_record {
    uv_poll_t poll;
    libuv_backend* owner = nullptr;
    lowlevel::io_watcher* w = nullptr;  // nullptr once removed: never dispatched again
    int events = 0;                     // mask the poll is started with; 0 = stopped
    int wanted = 0;                     // mask of the latest want()
    fd_record* prev = nullptr;          // the backend's list of records not yet removed
    fd_record* next = nullptr;
};

// The backend's own handles. One heap block that frees itself when the last of
// its handles has been closed, for the same reason as fd_record.
struct loop_handles {
    uv_async_t async;                // wake()
    uv_timer_t timer;                // owned: run_once's timeout; guest: arm(deadline)
    uv_idle_t idle;                  // guest: arm(run_soon)
    uv_check_t check;                // guest: one drive() after the I/O phase
    libuv_backend* owner = nullptr;  // nullptr once closing
    int open = 0;                    // handles whose close callback has not run
};

class libuv_backend final : public lowlevel::backend {
public:
    /// Owned mode: a loop of its own.
    libuv_backend()
        : own_loop_(std::make_unique<uv_loop_t>())
        , loop_(own_loop_.get()) {
        if (int rc = uv_loop_init(loop_); rc < 0) throw_uv(rc, "uv_loop_init");
        try {
            open_handles();
        } catch (...) {
            uv_loop_close(loop_);  // open_handles registers nothing when it fails
            throw;
        }
    }

    /// Guest mode on `host`. Nothing is registered until attach_driver, so an
    /// attach that fails (the loop already has a guest) leaves no trace on it.
    explicit libuv_backend(uv_loop_t* host)
        : loop_(host)
        , guest_(true) {}

    ~libuv_backend() override {
        close_all();
        if (own_loop_) {
            // Run the close callbacks; nothing else is left on our own loop.
            uv_run(loop_, UV_RUN_DEFAULT);
            [[maybe_unused]] int rc = uv_loop_close(loop_);
            assert(rc == 0 && "uthreads libuv backend: handles left open on the owned loop");
        }
    }

    libuv_backend(const libuv_backend&) = delete;
    libuv_backend& operator=(const libuv_backend&) = delete;

    std::string_view name() const noexcept override { return "libuv"; }

    void add(lowlevel::io_watcher& w) override {
        auto* r = new fd_record;
        r->owner = this;
        r->w = &w;
        // uv_poll_init registers nothing before its last step, so on failure the
        // record can be freed at once (EPERM for a regular file, EEXIST if the loop
        // already polls this fd: a host's own uv_poll_t in guest mode).
        if (int rc = uv_poll_init(loop_, &r->poll, w.fd); rc < 0) {
            delete r;
            throw_uv(rc, "uv_poll_init");
        }
        r->poll.data = r;
        if (guest_) uv_unref(reinterpret_cast<uv_handle_t*>(&r->poll));  // see keep_alive()
        r->next = records_;
        if (records_) records_->prev = r;
        records_ = r;
        w.backend_data = r;
    }

    void want(lowlevel::io_watcher& w, unsigned events) override {
        auto* r = static_cast<fd_record*>(w.backend_data);
        int mask = 0;
        if (events & lowlevel::readable) mask |= UV_READABLE;
        if (events & lowlevel::writable) mask |= UV_WRITABLE;
        r->wanted = mask;
        // Narrow lazily: only widen here. A direction nobody waits for any more
        // stays in the poll until it fires once unwanted (on_poll drops it), so
        // the steady read -> EAGAIN -> wait cycle makes no uv_poll_start/stop
        // (no epoll_ctl) per message, and the level-triggered poll cannot spin.
        set_mask(*r, r->events | mask);
    }

    // On Unix neither call fails for a valid, open handle (libuv asserts its
    // arguments), and this may run inside the poll callback, where an exception
    // could not cross libuv's C frames.
    static void set_mask(fd_record& r, int mask) {
        if (mask == r.events) return;
        if (mask == 0)
            (void)uv_poll_stop(&r.poll);
        else
            (void)uv_poll_start(&r.poll, mask, &on_poll);
        r.events = mask;
    }

    void remove(lowlevel::io_watcher& w) noexcept override {
        auto* r = static_cast<fd_record*>(w.backend_data);
        w.backend_data = nullptr;
        forget(r);
    }

    void run_once(std::optional<std::chrono::nanoseconds> timeout) override {
        if (guest_) {
            // One turn of the host's loop, for guest_runtime::shutdown. Its
            // deadline is already armed (arm() is called first), and our own
            // callbacks drive the guest meanwhile.
            uv_run(loop_, timeout && *timeout <= std::chrono::nanoseconds(0) ? UV_RUN_NOWAIT
                                                                             : UV_RUN_ONCE);
            return;
        }
        if (timeout && *timeout <= std::chrono::nanoseconds(0)) {
            uv_run(loop_, UV_RUN_NOWAIT);
            return;
        }
        if (timeout) {
            uv_update_time(loop_);
            uv_timer_start(&handles_->timer, &on_timer, timer_ms(*timeout), 0);
        }
        // The referenced async handle keeps the loop alive, so each uv_run blocks
        // until I/O, a wake() or the timer; repeated while it returned without
        // any of them (see the facts above).
        dispatched_ = false;
        do {
            uv_run(loop_, UV_RUN_ONCE);
        } while (!dispatched_);
        if (timeout) uv_timer_stop(&handles_->timer);
    }

    void wake() noexcept override {
        // invariant: handles_ is not closed while wakers_ > 0. seq_cst on both
        // sides (here and in close_all) so that either close_all sees this waker,
        // or this waker sees closed_ (the store-load order a Dekker pair needs).
        wakers_.fetch_add(1, std::memory_order_seq_cst);
        if (!closed_.load(std::memory_order_seq_cst) && handles_) uv_async_send(&handles_->async);
        wakers_.fetch_sub(1, std::memory_order_release);
    }

    // ---- guest mode --------------------------------------------------------

    bool is_guest() const noexcept override { return guest_; }

    void attach_driver(lowlevel::guest_driver* d) override {
        if (!guest_)
            throw std::logic_error("uthreads libuv backend: attach_driver on an owned loop");
        open_handles();
        driver_ = d;
    }

    void arm(bool run_soon, std::optional<steady_clock::time_point> deadline) override {
        if (!handles_ || !driver_) return;
        if (run_soon)
            uv_idle_start(&handles_->idle, &on_idle);
        else
            uv_idle_stop(&handles_->idle);
        if (!deadline) {
            uv_timer_stop(&handles_->timer);
        } else if (*deadline != armed_deadline_ ||
                   !uv_is_active(reinterpret_cast<uv_handle_t*>(&handles_->timer))) {
            start_deadline_timer(*deadline);
        }
    }

    // Core calls this after every arm with whether any of the guest's
    // microthreads is still running.
    void hold_host(bool alive) override {
        if (handles_) keep_alive(alive);
    }

    void detach_from_host() noexcept override { close_all(); }

private:
    void open_handles() {
        auto* h = new loop_handles;
        h->owner = this;
        // The async handle is the only one whose init can fail (its eventfd is
        // created with the loop's first async handle); it comes first, so a
        // failure leaves nothing registered.
        if (int rc = uv_async_init(loop_, &h->async, &on_async); rc < 0) {
            delete h;
            throw_uv(rc, "uv_async_init");
        }
        uv_timer_init(loop_, &h->timer);
        uv_idle_init(loop_, &h->idle);
        uv_check_init(loop_, &h->check);
        h->open = 4;
        for (uv_handle_t* x : handles_of(h)) {
            x->data = h;
            // Guest mode: only the async handle ever keeps the host's loop alive,
            // and only while microthreads live (keep_alive); the rest never do.
            if (guest_) uv_unref(x);
        }
        handles_ = h;
    }

    static std::array<uv_handle_t*, 4> handles_of(loop_handles* h) noexcept {
        return {reinterpret_cast<uv_handle_t*>(&h->async),
                reinterpret_cast<uv_handle_t*>(&h->timer), reinterpret_cast<uv_handle_t*>(&h->idle),
                reinterpret_cast<uv_handle_t*>(&h->check)};
    }

    /// Unregister everything from the loop. Idempotent; after it, no callback of
    /// ours reaches this object and the driver is never called again.
    void close_all() noexcept {
        driver_ = nullptr;
        // Core removes every watcher before this (records_ is then empty); a
        // record left over is closed without touching its watcher, which may be
        // gone.
        while (records_) forget(records_);
        if (!handles_) return;
        closed_.store(true, std::memory_order_seq_cst);
        // A wake() that did not see closed_ is still inside uv_async_send: let it
        // finish before the handle can be freed. It is a few instructions long.
        while (wakers_.load(std::memory_order_seq_cst) != 0) {
        }
        loop_handles* h = std::exchange(handles_, nullptr);
        h->owner = nullptr;
        for (uv_handle_t* x : handles_of(h))
            uv_close(x, [](uv_handle_t* y) {
                auto* b = static_cast<loop_handles*>(y->data);
                if (--b->open == 0) delete b;
            });
    }

    void forget(fd_record* r) noexcept {
        if (r->prev)
            r->prev->next = r->next;
        else
            records_ = r->next;
        if (r->next) r->next->prev = r->prev;
        r->w = nullptr;
        r->owner = nullptr;
        // uv_close stops the poll first (EPOLL_CTL_DEL while the fd is still open,
        // pending events for it dropped); the record is freed in the close callback.
        uv_close(reinterpret_cast<uv_handle_t*>(&r->poll),
                 [](uv_handle_t* h) { delete static_cast<fd_record*>(h->data); });
    }

    /// Milliseconds for a libuv timer that must not fire before `d` has passed
    /// (uv_update_time called just before; see the facts above).
    static std::uint64_t timer_ms(std::chrono::nanoseconds d) {
        if (d <= std::chrono::nanoseconds(0)) return 0;
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
        return static_cast<std::uint64_t>(ms) + 1;
    }

    void start_deadline_timer(steady_clock::time_point deadline) {
        armed_deadline_ = deadline;
        uv_update_time(loop_);
        uv_timer_start(&handles_->timer, &on_timer, timer_ms(deadline - steady_clock::now()), 0);
    }

    /// The keep-alive rule of guest mode (documented in the public header): the
    /// host's uv_run keeps running exactly while the guest has live microthreads.
    /// Every guest handle is unreferenced except the async one, referenced
    /// while microthreads live.
    void keep_alive(bool alive) noexcept {
        if (alive == referenced_) return;
        referenced_ = alive;
        auto* a = reinterpret_cast<uv_handle_t*>(&handles_->async);
        if (alive)
            uv_ref(a);
        else
            uv_unref(a);
    }

    /// Call the driver now (it turns a nested call into one more round itself).
    void drive_now() {
        if (driver_) driver_->drive();
    }

    /// Ask for one drive() after this iteration's I/O phase.
    void drive_after_io() {
        if (handles_ && driver_) uv_check_start(&handles_->check, &on_check);
    }

    // ---- libuv callbacks ----------------------------------------------------

    static void on_poll(uv_poll_t* p, int status, int events) {
        auto* r = static_cast<fd_record*>(p->data);
        if (!r->w) return;  // removed: libuv does not dispatch stopped polls, but be sure
        r->owner->dispatched_ = true;
        unsigned bits = 0;
        if (status < 0) {
            r->events = 0;  // libuv stopped the handle
            bits = lowlevel::io_error;
        } else {
            int fired = (events & UV_WRITABLE) | ((events & (UV_READABLE | UV_DISCONNECT)) ? UV_READABLE : 0);
            if (int unwanted = fired & r->events & ~r->wanted) set_mask(*r, r->events & ~unwanted);
            fired &= r->wanted;
            if (fired == 0) return;  // only directions nobody waits for
            if (fired & UV_READABLE) bits |= lowlevel::readable;
            if (fired & UV_WRITABLE) bits |= lowlevel::writable;
        }
        libuv_backend* b = r->owner;
        r->w->ready(r->w, bits);  // may call want() on this watcher, nothing else
        if (b->guest_) b->drive_after_io();
    }

    static void on_async(uv_async_t* a) {
        // Owned mode: ending run_once was the whole point.
        auto* h = static_cast<loop_handles*>(a->data);
        if (!h->owner) return;
        h->owner->dispatched_ = true;
        if (h->owner->guest_) h->owner->drive_after_io();
    }

    static void on_timer(uv_timer_t* t) {
        auto* h = static_cast<loop_handles*>(t->data);
        libuv_backend* b = h->owner;
        if (!b) return;
        b->dispatched_ = true;
        if (!b->guest_) return;  // owned: it only bounded run_once's wait
        if (steady_clock::now() < b->armed_deadline_) {
            b->start_deadline_timer(b->armed_deadline_);  // the ms clock was early
            return;
        }
        b->drive_now();
    }

    static void on_idle(uv_idle_t* i) {
        uv_idle_stop(i);
        auto* h = static_cast<loop_handles*>(i->data);
        if (h->owner) h->owner->drive_now();
    }

    static void on_check(uv_check_t* c) {
        uv_check_stop(c);
        auto* h = static_cast<loop_handles*>(c->data);
        if (h->owner) h->owner->drive_now();
    }

    std::unique_ptr<uv_loop_t> own_loop_;  // owned mode only
    uv_loop_t* loop_;
    const bool guest_ = false;
    loop_handles* handles_ = nullptr;
    fd_record* records_ = nullptr;
    std::atomic<bool> closed_{false};
    std::atomic<int> wakers_{0};
    // Guest mode.
    lowlevel::guest_driver* driver_ = nullptr;
    steady_clock::time_point armed_deadline_{};
    bool referenced_ = false;
    bool dispatched_ = false;  // owned run_once: one of our callbacks ran
};

}  // namespace

std::unique_ptr<lowlevel::backend> make_libuv_backend() {
    return std::make_unique<libuv_backend>();
}

}  // namespace uthreads::backends

namespace uthreads {

guest_runtime attach(uv_loop_t* loop) {
    if (!loop) throw std::invalid_argument("uthreads::attach: loop is null");
    return guest_runtime(std::make_unique<backends::libuv_backend>(loop), loop);
}

}  // namespace uthreads
