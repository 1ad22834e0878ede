// consumer — an outside program that uses an installed uthreads exactly as a user
// would: one include, the `uthreads::uthreads` target, nothing private.
//
// It exercises every name of the portable contract (DESIGN.md §2) that the public
// headers provide, checks every result, and exits non-zero with a message on
// stderr at the first mismatch. It runs on whatever backend $UTHREADS_BACKEND
// names (scripts/check-consumer.sh runs it with epoll and sim) and prints the
// backend it ran on. It must stay fast (well under 2 s) on every backend.

#include <uthreads/uthreads.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include <unistd.h>

namespace ut = uthreads;
using namespace std::chrono_literals;

namespace {

// ------------------------------------------------------------------ checking

struct check_failed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const char* g_section = "startup";
int g_checks = 0;

[[noreturn]] void fail(const char* expr, int line) {
    throw check_failed(std::string("[") + g_section + "] line " + std::to_string(line) + ": " +
                       expr);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        ++g_checks;                                                                                \
        if (!(cond)) fail("CHECK(" #cond ")", __LINE__);                                           \
    } while (0)

// CHECK_THROWS(Exception, statement): `statement` (which may co_await) must throw
// exactly that type (or a type derived from it).
#define CHECK_THROWS(Exception, ...)                                                               \
    do {                                                                                           \
        ++g_checks;                                                                                \
        bool caught_ = false;                                                                      \
        try {                                                                                      \
            __VA_ARGS__;                                                                           \
        } catch (const Exception&) {                                                               \
            caught_ = true;                                                                        \
        }                                                                                          \
        if (!caught_) fail("expected " #Exception " from " #__VA_ARGS__, __LINE__);                \
    } while (0)

// Exceptions reported for microthreads nobody joined.
int g_unhandled = 0;
std::string g_unhandled_name;

extern "C" void on_watchdog(int) {
    const char msg[] = "consumer: FAILED: still running after 20 s (hang?)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

// ------------------------------------------------------------------ small tasks

ut::task<int> add(int a, int b) {
    co_await ut::yield_now();
    co_return a + b;
}

ut::task<int> thrower(const char* what) {
    co_await ut::yield_now();
    throw std::runtime_error(what);
}

ut::task<int> slow_int() {
    co_await ut::sleep_for(1h);
    co_return -1;
}

ut::task<> slow_void() {
    co_await ut::sleep_for(1h);
}

ut::task<int> seven_soon() {
    co_await ut::sleep_for(1ms);
    co_return 7;
}

ut::task<std::string> make_string() {
    co_await ut::yield_now();
    co_return std::string("str");
}

ut::task<> nap(std::chrono::milliseconds d) {
    co_await ut::sleep_for(d);
}

// Sleeps "forever"; records how the cancellation arrived.
struct cancel_probe {
    bool started = false;
    bool saw_cancelled = false;
    bool swallowed_by_std_exception = false;
};

ut::task<> sleeper(cancel_probe& p) {
    p.started = true;
    try {
        co_await ut::sleep_for(1h);
    } catch (const std::exception&) {
        p.swallowed_by_std_exception = true;
    } catch (const ut::cancelled&) {
        p.saw_cancelled = true;
        throw;
    }
}

// Yield until `flag` is true (robust against a shuffled ready queue on "sim").
ut::task<> yield_until(const bool& flag) {
    for (int i = 0; i < 1000 && !flag; ++i) co_await ut::yield_now();
    CHECK(flag);
}

ut::task<> set_after_yield(ut::event& e, bool& flag) {
    co_await ut::yield_now();
    flag = true;
    e.set();
}

// ------------------------------------------------------------------ sections

ut::task<> test_runtime_inside() {
    g_section = "run/options/current_backend";
    std::string_view name = ut::current_backend();
    auto names = ut::available_backends();
    CHECK(std::find(names.begin(), names.end(), std::string(name)) != names.end());
    const char* env = std::getenv("UTHREADS_BACKEND");
    if (env && *env)
        CHECK(name == env);
    else
        CHECK(name == names.front());
    co_return;
}

ut::task<> test_task() {
    g_section = "task (nested calls)";
    CHECK(co_await add(2, 3) == 5);
    // A nested call's exception propagates like a function call's.
    CHECK_THROWS(std::runtime_error, co_await thrower("nested"));
    // A deep chain of immediately-ready nested calls runs on a small stack.
    int sum = 0;
    for (int i = 0; i < 10000; ++i) sum += co_await [](int x) -> ut::task<int> { co_return x; }(1);
    CHECK(sum == 10000);
    // Awaiting a moved-from task is an error, not a crash.
    ut::task<int> t = add(1, 1);
    ut::task<int> moved = std::move(t);
    CHECK(!t.valid());
    CHECK(moved.valid());
    CHECK_THROWS(std::logic_error, co_await t);
    CHECK(co_await moved == 2);
}

ut::task<> test_spawn() {
    g_section = "spawn/join_handle";
    // spawn + co_await handle: value.
    ut::join_handle<int> h = ut::spawn(add(20, 22), "adder");
    CHECK(!h.done());  // runs only once we suspend
    CHECK(co_await h == 42);
    CHECK(h.done());
    // Joining twice is an error.
    CHECK_THROWS(std::logic_error, co_await h);

    // co_await handle rethrows the microthread's exception.
    auto bad = ut::spawn(thrower("spawned"), "thrower");
    CHECK_THROWS(std::runtime_error, co_await bad);

    // cancel(): `cancelled` at the next suspension point, not swallowed by
    // catch (std::exception&), rethrown by the join.
    static_assert(!std::is_base_of_v<std::exception, ut::cancelled>);
    cancel_probe probe;
    auto s = ut::spawn(sleeper(probe), "sleeper");
    co_await yield_until(probe.started);  // let it start sleeping
    co_await ut::yield_now();
    CHECK(!s.done());
    s.cancel();
    s.cancel();  // idempotent
    CHECK_THROWS(ut::cancelled, co_await s);
    CHECK(s.done());
    CHECK(probe.saw_cancelled);
    CHECK(!probe.swallowed_by_std_exception);

    // Cancelling before it ever ran.
    cancel_probe early;
    auto s2 = ut::spawn(sleeper(early));
    s2.cancel();
    CHECK_THROWS(ut::cancelled, co_await s2);

    // Dropping the handle detaches: it keeps running.
    ut::event e;
    bool ran = false;
    { auto detached = ut::spawn(set_after_yield(e, ran), "detached"); }
    co_await e.wait();
    CHECK(ran);

    // An exception escaping a detached microthread is reported, with its name.
    const int before = g_unhandled;
    { auto doomed = ut::spawn(thrower("detached failure"), "doomed"); }
    for (int i = 0; i < 100 && g_unhandled == before; ++i) co_await ut::yield_now();
    CHECK(g_unhandled == before + 1);
    CHECK(g_unhandled_name == "doomed");
    g_unhandled = before;
}

ut::task<> yielder(std::vector<char>& log, char tag, int n) {
    for (int i = 0; i < n; ++i) {
        log.push_back(tag);
        co_await ut::yield_now();
    }
}

ut::task<> test_yield_and_time() {
    g_section = "yield_now";
    std::vector<char> log;
    auto a = ut::spawn(yielder(log, 'a', 50));
    auto b = ut::spawn(yielder(log, 'b', 50));
    co_await a;
    co_await b;
    CHECK(log.size() == 100);
    // Interleaved: some b ran before the last a.
    auto first_b = std::find(log.begin(), log.end(), 'b');
    auto last_a = std::find(log.rbegin(), log.rend(), 'a').base();
    CHECK(first_b < last_a);

    g_section = "now/sleep_for/sleep_until";
    auto t0 = ut::now();
    co_await ut::sleep_for(5ms);
    auto t1 = ut::now();
    CHECK(t1 - t0 >= 5ms);  // never early (virtual time on sim, still never early)
    auto deadline = ut::now() + 3ms;
    co_await ut::sleep_until(deadline);
    CHECK(ut::now() >= deadline);
    co_await ut::sleep_until(ut::now() - 1s);  // in the past: returns at once
    CHECK_THROWS(std::invalid_argument, co_await ut::sleep_for(-1ms));
}

ut::task<> bump_after_yield(int& counter) {
    co_await ut::yield_now();
    ++counter;
}

ut::task<> fail_after(std::chrono::milliseconds d) {
    co_await ut::sleep_for(d);
    throw std::runtime_error("child failed");
}

ut::task<> test_nursery() {
    g_section = "with_nursery";
    int counter = 0;
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int i = 0; i < 3; ++i) n.spawn(bump_after_yield(counter), "bump");
        CHECK(n.running() == 3);
        co_return;
    });
    CHECK(counter == 3);  // joined all

    // The first failure cancels the rest and is rethrown.
    cancel_probe probe;
    bool threw = false;
    try {
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            n.spawn(sleeper(probe), "sleeper");
            n.spawn(fail_after(1ms), "failer");
            co_return;
        });
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "child failed";
    }
    CHECK(threw);
    CHECK(probe.saw_cancelled);

    // nursery::cancel() stops everything without failing.
    cancel_probe p2;
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        n.spawn(sleeper(p2));
        co_await yield_until(p2.started);
        n.cancel();
    });
    CHECK(p2.saw_cancelled);
}

