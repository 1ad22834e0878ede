// Private declarations shared by the files of src/core.
#pragma once

#include <uthreads/detail/core.hpp>
#include <uthreads/detail/parker.hpp>
#include <uthreads/detail/ws_deque.hpp>
#include <uthreads/lowlevel/backend.hpp>
#include <uthreads/to_thread.hpp>

#include <algorithm>
#include <atomic>
#include <latch>
#include <memory>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace uthreads::detail {

/// Report an exception nobody will observe to the unhandled-exception handler.
void report_unhandled(const std::string& name, std::exception_ptr e) noexcept;

/// The runtime's pool for blocking calls (`to_thread`). Threads are started on
/// demand up to a limit and joined when the runtime ends.
class blocking_pool {
public:
    static constexpr std::size_t max_threads = 64;
    blocking_pool() = default;
    ~blocking_pool();
    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;

    void submit(blocking_job* job);

private:
    void worker();
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<blocking_job*> queue_;  // guarded by mu_
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;             // guarded by mu_
    bool stop_ = false;                // guarded by mu_
};

/// What a runtime_handle holds: the runtime's workers, while it runs.
struct runtime_link {
    explicit runtime_link(std::size_t workers) : workers(workers) {}
    mutable std::mutex mu;
    bool open = true;                 // guarded by mu
    std::size_t next = 0;             // round robin; guarded by mu
    std::vector<scheduler*> workers;  // set before any microthread runs
    void close() noexcept {
        std::lock_guard lk(mu);
        open = false;
    }
};

/// A multi-threaded runtime (options.threads > 1): N workers, each a scheduler
/// on its own backend, run by its own OS thread (worker 0 on run()'s caller).
/// See docs/threads.md for the rules; in short:
/// - a spawned microthread goes to its spawner's `fresh_` deque; it may be
///   stolen by any worker until it first runs, and then stays on the worker that
///   ran it (its timers, I/O registrations and wait nodes are that worker's);
/// - a wake-up or cancellation from another worker goes through the target
///   worker's remote queue and its backend's wake();
/// - idle workers park in their backend with the parker protocol.
struct worker_group {
    worker_group(std::size_t n, std::string backend, std::uint64_t seed_)
        : backends(n), workers(n), park(n), backend_name(std::move(backend)), seed(seed_),
          ready(static_cast<std::ptrdiff_t>(n)), finished(static_cast<std::ptrdiff_t>(n)),
          link(std::make_shared<runtime_link>(n)) {
        make_worker(0);  // on the caller's thread; throws for an unknown backend
    }
    ~worker_group() { link->close(); }  // also when a worker failed to start
    worker_group(const worker_group&) = delete;
    worker_group& operator=(const worker_group&) = delete;
    std::vector<std::unique_ptr<lowlevel::backend>> backends;
    std::vector<std::unique_ptr<scheduler>> workers;
    parker<> park;
    std::string backend_name;
    std::uint64_t seed;
    std::latch ready, finished;
    /// Counted down by worker 0 once it has connected the backends
    /// (backend::connect_workers); no worker runs before.
    std::latch connected{1};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    std::exception_ptr error;  // a worker could not make its backend
    /// Workers in spin_for_work, and the cores they may use (spin_for_work).
    std::atomic<std::size_t> spinners{0};
    const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
    /// Set when main finished: each worker then cancels the microthreads it runs.
    std::atomic<bool> shutdown{false};
    microthread* main = nullptr;
    std::shared_ptr<runtime_link> link;

    /// Make worker i's backend and scheduler (on the thread that will run it).
    void make_worker(std::size_t i);
    /// Run `frame` as main on worker 0 (this thread) and the others on new
    /// threads, until every microthread finished.
    void run(std::coroutine_handle<> frame, promise_base* root);
    void worker_life(std::size_t i);
    /// After queuing a never-run microthread: wake one parked worker, if any.
    /// Not while a worker spins (spin_for_work): it steals the microthread, or
    /// sees it in the re-check it makes before it parks. (If it misses it in a
    /// race, the only cost is parallelism: every deque's owner drains it before
    /// it sleeps.)
    void notify() {
        if (spinners.load(std::memory_order_relaxed) != 0) return;
        std::size_t w = park.notify_one();
        if (w != parker<>::none) workers[w]->backend().wake();
    }
    void wake_all() {
        for (auto& w : workers) w->backend().wake();
    }
    /// True when every microthread of the runtime has finished. Only meaningful
    /// once `shutdown` is set (main is alive until then). Never true while one
    /// is alive: finishes are read before spawns, and a counted finish was
    /// preceded by its own spawn (see scheduler.cpp). Callers that saw false must
    /// check again after the parker's fence, so the last finish is not missed.
    bool quiescent() const noexcept;
};

/// Frames allocated on one thread and freed on another leave the per-thread
/// counts of live frames unbalanced; a worker thread folds its count into a
/// global one when it ends, and live_frames() adds that in.
void fold_frame_count() noexcept;
/// The same for microthreads (lowlevel::live_microthreads()).
void fold_microthread_count() noexcept;

}  // namespace uthreads::detail
