// Model-checked tests of the Chase–Lev deque (detail/ws_deque.hpp), and of the
// checker itself (tests/unit/model_check.hpp).
//
// Each test builds a tiny program (an owner and one or two thieves, a handful of
// operations each), lets the checker run it under every schedule within the
// preemption bound, and checks the deque's contract in every one of them:
//   - every pushed item is taken exactly once, by a pop, a steal, or the final
//     drain after all threads finished (no loss, no duplication);
//   - a thief takes items in push order (steals are FIFO).
// Tests named *Tso run the program under x86-TSO store buffering as well as
// under sequential consistency; see the header of model_check.hpp for what
// neither covers.
//
// The CheckerFinds* tests run the same programs on a deliberately broken deque
// and assert that the checker reports the bug: a checker that cannot fail proves
// nothing. One bug (no last-element CAS) breaks the algorithm's logic; the
// other (no full barrier in pop) is invisible under SC and must be found under
// TSO.
#include "model_check.hpp"

#include <uthreads/detail/ws_deque.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace uthreads::detail {

// A pop() whose last-element CAS is replaced by a plain store to top_ (check,
// then act): a thief that read top_ before the store can take the same item.
struct ws_deque_test_access {
    template <class Deque>
    static auto pop_without_last_cas(Deque& q) {
        const std::int64_t b = q.bottom_.load(std::memory_order_relaxed) - 1;
        auto* buf = q.buffer_.load(std::memory_order_relaxed);
        q.bottom_.store(b, std::memory_order_relaxed);
        const std::int64_t t = q.top_.load(std::memory_order_relaxed);
        if (t > b) {
            q.bottom_.store(b + 1, std::memory_order_relaxed);
            return decltype(buf->slot(b).load()){nullptr};
        }
        auto item = buf->slot(b).load(std::memory_order_relaxed);
        if (t == b) {
            q.top_.store(t + 1, std::memory_order_seq_cst);  // BUG: should be a CAS from t
            q.bottom_.store(b + 1, std::memory_order_relaxed);
        }
        return item;
    }

    // pop() lowering bottom_ with a plain store instead of its seq_cst exchange,
    // so nothing orders that store before the read of top_.
    // Harmless under sequential consistency; on x86 the store to bottom_ can sit
    // in the store buffer while top_ is read, and a thief can take the item the
    // owner reserved.
    template <class Deque>
    static auto pop_without_fence(Deque& q) {
        const std::int64_t b = q.bottom_.load(std::memory_order_relaxed) - 1;
        auto* buf = q.buffer_.load(std::memory_order_relaxed);
        q.bottom_.store(b, std::memory_order_relaxed);
        // BUG: a plain store, and no barrier before the read below.
        std::int64_t t = q.top_.load(std::memory_order_relaxed);
        if (t > b) {
            q.bottom_.store(b + 1, std::memory_order_relaxed);
            return decltype(buf->slot(b).load()){nullptr};
        }
        auto item = buf->slot(b).load(std::memory_order_relaxed);
        if (t == b) {
            if (!q.top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                                std::memory_order_relaxed))
                item = nullptr;
            q.bottom_.store(b + 1, std::memory_order_relaxed);
        }
        return item;
    }
};

}  // namespace uthreads::detail

namespace {

namespace detail = uthreads::detail;

using model_deque = detail::ws_deque<int*, mc::atomics>;

constexpr int max_items = 8;

// Shared state of one execution: the deque, the items, and who took what.
struct world {
    explicit world(std::size_t capacity)
        : q(capacity) {
        for (int i = 0; i < max_items; ++i) items[static_cast<std::size_t>(i)] = i;
    }
    model_deque q;
    std::array<int, max_items> items{};
    std::array<int, max_items> taken{};  // how many times item i was taken
    int pushed = 0;

