#!/usr/bin/env bash
# Fetches a Debian source package's orig tarball into $TERRARIUM_CACHE/src with
# `apt-get source`, adding a deb-src entry (copied from the machine's own
# Debian sources) when there is none. Verifies the tarball's sha256.
#
# Usage: guest/fetch-source.sh PACKAGE TARBALL SHA256
set -euo pipefail
package=$1 tarball=$2 sha256=$3
cache=${TERRARIUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terrarium}
mkdir -p "$cache/src"
cd "$cache/src"
if [ -f "$tarball" ] && echo "$sha256  $tarball" | sha256sum -c --quiet 2>/dev/null; then
  exit 0
fi
echo "[guest] fetching Debian source package $package" >&2
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  src=/etc/apt/sources.list.d/debian.sources
  [ -f "$src" ] || { echo "[guest] error: no deb-src entry and no $src to derive one from" >&2; exit 1; }
  sed 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/terrarium-deb-src.sources
  apt-get update -qq
fi
# The security archive sometimes lists a .dsc it no longer serves; the orig
# tarball (all we use) still arrives, so a partial failure is judged below.
apt-get source -qq --download-only "$package" >/dev/null 2>&1 || true
[ -f "$tarball" ] || { echo "[guest] error: apt-get source $package did not deliver $tarball" >&2; exit 1; }
echo "$sha256  $tarball" | sha256sum -c --quiet || { echo "[guest] error: $tarball has an unexpected sha256" >&2; exit 1; }
