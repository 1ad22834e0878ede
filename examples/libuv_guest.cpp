// libuv_guest — microthreads inside an ordinary libuv program.
//
// The program owns uv_default_loop() and runs it with uv_run(UV_RUN_DEFAULT), as
// any libuv program does. uthreads is attached to that loop as a guest:
//   1. a libuv timer callback completes a ut::promise that a microthread awaits;
//   2. microthreads run a TCP echo over loopback with uthreads sockets (a server
//      microthread, and a client that connects, writes and reads back);
//   3. the client's result is delivered back to a libuv-side callback through
//      spawn_then, which starts another libuv timer, as host code would.
// uv_run returns once the microthreads have finished (the guest keeps the loop
// alive only while it has some), the guest shuts down, and the loop closes with
// uv_loop_close() == 0. Exits non-zero if any check fails.
//
// Examples are built whatever backends the build found; without libuv's header
// this one only says so (a build that has uv.h but excluded the libuv backend
// through UTHREADS_BACKENDS would fail to link it).
#if !__has_include(<uv.h>)
#include <cstdio>
int main() {
    std::puts("libuv_guest: built without libuv (Debian: libuv1-dev); nothing to show");
}
#else

#include <uthreads/backends/libuv.hpp>
#include <uthreads/uthreads.hpp>

#include <uv.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace ut = uthreads;
using namespace std::chrono_literals;

namespace {

int failures = 0;
bool promise_timer_fired = false;      // set by the libuv timer callback
bool resumed_after_the_timer = false;  // what the microthread saw when it resumed

void check(bool ok, const char* what) {
    std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
    if (!ok) ++failures;
}

// Host state: what libuv callbacks and microthreads share.
struct host_state {
    uv_timer_t promise_timer;       // completes `answer` from libuv
    uv_timer_t after_result_timer;  // started by the spawn_then callback
    ut::promise<int> answer;
    std::string delivered;  // set by the spawn_then callback
    bool delivered_on_loop = false;
    bool after_result_fired = false;
};

ut::task<void> echo_server(ut::tcp_listener& listener) {
    ut::tcp_stream s = co_await listener.accept();
    char buf[256];
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) break;  // the client shut down its side: done
        co_await s.write_all(std::string_view(buf, n));
    }
}

// Awaits the promise the libuv timer completes, then does an echo round trip.
ut::task<std::string> client(ut::future<int> answer, std::uint16_t port) {
    int value = co_await answer;  // suspends until the libuv timer callback runs
    resumed_after_the_timer = promise_timer_fired;
    std::printf("microthread: the libuv timer delivered %d\n", value);

    ut::tcp_stream s = co_await ut::tcp_stream::connect("127.0.0.1", port);
    std::string msg = "hello from a microthread, answer " + std::to_string(value);
    co_await s.write_all(msg);
    s.shutdown_write();
    std::string back;
    char buf[64];  // smaller than msg: several reads
    while (std::size_t n = co_await s.read_some(std::span<char>(buf))) back.append(buf, n);
    std::printf("microthread: echoed back \"%s\"\n", back.c_str());
    co_return back;
}

ut::task<std::string> session(ut::future<int> answer) {
    ut::tcp_listener listener = ut::tcp_listener::bind("127.0.0.1", 0);
    auto server = ut::spawn(echo_server(listener), "echo-server");
    std::string r = co_await client(std::move(answer), listener.port());
    co_await server;
    co_return r;
}

}  // namespace

int main() {
    uv_loop_t* loop = uv_default_loop();
    host_state st;
    {
        ut::guest_runtime guest = ut::attach(loop);
        std::printf("attached a %s guest to the default loop\n",
                    std::string(guest.backend_name()).c_str());

        // 1. A libuv timer completes a promise, 20 ms from now.
        uv_timer_init(loop, &st.promise_timer);
        st.promise_timer.data = &st;
        uv_timer_start(
            &st.promise_timer,
            [](uv_timer_t* t) {
                auto* s = static_cast<host_state*>(t->data);
                std::printf("libuv timer: completing the promise\n");
                promise_timer_fired = true;
                s->answer.set_value(42);
                uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
            },
            20, 0);

        // 2 and 3. The echo session, its result handed back to the host.
        guest.spawn_then(
            session(st.answer.get_future()),
            [&st, loop](ut::outcome<std::string> r) {
                // Host code, called on the loop's thread from one of the guest's
                // libuv callbacks: record the result, then go on with libuv.
                st.delivered = r.has_value() ? r.value() : std::string("<exception>");
                st.delivered_on_loop = true;
                uv_timer_init(loop, &st.after_result_timer);
                st.after_result_timer.data = &st;
                uv_timer_start(
                    &st.after_result_timer,
                    [](uv_timer_t* t) {
                        static_cast<host_state*>(t->data)->after_result_fired = true;
                        uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
                    },
                    1, 0);
            },
            "session");

        auto t0 = std::chrono::steady_clock::now();
        uv_run(loop, UV_RUN_DEFAULT);  // returns when nothing is left: guest included
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
        std::printf("uv_run returned after %lld ms\n", static_cast<long long>(ms));

        std::printf("checks:\n");
        check(st.delivered_on_loop, "spawn_then delivered the result to a host callback");
        check(st.delivered == "hello from a microthread, answer 42",
              "the echoed text made the round trip through uthreads sockets");
        check(st.after_result_fired, "the host callback could start a libuv timer that ran");
        check(guest.live() == 0, "no microthread left when uv_run returned");
        check(resumed_after_the_timer, "the microthread resumed only after the libuv timer fired");
        guest.shutdown();  // outside uv_run: closes the guest's handles
    }
    uv_run(loop, UV_RUN_DEFAULT);  // runs the close callbacks of the guest's handles
    int rc = uv_loop_close(loop);
    check(rc == 0, "uv_loop_close returned 0: nothing left on the loop");

    std::printf(failures ? "FAILED (%d)\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}

#endif  // __has_include(<uv.h>)
