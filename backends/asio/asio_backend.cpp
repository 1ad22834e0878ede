// The Boost.Asio backend: uthreads on an io_context, its own (owned mode, for
// uthreads::run) or the host program's (guest mode, uthreads::attach).
//
// Some facts about Asio (Boost 1.81, Linux, the default epoll reactor) this
// file relies on:
// - An io_context is a queue of ready handlers plus a reactor, which is itself
//   run as one item of that queue. run_one() blocks until one handler has run;
//   poll_one() runs at most one, polling epoll with a zero timeout when the
//   reactor's turn comes, and never blocks. run_one_for() does not return
//   before its time unless a handler ran, and its epoll wait rounds
//   microseconds up to milliseconds: never early.
// - run_one() returns 0 at once, and leaves the io_context stopped, when no
//   work is outstanding (no pending operation, no work guard). The owned
//   io_context therefore holds a work guard, so that "wait for a wake()"
//   blocks; a guest holds one only while it turns the host's loop itself.
// - posix::stream_descriptor::async_wait(wait_read / wait_write) is one-shot:
//   it completes once, after the next readiness edge (the reactor registers
//   descriptors edge-triggered and never completes a wait speculatively).
//   Seen from here that is level-triggered: only directions core still wants
//   are re-armed, or a writable socket nobody writes to would complete wait
//   after wait. A wait left pending after core stopped wanting its direction
//   is harmless: it fires once and is not re-armed. Nothing is missed because
//   core parks (and calls want) only right after the system call said EAGAIN,
//   before the reactor polls again, so any later change is a new edge. An
//   error or hang-up completes every pending wait successfully; a wait that
//   fails (a descriptor epoll refuses, such as a regular file) is reported as
//   io_error and core lets the retried system call tell.
// - Assigning a descriptor registers it with the reactor; release()
//   deregisters it (EPOLL_CTL_DEL) without closing it, and its pending waits
//   complete later, from the queue, with operation_aborted. Those handlers
//   outlive remove(): they hold the per-fd record by shared_ptr and find its
//   watcher pointer cleared. A released record holds no Asio object, so it may
//   also outlive the io_context (whose destruction destroys pending handlers
//   without running them).
// - A handler may start new operations (the ready callback calls want, which
//   calls async_wait): the reactor drops the descriptor's lock before it runs
//   a completion handler.
// - post() is thread-safe with concurrency hint 1 (the hint only skips waking
//   other threads; locking stays on) and interrupts a blocked epoll_wait
//   through the reactor's eventfd. It allocates its operation with the
//   handler's associated allocator and frees it before invoking the handler (a
//   documented guarantee), so a coalesced wake-up can use one preallocated
//   slot and wake() does not allocate.
// - poll() runs until nothing is ready, which is never while another thread
//   keeps posting; run_once dispatches a bounded batch instead.
// - When an io_context is destroyed its services are shut down newest first,
//   while all of them still exist, and only then deleted. The guest registers
//   its own service (host_watch) after bringing the reactor into existence, so
//   host_watch hears of the destruction first and can still deregister
//   descriptors and cancel its timer.
// - steady_timer fires when steady_clock::now() >= its expiry: never early, on
//   the same clock as core's timers.
#include <uthreads/backends/asio.hpp>
#include <uthreads/lowlevel/backend.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace uthreads::backends {

namespace {

namespace asio = boost::asio;
using std::chrono::nanoseconds;
using time_point = std::chrono::steady_clock::time_point;
using error_code = boost::system::error_code;

constexpr unsigned both_directions = lowlevel::readable | lowlevel::writable;
// run_once dispatches at most this many handlers, so that it returns even
// while another thread posts wake-ups without pause.
constexpr int max_batch = 256;
// Longest single wait; a longer timeout returns early (allowed) instead of
// overflowing a time_point.
constexpr nanoseconds max_wait = std::chrono::hours(24);

// ---- a wake-up that does not allocate ---------------------------------------

// Memory for the one wake-up operation that can be in flight at a time (wake()
// coalesces them), so that wake() does not allocate.
struct wake_slot {
    alignas(std::max_align_t) unsigned char bytes[256];
    std::atomic<bool> busy{false};
};

template <class T>
class slot_allocator {
public:
    using value_type = T;
    explicit slot_allocator(wake_slot* s) noexcept
        : slot_(s) {}
    template <class U>
    slot_allocator(const slot_allocator<U>& o) noexcept
        : slot_(o.slot()) {}

