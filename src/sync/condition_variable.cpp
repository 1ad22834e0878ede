#include <uthreads/condition_variable.hpp>

#include <stdexcept>

namespace uthreads {

namespace {
// Parks on the queue first and unlocks the mutex after, inside await_suspend:
// with several workers a notify_one() from another worker (made under the mutex)
// can then never fall between the unlock and the park and be lost.
struct unlock_and_wait_operation : wait_queue::wait_operation {
    mutex::lock_guard* lock = nullptr;
    bool await_suspend(std::coroutine_handle<> h) {
        bool parked = wait_queue::wait_operation::await_suspend(h);
        lock->unlock();
        return parked;
    }
};
}  // namespace

task<void> condition_variable::wait(mutex::lock_guard& lock) {
    mutex* m = lock.get();
    if (!m) throw std::invalid_argument("uthreads::condition_variable::wait: lock does not own a mutex");
    std::exception_ptr err;
    try {
        unlock_and_wait_operation op;
        op.q = &q_;
        op.lock = &lock;
        co_await op;
    } catch (...) {
        err = std::current_exception();
    }
    {
        // The caller's guard must own the mutex again whatever happened.
        cancel_shield shield;
        lock = co_await m->lock();
    }
    if (err) std::rethrow_exception(err);
}

}  // namespace uthreads
