# Benchmarks: one executable per file, written to <build>/bench/. Never sanitized; compiled
# with -O2 whatever the build type (the release preset is RelWithDebInfo, i.e. -O2 already).
#
#   bench/<x>_bench.cpp        -> bench_<x>        links uthreads (and Google Benchmark's
#                                                  benchmark_main, used only if the file has
#                                                  no main() of its own)
#   bench/peers/<stem>.cpp     -> target bench_peer_<x>, file <build>/bench/peers/<stem>
#                                 (e.g. bench/peers/asio_bench.cpp -> bench/peers/asio_bench):
#                                 the same workloads on another runtime; Boost 1.81 headers
#                                 (Asio) + Threads, no uthreads. A peer whose file name
#                                 contains "uv" (bench/peers/libuv_echo_bench.cpp) also
#                                 links libuv (pkg-config); without libuv it is skipped.
#                                 One whose name contains "tbb" (bench/peers/tbb_bench.cpp)
#                                 links oneTBB (find_package(TBB CONFIG), Debian libtbb-dev);
#                                 without oneTBB it is skipped with a message.
# A file not ending in _bench.cpp keeps its whole stem: bench/foo.cpp -> bench_foo.
# scripts/run-bench expects bench/bench_core and bench/peers/asio_bench; for its second
# table (backends) bench/bench_backends and bench/peers/{epoll,libuv,asio}_echo_bench; for
# the issue 5 table bench/bench_threads and bench/peers/{tbb,asio_threads}_bench.

if(NOT UTHREADS_SANITIZE STREQUAL "")
    message(STATUS "uthreads: benchmarks are never sanitized; skipped in this build")
    return()
endif()

function(uthreads_bench_name out prefix source)
    get_filename_component(_stem "${source}" NAME_WE)
    string(REGEX REPLACE "_bench$" "" _stem "${_stem}")
    set(${out} "${prefix}${_stem}" PARENT_SCOPE)
endfunction()

function(uthreads_bench_common target)
    target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/bench)
    target_compile_options(${target} PRIVATE
        $<$<NOT:$<CONFIG:Release,RelWithDebInfo>>:-O2>)
    set_target_properties(${target} PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/bench")
    uthreads_target_flags(${target} NO_SANITIZE)
endfunction()

file(GLOB _uthreads_benches CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/bench/*.cpp")
foreach(_source IN LISTS _uthreads_benches)
    uthreads_bench_name(_name bench_ "${_source}")
    add_executable(${_name} "${_source}")
    target_link_libraries(${_name} PRIVATE uthreads::uthreads)
    if(TARGET benchmark::benchmark_main)
        target_link_libraries(${_name} PRIVATE benchmark::benchmark_main)
    endif()
    uthreads_bench_common(${_name})
endforeach()

file(GLOB _uthreads_peer_benches CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/bench/peers/*.cpp")
if(_uthreads_peer_benches AND NOT TARGET Boost::headers)
    message(WARNING "uthreads: Boost 1.81 not found; bench/peers/ skipped")
    set(_uthreads_peer_benches "")
endif()
# libuv for the raw libuv peer; our own prefix, so this imported target cannot clash with
# the libuv backend's (backends/libuv/backend.cmake) or a parent project's.
if(_uthreads_peer_benches)
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
        pkg_check_modules(UTHREADS_BENCH_LIBUV QUIET IMPORTED_TARGET libuv)
    endif()
    find_package(TBB CONFIG QUIET)
endif()
foreach(_source IN LISTS _uthreads_peer_benches)
    uthreads_bench_name(_name bench_peer_ "${_source}")
    get_filename_component(_stem "${_source}" NAME_WE)
    if(_stem MATCHES "uv" AND NOT TARGET PkgConfig::UTHREADS_BENCH_LIBUV)
        message(STATUS "uthreads: libuv not found (Debian: libuv1-dev); bench/peers/${_stem} skipped")
        continue()
    endif()
    if(_stem MATCHES "tbb" AND NOT TARGET TBB::tbb)
        message(STATUS "uthreads: oneTBB not found (Debian: libtbb-dev); bench/peers/${_stem} skipped")
        continue()
    endif()
    add_executable(${_name} "${_source}")
    target_link_libraries(${_name} PRIVATE Boost::headers Threads::Threads)
    if(_stem MATCHES "uv")
        target_link_libraries(${_name} PRIVATE PkgConfig::UTHREADS_BENCH_LIBUV)
    endif()
    if(_stem MATCHES "tbb")
        target_link_libraries(${_name} PRIVATE TBB::tbb)
    endif()
    uthreads_bench_common(${_name})
    set_target_properties(${_name} PROPERTIES
        OUTPUT_NAME "${_stem}"
        RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/bench/peers")
endforeach()