    int* item(int i) { return &items[static_cast<std::size_t>(i)]; }
    void push(int i) {
        q.push(item(i));
        pushed = std::max(pushed, i + 1);
    }
    void took(int* p) {
        if (p != nullptr) ++taken[static_cast<std::size_t>(*p)];
    }
    // One steal, retried while it aborts (a thief that lost a race tries again);
    // records the item. Returns the item or nullptr if the deque was empty.
    int* steal() {
        for (;;) {
            auto r = q.steal();
            if (r.status == detail::steal_status::abort) continue;
            mc::check((r.status == detail::steal_status::success) == (r.item != nullptr),
                      "steal: status and item disagree");
            took(r.item);
            return r.item;
        }
    }
    // Called once all threads finished: drain what is left, then every pushed
    // item must have been taken exactly once.
    void settle() {
        while (int* p = q.pop()) took(p);
        for (int i = 0; i < pushed; ++i)
            mc::check(taken[static_cast<std::size_t>(i)] == 1,
                      "item " + std::to_string(i) + " taken " +
                          std::to_string(taken[static_cast<std::size_t>(i)]) + " times");
    }
};

enum class pop_variant { correct, no_last_cas, no_fence };

int* pop(world& w, pop_variant v) {
    switch (v) {
    case pop_variant::correct:
        return w.q.pop();
    case pop_variant::no_last_cas:
        return detail::ws_deque_test_access::pop_without_last_cas(w.q);
    case pop_variant::no_fence:
        return detail::ws_deque_test_access::pop_without_fence(w.q);
    }
    return nullptr;
}

// A thief's steals must come out in push order.
void check_fifo(const std::vector<int>& seen) {
    for (std::size_t i = 1; i < seen.size(); ++i)
        mc::check(seen[i - 1] < seen[i], "a thief stole out of push order");
}

// ---------------------------------------------------------------------------
// The checker itself
// ---------------------------------------------------------------------------

// k independent atomic operations per thread: the number of interleavings is the
// multinomial coefficient, which the exhaustive search must hit exactly (each
// schedule once, none missed).
mc::result count_interleavings(int threads, int ops, int bound) {
    return mc::explore(
        [&](mc::program& p) {
            auto counter = std::make_shared<mc::atomics::atomic<int>>(0);
            for (int t = 0; t < threads; ++t)
                p.thread([counter, ops] {
                    for (int i = 0; i < ops; ++i) counter->fetch_add(1);
                });
            p.finally([counter, threads, ops](const std::vector<bool>&) {
                mc::check(counter->peek() == threads * ops, "lost an increment");
            });
        },
        {.preemption_bound = bound});
}

TEST(ModelCheckerTest, EnumeratesEveryInterleavingExactlyOnce) {
    EXPECT_EQ(count_interleavings(2, 3, mc::unbounded).executions, 20u);  // 6!/(3!3!)
    EXPECT_EQ(count_interleavings(3, 2, mc::unbounded).executions, 90u);  // 6!/(2!2!2!)
    EXPECT_EQ(count_interleavings(2, 4, mc::unbounded).executions, 70u);  // 8!/(4!4!)
}

TEST(ModelCheckerTest, PreemptionBoundLimitsTheSearch) {
    // Bound 0: each thread runs to completion once started; only the order in
    // which they start differs.
    EXPECT_EQ(count_interleavings(2, 3, 0).executions, 2u);
    EXPECT_EQ(count_interleavings(3, 2, 0).executions, 6u);
    // Bound 1 sits strictly between.
    const auto one = count_interleavings(2, 3, 1).executions;
    EXPECT_GT(one, 2u);
    EXPECT_LT(one, 20u);
}

TEST(ModelCheckerTest, FindsALostUpdate) {
    // Load-then-store increments lose updates under some interleaving; the
    // checker must say so and show the schedule.
    auto r = mc::explore([](mc::program& p) {
        auto counter = std::make_shared<mc::atomics::atomic<int>>(0);
        for (int t = 0; t < 2; ++t) p.thread([counter] { counter->store(counter->load() + 1); });
        p.finally([counter](const std::vector<bool>&) {
            mc::check(counter->peek() == 2, "lost update");
        });
    });
    ASSERT_TRUE(r.failed);
    EXPECT_EQ(r.failure, "lost update");
    EXPECT_NE(r.trace.find("T1 load"), std::string::npos) << r.trace;
}

TEST(ModelCheckerTest, QuiescesWhenEveryThreadBlocks) {
    // One thread waits for a flag that nobody sets: the execution ends with it
    // blocked (and unwound), and the final check sees that.
    auto r = mc::explore([](mc::program& p) {
        auto flag = std::make_shared<mc::atomics::atomic<int>>(0);
        auto unwound = std::make_shared<bool>(false);
        p.thread([flag, unwound] {
            struct on_unwind {
                bool* b;
                ~on_unwind() { *b = true; }
            } guard{unwound.get()};
            flag->load();
            mc::block_until([flag] { return flag->peek() != 0; });
        });
        p.finally([unwound](const std::vector<bool>& blocked) {
            mc::check(blocked.at(0), "thread 0 should have ended blocked");
            mc::check(*unwound, "a blocked thread's stack was not unwound");
        });
    });
    EXPECT_TRUE(mc::passed(r));
    EXPECT_EQ(r.executions, 1u);
}

// ---------------------------------------------------------------------------
// The deque
// ---------------------------------------------------------------------------

TEST(WsDequeModelTest, LastElementRaceIsExhaustivelySafe) {
    // Owner pushes one item and pops; a thief steals. Every interleaving, no bound.
    auto r = mc::explore(
        [](mc::program& p) {
            auto w = std::make_shared<world>(2);
            p.thread([w] {
                w->push(0);
                w->took(w->q.pop());
            });
            p.thread([w] { w->steal(); });
            p.finally([w](const std::vector<bool>&) { w->settle(); });
        },
        {.preemption_bound = mc::unbounded});
    mc::report("last element", r);
    EXPECT_TRUE(mc::passed(r));
    EXPECT_GT(r.executions, 50u);  // it really explored the race
}

// push, push, pop, pop against steal, steal: covers pop of a non-last item racing
// a steal, and the last-element race.
mc::result owner_and_thief_two_items(pop_variant v, mc::options opts) {
    return mc::explore(
        [v](mc::program& p) {
            auto w = std::make_shared<world>(2);
            auto seen = std::make_shared<std::vector<int>>();
            p.thread([w, v] {
                w->push(0);
                w->push(1);
                w->took(pop(*w, v));
                w->took(pop(*w, v));
            });
            p.thread([w, seen] {
                for (int i = 0; i < 2; ++i)
                    if (int* x = w->steal()) seen->push_back(*x);
            });
            p.finally([w, seen](const std::vector<bool>&) {
                w->settle();
                check_fifo(*seen);
            });
        },
        opts);
}

TEST(WsDequeModelTest, OwnerAndThiefTwoItems) {
    // Unbounded, this program has millions of interleavings; bound 4 covers
    // every race of up to four context switches.
    constexpr int bound = 4;
    auto r = owner_and_thief_two_items(pop_variant::correct, {.preemption_bound = bound});
    mc::report("owner + thief, 2 items", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(WsDequeModelTest, OwnerAndThiefTwoItemsTso) {
    constexpr int bound = 3;
    auto r = owner_and_thief_two_items(pop_variant::correct,
                                       {.preemption_bound = bound, .model = mc::memory_model::tso});
    mc::report("owner + thief, 2 items", r);
    EXPECT_TRUE(mc::passed(r));
}

// Capacity 2: the third push grows the buffer (unless the thief already took an
// item) while the thief may be holding the old one. Interleaved pops take from
// the new buffer. `grown` counts the executions in which the buffer grew.
mc::result grow_while_thief_steals(mc::options opts, int& grown) {
    return mc::explore(
        [&grown](mc::program& p) {
            auto w = std::make_shared<world>(2);
            auto seen = std::make_shared<std::vector<int>>();
            p.thread([w] {
                w->push(0);
                w->push(1);
                w->push(2);  // grows: 2 -> 4 slots
                w->took(w->q.pop());
                w->push(3);
                w->took(w->q.pop());
            });
            p.thread([w, seen] {
                for (int i = 0; i < 3; ++i)
                    if (int* x = w->steal()) seen->push_back(*x);
            });
            p.finally([w, seen, &grown](const std::vector<bool>&) {
                w->settle();
                check_fifo(*seen);
                grown += w->q.capacity() == 4 ? 1 : 0;
            });
        },
        opts);
}

TEST(WsDequeModelTest, GrowWhileThiefSteals) {
    constexpr int bound = 3;
    int grown = 0;
    auto r = grow_while_thief_steals({.preemption_bound = bound}, grown);
    mc::report("grow during steals", r);
    EXPECT_TRUE(mc::passed(r));
    std::printf("[ model    ] the buffer grew in %d of them\n", grown);
    EXPECT_GT(grown, 0);
}

TEST(WsDequeModelTest, GrowWhileThiefStealsTso) {
    constexpr int bound = 2;
    int grown = 0;
    auto r =
        grow_while_thief_steals({.preemption_bound = bound, .model = mc::memory_model::tso}, grown);
    mc::report("grow during steals", r);
    EXPECT_TRUE(mc::passed(r));
    std::printf("[ model    ] the buffer grew in %d of them\n", grown);
    EXPECT_GT(grown, 0);
}

TEST(WsDequeModelTest, TwoThievesAndOwner) {
    // Thieves race each other (abort and retry) and the owner for two items.
    constexpr int bound = 4;
    auto r = mc::explore(
        [](mc::program& p) {
            auto w = std::make_shared<world>(2);
            auto seen = std::make_shared<std::array<std::vector<int>, 2>>();
            p.thread([w] {
                w->push(0);
                w->push(1);
                w->took(w->q.pop());
            });
            for (int t = 0; t < 2; ++t)
                p.thread([w, seen, t] {
                    if (int* x = w->steal()) (*seen)[static_cast<std::size_t>(t)].push_back(*x);
                });
            p.finally([w](const std::vector<bool>&) { w->settle(); });
        },
        {.preemption_bound = bound});
    mc::report("owner + 2 thieves", r);
    EXPECT_TRUE(mc::passed(r));
}

TEST(WsDequeModelTest, CheckerFindsDuplicateFromPopWithoutLastElementCas) {
    // The same last-element program as above, with the CAS left out of pop():
    // the owner and the thief can both take item 0. The checker must find it.
    // The shortest counterexample needs three preemptions: the thief reads
    // top_ and bottom_ after the push; the owner lowers bottom_ and reads top_;
    // the thief wins its CAS; the owner overwrites top_ and takes the item too.
    auto r = mc::explore(
        [](mc::program& p) {
            auto w = std::make_shared<world>(2);
            p.thread([w] {
                w->push(0);
                w->took(detail::ws_deque_test_access::pop_without_last_cas(w->q));
            });
            p.thread([w] { w->steal(); });
            p.finally([w](const std::vector<bool>&) { w->settle(); });
        },
        {.preemption_bound = 3});
    mc::report("broken pop (no last-element CAS)", r);
    ASSERT_TRUE(r.failed) << "the checker missed a known duplication bug";
    EXPECT_EQ(r.failure, "item 0 taken 2 times");
    std::printf("counterexample:\n%s", r.trace.c_str());
}

}  // namespace

namespace {

TEST(WsDequeModelTest, CheckerFindsMissingPopFenceOnlyUnderTso) {
    // Without the barrier, the owner's reservation (bottom_ lowered) can still be
    // in its store buffer when it reads top_; a thief that steals item 0 and then
    // reads the stale bottom_ takes item 1, which the owner took too. Sequential
    // consistency cannot show this, TSO must.
    constexpr int bound = 3;
    auto sc = owner_and_thief_two_items(pop_variant::no_fence, {.preemption_bound = bound});
    mc::report("pop without fence", sc);
    EXPECT_TRUE(mc::passed(sc));
    auto tso = owner_and_thief_two_items(
        pop_variant::no_fence, {.preemption_bound = bound, .model = mc::memory_model::tso});
    mc::report("pop without fence", tso);
    ASSERT_TRUE(tso.failed) << "the checker missed the missing fence under TSO";
    EXPECT_EQ(tso.failure, "item 1 taken 2 times");
    std::printf("counterexample:\n%s", tso.trace.c_str());
}

}  // namespace
