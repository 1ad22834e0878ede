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
/// outstanding work, and while any microthread is alive the guest also holds an
/// `executor_work_guard` on `io` (it may be waiting for another thread: a
/// `to_thread` call, a promise completed elsewhere). So `io.run()` returns only
/// once every microthread has finished and the host's own work is done.
///
/// A descriptor that an Asio object on `io` already watches (a host socket on
/// the same fd) cannot also be waited on by a microthread: the wait throws
/// std::system_error (EEXIST from epoll).
///
/// This header is usable when uthreads was built with its "asio" backend
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
/// `io` on that one thread only (microthreads are single-threaded). A guest
/// handler that finds itself on another thread throws std::logic_error out of
/// that thread's `io.run()`; the guest may have lost that handler's event and
/// should be shut down. Promises may be completed (and `to_thread` jobs end) on
/// any thread.
///
/// Throws std::logic_error if `io` already has a guest runtime attached. After
/// the guest is shut down, another may be attached to the same `io`.
///
/// Lifetime: shut the guest down (or destroy it) before destroying `io` when you
/// can. Its shutdown turns `io` (so `io`'s other handlers may run meanwhile)
/// while cancelled microthreads unwind, and leaves `io` stopped or not stopped
/// as it found it. If `io` is destroyed first, the guest notices (through an
/// io_context service): its descriptors and timer are dropped with `io`, and
/// from then on `attached()` is false and `spawn` throws std::logic_error ("the
/// host asio loop is gone"). Destroy such a guest before creating another
/// io_context at the same address.
guest_runtime attach(boost::asio::io_context& io);

}  // namespace uthreads
