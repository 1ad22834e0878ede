// Model-checked tests of the park/wake protocol (detail/parker.hpp).
//
// Each program has producers that queue items and call notify_one(), and workers
// that loop forever: take an item if there is one, otherwise park (announce,
// re-check, sleep until their backend is woken). A worker's backend is modelled
// by a "wake pending" flag: wake() sets it, the sleep blocks until it is set and
// then clears it, like the eventfd-backed run_once() of the real backends.
//
// The property, checked in every explored interleaving once nothing can run any
// more (producers finished, every worker asleep): no item is left in any queue.
// An item left over while all workers sleep is a lost wake-up. The checker also
// checks that the idle count agrees with the workers' states at that point.
//
// CheckerFindsLostWakeUp runs a worker that checks for work *before* announcing
// itself (and never re-checks): the classic bug, which the checker must find.
// CheckerFindsMissingNotifyFenceOnlyUnderTso drops the producer's fence: correct
// under sequential consistency, a lost wake-up under x86-TSO.
#include "model_check.hpp"

#include <uthreads/detail/parker.hpp>
#include <uthreads/detail/ws_deque.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace uthreads::detail {

// notify_one() without its leading seq_cst fence. Under sequential consistency
// nothing changes; on x86 the producer's queue write can still be in its store
// buffer when it reads the idle count, while the worker announces and re-checks.
struct parker_test_access {
    template <class Parker>
    static std::size_t notify_one_without_fence(Parker& p) {
        // BUG: the fence is missing here.
        if (p.idle_.load(std::memory_order_relaxed) == 0) return Parker::none;
        for (std::size_t w = 0; w < p.workers_; ++w) {
            auto expected = Parker::state::parked;
            if (p.states_[w].s.compare_exchange_strong(expected, Parker::state::notified,
                                                       std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
                p.idle_.fetch_sub(1, std::memory_order_relaxed);
                return w;
            }
        }
        return Parker::none;
    }
};

}  // namespace uthreads::detail

namespace {

namespace detail = uthreads::detail;

using model_parker = detail::parker<mc::atomics>;

constexpr std::size_t max_workers = 3;

// ---------------------------------------------------------------------------
// Workers sharing one injection queue (modelled as a counter of queued items)
// ---------------------------------------------------------------------------

enum class idle_path {
    correct,          // parker::park(): announce, re-check, sleep
    check_then_park,  // BUG: the search before announcing is the only check
};

struct shared_queue {
    explicit shared_queue(std::size_t workers)
        : parker(workers) {}

    model_parker parker;
    mc::atomics::atomic<int> queued{0};
    std::array<mc::atomics::atomic<bool>, max_workers> wake_pending{};
    int produced = 0;
    int consumed = 0;

    bool try_take() {
        int n = queued.load();
        while (n > 0 && !queued.compare_exchange_strong(n, n - 1)) {
        }
        return n > 0;
    }

    // What a producer does: queue, then notify; wake the claimed worker's backend.
    void produce() {
        ++produced;
        queued.fetch_add(1);
        const std::size_t w = parker.notify_one();
        if (w != model_parker::none) wake_pending[w].store(true);
    }

    // The backend's run_once(): sleep until a wake() is pending, consume it.
    void sleep(std::size_t me) {
        mc::block_until([this, me] { return wake_pending[me].peek(); });
        wake_pending[me].store(false);
    }

    // A worker's scheduling loop; never returns (the checker unwinds it).
    void work(std::size_t me, idle_path path) {
        for (;;) {
            if (try_take()) {
                ++consumed;
                continue;
            }
            if (path == idle_path::correct) {
                parker.park(
                    me, [this] { return queued.load() > 0; }, [this, me] { sleep(me); });
            } else {
                parker.prepare_park(me);
                sleep(me);
                parker.finish_park(me);
            }
        }
    }

