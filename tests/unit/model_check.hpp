// A small stateless model checker for the lock-free pieces in detail/ (ws_deque,
// parker), in the spirit of CHESS (Musuvathi and Qadeer: iterative context
// bounding) and of loom / relacy / CDSChecker, cut down to what those pieces need.
//
// How it works:
//
// - A test describes a *program*: 2–4 small threads (std::function bodies) over
//   freshly built shared state, and a final check. The algorithms under test are
//   instantiated with `mc::atomics` (see detail/atomic_policy.hpp) instead of
//   `std::atomic`, so the code being checked is the code that ships.
// - Every operation on an `mc::atomics::atomic` is a *scheduling point*: the
//   running thread hands control back to the checker, which decides which thread
//   performs the next atomic operation. Threads are ucontext fibers on one OS
//   thread, so exactly one runs at a time and each atomic operation is indivisible.
// - The checker enumerates schedules depth-first by re-execution: each run
//   replays a prefix of decisions, then lets the running thread continue
//   (non-preemptive default); afterwards it backtracks to the deepest decision
//   with an untried alternative. Switching away from a thread that could have
//   continued is a *preemption*; only schedules with at most `preemption_bound`
//   preemptions are explored (CHESS's observation: most concurrency bugs need
//   very few). Switches forced by a thread finishing or blocking are free. With
//   an unbounded bound (`unbounded`) the enumeration is exhaustive.
// - A thread can block (`mc::block_until(pred)`): it is not scheduled until the
//   predicate holds. This models sleeping in a backend until wake(). When no
//   thread can run, the execution has *quiesced*; blocked threads are unwound
//   (block_until throws) and the program's final check runs. Quiescing with work
//   left over is exactly a lost wake-up.
//
// Memory models. `memory_model::sc` (the default): every atomic operation is
// sequentially consistent, whatever order the code asks for, and fences are
// no-ops. That checks the algorithms' *logic* (the arbitration on top_, the
// announce/re-check order) but not that their memory orders suffice.
// `memory_model::tso` adds the one reordering x86 performs, store→load, the way
// x86-TSO (Sewell et al.) describes it: each thread's stores go into a FIFO store
// buffer; its own loads read the newest buffered value for that location, others
// read memory; a seq_cst fence, a seq_cst store (an xchg on x86) and every
// read-modify-write (a locked instruction) first drain the thread's buffer.
// Draining the oldest entry of a buffer is an extra schedulable action, so the
// search also decides *when* stores become visible. The default schedule drains
// each store right after it is made (so with no deviations TSO runs like SC), and
// keeping a store buffered while the thread runs on, or while another thread
// runs, is a deviation that counts against the preemption bound like a context
// switch. In this mode, replacing ws_deque::pop()'s seq_cst exchange by a plain
// store is caught (see ws_deque_model_test.cpp).
//
// What neither mode explores: the reorderings C++ allows beyond TSO (load→load,
// store→store, non-multi-copy-atomic stores as on POWER/ARM). For those the orders
// are argued in the source after Lê et al., and exercised by the stress tests
// (under TSan for data races).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ucontext.h>

#include <gtest/gtest.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UTHREADS_MC_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define UTHREADS_MC_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UTHREADS_MC_ASAN)
#define UTHREADS_MC_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(UTHREADS_MC_TSAN)
#define UTHREADS_MC_TSAN 1
#endif

#ifdef UTHREADS_MC_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef UTHREADS_MC_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace mc {

inline constexpr int unbounded = 1 << 30;

enum class memory_model { sc, tso };

struct options {
    int preemption_bound = 2;
    memory_model model = memory_model::sc;
    std::size_t max_executions = 5'000'000;  // a safety net; hitting it is a failure
    std::size_t max_steps = 20'000;          // per execution; exceeding it = livelock
};

struct result {
    options opts;                // what was explored
    std::size_t executions = 0;  // complete interleavings run
    std::size_t max_depth = 0;   // most scheduling decisions in one execution
    bool failed = false;
    std::string failure;  // the first failed check
    std::string trace;    // the failing schedule: one "T<i> <op>" per atomic operation
};

