// chat_server — a line-based chat room on serve_tcp and buffered_reader.
//
//   chat_server               self-test: start the room on a free loopback port,
//                             connect three scripted clients, check what each one
//                             sees, exit 0 (or 1 on a mismatch).
//   chat_server --serve PORT  serve on [::]:PORT until killed; connect with
//                             `socat - TCP:127.0.0.1:PORT` from several terminals.
//
// Protocol: every line a client sends is broadcast to all the others as
// "<nick> line". "/nick NAME" renames the sender, "/quit" leaves. The server
// announces joins, renames and departures as "* ..." lines.
//
// Each connection has two microthreads in a nursery: the reader (the handler
// itself) parses lines; a writer drains the connection's outbox channel onto the
// socket. Broadcasting only puts lines into outboxes (try_send, never waiting),
// so one slow client cannot stall the room: when its outbox is full it misses
// lines, and is told so.

#include <uthreads/uthreads.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ut = uthreads;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_line = 4096;
constexpr std::size_t outbox_lines = 256;

/// One connected client, as the room sees it.
struct member {
    std::string nick;
    ut::channel<std::string> outbox{outbox_lines};
    long dropped = 0;  // lines it missed because its outbox was full
};

/// Everyone connected. Used by the microthreads of one runtime only.
class room {
public:
    /// Send `line` to every member except `from` (nullptr: to all).
    void broadcast(const std::string& line, const member* from) {
        for (member* m : members_)
            if (m != from && !m->outbox.try_send(line + "\n")) ++m->dropped;
    }
    void join(member* m) { members_.push_back(m); }
    void leave(member* m) { members_.remove(m); }
    int next_guest() { return ++guests_; }

private:
    std::list<member*> members_;
    int guests_ = 0;
};

/// Membership for the lifetime of a connection, however it ends.
class membership {
public:
    membership(room& r, member& m)
        : r_(r)
        , m_(m) {
        r_.join(&m_);
        r_.broadcast("* " + m_.nick + " joined", &m_);
    }
    ~membership() {
        r_.leave(&m_);
        r_.broadcast("* " + m_.nick + " left", nullptr);
        m_.outbox.close();  // the writer sends what is queued, then stops
    }
    membership(const membership&) = delete;
    membership& operator=(const membership&) = delete;

private:
    room& r_;
    member& m_;
};

/// Drain `m`'s outbox onto the socket until the outbox is closed and empty.
ut::task<> write_outbox(ut::tcp_stream& s, member& m) {
    while (auto line = co_await m.outbox.recv()) {
        if (m.dropped > 0) {
            co_await s.write_all("* (you missed " + std::to_string(m.dropped) + " lines)\n");
            m.dropped = 0;
        }
        co_await s.write_all(*line);
    }
    s.shutdown_write();
}

ut::task<> session(room& r, ut::tcp_stream s) {
    member me;
    me.nick = "guest" + std::to_string(r.next_guest());
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        n.spawn(write_outbox(s, me), "chat writer");
        me.outbox.try_send("* welcome, you are " + me.nick + "\n");
        membership in(r, me);
        ut::buffered_reader reader(s);
        while (std::optional<std::string> line = co_await reader.read_line(max_line)) {
            std::string_view l = *line;
            if (l == "/quit") {
                me.outbox.try_send("* bye\n");
                break;
            }
            if (l.starts_with("/nick ") && l.size() > 6) {
                std::string old = me.nick;
                me.nick = std::string(l.substr(6));
                me.outbox.try_send("* you are now " + me.nick + "\n");
                r.broadcast("* " + old + " is now " + me.nick, &me);
                continue;
            }
            r.broadcast("<" + me.nick + "> " + *line, &me);
        }
        // Leaving `in` closes the outbox: the writer flushes it and ends.
    });
}

ut::task<> serve(ut::tcp_listener& l) {
    room r;
    co_await ut::serve_tcp(l, [&r](ut::tcp_stream s) { return session(r, std::move(s)); });
}

// ------------------------------------------------------------------ self-test

