// Unit tests for the libuv backend: owned mode through the lowlevel interface
// (level-triggered polls narrowed by want, want from inside ready, remove being
// final when the descriptor number is reused, hang-ups, timeouts, wake-ups), and
// guest mode through uthreads::attach on a host uv_loop_t (the keep-alive rule,
// host callbacks and microthreads interleaving, closing the loop afterwards). The
// conformance suite covers both modes through the public API; these check the
// clauses it does not exercise yet.
#ifdef UTHREADS_HAVE_BACKEND_LIBUV

#include "fd_count.hpp"

#include <uthreads/backends/libuv.hpp>
#include <uthreads/lowlevel/backend.hpp>
#include <uthreads/uthreads.hpp>

#include <uv.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace {

namespace ut = uthreads;
namespace ll = uthreads::lowlevel;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// CPU time (user + system) this process has used.
steady::duration cpu_time() {
    rusage r{};
    ::getrusage(RUSAGE_SELF, &r);
    return std::chrono::seconds(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           std::chrono::microseconds(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

/// A nonblocking, close-on-exec stream socketpair.
struct socket_pair {
    int a = -1, b = -1;
    socket_pair() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
            ADD_FAILURE() << "socketpair: " << std::strerror(errno);
        a = sv[0];
        b = sv[1];
    }
    socket_pair(const socket_pair&) = delete;
    socket_pair& operator=(const socket_pair&) = delete;
    ~socket_pair() {
        if (a >= 0) ::close(a);
        if (b >= 0) ::close(b);
    }
};

/// An io_watcher that counts its ready() calls and remembers the bits; it can
/// call want() from inside ready, as core does.
struct counting_watcher : ll::io_watcher {
    int calls = 0;
    unsigned seen = 0;
    ll::backend* backend = nullptr;
    std::optional<unsigned> want_from_ready;
    explicit counting_watcher(int f) {
        fd = f;
        ready = [](ll::io_watcher* w, unsigned events) {
            auto* c = static_cast<counting_watcher*>(w);
            ++c->calls;
            c->seen |= events;
            if (c->want_from_ready) c->backend->want(*c, *c->want_from_ready);
        };
    }
};

class LibuvBackendTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        // The first loop of a process creates a pipe libuv keeps until exit (its
        // signal lock); create it before any descriptor count is taken.
        (void)ll::make_backend("libuv");
    }
    void SetUp() override {
        fds_before_ = open_fd_count();
        b_ = ll::make_backend("libuv");
    }
    void TearDown() override {
        b_.reset();
        EXPECT_EQ(open_fd_count(), fds_before_) << "descriptors leaked";
    }

    long fds_before_ = 0;
    std::unique_ptr<ll::backend> b_;
};

TEST_F(LibuvBackendTest, NameAndMode) {
    EXPECT_EQ(b_->name(), "libuv");
    EXPECT_FALSE(b_->is_guest());
    EXPECT_FALSE(b_->supports_completions());
}

TEST_F(LibuvBackendTest, WantNarrowsTheLevelTriggeredPoll) {
    socket_pair p;
    counting_watcher w(p.a);
    b_->add(w);
    // Writable all along, but nobody wants it: nothing is reported.
    b_->want(w, ll::readable);
    for (int i = 0; i < 5; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 0);
    b_->want(w, ll::writable);
    b_->run_once(100ms);
    EXPECT_GE(w.calls, 1);
    EXPECT_TRUE(w.seen & ll::writable);
    // Interest withdrawn: the watcher is never called for the unwanted direction,
    // and the loop does not keep waking for it. Narrowing is lazy (no epoll_ctl
    // per wait): the direction may wake one run_once before it is dropped, so
    // the second one must sleep its whole timeout.
    b_->want(w, 0);
    int before = w.calls;
    b_->run_once(30ms);
    auto t0 = steady::now();
    b_->run_once(30ms);
    EXPECT_GE(steady::now() - t0, 30ms) << "the loop keeps waking for an unwanted direction";
    EXPECT_EQ(w.calls, before);
    b_->remove(w);
}

