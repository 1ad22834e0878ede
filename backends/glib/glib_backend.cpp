// The GLib backend: uthreads on a GMainContext. Owned mode (`run` with backend
// "glib") creates, acquires and iterates a private context; guest mode
// (`uthreads::attach(GMainContext*)`) lives in a context the host program
// iterates (g_main_loop_run, gtk_main, g_main_context_iteration).
//
// Some facts about the GLib main loop this file relies on (GLib 2.74, gmain.c):
// - One iteration (g_main_context_iteration) is prepare -> query -> poll() ->
//   check -> dispatch, on the thread that owns (has acquired) the context.
//   Every source's prepare() runs before the poll and may shorten its timeout;
//   check() runs after it. A source is dispatched if prepare() or check() says
//   it is ready, or if poll() reported one of its descriptors.
// - It is level-triggered. A descriptor added to a source with
//   g_source_add_unix_fd is polled for the events in its mask on every
//   iteration, and dispatches the source for as long as poll() reports it. So
//   the mask follows what core waits for (`want`), or a socket that stays
//   writable would dispatch on every iteration. The I/O layer tries the system
//   call before it parks, so level triggering needs no check at `add`.
// - poll() reports POLLHUP/POLLERR whatever the mask. A descriptor left
//   registered with an empty mask (g_source_modify_unix_fd's documentation
//   says not to) would wake every poll once its peer hung up. So a watcher
//   nobody waits on loses its unix-fd tag instead.
// - Every add, modify or remove of a unix fd signals the context's GWakeup
//   (below): one eventfd write each. Narrowing is therefore lazy: want() only
//   ever widens the tag's mask (or adds the tag); a direction nobody wants any
//   more stays polled until poll() reports it, and then the dispatch narrows
//   the tag to what is wanted (removing it if nothing is). The loop cannot
//   spin, since each unwanted report narrows; and a socket that is read,
//   waited on and read again (the common case) costs no GLib call at all after
//   its first wait.
// - g_source_query_unix_fd returns the revents of the last check, already
//   masked to the tag's events plus G_IO_ERR|G_IO_HUP|G_IO_NVAL. A new tag
//   starts at 0. add/modify/remove/query search the source's fd list, so each
//   costs O(descriptors polled); GLib rebuilds its whole poll set on every
//   iteration anyway.
// - What wakes the poll: the context's GWakeup (an eventfd), signalled by
//   g_main_context_wakeup. That call is thread-safe, takes no lock and is
//   sticky (the eventfd stays readable until the next check acknowledges it),
//   so it is what wake() uses, with an atomic flag to coalesce repeats. GLib
//   also signals it itself for unix-fd changes (above), and when it blocks and
//   unblocks a source with descriptors around its dispatch: at worst a
//   spurious early return, never a lost event.
//   g_source_set_ready_time signals it too, unless called from the source's
//   own dispatch; core passes a new timeout to every run_once, so using the
//   ready time for that would make every poll return at once and spin.
//   Timeouts and guest deadlines are therefore given through prepare()'s
//   timeout and tested in check(), which costs no system call.
// - prepare()'s timeout is in whole milliseconds: rounded up here, so a
//   deadline is never reached early. Deadlines are std::chrono::steady_clock
//   time points compared directly, so there is no conversion to GLib's clock.
// - While GLib dispatches a source that cannot recurse (the default), the
//   source is blocked: its descriptors leave the poll set, and a nested
//   iteration (a host's modal g_main_loop_run called from inside our dispatch)
//   neither polls nor dispatches it. The guest's source keeps that, so drive()
//   never re-enters (it still guards). The owned source may recurse, since
//   nothing iterates the private context from inside its dispatch; that saves
//   the block/unblock wake-ups.
// - Everything except g_main_context_wakeup is called on the thread that owns
//   the context: the thread that created the owned backend (which acquires the
//   context for the backend's lifetime), or the host loop's thread in guest mode.
#include <uthreads/backends/glib.hpp>
#include <uthreads/guest.hpp>
#include <uthreads/lowlevel/backend.hpp>

