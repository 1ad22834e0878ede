# GoogleTest suites: one executable per directory, every *.cpp under it (globbed, so new
# files are picked up at the next build). Tests are discovered when ctest runs
# (DISCOVERY_MODE PRE_TEST), so a build never executes test binaries.
#
#   tests/unit/**.cpp         -> unit_tests          ctest names: unit.<Suite>.<Test>
#   tests/conformance/**.cpp  -> conformance_tests   ctest names: conformance.<Suite>.<Test>
#   tests/integration/consumer/main.cpp -> ctest `consumer_install` (scripts/check-consumer.sh)

find_package(GTest CONFIG QUIET)
if(NOT GTest_FOUND)
    # `make test` runs ctest with --no-tests=error, so this cannot pass CI unnoticed.
    message(WARNING "uthreads: GoogleTest not found (scripts/install-deps installs it); "
                    "tests not built")
    return()
endif()
include(GoogleTest)

set(UTHREADS_TEST_TIMEOUT 120 CACHE STRING "Per-test ctest TIMEOUT in seconds")

function(uthreads_add_gtest_suite name dir prefix)
    file(GLOB_RECURSE _sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${dir}/*.cpp")
    if(NOT _sources)
        message(STATUS "uthreads: no sources in ${dir}/, ${name} not built")
        return()
    endif()
    add_executable(${name} ${_sources})
    target_include_directories(${name} PRIVATE
        ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} PRIVATE uthreads::uthreads GTest::gmock GTest::gtest_main)
    set_target_properties(${name} PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/tests")
    uthreads_target_flags(${name})
    # Tests with backend-specific harnesses (guest hosts) compile only for the
    # backends this build has.
    foreach(_backend IN LISTS UTHREADS_BUILTIN_BACKENDS)
        string(TOUPPER "${_backend}" _upper)
        string(MAKE_C_IDENTIFIER "${_upper}" _upper)
        target_compile_definitions(${name} PRIVATE UTHREADS_HAVE_BACKEND_${_upper}=1)
    endforeach()
    gtest_discover_tests(${name}
        TEST_PREFIX "${prefix}."
        DISCOVERY_MODE PRE_TEST
        DISCOVERY_TIMEOUT 60
        PROPERTIES
            TIMEOUT ${UTHREADS_TEST_TIMEOUT}
            LABELS ${prefix}
            ${_uthreads_gtest_env_properties})
endfunction()

# gtest_discover_tests writes PROPERTIES into a generated script and splits every list on the
# way, so a two-variable ENVIRONMENT would arrive as ENVIRONMENT A plus a stray property B.
# Each property therefore carries one variable: the first in ENVIRONMENT, the second in
# ENVIRONMENT_MODIFICATION (NAME=set:VALUE).
set(_uthreads_gtest_env_properties "")
list(LENGTH UTHREADS_TEST_ENVIRONMENT _n)
if(_n GREATER 2)
    message(FATAL_ERROR "uthreads: at most two test environment variables are supported")
endif()
if(_n GREATER_EQUAL 1)
    list(GET UTHREADS_TEST_ENVIRONMENT 0 _first)
    list(APPEND _uthreads_gtest_env_properties ENVIRONMENT "${_first}")
endif()
if(_n EQUAL 2)
    list(GET UTHREADS_TEST_ENVIRONMENT 1 _second)
    string(REGEX REPLACE "^([^=]+)=(.*)$" "\\1=set:\\2" _second "${_second}")
    list(APPEND _uthreads_gtest_env_properties ENVIRONMENT_MODIFICATION "${_second}")
endif()

uthreads_add_gtest_suite(unit_tests tests/unit unit)
uthreads_add_gtest_suite(conformance_tests tests/conformance conformance)

set(_consumer_dir "${PROJECT_SOURCE_DIR}/tests/integration/consumer")
if(EXISTS "${_consumer_dir}/main.cpp" AND UTHREADS_INSTALL)
    add_test(NAME consumer_install
        COMMAND bash "${PROJECT_SOURCE_DIR}/scripts/check-consumer.sh"
            --build-dir "${PROJECT_BINARY_DIR}"
            --config "$<CONFIG>"
            --source-dir "${_consumer_dir}"
            --work-dir "${PROJECT_BINARY_DIR}/consumer-check"
            --cxx "${CMAKE_CXX_COMPILER}"
            --generator "${CMAKE_GENERATOR}")
    set_tests_properties(consumer_install PROPERTIES
        TIMEOUT 600
        LABELS integration
        ENVIRONMENT "${UTHREADS_TEST_ENVIRONMENT}")
else()
    message(STATUS "uthreads: tests/integration/consumer/main.cpp missing, consumer_install not added")
endif()
