/// \file
/// Intrusive FIFO of parked microthreads, the building block of every primitive.
///
/// With several workers, every list belongs to a primitive whose operations run
/// under that primitive's spinlock (`guard_if<true>`, see by_workers); `queued_waiter::lock` points
/// at it so that cancellation, which runs on the waiter's own worker, can take
/// it too. The waker pops a waiter and hands its microthread to the waiter's
/// worker (`wake` → `unpark`) while holding the lock; from then on the waiter may
/// resume on its worker at any moment, so the waker never touches the node again.
/// A cancellation that finds its node no longer linked knows a wake-up is on its
/// way and leaves the wait alone (`try_cancel` returns false).
#pragma once

#include <uthreads/detail/core.hpp>

namespace uthreads::detail {

/// A microthread parked in some waiter_list. Lives in the awaiter (the
/// coroutine frame), so linking costs no allocation.
struct queued_waiter : wait_node {
    queued_waiter* next = nullptr;
    queued_waiter* prev = nullptr;
    microthread* m = nullptr;
    scheduler* s = nullptr;
    spinlock* lock = nullptr;  // the owning primitive's lock (several workers)
};

class waiter_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    queued_waiter* front() const noexcept { return head_; }
    /// True while `w` is in this list (pop_front and remove unlink it).
    bool linked(const queued_waiter* w) const noexcept { return w->prev != nullptr || head_ == w; }

    void push_back(queued_waiter* w) noexcept {
        w->next = nullptr;
        w->prev = tail_;
        if (tail_)
            tail_->next = w;
        else
            head_ = w;
        tail_ = w;
    }
    queued_waiter* pop_front() noexcept {
        queued_waiter* w = head_;
        head_ = w->next;
        if (head_)
            head_->prev = nullptr;
        else
            tail_ = nullptr;
        w->next = w->prev = nullptr;
        return w;
    }
    void remove(queued_waiter* w) noexcept {
        if (w->prev)
            w->prev->next = w->next;
        else
            head_ = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            tail_ = w->prev;
        w->next = w->prev = nullptr;
    }

private:
    queued_waiter* head_ = nullptr;
    queued_waiter* tail_ = nullptr;
};

/// Cancellation of a queued wait on a multi-threaded runtime: runs on the
/// waiter's own worker, under the primitive's lock.
template <class Owner, waiter_list& (*ListOf)(Owner*)>
bool try_cancel_queued(wait_node* w) {
    auto* self = static_cast<Owner*>(w);
    guard_if<true> g(*self->lock);
    waiter_list& l = ListOf(self);
    // Not linked: a waker took it off the list and its wake-up is on the way
    // (only possible with several workers).
    if (!l.linked(self)) return false;
    l.remove(self);
    return true;
}

/// Steps 1–3 of the suspension rule (core.hpp) for a queued waiter. `Multi`: the
/// caller holds `lock`, the primitive's lock, which cancellation takes too.
template <class Owner, waiter_list& (*ListOf)(Owner*), bool Multi>
void link_waiter(Owner* op, microthread* m, waiter_list& list, std::coroutine_handle<> h,
                 spinlock& lock) noexcept {
    m->resume = h;
    m->wait = op;
    op->m = m;
    if constexpr (Multi) {
        op->lock = &lock;
        op->try_cancel = &try_cancel_queued<Owner, ListOf>;
    } else {
        op->try_cancel = [](wait_node* w) {
            auto* self = static_cast<Owner*>(w);
            ListOf(self).remove(self);
            return true;
        };
    }
    list.push_back(op);
}

/// Park the current microthread at the back of `list`. `Owner` is the awaiter type
/// (derived from queued_waiter) and `list_of(owner)` finds its list again on
/// cancellation. Returns false (with `cancelled` set) if cancellation is pending.
/// `Multi`: see link_waiter.
template <class Owner, waiter_list& (*ListOf)(Owner*), bool Multi>
bool park_in(Owner* op, waiter_list& list, std::coroutine_handle<> h, spinlock& lock) {
    scheduler& s = *tls_scheduler;
    microthread* m = s.current_;
    if (cancel_pending(m)) {
        op->cancelled = true;
        return false;
    }
    op->s = &s;
    link_waiter<Owner, ListOf, Multi>(op, m, list, h, lock);
    return true;
}

/// Like park_in, for an awaiter whose await_ready has just checked cancellation
/// and set `op->s` (nothing can have run in between): skips the re-check.
template <class Owner, waiter_list& (*ListOf)(Owner*), bool Multi>
void park_in_checked(Owner* op, waiter_list& list, std::coroutine_handle<> h,
                     spinlock& lock) noexcept {
    link_waiter<Owner, ListOf, Multi>(op, op->s->current_, list, h, lock);
}

/// Wake a waiter taken off a list. `Multi`: under the primitive's lock, and `w`
/// must not be touched afterwards (its worker may resume it at once).
template <bool Multi>
inline void wake(queued_waiter* w) {
    if constexpr (Multi) {
        unpark(*w->s, w->m);
    } else {
        w->m->wait = nullptr;
        w->s->schedule(w->m);
    }
}

}  // namespace uthreads::detail
