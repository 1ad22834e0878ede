// The native Linux backend: epoll + eventfd.
//
// Some facts about epoll this file relies on:
// - Descriptors are registered edge-triggered (EPOLLET) for both directions
//   once, when the core first has to wait on them. A wait costs no epoll_ctl;
//   the core always tries the system call first and parks only on EAGAIN, so an
//   edge can never be missed: EAGAIN means the buffer was empty (or full) at that
//   moment, and any later change produces a new edge.
// - An edge that arrives while nobody waits is simply dropped; the next
//   operation tries the system call first anyway. `want` is therefore a no-op.
// - epoll_wait is the only place the thread sleeps. wake() writes to an eventfd
//   registered level-triggered; an atomic flag keeps repeated wake()s to one
//   write until the loop has drained it.
// - Timeouts use epoll_pwait2 (nanoseconds) where the kernel has it, else
//   epoll_wait with milliseconds rounded up: never early.
// - epoll_ctl(DEL) happens before close(): closing a descriptor that was dup()ed
//   elsewhere would otherwise leave it registered.
#pragma once

#include <uthreads/lowlevel/backend.hpp>

#include <atomic>
#include <sys/epoll.h>

namespace uthreads::backends {

class epoll_backend : public lowlevel::backend {
public:
    epoll_backend();
    ~epoll_backend() override;
    std::string_view name() const noexcept override { return "epoll"; }
    void add(lowlevel::io_watcher& w) override;
    void want(lowlevel::io_watcher&, unsigned) override {}
    void remove(lowlevel::io_watcher& w) noexcept override;
    void run_once(std::optional<std::chrono::nanoseconds> timeout) override;
    void wake() noexcept override;

protected:
    /// Wait up to `timeout` and dispatch; returns how many events (including a
    /// wake-up) were handled.
    int poll_events(std::optional<std::chrono::nanoseconds> timeout);
    /// Descriptors registered through add() (the eventfd not counted).
    std::size_t watched() const noexcept { return watched_; }

private:
    int ep_ = -1;
    int wake_fd_ = -1;
    std::atomic<bool> wake_pending_{false};
    std::size_t watched_ = 0;
    bool have_pwait2_ = true;
    static constexpr int max_events = 256;
    epoll_event events_[max_events];
};

}  // namespace uthreads::backends
