/// \file
/// Guest mode on libevent: microthreads inside a program that runs an
/// `event_base` (libevent 2.1).
///
/// ```cpp
/// event_base* base = event_base_new();
/// {
///     uthreads::guest_runtime guest = uthreads::attach(base);
///     guest.spawn_then(serve(), [&](uthreads::outcome<void> r) {
///         if (!r.has_value()) report(r.error());
///         event_base_loopbreak(base);
///     });
///     event_base_dispatch(base);   // host callbacks and microthreads interleave
///     guest.shutdown();            // before event_base_free, always
/// }
/// event_base_free(base);
/// ```
///
/// This header does not include libevent's: `event_base` is only declared.
#pragma once

#include <uthreads/guest.hpp>

struct event_base;

namespace uthreads {

/// Attach a guest runtime to `base`, which the host program keeps running
/// (`event_base_dispatch`, `event_base_loop`). Microthreads spawned on the
/// returned runtime run from callbacks of events the guest adds to `base`: one
/// per watched descriptor and direction, one timer, and one wake-up event on an
/// eventfd of the guest's own (so promises may be completed from any thread even
/// if `base` was created without libevent's threading support).
///
/// Loop thread: every call on the runtime, and every run of `base`, must happen
/// on one thread (libevent's event_base is not thread-safe unless the host
/// enabled evthread locking, and the guest does not rely on it).
///
/// While the guest is attached its wake-up event stays added, so
/// `event_base_dispatch(base)` does not return for lack of events: end it with
/// `event_base_loopbreak`/`event_base_loopexit` (from a `spawn_then` callback,
/// say), then call `shutdown()`.
///
/// Lifetime: libevent has no destruction hook, so the guest cannot notice that
/// `base` is gone. The runtime must be shut down (`shutdown()`, or its
/// destructor) before `event_base_free(base)`; freeing the base first leaves
/// the guest holding freed events, and its shutdown is then undefined
/// behaviour. `attached()` therefore only turns false through `shutdown()`.
///
/// `shutdown()` turns the loop with `event_base_loop(base, EVLOOP_ONCE)` while
/// cancelled microthreads unwind. It may also be called from inside one of
/// `base`'s callbacks, where libevent refuses a nested loop (it prints one
/// "reentrant invocation" warning): the guest then waits only for wake-ups
/// (thread-pool results, promises completed by other threads) and timers. That
/// covers what a cancelled microthread normally waits for; one that does socket
/// I/O in a shielded scope while being cancelled cannot see readiness until the
/// host's loop runs again, so it waits for its own timeout (or forever if it has
/// none). Call `shutdown()` outside the loop to avoid this.
///
/// Throws std::invalid_argument if `base` is null, std::logic_error if `base`
/// already has a guest runtime, std::system_error if the eventfd or an event
/// cannot be created.
guest_runtime attach(event_base* base);

}  // namespace uthreads
