// Unit tests for the io_uring backend through the lowlevel interface: completion
// operations (accept, connect, recv, send, read, write, fsync, openat, cancel) and readiness
// (add/want/remove, late completions after remove, no spinning), wake-ups and
// timeouts, on loopback sockets. The conformance suite covers the backend through
// the public API; these check what core does not exercise yet.
//
// Skipped when the kernel refuses io_uring (kernel.io_uring_disabled, seccomp).
#ifdef UTHREADS_HAVE_BACKEND_IO_URING

#include "fd_count.hpp"

#include <uthreads/lowlevel/backend.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

namespace ll = uthreads::lowlevel;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct fd_guard {
    int fd = -1;
    fd_guard() = default;
    explicit fd_guard(int f)
        : fd(f) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }
    void reset(int f = -1) {
        if (fd >= 0) ::close(fd);
        fd = f;
    }
};

/// A completion_op that records how often and with what it completed.
struct tracked_op : ll::completion_op {
    int calls = 0;
    int result = 0;
    tracked_op(kind k, int on_fd) {
        op = k;
        fd = on_fd;
        complete = [](ll::completion_op* o, int r) {
            auto* t = static_cast<tracked_op*>(o);
            ++t->calls;
            t->result = r;
        };
    }
};

/// An io_watcher that counts its ready() calls and remembers the bits.
struct counting_watcher : ll::io_watcher {
    int calls = 0;
    unsigned seen = 0;
    explicit counting_watcher(int f) {
        fd = f;
        ready = [](ll::io_watcher* w, unsigned events) {
            auto* c = static_cast<counting_watcher*>(w);
            ++c->calls;
            c->seen |= events;
        };
    }
};

class IoUringBackendTest : public ::testing::Test {  // NOLINT(readability-identifier-naming)
protected:
    void SetUp() override {
        fds_before_ = open_fd_count();
        try {
            b_ = ll::make_backend("io_uring");
        } catch (const std::system_error& e) {
            // The kernel refuses a ring (io_uring_disabled, seccomp, or too old).
            GTEST_SKIP() << "needs io_uring (the kernel refused a ring: " << e.what() << ")";
        }
    }
    void TearDown() override {
        b_.reset();
        EXPECT_EQ(open_fd_count(), fds_before_) << "descriptors leaked";
    }

    /// Runs the loop until `done` or 5 s.
    bool run_until(const std::function<bool()>& done) {
        auto deadline = steady::now() + 5s;
        while (!done()) {
            if (steady::now() > deadline) return false;
            b_->run_once(10ms);
        }
        return true;
    }

    /// A nonblocking loopback listener; `addr` receives its address.
    static int listener(sockaddr_in& addr) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        addr = {};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(fd, 64) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            ADD_FAILURE() << "listener: " << std::strerror(errno);
        return fd;
    }

    /// A connected pair of nonblocking sockets, made with completion ops.
    void connected_pair(fd_guard& server, fd_guard& client) {
        sockaddr_in addr{};
        fd_guard lst(listener(addr));
        client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        tracked_op acc(ll::completion_op::kind::accept, lst.fd);
        acc.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
        tracked_op con(ll::completion_op::kind::connect, client.fd);
        con.addr = &addr;
        con.addrlen = sizeof addr;
        b_->submit(acc);
        b_->submit(con);
        ASSERT_TRUE(run_until([&] { return acc.calls && con.calls; }));
        ASSERT_GE(acc.result, 0) << std::strerror(-acc.result);
        ASSERT_EQ(con.result, 0) << std::strerror(-con.result);
        server.reset(acc.result);
    }

    long fds_before_ = 0;
    std::unique_ptr<ll::backend> b_;
};

TEST_F(IoUringBackendTest, NameAndCompletionSupport) {
    EXPECT_EQ(b_->name(), "io_uring");
    EXPECT_FALSE(b_->is_guest());
    if (!b_->supports_completions()) GTEST_SKIP() << "kernel without IORING_FEAT_FAST_POLL";
}

