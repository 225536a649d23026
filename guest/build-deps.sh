#!/usr/bin/env bash
# Cross-compiles the C libraries CPython's stdlib modules need (zlib, bzip2,
# xz's liblzma, sqlite3) for wasm32-wasi from Debian's source packages.
#
# Usage: guest/build-deps.sh SYSROOT PREFIX
# Installs static libraries and headers into PREFIX/{lib,include}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sysroot=${1:?usage: build-deps.sh SYSROOT PREFIX}
prefix=${2:?usage: build-deps.sh SYSROOT PREFIX}
cache=${TERRARIUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrarium}
jobs=${TERRARIUM_JOBS:-$(nproc)}
say() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }

cc="clang-19 --target=wasm32-wasi --sysroot=$sysroot"
cflags="-O2 -g0"
build=$(mktemp -d "${TMPDIR:-/tmp}/terrarium-deps.XXXXXX")
trap 'rm -rf "$build"' EXIT
mkdir -p "$prefix/lib" "$prefix/include"

"$here/fetch-source.sh" zlib zlib_1.2.13.dfsg.orig.tar.bz2 71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
"$here/fetch-source.sh" bzip2 bzip2_1.0.8.orig.tar.gz ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269
"$here/fetch-source.sh" xz-utils xz-utils_5.4.1.orig.tar.xz 5d9827aa1875b21c288f78864bb26d2650b436ea8d2cad364e4921eb6266a5a5
"$here/fetch-source.sh" sqlite3 sqlite3_3.40.1.orig.tar.xz aaa776260ab4dc976db34aa7891819484c8676b5b2783123ebc6301e2ca5d655

say "zlib 1.2.13"
tar -C "$build" -xjf "$cache/src/zlib_1.2.13.dfsg.orig.tar.bz2"
(cd "$build"/zlib-1.2.13* && for f in adler32 crc32 deflate infback inffast inflate inftrees trees zutil compress uncompr gzclose gzlib gzread gzwrite; do
   $cc $cflags -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -c $f.c -o $f.o || exit 1; done \
 && llvm-ar-19 rcs "$prefix/lib/libz.a" *.o && cp zlib.h zconf.h "$prefix/include/") >"$build/zlib.log" 2>&1 \
  || { cat "$build/zlib.log" >&2; die "zlib build failed"; }

say "bzip2 1.0.8"
tar -C "$build" -xzf "$cache/src/bzip2_1.0.8.orig.tar.gz"
(cd "$build"/bzip2-1.0.8 && for f in blocksort huffman crctable randtable compress decompress bzlib; do
   $cc $cflags -D_FILE_OFFSET_BITS=64 -c $f.c -o $f.o || exit 1; done \
 && llvm-ar-19 rcs "$prefix/lib/libbz2.a" *.o && cp bzlib.h "$prefix/include/") >"$build/bzip2.log" 2>&1 \
  || { cat "$build/bzip2.log" >&2; die "bzip2 build failed"; }

say "xz-utils 5.4.1 (liblzma)"
tar -C "$build" -xJf "$cache/src/xz-utils_5.4.1.orig.tar.xz"
# Without threads, mythread.h wraps sigprocmask(), which WASI lacks; liblzma
# itself never calls it (only the xz tool does).
sed -i 's|^#if !(defined(_WIN32) \&\& !defined(__CYGWIN__))$|#if !(defined(_WIN32) \&\& !defined(__CYGWIN__)) \&\& !defined(__wasi__)|' \
  "$build"/xz-5.4.1/src/common/mythread.h
grep -q '__wasi__' "$build"/xz-5.4.1/src/common/mythread.h || die "could not patch xz's mythread.h for WASI"
(cd "$build"/xz-5.4.1 && env -i PATH=/usr/bin:/bin CC="$cc" AR=llvm-ar-19 RANLIB=llvm-ranlib-19 CFLAGS="$cflags" \
   ./configure --host=wasm32-unknown-wasi --build=x86_64-pc-linux-gnu --prefix="$prefix" \
     --disable-shared --enable-static --disable-threads --disable-xz --disable-xzdec \
     --disable-lzmadec --disable-lzmainfo --disable-lzma-links --disable-scripts --disable-doc \
     --disable-nls --disable-rpath \
 && make -j"$jobs" -C src/liblzma && make -C src/liblzma install) >"$build/xz.log" 2>&1 \
  || { tail -40 "$build/xz.log" >&2; die "xz (liblzma) build failed"; }
rm -f "$prefix"/lib/*.la

say "sqlite 3.40.1"
# The orig tarball is SQLite's full source tree: configure it natively (with
# the host cc and tclsh) only to generate the amalgamation sqlite3.c, then
# cross-compile that one file. WASI lacks locks, shared memory, mmap, file
# modes and threads, hence: no WAL (it needs shared memory), no mmap, the
# "unix-none" VFS (no locking: a database file on a mount is not protected
# against a second process writing it at the same time), temp tables in
# memory (the guest may have no /tmp), no extension loading.
command -v tclsh >/dev/null || die "tclsh not found (needed to generate sqlite3.c); run 'make deps'"
tar -C "$build" -xJf "$cache/src/sqlite3_3.40.1.orig.tar.xz"
(cd "$build"/sqlite3-3.40.1 && mkdir -p amalgamation && cd amalgamation \
 && env -i PATH=/usr/bin:/bin ../configure --disable-tcl \
 && env -i PATH=/usr/bin:/bin make sqlite3.c \
 && $cc $cflags -include "$here/sqlite-wasi.h" -D_WASI_EMULATED_GETPID \
      -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL \
      -DSQLITE_MAX_MMAP_SIZE=0 -DSQLITE_TEMP_STORE=2 \
      '-DSQLITE_DEFAULT_UNIX_VFS="unix-none"' -DSQLITE_ENABLE_FTS4 -DSQLITE_ENABLE_FTS5 \
      -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_MATH_FUNCTIONS -c sqlite3.c -o sqlite3.o \
 && llvm-ar-19 rcs "$prefix/lib/libsqlite3.a" sqlite3.o && cp sqlite3.h sqlite3ext.h "$prefix/include/") \
  >"$build/sqlite.log" 2>&1 || { tail -40 "$build/sqlite.log" >&2; die "sqlite build failed"; }
say "deps installed in $prefix"
