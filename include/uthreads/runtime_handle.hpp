/// \file
/// `runtime_handle`: start microthreads on a running runtime from any thread.
///
/// `ut::this_runtime()`, called in a microthread, returns a handle on the
/// runtime that runs it. The handle is a small shared object: copy it to other
/// threads (a thread pool, a callback of a foreign library, a signal thread)
/// and call `spawn` there. The task is queued to one of the runtime's workers
/// (round robin) through its remote queue and started there; the returned
/// `future` carries its value or exception back (`co_await` it in a
/// microthread, of this runtime or another).
///
/// Thread safety: every member may be called from any thread, concurrently.
#pragma once

#include <uthreads/promise.hpp>
#include <uthreads/task.hpp>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace uthreads {

namespace detail {
struct runtime_link;

/// A spawn request on its way to a worker. `start(job, run)` runs on that worker:
/// with `run` it starts the task as a detached microthread, else (the runtime
/// is ending) it fails the future; either way it deletes the job.
struct spawn_job_base {
    void (*start)(spawn_job_base* job, bool run) = nullptr;
};

/// Queue `job` to a worker of `link`'s runtime. Throws std::logic_error if that
/// runtime has ended (then `job` is untouched: the caller deletes it).
void post_spawn(runtime_link& link, spawn_job_base* job);
bool link_running(const runtime_link& link) noexcept;
std::shared_ptr<runtime_link> current_link(const char* what);
/// Start a root frame as a detached microthread on the calling worker.
void spawn_detached_here(std::coroutine_handle<> frame, promise_base* root, std::string name);

template <class T>
task<> deliver_to(task<T> t, promise<T> p) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(t);
            p.set_value();
        } else {
            p.set_value(co_await std::move(t));
        }
    } catch (...) {
        // Also `cancelled` (the runtime ended while it ran): the future rethrows it.
        p.set_exception(std::current_exception());
    }
}

template <class T>
struct spawn_job final : spawn_job_base {
    spawn_job(task<T> t, promise<T> p, std::string n)
        : task_(std::move(t)), promise_(std::move(p)), name(std::move(n)) {
        start = &run_or_fail;
    }
    task<T> task_;
    promise<T> promise_;
    std::string name;

    static void run_or_fail(spawn_job_base* base, bool run) {
        std::unique_ptr<spawn_job> job(static_cast<spawn_job*>(base));
        if (!run) {
            job->promise_.set_exception(std::make_exception_ptr(std::logic_error(
                "uthreads::runtime_handle::spawn: the runtime ended before the task started")));
            return;
        }
        auto h = deliver_to(std::move(job->task_), std::move(job->promise_)).release();
        spawn_detached_here(h, &h.promise(), std::move(job->name));
    }
};
}  // namespace detail

class runtime_handle {
public:
    /// An empty handle; `spawn` on it throws std::logic_error.
    runtime_handle() noexcept = default;
    explicit runtime_handle(std::shared_ptr<detail::runtime_link> link) noexcept
        : link_(std::move(link)) {}

    /// Start `t` as a new microthread on this runtime, from any thread. Returns a
    /// future for its value or exception (`cancelled` if the runtime was shut
    /// down while it ran). Throws std::logic_error if the handle is empty, the
    /// task is empty, or the runtime has ended: its main returned (from then on
    /// it only finishes what already runs). If main returns after the call but
    /// before the task started, the future throws std::logic_error.
    template <class T>
    future<T> spawn(task<T> t, std::string name = {}) {
        if (!link_) throw std::logic_error("uthreads::runtime_handle::spawn: empty handle");
        if (!t.valid()) detail::throw_empty_task();
        promise<T> p;
        future<T> f = p.get_future();
        auto job = std::make_unique<detail::spawn_job<T>>(std::move(t), std::move(p),
                                                          std::move(name));
        detail::post_spawn(*link_, job.get());
        job.release();  // the worker owns it now
        return f;
    }

    /// True until the runtime's main returns (false for an empty handle).
    bool running() const noexcept { return link_ && detail::link_running(*link_); }

private:
    std::shared_ptr<detail::runtime_link> link_;
};

/// The runtime that runs the calling microthread. Throws std::logic_error
/// outside a microthread, and in guest mode (use the guest runtime's own
/// `spawn`/`spawn_then` from host callbacks there).
inline runtime_handle this_runtime() {
    return runtime_handle(detail::current_link("uthreads::this_runtime"));
}

}  // namespace uthreads