TEST_F(IoUringBackendTest, AcceptConnectSendRecv) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    sockaddr_in addr{};
    fd_guard lst(listener(addr));
    fd_guard client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));

    sockaddr_storage peer{};
    tracked_op acc(ll::completion_op::kind::accept, lst.fd);
    acc.addr = &peer;
    acc.addrlen = sizeof peer;
    acc.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;  // accept4 flags
    b_->submit(acc);
    b_->run_once(0ns);
    EXPECT_EQ(acc.calls, 0) << "accept completed with nobody connecting";

    tracked_op con(ll::completion_op::kind::connect, client.fd);
    con.addr = &addr;
    con.addrlen = sizeof addr;
    b_->submit(con);
    ASSERT_TRUE(run_until([&] { return acc.calls && con.calls; }));
    EXPECT_EQ(acc.calls, 1);
    EXPECT_EQ(con.calls, 1);
    ASSERT_GE(acc.result, 0) << std::strerror(-acc.result);
    EXPECT_EQ(con.result, 0) << std::strerror(-con.result);
    fd_guard server(acc.result);
    EXPECT_EQ(acc.addrlen, sizeof(sockaddr_in));
    EXPECT_EQ(peer.ss_family, AF_INET);
    EXPECT_TRUE(::fcntl(server.fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(server.fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(acc.backend_data, nullptr);

    // A recv posted before the data arrives waits for it.
    char in[16] = {};
    tracked_op rcv(ll::completion_op::kind::recv, server.fd);
    rcv.buf = in;
    rcv.len = sizeof in;
    b_->submit(rcv);
    b_->run_once(0ns);
    EXPECT_EQ(rcv.calls, 0);

    char out[] = "hello";
    tracked_op snd(ll::completion_op::kind::send, client.fd);
    snd.buf = out;
    snd.len = 5;
    snd.flags = MSG_NOSIGNAL;
    b_->submit(snd);
    ASSERT_TRUE(run_until([&] { return rcv.calls && snd.calls; }));
    EXPECT_EQ(snd.result, 5);
    EXPECT_EQ(rcv.result, 5);
    EXPECT_EQ(std::string(in, 5), "hello");

    // End of stream: recv completes with 0.
    client.reset();
    tracked_op eof(ll::completion_op::kind::recv, server.fd);
    eof.buf = in;
    eof.len = sizeof in;
    b_->submit(eof);
    ASSERT_TRUE(run_until([&] { return eof.calls != 0; }));
    EXPECT_EQ(eof.result, 0);
}

TEST_F(IoUringBackendTest, ConnectRefused) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    sockaddr_in addr{};
    {
        fd_guard lst(listener(addr));  // a port nobody listens on once closed
    }
    fd_guard client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    tracked_op con(ll::completion_op::kind::connect, client.fd);
    con.addr = &addr;
    con.addrlen = sizeof addr;
    b_->submit(con);
    ASSERT_TRUE(run_until([&] { return con.calls != 0; }));
    EXPECT_EQ(con.result, -ECONNREFUSED);
}

TEST_F(IoUringBackendTest, CancelledRecvCompletesWithECANCELED) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    fd_guard server, client;
    connected_pair(server, client);
    if (HasFatalFailure()) return;

    char in[16];
    tracked_op rcv(ll::completion_op::kind::recv, server.fd);
    rcv.buf = in;
    rcv.len = sizeof in;
    b_->submit(rcv);
    b_->run_once(0ns);  // in the kernel, waiting for data
    ASSERT_EQ(rcv.calls, 0);
    b_->cancel(rcv);
    b_->cancel(rcv);  // asking twice is harmless
    ASSERT_TRUE(run_until([&] { return rcv.calls != 0; }));
    EXPECT_EQ(rcv.result, -ECANCELED);
    for (int i = 0; i < 5; ++i) b_->run_once(0ns);
    EXPECT_EQ(rcv.calls, 1) << "complete must run exactly once";
    b_->cancel(rcv);  // after completion: a no-op
    b_->run_once(0ns);
    EXPECT_EQ(rcv.calls, 1);

    // Cancelling before the op ever reached the kernel works too.
    tracked_op early(ll::completion_op::kind::recv, server.fd);
    early.buf = in;
    early.len = sizeof in;
    b_->submit(early);
    b_->cancel(early);
    ASSERT_TRUE(run_until([&] { return early.calls != 0; }));
    EXPECT_EQ(early.calls, 1);
    EXPECT_EQ(early.result, -ECANCELED);
}

