/// \file
/// Chase–Lev work-stealing deque: one owner pushes and pops at the bottom, any
/// number of thieves steal from the top.
///
/// This is the per-worker ready queue of the multi-threaded runtime (DESIGN §5).
/// The owner treats it as a LIFO stack (`push`, `pop`: cheap, no read-modify-write
/// except when racing for the very last element); idle workers take the oldest
/// item from the other end (`steal`: one CAS). The algorithm is Chase and Lev,
/// "Dynamic circular work-stealing deque" (SPAA 2005), with the C11 memory orders
/// of Lê, Pop, Cohen and Zappa Nardelli, "Correct and efficient work-stealing for
/// weak memory models" (PPoPP 2013). Each order below carries the reason it is
/// needed; the comments refer to these facts:
///
/// - `top_` only grows, and only by a successful CAS (thieves, or the owner taking
///   the last element). Whoever moves `top_` from t to t+1 owns item t. That CAS
///   is the only point where owner and thieves arbitrate; everything else is
///   reads of the other side's progress.
/// - `bottom_` is written only by the owner. `pop` first *reserves* item b-1 by
///   lowering `bottom_`, then reads `top_`; `steal` reads `top_`, then `bottom_`.
///   A seq_cst exchange of `bottom_` in `pop` and a seq_cst fence in `steal`
///   make it impossible for the owner and a thief to both believe they own the
///   same non-last item (the store→load order that only a full barrier gives; on
///   x86 an `xchg` or an `mfence`).
/// - The circular buffer grows (doubles) when full; the old buffer stays allocated
///   until the deque is destroyed, because a slow thief may still read a slot of
///   it. That costs at most the size of the current buffer again (geometric sum),
///   and needs neither hazard pointers nor epochs.
/// - Slots are atomics accessed with relaxed order: a thief may read a slot that
///   the owner is overwriting (it then loses the CAS and discards what it read).
///   Making that read an atomic keeps it defined behaviour and TSan-clean.
///
/// Items are non-null pointers (`nullptr` means "nothing"); the deque never
/// dereferences or frees them. Whatever the owner wrote to `*item` before
/// `push(item)` is visible to the thread that pops or steals it.
///
/// Thread safety: `push`, `pop` and `capacity` are for the owning thread only;
/// `steal` and `size_estimate` may be called from any thread. The deque must
/// outlive every concurrent `steal`.
///
/// Not provided: a batch `steal_half`. Moving `top_` by n > 1 with one CAS races
/// with `pop`, which takes any non-last item without a CAS; a correct batch steal
/// needs a different protocol (Hendler and Shavit's steal-half deque, or Go's
/// bounded run queue), left for when measurements ask for it.
#pragma once

#include <uthreads/detail/atomic_policy.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace uthreads::detail {

/// Outcome of `ws_deque::steal`.
enum class steal_status {
    empty,    ///< the deque had nothing to steal
    abort,    ///< lost a race (with another thief or the owner); retrying may succeed
    success,  ///< `item` is now owned by the caller
};

template <class Ptr>
struct steal_result {
    steal_status status;
    Ptr item;  ///< non-null iff status == success
};

/// Grants unit tests access to a deque's internals (to build deliberately broken
/// variants for the model checker). Defined only in tests.
struct ws_deque_test_access;

template <class Ptr, class Atomics = std_atomics>
requires std::is_pointer_v<Ptr>
class ws_deque {
public:
    /// An empty deque with room for `min_capacity` items (rounded up to a power of
    /// two, at least 2) before its first growth.
    explicit ws_deque(std::size_t min_capacity = 64)
        : buffer_(new buffer(round_up(min_capacity))) {}

    ws_deque(const ws_deque&) = delete;
    ws_deque& operator=(const ws_deque&) = delete;

    /// Frees every buffer. No thief may be inside `steal`; items still in the deque
    /// are not touched (they are only pointers).
    ~ws_deque() {
        delete buffer_.load(std::memory_order_relaxed);
        while (retired_ != nullptr) delete std::exchange(retired_, retired_->retired_next);
    }

    /// Owner only. Adds `item` (non-null) at the bottom; grows the buffer when full.
    /// Returns how many items the deque held just before, as the owner saw it
    /// (thieves may have taken some since).
    std::size_t push(Ptr item) {
        // invariant: only the owner stores bottom_, so relaxed reads our own last store.
        const std::int64_t b = bottom_.load(std::memory_order_relaxed);
        // acquire: pairs with the thieves' CAS on top_, so their reads of the slots
        // they took happen before we overwrite those slots below.
        const std::int64_t t = top_.load(std::memory_order_acquire);
        buffer* buf = buffer_.load(std::memory_order_relaxed);  // only the owner stores it
        if (b - t > buf->mask) buf = grow(buf, t, b);
        buf->slot(b).store(item, std::memory_order_relaxed);
        // release: a thief that reads b+1 from bottom_ (acquire) sees the slot and
        // everything written to *item before the push. Lê et al. write a release
        // fence and a relaxed store; a release store gives the same edge for this
        // one store and is one that TSan understands (it does not model fences).
        bottom_.store(b + 1, std::memory_order_release);
        return static_cast<std::size_t>(b - t);
    }

    /// Owner only. The most recently pushed item if the deque looks non-empty,
    /// else nullptr: a hint (a thief may have taken it already); pop() decides.
    Ptr peek_bottom() const noexcept {
        const std::int64_t b = bottom_.load(std::memory_order_relaxed);
        if (b <= top_.load(std::memory_order_relaxed)) return nullptr;
        return buffer_.load(std::memory_order_relaxed)->slot(b - 1).load(std::memory_order_relaxed);
    }