    T* allocate(std::size_t n) {
        // The heap only if the operation is bigger than expected, or the slot
        // is taken (which coalescing rules out). acquire: pairs with the
        // release in deallocate, so the previous operation is fully gone.
        if (n * sizeof(T) <= sizeof slot_->bytes && alignof(T) <= alignof(std::max_align_t) &&
            !slot_->busy.exchange(true, std::memory_order_acquire))
            return reinterpret_cast<T*>(slot_->bytes);
        return static_cast<T*>(::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t) noexcept {
        if (reinterpret_cast<unsigned char*>(p) == slot_->bytes)
            slot_->busy.store(false, std::memory_order_release);
        else
            ::operator delete(p);
    }
    wake_slot* slot() const noexcept { return slot_; }
    template <class U>
    bool operator==(const slot_allocator<U>& o) const noexcept {
        return slot_ == o.slot();
    }

private:
    wake_slot* slot_;
};

// ---- descriptors, shared by both modes --------------------------------------

class asio_backend;

// One watched descriptor. Shared ownership: the registration holds `self` from
// add to remove, and every pending async_wait handler holds a copy, so a
// handler completing after remove still finds the record and sees `w` cleared.
struct fd_record {
    std::optional<asio::posix::stream_descriptor> sd;  // empty once released
    lowlevel::io_watcher* w = nullptr;                 // cleared by remove: never touched after
    asio_backend* owner = nullptr;                     // valid while `w` is set
    unsigned wanted = 0;                               // directions core last asked for
    unsigned armed = 0;               // directions with a current async_wait pending
    unsigned long epoch = 0;          // bumped by cancel: earlier waits are not current
    std::shared_ptr<fd_record> self;  // the registration's reference
    fd_record* prev = nullptr;        // owner's list of registered records
    fd_record* next = nullptr;
};

class asio_backend : public lowlevel::backend {
public:
    std::string_view name() const noexcept override { return "asio"; }
    void add(lowlevel::io_watcher& w) override;
    void want(lowlevel::io_watcher& w, unsigned events) override;
    void remove(lowlevel::io_watcher& w) noexcept override;

protected:
    explicit asio_backend(asio::io_context& io) noexcept
        : io_(io) {}
    ~asio_backend() override { forget_all(); }

    /// Throws if descriptors can no longer be registered (a guest whose host
    /// loop is gone or that has detached).
    virtual void check_usable() const {}
    /// Called at the start of every readiness handler, before anything is
    /// touched (a guest checks that it runs on its loop thread).
    virtual void enter_host_callback() const {}
    /// Called at the end of every readiness handler (a guest drives core).
    virtual void after_dispatch() {}

    /// Wait as `timeout` says for one handler to run, then run a bounded batch
    /// of those ready.
    void turn(std::optional<nanoseconds> timeout);
    /// Deregister every descriptor from the io_context, keeping the records
    /// registered with core (which still calls remove for them).
    void release_descriptors() noexcept;
    /// Forget every registration: descriptors released, records dropped.
    void forget_all() noexcept;

    asio::io_context& io_;

private:
    void arm_waits(fd_record& r);
    static void on_wait(const std::shared_ptr<fd_record>& r, unsigned dir, unsigned long epoch,
                        const error_code& ec);
    static void release_descriptor(fd_record& r) noexcept;
    void forget(fd_record& r) noexcept;

