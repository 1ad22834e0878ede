// Which backends this build has. Each backend directory defines its factory;
// this file is the only place that lists them. A backend is compiled when its
// library was found at configure time (backends/<name>/backend.cmake defines
// UTHREADS_HAVE_BACKEND_<NAME>); the others are listed with what was missing.
#include "../core/backend_factories.hpp"

namespace uthreads::backends {
std::unique_ptr<lowlevel::backend> make_epoll_backend();
std::unique_ptr<lowlevel::backend> make_sim_backend();
std::unique_ptr<lowlevel::backend> make_io_uring_backend();
bool io_uring_usable() noexcept;
std::unique_ptr<lowlevel::backend> make_asio_backend();
std::unique_ptr<lowlevel::backend> make_libuv_backend();
std::unique_ptr<lowlevel::backend> make_libevent_backend();
std::unique_ptr<lowlevel::backend> make_glib_backend();
}  // namespace uthreads::backends

namespace uthreads::detail {

std::span<const backend_factory> backend_factories() {
    static const backend_factory table[] = {
        {"epoll", &backends::make_epoll_backend},
#ifdef UTHREADS_HAVE_BACKEND_IO_URING
        {"io_uring", &backends::make_io_uring_backend, &backends::io_uring_usable},
#endif
        {"sim", &backends::make_sim_backend},
#ifdef UTHREADS_HAVE_BACKEND_ASIO
        {"asio", &backends::make_asio_backend},
#endif
#ifdef UTHREADS_HAVE_BACKEND_LIBUV
        {"libuv", &backends::make_libuv_backend},
#endif
#ifdef UTHREADS_HAVE_BACKEND_LIBEVENT
        {"libevent", &backends::make_libevent_backend},
#endif
#ifdef UTHREADS_HAVE_BACKEND_GLIB
        {"glib", &backends::make_glib_backend},
#endif
    };
    return table;
}

std::span<const missing_backend> missing_backends() {
    static const missing_backend table[] = {
#ifndef UTHREADS_HAVE_BACKEND_IO_URING
        {"io_uring", "liburing (Debian: liburing-dev)"},
#endif
#ifndef UTHREADS_HAVE_BACKEND_ASIO
        {"asio", "Boost.Asio 1.81 (Debian: libboost1.81-dev)"},
#endif
#ifndef UTHREADS_HAVE_BACKEND_LIBUV
        {"libuv", "libuv (Debian: libuv1-dev)"},
#endif
#ifndef UTHREADS_HAVE_BACKEND_LIBEVENT
        {"libevent", "libevent (Debian: libevent-dev)"},
#endif
#ifndef UTHREADS_HAVE_BACKEND_GLIB
        {"glib", "GLib (Debian: libglib2.0-dev)"},
#endif
        {nullptr, nullptr},  // keeps the array non-empty when every backend is built
    };
    return std::span<const missing_backend>(table, std::size(table) - 1);
}

}  // namespace uthreads::detail