#include <glib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

namespace uthreads::backends {

namespace {

using clock = std::chrono::steady_clock;

// Longest wait handed to GLib, which takes an int of milliseconds.
constexpr std::chrono::milliseconds max_wait{INT_MAX};

// Milliseconds until `deadline`, rounded up (never early), clamped to an int.
gint wait_ms(clock::time_point deadline, clock::time_point now) {
    if (deadline <= now) return 0;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    return static_cast<gint>(std::min(left, max_wait).count());
}

class glib_backend;

// Our GSource: GLib allocates it (g_source_new with this size) and calls back
// with the GSource*, from which the backend is found again.
struct uthreads_source {
    GSource base;
    glib_backend* self;
};

// One watched descriptor, from add() to remove().
struct fd_record {
    lowlevel::io_watcher* w = nullptr;
    // The g_source_add_unix_fd tag; null while the descriptor is not polled (not
    // wanted yet, narrowed away, or the source detached).
    gpointer tag = nullptr;
    unsigned tag_events = 0;  // readable|writable polled through `tag`; 0 iff tag is null
    // What core last asked for. invariant (while attached): a subset of tag_events.
    unsigned wanted = 0;
    std::size_t index = 0;  // position in glib_backend::records_
};

class glib_backend final : public lowlevel::backend {
public:
    /// Owned mode: a new private context, acquired by the calling thread.
    glib_backend()
        : ctx_(g_main_context_new())
        , guest_(false) {
        // A new context has no owner, so this cannot fail. Holding ownership for the
        // backend's lifetime saves a lock round-trip per iteration and makes
        // another thread's attempt to iterate it fail instead of racing.
        g_main_context_acquire(ctx_);
        make_source();
    }

    /// Guest mode: a source on the host's context, which is kept alive by our ref.
    explicit glib_backend(GMainContext* host)
        : ctx_(g_main_context_ref(host))
        , guest_(true) {
        make_source();
    }

    ~glib_backend() override {
        detach_source();
        // Core removes every watcher before it destroys its backend; anything
        // left (a guest torn down abnormally) is freed here, never touched.
        for (fd_record* r : records_) delete r;
        if (!guest_) g_main_context_release(ctx_);
        g_main_context_unref(ctx_);
    }

    glib_backend(const glib_backend&) = delete;
    glib_backend& operator=(const glib_backend&) = delete;

    std::string_view name() const noexcept override { return "glib"; }

    void add(lowlevel::io_watcher& w) override {
        auto r = std::make_unique<fd_record>();
        r->w = &w;
        r->index = records_.size();
        records_.push_back(r.get());
        w.backend_data = r.release();
        // Nothing is polled yet: the first want() adds the tag. The descriptor's
        // current state is seen by that poll (level-triggered).
    }

    void want(lowlevel::io_watcher& w, unsigned events) override {
        auto* r = static_cast<fd_record*>(w.backend_data);
        r->wanted = events & (lowlevel::readable | lowlevel::writable);
        // Widen only; dispatch_io narrows once an unwanted direction is reported.
        if ((r->wanted & ~r->tag_events) == 0 || !source_) return;
        set_tag(r, r->tag_events | r->wanted);
    }

    void remove(lowlevel::io_watcher& w) noexcept override {
        auto* r = static_cast<fd_record*>(w.backend_data);
        if (source_) set_tag(r, 0);
        // O(1) unordered erase; dispatch_io never runs while add/remove are called.
        fd_record* last = records_.back();
        records_[r->index] = last;
        last->index = r->index;
        records_.pop_back();
        delete r;
        w.backend_data = nullptr;
    }