TEST_F(IoUringBackendTest, CancelRacingDataLosesNothing) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    fd_guard server, client;
    connected_pair(server, client);
    if (HasFatalFailure()) return;

    ASSERT_EQ(::send(client.fd, "abc", 3, MSG_NOSIGNAL), 3);
    char in[16] = {};
    tracked_op rcv(ll::completion_op::kind::recv, server.fd);
    rcv.buf = in;
    rcv.len = sizeof in;
    b_->submit(rcv);
    b_->cancel(rcv);
    ASSERT_TRUE(run_until([&] { return rcv.calls != 0; }));
    EXPECT_EQ(rcv.calls, 1);
    if (rcv.result == -ECANCELED) {
        ASSERT_EQ(::recv(server.fd, in, sizeof in, 0), 3) << "the cancelled recv lost the data";
    } else {
        ASSERT_EQ(rcv.result, 3);
    }
    EXPECT_EQ(std::string(in, 3), "abc");
}

TEST_F(IoUringBackendTest, ReadAndWriteAtOffsets) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    fd_guard file(::memfd_create("uthreads-io_uring-test", MFD_CLOEXEC));
    ASSERT_GE(file.fd, 0) << std::strerror(errno);

    char out[] = "abcdef";
    tracked_op wr(ll::completion_op::kind::write, file.fd);
    wr.buf = out;
    wr.len = 6;
    wr.offset = 10;
    b_->submit(wr);
    ASSERT_TRUE(run_until([&] { return wr.calls != 0; }));
    EXPECT_EQ(wr.result, 6);

    char in[4] = {};
    tracked_op rd(ll::completion_op::kind::read, file.fd);
    rd.buf = in;
    rd.len = 3;
    rd.offset = 12;
    b_->submit(rd);
    ASSERT_TRUE(run_until([&] { return rd.calls != 0; }));
    EXPECT_EQ(rd.result, 3);
    EXPECT_EQ(std::string(in, 3), "cde");

    tracked_op bad(ll::completion_op::kind::read, -1);
    bad.buf = in;
    bad.len = 1;
    b_->submit(bad);
    ASSERT_TRUE(run_until([&] { return bad.calls != 0; }));
    EXPECT_EQ(bad.result, -EBADF);
}

TEST_F(IoUringBackendTest, OpenatFsyncAndReadsAtTheFilePosition) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    std::string path = (std::filesystem::temp_directory_path() /
                        ("uthreads-io_uring-openat-" + std::to_string(::getpid())))
                           .string();
    ::unlink(path.c_str());

    tracked_op missing(ll::completion_op::kind::openat, -1);
    std::string nowhere = path + "/no/such/dir";
    missing.addr = nowhere.data();
    missing.flags = O_RDONLY | O_CLOEXEC;
    b_->submit(missing);
    ASSERT_TRUE(run_until([&] { return missing.calls != 0; }));
    EXPECT_EQ(missing.result, -ENOENT);

    tracked_op open(ll::completion_op::kind::openat, -1);
    open.addr = path.data();
    open.flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
    open.mode = 0600;
    b_->submit(open);
    ASSERT_TRUE(run_until([&] { return open.calls != 0; }));
    ASSERT_GE(open.result, 0) << std::strerror(-open.result);
    fd_guard file(open.result);
    ::unlink(path.c_str());
    EXPECT_TRUE(::fcntl(file.fd, F_GETFD) & FD_CLOEXEC);

    char out[] = "uvwxyz";
    tracked_op wr(ll::completion_op::kind::write, file.fd);
    wr.buf = out;
    wr.len = 6;
    wr.offset = ll::completion_op::current_position;
    b_->submit(wr);
    ASSERT_TRUE(run_until([&] { return wr.calls != 0; }));
    EXPECT_EQ(wr.result, 6);
    EXPECT_EQ(::lseek(file.fd, 0, SEEK_CUR), 6) << "the write did not advance the position";

    tracked_op sync(ll::completion_op::kind::fsync, file.fd);
    b_->submit(sync);
    tracked_op datasync(ll::completion_op::kind::fsync, file.fd);
    datasync.flags = ll::completion_op::fsync_datasync;
    b_->submit(datasync);
    ASSERT_TRUE(run_until([&] { return sync.calls != 0 && datasync.calls != 0; }));
    EXPECT_EQ(sync.result, 0);
    EXPECT_EQ(datasync.result, 0);

    // Two reads at the position: the second starts where the first stopped.
    ASSERT_EQ(::lseek(file.fd, 0, SEEK_SET), 0);
    char in[4] = {};
    std::string seen;
    for (int i = 0; i < 2; ++i) {
        tracked_op rd(ll::completion_op::kind::read, file.fd);
        rd.buf = in;
        rd.len = 3;
        rd.offset = ll::completion_op::current_position;
        b_->submit(rd);
        ASSERT_TRUE(run_until([&] { return rd.calls != 0; }));
        ASSERT_EQ(rd.result, 3);
        seen.append(in, 3);
    }
    EXPECT_EQ(seen, "uvwxyz");
}

