// Unit tests for channel<T>: rendezvous (capacity 0), buffering order,
// try_send/try_recv, close semantics, argument checking, move-only values, and
// what cancelling a send or a recv loses.
#include <uthreads/uthreads.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace ut = uthreads;

ut::options epoll() { return {.backend = "epoll"}; }

ut::task<> yield_times(int n) {
    for (int i = 0; i < n; ++i) co_await ut::yield_now();
}

ut::task<> send_and_flag(ut::channel<int>& ch, int v, bool& sent) {
    co_await ch.send(v);
    sent = true;
}

ut::task<std::optional<int>> recv_one(ut::channel<int>& ch) { co_return co_await ch.recv(); }

TEST(ChannelTest, NegativeCapacityThrowsInvalidArgument) {
    EXPECT_THROW(ut::channel<int>(-1), std::invalid_argument);
    ut::channel<int> zero(0);
    EXPECT_EQ(zero.capacity(), 0u);
    ut::channel<int> four(4);
    EXPECT_EQ(four.capacity(), 4u);
    EXPECT_EQ(four.size(), 0u);
    EXPECT_FALSE(four.closed());
}

TEST(ChannelTest, RendezvousSendCompletesOnlyAfterRecv) {
    bool sent = false;
    bool sent_before_recv = true;
    std::optional<int> got;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto h = ut::spawn(send_and_flag(ch, 5, sent));
            co_await yield_times(5);
            sent_before_recv = sent || h.done();
            EXPECT_EQ(ch.size(), 0u) << "a rendezvous channel buffers nothing";
            got = co_await ch.recv();
            co_await h;
        }(),
        epoll());
    EXPECT_FALSE(sent_before_recv);
    EXPECT_TRUE(sent);
    EXPECT_EQ(got, 5);
}

TEST(ChannelTest, RendezvousRecvWaitsForSender) {
    std::optional<int> got;
    bool got_before_send = true;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto h = ut::spawn(recv_one(ch));
            co_await yield_times(5);
            got_before_send = h.done();
            co_await ch.send(9);  // a receiver is waiting: completes without a buffer
            got = co_await h;
        }(),
        epoll());
    EXPECT_FALSE(got_before_send);
    EXPECT_EQ(got, 9);
}

TEST(ChannelTest, RendezvousTrySendNeedsAWaitingReceiver) {
    ut::run(
        []() -> ut::task<> {
            ut::channel<int> ch(0);
            EXPECT_FALSE(ch.try_send(1)) << "nobody is receiving";
            EXPECT_EQ(ch.try_recv(), std::nullopt);
            auto h = ut::spawn(recv_one(ch));
            co_await yield_times(3);
            EXPECT_TRUE(ch.try_send(2));
            EXPECT_EQ(co_await h, 2);
        }(),
        epoll());
}

TEST(ChannelTest, RendezvousTryRecvTakesFromAWaitingSender) {
    bool sent = false;
    std::optional<int> got;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto h = ut::spawn(send_and_flag(ch, 3, sent));
            co_await yield_times(3);
            got = ch.try_recv();
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(got, 3);
    EXPECT_TRUE(sent);
}

TEST(ChannelTest, BufferedChannelKeepsFifoOrder) {
    std::vector<int> out;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(3);
            for (int i = 1; i <= 3; ++i) co_await ch.send(i);  // fits: no waiting
            EXPECT_EQ(ch.size(), 3u);
            for (int i = 0; i < 3; ++i) out.push_back(*co_await ch.recv());
            EXPECT_EQ(ch.size(), 0u);
            // Wrap around the ring a few times.
            for (int round = 0; round < 5; ++round) {
                for (int i = 0; i < 2; ++i) co_await ch.send(10 * round + i);
                for (int i = 0; i < 2; ++i) out.push_back(*co_await ch.recv());
            }
        }(),
        epoll());
    EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 0, 1, 10, 11, 20, 21, 30, 31, 40, 41}));
}

TEST(ChannelTest, TrySendFailsWhenFullAndBlockedSenderRefillsInOrder) {
    std::vector<int> out;
    bool sender_done_while_full = true;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(3);
            EXPECT_TRUE(ch.try_send(1));
            EXPECT_TRUE(ch.try_send(2));
            EXPECT_TRUE(ch.try_send(3));
            EXPECT_FALSE(ch.try_send(99)) << "full";
            EXPECT_EQ(ch.size(), 3u);
            bool sent = false;
            auto h = ut::spawn(send_and_flag(ch, 4, sent));
            co_await yield_times(3);
            sender_done_while_full = sent;
            out.push_back(*co_await ch.recv());  // frees a slot: the waiting sender's 4 moves in
            co_await h;
            EXPECT_TRUE(sent);
            EXPECT_EQ(ch.size(), 3u);
            while (auto v = ch.try_recv()) out.push_back(*v);
        }(),
        epoll());
    EXPECT_FALSE(sender_done_while_full);
    EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4}));
}

