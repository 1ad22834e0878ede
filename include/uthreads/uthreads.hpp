/// \file
/// uthreads: portable microthreads for C++20. Include this one header.
///
///     namespace ut = uthreads;
///     ut::run([]() -> ut::task<> { ... }());
///
/// See docs/guide.md for a tutorial and docs/cancel-safety.md for what cancelling
/// each operation can lose.
#pragma once

#include <uthreads/buffered_reader.hpp>
#include <uthreads/cancel.hpp>
#include <uthreads/channel.hpp>
#include <uthreads/condition_variable.hpp>
#include <uthreads/dns.hpp>
#include <uthreads/errors.hpp>
#include <uthreads/event.hpp>
#include <uthreads/file.hpp>
#include <uthreads/guest.hpp>
#include <uthreads/mutex.hpp>
#include <uthreads/net.hpp>
#include <uthreads/nursery.hpp>
#include <uthreads/pipe.hpp>
#include <uthreads/process.hpp>
#include <uthreads/promise.hpp>
#include <uthreads/runtime.hpp>
#include <uthreads/runtime_handle.hpp>
#include <uthreads/semaphore.hpp>
#include <uthreads/signal.hpp>
#include <uthreads/spawn.hpp>
#include <uthreads/task.hpp>
#include <uthreads/to_thread.hpp>
#include <uthreads/udp.hpp>
#include <uthreads/unix.hpp>
#include <uthreads/wait_queue.hpp>