/// What one execution consists of; filled in by the test's setup function.
class program {
public:
    /// Adds a thread. Threads are numbered in the order they are added.
    void thread(std::function<void()> body) { threads_.push_back(std::move(body)); }
    /// Runs in the checker once the execution has quiesced; `blocked[i]` tells
    /// whether thread i ended blocked (rather than finished).
    void finally(std::function<void(const std::vector<bool>& blocked)> check) {
        final_ = std::move(check);
    }

private:
    friend class engine;
    std::vector<std::function<void()>> threads_;
    std::function<void(const std::vector<bool>&)> final_;
};

class engine;
inline engine* current_engine = nullptr;

/// Thrown out of block_until() to unwind a thread that stays blocked forever.
struct thread_killed {};

class engine {
public:
    explicit engine(options opts)
        : opts_(opts) {}

    result explore(const std::function<void(program&)>& setup) {
        current_engine = this;
        result_.opts = opts_;
#ifdef UTHREADS_MC_TSAN
        main_fiber_ = __tsan_get_current_fiber();
#endif
        for (;;) {
            run_one(setup);
            ++result_.executions;
            if (result_.failed) {
                // Replay the failing schedule, this time writing down every
                // operation and the values it saw (executions are deterministic).
                prefix_.clear();
                for (const step& s : steps_) prefix_.push_back(s.chosen);
                verbose_ = true;
                const std::string first = result_.failure;
                result_.failed = false;
                result_.failure.clear();
                run_one(setup);
                if (!result_.failed)
                    result_.failure = first + " (the replay did not reproduce it)";
                else if (result_.failure != first)
                    result_.failure = first + " (the replay diverged: " + result_.failure + ")";
                result_.failed = true;
                break;
            }
            if (result_.executions >= opts_.max_executions) {
                result_.failed = true;
                result_.failure = "max_executions reached before the search finished";
                break;
            }
            if (!backtrack()) break;
        }
        current_engine = nullptr;
        return result_;
    }

    // ---- called from the threads under test ------------------------------------

    bool in_thread() const noexcept {
        return current_ >= 0;
    }

    /// True when stores of the running thread go through its store buffer.
    bool buffering() const noexcept {
        return opts_.model == memory_model::tso && current_ >= 0;
    }

    /// TSO: a store by the running thread enters its buffer.
    void buffer_store(void* addr, const void* value, std::size_t size) {
        pending_store st{addr, 0, size};
        std::memcpy(&st.bits, value, size);
        threads_[static_cast<std::size_t>(current_)].buffer.push_back(st);
    }

    /// TSO: a load by the running thread sees its own newest buffered store to
    /// `addr`, if any (store-to-load forwarding); returns false otherwise.
    bool forward(const void* addr, void* out, std::size_t size) const noexcept {
        if (!buffering()) return false;
        const auto& buf = threads_[static_cast<std::size_t>(current_)].buffer;
        for (auto it = buf.rbegin(); it != buf.rend(); ++it)
            if (it->addr == addr) {
                std::memcpy(out, &it->bits, size);
                return true;
            }
        return false;
    }

    /// TSO: fences, seq_cst stores and read-modify-writes drain the running
    /// thread's buffer to memory first.
    void drain() noexcept {
        if (!buffering()) return;
        auto& buf = threads_[static_cast<std::size_t>(current_)].buffer;
        while (!buf.empty()) commit_oldest(buf);
    }
    int self() const noexcept {
        return current_;
    }

    /// A scheduling point before an atomic operation named `op`.
    void point(const char* op) noexcept {
        if (current_ < 0) return;  // setup or final check: no scheduling
        threads_[static_cast<std::size_t>(current_)].next_op = op;
        to_main(false);
    }

    void block_until(std::function<bool()> ready) {
        if (current_ < 0) return;
        thread_rec& t = threads_[static_cast<std::size_t>(current_)];
        t.blocked_on = std::move(ready);
        t.next_op = "wake";
        to_main(false);
        t.blocked_on = nullptr;
        if (t.killed) throw thread_killed{};
    }

    /// Only while replaying a failing schedule: details for the current trace line.
    bool verbose() const noexcept {
        return verbose_ && current_ >= 0;
    }
    void note(const std::string& detail) {
        if (verbose() && !trace_.empty()) trace_.back() += detail;
    }

