// promise/future completion from any thread.
#include <uthreads/promise.hpp>

namespace uthreads::detail {

void throw_promise_error(const char* what) {
    throw std::logic_error(std::string("uthreads::") + what);
}

void future_state_base::complete(std::unique_lock<std::mutex>& lk) {
    ready = true;
    microthread* m = std::exchange(waiter, nullptr);
    if (!m) return;
    scheduler* s = waiter_sched;
    if (s == tls_scheduler) {
        // Same thread (a microthread or a callback of the loop it runs on).
        lk.unlock();
        unpark(*s, m);
    } else {
        // Another thread: the waiter cannot go away while we hold `mu` (its
        // cancellation takes `mu`), and schedule_remote holds the scheduler's
        // own lock until the wake-up is issued.
        s->schedule_remote(m);
        lk.unlock();
    }
}

bool future_state_base::await_suspend_impl(std::coroutine_handle<> h) {
    scheduler& s = *tls_scheduler;
    microthread* m = s.current_;
    std::lock_guard lk(mu);
    if (ready) return false;
    m->resume = h;
    m->wait = this;
    waiter = m;
    waiter_sched = &s;
    try_cancel = [](wait_node* w) {
        auto* st = static_cast<future_state_base*>(w);
        std::lock_guard g(st->mu);
        if (!st->waiter) return false;  // completion already on its way
        st->waiter = nullptr;
        return true;
    };
    return true;
}

}  // namespace uthreads::detail
