# Compile and link flags for uthreads' own targets (library, tests, examples, benchmarks).
# Warnings are PRIVATE to each target: nothing here is propagated to consumers, except the
# sanitizer link flag that a sanitized archive needs (set on `uthreads` in the root file).

set(UTHREADS_WARNING_FLAGS -Wall -Wextra)
if(UTHREADS_WARNINGS_AS_ERRORS)
    list(APPEND UTHREADS_WARNING_FLAGS -Werror)
endif()

if(UTHREADS_SANITIZE STREQUAL "")
    set(UTHREADS_SANITIZE_COMPILE_FLAGS "")
    set(UTHREADS_SANITIZE_LINK_FLAGS "")
elseif(UTHREADS_SANITIZE STREQUAL "address")
    # -fno-sanitize=function: clang 14's function-type check emits prologue data that
    # breaks on coroutine split functions ("Cannot represent a difference across
    # sections" at -O0/-O1 with -g). Every other UBSan check stays on.
    set(UTHREADS_SANITIZE_COMPILE_FLAGS
        -fsanitize=address,undefined -fno-sanitize=function -fno-omit-frame-pointer
        -fno-sanitize-recover=undefined)
    set(UTHREADS_SANITIZE_LINK_FLAGS -fsanitize=address,undefined)
elseif(UTHREADS_SANITIZE STREQUAL "thread")
    set(UTHREADS_SANITIZE_COMPILE_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
    set(UTHREADS_SANITIZE_LINK_FLAGS -fsanitize=thread)
else()
    message(FATAL_ERROR
        "UTHREADS_SANITIZE must be empty, 'address' or 'thread' (got '${UTHREADS_SANITIZE}')")
endif()

# Environment for every sanitized test (ctest ENVIRONMENT property).
set(UTHREADS_TEST_ENVIRONMENT "")
if(UTHREADS_SANITIZE STREQUAL "address")
    set(UTHREADS_TEST_ENVIRONMENT
        "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
        "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
elseif(UTHREADS_SANITIZE STREQUAL "thread")
    set(UTHREADS_TEST_ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
endif()

# uthreads_target_flags(<target> [NO_SANITIZE])
#   Adds our warning flags and, unless NO_SANITIZE, the sanitizer flags to <target>.
function(uthreads_target_flags target)
    cmake_parse_arguments(PARSE_ARGV 1 arg "NO_SANITIZE" "" "")
    target_compile_options(${target} PRIVATE ${UTHREADS_WARNING_FLAGS})
    if(NOT arg_NO_SANITIZE AND UTHREADS_SANITIZE_COMPILE_FLAGS)
        target_compile_options(${target} PRIVATE ${UTHREADS_SANITIZE_COMPILE_FLAGS})
        get_target_property(_type ${target} TYPE)
        if(NOT _type STREQUAL "STATIC_LIBRARY")
            target_link_options(${target} PRIVATE ${UTHREADS_SANITIZE_LINK_FLAGS})
        endif()
    endif()
endfunction()
