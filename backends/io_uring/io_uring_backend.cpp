// The Linux io_uring backend: readiness through one-shot IORING_OP_POLL_ADD, and
// completion operations (accept, connect, recv, send, read, write, fsync,
// openat) that the kernel performs itself. Owned loop only: there is no guest mode.
//
// Some facts about io_uring this file relies on:
// - A request is an SQE; its result arrives later as one CQE carrying the SQE's
//   64-bit user_data. Every SQE whose CQE we act on carries the address of a
//   record this backend owns (never a core object), and that record lives until
//   its CQE has been reaped, however long after remove() or cancel() that is.
//   Cancel and poll-remove SQEs carry user_data 0: their own CQEs are ignored.
// - POLL_ADD is one-shot and level-checked when it is issued: a descriptor that
//   is already ready completes at once, so arming after `want` loses nothing that
//   happened before. Each direction has its own poll, armed only while core wants
//   that direction, so a socket that stays writable cannot make the loop spin. An
//   armed poll nobody wants any more is left to fire once (over-reporting is
//   allowed); `want` and the ready callback only update our bookkeeping, and the
//   polls are armed in one batch at the start of the next run_once.
// - A pending request holds a reference to its file: close(fd) does not end it,
//   and a polled socket would stay open (a listener would keep its port). remove()
//   therefore submits POLL_REMOVE at once, before core closes the descriptor,
//   and cancel() submits its ASYNC_CANCEL at once for the same reason (core
//   cancels a socket's operations in flight when it closes it).
// - The SQ is ours alone (loop thread only); a full SQ is submitted to make room.
//   wake() never touches the ring: it writes an eventfd watched by a POLL_ADD,
//   behind an atomic flag so that repeated wake()s cost one write until drained.
// - The CQ has twice the SQ's entries. If it fills anyway, the kernel keeps the
//   extra CQEs on an overflow list (IORING_FEAT_NODROP) and sets
//   IORING_SQ_CQ_OVERFLOW; entering the kernel with GETEVENTS flushes them.
// - Timeouts are a __kernel_timespec (nanoseconds, never early) passed to
//   io_uring_enter through IORING_ENTER_EXT_ARG (5.11+; older kernels make
//   liburing use a timeout SQE whose CQE has user_data LIBURING_UDATA_TIMEOUT).
//   A zero timeout still enters the kernel: with IORING_SETUP_COOP_TASKRUN,
//   completions are only posted when the task enters it.
// - A cancelled request completes with -ECANCELED; one already running in an
//   io-wq worker is interrupted instead and may report -EINTR, which we report as
//   -ECANCELED (it was cancelled, and core must not retry it). The cancel loses
//   nothing: a request that already transferred data reports that instead.
// - Sockets are nonblocking; since 5.7 (IORING_FEAT_FAST_POLL) io_uring waits for
//   readiness itself instead of returning -EAGAIN, which completion operations
//   depend on: supports_completions() is false on older kernels.
// - Regular files have no readiness: a read or write on one is done inline when
//   the page cache allows it and otherwise handed to an io-wq worker, where a
//   cancel may find it already running and let it finish (the real result is
//   reported). A read/write offset of -1 means "at the file position, and
//   advance it" (IORING_FEAT_RW_CUR_POS, 5.6, which FAST_POLL implies).
// - openat and fsync run in io-wq. openat's path is read when the request is
//   prepared for io-wq, possibly after submission: core keeps it alive until the
//   CQE, as it does buffers.
// - io_uring_setup fails with EPERM when kernel.io_uring_disabled is set (or a
//   seccomp filter forbids it) and ENOSYS when the kernel lacks it; the factory
//   then throws, naming the epoll backend as the alternative.
#include <uthreads/lowlevel/backend.hpp>

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <liburing.h>
#include <memory>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <system_error>
#include <type_traits>
#include <unistd.h>