    fd_record* records_ = nullptr;
};

void asio_backend::add(lowlevel::io_watcher& w) {
    check_usable();
    auto r = std::make_shared<fd_record>();
    r->sd.emplace(io_);
    error_code ec;
    r->sd->assign(w.fd, ec);
    if (ec)
        throw std::system_error(ec.value(), std::system_category(),
                                "uthreads asio backend: cannot watch descriptor " +
                                    std::to_string(w.fd));
    r->w = &w;
    r->owner = this;
    r->self = r;
    r->next = records_;
    if (records_) records_->prev = r.get();
    records_ = r.get();
    w.backend_data = r.get();
}

void asio_backend::want(lowlevel::io_watcher& w, unsigned events) {
    auto* r = static_cast<fd_record*>(w.backend_data);
    if (!r) return;  // forgotten by detach_from_host
    r->wanted = events & both_directions;
    if ((r->armed & ~r->wanted) && r->sd) {
        // A wait nobody needs any more: cancel it (both directions; the wanted
        // one is re-armed below). Left pending it would do no harm to core, but
        // it is outstanding work that keeps a host's io.run() from returning.
        error_code ec;
        r->sd->cancel(ec);
        ++r->epoch;
        r->armed = 0;
    }
    arm_waits(*r);
}

void asio_backend::remove(lowlevel::io_watcher& w) noexcept {
    auto* r = static_cast<fd_record*>(w.backend_data);
    if (!r) return;
    w.backend_data = nullptr;
    forget(*r);
}

void asio_backend::arm_waits(fd_record& r) {
    if (!r.sd) return;  // released: the host loop is gone
    for (unsigned dir : {unsigned(lowlevel::readable), unsigned(lowlevel::writable)}) {
        if (!(r.wanted & dir) || (r.armed & dir)) continue;
        r.sd->async_wait(dir == lowlevel::readable ? asio::posix::descriptor_base::wait_read
                                                   : asio::posix::descriptor_base::wait_write,
                         [rec = r.self, dir, epoch = r.epoch](const error_code& ec) {
                             on_wait(rec, dir, epoch, ec);
                         });
        r.armed |= dir;
    }
}

void asio_backend::on_wait(const std::shared_ptr<fd_record>& r, unsigned dir, unsigned long epoch,
                           const error_code& ec) {
    if (r->w) r->owner->enter_host_callback();
    if (epoch == r->epoch) r->armed &= ~dir;
    lowlevel::io_watcher* w = r->w;
    if (!w) return;  // removed: the watcher may be freed, the backend too
    // Cancelled by want: nothing happened, and the wait that replaced it (if
    // any) is pending already.
    if (ec == asio::error::operation_aborted) return;
    asio_backend* b = r->owner;
    // Reported even when it is no longer the current wait (it completed just
    // before a cancel): the edge it saw will not come again.
    w->ready(w, ec ? (both_directions | lowlevel::io_error) : dir);
    // ready() only schedules (and may call want for this watcher), so the
    // record is still registered: re-arm what core still waits for.
    b->arm_waits(*r);
    b->after_dispatch();
}

void asio_backend::release_descriptor(fd_record& r) noexcept {
    if (!r.sd) return;
    error_code ec;
    r.sd->cancel(ec);       // pending waits complete later with operation_aborted
    (void)r.sd->release();  // deregister without closing: the descriptor is core's
    r.sd.reset();
}

void asio_backend::forget(fd_record& r) noexcept {
    r.w = nullptr;
    release_descriptor(r);
    if (r.prev)
        r.prev->next = r.next;
    else
        records_ = r.next;
    if (r.next) r.next->prev = r.prev;
    r.prev = r.next = nullptr;
    // Last: frees the record now unless a handler still holds it.
    std::shared_ptr<fd_record> last = std::move(r.self);
}

void asio_backend::release_descriptors() noexcept {
    for (fd_record* r = records_; r; r = r->next) release_descriptor(*r);
}

void asio_backend::forget_all() noexcept {
    while (fd_record* r = records_) {
        // Core still holds this watcher (it removes them before the backend
        // goes, so this is a detach with sockets left open): make its later
        // remove() a no-op instead of a use of the freed record.
        if (r->w) r->w->backend_data = nullptr;
        forget(*r);
    }
}

void asio_backend::turn(std::optional<nanoseconds> timeout) {
    std::size_t n;
    if (!timeout)
        n = io_.run_one();
    else if (*timeout <= nanoseconds(0))
        n = io_.poll_one();
    else
        n = io_.run_one_for(std::min(*timeout, max_wait));
    for (int i = 1; n != 0 && i < max_batch; ++i) n = io_.poll_one();
}

// ---- owned mode --------------------------------------------------------------

// Declared before the backend part so that it is destroyed last: the io_context
// outlives the descriptors registered with it, and the wake-up slot outlives a
// wake-up the io_context destroys without running.
struct owned_context {
    wake_slot slot;
    asio::io_context io{1};  // one thread runs it
};

class owned_asio_backend final : private owned_context, public asio_backend {
public:
    owned_asio_backend()
        : asio_backend(owned_context::io)
        , work_(asio::make_work_guard(io)) {}

    void run_once(std::optional<nanoseconds> timeout) override {
        if (io.stopped()) io.restart();
        turn(timeout);
    }

