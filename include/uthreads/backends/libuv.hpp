/// \file
/// Guest mode on libuv: microthreads inside a program that runs its own
/// `uv_loop_t`.
///
/// ```cpp
/// uv_loop_t* loop = uv_default_loop();
/// ut::guest_runtime guest = ut::attach(loop);
/// guest.spawn_then(fetch(), [](ut::outcome<std::string> r) { ... });  // host callback
/// uv_run(loop, UV_RUN_DEFAULT);   // microthreads and libuv callbacks interleave
/// guest.shutdown();               // outside uv_run
/// uv_run(loop, UV_RUN_DEFAULT);   // lets libuv run the guest's close callbacks
/// uv_loop_close(loop);            // 0
/// ```
///
/// The same backend also runs `uthreads::run` on a loop of its own
/// (`options.backend = "libuv"`); this header is only needed for guest mode and is
/// the one uthreads header that includes `<uv.h>`.
///
/// **What the guest puts on the host's loop.** Four internal handles (a
/// `uv_async_t` for wake-ups from other threads, a `uv_timer_t` for the earliest
/// microthread deadline, a `uv_idle_t` while microthreads are runnable and a
/// `uv_check_t` that runs them once after each I/O phase) and one `uv_poll_t` per
/// descriptor a microthread has waited on, until that socket is closed. They show
/// up in `uv_walk`; do not close them yourself (see "closing the loop" below). A
/// descriptor the host already polls with its own `uv_poll_t` cannot also be
/// waited on by a microthread (libuv allows one poll handle per descriptor: the
/// operation throws `std::system_error` with `EEXIST`).
///
/// **Keeping the loop alive.** The guest keeps `uv_run(loop, UV_RUN_DEFAULT)`
/// running exactly while it has live microthreads: a microthread sleeping, parked
/// on a socket, or waiting for a `to_thread` job or a promise completed by another
/// thread is work still to do, so `uv_run` does not return under it. When the last
/// microthread has finished, the guest's handles stop counting (they are
/// unreferenced, like `uv_unref`), and `uv_run` returns once the host's own
/// handles are done. A microthread waiting for something that will never happen
/// (an event nobody sets) therefore keeps `uv_run` from returning, as it would
/// keep `uthreads::run` from returning. Only running microthreads count: a
/// finished one whose join_handle host code still holds does not.
///
/// **Timing.** libuv timers have millisecond resolution: a microthread's deadline
/// is met up to about a millisecond late, never early. Arming a timer calls
/// `uv_update_time` on the host's loop, which only makes its idea of "now"
/// fresher.
///
/// **Threading.** `attach`, the guest_runtime's members and `shutdown` are called
/// on the thread that runs the loop. Microthreads run on that thread, from the
/// guest's callbacks. Promises may be completed from any thread.
///
/// **Shutting down, and closing the loop.** `guest_runtime::shutdown()` (also run
/// by its destructor) cancels the remaining microthreads and, while any of them
/// still waits for I/O or a timer as it unwinds, turns the loop with
/// `uv_run(loop, UV_RUN_ONCE)`. libuv's `uv_run` is not reentrant, so call
/// `shutdown()` outside `uv_run` (after it returned), or from a libuv callback only
/// when `live()` is 0. Shutdown then `uv_close`s every guest handle; libuv frees
/// them at the loop's next iteration (the memory is the guest's own and outlives
/// the guest_runtime), so run the loop once more before `uv_loop_close`, which
/// then returns 0. If the host closes the loop first, `uv_loop_close` returns
/// `UV_EBUSY` while the guest's handles are open; a loop must not be freed or
/// reinitialised while a guest is attached to it (the guest_runtime's destructor
/// would touch it). A host that closes every handle with `uv_walk` before
/// `uv_loop_close` must do so after `shutdown()`, skipping handles for which
/// `uv_is_closing` is true (the usual idiom). `uv_stop` merely pauses the guest
/// with the rest of the loop.
#pragma once

#include <uthreads/guest.hpp>

#include <uv.h>

namespace uthreads {

/// Attach a guest runtime to `loop`, a libuv loop the caller owns and runs.
/// Microthreads spawned on the returned runtime run from `loop`'s callbacks,
/// interleaved with the host's; see the file comment for what is registered on
/// the loop, when it keeps `uv_run` alive, and how to close the loop afterwards.
/// Call on the loop's thread. Throws std::invalid_argument if `loop` is null,
/// std::logic_error if a guest runtime is already attached to `loop`, and
/// std::system_error if libuv cannot create the guest's wake-up handle.
guest_runtime attach(uv_loop_t* loop);

}  // namespace uthreads