    void run_once(std::optional<std::chrono::nanoseconds> timeout) override {
        bool may_block = !timeout || *timeout > std::chrono::nanoseconds::zero();
        if (may_block && timeout) {
            // Clamped before the addition so that a huge timeout cannot overflow.
            auto t = std::min<std::chrono::nanoseconds>(*timeout, max_wait);
            poll_deadline_ = clock::now() + t;
        }
        // One iteration: in owned mode our source is the only one; in guest mode
        // (guest_runtime::shutdown) the host's sources run too.
        g_main_context_iteration(ctx_, may_block ? TRUE : FALSE);
        poll_deadline_.reset();
        if (!guest_) {
            // The iteration's check has acknowledged the GWakeup; a wake() after
            // this store signals it again, so none is lost (at worst one is
            // spurious). A guest consumes the flag in dispatch instead.
            wake_pending_.store(false, std::memory_order_release);
        }
    }

    void wake() noexcept override {
        // acq_rel: pairs with the release stores that clear the flag, so a wake()
        // that finds it clear is ordered after the acknowledgement it must beat.
        if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
        g_main_context_wakeup(ctx_);
    }

    // ---- guest mode ----------------------------------------------------------

    bool is_guest() const noexcept override { return guest_; }

    void attach_driver(lowlevel::guest_driver* d) override { driver_ = d; }

    void arm(bool run_soon, std::optional<clock::time_point> deadline) override {
        // Seen by the next prepare(), which every iteration starts with. arm() runs
        // on the loop thread: from inside our dispatch (end of drive), or from host
        // code between iterations; neither is inside poll().
        run_soon_ = run_soon;
        deadline_ = deadline;
    }

    void detach_from_host() noexcept override {
        detach_source();
        driver_ = nullptr;
    }

private:
    void make_source() {
        // GLib keeps the pointer for the source's lifetime: static storage.
        // No finalize: the source holds no resources of its own.
        static GSourceFuncs funcs = {.prepare = &prepare_cb,
                                     .check = &check_cb,
                                     .dispatch = &dispatch_cb,
                                     .finalize = nullptr,
                                     .closure_callback = nullptr,
                                     .closure_marshal = nullptr};
        GSource* s = g_source_new(&funcs, sizeof(uthreads_source));
        reinterpret_cast<uthreads_source*>(s)->self = this;
        g_source_set_name(s, guest_ ? "uthreads guest" : "uthreads");
        // Owned mode: nothing iterates our private context from inside our
        // dispatch, so GLib need not block the source while dispatching it, which
        // would take its descriptors out of the poll set and put them back (two
        // GWakeup signals per dispatch). A guest keeps the blocking: a host's
        // nested main loop must neither re-enter nor spin on our source.
        if (!guest_) g_source_set_can_recurse(s, TRUE);
        g_source_attach(s, ctx_);
        source_ = s;
    }

    // Destroys the source (its unix-fd tags are freed with it) and forgets the
    // tags; records stay until core's remove().
    void detach_source() noexcept {
        if (!source_) return;
        for (fd_record* r : records_) {
            r->tag = nullptr;
            r->tag_events = 0;
        }
        g_source_destroy(source_);
        g_source_unref(source_);
        source_ = nullptr;
    }

    static glib_backend* from(GSource* s) noexcept {
        return reinterpret_cast<uthreads_source*>(s)->self;
    }

    // True if the guest has something for drive() right now.
    bool guest_due(clock::time_point now) const noexcept {
        return guest_ && driver_ &&
               (run_soon_ || wake_pending_.load(std::memory_order_acquire) ||
                (deadline_ && *deadline_ <= now));
    }

    static gboolean prepare_cb(GSource* s, gint* timeout) noexcept {
        glib_backend* self = from(s);
        clock::time_point now = clock::now();
        if (self->guest_due(now)) {
            *timeout = 0;
            return TRUE;
        }
        std::optional<clock::time_point> limit = self->poll_deadline_;
        if (self->guest_ && self->driver_ && self->deadline_ &&
            (!limit || *self->deadline_ < *limit))
            limit = self->deadline_;
        *timeout = limit ? wait_ms(*limit, now) : -1;
        return FALSE;
    }

