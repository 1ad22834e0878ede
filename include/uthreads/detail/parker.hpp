/// \file
/// The park/wake protocol of idle workers: how a worker that found no work goes to
/// sleep in its backend, and how a thread that just queued work wakes one, without
/// ever losing a wake-up.
///
/// The classic bug this file exists to prevent: worker W searches every queue,
/// finds nothing, and is about to sleep; meanwhile producer P queues an item and
/// looks for a sleeping worker to wake, finds none (W has not gone to sleep yet),
/// and does nothing. W sleeps; the item waits forever. Both sides checked the
/// other, just in the wrong order.
///
/// ## The protocol
///
/// Each worker w has a state, running → parked → (notified →) running:
///
///   worker w, idle path (park()):              producer (notify_one(), after queuing):
///     1. state[w] = parked; ++idle               1. seq_cst fence
///     2. seq_cst fence                           2. if idle == 0: return none
///     3. re-check every queue (has_work)         3. for each w: CAS state[w]
///     4. if nothing: sleep in the backend              parked → notified; on success
///        (returns on wake(), I/O or a timer)           --idle and return w; the caller
///     5. state[w] = running (exchange); if it          then calls w's backend wake()
///        was still parked, --idle
///
/// Step 1 is the *announcement*, step 3 the *re-check*. The producer's queue write
/// comes before its fence; the worker's announcement before its fence. Two seq_cst
/// fences forbid the "store buffering" outcome, so for every (producer, worker)
/// pair at least one of these holds: the worker's re-check sees the item, or the
/// producer's loads see the announcement.
///
/// ## The invariant
///
/// *Once producers are done and every worker sleeps for good, every queue is
/// empty.* Why: suppose item x is left while every worker sleeps for good. Each
/// worker's last sleep came after an announcement, a fence and a re-check that
/// found nothing. Take the notify_one() that followed x's queuing. If any load it
/// makes read a value older than some worker's last announcement, its fence
/// precedes that worker's fence in the seq_cst order, so that worker's last
/// re-check saw x (and a worker that sees work searches again instead of
/// sleeping): contradiction. So it saw every last announcement: the idle
/// count it read includes them (a claim's decrement can come before the matching
/// increment, but then the same argument applies to that worker's re-check), hence
/// is not 0, and the first worker it examines is parked, so it claims it, which
/// wakes that worker from what was supposed to be its last sleep: contradiction.
/// The model checker verifies exactly this property over all bounded
/// interleavings (tests/unit/parker_model_test.cpp). What a woken worker finds is
/// published to it twice: by the queue's own release/acquire and by the claim
/// (the CAS releases, finish_park()'s exchange acquires).
///
/// A worker whose re-check finds work, or whose backend returns for its own reasons
/// (I/O, a timer), leaves through step 5 too. If a producer claimed it meanwhile, a
/// backend wake() is in flight that nobody needs: the backend keeps it pending and
/// the worker's next sleep returns at once (a spurious wake-up, never a lost one).
///
/// `idle` counts announced workers and is only a fast path for producers (most
/// notify_one() calls in a busy runtime see 0 and cost one fence and one load).
/// It can be briefly off during a transition (a claim's decrement landing before
/// the claimed worker's own increment); the argument above covers that.
///
/// Not (yet) here: Tokio's "searching" throttle, which skips waking when a worker
/// is already searching and makes the last searcher re-check before it parks. It
/// cuts wake-ups in a busy runtime and is exactly where lost wake-ups hide, so it
/// comes with its own model-checked test when benchmarks ask for it.
///
/// Thread safety: worker-side functions are called by worker w only; notify_one()
/// and the observers from any thread.
#pragma once

#include <uthreads/detail/atomic_policy.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace uthreads::detail {

/// Grants unit tests access to a parker's internals (to build deliberately broken
/// variants for the model checker). Defined only in tests.
struct parker_test_access;

template <class Atomics = std_atomics>
class parker {
public:
    enum class state : std::uint8_t { running, parked, notified };

    /// Returned by notify_one() when no worker had to be woken.
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    /// `workers` workers, all running.
    explicit parker(std::size_t workers)
        : workers_(workers)
        , states_(new padded_state[workers]) {}

    std::size_t workers() const noexcept { return workers_; }

    // -------------------------------------------------------------------------
    // Worker side (worker w only)
    // -------------------------------------------------------------------------