namespace uthreads::backends {

namespace {

using lowlevel::completion_op;
using lowlevel::io_watcher;

// completion_op::addrlen is passed to accept4 as its socklen_t value-result.
static_assert(std::is_same_v<socklen_t, unsigned>, "completion_op::addrlen must be a socklen_t");

constexpr unsigned ring_entries = 256;
// The kernel caps one read/write at this (MAX_RW_COUNT); an SQE's length is 32 bits.
constexpr std::size_t max_transfer = 0x7ffff000;

[[noreturn]] void throw_error(int err, const char* what) {
    throw std::system_error(err, std::system_category(),
                            std::string("uthreads io_uring backend: ") + what);
}

/// What an SQE's user_data points to. The record is ours; its CQE tells us which
/// kind it is.
struct record {
    enum class kind : unsigned char { poll, op, wake };
    explicit record(kind k) noexcept
        : type(k) {}
    kind type;
    // invariant: true from the SQE's preparation until its CQE is reaped; the
    // record may not be freed while it is set.
    bool in_flight = false;
    // On the deferred-cancel list, waiting for a free SQE; not freed while set.
    bool cancel_deferred = false;
    record* deferred_next = nullptr;
};

struct watch;

/// One direction's poll of a watched descriptor.
struct poll_slot : record {
    poll_slot() noexcept
        : record(kind::poll) {}
    watch* owner = nullptr;
    unsigned dir = 0;  // lowlevel::readable or lowlevel::writable
};

/// The backend's side of an io_watcher (its backend_data). Outlives the
/// watcher when remove() finds polls in flight: freed when the last CQE arrives.
struct watch {
    io_watcher* w = nullptr;  // nullptr once removed
    int fd = -1;
    unsigned wanted = 0;
    poll_slot slot[2];   // [0] readable, [1] writable
    bool dirty = false;  // on the dirty list: polls to arm at the next run_once
    watch* dirty_next = nullptr;
    watch* prev = nullptr;  // every live watch, for the destructor
    watch* next = nullptr;

    unsigned armed() const noexcept {
        return (slot[0].in_flight ? lowlevel::readable : 0u) |
               (slot[1].in_flight ? lowlevel::writable : 0u);
    }
    bool busy() const noexcept {
        return dirty || slot[0].in_flight || slot[0].cancel_deferred || slot[1].in_flight ||
               slot[1].cancel_deferred;
    }
};

/// One submitted completion_op (its backend_data until the CQE).
struct op_record : record {
    explicit op_record(completion_op* o) noexcept
        : record(kind::op)
        , op(o)
        , op_kind(o->op) {}
    completion_op* op;
    completion_op::kind op_kind;  // for the destructor, when `op` may be gone
    bool cancel_requested = false;
    op_record* prev = nullptr;  // every op in flight, for the destructor
    op_record* next = nullptr;
};

// Whether this kernel's io_uring can run completion_ops: -1 not yet probed.
std::atomic<int> completions_probe{-1};

bool probe_completions(io_uring& ring) {
    int known = completions_probe.load(std::memory_order_relaxed);
    if (known >= 0) return known != 0;
    bool ok = false;
    if (ring.features & IORING_FEAT_FAST_POLL) {
        if (io_uring_probe* p = io_uring_get_probe_ring(&ring)) {
            ok = true;
            for (int opcode : {IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_RECV, IORING_OP_SEND,
                               IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC, IORING_OP_OPENAT,
                               IORING_OP_ASYNC_CANCEL})
                ok = ok && io_uring_opcode_supported(p, opcode);
            io_uring_free_probe(p);
        }
    }
    // relaxed: the answer is the same whichever thread computes it.
    completions_probe.store(ok ? 1 : 0, std::memory_order_relaxed);
    return ok;
}

class io_uring_backend final : public lowlevel::backend {
public:
    io_uring_backend();
    ~io_uring_backend() override;
    io_uring_backend(const io_uring_backend&) = delete;
    io_uring_backend& operator=(const io_uring_backend&) = delete;

    std::string_view name() const noexcept override { return "io_uring"; }
    void add(io_watcher& w) override;
    void want(io_watcher& w, unsigned events) override;
    void remove(io_watcher& w) noexcept override;
    void run_once(std::optional<std::chrono::nanoseconds> timeout) override;
    void wake() noexcept override;

    bool supports_completions() const noexcept override { return completions_; }
    void submit(completion_op& op) override;
    void cancel(completion_op& op) noexcept override;

private:
    io_uring_sqe* get_sqe(int& err) noexcept;
    bool queue_cancel(record* r) noexcept;
    static void prep_cancel(io_uring_sqe* sqe, record* r) noexcept;
    bool flush();
    int enter(std::optional<std::chrono::nanoseconds> timeout, bool may_block);
    void reap();
    void dispatch(record* r, int res);
    void on_poll(poll_slot* slot, int res);
    void on_op(op_record* r, int res);
    void on_wake() noexcept;
    void mark_dirty(watch* ws) noexcept;
    void release(record* r) noexcept;
    void maybe_free(watch* ws) noexcept;
    void drain_ops_at_exit() noexcept;