ut::task<> test_timeouts() {
    g_section = "with_timeout/move_on_after/timeout_error";
    CHECK(co_await ut::with_timeout(1s, add(1, 2)) == 3);
    auto t0 = ut::now();
    CHECK_THROWS(ut::timeout_error, co_await ut::with_timeout(10ms, slow_int()));
    CHECK(ut::now() - t0 >= 10ms);  // never before the deadline
    CHECK_THROWS(ut::timeout_error, co_await ut::with_timeout(5ms, slow_void()));
    static_assert(std::is_base_of_v<std::exception, ut::timeout_error>);

    std::optional<int> got = co_await ut::move_on_after(1s, add(2, 2));
    CHECK(got && *got == 4);
    std::optional<int> none = co_await ut::move_on_after(5ms, slow_int());
    CHECK(!none);
    bool finished = co_await ut::move_on_after(5ms, slow_void());
    CHECK(!finished);
    finished = co_await ut::move_on_after(1s, nap(1ms));
    CHECK(finished);

    // A timeout inside does not leak out as cancellation of the caller.
    co_await ut::yield_now();
    CHECK_THROWS(std::invalid_argument, co_await ut::with_timeout(-1ms, add(0, 0)));
}

ut::task<> test_when() {
    g_section = "when_all/when_any";
    auto [a, nothing, s] = co_await ut::when_all(add(1, 1), nap(1ms), make_string());
    CHECK(a == 2);
    CHECK(s == "str");
    static_assert(std::is_same_v<decltype(nothing), std::monostate>);

    std::vector<ut::task<int>> many;
    for (int i = 0; i < 5; ++i) many.push_back(add(i, 10));
    std::vector<int> all = co_await ut::when_all(std::move(many));
    CHECK((all == std::vector<int>{10, 11, 12, 13, 14}));

    CHECK_THROWS(std::runtime_error, co_await ut::when_all(add(1, 1), thrower("in when_all")));

    auto any = co_await ut::when_any(slow_int(), seven_soon());
    CHECK(any.index() == 1);
    CHECK(std::get<1>(any) == 7);
}

