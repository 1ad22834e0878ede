/// \file
/// Intrusive FIFO of parked microthreads, the building block of every primitive.
///
/// With several workers, every list belongs to a primitive whose operations run
/// under that primitive's spinlock (`sync_guard`); `queued_waiter::lock` points
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

/// Park the current microthread at the back of `list`. `Owner` is the awaiter type
/// (derived from queued_waiter) and `list_of(owner)` finds its list again on
/// cancellation. Returns false (with `cancelled` set) if cancellation is pending.
/// With several workers the caller holds `lock`, the primitive's lock.
template <class Owner, waiter_list& (*ListOf)(Owner*)>
bool try_cancel_queued(wait_node* w) {
    auto* self = static_cast<Owner*>(w);
    sync_guard g(*self->lock);
    waiter_list& l = ListOf(self);
    // Not linked: a waker took it off the list and its wake-up is on the way
    // (only possible with several workers).
    if (!l.linked(self)) return false;
    l.remove(self);
    return true;
}

template <class Owner, waiter_list& (*ListOf)(Owner*)>
bool park_in(Owner* op, waiter_list& list, std::coroutine_handle<> h, spinlock& lock) {
    scheduler& s = *tls_scheduler;
    microthread* m = s.current_;
    if (cancel_pending(m)) {
        op->cancelled = true;
        return false;
    }
    m->resume = h;
    m->wait = op;
    op->m = m;
    op->s = &s;
    op->lock = &lock;
    op->try_cancel = &try_cancel_queued<Owner, ListOf>;
    list.push_back(op);
    return true;
}

/// Like park_in, for an awaiter whose await_ready has just checked cancellation
/// and set `op->s` (nothing can have run in between): skips the re-check.
template <class Owner, waiter_list& (*ListOf)(Owner*)>
void park_in_checked(Owner* op, waiter_list& list, std::coroutine_handle<> h,
                     spinlock& lock) noexcept {
    microthread* m = op->s->current_;
    m->resume = h;
    m->wait = op;
    op->m = m;
    op->lock = &lock;
    op->try_cancel = &try_cancel_queued<Owner, ListOf>;
    list.push_back(op);
}

/// Wake a waiter taken off a list (with several workers: under the primitive's
/// lock, and `w` must not be touched afterwards).
inline void wake(queued_waiter* w) { unpark(*w->s, w->m); }

}  // namespace uthreads::detail