/// A scripted client: send lines, and read lines until one matches.
struct chat_client {
    ut::tcp_stream s;
    ut::buffered_reader<ut::tcp_stream> in{s};
    std::vector<std::string> seen;

    explicit chat_client(ut::tcp_stream st)
        : s(std::move(st)) {}

    ut::task<> say(std::string line) { co_await s.write_all(line + "\n"); }

    /// Read lines until `want` arrives (true) or the stream ends (false).
    ut::task<bool> expect(std::string want) {
        while (auto line = co_await ut::with_timeout(10s, in.read_line(max_line))) {
            seen.push_back(*line);
            if (*line == want) co_return true;
        }
        co_return false;
    }
};

ut::task<std::unique_ptr<chat_client>> join(std::uint16_t port) {
    auto c = std::make_unique<chat_client>(co_await ut::tcp_stream::connect("127.0.0.1", port));
    co_return c;
}

ut::task<int> self_test() {
    ut::tcp_listener l = ut::tcp_listener::bind("127.0.0.1", 0);
    std::printf("chat room on %s (%s backend)\n", l.local_endpoint().to_string().c_str(),
                std::string(ut::current_backend()).c_str());
    auto server = ut::spawn(serve(l), "chat server");
    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
        if (!ok) ++failures;
    };
    auto alice = co_await join(l.port());
    check(co_await alice->expect("* welcome, you are guest1"), "alice is welcomed");
    co_await alice->say("/nick alice");
    check(co_await alice->expect("* you are now alice"), "alice renames herself");
    auto bob = co_await join(l.port());
    check(co_await bob->expect("* welcome, you are guest2"), "bob is welcomed");
    check(co_await alice->expect("* guest2 joined"), "alice sees bob join");
    co_await bob->say("/nick bob");
    check(co_await bob->expect("* you are now bob"), "bob renames himself");
    check(co_await alice->expect("* guest2 is now bob"), "alice sees the rename");
    auto carol = co_await join(l.port());
    check(co_await carol->expect("* welcome, you are guest3"), "carol is welcomed");
    check(co_await bob->expect("* guest3 joined"), "bob sees carol join");
    co_await alice->say("hello, room");
    check(co_await bob->expect("<alice> hello, room"), "bob hears alice");
    check(co_await carol->expect("<alice> hello, room"), "carol hears alice");
    co_await bob->say("/quit");
    check(co_await bob->expect("* bye"), "bob says goodbye");
    check(!co_await bob->expect("(nothing after bye)"), "bob's stream ends");
    check(co_await alice->expect("* bob left"), "alice sees bob leave");
    check(co_await carol->expect("* bob left"), "carol sees bob leave");
    // alice's own line was not echoed back to her.
    bool echoed = false;
    for (const auto& line : alice->seen) echoed |= line == "<alice> hello, room";
    check(!echoed, "a speaker does not hear herself");
    server.cancel();
    try {
        co_await server;
    } catch (const ut::cancelled&) {
    }
    co_return failures == 0 ? 0 : 1;
}

// A TCP port from the command line; a clear error instead of a silent wrap-around.
std::uint16_t parse_port(const std::string& s) {
    std::size_t end = 0;
    unsigned long v = std::stoul(s, &end);
    if (end != s.size() || v > 65535) throw std::invalid_argument("not a TCP port: \"" + s + "\"");
    return static_cast<std::uint16_t>(v);
}

ut::task<int> serve_forever(std::uint16_t port) {
    ut::tcp_listener l = ut::tcp_listener::bind("::", port);
    std::printf("chat room listening on %s\n", l.local_endpoint().to_string().c_str());
    std::fflush(stdout);
    co_await serve(l);
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 3 && std::strcmp(argv[1], "--serve") == 0)
            return ut::run(serve_forever(parse_port(argv[2])));
        if (argc != 1) {
            std::fprintf(stderr, "usage: %s [--serve PORT]\n", argv[0]);
            return 2;
        }
        return ut::run(self_test());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "chat_server: %s\n", e.what());
        return 1;
    }
}