TEST(ChannelTest, ManySendersAreServedFifo) {
    std::vector<int> out;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(1);
            std::vector<ut::join_handle<void>> hs;
            auto sender = [](ut::channel<int>& ch, int v) -> ut::task<> { co_await ch.send(v); };
            for (int i = 0; i < 5; ++i) hs.push_back(ut::spawn(sender(ch, i)));
            co_await yield_times(3);
            for (int i = 0; i < 5; ++i) out.push_back(*co_await ch.recv());
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(out, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(ChannelTest, ManyReceiversAreServedFifo) {
    std::vector<int> got(4, -1);
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto receiver = [](ut::channel<int>& ch, int& slot) -> ut::task<> {
                slot = *co_await ch.recv();
            };
            std::vector<ut::join_handle<void>> hs;
            for (int i = 0; i < 4; ++i) hs.push_back(ut::spawn(receiver(ch, got[i])));
            co_await yield_times(3);
            for (int i = 0; i < 4; ++i) co_await ch.send(100 + i);
            for (auto& h : hs) co_await h;
        }(),
        epoll());
    EXPECT_EQ(got, (std::vector<int>{100, 101, 102, 103}));
}

TEST(ChannelTest, CloseLetsReceiversDrainThenNullopt) {
    std::vector<std::optional<int>> out;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(3);
            co_await ch.send(1);
            co_await ch.send(2);
            ch.close();
            EXPECT_TRUE(ch.closed());
            for (int i = 0; i < 4; ++i) out.push_back(co_await ch.recv());
            EXPECT_EQ(ch.try_recv(), std::nullopt);
        }(),
        epoll());
    EXPECT_EQ(out, (std::vector<std::optional<int>>{1, 2, std::nullopt, std::nullopt}));
}

TEST(ChannelTest, CloseWakesWaitingReceiversWithNullopt) {
    std::optional<int> a = 0, b = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(2);
            auto ha = ut::spawn(recv_one(ch));
            auto hb = ut::spawn(recv_one(ch));
            co_await yield_times(3);
            EXPECT_FALSE(ha.done());
            ch.close();
            a = co_await ha;
            b = co_await hb;
        }(),
        epoll());
    EXPECT_EQ(a, std::nullopt);
    EXPECT_EQ(b, std::nullopt);
}

TEST(ChannelTest, CloseFailsPendingSendersWithChannelClosed) {
    int closed_errors = 0;
    std::vector<std::optional<int>> drained;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(1);
            co_await ch.send(1);  // fills the buffer
            auto sender = [](ut::channel<int>& ch, int v, int& errs) -> ut::task<> {
                try {
                    co_await ch.send(v);
                } catch (const ut::channel_closed&) {
                    ++errs;
                }
            };
            auto h2 = ut::spawn(sender(ch, 2, closed_errors));
            auto h3 = ut::spawn(sender(ch, 3, closed_errors));
            co_await yield_times(3);
            ch.close();
            co_await h2;
            co_await h3;
            // The buffered value survives; the pending senders' values were not delivered.
            for (int i = 0; i < 2; ++i) drained.push_back(co_await ch.recv());
        }(),
        epoll());
    EXPECT_EQ(closed_errors, 2);
    EXPECT_EQ(drained, (std::vector<std::optional<int>>{1, std::nullopt}));
}

TEST(ChannelTest, RendezvousCloseFailsPendingSender) {
    bool closed_error = false;
    std::optional<int> after = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto sender = [](ut::channel<int>& ch, bool& err) -> ut::task<> {
                try {
                    co_await ch.send(1);
                } catch (const ut::channel_closed&) {
                    err = true;
                }
            };
            auto h = ut::spawn(sender(ch, closed_error));
            co_await yield_times(3);
            ch.close();
            co_await h;
            after = co_await ch.recv();
        }(),
        epoll());
    EXPECT_TRUE(closed_error);
    EXPECT_EQ(after, std::nullopt);
}

