# uthreads developer entry points. Everything goes through CMake presets (CMakePresets.json):
#   build/asan     Debug + ASan/UBSan, what `make test` runs
#   build/release  RelWithDebInfo, for the demo, benchmarks and install
#   build/tsan     Debug + TSan (the threaded runtime; `make test` runs its unit tests
#                  and the 4-worker conformance suite)
#
#   make deps | build [PRESET=release|asan|tsan] | test | test-tsan | demo
#   make bench [BENCH_ARGS="--quick --strict ..."]   (scripts/run-bench --help)
#   make install [PREFIX=/usr/local] | format | format-check | lint | clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

JOBS ?= 2
PRESET ?= release
PREFIX ?= /usr/local

.PHONY: deps build test test-asan test-tsan test-tsan-threaded test-tsan-unit demo bench install format format-check lint clean

# install-deps re-executes itself with sudo when not run as root.
deps:
	bash scripts/install-deps

configure-%:
	cmake --preset $*

build-%: configure-%
	cmake --build --preset $* -j$(JOBS)

build: deps
	$(MAKE) --no-print-directory build-$(PRESET)

test-asan: build-asan
	ctest --test-dir build/asan --output-on-failure --no-tests=error -j$(JOBS)

test-tsan: build-tsan
	ctest --test-dir build/tsan --output-on-failure --no-tests=error -j$(JOBS)

# The threaded runtime under ThreadSanitizer, in build/tsan: the unit tests
# (threads_test.cpp with 4 workers on every backend, the deque and parker stress
# tests, every primitive) and the conformance suite with 4 workers on every
# backend (FourWorkers/..., about 2.5 minutes). Left to `make test-tsan`, which
# builds and runs everything, to keep `make test` within the CI budget: the
# one-worker conformance suite, the examples, and SignalTest, whose
# process-directed signals ThreadSanitizer may hold back indefinitely from a
# thread blocked in poll (google/sanitizers#1813); the ASan build runs them all.
TSAN_THREADED := ^conformance\.FourWorkers/
test-tsan-threaded: configure-tsan
	cmake --build build/tsan -j$(JOBS) --target unit_tests conformance_tests
	ctest --test-dir build/tsan --output-on-failure --no-tests=error -j$(JOBS) -L unit
	ctest --test-dir build/tsan --output-on-failure --no-tests=error -j$(JOBS) \
	    -R '$(TSAN_THREADED)' -E 'SignalTest'

# The unit tests alone under ThreadSanitizer (a quicker check while developing).
test-tsan-unit: configure-tsan
	cmake --build build/tsan -j$(JOBS) --target unit_tests
	ctest --test-dir build/tsan --output-on-failure --no-tests=error -j$(JOBS) -L unit

test: deps
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan-threaded

demo: deps
	$(MAKE) --no-print-directory build-release
	./build/release/examples/demo

bench: deps
	$(MAKE) --no-print-directory build-release
	@if [ -x scripts/run-bench ]; then \
	    BUILD_DIR=build/release ./scripts/run-bench $(BENCH_ARGS); \
	elif [ -f scripts/run-bench ]; then \
	    BUILD_DIR=build/release python3 scripts/run-bench $(BENCH_ARGS); \
	else \
	    echo "make bench: scripts/run-bench does not exist yet; binaries are in build/release/bench/"; \
	fi

install: deps
	$(MAKE) --no-print-directory build-release
	cmake --install build/release --prefix "$(PREFIX)"

format:
	bash scripts/format.sh

format-check:
	bash scripts/format.sh --check

lint: configure-asan
	bash scripts/lint.sh build/asan

clean:
	rm -rf build