TEST_F(LibuvBackendTest, ParkedReaderOnWritableSocketDoesNotSpin) {
    socket_pair p;
    counting_watcher w(p.a);
    b_->add(w);
    b_->want(w, ll::writable);  // a writer parked once...
    b_->run_once(100ms);
    ASSERT_GE(w.calls, 1);
    b_->want(w, ll::readable);  // ...and now only a reader waits
    int before = w.calls;
    auto c0 = cpu_time();
    auto t0 = steady::now();
    while (steady::now() - t0 < 200ms) b_->run_once(200ms - (steady::now() - t0));
    EXPECT_EQ(w.calls, before);
    EXPECT_LT(cpu_time() - c0, 50ms) << "the loop spun on a writable socket";
    b_->remove(w);
}

TEST_F(LibuvBackendTest, AlreadyReadyAtAddIsReported) {
    socket_pair p;
    ASSERT_EQ(::write(p.b, "x", 1), 1);
    counting_watcher w(p.a);
    b_->add(w);
    b_->want(w, ll::readable);
    b_->run_once(1s);
    EXPECT_EQ(w.calls, 1);
    EXPECT_TRUE(w.seen & ll::readable);
    b_->remove(w);
}

TEST_F(LibuvBackendTest, WantFromInsideReady) {
    socket_pair p;
    ASSERT_EQ(::write(p.b, "x", 1), 1);
    counting_watcher w(p.a);
    w.backend = b_.get();
    w.want_from_ready = 0u;  // the woken microthread was the only one waiting
    b_->add(w);
    b_->want(w, ll::readable);
    b_->run_once(1s);
    ASSERT_EQ(w.calls, 1);
    // Still readable (nobody read), but no longer wanted: not reported again.
    for (int i = 0; i < 5; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 1);
    // Re-arming from inside ready keeps it level-triggered.
    w.want_from_ready = ll::readable;
    b_->want(w, ll::readable);
    b_->run_once(1s);
    b_->run_once(1s);
    EXPECT_EQ(w.calls, 3);
    b_->remove(w);
}

TEST_F(LibuvBackendTest, RemoveIsFinalWhenTheDescriptorNumberIsReused) {
    auto old_pair = std::make_unique<socket_pair>();
    ASSERT_EQ(::write(old_pair->b, "x", 1), 1);
    auto old_w = std::make_unique<counting_watcher>(old_pair->a);
    b_->add(*old_w);
    b_->want(*old_w, ll::readable);
    int old_fd = old_pair->a;
    // Removed and closed with readiness pending, before the loop ran its close
    // callback; then the watcher's memory goes away.
    b_->remove(*old_w);
    old_w.reset();
    old_pair.reset();

    socket_pair p;  // takes the lowest free numbers: the old ones
    EXPECT_TRUE(p.a == old_fd || p.b == old_fd);
    int fd = p.a == old_fd ? p.a : p.b;
    int peer = fd == p.a ? p.b : p.a;
    counting_watcher w(fd);
    b_->add(w);  // the same number gets a new poll at once
    b_->want(w, ll::readable);
    for (int i = 0; i < 3; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 0) << "the old descriptor's readiness leaked into the new one";
    ASSERT_EQ(::write(peer, "y", 1), 1);
    b_->run_once(1s);
    EXPECT_EQ(w.calls, 1);
    b_->remove(w);
}

TEST_F(LibuvBackendTest, HangupWakesAParkedReader) {
    socket_pair p;
    counting_watcher w(p.a);
    b_->add(w);
    b_->want(w, ll::readable);
    ::close(p.b);
    p.b = -1;
    b_->run_once(1s);
    EXPECT_EQ(w.calls, 1);
    EXPECT_TRUE(w.seen & (ll::readable | ll::io_error));
    b_->remove(w);
}

TEST_F(LibuvBackendTest, AddOfAnUnpollableDescriptorThrows) {
    char path[] = "/tmp/uthreads-libuv-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::unlink(path);
    counting_watcher w(fd);
    try {
        b_->add(w);
        ADD_FAILURE() << "add() of a regular file succeeded";
        b_->remove(w);
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EPERM) << e.what();
    }
    ::close(fd);
}