    void wake() noexcept override {
        // acq_rel: the handler's exchange(false) reads this one's true, so
        // whatever the caller published before wake() (core's remote queue) is
        // visible to the loop once the handler has run.
        if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
        try {
            asio::post(io, asio::bind_allocator(slot_allocator<void>(&slot), [this] {
                           wake_pending_.exchange(false, std::memory_order_acq_rel);
                       }));
        } catch (...) {
            wake_pending_.store(false, std::memory_order_release);
        }
    }

private:
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::atomic<bool> wake_pending_{false};
};

// ---- guest mode ----------------------------------------------------------------

class asio_guest_backend;

[[noreturn]] void throw_host_gone() {
    throw std::logic_error("uthreads: the io_context of this guest runtime has been destroyed");
}

// Shared by the guest backend, the handlers it posts and the host_watch
// service: each of them may be the last to go.
struct guest_shared {
    // Guards `io` for wake(), which may run on any thread while the loop
    // thread detaches or destroys the io_context.
    std::mutex mu;
    asio::io_context* io = nullptr;  // null once detached or the io_context is gone
    std::atomic<bool> wake_pending{false};
    wake_slot slot;
    // Loop thread only.
    asio_guest_backend* backend = nullptr;  // null after detach: handlers do nothing
    bool host_gone = false;
};

// An io_context service whose only job is to hear that the io_context is
// being destroyed (service shutdown) and tell the guests attached to it.
class host_watch final : public asio::io_context::service {
public:
    static inline asio::execution_context::id id;
    explicit host_watch(asio::io_context& io)
        : asio::io_context::service(io) {}
    void add(guest_shared* g) { guests_.push_back(g); }
    void erase(guest_shared* g) noexcept { std::erase(guests_, g); }

private:
    void shutdown() override;
    std::vector<guest_shared*> guests_;  // loop thread only
};

class asio_guest_backend final : public asio_backend {
public:
    explicit asio_guest_backend(asio::io_context& io)
        : asio_backend(io)
        , shared_(std::make_shared<guest_shared>()) {
        // The timer first: creating it creates the reactor, which must be older
        // than host_watch to still work when host_watch is shut down.
        timer_.emplace(io);
        watch_ = &asio::use_service<host_watch>(io);
        watch_->add(shared_.get());
        shared_->io = &io;
        shared_->backend = this;
    }
    ~asio_guest_backend() override { detach_from_host(); }

    bool is_guest() const noexcept override { return true; }

    void attach_driver(lowlevel::guest_driver* d) override {
        if (shared_->host_gone) throw_host_gone();
        driver_ = d;
    }
    bool host_alive() const noexcept override { return !shared_->host_gone; }
    void hold_host(bool hold) override;

    void arm(bool run_soon, std::optional<time_point> deadline) override;
    void detach_from_host() noexcept override;
    void run_once(std::optional<nanoseconds> timeout) override;
    void wake() noexcept override;

    /// The io_context is being destroyed (from host_watch::shutdown).
    void host_gone() noexcept;

private:
    void check_usable() const override {
        if (shared_->host_gone) throw_host_gone();
        if (detached_)
            throw std::logic_error(
                "uthreads: this guest runtime has been detached from its io_context");
    }
    void enter_host_callback() const override {
        // Microthreads, their frames and core's state belong to one thread.
        if (std::this_thread::get_id() != loop_thread_)
            throw std::logic_error(
                "uthreads: the io_context of a guest runtime must be run only on the thread that "
                "attached it");
    }
    void after_dispatch() override { drive(); }

    void drive();
    void on_soon();
    void on_timer(unsigned long gen);

