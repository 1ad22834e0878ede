# The libevent backend (owned loop, and guest mode through uthreads::attach(event_base*)).
# Included by the root CMakeLists.txt with UTHREADS_BACKEND_DIR set; libevent is optional:
# without it the backend is simply not built and make_backend("libevent") says why.
#
# Only libevent_core is needed: event_base, events and timers. libevent_pthreads is not,
# because wake() never touches the event_base from another thread (see the facts at the
# top of libevent_backend.cpp). 2.1 is the first version with
# EVENT_BASE_FLAG_PRECISE_TIMER and event_base_update_cache_time.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
    # A prefix of our own, so the imported target cannot clash with a consumer's own
    # pkg_check_modules(LIBEVENT ...).
    pkg_check_modules(UTHREADS_LIBEVENT QUIET IMPORTED_TARGET libevent_core>=2.1)
endif()

if(TARGET PkgConfig::UTHREADS_LIBEVENT)
    uthreads_enable_backend(libevent
        SOURCES "${UTHREADS_BACKEND_DIR}/libevent_backend.cpp"
        LINK PkgConfig::UTHREADS_LIBEVENT
        CONFIG "find_dependency(PkgConfig)\npkg_check_modules(UTHREADS_LIBEVENT REQUIRED QUIET IMPORTED_TARGET libevent_core>=2.1)")
else()
    message(STATUS "uthreads: backend libevent not built: libevent_core >= 2.1 not found (Debian: libevent-dev)")
endif()