ut::task<> locker(ut::mutex& m, bool& inside, int& count, bool& overlap) {
    for (int i = 0; i < 50; ++i) {
        auto lock = co_await m.lock();
        CHECK(lock.owns_lock());
        if (inside) overlap = true;
        inside = true;
        co_await ut::yield_now();  // hold it across a suspension
        inside = false;
        ++count;
    }
}

ut::task<> sem_worker(ut::semaphore& s, int& cur, int& peak) {
    co_await s.acquire();
    peak = std::max(peak, ++cur);
    for (int i = 0; i < 3; ++i) co_await ut::yield_now();
    --cur;
    s.release();
}

ut::task<> cv_consumer(ut::mutex& m, ut::condition_variable& cv, bool& ready, int& data,
                       int& seen) {
    auto lock = co_await m.lock();
    co_await cv.wait(lock, [&] { return ready; });
    CHECK(lock.owns_lock());
    seen = data;
}

ut::task<> queue_waiter(ut::wait_queue& q, int& parked, int& woken) {
    ++parked;  // and parks at once: wait() never completes without suspending
    co_await q.wait();
    ++woken;
}

ut::task<> test_primitives() {
    g_section = "mutex";
    {
        ut::mutex m;
        bool inside = false, overlap = false;
        int count = 0;
        auto a = ut::spawn(locker(m, inside, count, overlap));
        auto b = ut::spawn(locker(m, inside, count, overlap));
        co_await a;
        co_await b;
        CHECK(count == 100);
        CHECK(!overlap);
        CHECK(!m.is_locked());
        auto g = m.try_lock();
        CHECK(g.owns_lock());
        CHECK(m.is_locked());
        CHECK(!m.try_lock().owns_lock());
        g.unlock();
        CHECK(!m.is_locked());
    }

    g_section = "event";
    {
        ut::event e;
        bool flag = false;
        CHECK(!e.is_set());
        auto h = ut::spawn(set_after_yield(e, flag));
        co_await e.wait();
        CHECK(flag);
        CHECK(e.is_set());
        co_await e.wait();  // stays set
        e.clear();
        CHECK(!e.is_set());
        co_await h;
    }

    g_section = "semaphore";
    {
        ut::semaphore s(2);
        int cur = 0, peak = 0;
        std::vector<ut::join_handle<void>> hs;
        for (int i = 0; i < 5; ++i) hs.push_back(ut::spawn(sem_worker(s, cur, peak)));
        for (auto& h : hs) co_await h;
        CHECK(peak >= 1 && peak <= 2);
        CHECK(s.available() == 2);
        CHECK(s.try_acquire());
        s.release();
        CHECK_THROWS(std::invalid_argument, ut::semaphore(-1));
    }

    g_section = "condition_variable";
    {
        ut::mutex m;
        ut::condition_variable cv;
        bool ready = false;
        int data = 0, seen = 0;
        auto c = ut::spawn(cv_consumer(m, cv, ready, data, seen));
        co_await ut::yield_now();  // let it wait
        {
            auto lock = co_await m.lock();
            data = 42;
            ready = true;
            cv.notify_one();
        }
        co_await c;
        CHECK(seen == 42);
        CHECK(!m.is_locked());
    }

    g_section = "wait_queue";
    {
        ut::wait_queue q;
        int parked = 0, woken = 0;
        CHECK(q.empty());
        CHECK(!q.wake_one());
        std::vector<ut::join_handle<void>> hs;
        for (int i = 0; i < 3; ++i) hs.push_back(ut::spawn(queue_waiter(q, parked, woken)));
        for (int i = 0; i < 1000 && parked < 3; ++i) co_await ut::yield_now();
        CHECK(parked == 3);
        CHECK(!q.empty());
        CHECK(q.wake_one());
        CHECK(q.wake_all() == 2);
        CHECK(q.empty());
        for (auto& h : hs) co_await h;
        CHECK(woken == 3);
    }
}

