# The Boost.Asio backend (owned mode on a private io_context, guest mode on the host's
# through <uthreads/backends/asio.hpp>). Asio is header-only: Boost::headers is all it
# needs, plus the threads uthreads already links.
find_package(Boost 1.81 CONFIG QUIET COMPONENTS headers)
if(Boost_FOUND)
    uthreads_enable_backend(asio
        SOURCES "${UTHREADS_BACKEND_DIR}/asio_backend.cpp"
        LINK Boost::headers
        CONFIG "find_dependency(Boost 1.81 CONFIG COMPONENTS headers)")
else()
    message(STATUS "uthreads: backend asio not built: Boost.Asio 1.81 not found "
                   "(Debian: libboost1.81-dev)")
endif()
