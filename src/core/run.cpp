// run(), options, backend selection, and the small public helpers of core.
#include "backend_factories.hpp"
#include "scheduler_internal.hpp"

#include <uthreads/runtime.hpp>
#include <uthreads/spawn.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace uthreads {

namespace detail {

namespace {
// Clears tls_scheduler however run_root leaves.
struct tls_scheduler_guard {
    explicit tls_scheduler_guard(scheduler* s) { tls_scheduler = s; }
    ~tls_scheduler_guard() { tls_scheduler = nullptr; }
    tls_scheduler_guard(const tls_scheduler_guard&) = delete;
    tls_scheduler_guard& operator=(const tls_scheduler_guard&) = delete;
};

constexpr unsigned max_threads = 1024;

std::string chosen_backend(const options& opts) {
    if (!opts.backend.empty()) return opts.backend;
    if (const char* env = std::getenv("UTHREADS_BACKEND"); env && *env) return env;
    return available_backends().front();
}
}  // namespace

void run_root(std::coroutine_handle<> frame, promise_base* root, const options& opts) {
    if (tls_scheduler)
        throw std::logic_error(
            "uthreads::run: a runtime is already running on this thread (run() does not nest; "
            "use co_await or spawn inside it)");
    unsigned threads = opts.threads;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    if (threads > max_threads)
        throw std::invalid_argument("uthreads::run: options.threads = " +
                                    std::to_string(opts.threads) + " is more than " +
                                    std::to_string(max_threads));
    if (threads > 1) {
        // Several workers (worker_group, in scheduler.cpp). The single-threaded
        // path below is untouched by it.
        worker_group g(threads, chosen_backend(opts), opts.seed);
        tls_scheduler_guard guard(g.workers[0].get());
        g.run(frame, root);
        return;
    }
    std::unique_ptr<lowlevel::backend> b = lowlevel::make_backend(chosen_backend(opts));
    scheduler s(*b, opts.seed, b->shuffles_ready_queue());
    tls_scheduler_guard guard(&s);
    microthread* m = s.spawn(frame, root, "main");
    s.link_ = std::make_shared<runtime_link>(1);
    s.link_->workers[0] = &s;
    // Also if the loop throws: a handle kept by another thread must not reach s.
    struct closer {
        runtime_link& l;
        ~closer() { l.close(); }
    } close_on_exit{*s.link_};
    s.run_until_done(m);
    s.close_link_and_drain();
    // run() owns main's frame (it takes the value from it) and rethrows its
    // exception itself.
    m->frame = {};
    m->error_observed = true;
    release(m);
}

clock::duration checked_duration(clock::duration d, const char* what) {
    if (d < clock::duration::zero())
        throw std::invalid_argument(std::string("uthreads: ") + what + " must not be negative (got " +
                                    std::to_string(std::chrono::duration<double>(d).count()) +
                                    " s)");
    return d;
}

void throw_empty_task() {
    throw std::logic_error(
        "uthreads::task: awaiting an empty task (moved-from, or already awaited)");
}
void throw_joined_twice() {
    throw std::logic_error("uthreads::join_handle: microthread already joined");
}
void throw_empty_handle(const char* what) {
    throw std::logic_error(std::string("uthreads::") + what + ": empty (moved-from or default) handle");
}

namespace {
std::mutex handler_mu;
unhandled_exception_handler& handler_slot() {
    static unhandled_exception_handler h;
    return h;
}
void default_handler(std::string_view name, std::exception_ptr e) {
    std::string what = "unknown exception";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        what = ex.what();
    } catch (...) {
    }
    std::fprintf(stderr, "uthreads: unhandled exception in microthread '%.*s': %s\n",
                 static_cast<int>(name.size()), name.data(), what.c_str());
}
}  // namespace

void report_unhandled(const std::string& name, std::exception_ptr e) noexcept {
    // A cancellation is how a microthread is asked to stop: not an error.
    try {
        std::rethrow_exception(e);
    } catch (const cancelled&) {
        return;
    } catch (...) {
    }
    unhandled_exception_handler h;
    {
        std::lock_guard lk(handler_mu);
        h = handler_slot();
    }
    try {
        if (h)
            h(name, e);
        else
            default_handler(name, e);
    } catch (...) {
        std::fprintf(stderr, "uthreads: the unhandled-exception handler threw\n");
    }
}

}  // namespace detail

unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h) {
    std::lock_guard lk(detail::handler_mu);
    return std::exchange(detail::handler_slot(), std::move(h));
}

std::vector<std::string> available_backends() {
    std::vector<std::string> out;
    for (const auto& f : detail::backend_factories())
        if (!f.usable || f.usable()) out.emplace_back(f.name);
    return out;
}

std::string_view current_backend() {
    detail::scheduler* s = detail::tls_scheduler;
    if (!s) throw std::logic_error("uthreads::current_backend: no runtime is running on this thread");
    return s->backend().name();
}

clock::time_point now() {
    if (detail::scheduler* s = detail::tls_scheduler) return s->now();
    return clock::now();
}

}  // namespace uthreads

namespace uthreads::lowlevel {

std::unique_ptr<backend> make_backend(std::string_view name) {
    std::string names;
    for (const auto& f : detail::backend_factories()) {
        if (name == f.name) return f.make();
        if (!names.empty()) names += ", ";
        names += f.name;
    }
    for (const auto& m : detail::missing_backends())
        if (name == m.name)
            throw std::invalid_argument("uthreads: backend '" + std::string(name) +
                                        "' was not compiled into this build: " + m.library +
                                        " was missing at build time (available: " + names + ")");
    throw std::invalid_argument("uthreads: unknown backend '" + std::string(name) +
                                "' (available: " + names + ")");
}

}  // namespace uthreads::lowlevel

namespace uthreads::lowlevel {

void backend::submit(completion_op&) {
    throw std::logic_error("uthreads: backend '" + std::string(name()) +
                           "' has no completion operations (supports_completions() is false)");
}

void backend::cancel(completion_op&) noexcept {}

}  // namespace uthreads::lowlevel
