#include <uthreads/condition_variable.hpp>

#include <stdexcept>

namespace uthreads {

task<void> condition_variable::wait(mutex::lock_guard& lock) {
    mutex* m = lock.get();
    if (!m) throw std::invalid_argument("uthreads::condition_variable::wait: lock does not own a mutex");
    lock.unlock();
    std::exception_ptr err;
    try {
        co_await q_.wait();
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