ut::task<> produce(ut::channel<int>& ch, int n) {
    for (int i = 0; i < n; ++i) co_await ch.send(i);
    ch.close();
}

ut::task<> test_channel() {
    g_section = "channel";
    ut::channel<int> ch(2);
    CHECK(ch.capacity() == 2);
    CHECK(ch.try_send(1));
    CHECK(ch.try_send(2));
    CHECK(!ch.try_send(3));  // full
    CHECK(ch.size() == 2);
    CHECK(ch.try_recv() == 1);
    CHECK((co_await ch.recv()) == 2);
    CHECK(!ch.try_recv());
    co_await ch.send(5);
    ch.close();
    CHECK(ch.closed());
    CHECK((co_await ch.recv()) == 5);  // drains what is buffered
    CHECK(!(co_await ch.recv()));      // then nullopt
    CHECK_THROWS(ut::channel_closed, ch.try_send(6));
    CHECK_THROWS(ut::channel_closed, co_await ch.send(6));
    CHECK_THROWS(std::invalid_argument, ut::channel<int>(-1));

    // Rendezvous between microthreads.
    ut::channel<int> r(0);
    auto p = ut::spawn(produce(r, 10), "producer");
    int sum = 0, count = 0;
    while (auto v = co_await r.recv()) {
        sum += *v;
        ++count;
    }
    co_await p;
    CHECK(count == 10);
    CHECK(sum == 45);

    // A move-only payload.
    ut::channel<std::unique_ptr<int>> up(1);
    co_await up.send(std::make_unique<int>(9));
    auto got = co_await up.recv();
    CHECK(got && *got && **got == 9);
}

ut::task<> test_bridges() {
    g_section = "promise/future";
    {
        ut::promise<int> p;
        ut::future<int> f = p.get_future();
        CHECK(f.valid());
        CHECK_THROWS(std::logic_error, p.get_future());
        std::thread t([p = std::move(p)]() mutable {
            std::this_thread::sleep_for(2ms);
            p.set_value(42);
        });
        int v = co_await f;
        t.join();
        CHECK(v == 42);
        CHECK(f.is_ready());
    }
    {
        ut::promise<void> p;
        ut::future<void> f = p.get_future();
        std::thread t([p = std::move(p)]() mutable {
            p.set_exception(std::make_exception_ptr(std::runtime_error("from a thread")));
        });
        CHECK_THROWS(std::runtime_error, co_await f);
        t.join();
    }
    {
        ut::future<int> f;
        {
            ut::promise<int> p;
            f = p.get_future();
        }  // dropped unset
        CHECK_THROWS(ut::broken_promise, co_await f);
    }
    {
        // Set on the runtime's own thread before the await.
        ut::promise<std::string> p;
        auto f = p.get_future();
        p.set_value("now");
        CHECK_THROWS(std::logic_error, p.set_value("twice"));
        CHECK((co_await f) == "now");
    }

    g_section = "to_thread";
    {
        const auto me = std::this_thread::get_id();
        auto other = co_await ut::to_thread([] { return std::this_thread::get_id(); });
        CHECK(other != me);
        int v = co_await ut::to_thread([] {
            std::this_thread::sleep_for(1ms);
            return 6 * 7;
        });
        CHECK(v == 42);
        CHECK_THROWS(std::runtime_error, co_await ut::to_thread([]() -> int {
                         throw std::runtime_error("blocking call failed");
                     }));
        bool ran = false;
        co_await ut::to_thread([&] { ran = true; });
        CHECK(ran);
    }
}

