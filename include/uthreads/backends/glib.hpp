/// \file
/// Guest mode on GLib: microthreads inside a program that runs a GMainContext
/// (g_main_loop_run, gtk_main, GApplication, or its own g_main_context_iteration
/// loop).
///
/// ```cpp
/// GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
/// uthreads::guest_runtime rt = uthreads::attach(nullptr);   // the default context
/// rt.spawn_then(fetch(), [&](uthreads::outcome<std::string> r) { ...; g_main_loop_quit(loop); });
/// g_main_loop_run(loop);    // host callbacks and microthreads interleave
/// rt.shutdown();            // or let rt go out of scope
/// ```
///
/// This header only forward-declares GMainContext; include <glib.h> to use it.
#pragma once

#include <uthreads/guest.hpp>

// GLib's own declaration, repeated so that this header needs no <glib.h>.
using GMainContext = struct _GMainContext;  // NOLINT(bugprone-reserved-identifier)

namespace uthreads {

/// Attach a guest runtime to `context` (nullptr: GLib's global default context,
/// g_main_context_default()). The guest adds one GSource, at G_PRIORITY_DEFAULT,
/// to the context; microthreads, their timers and their sockets run from it
/// whenever the host iterates the context, on the thread that iterates it.
///
/// Call it, use the returned runtime, and destroy it on the thread that runs
/// the context. The guest holds a reference on the context until the runtime is
/// destroyed, so the context cannot vanish under it; if the host stops iterating
/// the context, the microthreads simply stop making progress (GLib offers no way
/// to tell that a context is no longer being run, so attached() stays true).
/// Promises may be completed from any thread: that wakes the context.
///
/// Microthreads run from a GSource dispatch. While a host callback nested in that
/// dispatch (a `spawn_then` handler) runs a nested main loop, GLib blocks the
/// source and the guest's microthreads wait until the handler returns.
/// A guest whose microthreads are always runnable keeps its source ready, which
/// (as for any always-ready GSource) starves sources of lower priority, such as
/// idle handlers, until the microthreads park.
///
/// Throws std::logic_error if `context` already has a guest runtime.
guest_runtime attach(GMainContext* context);

}  // namespace uthreads