// More operations than the submission queue holds (256), all cancelled at once:
// the SQ is submitted to make room, and the twice as many CQEs (op + cancel) as
// the completion queue holds go through the kernel's overflow list.
TEST_F(IoUringBackendTest, MoreOperationsThanTheRingHolds) {
    if (!b_->supports_completions()) GTEST_SKIP() << "no completion operations on this kernel";
    fd_guard server, client;
    connected_pair(server, client);
    if (HasFatalFailure()) return;

    constexpr int n = 700;
    std::vector<std::unique_ptr<tracked_op>> ops;
    std::vector<char> bufs(n);
    for (int i = 0; i < n; ++i) {
        ops.push_back(std::make_unique<tracked_op>(ll::completion_op::kind::recv, server.fd));
        ops.back()->buf = &bufs[i];
        ops.back()->len = 1;
        b_->submit(*ops.back());
    }
    b_->run_once(0ns);
    for (auto& op : ops) b_->cancel(*op);
    auto all_done = [&] {
        for (auto& op : ops)
            if (!op->calls) return false;
        return true;
    };
    ASSERT_TRUE(run_until(all_done));
    for (auto& op : ops) {
        EXPECT_EQ(op->calls, 1);
        EXPECT_EQ(op->result, -ECANCELED);
    }
}

TEST_F(IoUringBackendTest, ReadinessIsReportedForWantedDirectionsOnly) {
    fd_guard server, client;
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    server.reset(sv[0]);
    client.reset(sv[1]);

    counting_watcher w(server.fd);
    b_->add(w);
    // Writable all along, but only reading is wanted: no report, no spinning.
    b_->want(w, ll::readable);
    for (int i = 0; i < 20; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 0);

    ASSERT_EQ(::write(client.fd, "x", 1), 1);
    ASSERT_TRUE(run_until([&] { return w.calls != 0; }));
    EXPECT_EQ(w.calls, 1);
    EXPECT_TRUE(w.seen & ll::readable);

    // One-shot: after the report, nothing more until wanted again.
    b_->want(w, 0);
    for (int i = 0; i < 20; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 1);

    // Already ready when wanted: reported at once.
    w.seen = 0;
    b_->want(w, ll::writable);
    ASSERT_TRUE(run_until([&] { return w.calls == 2; }));
    EXPECT_TRUE(w.seen & ll::writable);
    b_->want(w, 0);
    for (int i = 0; i < 20; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 2);

    // Hang-up while reading is wanted.
    char c;
    ASSERT_EQ(::read(server.fd, &c, 1), 1);
    w.seen = 0;
    b_->want(w, ll::readable);
    b_->run_once(0ns);
    EXPECT_EQ(w.calls, 2);
    client.reset();
    ASSERT_TRUE(run_until([&] { return w.calls == 3; }));
    EXPECT_TRUE(w.seen & (ll::readable | ll::io_error));
    b_->remove(w);
}

// want() called from inside ready(), as core does.
TEST_F(IoUringBackendTest, WantFromInsideReady) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fd_guard a(sv[0]), b(sv[1]);
    struct rewanting : ll::io_watcher {
        ll::backend* be = nullptr;
        int calls = 0;
    } w;
    w.fd = a.fd;
    w.be = b_.get();
    w.ready = [](ll::io_watcher* self, unsigned) {
        auto* r = static_cast<rewanting*>(self);
        ++r->calls;
        r->be->want(*r, r->calls < 3 ? ll::writable : 0u);
    };
    b_->add(w);
    b_->want(w, ll::writable);
    ASSERT_TRUE(run_until([&] { return w.calls == 3; }));
    for (int i = 0; i < 20; ++i) b_->run_once(0ns);
    EXPECT_EQ(w.calls, 3);
    b_->remove(w);
}

