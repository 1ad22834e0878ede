// glib_guest — microthreads inside a GLib program that owns its main loop.
//
// The host is an ordinary GLib program: a GMainContext, a GMainLoop and a
// g_timeout source. uthreads attaches to the context as a guest; the host keeps
// running g_main_loop_run. A GLib timeout callback completes a promise that a
// microthread awaits; producers sleep and hand values over a channel; the result
// comes back to host code through spawn_then, which quits the loop. Headless,
// well under a second; exits 1 if any check fails.
#include <uthreads/backends/glib.hpp>
#include <uthreads/uthreads.hpp>

#include <glib.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace ut = uthreads;
using namespace std::chrono_literals;

namespace {

// What the host program saw, in order.
std::vector<std::string> log_lines;

void note(std::string line) {
    std::printf("  %s\n", line.c_str());
    log_lines.push_back(std::move(line));
}

ut::task<> producer(int id, std::chrono::milliseconds delay, ut::channel<int>& out) {
    for (int i = 0; i < 3; ++i) {
        co_await ut::sleep_for(delay);
        co_await out.send(id * 100 + i);
    }
}

struct result {
    int from_host = 0;    // the value the GLib timeout delivered through the promise
    int sum = 0;          // sum of everything the producers sent
    int count = 0;        // how many values arrived
    std::string backend;  // what current_backend() says inside the guest
};

// A named coroutine rather than an immediately invoked capturing lambda: the
// lambda object would die before the lazily started coroutine ran.
ut::task<> collect(int expected, ut::channel<int>& in, result& r) {
    for (int i = 0; i < expected; ++i) {
        std::optional<int> v = co_await in.recv();
        if (!v) break;
        r.sum += *v;
        ++r.count;
    }
}

ut::task<result> consumer(ut::future<int> from_host) {
    result r;
    r.backend = std::string(ut::current_backend());
    ut::channel<int> values(1);
    // Three producers at different paces, all on the host's thread.
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        n.spawn(producer(1, 3ms, values));
        n.spawn(producer(2, 5ms, values));
        n.spawn(producer(3, 7ms, values));
        n.spawn(collect(9, values, r));
        co_return;
    });
    note("microthreads: received " + std::to_string(r.count) + " values over the channel");
    r.from_host = co_await from_host;  // set by the GLib timeout callback below
    note("microthreads: the GLib timeout delivered " + std::to_string(r.from_host));
    co_return r;
}

struct host_state {
    GMainLoop* loop = nullptr;
    std::optional<ut::promise<int>> promise;
    std::optional<result> outcome;
    std::string error;
    bool timed_out = false;
};

}  // namespace

int main() {
    std::printf("glib_guest: uthreads as a guest of a GLib main loop\n");
    GMainContext* ctx = g_main_context_new();
    g_main_context_push_thread_default(ctx);  // as a library-owned loop would
    host_state host;
    host.loop = g_main_loop_new(ctx, FALSE);
    host.promise.emplace();
    ut::future<int> from_host = host.promise->get_future();

    {
        ut::guest_runtime rt = ut::attach(ctx);

        // Host callback 1: a GLib timeout completes the promise a microthread awaits.
        GSource* tick = g_timeout_source_new(20);
        g_source_set_callback(
            tick,
            [](gpointer data) -> gboolean {
                auto* h = static_cast<host_state*>(data);
                note("host: g_timeout fired, completing the promise with 42");
                h->promise->set_value(42);
                return G_SOURCE_REMOVE;
            },
            &host, nullptr);
        g_source_attach(tick, ctx);
        g_source_unref(tick);

        // Host callback 2: a watchdog, so a bug fails the run instead of hanging it.
        GSource* watchdog = g_timeout_source_new(1500);
        g_source_set_callback(
            watchdog,
            [](gpointer data) -> gboolean {
                auto* h = static_cast<host_state*>(data);
                h->timed_out = true;
                g_main_loop_quit(h->loop);
                return G_SOURCE_REMOVE;
            },
            &host, nullptr);
        guint watchdog_id = g_source_attach(watchdog, ctx);
        g_source_unref(watchdog);

        // The microthreads' result comes back to host code, which quits the loop.
        rt.spawn_then(
            consumer(std::move(from_host)),
            [&host](ut::outcome<result> r) {
                try {
                    host.outcome = std::move(r.value());
                } catch (const std::exception& e) {
                    host.error = e.what();
                }
                note("host: spawn_then delivered the result; quitting the main loop");
                g_main_loop_quit(host.loop);
            },
            "consumer");

        auto t0 = std::chrono::steady_clock::now();
        g_main_loop_run(host.loop);  // the host owns the loop
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
        std::printf("  main loop ran for %lld ms\n", static_cast<long long>(ms.count()));

        if (!host.timed_out) {
            GSource* w = g_main_context_find_source_by_id(ctx, watchdog_id);
            if (w) g_source_destroy(w);
        }
        rt.shutdown();
    }

    g_main_loop_unref(host.loop);
    g_main_context_pop_thread_default(ctx);
    g_main_context_unref(ctx);

    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        std::printf("  [%s] %s\n", ok ? "ok" : "FAIL", what);
        if (!ok) ++failures;
    };
    check(!host.timed_out, "finished before the watchdog");
    check(host.error.empty(), host.error.empty() ? "no exception" : host.error.c_str());
    check(host.outcome.has_value(), "spawn_then delivered a value");
    if (host.outcome) {
        const result& r = *host.outcome;
        // Producer k sends k*100 + {0,1,2}: 3 values each, 9 in all.
        check(r.count == 9, "nine values crossed the channel");
        check(r.sum == (100 + 200 + 300) * 3 + 3 * (0 + 1 + 2), "their sum is 1809");
        check(r.from_host == 42, "the GLib timeout's value reached the microthread");
        check(r.backend == "glib", "current_backend() is \"glib\" inside the guest");
    }
    bool delivered_last =
        !log_lines.empty() && log_lines.back().rfind("host: spawn_then delivered", 0) == 0;
    check(delivered_last, "the result reached host code last");
    std::printf("glib_guest: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