    void check(bool ok, const std::string& what) {
        if (!ok && failure_.empty()) failure_ = what;
    }

private:
    struct pending_store {
        void* addr;
        std::uint64_t bits;
        std::size_t size;
    };
    static void commit_oldest(std::deque<pending_store>& buf) noexcept {
        std::memcpy(buf.front().addr, &buf.front().bits, buf.front().size);
        buf.pop_front();
    }

    struct thread_rec {
        std::deque<pending_store> buffer;  // TSO only
        std::function<void()> body;
        ucontext_t ctx{};
        std::unique_ptr<char[]> stack;
        std::function<bool()> blocked_on;
        const char* next_op = "start";
        bool finished = false;
        bool killed = false;
#ifdef UTHREADS_MC_TSAN
        void* fiber = nullptr;
#endif
    };

    struct step {
        std::uint32_t enabled;  // bit i: thread i could run; bit n+i: its buffer could drain
        int prev;               // thread that ran the previous step (-1 at the start)
        int fallback;           // the non-preemptive default choice
        bool active;            // prev could continue (run, or drain its buffer)
        int chosen;
        int preemptions;  // preemptions before this step
    };

    static constexpr std::size_t stack_size = std::size_t{256} * 1024;

    bool enabled(const thread_rec& t) const {
        return !t.finished && (!t.blocked_on || t.blocked_on());
    }

    void run_one(const std::function<void(program&)>& setup) {
        program p;
        setup(p);
        failure_.clear();
        steps_.clear();
        const std::size_t n = p.threads_.size();
        if (n > 16) throw std::invalid_argument("mc::explore: at most 16 threads");
        if (threads_.size() < n) threads_.resize(n);
        for (std::size_t i = 0; i < n; ++i) start_thread(i, std::move(p.threads_[i]));
        threads_.resize(n);
        // Run each thread up to its first atomic operation. What a thread does
        // before that touches nothing shared, so the order of these starts does
        // not matter and they are not scheduling decisions.
        for (std::size_t i = 0; i < n; ++i) resume(static_cast<int>(i));

        int prev = -1;
        int preemptions = 0;
        bool livelock = false;
        for (;;) {
            std::uint32_t mask = 0;
            for (std::size_t i = 0; i < n; ++i) {
                if (enabled(threads_[i])) mask |= 1u << i;
                if (!threads_[i].buffer.empty())
                    mask |= 1u << (n + i);  // action n+i: flush thread i's oldest store
            }
            if (mask == 0) break;
            if (steps_.size() >= opts_.max_steps) {
                livelock = true;
                break;
            }
            // The default: drain the running thread's store buffer (so that with
            // no deviations TSO behaves like SC), else let it continue, else the
            // lowest runnable thread. Anything else, while the running thread
            // could still do one of those, is a preemption.
            const bool prev_runs = prev >= 0 && (mask >> prev & 1);
            const bool prev_drains =
                prev >= 0 && (mask >> (n + static_cast<std::size_t>(prev)) & 1);
            const bool active = prev_runs || prev_drains;
            const int fallback = prev_drains ? static_cast<int>(n) + prev
                                 : prev_runs ? prev
                                             : __builtin_ctz(mask);
            int choice = fallback;
            if (steps_.size() < prefix_.size()) {
                choice = prefix_[steps_.size()];
                if (!(mask >> choice & 1)) {
                    failure_ = "the program is not deterministic: replay diverged";
                    livelock = true;
                    break;
                }
            }
            steps_.push_back({mask, prev, fallback, active, choice, preemptions});
            if (active && choice != fallback) ++preemptions;
            if (static_cast<std::size_t>(choice) >= n) {
                // A store becomes visible. It is not a thread, so the thread that
                // ran before it stays the default to continue.
                auto& buf = threads_[static_cast<std::size_t>(choice) - n].buffer;
                if (verbose_)
                    trace_.push_back("T" + std::to_string(choice - static_cast<int>(n)) +
                                     " flush: its oldest buffered store reaches memory");
                commit_oldest(buf);
                continue;
            }
            if (verbose_)
                trace_.push_back("T" + std::to_string(choice) + " " +
                                 threads_[static_cast<std::size_t>(choice)].next_op);
            resume(choice);
            prev = choice;
        }
        result_.max_depth = std::max(result_.max_depth, steps_.size());

        std::vector<bool> blocked(n);
        for (std::size_t i = 0; i < n; ++i) blocked[i] = !threads_[i].finished;
        if (livelock) {
            if (failure_.empty()) failure_ = "an execution exceeded max_steps (livelock?)";
            // Threads stopped inside noexcept code cannot be unwound; leave them
            // (this only happens on a failing run).
            for (auto& t : threads_) t.finished = true;
        } else {
            // Unwind every thread still blocked so its stack objects are destroyed.
            for (std::size_t i = 0; i < n; ++i) {
                if (threads_[i].finished) continue;
                threads_[i].killed = true;
                threads_[i].blocked_on = nullptr;
                resume(static_cast<int>(i));
            }
            if (p.final_) p.final_(blocked);
        }
        for (auto& t : threads_) destroy_fiber(t);

        if (!failure_.empty()) {
            result_.failed = true;
            result_.failure = failure_;
            result_.trace.clear();
            for (const std::string& line : trace_) result_.trace += line + "\n";
        }
        trace_.clear();
    }