    io_uring ring_{};
    int wake_fd_ = -1;
    record wake_rec_{record::kind::wake};  // the eventfd's poll
    std::atomic<bool> wake_pending_{false};
    bool completions_ = false;
    bool closing_ = false;  // in the destructor: reap without calling into core
    watch* watches_ = nullptr;
    watch* dirty_ = nullptr;
    record* deferred_ = nullptr;
    op_record* ops_ = nullptr;
};

io_uring_backend::io_uring_backend() {
    // Newest flags first; a kernel that does not know one answers EINVAL.
    // SINGLE_ISSUER (6.0): only the loop thread, which creates the backend,
    // submits. COOP_TASKRUN (5.19): no interrupt to post a completion; we enter
    // the kernel on every run_once anyway. SUBMIT_ALL (5.18): an SQE that fails
    // at submission does not hold back the ones queued after it.
    static constexpr unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int err = 0;
    for (unsigned flags : flag_sets) {
        err = io_uring_queue_init(ring_entries, &ring_, flags);
        if (err != -EINVAL) break;
    }
    if (err < 0)
        throw std::system_error(-err, std::system_category(),
                                "uthreads: io_uring is unavailable on this kernel (use the epoll "
                                "backend); io_uring_queue_init");
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        int e = errno;
        io_uring_queue_exit(&ring_);
        throw_error(e, "eventfd");
    }
    completions_ = probe_completions(ring_);
}

io_uring_backend::~io_uring_backend() {
    if (ops_) drain_ops_at_exit();
    // Closing the ring cancels whatever is still pending (our polls); the kernel
    // keeps only user_data values, so our records can go right after.
    io_uring_queue_exit(&ring_);
    ::close(wake_fd_);
    // Op records whose CQE came while they waited on the deferred-cancel list are
    // no longer on ops_; those still in flight are, and are freed there.
    while (record* r = deferred_) {
        deferred_ = r->deferred_next;
        r->cancel_deferred = false;
        if (r->type == record::kind::op && !r->in_flight) delete static_cast<op_record*>(r);
    }
    while (watch* ws = watches_) {
        watches_ = ws->next;
        delete ws;
    }
    while (op_record* r = ops_) {
        ops_ = r->next;
        delete r;
    }
}

// Core destroys the backend only after every operation completed. If it did not,
// the kernel could still write into buffers core is about to free: cancel
// everything and wait (bounded) for the CQEs, without calling back into core.
void io_uring_backend::drain_ops_at_exit() noexcept {
    closing_ = true;
    for (op_record* r = ops_; r; r = r->next)
        if (!r->cancel_requested) {
            r->cancel_requested = true;
            queue_cancel(r);
        }
    for (int i = 0; i < 50 && ops_; ++i) {
        try {
            flush();
            (void)enter(std::chrono::milliseconds(100), true);
        } catch (...) {
            break;
        }
        reap();
    }
}

// ---- submission ---------------------------------------------------------------

// A free SQE, submitting the queue to the kernel to make room if it is full.
// nullptr if there is none even then; `err` is then the submit error (0 if the
// kernel simply took nothing, which SUBMIT_ALL makes all but impossible).
io_uring_sqe* io_uring_backend::get_sqe(int& err) noexcept {
    err = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
        int r = io_uring_submit(&ring_);
        if (r < 0 && r != -EINTR) {
            err = r;
            return nullptr;
        }
    }
    return nullptr;
}

// Ask the kernel to end `r`'s request. If no SQE can be had now, `r` goes on the
// deferred list and the next run_once sends it (noexcept callers cannot throw).
bool io_uring_backend::queue_cancel(record* r) noexcept {
    int err;
    io_uring_sqe* sqe = get_sqe(err);
    if (!sqe) {
        if (!r->cancel_deferred) {
            r->cancel_deferred = true;
            r->deferred_next = deferred_;
            deferred_ = r;
        }
        return false;
    }
    prep_cancel(sqe, r);
    return true;
}

void io_uring_backend::prep_cancel(io_uring_sqe* sqe, record* r) noexcept {
    auto target = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(r));
    if (r->type == record::kind::poll)
        io_uring_prep_poll_remove(sqe, target);
    else
        io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, 0);  // the cancel's own result is not needed
}

