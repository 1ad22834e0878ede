// The blocking pool behind `to_thread`.
#include "scheduler_internal.hpp"

namespace uthreads::detail {

blocking_pool::~blocking_pool() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

void blocking_pool::submit(blocking_job* job) {
    std::unique_lock lk(mu_);
    queue_.push_back(job);
    // Idle workers that were already notified still count as idle until they
    // wake, so compare against the whole queue: one idle worker per queued job.
    if (queue_.size() > idle_ && threads_.size() < max_threads) {
        threads_.emplace_back([this] { worker(); });
    } else {
        lk.unlock();
        cv_.notify_one();
    }
}

void blocking_pool::worker() {
    std::unique_lock lk(mu_);
    for (;;) {
        ++idle_;
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        --idle_;
        if (queue_.empty()) return;  // stopping and nothing left to do
        blocking_job* job = queue_.front();
        queue_.pop_front();
        lk.unlock();
        job->work();
        // The job lives in the waiting microthread's frame: copy what we need,
        // because once it is scheduled the frame may be gone.
        microthread* m = job->m;
        scheduler* s = job->s;
        s->schedule_remote(m);
        lk.lock();
    }
}

void to_thread_operation::await_suspend(std::coroutine_handle<> h) {
    scheduler& s = *tls_scheduler;
    microthread* m = s.current_;
    m->resume = h;
    m->wait = nullptr;  // not interruptible: cancellation waits for the call to return
    job.m = m;
    job.s = &s;
    scheduler_blocking_pool(s).submit(&job);
}

}  // namespace uthreads::detail