    // Chooses the next schedule: the deepest step with an untried alternative
    // that stays within the preemption bound. Alternatives at a step are tried in
    // the order: fallback, then the other enabled threads by increasing index.
    bool backtrack() {
        while (!steps_.empty()) {
            const step s = steps_.back();
            steps_.pop_back();
            const int cost = s.active ? 1 : 0;  // every non-fallback choice preempts
            if (s.preemptions + cost > opts_.preemption_bound) continue;
            for (int t = (s.chosen == s.fallback ? 0 : s.chosen + 1); t < 32; ++t) {
                if (t == s.fallback || !(s.enabled >> t & 1)) continue;
                prefix_.clear();
                for (const step& earlier : steps_) prefix_.push_back(earlier.chosen);
                prefix_.push_back(t);
                return true;
            }
        }
        return false;
    }

    // ---- fibers ---------------------------------------------------------------

    void start_thread(std::size_t i, std::function<void()> body) {
        thread_rec& t = threads_[i];
        t.body = std::move(body);
        t.blocked_on = nullptr;
        t.next_op = "start";
        t.finished = false;
        t.killed = false;
        t.buffer.clear();
        if (!t.stack) t.stack = std::make_unique<char[]>(stack_size);
#ifdef UTHREADS_MC_ASAN
        // A previous thread may have left redzones of its frames poisoned here.
        __asan_unpoison_memory_region(t.stack.get(), stack_size);
#endif
        getcontext(&t.ctx);
        t.ctx.uc_stack.ss_sp = t.stack.get();
        t.ctx.uc_stack.ss_size = stack_size;
        t.ctx.uc_link = nullptr;
        makecontext(&t.ctx, &engine::trampoline, 0);
#ifdef UTHREADS_MC_TSAN
        t.fiber = __tsan_create_fiber(0);
#endif
    }

    void destroy_fiber([[maybe_unused]] thread_rec& t) {
#ifdef UTHREADS_MC_TSAN
        if (t.fiber != nullptr) __tsan_destroy_fiber(t.fiber);
        t.fiber = nullptr;
#endif
        t.body = nullptr;
    }

    static void trampoline() {
        engine& e = *current_engine;
#ifdef UTHREADS_MC_ASAN
        __sanitizer_finish_switch_fiber(nullptr, &e.main_stack_bottom_, &e.main_stack_size_);
#endif
        thread_rec& t = e.threads_[static_cast<std::size_t>(e.current_)];
        try {
            t.body();
        } catch (const thread_killed&) {
        } catch (...) {
            e.check(false, "a thread threw an exception");
        }
        t.finished = true;
        e.to_main(true);  // never returns
    }