    static gboolean check_cb(GSource* s) noexcept {
        // Readiness of the unix fds is checked by GLib itself after this returns
        // FALSE; here only the guest's own reasons to run.
        glib_backend* self = from(s);
        return self->guest_ && self->guest_due(clock::now()) ? TRUE : FALSE;
    }

    // noexcept: an exception must not unwind through GLib's C frames; drive() and
    // the ready callbacks never throw, so this would be a bug worth terminating on.
    static gboolean dispatch_cb(GSource* s, GSourceFunc, gpointer) noexcept {
        glib_backend* self = from(s);
        self->dispatch_io();
        if (self->guest_) self->dispatch_guest();
        return G_SOURCE_CONTINUE;
    }

    // Poll `r->fd` for exactly `events` (readable|writable; 0 = not at all).
    void set_tag(fd_record* r, unsigned events) noexcept {
        if (events == r->tag_events) return;
        if (events == 0) {
            g_source_remove_unix_fd(source_, r->tag);
            r->tag = nullptr;
        } else {
            auto cond = static_cast<GIOCondition>(((events & lowlevel::readable) ? G_IO_IN : 0) |
                                                  ((events & lowlevel::writable) ? G_IO_OUT : 0));
            if (r->tag)
                g_source_modify_unix_fd(source_, r->tag, cond);
            else
                r->tag = g_source_add_unix_fd(source_, r->w->fd, cond);
        }
        r->tag_events = events;
    }

    void dispatch_io() noexcept {
        // Only `want` on the watcher being reported can be called from `ready`:
        // it changes that record's tag, never records_.
        for (std::size_t i = 0; i < records_.size(); ++i) {
            fd_record* r = records_[i];
            if (!r->tag) continue;
            GIOCondition rev = g_source_query_unix_fd(source_, r->tag);
            if (!rev) continue;
            unsigned bits = 0;
            if (rev & (G_IO_IN | G_IO_PRI)) bits |= lowlevel::readable;
            if (rev & G_IO_OUT) bits |= lowlevel::writable;
            if (rev & (G_IO_ERR | G_IO_HUP | G_IO_NVAL)) bits |= lowlevel::io_error;
            unsigned unwanted = r->wanted == 0 ? bits : bits & ~(r->wanted | lowlevel::io_error);
            if (unwanted) {
                // A direction nobody waits for is ready (or the descriptor hung up
                // with nobody waiting): narrow now, or the next poll reports it again.
                set_tag(r, r->wanted);
                bits &= ~unwanted;
            }
            if (bits) r->w->ready(r->w, bits);
        }
    }

    void dispatch_guest() noexcept {
        if (!driver_) return;
        // Consume this turn's reasons before drive(): its arm() sets the next ones,
        // and a wake() from now on sets the flag and signals the context again.
        wake_pending_.store(false, std::memory_order_release);
        run_soon_ = false;
        deadline_.reset();
        // The driver itself turns a nested call into one more round.
        driver_->drive();
    }

    GMainContext* const ctx_;
    const bool guest_;
    GSource* source_ = nullptr;  // null once detached
    std::vector<fd_record*> records_;
    std::optional<clock::time_point> poll_deadline_;  // bound of the current run_once
    // invariant: true from a wake() until the loop has consumed it (owned: after the
    // iteration that acknowledged the GWakeup; guest: at the start of dispatch).
    std::atomic<bool> wake_pending_{false};

    // Guest mode, loop thread only.
    lowlevel::guest_driver* driver_ = nullptr;
    bool run_soon_ = false;
    std::optional<clock::time_point> deadline_;
};

}  // namespace

std::unique_ptr<lowlevel::backend> make_glib_backend() {
    return std::make_unique<glib_backend>();
}

}  // namespace uthreads::backends

namespace uthreads {

guest_runtime attach(GMainContext* context) {
    if (!context) context = g_main_context_default();
    // The context itself is the key: attach(nullptr) and
    // attach(g_main_context_default()) are the same host loop.
    return guest_runtime(std::make_unique<backends::glib_backend>(context), context);
}

}  // namespace uthreads
