// The Boost.Asio host program for guest-mode conformance runs: an io_context
// created the way an ordinary Asio program creates one (default concurrency
// hint), run one handler at a time with run_one() on this thread.
#ifdef UTHREADS_HAVE_BACKEND_ASIO

#include "conformance/guest_host.hpp"

#include <uthreads/backends/asio.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>

namespace {

class asio_host final : public conformance::guest_host {
public:
    uthreads::guest_runtime attach() override { return uthreads::attach(io_); }

    void run_until(const std::function<bool()>& done) override {
        // A host that expects to be woken from other threads (a test's
        // std::thread completing a promise, a to_thread job) holds a work guard,
        // as any Asio program does: otherwise run_one() returns at once whenever
        // no Asio operation is pending.
        auto work = boost::asio::make_work_guard(io_);
        while (!done()) {
            if (io_.stopped()) io_.restart();
            io_.run_one();
        }
    }

private:
    boost::asio::io_context io_;
};

const bool registered =
    conformance::register_guest_host("asio", [] { return std::make_unique<asio_host>(); });

}  // namespace

#endif  // UTHREADS_HAVE_BACKEND_ASIO