    // From the checker (main context) into thread i, until its next point.
    void resume(int i) {
        thread_rec& t = threads_[static_cast<std::size_t>(i)];
        current_ = i;
#ifdef UTHREADS_MC_ASAN
        void* fake_stack = nullptr;
        __sanitizer_start_switch_fiber(&fake_stack, t.stack.get(), stack_size);
#endif
#ifdef UTHREADS_MC_TSAN
        __tsan_switch_to_fiber(t.fiber, 0);
#endif
        swapcontext(&main_ctx_, &t.ctx);
#ifdef UTHREADS_MC_ASAN
        __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
        current_ = -1;
    }

    // From the running thread back to the checker.
    void to_main(bool exiting) noexcept {
        thread_rec& t = threads_[static_cast<std::size_t>(current_)];
#ifdef UTHREADS_MC_ASAN
        void* fake_stack = nullptr;
        __sanitizer_start_switch_fiber(exiting ? nullptr : &fake_stack, main_stack_bottom_,
                                       main_stack_size_);
#else
        (void)exiting;
#endif
#ifdef UTHREADS_MC_TSAN
        __tsan_switch_to_fiber(main_fiber_, 0);
#endif
        swapcontext(&t.ctx, &main_ctx_);
#ifdef UTHREADS_MC_ASAN
        __sanitizer_finish_switch_fiber(fake_stack, &main_stack_bottom_, &main_stack_size_);
#endif
    }

    options opts_;
    result result_;
    std::string failure_;
    std::vector<thread_rec> threads_;
    std::vector<step> steps_;
    std::vector<int> prefix_;
    bool verbose_ = false;            // replaying a failure: keep a trace
    std::vector<std::string> trace_;  // one line per step, only when verbose_
    int current_ = -1;
    ucontext_t main_ctx_{};
#ifdef UTHREADS_MC_ASAN
    const void* main_stack_bottom_ = nullptr;
    std::size_t main_stack_size_ = 0;
#endif
#ifdef UTHREADS_MC_TSAN
    void* main_fiber_ = nullptr;
#endif
};

/// Explores every schedule of the program that `setup` builds (called afresh for
/// each execution), within the preemption bound. The environment variable
/// UTHREADS_MC_MIN_BOUND=k raises every bound below k to k, for a deeper
/// (slower) run than the default test suite does.
inline result explore(const std::function<void(program&)>& setup, options opts = {}) {
    if (const char* env = std::getenv("UTHREADS_MC_MIN_BOUND"))
        opts.preemption_bound = std::max(opts.preemption_bound, std::atoi(env));
    engine e(opts);
    return e.explore(setup);
}

/// Records a failure of the current execution (first one wins); usable from the
/// threads and from the final check.
inline void check(bool ok, const std::string& what) {
    current_engine->check(ok, what);
}

/// Blocks the calling thread until `ready()` holds. `ready` is evaluated by the
/// checker between steps: it must not perform scheduling points (use peek()).
inline void block_until(std::function<bool()> ready) {
    current_engine->block_until(std::move(ready));
}

/// Index of the running thread.
inline int self() {
    return current_engine->self();
}

/// The instrumented atomics policy (see detail/atomic_policy.hpp). Under
/// memory_model::sc memory orders are accepted and ignored; under ::tso only
/// "is it seq_cst" matters (for stores and fences), as on x86.
struct atomics {
    template <class T>
    class atomic {
    public:
        atomic() noexcept
            : v_{} {}
        atomic(T v) noexcept  // NOLINT(google-explicit-constructor): like std::atomic
            : v_(v) {}
        atomic(const atomic&) = delete;
        atomic& operator=(const atomic&) = delete;

        // The size of the value itself, also when T is a pointer type.
        static constexpr std::size_t bytes = sizeof(T);  // NOLINT(bugprone-sizeof-expression)
        static_assert(std::is_trivially_copyable_v<T> && bytes <= sizeof(std::uint64_t));