TEST_F(LibuvBackendTest, TimeoutIsNeverEarly) {
    for (auto d : {std::chrono::nanoseconds(200us), std::chrono::nanoseconds(1ms),
                   std::chrono::nanoseconds(1500us), std::chrono::nanoseconds(7ms)}) {
        for (int i = 0; i < 5; ++i) {
            auto t0 = steady::now();
            b_->run_once(d);
            EXPECT_GE(steady::now() - t0, d) << "run_once(" << d.count() << " ns) returned early";
        }
    }
    auto t0 = steady::now();
    b_->run_once(0ns);
    EXPECT_LT(steady::now() - t0, 50ms) << "a zero timeout blocked";
}

TEST_F(LibuvBackendTest, WakeIsStickyCoalescingAndThreadSafe) {
    // Before run_once: sticky.
    b_->wake();
    b_->wake();
    auto t0 = steady::now();
    b_->run_once(std::nullopt);
    EXPECT_LT(steady::now() - t0, 1s);
    // Coalesced and drained: the next wait blocks for its whole timeout.
    t0 = steady::now();
    b_->run_once(30ms);
    EXPECT_GE(steady::now() - t0, 30ms);
    // From another thread, while blocked without a timeout.
    std::thread th([&] {
        std::this_thread::sleep_for(20ms);
        b_->wake();
    });
    t0 = steady::now();
    b_->run_once(std::nullopt);
    EXPECT_LT(steady::now() - t0, 1s);
    th.join();
    // Many threads hammering wake() while the loop turns.
    std::atomic<bool> stop{false};
    std::thread hammers[3];
    for (auto& h : hammers)
        h = std::thread([&] {
            while (!stop.load(std::memory_order_relaxed)) b_->wake();
        });
    for (int i = 0; i < 200; ++i) b_->run_once(1ms);
    stop = true;
    for (auto& h : hammers) h.join();
}

TEST_F(LibuvBackendTest, DestroyedWithCloseCallbacksPending) {
    // remove() leaves the poll handle closing; the destructor runs the loop until
    // it is freed (ASan reports a leak otherwise, the descriptor count a handle).
    socket_pair p;
    counting_watcher w(p.a);
    b_->add(w);
    b_->want(w, ll::readable | ll::writable);
    b_->remove(w);
}

// ---- guest mode -------------------------------------------------------------

class LibuvGuestTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { (void)ll::make_backend("libuv"); }
    void SetUp() override {
        fds_before_ = open_fd_count();
        ASSERT_EQ(uv_loop_init(&loop_), 0);
    }
    void TearDown() override {
        // As a host program ends: run the close callbacks, then close the loop.
        uv_run(&loop_, UV_RUN_DEFAULT);
        EXPECT_EQ(uv_loop_close(&loop_), 0) << "the guest left handles on the host loop";
        EXPECT_EQ(open_fd_count(), fds_before_) << "descriptors leaked";
    }

    uv_loop_t loop_{};
    long fds_before_ = 0;
};

TEST_F(LibuvGuestTest, AttachedAndNamed) {
    ut::guest_runtime g = ut::attach(&loop_);
    EXPECT_TRUE(g.attached());
    EXPECT_EQ(g.backend_name(), "libuv");
    g.shutdown();
    EXPECT_FALSE(g.attached());
}

TEST_F(LibuvGuestTest, AttachingTwiceThrowsAndLeavesNothingBehind) {
    ut::guest_runtime g = ut::attach(&loop_);
    EXPECT_THROW((void)ut::attach(&loop_), std::logic_error);
    EXPECT_THROW((void)ut::attach(nullptr), std::invalid_argument);
}

