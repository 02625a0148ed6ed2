#!/usr/bin/env bash
# Benchmark: `kamo exec all -- true` on 10, 50 and 100 loopback hosts (real OpenSSH sshd),
# side by side in the same run with the floor: OpenSSH's `ssh HOST true &` for every host,
# then `wait`. Each case runs RUNS times (default 5) after one warm-up; prints min/median/max
# wall seconds and kamo's peak RSS (from /usr/bin/time when present).
#
#   bench/exec.sh [RUNS]        (as root; needs openssh-server and openssh-client)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
sizes=(10 50 100)
dir=$(mktemp -d /tmp/kamo-bench.XXXXXX)
port=$((23000 + RANDOM % 2000))
cleanup() { scripts/loopback-hosts.sh down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

cargo build --release --quiet
kamo=$PWD/target/release/kamo
scripts/loopback-hosts.sh up "${sizes[-1]}" "$dir" "$port" >/dev/null

now() { date +%s.%N; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%.3f / %.3f / %.3f", a[1], a[int((NR+1)/2)], a[NR]}'; }

floor() { # hosts file
  while read -r addr; do
    ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$dir/known_hosts" \
      -i "$dir/id_ed25519" -p "$port" "root@$addr" true &
  done <"$1"
  wait
}

echo "| hosts | kamo exec (s) min / median / max | ssh & wait floor (s) min / median / max | kamo peak RSS (MB) |"
echo "|---|---|---|---|"
for n in "${sizes[@]}"; do
  inv="$dir/inv$n.ini"
  { echo "[nodes]"; awk -v n="$n" '/^node/ && ++c <= n' "$dir/inventory.ini"; echo; sed -n '/^\[all:vars\]/,$p' "$dir/inventory.ini"; } >"$inv"
  grep '^node' "$inv" | sed 's/.*ansible_host=\([^ ]*\).*/\1/' >"$dir/addrs$n"
  run_kamo() { "$kamo" exec all -i "$inv" --known-hosts "$dir/known_hosts" --ssh-config none -f 200 -- true >/dev/null 2>&1; }
  run_kamo; floor "$dir/addrs$n" # warm-up
  : >"$dir/k"; : >"$dir/f"
  for ((r = 0; r < runs; r++)); do
    t0=$(now); run_kamo; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$dir/k"
    t0=$(now); floor "$dir/addrs$n"; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$dir/f"
  done
  rss="n/a"
  if [ -x /usr/bin/time ]; then
    rss=$(/usr/bin/time -f '%M' "$kamo" exec all -i "$inv" --known-hosts "$dir/known_hosts" --ssh-config none -f 200 -- true 2>&1 >/dev/null | tail -1)
    rss=$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')
  fi
  echo "| $n | $(stats <"$dir/k") | $(stats <"$dir/f") | $rss |"
done
