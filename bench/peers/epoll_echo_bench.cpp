// epoll_echo_bench — peer for the echo rows of bench_backends: the minimum TCP echo
// server on raw epoll, as a C programmer would write it, measured by the same client
// and meter (bench/echo_client.hpp). Rows are labelled @raw_epoll.
//
// Some facts about epoll this relies on:
// - Edge-triggered (EPOLLET): an event is reported when the socket's state changes
//   (new bytes, new send space), not while it stays ready. So each readable event
//   is served by reading until EAGAIN, and EPOLLIN|EPOLLOUT are registered once, at
//   accept, and never modified: no epoll_ctl on the hot path.
// - For TCP, EPOLLOUT is only signalled again after a write found the send buffer
//   full, so registering it costs nothing while writes complete at once.
// - A write that does not complete keeps the rest in the connection's `pending`
//   buffer and stops reading that connection (back-pressure) until EPOLLOUT.
// - The eventfd is how the meter thread stops the loop (write is thread-safe).
//
// Output: RESULT echo_d<depth>_{msgs_per_s,user_ns,cpu_ns}@raw_epoll lines on stdout.
// Usage: epoll_echo_bench [echo options] (see echo_client.hpp).

#include "echo_client.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

[[noreturn]] void fail(const char* what) {
    throw std::system_error(errno, std::generic_category(), what);
}

struct connection {
    int fd;
    std::vector<char> pending;  // echo bytes not yet written
};

// Both tags are compared by address: data.ptr is a connection* otherwise.
char listener_tag, stop_tag;

char buf[echo_bench::server_buffer_size];

void close_connection(connection* c) {
    ::close(c->fd);  // also removes it from the epoll set
    delete c;
}

// Serves one event on `c`: finish a pending write, then read and echo until EAGAIN.
// Returns false once the connection is closed.
bool serve(connection* c) {
    while (!c->pending.empty()) {
        ssize_t w = ::send(c->fd, c->pending.data(), c->pending.size(), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return true;  // wait for EPOLLOUT
            return false;
        }
        c->pending.erase(c->pending.begin(), c->pending.begin() + w);
    }
    for (;;) {
        ssize_t n = ::read(c->fd, buf, sizeof buf);
        if (n == 0) return false;
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN;
        }
        ssize_t w = 0;
        while (w < n) {
            ssize_t k = ::send(c->fd, buf + w, static_cast<std::size_t>(n - w), MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN) return false;
                c->pending.assign(buf + w, buf + n);
                return true;  // wait for EPOLLOUT before reading more
            }
            w += k;
        }
    }
}

std::vector<echo_bench::depth_result> run(echo_bench::client_process& client,
                                          const echo_bench::config& cfg) {
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) fail("socket");
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
    if (::listen(lfd, SOMAXCONN) != 0) fail("listen");
    if (::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");

    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    int stop_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep < 0 || stop_fd < 0) fail("epoll_create1/eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered: accept4 below takes one per event batch
    ev.data.ptr = &listener_tag;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) fail("epoll_ctl");
    ev.data.ptr = &stop_tag;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &ev) != 0) fail("epoll_ctl");

    echo_bench::session meter(client, ntohs(addr.sin_port), cfg, "raw_epoll", [stop_fd] {
        std::uint64_t v = 1;
        if (::write(stop_fd, &v, sizeof v) != sizeof v) std::perror("eventfd write");
    });

    std::vector<connection*> open;  // for the final cleanup only
    epoll_event evs[256];
    for (bool running = true; running;) {
        int n = ::epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            void* p = evs[i].data.ptr;
            if (p == &stop_tag) {
                running = false;
            } else if (p == &listener_tag) {
                for (;;) {
                    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;  // EAGAIN (or a transient error: retried on the next event)
                    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    auto* c = new connection{fd, {}};
                    epoll_event cev{};
                    cev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
                    cev.data.ptr = c;
                    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) fail("epoll_ctl");
                    open.push_back(c);
                }
            } else {
                auto* c = static_cast<connection*>(p);
                if (!serve(c)) {
                    std::erase(open, c);
                    close_connection(c);
                }
            }
        }
    }
    for (connection* c : open) close_connection(c);
    ::close(stop_fd);
    ::close(ep);
    ::close(lfd);
    return meter.finish();
}

}  // namespace

int main(int argc, char** argv) {
    return echo_bench::peer_main(argc, argv, "epoll_echo_bench", "raw_epoll",
                                 "raw epoll, edge-triggered", run);
}