// Queue everything that waits for an SQE: deferred cancels, the wake-up poll, the
// polls of dirty watches. False if some of it must wait for the next run_once.
bool io_uring_backend::flush() {
    int err = 0;
    // Deferred cancels go first: their targets were submitted earlier, so they
    // are found.
    while (record* r = deferred_) {
        if (r->in_flight) {
            io_uring_sqe* sqe = get_sqe(err);
            if (!sqe) goto short_of_sqes;
            prep_cancel(sqe, r);
        }
        deferred_ = r->deferred_next;
        r->deferred_next = nullptr;
        r->cancel_deferred = false;
        if (!r->in_flight) release(r);  // its CQE arrived while it waited here
    }
    if (!wake_rec_.in_flight) {
        io_uring_sqe* sqe = get_sqe(err);
        if (!sqe) goto short_of_sqes;
        io_uring_prep_poll_add(sqe, wake_fd_, POLLIN);
        io_uring_sqe_set_data(sqe, &wake_rec_);
        wake_rec_.in_flight = true;
    }
    while (watch* ws = dirty_) {
        if (ws->w) {
            unsigned need = ws->wanted & ~ws->armed();
            for (int i = 0; i < 2; ++i) {
                poll_slot& slot = ws->slot[i];
                if (!(need & slot.dir)) continue;
                io_uring_sqe* sqe = get_sqe(err);
                if (!sqe) goto short_of_sqes;
                // POLLRDHUP: a peer's shutdown(SHUT_WR) is "readable" (recv returns 0).
                io_uring_prep_poll_add(
                    sqe, ws->fd, slot.dir == lowlevel::readable ? POLLIN | POLLRDHUP : POLLOUT);
                io_uring_sqe_set_data(sqe, &slot);
                slot.in_flight = true;
            }
        }
        dirty_ = ws->dirty_next;
        ws->dirty_next = nullptr;
        ws->dirty = false;
        if (!ws->w) maybe_free(ws);
    }
    return true;

short_of_sqes:
    // EAGAIN/EBUSY: the kernel is short of memory or (old kernels) of CQ room;
    // the caller polls and we try again. Anything else will not get better.
    if (err != 0 && err != -EAGAIN && err != -EBUSY) {
        if (err == -EEXIST)
            throw_error(EEXIST, "io_uring_submit from a thread other than the one that created "
                                "the backend (the loop thread)");
        throw_error(-err, "io_uring_submit");
    }
    return false;
}

void io_uring_backend::add(io_watcher& w) {
    auto* ws = new watch;
    ws->w = &w;
    ws->fd = w.fd;
    ws->slot[0].owner = ws;
    ws->slot[0].dir = lowlevel::readable;
    ws->slot[1].owner = ws;
    ws->slot[1].dir = lowlevel::writable;
    ws->next = watches_;
    if (watches_) watches_->prev = ws;
    watches_ = ws;
    w.backend_data = ws;
}

// May run inside w.ready (from reap): it only records the wish; flush() arms.
void io_uring_backend::want(io_watcher& w, unsigned events) {
    auto* ws = static_cast<watch*>(w.backend_data);
    ws->wanted = events & (lowlevel::readable | lowlevel::writable);
    if (ws->wanted & ~ws->armed()) mark_dirty(ws);
}

void io_uring_backend::remove(io_watcher& w) noexcept {
    auto* ws = static_cast<watch*>(w.backend_data);
    w.backend_data = nullptr;
    ws->w = nullptr;
    ws->wanted = 0;
    bool queued = false;
    for (poll_slot& slot : ws->slot)
        if (slot.in_flight && !slot.cancel_deferred) queued |= queue_cancel(&slot);
    // Now, not at the next run_once: the polls hold the file open, and core
    // closes the descriptor as soon as we return.
    if (queued) (void)io_uring_submit(&ring_);
    maybe_free(ws);
}

