#!/usr/bin/env bash
# Formats our C++ sources with clang-format (style: .clang-format at the repository root).
#   scripts/format.sh           rewrite files in place
#   scripts/format.sh --check   change nothing; exit 1 if any file is not formatted
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

clang_format="${CLANG_FORMAT:-clang-format}"
mode=(-i)
if [[ "${1:-}" == "--check" ]]; then
    mode=(--dry-run -Werror)
fi

dirs=(include src backends protocols tests examples bench)
existing=()
for d in "${dirs[@]}"; do [[ -d "$d" ]] && existing+=("$d"); done
((${#existing[@]})) || { echo "format: no source directories"; exit 0; }

# Tracked and untracked-but-not-ignored files, so build trees are never touched.
mapfile -d '' files < <(git ls-files -z --cached --others --exclude-standard -- "${existing[@]}" \
    | grep -zE '\.(cpp|hpp|cc|h|ipp)$' || true)
((${#files[@]})) || { echo "format: no files"; exit 0; }

printf '%s\0' "${files[@]}" | xargs -0 "${clang_format}" "${mode[@]}"
echo "format: ${#files[@]} files checked with $("${clang_format}" --version | head -n1)"
