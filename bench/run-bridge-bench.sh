#!/usr/bin/env bash
# Runs the bridge benchmark and writes bench/results/bridge.md.
#
# Usage: bench/run-bridge-bench.sh [BUILD_DIR] [CALLS]   (defaults: build, 100000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
calls=${2:-100000}
[ -x "$build/bench/bridge_bench" ] || cmake --build "$build" --target bridge_bench
mkdir -p "$root/bench/results"
out=$root/bench/results/bridge.md
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
table=$("$build/bench/bridge_bench" "$calls")
{
  echo "# Bridge latency"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $cpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`bench/run-bridge-bench.sh\` ($calls calls per row, after a 10% warm-up)"
  echo "- targets: host → Python → host ≤ 10 µs median; Python → host ≤ 5 µs median"
  echo
  echo "$table"
} > "$out"
cat "$out"
