/// \file
/// Host loops for running the conformance suite in guest mode.
///
/// Each foreign backend with an `attach()` registers a guest_host factory here
/// (tests/conformance/guest_hosts/<name>_host.cpp). The conformance fixture then
/// instantiates every test once more as "<name>_guest": the host program owns
/// its loop, the test's main task is spawned on the guest runtime, and the host
/// loop runs until main has finished.
#pragma once

#include <uthreads/guest.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace conformance {

/// One host program: owns a loop of the foreign library (io_context, uv_loop_t,
/// event_base, GMainContext) and attaches guests to it.
class guest_host {
public:
    virtual ~guest_host() = default;
    /// A guest runtime attached to this host's loop (uthreads::attach(...)).
    virtual uthreads::guest_runtime attach() = 0;
    /// Run the host loop the way a host program does (io.run_one(), uv_run
    /// UV_RUN_ONCE, event_base_loop EVLOOP_ONCE, g_main_context_iteration) until
    /// `done()` is true; `done` is checked after every loop iteration.
    virtual void run_until(const std::function<bool()>& done) = 0;
};

using guest_host_factory = std::function<std::unique_ptr<guest_host>()>;

/// Backend name -> factory, filled by static registration in guest_hosts/*.cpp.
inline std::map<std::string, guest_host_factory>& guest_hosts() {
    static std::map<std::string, guest_host_factory> m;
    return m;
}

inline bool register_guest_host(const std::string& backend, guest_host_factory f) {
    guest_hosts().emplace(backend, std::move(f));
    return true;
}

}  // namespace conformance