        T load(std::memory_order = std::memory_order_seq_cst) const noexcept {
            at("load");
            T v = v_;
            if (current_engine != nullptr && current_engine->forward(&v_, &v, bytes))
                note(" (own buffer)");
            note(" -> " + show(v));
            return v;
        }
        void store(T v, std::memory_order o = std::memory_order_seq_cst) noexcept {
            at("store");
            if (current_engine != nullptr && current_engine->buffering()) {
                if (o == std::memory_order_seq_cst) {
                    current_engine->drain();  // an xchg: drains, then writes memory
                } else {
                    current_engine->buffer_store(&v_, &v, bytes);
                    note(" " + show(v) + " (into the store buffer)");
                    return;
                }
            }
            v_ = v;
            note(" " + show(v));
        }
        T exchange(T v, std::memory_order = std::memory_order_seq_cst) noexcept {
            rmw("exchange");
            note(" " + show(v) + " (was " + show(v_) + ")");
            return std::exchange(v_, v);
        }
        bool compare_exchange_strong(T& expected, T desired, std::memory_order,
                                     std::memory_order) noexcept {
            rmw("cas");
            if (v_ == expected) {
                note(" " + show(expected) + " -> " + show(desired) + " succeeded");
                v_ = desired;
                return true;
            }
            note(" " + show(expected) + " -> " + show(desired) + " failed (saw " + show(v_) + ")");
            expected = v_;
            return false;
        }
        bool compare_exchange_strong(T& expected, T desired,
                                     std::memory_order o = std::memory_order_seq_cst) noexcept {
            return compare_exchange_strong(expected, desired, o, o);
        }
        T fetch_add(T d, std::memory_order = std::memory_order_seq_cst) noexcept {
            rmw("fetch_add");
            note(" " + show(d) + " (was " + show(v_) + ")");
            return std::exchange(v_, static_cast<T>(v_ + d));
        }
        T fetch_sub(T d, std::memory_order = std::memory_order_seq_cst) noexcept {
            rmw("fetch_sub");
            note(" " + show(d) + " (was " + show(v_) + ")");
            return std::exchange(v_, static_cast<T>(v_ - d));
        }

        /// The value, without a scheduling point: for block_until predicates,
        /// setup and final checks.
        T peek() const noexcept { return v_; }

    private:
        static void at(const char* op) noexcept {
            if (current_engine != nullptr) current_engine->point(op);
        }
        static void note(const std::string& detail) {
            if (current_engine != nullptr && current_engine->verbose())
                current_engine->note(detail);
        }
        static std::string show(T v) {
            if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else if constexpr (std::is_enum_v<T>) {
                return std::to_string(static_cast<long long>(v));
            } else if constexpr (std::is_pointer_v<T>) {
                if (v == nullptr) return "null";
                if constexpr (std::is_arithmetic_v<std::remove_pointer_t<T>>)
                    return "&" + std::to_string(*v);  // e.g. &3: the item whose value is 3
                return "ptr";
            } else {
                return std::to_string(v);
            }
        }
        // A read-modify-write: a locked instruction, which drains the buffer.
        static void rmw(const char* op) noexcept {
            at(op);
            if (current_engine != nullptr) current_engine->drain();
        }
        T v_;
    };

    /// SC: a fence orders nothing more, and is not even a scheduling point.
    /// TSO: a seq_cst fence (mfence) drains the store buffer; weaker fences are
    /// free on x86.
    static void fence(std::memory_order o) noexcept {
        if (current_engine != nullptr && current_engine->buffering()) {
            current_engine->point("fence");
            if (o == std::memory_order_seq_cst) current_engine->drain();
        }
    }
};

// ---- GoogleTest glue ---------------------------------------------------------

/// `EXPECT_TRUE(mc::passed(r))`: on failure, prints the failed check and the
/// schedule that led to it.
inline ::testing::AssertionResult passed(const result& r) {
    if (!r.failed) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << r.failure << "\nschedule:\n" << r.trace;
}

/// Logs how much was explored (and records it as a test property).
inline void report(const char* name, const result& r) {
    const int bound = r.opts.preemption_bound;
    std::printf("[ model    ] %s (%s): %zu interleavings, preemption bound %s, deepest %zu steps\n",
                name, r.opts.model == memory_model::tso ? "TSO" : "SC", r.executions,
                bound >= unbounded ? "none" : std::to_string(bound).c_str(), r.max_depth);
    ::testing::Test::RecordProperty("interleavings", static_cast<int>(r.executions));
}

}  // namespace mc
