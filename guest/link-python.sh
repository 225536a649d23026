#!/usr/bin/env bash
# Links python.wasm: CPython's libpython plus Terrarium's guest sources, as a
# WASI reactor with Terrarium's exports.
#
# Usage: guest/link-python.sh CPYTHON_STAGE_DIR OUTPUT.wasm SOURCE.c...
set -euo pipefail
stage=$1 output=$2
shift 2
sysroot=$(cat "$stage/sysroot.txt")
wasm_build=$(cat "$stage/wasm-build-dir.txt")
source_dir=$(cat "$stage/source-dir.txt")
cc="clang-19 --target=wasm32-wasi --sysroot=$sysroot"
objects=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/terrarium-link.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for source in "$@"; do
  object="$tmp/$(basename "$source" .c).o"
  $cc -O2 -Wall -Wextra -Wno-unused-parameter -I"$wasm_build" -I"$source_dir/Include" \
    -I"$source_dir/Include/internal" -c "$source" -o "$object"
  objects+=("$object")
done
# CPython's own link flags name some archives relative to its build dir.
flags=$(sed "s| Modules/| $wasm_build/Modules/|g" "$stage/link-flags.txt")
# shellcheck disable=SC2086
$cc -mexec-model=reactor -Wl,--strip-debug -o "$output" "${objects[@]}" \
  "$stage/libpython3.11.a" $flags
echo "[guest] linked $(basename "$output") ($(stat -c %s "$output") bytes)" >&2
