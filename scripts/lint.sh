#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy at the repository root) on our sources, using the
# compile_commands.json of a configured build (default: the asan preset's build/asan).
#   scripts/lint.sh [build-dir] [extra run-clang-tidy arguments, e.g. -fix]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

build_dir="${1:-build/asan}"
shift || true
if [[ ! -f "${build_dir}/compile_commands.json" ]]; then
    echo "lint: ${build_dir}/compile_commands.json missing; run 'cmake --preset asan' first" >&2
    exit 2
fi

run_clang_tidy="$(command -v run-clang-tidy-14 || command -v run-clang-tidy || true)"
clang_tidy="$(command -v clang-tidy-14 || command -v clang-tidy)"
# Only our own translation units (not build-tree generated files).
file_regex="^${repo_root}/(src|backends|protocols|tests|examples|bench)/"

if [[ -n "${run_clang_tidy}" ]]; then
    "${run_clang_tidy}" -quiet -clang-tidy-binary "${clang_tidy}" -p "${build_dir}" \
        -j "${JOBS:-2}" "$@" "${file_regex}"
else
    mapfile -t files < <(python3 -c 'import json,re,sys
for e in json.load(open(sys.argv[1])):
    f = e["file"]
    if re.search(sys.argv[2], f): print(f)' "${build_dir}/compile_commands.json" "${file_regex}")
    status=0
    for f in "${files[@]}"; do
        "${clang_tidy}" --quiet -p "${build_dir}" "$@" "$f" || status=1
    done
    exit "${status}"
fi
