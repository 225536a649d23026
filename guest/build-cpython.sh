#!/usr/bin/env bash
# Builds CPython 3.11 for wasm32-wasi from Debian's source package and stages
# what the rest of the build needs: libpython3.11.a (+ the link flags CPython's
# own Makefile uses) and the standard library compiled to .pyc.
#
# Usage: guest/build-cpython.sh OUTDIR
#
# Slow (about 4 minutes on 2 cores), so the result is cached outside the source
# tree in $TERRARIUM_CACHE (default ~/.cache/terrarium), keyed by a hash of this
# script, the config overrides and the source tarball. A second run with the
# same inputs only copies the cached result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-cpython.sh OUTDIR}
cache=${TERRARIUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrarium}
jobs=${TERRARIUM_JOBS:-$(nproc)}
python_tarball=python3.11_3.11.2.orig.tar.gz
python_sha256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849

say() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }

for tool in clang-19 wasm-ld-19 llvm-ar-19 llvm-ranlib-19; do
  command -v "$tool" >/dev/null || die "$tool not found; run 'make deps' (installs clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)"
done
[ -f /usr/lib/wasm32-wasi/libc.a ] || die "wasi-libc missing (/usr/lib/wasm32-wasi/libc.a); run 'make deps'"

mkdir -p "$cache/src"
"$here/fetch-source.sh" python3.11 "$python_tarball" "$python_sha256"

# The native build-python depends only on the source: its own cache entry.
native="$cache/cpython-native-$(echo "$python_sha256" | cut -c1-16)"
if [ ! -f "$native/done" ]; then
  rm -rf "$native" && mkdir -p "$native/build"
  say "native build-python (configure + make, ~2 min) in $native"
  tar -C "$native" -xzf "$cache/src/$python_tarball"
  (cd "$native/build" && env -i PATH=/usr/bin:/bin HOME="$HOME" \
     "$native/Python-3.11.2/configure" -C --prefix="$native/prefix" >configure.log 2>&1 \
   && env -i PATH=/usr/bin:/bin HOME="$HOME" make -j"$jobs" >make.log 2>&1) \
    || die "native CPython build failed; see $native/build/*.log"
  touch "$native/done"
fi

