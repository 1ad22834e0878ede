#!/usr/bin/env bash
# Installs a built uthreads into a scratch prefix, builds tests/integration/consumer against
# it with the same compiler, and runs that one binary under every UTHREADS_BACKEND value
# the library has.
# Run by ctest as `consumer_install`; usable by hand:
#   scripts/check-consumer.sh --build-dir build/release
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir=""
config=""
source_dir="${repo_root}/tests/integration/consumer"
work_dir=""
cxx=""
generator=""
backends=()  # every backend the installed library has (asked from the consumer)

while (($#)); do
    case "$1" in
        --build-dir) build_dir="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --source-dir) source_dir="$2"; shift 2 ;;
        --work-dir) work_dir="$2"; shift 2 ;;
        --cxx) cxx="$2"; shift 2 ;;
        --generator) generator="$2"; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "check-consumer: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

if [[ -z "${build_dir}" || ! -f "${build_dir}/CMakeCache.txt" ]]; then
    echo "check-consumer: --build-dir must name a configured build directory" >&2
    exit 2
fi
build_dir="$(cd "${build_dir}" && pwd)"
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "${build_dir}/CMakeCache.txt" | head -n1; }
[[ -n "${cxx}" ]] || cxx="$(cache_value CMAKE_CXX_COMPILER)"
[[ -n "${generator}" ]] || generator="$(cache_value CMAKE_GENERATOR)"
[[ -n "${config}" ]] || config="$(cache_value CMAKE_BUILD_TYPE)"
[[ -n "${work_dir}" ]] || work_dir="${build_dir}/consumer-check"

prefix="${work_dir}/prefix"
consumer_build="${work_dir}/build"
rm -rf "${work_dir}"
mkdir -p "${work_dir}"

echo "== install ${build_dir} -> ${prefix}"
install_args=(--install "${build_dir}" --prefix "${prefix}")
[[ -n "${config}" ]] && install_args+=(--config "${config}")
cmake "${install_args[@]}" >"${work_dir}/install.log"

echo "== configure consumer with ${cxx}"
configure_args=(-S "${source_dir}" -B "${consumer_build}"
    -DCMAKE_PREFIX_PATH="${prefix}"
    -DCMAKE_CXX_COMPILER="${cxx}"
    -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON)
[[ -n "${generator}" ]] && configure_args+=(-G "${generator}")
[[ -n "${config}" ]] && configure_args+=(-DCMAKE_BUILD_TYPE="${config}")
cmake "${configure_args[@]}"

echo "== build consumer"
cmake --build "${consumer_build}"

# One binary, compiled once, run unchanged under every UTHREADS_BACKEND value.
mapfile -t backends < <("${consumer_build}/consumer" --list-backends)
if [[ " ${backends[*]} " != *" epoll "* || " ${backends[*]} " != *" sim "* ]]; then
    echo "check-consumer: the installed library lacks epoll or sim (has: ${backends[*]})" >&2
    exit 1
fi
echo "== backends: ${backends[*]}"
status=0
for backend in "${backends[@]}"; do
    echo "== run consumer with UTHREADS_BACKEND=${backend}"
    if UTHREADS_BACKEND="${backend}" "${consumer_build}/consumer"; then
        echo "   ok (${backend})"
    else
        rc=$?
        echo "   FAILED (${backend}): exit ${rc}" >&2
        status=1
    fi
done
exit "${status}"