TEST_F(LibuvGuestTest, AnIdleGuestDoesNotKeepTheLoopAlive) {
    ut::guest_runtime g = ut::attach(&loop_);
    auto t0 = steady::now();
    EXPECT_EQ(uv_run(&loop_, UV_RUN_DEFAULT), 0);
    EXPECT_LT(steady::now() - t0, 100ms);
    g.shutdown();
    // Closing handles: busy until the loop has run their close callbacks.
    EXPECT_EQ(uv_loop_close(&loop_), UV_EBUSY);
}

TEST_F(LibuvGuestTest, ASleepingMicrothreadKeepsTheLoopAlive) {
    ut::guest_runtime g = ut::attach(&loop_);
    bool done = false;
    g.spawn_then([]() -> ut::task<void> { co_await ut::sleep_for(40ms); }(),
                 [&](ut::outcome<void> r) {
                     EXPECT_TRUE(r.has_value());
                     done = true;
                 });
    auto t0 = steady::now();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_TRUE(done);
    EXPECT_GE(steady::now() - t0, 40ms);
    EXPECT_EQ(g.live(), 0u);
}

TEST_F(LibuvGuestTest, AMicrothreadWaitingForAnotherThreadKeepsTheLoopAlive) {
    ut::guest_runtime g = ut::attach(&loop_);
    std::optional<int> got;
    g.spawn_then(
        []() -> ut::task<int> {
            co_return co_await ut::to_thread([] {
                std::this_thread::sleep_for(40ms);
                return 7;
            });
        }(),
        [&](ut::outcome<int> r) { got = r.value(); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(got, 7);
}

TEST_F(LibuvGuestTest, HostCallbacksAndMicrothreadsInterleave) {
    ut::guest_runtime g = ut::attach(&loop_);
    // A repeating host timer ticks while microthreads sleep and talk over
    // loopback through the guest's uv_poll_t handles.
    struct state {
        int ticks = 0;
        int ticks_seen_by_microthread = -1;
        uv_timer_t timer;
    } st;
    uv_timer_init(&loop_, &st.timer);
    st.timer.data = &st;
    uv_timer_start(
        &st.timer,
        [](uv_timer_t* t) {
            auto* s = static_cast<state*>(t->data);
            if (++s->ticks == 3) uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
        },
        5, 5);
    std::string got;
    ut::tcp_listener l = ut::tcp_listener::bind("127.0.0.1", 0);
    g.spawn_then(
        [](ut::tcp_listener& l, state& st) -> ut::task<std::string> {
            auto c = co_await ut::tcp_stream::connect("127.0.0.1", l.port());
            auto s = co_await l.accept();
            co_await ut::sleep_for(30ms);  // the host timer ticks meanwhile
            st.ticks_seen_by_microthread = st.ticks;
            co_await c.write_all("ping");
            char b[4];
            co_await s.read_exact(std::span<char>(b));
            co_return std::string(b, 4);
        }(l, st),
        [&](ut::outcome<std::string> r) { got = r.value(); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(got, "ping");
    EXPECT_EQ(st.ticks, 3);
    // At least one tick ran between the microthread's steps (all three unless
    // the machine stalled the loop for longer than the sleep).
    EXPECT_GE(st.ticks_seen_by_microthread, 1);
    g.shutdown();
    l.close();
}

TEST_F(LibuvGuestTest, ShutdownCancelsMicrothreadsParkedOnIo) {
    std::optional<bool> cancelled;
    {
        ut::guest_runtime g = ut::attach(&loop_);
        ut::tcp_listener l = ut::tcp_listener::bind("127.0.0.1", 0);
        g.spawn_then([](ut::tcp_listener& l) -> ut::task<void> { (void)co_await l.accept(); }(l),
                     [&](ut::outcome<void> r) {
                         try {
                             r.value();
                             cancelled = false;
                         } catch (const ut::cancelled&) {
                             cancelled = true;
                         }
                     });
        // Let it park on accept, then the host gives up on it.
        for (int i = 0; i < 5; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
        EXPECT_EQ(g.live(), 1u);
        g.shutdown();
        l.close();
    }
    EXPECT_EQ(cancelled, true);
}

}  // namespace

#endif  // UTHREADS_HAVE_BACKEND_LIBUV
