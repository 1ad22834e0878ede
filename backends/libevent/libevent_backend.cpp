// The libevent backend: uthreads on an event_base, either its own (owned mode,
// selected by name like any backend) or a host program's (guest mode, through
// uthreads::attach(event_base*)).
//
// Some facts about libevent (2.1) this file relies on:
// - Events are level-triggered unless added with EV_ET. We do not use EV_ET (not
//   every libevent method has it), so a wanted direction that stays ready is
//   reported on every loop iteration: interest must follow `want` exactly, or a
//   writable socket nobody writes to makes the loop spin. Each descriptor has one
//   EV_READ|EV_PERSIST and one EV_WRITE|EV_PERSIST event, created on first use,
//   added when wanted and deleted lazily (the first time it fires unwanted), so
//   the steady read/wait cycle makes no epoll_ctl; libevent merges them into one
//   registration per descriptor (epoll_ctl ADD/MOD/DEL). Being level-triggered,
//   an added event reports a descriptor that is already ready: nothing is lost
//   at registration.
// - Error and hang-up (EPOLLERR/EPOLLHUP, POLLERR/POLLHUP/POLLNVAL) are delivered
//   as EV_READ|EV_WRITE to every event of the descriptor, so both parked
//   directions wake and their retried system calls report the error. io_error is
//   therefore never needed, and EV_CLOSED is not asked for.
// - event_del (and so event_free) is synchronous when called on the loop thread,
//   even from inside that very event's callback: libevent waits for a running
//   callback only when another thread deletes it from a locking base. After a
//   callback returns, libevent does not touch the event again, so a callback may
//   free its own event (in guest mode a microthread run by drive() may close the
//   socket whose callback is on the stack), as long as the callback itself does
//   not touch it afterwards. Deleting an event also drops it from the active
//   queue, so a removed watcher is never called with an event already collected.
// - An event_base is not thread-safe unless evthread locking was enabled before
//   it was created, and a host's base may not have it. wake() therefore never
//   calls libevent: it writes to an eventfd of our own (async-signal-safe), which
//   a persistent EV_READ event in the base watches. An atomic flag coalesces
//   wake()s into one write until the loop has drained it (as in epoll_backend).
// - event_base_loop(EVLOOP_ONCE) blocks until at least one event is active, runs
//   the active callbacks and returns; with EVLOOP_NONBLOCK it polls instead. It
//   returns at once (1) if the base has no events at all, which never happens
//   here: the wake-up event stays added. A run_once timeout is a dedicated
//   one-shot timer event, never event_base_loopexit, whose internal event would
//   outlive the call and end a later loop (a host's, in guest mode).
// - Timeouts are timevals (microseconds): rounded up. libevent's own clock is
//   CLOCK_MONOTONIC_COARSE by default (a jiffy's resolution), and inside a loop
//   iteration it is a cached value from before the callbacks ran; either makes a
//   timer fire early when measured on steady_clock. Our owned base asks for
//   EVENT_BASE_FLAG_PRECISE_TIMER (CLOCK_MONOTONIC, and a timerfd under epoll),
//   and core re-checks deadlines anyway. A host's base is what the host made it,
//   so guest mode refreshes the cache before adding its timer and re-adds the
//   timer for the remainder if it fires before steady_clock reaches the deadline.
// - Timer and "run soon" callbacks come from the timeout heap, processed after
//   each poll for I/O: a 0-second timer is how guest mode gets a callback at the
//   loop's next turn without starving the host's I/O (event_active would run it
//   in the same pass over the active queue, again and again).
// - event_base_loop refuses to run nested inside a callback of the same base (it
//   warns "reentrant invocation" and returns -1). Guest-mode run_once is only
//   used by guest_runtime::shutdown; called from inside a host callback, it falls
//   back to waiting on the wake-up eventfd alone (see run_once_nested).
// - An event_base has no destruction hook: a guest cannot notice its host's base
//   being freed, so the public header requires shutdown first.
#include <uthreads/backends/libevent.hpp>
#include <uthreads/guest.hpp>
#include <uthreads/lowlevel/backend.hpp>

#include <event2/event.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

