// The simulation backend: virtual time and a shuffled schedule, for tests.
//
// Facts this relies on:
// - Time is virtual. now() starts at a fixed point and only moves when the core
//   would sleep: run_once(timeout) advances the clock by `timeout` at once, so a
//   one-hour sleep finishes immediately and the outcome does not depend on how
//   fast the machine is.
// - Real descriptors still work: they are watched by the epoll machinery this
//   class inherits. Before jumping the clock while descriptors are registered,
//   it waits for real I/O for a short real-time threshold (like Trio's
//   autojump_threshold), so loopback traffic in flight is not overtaken by a
//   virtual timeout. With no descriptors the jump is immediate.
// - The core shuffles its ready queue from options.seed (shuffles_ready_queue),
//   so one seed gives one schedule and other seeds explore others.
// - With several workers (options.threads > 1) each worker has its own instance,
//   and connect_workers() gives them one shared clock (shared_clock below). It
//   jumps only when every worker is idle inside run_once, to the earliest
//   deadline any of them asked for. The schedule is then not reproducible: the
//   workers are real threads.
#include "../epoll/epoll_backend.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace uthreads::backends {

namespace {

using std::chrono::nanoseconds;
using time_point = std::chrono::steady_clock::time_point;

constexpr nanoseconds io_threshold = std::chrono::milliseconds(20);

class sim_backend;

// The one virtual clock of the sim backends of a multi-threaded runtime.
//
// A worker is *idle* from the moment its run_once finds nothing ready and
// nothing asked it to wake, until it returns. The clock moves only inside a
// critical section of `mu` in which every worker is idle, and then to the
// earliest deadline an idle worker asked for; that worker (and any other whose
// deadline is reached) is taken out of the idle set and woken. So while any
// worker is busy the clock stands still, and no worker sees it jump past a
// deadline it asked for.
//
// The invariant that keeps a jump from overtaking work (a lost wake-up in
// virtual time): **a worker is in the idle set only if no wake() for it came
// after it last returned from run_once** (its work was drained since). wake()
// takes the target out of the idle set, or, if it is not in it yet, sets
// `woken` so that it does not enter it; both under `mu`, before the eventfd is
// written. A producer calls wake() after publishing the work, and a worker
// producer is busy (not idle) until wake() returns, so no jump can fall between
// the two. Whoever leaves the idle set clears `woken` under `mu`: a wake() whose
// critical section came before is drained by core after run_once returns; one
// that comes after sets it again. (A producer on a foreign thread, a promise or
// a to_thread job, is like real I/O: virtual time does not wait for it, as with
// one worker.)
//
// Real I/O: a worker blocked in epoll with descriptors registered may have an
// event in flight that has not made it leave the idle set yet. When any idle
// worker has descriptors, a jump therefore waits for the whole group to stay
// idle for io_threshold of real time first (`leaves` unchanged), as the
// single-threaded backend waits before its own jumps.
//
// Liveness: when the idle set becomes full, the worker whose entry filled it
// looks for a deadline and jumps (after the threshold if needed). If the
// threshold wait sees a leave, the worker that left fills the set again when it
// comes back (and jumps then), or it stays busy and no jump is due. If no idle
// worker has a deadline, they all wait for real I/O and wake-ups only.
struct shared_clock {
    struct member {
        sim_backend* backend = nullptr;
        bool idle = false;
        bool woken = false;                  // a wake() since it last left run_once
        bool has_io = false;                 // descriptors registered when it became idle
        std::optional<time_point> deadline;  // what it asked for when it became idle
    };

    explicit shared_clock(time_point start)
        : now(start.time_since_epoch().count()) {}

    time_point read() const noexcept {
        // acquire: pairs with the release store in jump(), so a worker that reads
        // a new time also sees what the jumping worker wrote before the jump.
        // That a worker reads at least the time a sender read before a hand-off
        // follows from the coherence of this one variable and the hand-off's own
        // synchronization (a primitive's lock, the remote queue).
        return time_point(time_point::duration(now.load(std::memory_order_acquire)));
    }

    std::mutex mu;
    // Written under mu only (by jumps), read without it by now().
    std::atomic<time_point::rep> now;
    std::vector<member> members;  // guarded by mu (the vector itself is fixed)
    std::size_t idle = 0;         // members with idle set; guarded by mu
    std::uint64_t leaves = 0;     // how many times a member left the idle set; guarded by mu

    // mu held: member i leaves the idle set (if it is in it) and has taken its
    // wake-ups into account.
    void leave(std::size_t i) noexcept {
        member& m = members[i];
        if (m.idle) {
            m.idle = false;
            --idle;
            ++leaves;
        }
        m.woken = false;
    }

    // mu held, every member idle. The earliest deadline an idle member asked for.
    std::optional<time_point> earliest() const noexcept {
        std::optional<time_point> t;
        for (const member& m : members)
            if (m.idle && m.deadline && (!t || *m.deadline < *t)) t = m.deadline;
        return t;
    }
    bool any_io() const noexcept {
        return std::any_of(members.begin(), members.end(),
                           [](const member& m) { return m.idle && m.has_io; });
    }

    // mu held, every member idle: move to `t` (never back) and wake the members
    // whose deadline is reached, except `self`, which just returns.
    void jump(time_point t, std::size_t self) noexcept;
};

class sim_backend final : public epoll_backend {
public:
    std::string_view name() const noexcept override { return "sim"; }

