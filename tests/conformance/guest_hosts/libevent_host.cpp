// The libevent host program for guest-mode conformance runs: an event_base
// created the way an ordinary libevent program creates one (event_base_new:
// default method, libevent's coarse monotonic clock, no threading support), run
// one EVLOOP_ONCE iteration at a time.
#ifdef UTHREADS_HAVE_BACKEND_LIBEVENT

#include "conformance/guest_host.hpp"

#include <uthreads/backends/libevent.hpp>

#include <event2/event.h>

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>

namespace {

class libevent_host final : public conformance::guest_host {
public:
    libevent_host()
        : base_(event_base_new()) {
        if (!base_) throw std::runtime_error("libevent_host: event_base_new failed");
    }
    ~libevent_host() override { event_base_free(base_); }
    libevent_host(const libevent_host&) = delete;
    libevent_host& operator=(const libevent_host&) = delete;

    uthreads::guest_runtime attach() override { return uthreads::attach(base_); }

    void run_until(const std::function<bool()>& done) override {
        while (!done()) {
            int rc = event_base_loop(base_, EVLOOP_ONCE);
            if (rc != 0) {
                // 1: no events left in the base (the guest's wake-up event is
                // always there while it is attached), -1: the loop failed.
                // Either way it would never become done: fail instead of spinning.
                ADD_FAILURE() << "event_base_loop returned " << rc << " before the test finished";
                return;
            }
        }
    }

private:
    event_base* base_;
};

const bool registered =
    conformance::register_guest_host("libevent", [] { return std::make_unique<libevent_host>(); });

}  // namespace

#endif  // UTHREADS_HAVE_BACKEND_LIBEVENT
