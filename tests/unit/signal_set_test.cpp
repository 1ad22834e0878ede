// signal_set's process-wide registry under concurrency, without a runtime:
// sets created and destroyed on several threads while another thread keeps
// raising the signal (so the handler walks the table while slots come and go),
// and the disposition each step leaves behind. ASan reports a write to a
// closed-and-reused pipe or a torn slot; the assertions check that no delivery
// to a live set is lost.

#include <uthreads/signal.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

namespace {

namespace ut = uthreads;

std::atomic<int> fallback_calls{0};
void fallback_handler(int) {
    fallback_calls.fetch_add(1, std::memory_order_relaxed);
}

TEST(SignalSetTest, SetsComeAndGoOnManyThreadsWhileTheSignalIsRaised) {
    // A harmless handler underneath, in case a delivery ever found no set: the
    // default action of SIGUSR1 would end the test binary.
    struct sigaction fallback {};
    fallback.sa_handler = fallback_handler;
    sigemptyset(&fallback.sa_mask);
    struct sigaction before {};
    ASSERT_EQ(::sigaction(SIGUSR1, &fallback, &before), 0) << std::strerror(errno);

    std::atomic<bool> stop{false};
    std::atomic<int> lost{0};
    std::atomic<long> raised_by_noise{0};
    std::atomic<long> seen_by_noise{0};
    {
        ut::signal_set noise_set{SIGUSR1};
        // Keeps raising while the others churn; its own set sees every one
        // (drained as it goes, so the pipe never fills).
        std::thread noise([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                ::raise(SIGUSR1);
                raised_by_noise.fetch_add(1, std::memory_order_relaxed);
                while (noise_set.try_wait()) seen_by_noise.fetch_add(1, std::memory_order_relaxed);
            }
        });
        std::vector<std::thread> churn;
        churn.reserve(4);
        for (int t = 0; t < 4; ++t)
            churn.emplace_back([&] {
                for (int i = 0; i < 300; ++i) {
                    ut::signal_set s{SIGUSR1, SIGUSR2};
                    // raise() runs the handler on this thread before returning,
                    // while `s` is registered: `s` must have it.
                    ::raise(SIGUSR1);
                    if (!s.try_wait()) lost.fetch_add(1, std::memory_order_relaxed);
                }
            });
        for (auto& t : churn) t.join();
        stop = true;
        noise.join();
        while (noise_set.try_wait()) seen_by_noise.fetch_add(1, std::memory_order_relaxed);
    }
    EXPECT_EQ(lost.load(), 0);
    // The noise thread's own raises reached its set, plus some of the others'.
    EXPECT_GE(seen_by_noise.load(), raised_by_noise.load());
    EXPECT_EQ(fallback_calls.load(), 0) << "a delivery found no set while sets existed";

    struct sigaction now {};
    ASSERT_EQ(::sigaction(SIGUSR1, nullptr, &now), 0);
    EXPECT_EQ(now.sa_handler, fallback_handler) << "the previous disposition was not restored";
    ASSERT_EQ(::sigaction(SIGUSR2, nullptr, &now), 0);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
    ::sigaction(SIGUSR1, &before, nullptr);
}

TEST(SignalSetTest, MoveAssignmentReleasesTheOldSet) {
    ut::signal_set a{SIGUSR2};
    ut::signal_set b{SIGWINCH};
    ::raise(SIGUSR2);
    a = std::move(b);  // the SIGUSR2 set is gone, its queued delivery with it
    EXPECT_EQ(a.signals(), std::vector<int>{SIGWINCH});
    EXPECT_FALSE(a.try_wait().has_value());
    struct sigaction now {};
    ASSERT_EQ(::sigaction(SIGUSR2, nullptr, &now), 0);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
    ::raise(SIGWINCH);
    EXPECT_EQ(a.try_wait(), std::optional<int>(SIGWINCH));
    // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
    EXPECT_THROW((void)b.try_wait(), std::logic_error);
}

}  // namespace
