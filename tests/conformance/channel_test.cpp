// channel<T>: FIFO, capacity, rendezvous, close, many producers/consumers.

#include "conformance.hpp"

#include <atomic>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace uthreads_conformance {
namespace {

// GoogleTest suite names are CamelCase, as in tests/unit.
class ChannelTest : public backend_test {};  // NOLINT(readability-identifier-naming)

TEST_P(ChannelTest, BufferedValuesComeOutInOrder) {
    std::vector<int> got;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(8);
        for (int i = 0; i < 8; ++i) co_await ch.send(i);
        EXPECT_EQ(ch.size(), 8u);
        EXPECT_EQ(ch.capacity(), 8u);
        EXPECT_FALSE(ch.try_send(99));  // full
        for (int i = 0; i < 8; ++i) got.push_back(*co_await ch.recv());
        EXPECT_EQ(ch.try_recv(), std::nullopt);
    }());
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST_P(ChannelTest, SenderWaitsWhileFull) {
    std::atomic<int> sent{0};
    std::vector<int> received;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(2);
        auto producer = ut::spawn([](ut::channel<int>& c, std::atomic<int>& s) -> ut::task<> {
            for (int i = 0; i < 5; ++i) {
                co_await c.send(i);
                ++s;
            }
            c.close();
        }(ch, sent));
        // With several workers the producer may start late: wait for it to fill
        // the channel, then give a third send time to (wrongly) complete.
        co_await yield_until([&] { return sent.load() >= 2; }, "two sends completed");
        co_await ut::sleep_for(1ms);
        EXPECT_EQ(ch.size(), 2u);
        EXPECT_EQ(sent.load(), 2) << "send completed on a full channel";
        while (auto v = co_await ch.recv()) received.push_back(*v);
        co_await producer;
    }());
    // Every value is received, in order.
    EXPECT_EQ(received, (std::vector<int>{0, 1, 2, 3, 4}));
    EXPECT_EQ(sent.load(), 5);
}

TEST_P(ChannelTest, RendezvousSendCompletesOnlyWhenReceived) {
    bool sent_before_recv = true;
    int got = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(0);
        std::atomic<bool> sent{false};
        shared_log<int> parked;
        auto sender = ut::spawn(
            [](ut::channel<int>& c, std::atomic<bool>& s, shared_log<int>& p) -> ut::task<> {
                co_await p.queued(c.send(42), 0);
                s = true;
            }(ch, sent, parked));
        co_await yield_until([&] { return parked.size() >= 1; }, "the sender parked in send()");
        co_await ut::sleep_for(2ms);
        sent_before_recv = sent.load();
        EXPECT_EQ(ch.size(), 0u);
        got = *co_await ch.recv();
        co_await sender;
    }());
    EXPECT_FALSE(sent_before_recv);
    EXPECT_EQ(got, 42);
}

TEST_P(ChannelTest, RendezvousTrySendNeedsWaitingReceiver) {
    bool without = true, with = false;
    std::optional<int> got;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(0);
        without = ch.try_send(1);
        shared_log<int> parked;
        auto r = ut::spawn(
            [](ut::channel<int>& c, std::optional<int>& g, shared_log<int>& p) -> ut::task<> {
                g = co_await p.queued(c.recv(), 0);
            }(ch, got, parked));
        co_await yield_until([&] { return parked.size() >= 1; }, "the receiver parked in recv()");
        with = ch.try_send(2);
        co_await r;
    }());
    EXPECT_FALSE(without);
    EXPECT_TRUE(with);
    EXPECT_EQ(got, std::optional<int>(2));
}

TEST_P(ChannelTest, CloseDrainsThenReturnsNullopt) {
    std::vector<std::optional<int>> got;
    bool closed = false;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(4);
        co_await ch.send(1);
        co_await ch.send(2);
        ch.close();
        ch.close();  // idempotent
        closed = ch.closed();
        for (int i = 0; i < 4; ++i) got.push_back(co_await ch.recv());
    }());
    EXPECT_TRUE(closed);
    EXPECT_EQ(got, (std::vector<std::optional<int>>{1, 2, std::nullopt, std::nullopt}));
}

TEST_P(ChannelTest, SendAfterCloseThrowsChannelClosed) {
    int threw = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<std::string> ch(1);
        ch.close();
        try {
            co_await ch.send("x");
        } catch (const ut::channel_closed&) {
            ++threw;
        }
        try {
            (void)ch.try_send("y");
        } catch (const ut::channel_closed&) {
            ++threw;
        }
        // channel_closed is a std::logic_error.
        try {
            co_await ch.send("z");
        } catch (const std::logic_error&) {
            ++threw;
        }
    }());
    EXPECT_EQ(threw, 3);
}

