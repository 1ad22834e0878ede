/// \file
/// `channel<T>`: a bounded FIFO between microthreads, with close.
///
/// Capacity 0 is a rendezvous: `send` completes only when a receiver has taken
/// the value. Otherwise up to `capacity` values are buffered. Values move
/// directly from sender to a waiting receiver (no buffer round trip), and
/// waiters are served FIFO.
///
/// Thread safety: safe across the workers of one runtime: with several workers
/// every operation runs under the channel's spinlock, and a value handed to a
/// parked receiver is written into its operation before the receiver's worker
/// is told to resume it.
#pragma once

#include <uthreads/detail/waiter_list.hpp>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace uthreads {

namespace detail {
[[noreturn]] void throw_bad_capacity();
}

template <class T>
class channel {
public:
    /// `capacity` 0 means rendezvous. Throws std::invalid_argument if negative.
    explicit channel(std::ptrdiff_t capacity) {
        if (capacity < 0) detail::throw_bad_capacity();
        buf_.resize(static_cast<std::size_t>(capacity));
    }
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    ~channel() = default;

    // Both operations try to complete in await_ready. If they complete but the
    // budget ran out, `yield_` makes await_suspend requeue instead of parking.
    // await_ready has checked cancellation, so await_suspend parks unchecked.
    struct send_operation : detail::queued_waiter {
        send_operation(channel* c, T&& v)
            : ch(c)
            , value(std::move(v)) {}
        channel* ch;
        T value;
        bool closed_seen = false;
        bool yield_ = false;
        bool await_ready() {
            s = &detail::current_scheduler("channel::send");
            return detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
                detail::guard_if<Multi> g(ch->lock_);
                if (ch->closed_) throw channel_closed();
                if (detail::cancel_pending(s->current_)) throw ::uthreads::cancelled{};
                if (!ch->template try_send_now<Multi>(value)) return false;
                if (--s->budget_ > 0) return true;
                yield_ = true;
                return false;
            });
        }
        UTHREADS_ALWAYS_INLINE bool await_suspend(std::coroutine_handle<> h) {
            if (yield_) {
                detail::yield_after(*s, h);
                return true;
            }
            return detail::by_workers(
                [this]<bool Multi>(std::coroutine_handle<> h) UTHREADS_ALWAYS_INLINE {
                    detail::guard_if<Multi> g(ch->lock_);
                    if constexpr (Multi) {
                        // Another worker may have changed the channel since await_ready.
                        if (ch->closed_) {
                            closed_seen = true;
                            return false;
                        }
                        if (ch->template try_send_now<Multi>(value)) return false;
                    }
                    detail::park_in_checked<send_operation, &list_of, Multi>(this, ch->senders_, h,
                                                                             ch->lock_);
                    return true;
                },
                h);
        }
        void await_resume() const {
            detail::throw_if_cancelled(*this);
            if (closed_seen) throw channel_closed();
        }
        static detail::waiter_list& list_of(send_operation* w) { return w->ch->senders_; }
    };

    struct recv_operation : detail::queued_waiter {
        channel* ch;
        std::optional<T> slot;
        bool yield_ = false;
        bool await_ready() {
            s = &detail::current_scheduler("channel::recv");
            if (detail::cancel_pending(s->current_)) throw ::uthreads::cancelled{};
            return detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
                detail::guard_if<Multi> g(ch->lock_);
                if (!ch->template try_recv_now<Multi>(slot)) return false;
                if (--s->budget_ > 0) return true;
                yield_ = true;
                return false;
            });
        }
        UTHREADS_ALWAYS_INLINE bool await_suspend(std::coroutine_handle<> h) {
            if (yield_) {
                detail::yield_after(*s, h);
                return true;
            }
            return detail::by_workers(
                [this]<bool Multi>(std::coroutine_handle<> h) UTHREADS_ALWAYS_INLINE {
                    detail::guard_if<Multi> g(ch->lock_);
                    // Another worker may have sent or closed since await_ready.
                    if constexpr (Multi)
                        if (ch->template try_recv_now<Multi>(slot)) return false;
                    detail::park_in_checked<recv_operation, &list_of, Multi>(this, ch->receivers_,
                                                                             h, ch->lock_);
                    return true;
                },
                h);
        }
        std::optional<T> await_resume() {
            detail::throw_if_cancelled(*this);
            return std::move(slot);
        }
        static detail::waiter_list& list_of(recv_operation* w) { return w->ch->receivers_; }
    };

    /// Send `v`, waiting while the channel is full (for capacity 0: until a
    /// receiver takes it). Throws channel_closed if the channel is or becomes
    /// closed before the value was taken. Suspension and cancellation point: a
    /// cancelled or failed send did not deliver `v`, and `v` is dropped with the
    /// operation (keep a copy if you need to retry).
    send_operation send(T v) { return send_operation(this, std::move(v)); }

    /// Receive the next value, waiting while none is available. Returns nullopt
    /// once the channel is closed and drained. Suspension and cancellation point:
    /// a cancelled recv took nothing (loses nothing).
    recv_operation recv() {
        recv_operation op{};
        op.ch = this;
        return op;
    }

    /// Send without waiting: false if it would have to wait. Throws channel_closed
    /// on a closed channel.
    bool try_send(T v) {
        return detail::by_workers(
            [this]<bool Multi>(T* v) UTHREADS_ALWAYS_INLINE {
                detail::guard_if<Multi> g(lock_);
                if (closed_) throw channel_closed();
                return try_send_now<Multi>(*v);
            },
            &v);
    }

    /// Receive without waiting: nullopt if nothing is available (or closed and
    /// drained; check `closed()` to tell them apart).
    std::optional<T> try_recv() {
        std::optional<T> out;
        detail::by_workers(
            [this]<bool Multi>(std::optional<T>* out) UTHREADS_ALWAYS_INLINE {
                detail::guard_if<Multi> g(lock_);
                try_recv_now<Multi>(*out);
            },
            &out);
        return out;
    }

    /// Close: pending and future sends throw channel_closed; receivers drain what
    /// is buffered, then get nullopt. Idempotent.
    void close() {
        detail::by_workers([this]<bool Multi>() UTHREADS_ALWAYS_INLINE {
            detail::guard_if<Multi> g(lock_);
            if (closed_) return;
            closed_ = true;
            while (!receivers_.empty()) detail::wake<Multi>(receivers_.pop_front());
            while (!senders_.empty()) {
                auto* w = static_cast<send_operation*>(senders_.pop_front());
                w->closed_seen = true;
                detail::wake<Multi>(w);
            }
        });
    }

    bool closed() const noexcept {
        detail::sync_guard g(lock_);
        return closed_;
    }
    std::size_t size() const noexcept {
        detail::sync_guard g(lock_);
        return count_;
    }
    std::size_t capacity() const noexcept { return buf_.size(); }

