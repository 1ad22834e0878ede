# The libuv backend (owned loop, and guest mode through uthreads::attach(uv_loop_t*)).
# Included by the root CMakeLists.txt with UTHREADS_BACKEND_DIR set; libuv is optional:
# without it the backend is simply not built and make_backend("libuv") says why.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
    # A prefix of our own, so the imported target cannot clash with a consumer's
    # own pkg_check_modules(LIBUV ...).
    pkg_check_modules(UTHREADS_LIBUV QUIET IMPORTED_TARGET libuv)
endif()

if(TARGET PkgConfig::UTHREADS_LIBUV)
    uthreads_enable_backend(libuv
        SOURCES "${UTHREADS_BACKEND_DIR}/libuv_backend.cpp"
        LINK PkgConfig::UTHREADS_LIBUV
        CONFIG "find_dependency(PkgConfig)\npkg_check_modules(UTHREADS_LIBUV REQUIRED QUIET IMPORTED_TARGET libuv)")
else()
    message(STATUS "uthreads: backend libuv not built: libuv not found (Debian: libuv1-dev)")
endif()