    void check_quiescent(std::size_t workers) {
        mc::check(queued.peek() == 0, "lost wake-up: " + std::to_string(queued.peek()) +
                                          " item(s) queued while every worker sleeps");
        mc::check(consumed == produced, "consumed " + std::to_string(consumed) + " of " +
                                            std::to_string(produced) + " items");
        for (std::size_t w = 0; w < workers; ++w)
            mc::check(parker.state_of(w) == model_parker::state::parked,
                      "a sleeping worker is not in state parked");
        mc::check(parker.idle_estimate() == workers, "idle count disagrees with the states");
    }
};

mc::result run_shared_queue(std::size_t producers, int items_each, std::size_t workers,
                            idle_path path, int bound,
                            mc::memory_model model = mc::memory_model::sc) {
    return mc::explore(
        [=](mc::program& p) {
            auto q = std::make_shared<shared_queue>(workers);
            for (std::size_t i = 0; i < producers; ++i)
                p.thread([q, items_each] {
                    for (int k = 0; k < items_each; ++k) q->produce();
                });
            for (std::size_t w = 0; w < workers; ++w) p.thread([q, w, path] { q->work(w, path); });
            p.finally([q, producers, workers](const std::vector<bool>& blocked) {
                for (std::size_t i = 0; i < producers; ++i)
                    mc::check(!blocked[i], "a producer blocked");
                q->check_quiescent(workers);
            });
        },
        {.preemption_bound = bound, .model = model});
}

TEST(ParkerModelTest, OneProducerTwoWorkers) {
    constexpr int bound = 3;
    auto r = run_shared_queue(1, 2, 2, idle_path::correct, bound);
    mc::report("1 producer x 2 items, 2 workers", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(ParkerModelTest, TwoProducersOneWorker) {
    // Both producers may see the one parked worker; only one can claim it, and
    // the other's item must still be found.
    constexpr int bound = 3;
    auto r = run_shared_queue(2, 1, 1, idle_path::correct, bound);
    mc::report("2 producers x 1 item, 1 worker", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(ParkerModelTest, TwoProducersTwoWorkers) {
    constexpr int bound = 2;
    auto r = run_shared_queue(2, 1, 2, idle_path::correct, bound);
    mc::report("2 producers x 1 item, 2 workers", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(ParkerModelTest, OneProducerThreeWorkers) {
    // notify_one() scans past workers that are running or already claimed.
    constexpr int bound = 2;
    auto r = run_shared_queue(1, 2, 3, idle_path::correct, bound);
    mc::report("1 producer x 2 items, 3 workers", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(ParkerModelTest, CheckerFindsLostWakeUp) {
    // The worker searches, finds nothing, and only then announces itself; a
    // producer that queues and notifies in between sees nobody to wake.
    auto r = run_shared_queue(1, 1, 1, idle_path::check_then_park, 2);
    mc::report("broken idle path (check, then park)", r);
    ASSERT_TRUE(r.failed) << "the checker missed a known lost wake-up";
    EXPECT_NE(r.failure.find("lost wake-up"), std::string::npos) << r.failure;
    std::printf("counterexample:\n%s", r.trace.c_str());
}

// ---------------------------------------------------------------------------
// A producer that publishes with a plain store (under TSO it can linger in the
// store buffer), e.g. a release store into a slot, and one worker
// ---------------------------------------------------------------------------

enum class notify_kind { any_worker, any_worker_without_fence, this_worker };

mc::result run_mailbox(notify_kind kind, mc::options opts) {
    return mc::explore(
        [kind](mc::program& p) {
            struct state {
                model_parker parker{1};
                mc::atomics::atomic<int> mailbox{0};
                mc::atomics::atomic<bool> wake_pending{false};
                int consumed = 0;
            };
            auto st = std::make_shared<state>();
            p.thread([st, kind] {
                st->mailbox.store(1, std::memory_order_release);
                bool claimed = false;
                switch (kind) {
                case notify_kind::any_worker:
                    claimed = st->parker.notify_one() != model_parker::none;
                    break;
                case notify_kind::any_worker_without_fence:
                    claimed = detail::parker_test_access::notify_one_without_fence(st->parker) !=
                              model_parker::none;
                    break;
                case notify_kind::this_worker:
                    // A remote queue that only worker 0 reads (scheduler::push_remote).
                    claimed = st->parker.notify(0);
                    break;
                }
                if (claimed) st->wake_pending.store(true);
            });
            p.thread([st] {
                for (;;) {
                    if (st->mailbox.exchange(0) == 1) {
                        ++st->consumed;
                        continue;
                    }
                    st->parker.park(
                        0, [&] { return st->mailbox.load(std::memory_order_acquire) != 0; },
                        [&] {
                            mc::block_until([&] { return st->wake_pending.peek(); });
                            st->wake_pending.store(false);
                        });
                }
            });
            p.finally([st](const std::vector<bool>&) {
                mc::check(st->mailbox.peek() == 0,
                          "lost wake-up: the item is in the mailbox while the worker sleeps");
                mc::check(st->consumed == 1, "the item was not consumed exactly once");
            });
        },
        opts);
}

TEST(ParkerModelTest, ReleaseStorePublisherTso) {
    constexpr int bound = 3;
    auto sc = run_mailbox(notify_kind::any_worker, {.preemption_bound = bound});
    mc::report("release-store publisher, 1 worker", sc);
    EXPECT_TRUE(mc::passed(sc));
    auto tso = run_mailbox(notify_kind::any_worker,
                           {.preemption_bound = bound, .model = mc::memory_model::tso});
    mc::report("release-store publisher, 1 worker", tso);
    EXPECT_TRUE(mc::passed(tso));
}

TEST(ParkerModelTest, NotifyOfOneWorkerLosesNoWakeUp) {
    // parker::notify(w): the remote-queue wake-up, which skips the backend wake()
    // when the target is running.
    constexpr int bound = 3;
    auto sc = run_mailbox(notify_kind::this_worker, {.preemption_bound = bound});
    mc::report("notify(w), 1 worker", sc);
    EXPECT_TRUE(mc::passed(sc));
    auto tso = run_mailbox(notify_kind::this_worker,
                           {.preemption_bound = bound, .model = mc::memory_model::tso});
    mc::report("notify(w), 1 worker", tso);
    EXPECT_TRUE(mc::passed(tso));
}

TEST(ParkerModelTest, CheckerFindsMissingNotifyFenceOnlyUnderTso) {
    // Without the fence, the producer reads idle == 0 while its store to the
    // mailbox is still buffered; the worker announces, re-checks an empty
    // mailbox, and sleeps. Invisible under SC, a lost wake-up under TSO.
    constexpr int bound = 3;
    auto sc = run_mailbox(notify_kind::any_worker_without_fence, {.preemption_bound = bound});
    mc::report("notify without fence", sc);
    EXPECT_TRUE(mc::passed(sc));
    auto tso = run_mailbox(notify_kind::any_worker_without_fence,
                           {.preemption_bound = bound, .model = mc::memory_model::tso});
    mc::report("notify without fence", tso);
    ASSERT_TRUE(tso.failed) << "the checker missed the missing fence under TSO";
    EXPECT_NE(tso.failure.find("lost wake-up"), std::string::npos) << tso.failure;
    std::printf("counterexample:\n%s", tso.trace.c_str());
}

TEST(ParkerModelTest, OneProducerTwoWorkersTso) {
    constexpr int bound = 2;
    auto r = run_shared_queue(1, 2, 2, idle_path::correct, bound, mc::memory_model::tso);
    mc::report("1 producer x 2 items, 2 workers", r);
    EXPECT_TRUE(mc::passed(r));
}

// ---------------------------------------------------------------------------
// Workers with their own Chase–Lev deques, stealing from each other
// ---------------------------------------------------------------------------

using model_deque = detail::ws_deque<int*, mc::atomics>;

// Worker 0 spawns two items onto its own deque (notifying after each), then
// joins the scheduling loop; worker 1 only has what it can steal. The re-check
// looks at both deques, as the runtime's will look at every queue.
struct stealing_pool {
    stealing_pool()
        : parker(2) {}

    model_parker parker;
    std::array<model_deque, 2> deques{model_deque(2), model_deque(2)};
    std::array<mc::atomics::atomic<bool>, 2> wake_pending{};
    std::array<int, 2> items{0, 1};
    std::array<int, 2> taken{};

    int* find(std::size_t me) {
        if (int* x = deques[me].pop()) return x;
        for (;;) {
            auto r = deques[1 - me].steal();
            if (r.status == detail::steal_status::abort) continue;
            return r.item;
        }
    }
    bool any_work() { return deques[0].size_estimate() > 0 || deques[1].size_estimate() > 0; }
    void sleep(std::size_t me) {
        mc::block_until([this, me] { return wake_pending[me].peek(); });
        wake_pending[me].store(false);
    }
    void work(std::size_t me) {
        for (;;) {
            if (int* x = find(me)) {
                ++taken[static_cast<std::size_t>(*x)];
                continue;
            }
            parker.park(
                me, [this] { return any_work(); }, [this, me] { sleep(me); });
        }
    }
    void spawn(std::size_t me, int* x) {
        deques[me].push(x);
        const std::size_t w = parker.notify_one();
        if (w != model_parker::none) wake_pending[w].store(true);
    }
};

mc::result run_stealing_pool(mc::options opts) {
    return mc::explore(
        [](mc::program& p) {
            auto pool = std::make_shared<stealing_pool>();
            p.thread([pool] {
                pool->spawn(0, &pool->items[0]);
                pool->spawn(0, &pool->items[1]);
                pool->work(0);
            });
            p.thread([pool] { pool->work(1); });
            p.finally([pool](const std::vector<bool>&) {
                mc::check(!pool->any_work(), "lost wake-up: items left in a deque");
                for (int t : pool->taken) mc::check(t == 1, "an item was not taken exactly once");
            });
        },
        opts);
}

TEST(ParkerModelTest, SpawnOntoOwnDequeWakesAThief) {
    constexpr int bound = 3;
    auto r = run_stealing_pool({.preemption_bound = bound});
    mc::report("spawn onto own deque, 2 workers stealing", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(ParkerModelTest, SpawnOntoOwnDequeWakesAThiefTso) {
    constexpr int bound = 2;
    auto r = run_stealing_pool({.preemption_bound = bound, .model = mc::memory_model::tso});
    mc::report("spawn onto own deque, 2 workers stealing", r);
    EXPECT_TRUE(mc::passed(r));
}

}  // namespace