# Extra flags for CPython's own sources (not configure's checks), also used by
# link-python.sh: -flto lets wasm-ld inline across CPython's files, as Debian's
# native build does. Set by CMake (TERRARIUM_GUEST_CFLAGS).
guest_cflags=${TERRARIUM_GUEST_CFLAGS-"-flto"}
# Terrarium's changes to CPython's sources, applied in name order (see
# guest/patches/README.md for what each one does and why).
patches=("$here"/patches/*.patch)
[ -e "${patches[0]}" ] || patches=()
key=$( (cat "$0" "$here/build-deps.sh" "$here/sqlite-wasi.h" "$here/config.site-terrarium" "$here/Setup.local" ${patches[@]+"${patches[@]}"}; echo "$guest_cflags") | sha256sum | cut -c1-16)-$(echo "$python_sha256" | cut -c1-8)
work="$cache/cpython-wasm-$key"
if [ -f "$work/done" ]; then
  say "cached CPython wasm build found: $work"
else
  rm -rf "$work" && mkdir -p "$work"
  say "building CPython 3.11 for wasm32-wasi in $work (cache key $key)"
  tar -C "$work" -xzf "$cache/src/$python_tarball"
  src="$work/Python-3.11.2"
  for patch in ${patches[@]+"${patches[@]}"}; do
    say "applying $(basename "$patch")"
    patch -d "$src" -p1 --forward --batch --quiet < "$patch" \
      || die "$(basename "$patch") does not apply to $src (see the .rej files there)"
  done

  # A private sysroot: Debian's wasi-libc lives under /usr/include/wasm32-wasi,
  # and without this clang also searches /usr/include (host headers leak in).
  mkdir -p "$work/sysroot/include" "$work/sysroot/lib"
  ln -s /usr/include/wasm32-wasi "$work/sysroot/include/wasm32-wasi"
  ln -s /usr/lib/wasm32-wasi "$work/sysroot/lib/wasm32-wasi"

  "$here/build-deps.sh" "$work/sysroot" "$work/deps"
  deps="$work/deps"

  say "wasm32-wasi build (configure + make, ~2 min)"
  cp "$here/Setup.local" "$src/Modules/Setup.local"
  cat "$src/Tools/wasm/config.site-wasm32-wasi" "$here/config.site-terrarium" > "$work/config.site"
  mkdir -p "$work/wasm" "$work/empty-pkgconfig"
  # PKG_CONFIG_LIBDIR: the host's .pc files (zlib, ...) must not leak into a
  # cross build; the libraries come from $deps through the *_CFLAGS/_LIBS.
  (cd "$work/wasm" && env -i PATH=/usr/bin:/bin HOME="$HOME" \
     CONFIG_SITE="$work/config.site" PKG_CONFIG_LIBDIR="$work/empty-pkgconfig" \
     CC="clang-19 --target=wasm32-wasi --sysroot=$work/sysroot" \
     CPP="clang-19 --target=wasm32-wasi --sysroot=$work/sysroot -E" \
     AR=llvm-ar-19 RANLIB=llvm-ranlib-19 \
     CFLAGS="-O2 -Wno-error=int-conversion" \
     CFLAGS_NODIST="$guest_cflags" LDFLAGS_NODIST="$guest_cflags" \
     ZLIB_CFLAGS="-I$deps/include" ZLIB_LIBS="-L$deps/lib -lz" \
     BZIP2_CFLAGS="-I$deps/include" BZIP2_LIBS="-L$deps/lib -lbz2" \
     LIBLZMA_CFLAGS="-I$deps/include" LIBLZMA_LIBS="-L$deps/lib -llzma" \
     LIBSQLITE3_CFLAGS="-I$deps/include" LIBSQLITE3_LIBS="-L$deps/lib -lsqlite3 -lwasi-emulated-getpid" \
     "$src/configure" -C --host=wasm32-unknown-wasi --build=x86_64-pc-linux-gnu \
       --with-build-python="$native/build/python" --with-pymalloc \
       --enable-big-digits=30 --without-ensurepip --disable-test-modules \
       >configure.log 2>&1 \
   && env -i PATH=/usr/bin:/bin HOME="$HOME" make -j"$jobs" >make.log 2>&1) \
    || die "wasm32-wasi CPython build failed; see $work/wasm/*.log"
  touch "$work/done"
fi

# Stage the outputs.
mkdir -p "$out"
cp "$work/wasm/libpython3.11.a" "$out/"
cp "$work/wasm/Modules/_decimal/libmpdec/libmpdec.a" "$out/" 2>/dev/null || true
cp "$work/wasm/Modules/_hacl/libHacl_Hash_SHA2.a" "$out/" 2>/dev/null || true
cp "$work/wasm/Modules/expat/libexpat.a" "$out/" 2>/dev/null || true
# The link line CPython's Makefile uses for python.wasm, minus the objects.
make -s -C "$work/wasm" -f Makefile -f - print-link-flags <<'MK' > "$out/link-flags.txt"
print-link-flags:
	@echo $(PY_CORE_LDFLAGS) $(LINKFORSHARED) $(LIBS) $(MODLIBS) $(SYSLIBS)
MK
echo "$work/sysroot" > "$out/sysroot.txt"
echo "$guest_cflags" > "$out/guest-cflags.txt"
echo "$native/build/python" > "$out/build-python.txt"
echo "$work/Python-3.11.2" > "$out/source-dir.txt"
echo "$work/wasm" > "$out/wasm-build-dir.txt"
say "staged libpython3.11.a and link flags in $out"
