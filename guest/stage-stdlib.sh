#!/usr/bin/env bash
# Stages the standard library for the guest image: CPython's Lib/ without its
# test suites and GUI/packaging tools, the WASI sysconfigdata, an empty
# lib-dynload (getpath looks for it), all compiled to .pyc with the native
# build-python of the same source ("unchecked-hash" pycs: the image is
# read-only, so imports never stat the .py to validate them).
#
# Usage: guest/stage-stdlib.sh CPYTHON_STAGE_DIR OUTDIR
set -euo pipefail
stage=$1 out=$2
source_dir=$(cat "$stage/source-dir.txt")
wasm_build=$(cat "$stage/wasm-build-dir.txt")
build_python=$(cat "$stage/build-python.txt")
rm -rf "$out" && mkdir -p "$out"
# Test suites are served separately (tests/cpython mounts Lib/test).
tar -C "$source_dir/Lib" \
  --exclude=__pycache__ --exclude=./test --exclude=./idlelib --exclude=./tkinter \
  --exclude=./turtledemo --exclude=./ensurepip --exclude=./lib2to3/tests \
  --exclude=./distutils/tests --exclude=./unittest/test --exclude=./ctypes/test \
  --exclude=./sqlite3/test --exclude=./venv/scripts/nt --exclude=./turtle.py \
  -cf - . | tar -C "$out" -xf -
cp "$wasm_build"/build/lib.wasi-wasm32-3.11/_sysconfigdata__wasi_wasm32-wasi.py "$out/"
mkdir -p "$out/lib-dynload"
# Terrarium's guest modules (terrarium SDK, SE2 `sdk`), beside the stdlib.
cp -R "$(dirname "$0")/python/." "$out/"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
env -i PATH=/usr/bin:/bin "$build_python" -E -m compileall -q -j2 \
  --invalidation-mode unchecked-hash -d /usr/local/lib/python3.11 "$out" >/dev/null \
  || { echo "[guest] error: compiling the stdlib to .pyc failed" >&2; exit 1; }
echo "[guest] staged stdlib: $(find "$out" -type f | wc -l) files, $(du -sm "$out" | cut -f1) MB" >&2
