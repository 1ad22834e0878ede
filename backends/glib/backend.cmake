# The GLib backend (owned GMainContext, or guest on a host's context through
# uthreads::attach(GMainContext*)). include()d by the root CMakeLists.txt with
# UTHREADS_BACKEND_DIR set; GLib's headers are used only in this directory and in
# include/uthreads/backends/glib.hpp.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
    pkg_check_modules(UTHREADS_GLIB QUIET IMPORTED_TARGET glib-2.0)
endif()

if(UTHREADS_GLIB_FOUND)
    # The exported uthreads target links PkgConfig::UTHREADS_GLIB, so the installed
    # package config recreates an imported target of exactly that name.
    uthreads_enable_backend(glib
        SOURCES "${UTHREADS_BACKEND_DIR}/glib_backend.cpp"
        LINK PkgConfig::UTHREADS_GLIB
        CONFIG "find_dependency(PkgConfig)\npkg_check_modules(UTHREADS_GLIB REQUIRED QUIET IMPORTED_TARGET glib-2.0)")
else()
    message(STATUS "uthreads: backend glib not built: GLib (glib-2.0) not found (Debian: libglib2.0-dev)")
endif()
