# uthreads developer entry points. Everything goes through CMake presets (CMakePresets.json):
#   build/asan     Debug + ASan/UBSan, what `make test` runs
#   build/release  RelWithDebInfo, for the demo, benchmarks and install
#   build/tsan     Debug + TSan (for the threaded runtime and STM, later)
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

.PHONY: deps build test test-asan test-tsan demo bench install format format-check lint clean

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

test: deps
	$(MAKE) --no-print-directory test-asan
	@# TSan step: enable once the threaded runtime and STM land (make test-tsan works today).
	@# $(MAKE) --no-print-directory test-tsan

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
