/// \file
/// Intrusive FIFO of parked microthreads, the building block of every primitive.
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
};

class waiter_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    queued_waiter* front() const noexcept { return head_; }

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
template <class Owner, waiter_list& (*ListOf)(Owner*)>
bool park_in(Owner* op, waiter_list& list, std::coroutine_handle<> h) {
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
    op->try_cancel = [](wait_node* w) {
        auto* self = static_cast<Owner*>(w);
        ListOf(self).remove(self);
        return true;
    };
    list.push_back(op);
    return true;
}

/// Like park_in, for an awaiter whose await_ready has just checked cancellation
/// and set `op->s` (nothing can have run in between): skips the re-check.
template <class Owner, waiter_list& (*ListOf)(Owner*)>
void park_in_checked(Owner* op, waiter_list& list, std::coroutine_handle<> h) noexcept {
    microthread* m = op->s->current_;
    m->resume = h;
    m->wait = op;
    op->m = m;
    op->try_cancel = [](wait_node* w) {
        auto* self = static_cast<Owner*>(w);
        ListOf(self).remove(self);
        return true;
    };
    list.push_back(op);
}

/// Wake a waiter taken off a list.
inline void wake(queued_waiter* w) { unpark(*w->s, w->m); }

}  // namespace uthreads::detail