TEST_P(ChannelTest, CloseWakesPendingReceiversWithNullopt) {
    std::atomic<int> got_nullopt{0};
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(0);
        shared_log<int> parked;
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(3);
        for (int i = 0; i < 3; ++i)
            hs.push_back(ut::spawn(
                [](ut::channel<int>& c, shared_log<int>& p, std::atomic<int>& n) -> ut::task<> {
                    auto v = co_await p.queued(c.recv(), 0);
                    if (!v) ++n;
                }(ch, parked, got_nullopt)));
        co_await yield_until([&] { return parked.size() >= 3; }, "parked >= 3");
        ch.close();
        for (auto& h : hs) co_await h;
    }());
    EXPECT_EQ(got_nullopt.load(), 3);
}

TEST_P(ChannelTest, CloseWakesPendingSendersWithChannelClosed) {
    std::atomic<int> closed_errors{0};
    std::vector<std::optional<int>> drained;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(1);
        co_await ch.send(0);
        shared_log<int> parked;
        std::vector<ut::join_handle<void>> hs;
        hs.reserve(3);
        for (int i = 1; i <= 3; ++i)
            hs.push_back(ut::spawn([](ut::channel<int>& c, int v, shared_log<int>& p,
                                      std::atomic<int>& e) -> ut::task<> {
                try {
                    co_await p.queued(c.send(v), v);
                } catch (const ut::channel_closed&) {
                    ++e;
                }
            }(ch, i, parked, closed_errors)));
        co_await yield_until([&] { return parked.size() >= 3; }, "parked >= 3");
        ch.close();
        for (auto& h : hs) co_await h;
        drained.push_back(co_await ch.recv());
        drained.push_back(co_await ch.recv());
    }());
    EXPECT_EQ(closed_errors.load(), 3);
    // The buffered value sent before close is still delivered; blocked sends are not.
    EXPECT_EQ(drained, (std::vector<std::optional<int>>{0, std::nullopt}));
}

TEST_P(ChannelTest, ManyProducersManyConsumers) {
    // Atomic: with several workers the consumers run in parallel.
    std::atomic<long long> total{0};
    std::atomic<int> received{0};
    run_on_backend([&]() -> ut::task<> {
        ut::channel<int> ch(3);
        co_await ut::with_nursery([&](ut::nursery& consumers) -> ut::task<> {
            for (int c = 0; c < 4; ++c)
                consumers.spawn([](ut::channel<int>& chan, std::atomic<long long>& t,
                                   std::atomic<int>& r) -> ut::task<> {
                    while (auto v = co_await chan.recv()) {
                        t += *v;
                        ++r;
                        if (*v % 5 == 0) co_await ut::yield_now();
                    }
                }(ch, total, received));
            co_await ut::with_nursery([&](ut::nursery& producers) -> ut::task<> {
                for (int p = 0; p < 5; ++p)
                    producers.spawn([](ut::channel<int>& chan, int base) -> ut::task<> {
                        for (int i = 1; i <= 200; ++i) {
                            co_await chan.send(base + i);
                            if (i % 17 == 0) co_await ut::sleep_for(50us);
                        }
                    }(ch, p * 1000));
                co_return;
            });
            ch.close();  // consumers drain what is left, then see nullopt
        });
    }());
    long long expected = 0;
    for (int p = 0; p < 5; ++p)
        for (int i = 1; i <= 200; ++i) expected += p * 1000 + i;
    EXPECT_EQ(received.load(), 1000);
    EXPECT_EQ(total.load(), expected);
}

TEST_P(ChannelTest, MoveOnlyValues) {
    int sum = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::channel<std::unique_ptr<int>> ch(0);
        auto producer = ut::spawn([](ut::channel<std::unique_ptr<int>>& c) -> ut::task<> {
            for (int i = 1; i <= 10; ++i) co_await c.send(std::make_unique<int>(i));
            c.close();
        }(ch));
        while (auto p = co_await ch.recv()) sum += **p;
        co_await producer;
    }());
    EXPECT_EQ(sum, 55);
}

TEST_P(ChannelTest, NegativeCapacityThrows) {
    EXPECT_THROW(ut::channel<int>(-1), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, ChannelTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, ChannelTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace
}  // namespace uthreads_conformance