// After remove() the backend never touches the watcher, even when the cancelled
// poll's CQE, or a readiness that raced the removal, arrives later.
TEST_F(IoUringBackendTest, LateCompletionAfterRemoveIsIgnored) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fd_guard a(sv[0]), b(sv[1]);

    auto w = std::make_unique<counting_watcher>(a.fd);
    b_->add(*w);
    b_->want(*w, ll::readable);
    b_->run_once(0ns);                    // the poll is in the kernel
    ASSERT_EQ(::write(b.fd, "x", 1), 1);  // and completes before we reap it
    b_->remove(*w);
    w.reset();  // ASan reports any later touch
    for (int i = 0; i < 10; ++i) b_->run_once(1ms);

    // Removed before its poll was ever armed.
    auto w2 = std::make_unique<counting_watcher>(a.fd);
    b_->add(*w2);
    b_->want(*w2, ll::readable | ll::writable);
    b_->remove(*w2);
    w2.reset();
    for (int i = 0; i < 10; ++i) b_->run_once(1ms);
}

// remove() cancels the poll at once: otherwise the kernel would keep the file
// open after close(), and a listener's port would stay taken.
TEST_F(IoUringBackendTest, RemoveReleasesTheDescriptor) {
    sockaddr_in addr{};
    fd_guard lst(listener(addr));
    counting_watcher w(lst.fd);
    b_->add(w);
    b_->want(w, ll::readable);
    b_->run_once(0ns);
    b_->remove(w);
    lst.reset();

    fd_guard again(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::bind(again.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << "port still held after remove + close: " << std::strerror(errno);
    EXPECT_EQ(w.calls, 0);
}

TEST_F(IoUringBackendTest, TimeoutIsNeverEarly) {
    for (auto d : {1ms, 20ms}) {
        auto t0 = steady::now();
        b_->run_once(d);
        EXPECT_GE(steady::now() - t0, d);
    }
    auto t0 = steady::now();
    b_->run_once(0ns);
    EXPECT_LT(steady::now() - t0, 100ms);
}

TEST_F(IoUringBackendTest, WakeIsStickyCoalescingAndThreadSafe) {
    // Before run_once: the next one returns at once.
    b_->wake();
    auto t0 = steady::now();
    b_->run_once(std::nullopt);
    EXPECT_LT(steady::now() - t0, 2s);

    // Many wake-ups coalesce and are drained: the following wait really waits.
    for (int i = 0; i < 100; ++i) b_->wake();
    b_->run_once(5s);
    t0 = steady::now();
    b_->run_once(30ms);
    EXPECT_GE(steady::now() - t0, 30ms);

    // From other threads while the loop is blocked.
    for (int round = 0; round < 20; ++round) {
        std::atomic<bool> go{false};
        std::thread t([&] {
            while (!go.load()) std::this_thread::yield();
            std::this_thread::sleep_for(1ms);
            b_->wake();
        });
        go = true;
        t0 = steady::now();
        b_->run_once(10s);
        EXPECT_LT(steady::now() - t0, 5s);
        t.join();
    }
}

// Core destroys the backend only after every operation completed and every
// watcher was removed. If it did not, the destructor still cancels what is in the
// kernel, waits for it, calls nothing back and leaks nothing (ASan checks).
TEST_F(IoUringBackendTest, DestroyedWithWorkInFlight) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fd_guard a(sv[0]), b(sv[1]);
    counting_watcher w(a.fd);
    b_->add(w);
    b_->want(w, ll::readable);
    if (b_->supports_completions()) {
        char in[4];
        tracked_op rcv(ll::completion_op::kind::recv, a.fd);
        rcv.buf = in;
        rcv.len = sizeof in;
        b_->submit(rcv);
        b_->run_once(0ns);
        tracked_op queued(ll::completion_op::kind::recv, a.fd);  // never submitted to the kernel
        queued.buf = in;
        queued.len = sizeof in;
        b_->submit(queued);
        b_.reset();
        EXPECT_EQ(rcv.calls, 0);
        EXPECT_EQ(queued.calls, 0);
    } else {
        b_->run_once(0ns);
        b_.reset();
    }
    EXPECT_EQ(w.calls, 0);
}

}  // namespace

#endif  // UTHREADS_HAVE_BACKEND_IO_URING