namespace uthreads::backends {

namespace {

using std::chrono::nanoseconds;
using time_point = std::chrono::steady_clock::time_point;

[[noreturn]] void throw_error(int err, const char* what) {
    throw std::system_error(err, std::system_category(),
                            std::string("uthreads libevent backend: ") + what);
}

// libevent reports failures as -1/nullptr and usually leaves errno from the
// system call that failed; an allocation failure may leave nothing useful.
int errno_or(int fallback) noexcept {
    return errno != 0 ? errno : fallback;
}

// Waits longer than this are cut short: core simply calls run_once again, and
// timeval arithmetic in libevent stays far from overflow.
constexpr nanoseconds max_wait = std::chrono::hours(24);

/// `d` as a timeval, rounded up to the microsecond: a timer must never fire
/// before the deadline it stands for.
timeval timeval_ceil(nanoseconds d) noexcept {
    timeval tv{};
    if (d <= nanoseconds(0)) return tv;
    if (d > max_wait) d = max_wait;
    long long us = (d.count() + 999) / 1000;
    tv.tv_sec = static_cast<time_t>(us / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
    return tv;
}

/// `d` in poll(2) milliseconds, rounded up; -1 for no limit.
int poll_ms_ceil(std::optional<nanoseconds> d) noexcept {
    if (!d) return -1;
    if (*d <= nanoseconds(0)) return 0;
    nanoseconds c = *d > max_wait ? max_wait : *d;
    return static_cast<int>((c.count() + 999'999) / 1'000'000);
}

class libevent_backend;

/// Per watched descriptor: its two events and which of them are added. Lives
/// from add() to remove(); `backend_data` of the watcher points to it, and it is
/// the argument of its events' callbacks.
struct fd_record {
    libevent_backend* owner = nullptr;
    lowlevel::io_watcher* w = nullptr;
    event* read_ev = nullptr;
    event* write_ev = nullptr;
    unsigned wanted = 0;  // readable|writable: the latest want()
    unsigned added = 0;   // readable|writable: the events currently added
    fd_record* prev = nullptr;
    fd_record* next = nullptr;
};

class libevent_backend final : public lowlevel::backend {
public:
    /// Owned mode: a base of our own.
    libevent_backend();
    /// Guest mode: events in `host`, which the host program runs.
    explicit libevent_backend(event_base* host);
    ~libevent_backend() override;
    libevent_backend(const libevent_backend&) = delete;
    libevent_backend& operator=(const libevent_backend&) = delete;

    std::string_view name() const noexcept override { return "libevent"; }
    void add(lowlevel::io_watcher& w) override;
    void want(lowlevel::io_watcher& w, unsigned events) override;
    void remove(lowlevel::io_watcher& w) noexcept override;
    void run_once(std::optional<nanoseconds> timeout) override;
    void wake() noexcept override;

    bool is_guest() const noexcept override { return guest_; }
    void attach_driver(lowlevel::guest_driver* d) override { driver_ = d; }
    void arm(bool run_soon, std::optional<time_point> deadline) override;
    void detach_from_host() noexcept override;

private:
    static void on_io(evutil_socket_t, short what, void* arg) noexcept;
    static void on_wake(evutil_socket_t, short, void* arg) noexcept;
    static void on_arm_timer(evutil_socket_t, short, void* arg) noexcept;
    static void on_run_once_timeout(evutil_socket_t, short, void*) noexcept {}

    /// Events shared by both modes (wake-up, run_once timeout) and, in guest
    /// mode, the arm() timer. Throws std::system_error.
    void create_common_events();
    /// Frees everything; safe on a partly constructed object.
    void release() noexcept;
    /// Make the added events of `r` exactly `dirs`. Returns 0 or an errno.
    int set_added(fd_record& r, unsigned dirs) noexcept;
    static void free_events(fd_record& r) noexcept;
    void drain_wake() noexcept;
    /// Guest mode, after a host callback dispatched: let core run.
    void drive() noexcept;
    void add_arm_timer(time_point deadline) noexcept;
    void run_once_nested(std::optional<nanoseconds> timeout) noexcept;

    event_base* base_ = nullptr;
    bool guest_ = false;
    int wake_fd_ = -1;
    // invariant: true from the wake() that wrote to wake_fd_ until the loop
    // thread drains it; false otherwise (so at most one unread write is pending).
    std::atomic<bool> wake_pending_{false};
    event* wake_ev_ = nullptr;
    event* timeout_ev_ = nullptr;
    fd_record* records_ = nullptr;

    // Guest mode only.
    event* arm_ev_ = nullptr;
    lowlevel::guest_driver* driver_ = nullptr;
    bool detached_ = false;
    bool nested_ = false;  // event_base_loop refused to nest: stop asking
    bool armed_soon_ = false;
    std::optional<time_point> armed_deadline_;
};

libevent_backend::libevent_backend() {
    try {
        event_config* cfg = event_config_new();
        if (!cfg) throw std::bad_alloc();
        // NOLOCK: only this thread ever touches the base, even if the process
        // enabled evthread locking for someone else's. PRECISE_TIMER: timers on
        // CLOCK_MONOTONIC (steady_clock) with microsecond resolution, instead of
        // the coarse clock, which would return from run_once early.
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_PRECISE_TIMER);
        errno = 0;
        base_ = event_base_new_with_config(cfg);
        int err = errno_or(ENOMEM);
        event_config_free(cfg);
        if (!base_) throw_error(err, "event_base_new_with_config");
        create_common_events();
    } catch (...) {
        release();
        throw;
    }
}

libevent_backend::libevent_backend(event_base* host)
    : base_(host)
    , guest_(true) {
    try {
        create_common_events();
        arm_ev_ = event_new(base_, -1, 0, &on_arm_timer, this);
        if (!arm_ev_) throw_error(ENOMEM, "event_new(timer)");
    } catch (...) {
        release();
        throw;
    }
}

void libevent_backend::create_common_events() {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw_error(errno, "eventfd");
    wake_ev_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &on_wake, this);
    if (!wake_ev_) throw_error(ENOMEM, "event_new(eventfd)");
    errno = 0;
    if (event_add(wake_ev_, nullptr) != 0) throw_error(errno_or(EIO), "event_add(eventfd)");
    timeout_ev_ = event_new(base_, -1, 0, &on_run_once_timeout, this);
    if (!timeout_ev_) throw_error(ENOMEM, "event_new(timer)");
}

libevent_backend::~libevent_backend() {
    release();
}

void libevent_backend::release() noexcept {
    // Core removes every watcher before destroying a backend; a record left
    // behind (a bug elsewhere) is still freed, so nothing outlives us. Its
    // watcher is not touched: it may be gone already.
    while (fd_record* r = records_) {
        records_ = r->next;
        free_events(*r);
        delete r;
    }
    for (event** ev : {&wake_ev_, &timeout_ev_, &arm_ev_}) {
        if (*ev) event_free(*ev);
        *ev = nullptr;
    }
    driver_ = nullptr;
    detached_ = true;
    if (!guest_ && base_) event_base_free(base_);
    base_ = nullptr;
    if (wake_fd_ >= 0) ::close(wake_fd_);
    wake_fd_ = -1;
}

void libevent_backend::detach_from_host() noexcept {
    if (!guest_ || detached_) return;
    detached_ = true;
    driver_ = nullptr;
    // Records stay until core removes their watchers (it may do so after
    // detaching); only their events leave the host's base now.
    for (fd_record* r = records_; r; r = r->next) free_events(*r);
    for (event** ev : {&wake_ev_, &timeout_ev_, &arm_ev_}) {
        if (*ev) event_free(*ev);
        *ev = nullptr;
    }
    armed_soon_ = false;
    armed_deadline_.reset();
}

void libevent_backend::free_events(fd_record& r) noexcept {
    if (r.read_ev) event_free(r.read_ev);
    if (r.write_ev) event_free(r.write_ev);
    r.read_ev = r.write_ev = nullptr;
    r.added = 0;
}

// ---- readiness ------------------------------------------------------------

int libevent_backend::set_added(fd_record& r, unsigned dirs) noexcept {
    int err = 0;
    // Adds before deletes: a direction swap then stays one registration that
    // libevent modifies, instead of a removal and a fresh registration.
    for (unsigned dir : {unsigned(lowlevel::readable), unsigned(lowlevel::writable)}) {
        if (!(dirs & dir) || (r.added & dir)) continue;
        event*& ev = dir == lowlevel::readable ? r.read_ev : r.write_ev;
        if (!ev) {
            short what =
                static_cast<short>((dir == lowlevel::readable ? EV_READ : EV_WRITE) | EV_PERSIST);
            ev = event_new(base_, r.w->fd, what, &on_io, &r);
            if (!ev) {
                err = ENOMEM;
                continue;
            }
        }
        errno = 0;
        if (event_add(ev, nullptr) != 0) {
            err = errno_or(EIO);
            continue;
        }
        r.added |= dir;
    }
    for (unsigned dir : {unsigned(lowlevel::readable), unsigned(lowlevel::writable)}) {
        if ((dirs & dir) || !(r.added & dir)) continue;
        event_del(dir == lowlevel::readable ? r.read_ev : r.write_ev);
        r.added &= ~dir;
    }
    return err;
}

void libevent_backend::add(lowlevel::io_watcher& w) {
    auto r = std::make_unique<fd_record>();
    r->owner = this;
    r->w = &w;
    if (!detached_) {
        // Register the read direction right away, although nothing is wanted
        // yet, so that a descriptor libevent's method cannot watch (a regular
        // file under epoll: EPERM) fails here, where core expects an error,
        // rather than in want(), which cannot report one. Usually core's first
        // want() follows at once and settles the interest; but a microthread
        // cancelled just as it parks never calls want(), so on_io drops this
        // direction the first time it fires unwanted (a level-triggered event
        // left behind would fire on every iteration).
        if (int err = set_added(*r, lowlevel::readable)) {
            free_events(*r);
            throw_error(err, "event_add");
        }
    }
    r->next = records_;
    if (records_) records_->prev = r.get();
    records_ = r.get();
    w.backend_data = r.release();
}

void libevent_backend::want(lowlevel::io_watcher& w, unsigned events) {
    auto* r = static_cast<fd_record*>(w.backend_data);
    if (!r || detached_) return;
    // May run inside on_io for this very descriptor (core narrows its interest
    // as soon as a parked microthread is woken); deleting the running event is
    // fine there, see the facts above. A failure to add (out of memory) cannot be
    // reported to the waiter from here; libevent has already logged it.
    r->wanted = events & (lowlevel::readable | lowlevel::writable);
    // Narrow lazily: only add here. A direction nobody waits for any more stays
    // added until it fires once unwanted (on_io drops it then), so the usual
    // read -> EAGAIN -> wait -> read cycle costs no event_add/event_del (no
    // epoll_ctl) per message, and a level-triggered event still cannot spin.
    (void)set_added(*r, r->added | r->wanted);
}

void libevent_backend::remove(lowlevel::io_watcher& w) noexcept {
    auto* r = static_cast<fd_record*>(w.backend_data);
    if (!r) return;
    // event_free deletes first (epoll_ctl DEL while the descriptor is still
    // open) and drops the events from the active queue, so w is never called
    // again, even with readiness already collected in this iteration.
    free_events(*r);
    if (r->prev)
        r->prev->next = r->next;
    else
        records_ = r->next;
    if (r->next) r->next->prev = r->prev;
    w.backend_data = nullptr;
    delete r;
}

void libevent_backend::on_io(evutil_socket_t, short what, void* arg) noexcept {
    auto* r = static_cast<fd_record*>(arg);
    libevent_backend* self = r->owner;
    unsigned bits = 0;
    if (what & EV_READ) bits |= lowlevel::readable;
    if (what & EV_WRITE) bits |= lowlevel::writable;
    if (unsigned unwanted = bits & r->added & ~r->wanted) {
        // Directions nobody waits for (left added by want's lazy narrowing, or
        // the registration add() made): drop them the first time they fire.
        (void)self->set_added(*r, r->added & ~unwanted);
    }
    if (!(bits & r->wanted)) return;  // nothing to report, nothing for core to drive
    r->w->ready(r->w, bits);
    // From here on `r` may be freed: drive() runs microthreads, and one may close
    // this descriptor.
    if (self->guest_) self->drive();
}

// ---- waiting and waking ---------------------------------------------------

void libevent_backend::run_once(std::optional<nanoseconds> timeout) {
    if (guest_ && (detached_ || nested_)) {
        run_once_nested(timeout);
        return;
    }
    int flags = EVLOOP_ONCE;
    bool timed = false;
    if (timeout && *timeout <= nanoseconds(0)) {
        // ONCE as well: NONBLOCK alone keeps iterating while callbacks ran.
        flags |= EVLOOP_NONBLOCK;
    } else if (timeout) {
        timeval tv = timeval_ceil(*timeout);
        event_add(timeout_ev_, &tv);
        timed = true;
    }
    errno = 0;
    int rc = event_base_loop(base_, flags);
    int err = errno_or(EIO);
    if (timed) event_del(timeout_ev_);
    if (rc >= 0) return;
    if (guest_) {
        // Most likely shutdown() was called from a callback of the host's base,
        // which is running its loop right now (see run_once_nested).
        nested_ = true;
        run_once_nested(timeout);
        return;
    }
    // Our own base runs nowhere else, so this is the backend method failing
    // (epoll_wait with something other than EINTR).
    throw_error(err, "event_base_loop");
}

void libevent_backend::run_once_nested(std::optional<nanoseconds> timeout) noexcept {
    // The host's loop cannot be turned from here. What a shutdown still waits
    // for once everything is cancelled is almost always a wake-up (a thread-pool
    // job, a promise set from another thread) or a timer (the timeout covers
    // it); socket readiness is not seen until the host's loop runs again.
    pollfd p{};
    p.fd = wake_fd_;
    p.events = POLLIN;
    if (wake_fd_ >= 0 && ::poll(&p, 1, poll_ms_ceil(timeout)) > 0) drain_wake();
}

void libevent_backend::drain_wake() noexcept {
    // Drain, then clear the flag (the other order loses wake-ups; see
    // epoll_backend::poll_events).
    std::uint64_t v;
    (void)::read(wake_fd_, &v, sizeof v);
    wake_pending_.store(false, std::memory_order_release);
}

void libevent_backend::on_wake(evutil_socket_t, short, void* arg) noexcept {
    auto* self = static_cast<libevent_backend*>(arg);
    self->drain_wake();
    if (self->guest_) self->drive();
}

void libevent_backend::wake() noexcept {
    // acq_rel: pairs with the release store in drain_wake, so a wake() that sees
    // the flag clear is ordered after the drain and its write is not swallowed.
    if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
    std::uint64_t one = 1;
    (void)::write(wake_fd_, &one, sizeof one);
}

// ---- guest mode -----------------------------------------------------------

void libevent_backend::drive() noexcept {
    // The driver itself turns a nested call (a host callback of ours that ran
    // while a drive is on the stack) into one more round.
    if (driver_) driver_->drive();
}

void libevent_backend::arm(bool run_soon, std::optional<time_point> deadline) {
    if (!guest_ || detached_) return;
    if (run_soon) {
        if (armed_soon_) return;
        armed_soon_ = true;
        armed_deadline_.reset();
        // A timer due now rather than event_active: it fires after the host's
        // next poll for I/O, so a guest that always has work cannot keep the
        // host's loop inside one pass over its active events.
        timeval zero{};
        event_add(arm_ev_, &zero);
        return;
    }
    armed_soon_ = false;
    if (!deadline) {
        armed_deadline_.reset();
        event_del(arm_ev_);
        return;
    }
    if (armed_deadline_ == deadline) return;  // that very timer is still pending
    armed_deadline_ = deadline;
    add_arm_timer(*deadline);
}

void libevent_backend::add_arm_timer(time_point deadline) noexcept {
    // Read our clock first, then refresh libevent's cached time (stale by however
    // long the callbacks of this iteration, drive() included, have run): the
    // timer then starts no earlier than we measured from.
    time_point now = std::chrono::steady_clock::now();
    event_base_update_cache_time(base_);
    timeval tv = timeval_ceil(deadline - now);
    event_add(arm_ev_, &tv);
}

void libevent_backend::on_arm_timer(evutil_socket_t, short, void* arg) noexcept {
    auto* self = static_cast<libevent_backend*>(arg);
    if (self->armed_deadline_ && std::chrono::steady_clock::now() < *self->armed_deadline_) {
        // Early by libevent's clock (coarse, or cached): wait for the rest.
        self->add_arm_timer(*self->armed_deadline_);
        return;
    }
    self->armed_soon_ = false;
    self->armed_deadline_.reset();
    self->drive();
}

}  // namespace

std::unique_ptr<lowlevel::backend> make_libevent_backend() {
    return std::make_unique<libevent_backend>();
}

}  // namespace uthreads::backends

namespace uthreads {

guest_runtime attach(event_base* base) {
    if (!base) throw std::invalid_argument("uthreads::attach: base is a null event_base*");
    return guest_runtime(std::make_unique<backends::libevent_backend>(base), base);
}

}  // namespace uthreads
