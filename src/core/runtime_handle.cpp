// runtime_handle: spawning onto a running runtime from any thread. A spawn is
// a job posted to one worker's remote queue; the worker starts it, or fails its
// future when the runtime is already ending. runtime_link::open (under its
// mutex) is closed when main returns (scheduler::cancel_all), and again before
// every worker's last drain, so no job is left behind.
#include "scheduler_internal.hpp"

#include <uthreads/runtime_handle.hpp>
#include <uthreads/spawn.hpp>

namespace uthreads::detail {

namespace {
void run_spawn_job(void* p) {
    auto* job = static_cast<spawn_job_base*>(p);
    job->start(job, !tls_scheduler->ending());
}
}  // namespace

void post_spawn(runtime_link& link, spawn_job_base* job) {
    std::lock_guard lk(link.mu);
    if (!link.open)
        throw std::logic_error(
            "uthreads::runtime_handle::spawn: the runtime has ended (its main returned)");
    scheduler* w = link.workers[link.next++ % link.workers.size()];
    w->post(&run_spawn_job, job);
}

bool link_running(const runtime_link& link) noexcept {
    std::lock_guard lk(link.mu);
    return link.open;
}

std::shared_ptr<runtime_link> current_link(const char* what) {
    scheduler& s = current_scheduler(what);
    if (!s.link_)
        throw std::logic_error(std::string(what) +
                               ": not available in guest mode (spawn on the guest runtime "
                               "from the host loop's callbacks instead)");
    return s.link_;
}

void spawn_detached_here(std::coroutine_handle<> frame, promise_base* root, std::string name) {
    detach(tls_scheduler->spawn(frame, root, std::move(name)));
}

}  // namespace uthreads::detail
