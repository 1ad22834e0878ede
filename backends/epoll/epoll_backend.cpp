// See epoll_backend.hpp for the facts about epoll this relies on.
#include "epoll_backend.hpp"

#include <cerrno>
#include <ctime>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

namespace uthreads::backends {

namespace {
[[noreturn]] void throw_errno(const char* what) {
    throw std::system_error(errno, std::system_category(), std::string("uthreads epoll backend: ") + what);
}
}  // namespace

epoll_backend::epoll_backend() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw_errno("epoll_create1");
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        int err = errno;
        ::close(ep_);
        errno = err;
        throw_errno("eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // nullptr marks the wake-up eventfd
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
        int err = errno;
        ::close(wake_fd_);
        ::close(ep_);
        errno = err;
        throw_errno("epoll_ctl(eventfd)");
    }
}

epoll_backend::~epoll_backend() {
    ::close(wake_fd_);
    ::close(ep_);
}

void epoll_backend::add(lowlevel::io_watcher& w) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &w;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, w.fd, &ev) != 0) throw_errno("epoll_ctl(ADD)");
    ++watched_;
}

void epoll_backend::remove(lowlevel::io_watcher& w) noexcept {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, w.fd, nullptr);
    --watched_;
}

int epoll_backend::poll_events(std::optional<std::chrono::nanoseconds> timeout) {
    int n;
    if (have_pwait2_) {
        timespec ts{};
        timespec* tsp = nullptr;
        if (timeout) {
            ts.tv_sec = static_cast<time_t>(timeout->count() / 1'000'000'000);
            ts.tv_nsec = static_cast<long>(timeout->count() % 1'000'000'000);
            tsp = &ts;
        }
        n = ::epoll_pwait2(ep_, events_, max_events, tsp, nullptr);
        if (n < 0 && errno == ENOSYS) {
            have_pwait2_ = false;
            return poll_events(timeout);
        }
    } else {
        int ms = -1;
        if (timeout) ms = static_cast<int>((timeout->count() + 999'999) / 1'000'000);
        n = ::epoll_wait(ep_, events_, max_events, ms);
    }
    if (n < 0) {
        if (errno == EINTR) return 0;
        throw_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
        epoll_event& e = events_[i];
        if (!e.data.ptr) {
            // Drain, then clear the flag. The other order loses wake-ups: a
            // wake() between the clear and the read has its write swallowed and
            // leaves the flag set over an empty eventfd, so every later wake()
            // returns early. A wake() between the read and the clear is not
            // lost: it published its work before calling wake(), and core
            // drains that work after run_once returns.
            std::uint64_t v;
            (void)::read(wake_fd_, &v, sizeof v);
            wake_pending_.store(false, std::memory_order_release);
            continue;
        }
        auto* w = static_cast<lowlevel::io_watcher*>(e.data.ptr);
        unsigned bits = 0;
        if (e.events & (EPOLLIN | EPOLLRDHUP)) bits |= lowlevel::readable;
        if (e.events & EPOLLOUT) bits |= lowlevel::writable;
        if (e.events & (EPOLLERR | EPOLLHUP)) bits |= lowlevel::io_error;
        w->ready(w, bits);
    }
    return n;
}

void epoll_backend::run_once(std::optional<std::chrono::nanoseconds> timeout) { poll_events(timeout); }

void epoll_backend::wake() noexcept {
    // acq_rel: pairs with the release store in poll_events, so a wake() that sees
    // the flag clear is ordered after the drain and its write is not swallowed.
    if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
    std::uint64_t one = 1;
    (void)::write(wake_fd_, &one, sizeof one);
}

std::unique_ptr<lowlevel::backend> make_epoll_backend() { return std::make_unique<epoll_backend>(); }

}  // namespace uthreads::backends