    /// Owner only. Takes the most recently pushed item, or returns nullptr when the
    /// deque is empty or a thief won the race for the last item.
    Ptr pop() noexcept {
        const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
        buffer* buf = buffer_.load(std::memory_order_relaxed);
        // Reserve item b: from now on a thief that reads this bottom_ leaves it alone.
        // The reservation must be ordered before the read of top_ below
        // (store→load, which only a full barrier orders): a seq_cst exchange and a
        // seq_cst load, both in the single total order with the fence in steal(),
        // so either the thief sees the lowered bottom_, or we see its raised top_;
        // never neither. (Lê et al. write a relaxed store and a seq_cst fence; on
        // x86 the exchange is one `xchg`, about a third of an `mfence`.)
        bottom_.exchange(b, std::memory_order_seq_cst);
        std::int64_t t = top_.load(std::memory_order_seq_cst);
        if (t > b) {
            // Empty: undo the reservation.
            bottom_.store(b + 1, std::memory_order_relaxed);
            return nullptr;
        }
        Ptr item = buf->slot(b).load(std::memory_order_relaxed);
        if (t == b) {
            // The last item: thieves may be about to take it, so claim it through
            // top_ like they do. seq_cst for the same reason as in steal().
            if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                              std::memory_order_relaxed))
                item = nullptr;  // a thief got it
            // top_ is now b+1 either way; the deque is empty with bottom_ == top_.
            bottom_.store(b + 1, std::memory_order_relaxed);
        }
        return item;
    }

    /// Any thread. Tries to take the oldest item.
    steal_result<Ptr> steal() noexcept {
        // acquire (as in Lê et al.): if another thief advanced top_, what it saw of
        // the owner's pushes and growths is visible to us too.
        std::int64_t t = top_.load(std::memory_order_acquire);
        // seq_cst fence: orders the read of top_ before the read of bottom_ in the
        // single total order shared with pop()'s exchange (see there).
        Atomics::fence(std::memory_order_seq_cst);
        // acquire: pairs with push()'s release store, publishing slot t and *item.
        const std::int64_t b = bottom_.load(std::memory_order_acquire);
        if (t >= b) return {steal_status::empty, nullptr};
        // acquire (Lê et al. use consume): pairs with grow()'s release store, so the
        // copied slots of a new buffer are visible. Read after bottom_, so a bottom_
        // written after a growth brings that growth's buffer with it.
        buffer* buf = buffer_.load(std::memory_order_acquire);
        Ptr item = buf->slot(t).load(std::memory_order_relaxed);
        // The arbitration point: whoever moves top_ from t owns item t. seq_cst so
        // that it is ordered with pop()'s exchange and last-item CAS.
        if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed))
            return {steal_status::abort, nullptr};
        return {steal_status::success, item};
    }

    /// Any thread. Number of items at some recent moment; may be stale by the time
    /// the caller looks at it. Used as a cheap "is there anything to steal" hint.
    std::size_t size_estimate() const noexcept {
        const std::int64_t t = top_.load(std::memory_order_acquire);
        const std::int64_t b = bottom_.load(std::memory_order_acquire);
        return b > t ? static_cast<std::size_t>(b - t) : 0;
    }

    /// Owner only. Slots in the current buffer (grows by doubling).
    std::size_t capacity() const noexcept {
        return static_cast<std::size_t>(buffer_.load(std::memory_order_relaxed)->mask + 1);
    }

private:
    friend struct ws_deque_test_access;

    using slot_type = typename Atomics::template atomic<Ptr>;

    struct buffer {
        explicit buffer(std::int64_t capacity)
            : mask(capacity - 1)
            , slots(new slot_type[static_cast<std::size_t>(capacity)]) {}

        slot_type& slot(std::int64_t i) noexcept {
            return slots[static_cast<std::size_t>(i & mask)];
        }

        const std::int64_t mask;  // capacity - 1; capacity is a power of two
        std::unique_ptr<slot_type[]> slots;
        buffer* retired_next = nullptr;  // owner only: the list of replaced buffers
    };

    static std::int64_t round_up(std::size_t n) noexcept {
        std::int64_t c = 2;
        while (static_cast<std::size_t>(c) < n) c *= 2;
        return c;
    }

    // Owner only, from push() when b - t == capacity. Copies the live range [t, b)
    // (t may be stale, so a few already-stolen items are copied too: harmless, they
    // are outside [top_, bottom_) and never read again).
    buffer* grow(buffer* old, std::int64_t t, std::int64_t b) {
        auto* bigger = new buffer((old->mask + 1) * 2);
        for (std::int64_t i = t; i < b; ++i)
            bigger->slot(i).store(old->slot(i).load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
        // release: a thief that loads the new buffer (acquire) sees the copies.
        buffer_.store(bigger, std::memory_order_release);
        // invariant: a thief that loaded `old` may still read it; keep it until the
        // destructor, when no thief can be running.
        old->retired_next = retired_;
        retired_ = old;
        return bigger;
    }

    // Thieves and the owner hammer different ends; keep them on separate lines.
    alignas(64) typename Atomics::template atomic<std::int64_t> top_{0};
    alignas(64) typename Atomics::template atomic<std::int64_t> bottom_{0};
    typename Atomics::template atomic<buffer*> buffer_;
    buffer* retired_ = nullptr;  // owner only
};

}  // namespace uthreads::detail
