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
# asyncio's selector event loop makes a "self-pipe" with socket.socketpair(),
# which WASI lacks, so every event loop failed to start. The self-pipe only
# wakes the loop from other threads or signal handlers, neither of which a
# WASI guest has: on WASI the loop runs without one (coroutines, timers,
# queues, asyncio.run work; sockets and subprocesses still do not).
env -i PATH=/usr/bin:/bin "$build_python" -E - "$out/asyncio/selector_events.py" <<'PY' \
  || { echo "[guest] error: patching asyncio for WASI failed" >&2; exit 1; }
import sys
path = sys.argv[1]
src = open(path).read()
patches = [
    ("    def _close_self_pipe(self):\n",
     "    def _close_self_pipe(self):\n"
     "        if self._ssock is None:  # Terrarium: no self-pipe on WASI\n"
     "            return\n"),
    ("    def _make_self_pipe(self):\n",
     "    def _make_self_pipe(self):\n"
     "        if sys.platform == 'wasi':  # Terrarium: no socketpair(), threads or signals\n"
     "            self._ssock = self._csock = None\n"
     "            return\n"),
    ("import collections\n", "import collections\nimport sys\n"),
]
for old, new in patches:
    assert src.count(old) == 1, old
    src = src.replace(old, new)
open(path, "w").write(src)
PY
mkdir -p "$out/lib-dynload"
# Terrarium's guest modules (terrarium SDK, SE2 `sdk`), beside the stdlib.
cp -R "$(dirname "$0")/python/." "$out/"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
# An empty test/ as the mount point for CPython's Lib/test (tests/cpython):
# a mount there wins over the image, but Python finds modules by listing their
# parent directory, and the image's listing shows only its own entries.
mkdir -p "$out/test"
# Time zones for zoneinfo: Debian's tzdata package (/usr/share/zoneinfo) staged
# as the `tzdata` Python package, in the layout of PyPI's tzdata (every
# directory a package, a `zones` list, IANA_VERSION). zoneinfo finds no
# /usr/share/zoneinfo in the guest (unless one is mounted) and falls back to
# importlib.resources.files("tzdata.zoneinfo"), which reads from the image.
# Only TZif files are taken (no posix/, right/, tzdata.zi or tables); symlinked
# zones become copies.
[ -f /usr/share/zoneinfo/tzdata.zi ] || { echo "[guest] error: /usr/share/zoneinfo missing; install tzdata ('make deps')" >&2; exit 1; }
env -i PATH=/usr/bin:/bin "$build_python" -E - "$out/tzdata" /usr/share/zoneinfo <<'PY' \
  || { echo "[guest] error: staging tzdata failed" >&2; exit 1; }
import os, shutil, sys
out, src = sys.argv[1], sys.argv[2]
version = open(os.path.join(src, "tzdata.zi")).readline().split()[-1]
zones = []
for root, dirs, files in os.walk(src, followlinks=True):
    rel = os.path.relpath(root, src)
    if rel.split(os.sep)[0] in ("posix", "right"):
        continue
    for name in files:
        key = os.path.normpath(os.path.join(rel, name))
        if key in ("localtime", "posixrules"):
            continue
        with open(os.path.join(root, name), "rb") as f:
            if f.read(4) != b"TZif":
                continue
        dest = os.path.join(out, "zoneinfo", key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(root, name), dest)
        zones.append(key.replace(os.sep, "/"))
for root, dirs, files in os.walk(out):
    open(os.path.join(root, "__init__.py"), "a").close()
with open(os.path.join(out, "__init__.py"), "w") as f:
    f.write(f'# Debian tzdata {version}, staged by Terrarium (guest/stage-stdlib.sh)\n'
            f'IANA_VERSION = "{version}"\n__version__ = "{version}"\n')
with open(os.path.join(out, "zones"), "w") as f:
    f.write("".join(z + "\n" for z in sorted(zones)))
print(f"[guest] staged tzdata {version}: {len(zones)} zones", file=sys.stderr)
PY
env -i PATH=/usr/bin:/bin "$build_python" -E -m compileall -q -j2 \
  --invalidation-mode unchecked-hash -d /usr/local/lib/python3.11 "$out" >/dev/null \
  || { echo "[guest] error: compiling the stdlib to .pyc failed" >&2; exit 1; }
echo "[guest] staged stdlib: $(find "$out" -type f | wc -l) files, $(du -sm "$out" | cut -f1) MB" >&2