// ------------------------------------------------------------------ TCP

ut::task<> hello_server(ut::tcp_listener& l) {
    ut::tcp_stream s = co_await l.accept();
    CHECK(s.is_open());
    char buf[5];
    co_await s.read_exact(std::span<char>(buf));
    CHECK(std::string_view(buf, 5) == "hello");
    co_await s.write_all(std::string_view("world"));
    char c;
    CHECK(co_await s.read_some(std::span<char>(&c, 1)) == 0);  // client shut down writing
    s.close();
}

ut::task<> short_server(ut::tcp_listener& l) {
    ut::tcp_stream s = co_await l.accept();
    co_await s.write_all(std::string_view("ab"));
    s.close();
}

// serve_tcp handler: upper-case each line back.
ut::task<> upper_echo(ut::tcp_stream s) {
    std::string pending;
    char buf[256];
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) co_return;
        for (std::size_t i = 0; i < n; ++i)
            if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] = static_cast<char>(buf[i] - 'a' + 'A');
        co_await s.write_all(std::string_view(buf, n));
    }
}

ut::task<std::string> line_client(std::uint16_t port, std::string msg) {
    ut::tcp_stream s = co_await ut::tcp_stream::connect("127.0.0.1", port);
    co_await s.write_all(msg);
    std::string reply(msg.size(), '\0');
    co_await s.read_exact(std::span<char>(reply));
    s.shutdown_write();
    char c;
    CHECK(co_await s.read_some(std::span<char>(&c, 1)) == 0);
    co_return reply;
}

ut::task<> test_tcp() {
    g_section = "tcp_listener/tcp_stream";
    {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        CHECK(l.is_open());
        CHECK(l.port() != 0);
        auto server = ut::spawn(hello_server(l), "hello server");
        ut::tcp_stream s = co_await ut::tcp_stream::connect("127.0.0.1", l.port());
        CHECK(s.is_open());
        co_await s.write_all(std::string_view("hello"));
        char buf[5];
        co_await s.read_exact(std::span<char>(buf));
        CHECK(std::string_view(buf, 5) == "world");
        s.shutdown_write();
        co_await server;
        std::byte b[8];
        CHECK(co_await s.read_some(std::span<std::byte>(b)) == 0);  // server closed
        s.close();
        CHECK(!s.is_open());
        s.close();  // idempotent
    }
    {
        // End of stream before read_exact's buffer is full.
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto server = ut::spawn(short_server(l));
        ut::tcp_stream s = co_await ut::tcp_stream::connect("127.0.0.1", l.port());
        char buf[5];
        std::size_t got = 99;
        try {
            co_await s.read_exact(std::span<char>(buf));
        } catch (const ut::end_of_stream& e) {
            got = e.bytes_read;
        }
        CHECK(got == 2);
        co_await server;
    }
    {
        // Nothing listening: connect fails with a system_error.
        std::uint16_t port;
        {
            auto l = ut::tcp_listener::bind("127.0.0.1", 0);
            port = l.port();
            l.close();
        }
        CHECK_THROWS(std::system_error, co_await ut::tcp_stream::connect("127.0.0.1", port));
    }

    g_section = "serve_tcp";
    {
        auto l = ut::tcp_listener::bind("127.0.0.1", 0);
        auto server = ut::spawn(ut::serve_tcp(l, upper_echo), "server");
        auto [a, b, c] = co_await ut::when_all(line_client(l.port(), "abc\n"),
                                               line_client(l.port(), "hello, world\n"),
                                               line_client(l.port(), std::string(10000, 'x')));
        CHECK(a == "ABC\n");
        CHECK(b == "HELLO, WORLD\n");
        CHECK(c == std::string(10000, 'X'));
        server.cancel();
        CHECK_THROWS(ut::cancelled, co_await server);
    }
}

