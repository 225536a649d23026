#!/usr/bin/env bash
# Fetches a Debian source package's orig tarball into $TERRARIUM_CACHE/src with
# `apt-get source`, trying every version `apt-cache showsrc` lists (newest
# first) until a tarball with the pinned sha256 arrives. The sha256 alone
# decides: Debian's security archive sometimes lists a newer version whose
# files it no longer serves, while an older version (same upstream tarball)
# still arrives from the main archive. Adds a deb-src entry (copied from the
# machine's own Debian sources) when apt knows no source for the package.
#
# Usage: guest/fetch-source.sh PACKAGE TARBALL SHA256
set -euo pipefail
package=${1:?usage: fetch-source.sh PACKAGE TARBALL SHA256}
tarball=${2:?usage: fetch-source.sh PACKAGE TARBALL SHA256}
sha256=${3:?usage: fetch-source.sh PACKAGE TARBALL SHA256}
cache=${TERRARIUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrarium}
say() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$cache/src"
cd "$cache/src"
if [ -f "$tarball" ]; then
  [ "$(sha_of "$tarball")" = "$sha256" ] && exit 0
  say "$cache/src/$tarball has sha256 $(sha_of "$tarball"), expected $sha256: fetching it again"
  rm -f "$tarball"
fi
say "fetching Debian source package $package ($tarball)"

# The versions apt knows, newest first (dpkg's ordering, epochs included).
list_versions() {
  apt-cache showsrc "$package" 2>/dev/null \
    | awk -v p="$package" '/^Package: /{cur=$2} /^Version: /{if (cur==p) print $2}' \
    | sort -u \
    | { mapfile -t vs; for ((i = 1; i < ${#vs[@]}; i++)); do
          v=${vs[i]} j=$i
          while ((j > 0)) && dpkg --compare-versions "$v" gt "${vs[j-1]}"; do vs[j]=${vs[j-1]}; j=$((j-1)); done
          vs[j]=$v
        done; [ ${#vs[@]} -eq 0 ] || printf '%s\n' "${vs[@]}"; }
}
mapfile -t versions < <(list_versions)
if [ ${#versions[@]} -eq 0 ]; then
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || die "apt knows no source package $package, there is no deb-src entry and no $src to derive one from; add a deb-src line or place $tarball in $cache/src/ by hand (sha256 $sha256)"
    say "adding deb-src entries (from $src) and running apt-get update"
    sed 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/terrarium-deb-src.sources
    apt-get update -qq || say "apt-get update failed; trying with what apt has"
  fi
  mapfile -t versions < <(list_versions)
fi
[ ${#versions[@]} -gt 0 ] || die "apt-cache showsrc $package lists no version; place $tarball in $cache/src/ by hand (sha256 $sha256)"

# Each attempt downloads into a scratch folder so that nothing partial or
# unverified is ever left under the tarball's name.
scratch=$(mktemp -d "$cache/src/.fetch-$package.XXXXXX")
trap 'rm -rf "$scratch" "$scratch.log"' EXIT
report=()
for version in "${versions[@]}"; do
  rm -rf "${scratch:?}"/* 2>/dev/null || true
  # A version may fail as a whole (its .dsc gone) yet deliver the tarball, so
  # the outcome is judged by what arrived, not by the exit status.
  if (cd "$scratch" && apt-get source -qq --download-only "$package=$version") >"$scratch.log" 2>&1; then status=0; else status=$?; fi
  # apt's errors say why (a 404, an unknown version); its warnings rarely do.
  answer=$(grep -E '^(E|Err):' "$scratch.log" | head -n 2 | tr '\n' ' ' | sed 's/ *$//' || true)
  [ -n "$answer" ] || answer=$(grep -v '^[[:space:]]*$' "$scratch.log" | tail -n 1 || true)
  rm -f "$scratch.log"
  if [ -f "$scratch/$tarball" ]; then
    got=$(sha_of "$scratch/$tarball")
    if [ "$got" = "$sha256" ]; then
      mv "$scratch/$tarball" "$cache/src/$tarball"
      [ ${#report[@]} -eq 0 ] || say "$package=$version delivered $tarball; before it: ${report[*]%;}"
      exit 0
    fi
    report+=("$package=$version: delivered $tarball with sha256 $got;")
  else
    report+=("$package=$version: no $tarball (apt-get exit $status${answer:+: $answer});")
  fi
done
{
  printf '[guest] error: no source version of %s delivered %s with sha256 %s. Tried, newest first:\n' "$package" "$tarball" "$sha256"
  for line in "${report[@]}"; do printf '[guest]   %s\n' "${line%;}"; done
  printf '[guest] Place the tarball by hand as %s/src/%s (the build checks its sha256), then rerun.\n' "$cache" "$tarball"
} >&2
exit 1