    void run_once(std::optional<nanoseconds> timeout) override {
        // Whatever is ready for real (I/O, wake-ups) comes first.
        if (poll_events(nanoseconds(0)) > 0) return;
        if (timeout && *timeout <= nanoseconds(0)) return;
        if (clock_) {
            run_once_shared(timeout);
            return;
        }
        if (!timeout) {
            // Nothing to jump to: only real I/O or a wake-up can make progress.
            poll_events(std::nullopt);
            return;
        }
        if (watched() > 0 && poll_events(std::min<nanoseconds>(*timeout, io_threshold)) > 0) return;
        now_ += *timeout;
    }

    void wake() noexcept override {
        if (clock_) {
            std::lock_guard lk(clock_->mu);
            shared_clock::member& m = clock_->members[index_];
            if (m.idle) clock_->leave(index_);
            m.woken = true;
        }
        epoll_backend::wake();
    }

    time_point now() const override { return clock_ ? clock_->read() : now_; }
    bool shuffles_ready_queue() const noexcept override { return true; }

    void connect_workers(std::span<lowlevel::backend* const> workers) override {
        if (workers.empty() || workers[0] != this)
            throw std::invalid_argument(
                "sim: connect_workers: `workers` must start with the backend it is called on");
        std::vector<sim_backend*> sims;
        for (lowlevel::backend* b : workers) {
            auto* s = dynamic_cast<sim_backend*>(b);
            if (!s)
                throw std::invalid_argument(
                    "sim: connect_workers: every backend in `workers` must be a sim backend");
            sims.push_back(s);
        }
        time_point start = now_;
        for (sim_backend* s : sims) start = std::max(start, s->now());
        auto clock = std::make_shared<shared_clock>(start);
        clock->members.resize(sims.size());
        for (std::size_t i = 0; i < sims.size(); ++i) {
            clock->members[i].backend = sims[i];
            sims[i]->index_ = i;
            sims[i]->clock_ = clock;
        }
    }

private:
    friend struct shared_clock;

    void run_once_shared(std::optional<nanoseconds> timeout) {
        shared_clock& c = *clock_;
        shared_clock::member& me = c.members[index_];
        std::unique_lock lk(c.mu);
        if (me.woken) {
            // Work came for us after our last return; core drains it once we return.
            me.woken = false;
            return;
        }
        // invariant: the clock does not move while we are not idle, so this is
        // the deadline core computed the timeout from.
        if (timeout)
            me.deadline = c.read() + *timeout;
        else
            me.deadline.reset();
        me.has_io = watched() > 0;
        me.idle = true;
        ++c.idle;
        for (;;) {
            // Real time to wait before jumping (nullopt: no jump is ours to make).
            std::optional<nanoseconds> grace;
            std::optional<time_point> target;
            const std::uint64_t leaves = c.leaves;
            if (c.idle == c.members.size() && (target = c.earliest())) {
                if (c.any_io())
                    grace = std::min<nanoseconds>(*target - c.read(), io_threshold);
                else
                    c.jump(*target, index_);
            }
            if (!me.idle) return;  // our deadline was reached
            lk.unlock();
            const int events = wait_real(grace);
            lk.lock();
            if (events > 0 || !me.idle) {
                // I/O, a wake-up (which already took us out) or a jump that
                // reached our deadline.
                c.leave(index_);
                return;
            }
            // The group stayed idle through the threshold: nothing in flight.
            if (grace && c.leaves == leaves) c.jump(*target, index_);
            if (!me.idle) return;
            // Otherwise look again: someone left (and may have come back), or the
            // wait ended spuriously.
        }
    }

    // Wait for real I/O or a wake-up for `d` of real time (nullopt: no limit).
    int wait_real(std::optional<nanoseconds> d) {
        if (!d) return poll_events(std::nullopt);
        const auto until = std::chrono::steady_clock::now() + *d;
        for (;;) {
            if (int n = poll_events(*d); n > 0) return n;
            d = until - std::chrono::steady_clock::now();
            if (*d <= nanoseconds(0)) return 0;
        }
    }

    // A fixed origin, so traces of two runs compare equal.
    time_point now_{std::chrono::hours(1)};
    // Set by connect_workers (several workers): the group's clock replaces now_.
    std::shared_ptr<shared_clock> clock_;
    std::size_t index_ = 0;
};

void shared_clock::jump(time_point t, std::size_t self) noexcept {
    // invariant: only written here, under mu, and only forward, so now() never
    // goes backwards. release: pairs with the acquire load in read().
    if (t > read()) now.store(t.time_since_epoch().count(), std::memory_order_release);
    const time_point n = read();
    for (std::size_t i = 0; i < members.size(); ++i) {
        member& m = members[i];
        if (!m.idle || !m.deadline || *m.deadline > n) continue;
        m.idle = false;
        --idle;
        ++leaves;
        // Its eventfd only; the member is already out of the idle set.
        if (i != self) m.backend->epoll_backend::wake();
    }
}

}  // namespace

std::unique_ptr<lowlevel::backend> make_sim_backend() { return std::make_unique<sim_backend>(); }

}  // namespace uthreads::backends
