// The simulation backend: virtual time and a shuffled schedule, for tests.
//
// Facts this relies on:
// - Time is virtual. now() starts at a fixed point and only moves when the core
//   would sleep: run_once(timeout) advances the clock by `timeout` at once, so a
//   one-hour sleep finishes immediately and the outcome does not depend on how
//   fast the machine is.
// - Real descriptors still work: they are watched by the epoll machinery this
//   class inherits. Before jumping the clock while descriptors are registered,
//   it waits for real I/O for a short real-time threshold (like Trio's
//   autojump_threshold), so loopback traffic in flight is not overtaken by a
//   virtual timeout. With no descriptors the jump is immediate.
// - The core shuffles its ready queue from options.seed (shuffles_ready_queue),
//   so one seed gives one schedule and other seeds explore others.
#include "../epoll/epoll_backend.hpp"

#include <algorithm>

namespace uthreads::backends {

namespace {

class sim_backend final : public epoll_backend {
public:
    std::string_view name() const noexcept override { return "sim"; }

    void run_once(std::optional<std::chrono::nanoseconds> timeout) override {
        // Whatever is ready for real (I/O, wake-ups) comes first.
        if (poll_events(std::chrono::nanoseconds(0)) > 0) return;
        if (!timeout) {
            // Nothing to jump to: only real I/O or a wake-up can make progress.
            poll_events(std::nullopt);
            return;
        }
        if (*timeout <= std::chrono::nanoseconds(0)) return;
        if (watched() > 0 &&
            poll_events(std::min<std::chrono::nanoseconds>(*timeout, io_threshold)) > 0)
            return;
        now_ += *timeout;
    }

    std::chrono::steady_clock::time_point now() const override { return now_; }
    bool shuffles_ready_queue() const noexcept override { return true; }

private:
    static constexpr std::chrono::nanoseconds io_threshold = std::chrono::milliseconds(20);
    // A fixed origin, so traces of two runs compare equal.
    std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};

}  // namespace

std::unique_ptr<lowlevel::backend> make_sim_backend() { return std::make_unique<sim_backend>(); }

}  // namespace uthreads::backends