TEST(ChannelTest, SendAfterCloseThrowsChannelClosed) {
    bool send_threw = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(5);
            ch.close();
            ch.close();  // idempotent
            EXPECT_THROW(ch.try_send(1), ut::channel_closed);
            try {
                co_await ch.send(2);
            } catch (const ut::channel_closed&) {
                send_threw = true;
            }
            EXPECT_EQ(ch.size(), 0u);
        }(),
        epoll());
    EXPECT_TRUE(send_threw);
}

TEST(ChannelTest, ChannelClosedIsALogicError) {
    // Callers may catch it as std::logic_error (and it is never `cancelled`).
    ut::channel<int> ch(1);
    ch.close();
    EXPECT_THROW(ch.try_send(1), std::logic_error);
}

TEST(ChannelTest, MoveOnlyValues) {
    std::vector<int> out;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<std::unique_ptr<int>> buffered(2);
            co_await buffered.send(std::make_unique<int>(1));
            EXPECT_TRUE(buffered.try_send(std::make_unique<int>(2)));
            auto a = co_await buffered.recv();
            auto b = buffered.try_recv();
            out.push_back(a && *a ? **a : -1);
            out.push_back(b && *b ? **b : -1);

            ut::channel<std::unique_ptr<int>> rendezvous(0);
            auto sender = [](ut::channel<std::unique_ptr<int>>& ch) -> ut::task<> {
                co_await ch.send(std::make_unique<int>(3));
                co_await ch.send(std::make_unique<int>(4));
                ch.close();
            };
            auto h = ut::spawn(sender(rendezvous));
            while (auto v = co_await rendezvous.recv()) out.push_back(**v);
            co_await h;
        }(),
        epoll());
    EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4}));
}

TEST(ChannelTest, NonTrivialValuesAreNotCopiedOrLost) {
    std::vector<std::string> out;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<std::string> ch(1);
            auto sender = [](ut::channel<std::string>& ch) -> ut::task<> {
                for (int i = 0; i < 20; ++i) co_await ch.send(std::string(100, char('a' + i)));
                ch.close();
            };
            auto h = ut::spawn(sender(ch));
            while (auto v = co_await ch.recv()) out.push_back(std::move(*v));
            co_await h;
        }(),
        epoll());
    ASSERT_EQ(out.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(out[i], std::string(100, char('a' + i)));
}

TEST(ChannelTest, CancelledRecvTakesNothing) {
    std::optional<int> later = 0;
    bool cancelled = false;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto body = [](ut::channel<int>& ch, bool& c) -> ut::task<> {
                try {
                    (void)co_await ch.recv();
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto victim = ut::spawn(body(ch, cancelled));
            co_await yield_times(3);
            victim.cancel();
            try {
                co_await victim;
            } catch (const ut::cancelled&) {
            }
            EXPECT_FALSE(ch.try_send(1)) << "the cancelled receiver is no longer waiting";
            auto h = ut::spawn(recv_one(ch));
            co_await yield_times(3);
            co_await ch.send(2);
            later = co_await h;
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(later, 2);
}

TEST(ChannelTest, CancelledSendDeliversNothing) {
    bool cancelled = false;
    std::optional<int> leftover = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(0);
            auto body = [](ut::channel<int>& ch, bool& c) -> ut::task<> {
                try {
                    co_await ch.send(1);
                } catch (const ut::cancelled&) {
                    c = true;
                    throw;
                }
            };
            auto victim = ut::spawn(body(ch, cancelled));
            co_await yield_times(3);
            victim.cancel();
            try {
                co_await victim;
            } catch (const ut::cancelled&) {
            }
            leftover = ch.try_recv();
        }(),
        epoll());
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(leftover, std::nullopt);
}

TEST(ChannelTest, AlwaysReadyChannelDoesNotStarveOthers) {
    // A producer/consumer pair on a channel that never blocks must still let a
    // third microthread (and its timer) run: the cooperative budget forces yields.
    bool ticked = false;
    int consumed = 0;
    ut::run(
        [&]() -> ut::task<> {
            ut::channel<int> ch(1);
            auto ticker = [](bool& t) -> ut::task<> {
                co_await ut::sleep_for(std::chrono::milliseconds(1));
                t = true;
            };
            auto h = ut::spawn(ticker(ticked));
            while (!ticked && consumed < 2'000'000) {
                co_await ch.send(consumed);
                (void)co_await ch.recv();
                ++consumed;
            }
            co_await h;
        }(),
        epoll());
    EXPECT_TRUE(ticked);
    EXPECT_LT(consumed, 2'000'000);
}

}  // namespace