ut::task<std::string> consumer_main() {
    co_await test_runtime_inside();
    co_await test_task();
    co_await test_spawn();
    co_await test_yield_and_time();
    co_await test_nursery();
    co_await test_timeouts();
    co_await test_when();
    co_await test_primitives();
    co_await test_channel();
    co_await test_bridges();
    co_await test_tcp();
    co_return std::string(ut::current_backend());
}

ut::task<int> throws_from_main() {
    co_await ut::yield_now();
    throw std::out_of_range("main failed");
}

ut::task<int> leaves_a_sleeper(cancel_probe& probe) {
    auto h = ut::spawn(sleeper(probe), "left behind");
    h.detach();
    co_await yield_until(probe.started);
    co_return 1;
}

ut::task<std::string> backend_of_run() {
    co_return std::string(ut::current_backend());
}

// The parts of the contract that live outside a runtime.
void test_runtime_outside() {
    g_section = "run/options/available_backends (outside a runtime)";
    auto names = ut::available_backends();
    CHECK(!names.empty());
    CHECK(std::find(names.begin(), names.end(), "epoll") != names.end());
    CHECK(std::find(names.begin(), names.end(), "sim") != names.end());
    CHECK_THROWS(std::logic_error, ut::current_backend());
    auto t = ut::now();  // outside a runtime: clock::now()
    CHECK(ut::now() >= t);

    // run returns main's value and rethrows main's exception.
    CHECK(ut::run(add(2, 3)) == 5);
    CHECK_THROWS(std::out_of_range, ut::run(throws_from_main()));
    // Unknown backend: invalid_argument.
    ut::options bad;
    bad.backend = "no-such-backend";
    CHECK_THROWS(std::invalid_argument, ut::run(add(1, 1), bad));
    // Every available backend by name, with a seed.
    for (const auto& n : names) {
        ut::options o;
        o.backend = n;
        o.seed = 7;
        CHECK(ut::run(backend_of_run(), o) == n);
    }
    // Microthreads alive when main returns are cancelled and drained.
    cancel_probe left;
    CHECK(ut::run(leaves_a_sleeper(left)) == 1);
    CHECK(left.saw_cancelled);
    CHECK(!left.swallowed_by_std_exception);
    CHECK(g_unhandled == 0);
}

}  // namespace

int main(int argc, char** argv) {
    // The check script asks which backends this build has, then runs this same
    // binary once under each UTHREADS_BACKEND value.
    if (argc > 1 && std::string_view(argv[1]) == "--list-backends") {
        for (const std::string& b : ut::available_backends()) std::printf("%s\n", b.c_str());
        return 0;
    }
    std::signal(SIGALRM, on_watchdog);
    alarm(20);
    ut::set_unhandled_exception_handler([](std::string_view name, std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const ut::cancelled&) {
            // A detached microthread ended by cancellation: not an error, but say so
            // (the library arguably should not report these at all).
            std::fprintf(stderr, "consumer: note: cancellation of \"%.*s\" reported as unhandled\n",
                         static_cast<int>(name.size()), name.data());
            return;
        } catch (...) {
        }
        ++g_unhandled;
        g_unhandled_name = std::string(name);
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            if (std::string_view(x.what()) != "detached failure")
                std::fprintf(stderr, "consumer: unhandled exception in \"%s\": %s\n",
                             g_unhandled_name.c_str(), x.what());
        } catch (...) {
            std::fprintf(stderr, "consumer: unhandled non-standard exception in \"%s\"\n",
                         g_unhandled_name.c_str());
        }
    });

    const auto t0 = std::chrono::steady_clock::now();
    std::string backend;
    try {
        test_runtime_outside();
        g_section = "main run";
        backend = ut::run(consumer_main());
        g_section = "after run";
        CHECK(g_unhandled == 0);
    } catch (const check_failed& e) {
        std::fprintf(stderr, "consumer: FAILED: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: FAILED: [%s] unexpected exception: %s\n", g_section,
                     e.what());
        return 1;
    } catch (const ut::cancelled&) {
        std::fprintf(stderr, "consumer: FAILED: [%s] unexpected uthreads::cancelled\n", g_section);
        return 1;
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("consumer: backend %s: all %d checks passed in %.0f ms\n", backend.c_str(),
                g_checks, ms);
    return 0;
}