    std::shared_ptr<guest_shared> shared_;
    host_watch* watch_ = nullptr;
    std::optional<asio::steady_timer> timer_;   // empty once the host is gone or after detach
    std::optional<time_point> timer_deadline_;  // what timer_ waits for, if anything
    unsigned long timer_gen_ = 0;               // bumped by each re-arm: older handlers are stale
    bool soon_wanted_ = false;                  // the last arm asked to run soon
    bool soon_posted_ = false;                  // a run-soon handler is queued
    lowlevel::guest_driver* driver_ = nullptr;
    bool detached_ = false;
    std::thread::id loop_thread_ = std::this_thread::get_id();
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> hold_;
};

void host_watch::shutdown() {
    for (guest_shared* g : std::exchange(guests_, {}))
        if (g->backend) g->backend->host_gone();
}

// Every caller has checked enter_host_callback().
void asio_guest_backend::drive() {
    // The driver itself turns a nested call into one more round.
    if (driver_) driver_->drive();
}

void asio_guest_backend::on_soon() {
    enter_host_callback();
    soon_posted_ = false;
    if (!std::exchange(soon_wanted_, false)) return;  // re-armed without run_soon since
    drive();
}

void asio_guest_backend::on_timer(unsigned long gen) {
    enter_host_callback();
    if (gen != timer_gen_) return;  // re-armed since: the current wait is another one
    timer_deadline_.reset();
    drive();
}

void asio_guest_backend::hold_host(bool hold) {
    // Microthreads may wait on other threads (to_thread, a promise), which Asio
    // cannot see: keep the host's run() from returning while any are alive.
    if (hold && !detached_ && !shared_->host_gone) {
        if (!hold_) hold_.emplace(asio::make_work_guard(io_));
    } else {
        hold_.reset();
    }
}

void asio_guest_backend::arm(bool run_soon, std::optional<time_point> deadline) {
    if (shared_->host_gone || detached_) return;  // core checks host_alive() first
    soon_wanted_ = run_soon;
    if (run_soon && !soon_posted_) {
        asio::post(io_, [sp = shared_] {
            if (asio_guest_backend* b = sp->backend) b->on_soon();
        });
        soon_posted_ = true;
    }
    if (deadline == timer_deadline_) return;  // already armed for it (or still nothing)
    unsigned long gen = ++timer_gen_;
    timer_deadline_ = deadline;
    if (deadline) {
        timer_->expires_at(*deadline);  // cancels the previous wait, now stale anyway
        timer_->async_wait([sp = shared_, gen](const error_code& ec) {
            if (ec == asio::error::operation_aborted) return;
            if (asio_guest_backend* b = sp->backend) b->on_timer(gen);
        });
    } else {
        error_code ec;
        timer_->cancel(ec);
    }
}

void asio_guest_backend::wake() noexcept {
    guest_shared& s = *shared_;
    // acq_rel as in the owned backend: the handler's exchange reads this true.
    if (s.wake_pending.exchange(true, std::memory_order_acq_rel)) return;
    std::lock_guard lk(s.mu);
    if (!s.io) return;  // detached, or no loop left to wake
    try {
        asio::post(*s.io, asio::bind_allocator(slot_allocator<void>(&s.slot), [sp = shared_] {
            asio_guest_backend* b = sp->backend;
            if (b) b->enter_host_callback();
            sp->wake_pending.exchange(false, std::memory_order_acq_rel);
            if (b) b->drive();
        }));
    } catch (...) {
        s.wake_pending.store(false, std::memory_order_release);
    }
}

void asio_guest_backend::run_once(std::optional<nanoseconds> timeout) {
    using namespace std::chrono_literals;
    // A nested run_one() inside the host's run() cannot restart a stopped
    // io_context (restart is not allowed while run() is active).
    bool nested = !shared_->host_gone && io_.get_executor().running_in_this_thread();
    if (shared_->host_gone || detached_ || (nested && io_.stopped())) {
        // No loop to turn: nothing can be dispatched. Wait a little, so that a
        // caller looping while microthreads unwind does not spin.
        std::this_thread::sleep_for(timeout ? std::min<nanoseconds>(*timeout, 1ms) : 1ms);
        return;
    }
    bool was_stopped = io_.stopped();
    if (was_stopped) io_.restart();
    {
        // Without outstanding work run_one() would return at once instead of
        // waiting for I/O, the guest's timer or a wake-up.
        auto work = asio::make_work_guard(io_);
        turn(timeout);
    }
    // Leave the io_context as the host had it: releasing the guard stops one
    // that has no other work left, which the host's next run() would not expect.
    if (was_stopped)
        io_.stop();
    else if (!nested && io_.stopped())
        io_.restart();
}

void asio_guest_backend::detach_from_host() noexcept {
    if (detached_) return;
    detached_ = true;
    driver_ = nullptr;
    {
        std::lock_guard lk(shared_->mu);
        shared_->io = nullptr;
    }
    shared_->backend = nullptr;  // whatever is still queued becomes a no-op
    forget_all();
    hold_.reset();
    timer_.reset();  // cancels its wait, whose handler then does nothing
    timer_deadline_.reset();
    if (!shared_->host_gone) watch_->erase(shared_.get());
}

void asio_guest_backend::host_gone() noexcept {
    {
        std::lock_guard lk(shared_->mu);
        shared_->io = nullptr;
    }
    shared_->host_gone = true;
    // Only the Asio side goes: core still removes its watchers later.
    release_descriptors();
    hold_.reset();
    timer_.reset();
    timer_deadline_.reset();
    soon_posted_ = false;
}

}  // namespace

std::unique_ptr<lowlevel::backend> make_asio_backend() {
    return std::make_unique<owned_asio_backend>();
}

}  // namespace uthreads::backends

namespace uthreads {

guest_runtime attach(boost::asio::io_context& io) {
    return guest_runtime(std::make_unique<backends::asio_guest_backend>(io), &io);
}

}  // namespace uthreads
