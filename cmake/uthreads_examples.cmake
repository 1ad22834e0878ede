# examples/*.cpp: one executable per file, named after the file (examples/demo.cpp -> demo),
# written to <build>/examples/. Built with the same warnings and sanitizers as the tests.

file(GLOB _uthreads_examples CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/*.cpp")
# examples/<backend>_*.cpp need that backend's library: leave them out when this build
# could not compile the backend.
set(_uthreads_known_backends epoll sim io_uring asio libuv libevent glib)
foreach(_source IN LISTS _uthreads_examples)
    get_filename_component(_name "${_source}" NAME_WE)
    foreach(_backend IN LISTS _uthreads_known_backends)
        if(_name MATCHES "^${_backend}_" AND NOT _backend IN_LIST UTHREADS_BUILTIN_BACKENDS)
            message(STATUS "uthreads: example ${_name} skipped: backend ${_backend} not built")
            list(REMOVE_ITEM _uthreads_examples "${_source}")
        endif()
    endforeach()
endforeach()
foreach(_source IN LISTS _uthreads_examples)
    get_filename_component(_name "${_source}" NAME_WE)
    add_executable(${_name} "${_source}")
    target_link_libraries(${_name} PRIVATE uthreads::uthreads)
    set_target_properties(${_name} PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/examples")
    uthreads_target_flags(${_name})
endforeach()

# Every example is also a test: each checks its own results and exits non-zero on a
# mismatch, so `make test` runs them (under the sanitizers of this build).
if(UTHREADS_BUILD_TESTS)
    foreach(_source IN LISTS _uthreads_examples)
        get_filename_component(_name "${_source}" NAME_WE)
        add_test(NAME example.${_name} COMMAND ${_name})
        set_tests_properties(example.${_name} PROPERTIES
            TIMEOUT 300
            LABELS example
            ENVIRONMENT "${UTHREADS_TEST_ENVIRONMENT}")
    endforeach()
endif()
