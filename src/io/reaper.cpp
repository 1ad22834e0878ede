// The background reaper: collects children whose `process` object was
// destroyed before their exit status was (uthreads/process.hpp).
//
// Facts this relies on:
// - A pidfd polls readable once its process has exited, and waitid(P_PIDFD,
//   WNOHANG) then reaps exactly that child. Holding the pidfd keeps nobody
//   else's child at risk: we never wait for "any child".
// - An orphan cannot be left to a runtime: it may be destroyed outside one, and
//   a runtime ends (and joins its blocking pool) long before a `sleep 3600`
//   child does. So one helper thread does it, started when the first orphan
//   that has not exited yet arrives and ending when the last one is reaped: no
//   thread, descriptor or zombie remains once all orphans have exited.
// - The thread blocks every signal, so a process-directed signal (SIGINT, a
//   signal a signalfd user blocked in its own threads) is never delivered to
//   it: the library's thread must not change who handles the program's
//   signals.
#include "reaper.hpp"

#include <uthreads/process.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <mutex>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace uthreads::detail {

namespace {

struct reaper_state {
    std::mutex mu;
    std::vector<int> pidfds;  // guarded by mu: orphans not yet reaped
    int wake_fd = -1;         // guarded by mu: eventfd, open while the thread runs
    bool running = false;     // guarded by mu
};

// Never destroyed: the detached thread may still be running at exit.
reaper_state& state() {
    static auto* s = new reaper_state;
    return *s;
}

// Reap the child if it has exited. True if it was reaped, or cannot be (it is
// not our child any more: someone reaped it behind our back), so the pidfd can
// be dropped either way.
bool try_reap(int pidfd) noexcept {
    for (;;) {
        siginfo_t info{};
        if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                     WEXITED | WNOHANG) == 0)
            return info.si_pid != 0;
        if (errno != EINTR) return true;
    }
}

void reaper_thread() {
    reaper_state& st = state();
    std::vector<pollfd> fds;
    for (;;) {
        {
            std::lock_guard lock(st.mu);
            fds.clear();
            fds.push_back({st.wake_fd, POLLIN, 0});
            for (int fd : st.pidfds) fds.push_back({fd, POLLIN, 0});
        }
        // Without an eventfd (it could not be created) new orphans are picked
        // up by polling every 50 ms instead.
        int timeout = fds[0].fd < 0 ? 50 : -1;
        if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
            // Cannot happen with valid descriptors; back off rather than spin.
            ::usleep(50'000);
        }
        if (fds[0].revents & POLLIN) {
            std::uint64_t n = 0;
            [[maybe_unused]] ssize_t r = ::read(fds[0].fd, &n, sizeof n);
        }
        std::vector<int> reaped;
        for (std::size_t i = 1; i < fds.size(); ++i)
            if (fds[i].revents != 0 && try_reap(fds[i].fd)) reaped.push_back(fds[i].fd);
        std::lock_guard lock(st.mu);
        for (int fd : reaped) {
            std::erase(st.pidfds, fd);
            ::close(fd);
        }
        // invariant: the thread ends (closing its eventfd) in the same critical
        // section that removes the last orphan, so unreaped_orphans() == 0
        // implies no descriptor of the reaper is open.
        if (st.pidfds.empty()) {
            if (st.wake_fd >= 0) ::close(st.wake_fd);
            st.wake_fd = -1;
            st.running = false;
            return;
        }
    }
}

void start_thread(reaper_state& st) noexcept {
    st.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // The new thread inherits this thread's mask: block everything around its
    // creation.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        std::thread(reaper_thread).detach();
        st.running = true;
    } catch (...) {
        // No thread: the orphan stays listed and the next one retries.
        if (st.wake_fd >= 0) ::close(st.wake_fd);
        st.wake_fd = -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

void reap_in_background(int pidfd) noexcept {
    if (pidfd < 0) return;
    if (try_reap(pidfd)) {
        ::close(pidfd);
        return;
    }
    reaper_state& st = state();
    std::lock_guard lock(st.mu);
    st.pidfds.push_back(pidfd);
    if (!st.running) {
        start_thread(st);
    } else if (st.wake_fd >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(st.wake_fd, &one, sizeof one);
    }
}

}  // namespace uthreads::detail

namespace uthreads::lowlevel {

std::size_t unreaped_orphans() noexcept {
    auto& st = detail::state();
    std::lock_guard lock(st.mu);
    return st.pidfds.size();
}

}  // namespace uthreads::lowlevel