private:
    // Moves `v` to a waiting receiver or into the buffer; false if neither.
    template <bool Multi>
    bool try_send_now(T& v) {
        if (!receivers_.empty()) {
            auto* r = static_cast<recv_operation*>(receivers_.pop_front());
            r->slot.emplace(std::move(v));
            detail::wake<Multi>(r);
            return true;
        }
        if (count_ < buf_.size()) {
            buf_[tail_index()].emplace(std::move(v));
            ++count_;
            return true;
        }
        return false;
    }

    // Takes the oldest value (refilling the buffer from the longest-waiting
    // sender); false if nothing is available and the channel is open.
    template <bool Multi>
    bool try_recv_now(std::optional<T>& out) {
        if (count_ > 0) {
            auto& cell = buf_[head_];
            out.emplace(std::move(*cell));
            cell.reset();
            if (++head_ == buf_.size()) head_ = 0;
            --count_;
            if (!senders_.empty()) {
                auto* w = static_cast<send_operation*>(senders_.pop_front());
                buf_[tail_index()].emplace(std::move(w->value));
                ++count_;
                detail::wake<Multi>(w);
            }
            return true;
        }
        if (!senders_.empty()) {
            auto* w = static_cast<send_operation*>(senders_.pop_front());
            out.emplace(std::move(w->value));
            detail::wake<Multi>(w);
            return true;
        }
        return closed_;
    }

    std::size_t tail_index() const noexcept {
        std::size_t i = head_ + count_;
        return i >= buf_.size() ? i - buf_.size() : i;
    }

    std::vector<std::optional<T>> buf_;
    std::size_t head_ = 0, count_ = 0;
    detail::waiter_list senders_, receivers_;
    bool closed_ = false;
    mutable detail::spinlock lock_;
};

}  // namespace uthreads
