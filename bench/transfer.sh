#!/usr/bin/env bash
# Issue 8: 2 GiB of mixed files moved from one lab node to another, side by side in the same
# run with the plain OpenSSH pipeline `ssh OLD 'tar c -C DIR .' | ssh NEW 'tar x -C DIR'`.
# kamo's figure includes everything `kamo copy` does: the preflight (du, df), the stream, the
# SHA-256 manifests of both sides and the move into place. Peak RSS of kamo from
# /usr/bin/time. Targets: kamo at least 0.8x the pipeline's throughput, under 100 MB. As root.
#
#   bench/transfer.sh [RUNS] [MIB]      # default: 3 runs of 2048 MiB
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${2:-2048}
cargo build --release --quiet
kamo=$PWD/target/release/kamo
work=$(mktemp -d /tmp/kamo-transfer-bench.XXXXXX)
chmod 755 "$work"
trap '"$kamo" lab down --purge --dir "$work/lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$kamo" lab up --nodes 2 --dir "$work/lab" >/dev/null
inv=$work/lab/inventory.ini
run() { "$kamo" exec "$1" -b -i "$inv" --timeout 30 -- "$2" >/dev/null; }
# The data: three quarters in 8 large files, a quarter in files of 4-60 KiB.
big=$((mib * 3 / 4 / 8))
small_total=$((mib - big * 8))
run node01 "mkdir -p /srv/bench/big /srv/bench/small && \
  for i in 1 2 3 4 5 6 7 8; do head -c ${big}M /dev/urandom > /srv/bench/big/f\$i; done && \
  python3 -c 'import os,random
r=random.Random(8); total=$small_total*1024*1024; n=0
while total>0:
    s=min(total, r.randint(4096, 61440)); d=\"/srv/bench/small/d%03d\" % (n//500)
    os.makedirs(d, exist_ok=True); open(\"%s/f%05d\" % (d, n), \"wb\").write(os.urandom(s)); total-=s; n+=1'"
files=$("$kamo" exec node01 -b -i "$inv" -- 'find /srv/bench -type f | wc -l' | sed -n 2p | tr -d ' ')
addr() { awk -v h="$1" '$1 == h { for (i = 2; i <= NF; i++) if ($i ~ /^ansible_host=/) { sub(/^ansible_host=/, "", $i); print $i } }' "$inv"; }
port=$(awk -F= '/ansible_port=/ { print $2; exit }' "$inv" | awk '{print $1}')
port=${port:-22}
ssh_opts=(-i "$work/lab/id_ed25519" -o UserKnownHostsFile="$work/lab/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes -p "$port")
old=root@$(addr node01)
new=root@$(addr node02)
now() { date +%s.%N; }
pipe_t=() kamo_t=() direct_t=() kamo_rss=()
for ((r = 1; r <= runs; r++)); do
  run node02 "rm -rf /srv/pipe /srv/kamo /srv/direct; sync"
  run node02 "mkdir -p /srv/pipe"
  t0=$(now)
  ssh "${ssh_opts[@]}" "$old" 'tar c -C /srv/bench .' | ssh "${ssh_opts[@]}" "$new" 'tar x -C /srv/pipe'
  t1=$(now)
  pipe_t+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
  /usr/bin/time -f '%e %M' -o "$work/time" "$kamo" copy node01:/srv/bench node02:/srv/kamo -i "$inv" --state-dir "$work/state" >/dev/null
  read -r secs kb < "$work/time"
  kamo_t+=("$secs")
  kamo_rss+=("$((kb / 1024))")
  /usr/bin/time -f '%e %M' -o "$work/time" "$kamo" copy node01:/srv/bench node02:/srv/direct -i "$inv" --state-dir "$work/state" --direct >/dev/null
  read -r secs kb < "$work/time"
  direct_t+=("$secs")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f / %.2f / %.2f", a[1], a[int((NR + 1) / 2)], a[NR] }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "data: $mib MiB in $files files; $runs runs each, alternating"
echo "| transfer | wall (s) min / median / max | MiB/s (median) |"
echo "|---|---|---|"
for name in pipe kamo direct; do
  eval "vals=(\"\${${name}_t[@]}\")"
  m=$(median "${vals[@]}")
  label=$([ $name = pipe ] && echo "ssh OLD tar c \| ssh NEW tar x" || { [ $name = kamo ] && echo "kamo copy (through the workstation, verified)" || echo "kamo copy --direct (node to node, verified)"; })
  echo "| $label | $(stats "${vals[@]}") | $(awk -v m="$mib" -v s="$m" 'BEGIN { printf "%.0f", m / s }') |"
done
pm=$(median "${pipe_t[@]}")
km=$(median "${kamo_t[@]}")
echo "kamo throughput / pipeline throughput (median): $(awk -v p="$pm" -v k="$km" 'BEGIN { printf "%.2f", p / k }')x (target: at least 0.8x)"
echo "kamo peak RSS (MB), each run: ${kamo_rss[*]} (target: under 100 MB)"
