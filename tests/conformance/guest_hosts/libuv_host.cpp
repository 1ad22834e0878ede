// The libuv host program for guest-mode conformance runs: a uv_loop_t of its own
// (uv_loop_init, as a program that does not use the default loop), run one
// UV_RUN_ONCE iteration at a time, and closed the way libuv's own tests close
// theirs: run until the close callbacks ran, then uv_loop_close must return 0.
#ifdef UTHREADS_HAVE_BACKEND_LIBUV

#include "conformance/guest_host.hpp"

#include <uthreads/backends/libuv.hpp>

#include <uv.h>

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace {

// The first uv_loop_init of a process creates a pipe that libuv keeps until exit
// (the lock of its process-wide signal handling, uv__signal_global_once_init).
// The suite counts open descriptors around every test, so create it before any
// test takes its baseline; every per-loop descriptor is still counted.
const bool libuv_process_state_created = [] {
    uv_loop_t loop;
    if (uv_loop_init(&loop) == 0) uv_loop_close(&loop);
    return true;
}();

class libuv_host final : public conformance::guest_host {
public:
    libuv_host()
        : loop_(std::make_unique<uv_loop_t>()) {
        if (int rc = uv_loop_init(loop_.get()); rc != 0)
            throw std::runtime_error(std::string("libuv_host: uv_loop_init: ") + uv_strerror(rc));
    }

    ~libuv_host() override {
        // The guest has shut down: its handles are closing. One more run lets
        // libuv call their close callbacks (it returns when nothing is left).
        uv_run(loop_.get(), UV_RUN_DEFAULT);
        int rc = uv_loop_close(loop_.get());
        EXPECT_EQ(rc, 0) << "uv_loop_close: " << (rc ? uv_strerror(rc) : "ok")
                         << " (handles of the guest left on the host loop)";
        if (rc != 0) (void)loop_.release();  // a busy loop must not be freed
    }

    libuv_host(const libuv_host&) = delete;
    libuv_host& operator=(const libuv_host&) = delete;

    uthreads::guest_runtime attach() override { return uthreads::attach(loop_.get()); }

    void run_until(const std::function<bool()>& done) override {
        while (!done()) {
            if (uv_run(loop_.get(), UV_RUN_ONCE) == 0 && !done()) {
                // The loop is no longer alive, yet the guest still has its main
                // microthread: the guest failed to keep the loop alive. Fail
                // instead of spinning.
                ADD_FAILURE() << "uv_run returned with nothing alive before the test finished";
                return;
            }
        }
    }

private:
    std::unique_ptr<uv_loop_t> loop_;
};

const bool registered =
    conformance::register_guest_host("libuv", [] { return std::make_unique<libuv_host>(); });

}  // namespace

#endif  // UTHREADS_HAVE_BACKEND_LIBUV