void io_uring_backend::submit(completion_op& op) {
    // The record first: an SQE once taken is submitted whatever it holds.
    auto r = std::make_unique<op_record>(&op);
    int err;
    io_uring_sqe* sqe = get_sqe(err);
    if (!sqe) throw_error(err ? -err : EAGAIN, "io_uring_get_sqe (submission queue full)");
    unsigned len = static_cast<unsigned>(op.len < max_transfer ? op.len : max_transfer);
    switch (op.op) {
    case completion_op::kind::accept:
        // addrlen is value-result: the kernel reads the buffer size and writes the
        // address's length back into op.addrlen.
        io_uring_prep_accept(sqe, op.fd, static_cast<sockaddr*>(op.addr),
                             op.addr ? &op.addrlen : nullptr, op.flags);
        break;
    case completion_op::kind::connect:
        io_uring_prep_connect(sqe, op.fd, static_cast<const sockaddr*>(op.addr), op.addrlen);
        break;
    case completion_op::kind::recv:
        io_uring_prep_recv(sqe, op.fd, op.buf, len, op.flags);
        break;
    case completion_op::kind::send:
        io_uring_prep_send(sqe, op.fd, op.buf, len, op.flags);
        break;
    case completion_op::kind::read:
        io_uring_prep_read(sqe, op.fd, op.buf, len, op.offset);
        break;
    case completion_op::kind::write:
        io_uring_prep_write(sqe, op.fd, op.buf, len, op.offset);
        break;
    case completion_op::kind::fsync:
        io_uring_prep_fsync(
            sqe, op.fd, (op.flags & completion_op::fsync_datasync) ? IORING_FSYNC_DATASYNC : 0u);
        break;
    case completion_op::kind::openat:
        io_uring_prep_openat(sqe, AT_FDCWD, static_cast<const char*>(op.addr), op.flags, op.mode);
        break;
    }
    io_uring_sqe_set_data(sqe, r.get());
    r->in_flight = true;
    r->next = ops_;
    if (ops_) ops_->prev = r.get();
    ops_ = r.release();
    op.backend_data = ops_;
}

void io_uring_backend::cancel(completion_op& op) noexcept {
    auto* r = static_cast<op_record*>(op.backend_data);
    if (!r || r->cancel_requested) return;  // already completed, or already asked
    r->cancel_requested = true;
    // Submitted now, like remove(): core cancels before close(), and the request
    // keeps the file open until the kernel has seen the cancel.
    if (queue_cancel(r)) (void)io_uring_submit(&ring_);
}

void io_uring_backend::wake() noexcept {
    // acq_rel: pairs with the release store in on_wake, so a wake() that sees the
    // flag clear is ordered after the drain and its write is not swallowed.
    if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
    std::uint64_t one = 1;
    (void)::write(wake_fd_, &one, sizeof one);
}

// ---- waiting and completions --------------------------------------------------

void io_uring_backend::run_once(std::optional<std::chrono::nanoseconds> timeout) {
    bool complete = flush();
    int r = enter(timeout, complete);
    if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY) {
        if (r == -EEXIST)
            throw_error(EEXIST, "io_uring_enter from a thread other than the one that created "
                                "the backend (the loop thread)");
        throw_error(-r, "io_uring_enter");
    }
    // Without IORING_SETUP_SUBMIT_ALL (before 5.18) the kernel stops at an SQE
    // that fails (it still gets its CQE). Send the rest before reaping, so that a
    // cancel still waiting in the SQ can never outlive its target and then hit a
    // new record at the same address.
    while (io_uring_sq_ready(&ring_) > 0 && io_uring_submit(&ring_) > 0) {
    }
    reap();
}

