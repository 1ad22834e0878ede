// The GLib host program for guest-mode conformance runs: a GMainContext of its
// own (g_main_context_new, as a program or library that does not use the
// global default context), iterated with g_main_context_iteration(ctx, TRUE) the
// way g_main_loop_run iterates it.
#ifdef UTHREADS_HAVE_BACKEND_GLIB

#include "conformance/guest_host.hpp"

#include <uthreads/backends/glib.hpp>

#include <glib.h>

#include <memory>

namespace {

class glib_host final : public conformance::guest_host {
public:
    glib_host()
        : ctx_(g_main_context_new()) {}
    // The guest holds its own reference while attached, so the context (and its
    // wake-up descriptor) is freed here only once every guest has let go.
    ~glib_host() override { g_main_context_unref(ctx_); }
    glib_host(const glib_host&) = delete;
    glib_host& operator=(const glib_host&) = delete;

    uthreads::guest_runtime attach() override { return uthreads::attach(ctx_); }

    void run_until(const std::function<bool()>& done) override {
        // A blocking iteration returns after any dispatch or wake-up, so `done`
        // is looked at as often as a GLib program would see its own state change.
        while (!done()) g_main_context_iteration(ctx_, TRUE);
    }

private:
    GMainContext* ctx_;
};

const bool registered =
    conformance::register_guest_host("glib", [] { return std::make_unique<glib_host>(); });

}  // namespace

#endif  // UTHREADS_HAVE_BACKEND_GLIB
