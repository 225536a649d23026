#!/usr/bin/env bash
# Links python.wasm: CPython's libpython plus Terrarium's guest sources, as a
# WASI reactor with Terrarium's exports.
#
# Usage: guest/link-python.sh CPYTHON_STAGE_DIR OUTPUT.wasm SOURCE.c...
#
# With -flto the link optimises all of CPython (about 2 minutes), so the result
# is cached in $TERRARIUM_CACHE, keyed by a hash of every input.
set -euo pipefail
stage=$1 output=$2
shift 2
cache=${TERRARIUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrarium}
key=$(cat "$0" "$stage/guest-cflags.txt" "$stage/link-flags.txt" "$stage/wasm-build-dir.txt" \
        "$stage/libpython3.11.a" "$@" | sha256sum | cut -c1-16)
cached="$cache/python-wasm-$key.wasm"
if [ -f "$cached" ]; then
  cp "$cached" "$output"
  echo "[guest] cached $(basename "$output") found: $cached" >&2
  exit 0
fi
sysroot=$(cat "$stage/sysroot.txt")
wasm_build=$(cat "$stage/wasm-build-dir.txt")
source_dir=$(cat "$stage/source-dir.txt")
cc="clang-19 --target=wasm32-wasi --sysroot=$sysroot"
# The flags CPython was compiled with (e.g. -flto: the link then optimises
# CPython and these sources together).
read -r -a guest_cflags < "$stage/guest-cflags.txt"
objects=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/terrarium-link.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for source in "$@"; do
  object="$tmp/$(basename "$source" .c).o"
  $cc -O2 "${guest_cflags[@]}" -Wall -Wextra -Wno-unused-parameter -I"$wasm_build" -I"$source_dir/Include" \
    -I"$source_dir/Include/internal" -c "$source" -o "$object"
  objects+=("$object")
done
# CPython's own link flags name some archives relative to its build dir.
flags=$(sed "s| Modules/| $wasm_build/Modules/|g" "$stage/link-flags.txt")
# shellcheck disable=SC2086
$cc "${guest_cflags[@]}" -mexec-model=reactor -Wl,--strip-debug -o "$output" "${objects[@]}" \
  "$stage/libpython3.11.a" $flags
mkdir -p "$cache"
cp "$output" "$cached.partial" && mv "$cached.partial" "$cached"
echo "[guest] linked $(basename "$output") ($(stat -c %s "$output") bytes), cached as $cached" >&2