// Submit what is queued and wait for at least one CQE, a wake-up or `timeout`.
int io_uring_backend::enter(std::optional<std::chrono::nanoseconds> timeout, bool may_block) {
    bool poll_only = !may_block || (timeout && timeout->count() <= 0) ||
                     io_uring_cq_ready(&ring_) > 0 || io_uring_cq_has_overflow(&ring_);
    // GETEVENTS even without waiting: it runs pending task work (COOP_TASKRUN)
    // and flushes an overflowed CQ.
    if (poll_only) return io_uring_submit_and_get_events(&ring_);
    if (!timeout) return io_uring_submit_and_wait(&ring_, 1);
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(timeout->count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long long>(timeout->count() % 1'000'000'000);
    io_uring_cqe* cqe = nullptr;
    return io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

// Take every CQE off the ring, then act on them: the slots are free again before
// any callback runs, so callbacks may queue new work freely.
void io_uring_backend::reap() {
    constexpr unsigned batch_size = 64;
    struct copied {
        record* r;
        int res;
    };
    for (;;) {
        copied batch[batch_size];
        unsigned seen = 0;
        unsigned n = 0;
        unsigned head;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            // 0: a cancel's own result. LIBURING_UDATA_TIMEOUT: the timeout SQE
            // liburing adds for a timed wait on kernels without IORING_FEAT_EXT_ARG.
            if (cqe->user_data != 0 && cqe->user_data != LIBURING_UDATA_TIMEOUT)
                batch[n++] = {static_cast<record*>(io_uring_cqe_get_data(cqe)), cqe->res};
            if (++seen == batch_size) break;
        }
        io_uring_cq_advance(&ring_, seen);
        for (unsigned i = 0; i < n; ++i) dispatch(batch[i].r, batch[i].res);
        if (seen == batch_size) continue;
        if (io_uring_cq_has_overflow(&ring_)) {
            // The kernel parked CQEs that did not fit; entering it moves them in.
            (void)io_uring_get_events(&ring_);
            if (io_uring_cq_ready(&ring_) > 0) continue;
        }
        break;
    }
}

void io_uring_backend::dispatch(record* r, int res) {
    switch (r->type) {
    case record::kind::wake:
        on_wake();
        break;
    case record::kind::poll:
        on_poll(static_cast<poll_slot*>(r), res);
        break;
    case record::kind::op:
        on_op(static_cast<op_record*>(r), res);
        break;
    }
}

void io_uring_backend::on_wake() noexcept {
    wake_rec_.in_flight = false;  // flush() arms it again
    // Drain, then clear the flag (the other order loses wake-ups; see
    // epoll_backend::poll_events).
    std::uint64_t v;
    (void)::read(wake_fd_, &v, sizeof v);
    wake_pending_.store(false, std::memory_order_release);
}

void io_uring_backend::on_poll(poll_slot* slot, int res) {
    slot->in_flight = false;
    watch* ws = slot->owner;
    if (!ws->w || closing_) {
        // Removed: this is the late (usually -ECANCELED) CQE remove() waited for.
        maybe_free(ws);
        return;
    }
    unsigned bits = 0;
    if (res < 0) {
        bits = slot->dir | lowlevel::io_error;  // let the retried system call tell
    } else {
        auto ev = static_cast<unsigned>(res);
        if (ev & (POLLIN | POLLRDHUP | POLLPRI)) bits |= lowlevel::readable;
        if (ev & POLLOUT) bits |= lowlevel::writable;
        if (ev & (POLLERR | POLLHUP | POLLNVAL)) bits |= lowlevel::io_error;
    }
    io_watcher* w = ws->w;
    w->ready(w, bits);
    // Normally the callback narrowed the interest (the parked microthread was
    // woken). If the direction is still wanted, arm it again rather than risk
    // never reporting it.
    if (ws->w && (ws->wanted & slot->dir) && !slot->in_flight) mark_dirty(ws);
}

void io_uring_backend::on_op(op_record* r, int res) {
    completion_op* op = r->op;
    completion_op::kind kind = r->op_kind;
    if (r->cancel_requested && res == -EINTR) res = -ECANCELED;  // see the facts above
    r->in_flight = false;
    if (r->prev)
        r->prev->next = r->next;
    else
        ops_ = r->next;
    if (r->next) r->next->prev = r->prev;
    release(r);
    if (closing_) {
        // Core may be gone: touch nothing of it, but do not leak a descriptor
        // that an accept or openat made after all.
        if (res >= 0 &&
            (kind == completion_op::kind::accept || kind == completion_op::kind::openat))
            ::close(res);
        return;
    }
    op->backend_data = nullptr;
    // invariant: nothing of ours refers to `op` any more; core may free it now.
    op->complete(op, res);
}

void io_uring_backend::mark_dirty(watch* ws) noexcept {
    if (ws->dirty) return;
    ws->dirty = true;
    ws->dirty_next = dirty_;
    dirty_ = ws;
}

// `r`'s CQE has been reaped: free it unless a list still refers to it.
void io_uring_backend::release(record* r) noexcept {
    if (r->in_flight || r->cancel_deferred) return;
    if (r->type == record::kind::op)
        delete static_cast<op_record*>(r);
    else if (r->type == record::kind::poll)
        maybe_free(static_cast<poll_slot*>(r)->owner);
}

void io_uring_backend::maybe_free(watch* ws) noexcept {
    if (ws->w || ws->busy()) return;
    if (ws->prev)
        ws->prev->next = ws->next;
    else
        watches_ = ws->next;
    if (ws->next) ws->next->prev = ws->prev;
    delete ws;
}

}  // namespace

std::unique_ptr<lowlevel::backend> make_io_uring_backend() {
    return std::make_unique<io_uring_backend>();
}

bool io_uring_usable() noexcept {
    // Compiled in is not enough: the kernel may refuse io_uring (the
    // kernel.io_uring_disabled sysctl, a seccomp filter, an old kernel). Ask it
    // once per process by setting up a ring.
    static const bool usable = [] {
        try {
            io_uring_backend probe;
            return true;
        } catch (...) {
            return false;
        }
    }();
    return usable;
}

}  // namespace uthreads::backends
