/// \file
/// Guest mode on Boost.Asio: microthreads inside a program that runs an
/// `boost::asio::io_context`.
///
/// ```cpp
/// boost::asio::io_context io;
/// auto guest = uthreads::attach(io);
/// guest.spawn(serve(listener));                 // a microthread on io's loop
/// boost::asio::steady_timer t(io, 10ms);        // plain Asio keeps working
/// t.async_wait([&](auto) { ready.set_value(); });
/// io.run();                                     // runs both, interleaved
/// ```
///
/// Microthreads run from handlers the guest posts to `io`; their sockets are
/// watched with `posix::stream_descriptor::async_wait` on `io`, their timers with
/// one `steady_timer`. Pending waits, timers and "run soon" requests count as
/// outstanding work, so `io.run()` keeps running while microthreads sleep or wait
/// for I/O. A microthread that waits only for another thread (`to_thread`, a
/// promise completed from a thread) holds no Asio work: keep an
/// `executor_work_guard` on `io` if `io.run()` must not return meanwhile (as in
/// any Asio program woken from other threads).
///
/// The uthreads build option that provides this header is the "asio" backend
/// (`uthreads::available_backends()` lists it); the same backend runs
/// `uthreads::run` on a private io_context when selected by name.
#pragma once

#include <uthreads/guest.hpp>

#include <boost/asio/io_context.hpp>

namespace uthreads {

/// Attach a guest runtime to `io`. Microthreads spawned on the result run when
/// `io` runs (`run`, `run_one`, `poll`, ...), interleaved with `io`'s other
/// handlers.
///
/// Requirements and thread safety: call it on the thread that runs `io`, and run
/// `io` on that one thread only (microthreads are single-threaded; a guest
/// handler that finds itself on another thread throws std::logic_error out of
/// `io.run()`). Promises may be completed from any thread.
///
/// Throws std::logic_error if `io` already has a guest runtime attached.
///
/// Lifetime: shut the guest down (or destroy it) before destroying `io` when you
/// can; its shutdown turns `io` (one handler at a time) while cancelled
/// microthreads unwind, and leaves `io` stopped or running as it found it. If
/// `io` is destroyed first, the guest notices (through an io_context service):
/// its registrations are dropped with `io`, and from then on `spawn` throws
/// std::logic_error ("the io_context of this guest runtime has been destroyed").
/// Destroy such a guest before creating another io_context at the same address.
guest_runtime attach(boost::asio::io_context& io);

}  // namespace uthreads
