#!/usr/bin/env bash
# `kamo lab up` time for 10, 50 and 200 nodes, and the memory the running lab holds (PSS of
# the supervisor and every node's sshd, from /proc/PID/smaps_rollup: shared pages counted
# once). Target (issue 5): 200 nodes up in under 10 s. Run as root.
#
#   bench/lab.sh [RUNS] [SIZES...]     # default: 3 runs of 10 50 200
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 50 200)
cargo build --release --quiet
kamo=$PWD/target/release/kamo
work=$(mktemp -d /tmp/kamo-lab-bench.XXXXXX)
chmod 755 "$work" # the nodes' ubuntu user reads the shared cluster state below it
trap '"$kamo" lab down --purge --dir "$work/lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }
pss_of_lab() {
  local total=0 pid
  for pid in $(grep -l -s -F "$work/lab" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo $((total / 1024))
}
printf '%-6s %-28s %-10s\n' nodes "lab up, wall (s), each run" "PSS (MB)"
for n in "${sizes[@]}"; do
  times=()
  mem=0
  for ((r = 1; r <= runs; r++)); do
    t0=$(now)
    "$kamo" lab up --nodes "$n" --dir "$work/lab" >/dev/null
    t1=$(now)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
    mem=$(pss_of_lab)
    "$kamo" exec all -i "$work/lab/inventory.ini" -- true >/dev/null 2>&1 || { echo "lab of $n nodes not reachable:"; "$kamo" exec all -i "$work/lab/inventory.ini" -- true | tail -3; exit 1; }
    "$kamo" lab down --purge --dir "$work/lab" >/dev/null
  done
  printf '%-6s %-28s %-10s\n' "$n" "${times[*]}" "$mem"
done
