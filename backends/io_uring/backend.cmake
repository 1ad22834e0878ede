# The io_uring backend (owned loop only; no guest mode). Included by the root
# CMakeLists.txt with UTHREADS_BACKEND_DIR set. liburing is optional: without it the
# backend is simply not built and make_backend("io_uring") says why. A kernel without
# io_uring (or with it disabled) is detected at run time by the factory instead.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
    # A prefix of our own, so the imported target cannot clash with a consumer's own
    # pkg_check_modules(LIBURING ...).
    pkg_check_modules(UTHREADS_LIBURING QUIET IMPORTED_TARGET liburing)
endif()

if(TARGET PkgConfig::UTHREADS_LIBURING)
    uthreads_enable_backend(io_uring
        SOURCES "${UTHREADS_BACKEND_DIR}/io_uring_backend.cpp"
        LINK PkgConfig::UTHREADS_LIBURING
        CONFIG "find_dependency(PkgConfig)\npkg_check_modules(UTHREADS_LIBURING REQUIRED QUIET IMPORTED_TARGET liburing)")
else()
    message(STATUS "uthreads: backend io_uring not built: liburing not found (Debian: liburing-dev)")
endif()
