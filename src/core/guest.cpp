// guest_runtime: a scheduler driven by a host program's loop.
//
// The host owns the loop; the guest backend turns host callbacks into calls of
// drive(), and drive() re-arms the host (run soon / at the next deadline) when
// it ends. Nothing here blocks the host, except shutdown(), which turns the host
// loop itself while cancelled microthreads unwind.
#include "scheduler_internal.hpp"

#include <uthreads/guest.hpp>

#include <mutex>
#include <set>
#include <stdexcept>

namespace uthreads {

namespace {
// Host loops that have a guest attached: attaching twice to one loop is an error.
std::mutex hosts_mu;
std::set<const void*>& attached_hosts() {
    static std::set<const void*> s;
    return s;
}

[[noreturn]] void throw_moved_from() {
    throw std::logic_error("uthreads::guest_runtime: used after being moved from");
}
}  // namespace

struct guest_runtime::impl final : lowlevel::guest_driver {
    impl(std::unique_ptr<lowlevel::backend> b, const void* key)
        : backend(std::move(b)), sched(*backend, 0, false), host_key(key) {}

    // Backends call this from their host callbacks, possibly while a drive is
    // already on the stack (a microthread ran host code that dispatched one of
    // our callbacks): that call only asks for one more round of the outer one.
    void drive() override {
        if (shut) return;
        if (driving) {
            drive_again = true;
            return;
        }
        struct clear_on_exit {
            bool& flag;
            ~clear_on_exit() { flag = false; }
        } clear{driving};
        driving = true;
        do {
            drive_again = false;
            sched.drive_guest();
        } while (drive_again && !shut);
    }

    // Declaration order matters: the scheduler is destroyed before the backend.
    std::unique_ptr<lowlevel::backend> backend;
    detail::scheduler sched;
    const void* host_key;
    bool shut = false;
    bool driving = false;      // drive() is on the stack
    bool drive_again = false;  // it was called again meanwhile
};

guest_runtime::guest_runtime(std::unique_ptr<lowlevel::backend> backend, const void* host_key) {
    if (!backend || !backend->is_guest())
        throw std::invalid_argument("uthreads::guest_runtime: backend is not a guest backend");
    {
        std::lock_guard lk(hosts_mu);
        if (!attached_hosts().insert(host_key).second)
            throw std::logic_error("uthreads::attach: this " + std::string(backend->name()) +
                                   " loop already has a guest runtime attached");
    }
    try {
        impl_ = std::make_unique<impl>(std::move(backend), host_key);
        impl_->sched.make_guest();
        impl_->backend->attach_driver(impl_.get());
    } catch (...) {
        std::lock_guard lk(hosts_mu);
        attached_hosts().erase(host_key);
        throw;
    }
}

guest_runtime::guest_runtime(guest_runtime&&) noexcept = default;

guest_runtime& guest_runtime::operator=(guest_runtime&& o) noexcept {
    if (this != &o) {
        shutdown();
        impl_ = std::move(o.impl_);
    }
    return *this;
}

guest_runtime::~guest_runtime() { shutdown(); }

void guest_runtime::shutdown() {
    if (!impl_ || impl_->shut) return;
    if (detail::tls_scheduler == &impl_->sched)
        throw std::logic_error("uthreads::guest_runtime::shutdown: called from one of its own microthreads");
    impl_->sched.shutdown_guest();
    impl_->shut = true;
    impl_->backend->detach_from_host();
    std::lock_guard lk(hosts_mu);
    attached_hosts().erase(impl_->host_key);
}

detail::microthread* guest_runtime::spawn_raw(std::coroutine_handle<> frame, detail::promise_base* root,
                                              std::string name) {
    if (!impl_) {
        frame.destroy();
        throw_moved_from();
    }
    if (impl_->shut) {
        frame.destroy();
        throw std::logic_error("uthreads::guest_runtime::spawn: the guest runtime has been shut down");
    }
    if (!impl_->backend->host_alive()) {
        frame.destroy();
        throw std::logic_error("uthreads::guest_runtime::spawn: the host " +
                               std::string(impl_->backend->name()) + " loop is gone");
    }
    detail::microthread* m = impl_->sched.spawn(frame, root, std::move(name));
    // From host code nobody else will notice the new microthread: ask the host
    // loop for a drive. (Inside a drive, its end re-arms anyway.)
    if (detail::tls_scheduler != &impl_->sched) impl_->sched.arm_guest();
    return m;
}

std::size_t guest_runtime::live() const noexcept { return impl_ ? impl_->sched.live() : 0; }

std::string_view guest_runtime::backend_name() const noexcept {
    return impl_ ? impl_->backend->name() : std::string_view();
}

bool guest_runtime::attached() const noexcept {
    return impl_ && !impl_->shut && impl_->backend->host_alive();
}

}  // namespace uthreads