    /// Steps 1–2: announce that worker w is about to sleep. After this the caller
    /// must re-check every queue it takes work from before sleeping.
    void prepare_park(std::size_t w) noexcept {
        // invariant: only worker w moves its state away from running, so nothing
        // else can be racing with this store (producers only CAS from parked).
        states_[w].s.store(state::parked, std::memory_order_relaxed);
        idle_.fetch_add(1, std::memory_order_relaxed);
        // seq_cst fence: the announcement above must be ordered before the re-check
        // loads that follow (store→load). Pairs with the fence in notify_one().
        Atomics::fence(std::memory_order_seq_cst);
    }

    /// Step 5: worker w is running again (its re-check found work, or it woke).
    /// Returns true if a producer had claimed it with notify_one().
    bool finish_park(std::size_t w) noexcept {
        // acquire: if a producer claimed us, what it queued before notify_one() is
        // visible (the queues also publish their items themselves; this is belt and
        // braces for queues that do so only through this protocol).
        const state old = states_[w].s.exchange(state::running, std::memory_order_acquire);
        if (old == state::parked) {
            // Nobody claimed us, so nobody decremented idle on our behalf.
            idle_.fetch_sub(1, std::memory_order_relaxed);
            return false;
        }
        return true;
    }

    /// The whole idle path for worker w: announce, re-check with `has_work()`, and
    /// if that finds nothing, `sleep()` (the backend's run_once: returns on wake(),
    /// I/O readiness, a timer or spuriously). Returns true if a producer's
    /// notify_one() claimed w. `has_work` must look at every queue the worker
    /// searches, with loads issued after this call began (it is the re-check).
    template <class HasWork, class Sleep>
    bool park(std::size_t w, HasWork&& has_work, Sleep&& sleep) {
        prepare_park(w);
        if (!has_work()) sleep();
        return finish_park(w);
    }

    // -------------------------------------------------------------------------
    // Producer side (any thread)
    // -------------------------------------------------------------------------

    /// Call after making an item visible in a queue that only worker `w` looks at
    /// (its remote queue). Returns true if `w` was sleeping or about to, and is
    /// now claimed: the caller must then call w's backend wake(). False means `w`
    /// is running and will re-check that queue before it sleeps (the same fence
    /// pairing as notify_one, for one worker).
    bool notify(std::size_t w) noexcept {
        Atomics::fence(std::memory_order_seq_cst);
        state expected = state::parked;
        if (states_[w].s.load(std::memory_order_relaxed) != state::parked ||
            !states_[w].s.compare_exchange_strong(expected, state::notified,
                                                  std::memory_order_acq_rel,
                                                  std::memory_order_relaxed))
            return false;
        idle_.fetch_sub(1, std::memory_order_relaxed);
        return true;
    }

    /// Call after making an item visible in a queue that workers search. Claims one
    /// sleeping worker and returns its index (the caller must then call that
    /// worker's backend wake()), or returns `none` if no worker needs waking
    /// because every worker will re-check the queues before it sleeps.
    std::size_t notify_one() noexcept {
        // seq_cst fence: orders the caller's queue write before the loads below
        // (store→load). Pairs with the fence in prepare_park().
        Atomics::fence(std::memory_order_seq_cst);
        if (idle_.load(std::memory_order_relaxed) == 0) return none;
        for (std::size_t w = 0; w < workers_; ++w) {
            state expected = state::parked;
            // acq_rel: a claim is a hand-off; the worker's acquire exchange in
            // finish_park() reads it.
            if (states_[w].s.load(std::memory_order_relaxed) == state::parked &&
                states_[w].s.compare_exchange_strong(expected, state::notified,
                                                     std::memory_order_acq_rel,
                                                     std::memory_order_relaxed)) {
                idle_.fetch_sub(1, std::memory_order_relaxed);
                return w;
            }
        }
        return none;
    }

    // -------------------------------------------------------------------------
    // Observers (any thread; values may be stale when looked at)
    // -------------------------------------------------------------------------

    std::size_t idle_estimate() const noexcept {
        return static_cast<std::size_t>(idle_.load(std::memory_order_relaxed));
    }
    state state_of(std::size_t w) const noexcept {
        return states_[w].s.load(std::memory_order_relaxed);
    }

private:
    friend struct parker_test_access;

    // One cache line per worker: producers read every state on a scan, but each is
    // written by its own worker.
    struct alignas(64) padded_state {
        typename Atomics::template atomic<state> s{state::running};
    };

    const std::size_t workers_;
    std::unique_ptr<padded_state[]> states_;
    alignas(64) typename Atomics::template atomic<std::int64_t> idle_{0};
};

}  // namespace uthreads::detail
