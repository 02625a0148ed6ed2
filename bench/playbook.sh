#!/usr/bin/env bash
# Benchmark: the ~10-task playbook (bench/playbook/site.yml) on 50 loopback hosts, side by side
# in the same run with ansible-playbook (installed in a virtualenv here; pipelining,
# ControlPersist, forks 50, gathering explicit), each from a clean state; and `kamo plan` for
# 1,000 hosts x 50 tasks (offline).
#
#   bench/playbook.sh [RUNS] [HOSTS]     (as root; needs openssh-server, python3-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
n=${2:-50}
dir=$(mktemp -d /tmp/kamo-pbench.XXXXXX)
port=$((25000 + RANDOM % 2000))
venv=${KAMO_BENCH_VENV:-/tmp/kamo-bench-venv}
cleanup() { scripts/loopback-hosts.sh down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

cargo build --release --quiet
kamo=$PWD/target/release/kamo
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ansible-core
fi
scripts/loopback-hosts.sh up "$n" "$dir" "$port" >/dev/null
cat >"$dir/ansible.cfg" <<CFG
[defaults]
forks = $n
gathering = explicit
host_key_checking = True
interpreter_python = /usr/bin/python3
stdout_callback = default
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$dir/known_hosts
CFG
now() { date +%s.%N; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%.2f / %.2f / %.2f", a[1], a[int((NR+1)/2)], a[NR]}'; }
base=$dir/data
: >"$dir/k"; : >"$dir/a"
for ((r = 0; r < runs; r++)); do
  rm -rf "$base"; mkdir -p "$base"
  t0=$(now)
  "$kamo" run bench/playbook/site.yml -i "$dir/inventory.ini" --known-hosts "$dir/known_hosts" --ssh-config none \
    -f "$n" -e "base=$base" --state-dir "$dir/state" >"$dir/kamo.out" 2>&1 || { cat "$dir/kamo.out"; exit 1; }
  t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$dir/k"
  rm -rf "$base"; mkdir -p "$base"
  t0=$(now)
  ANSIBLE_CONFIG="$dir/ansible.cfg" "$venv/bin/ansible-playbook" -i "$dir/inventory.ini" bench/playbook/site.yml \
    -e "base=$base" >"$dir/ansible.out" 2>&1 || { tail -30 "$dir/ansible.out"; exit 1; }
  t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$dir/a"
done
echo "| case | kamo (s) min / median / max | ansible-playbook (s) min / median / max |"
echo "|---|---|---|"
echo "| 10-task playbook + localhost play, $n hosts | $(stats <"$dir/k") | $(stats <"$dir/a") |"

# kamo plan: 1,000 hosts x 50 tasks, offline.
{ echo "[nodes]"; for ((i = 1; i <= 1000; i++)); do printf 'n%04d ansible_host=10.9.%d.%d\n' "$i" $((i / 250)) $((i % 250 + 1)); done; } >"$dir/big.ini"
{
  echo "- hosts: nodes"; echo "  gather_facts: false"; echo "  tasks:"
  for ((t = 1; t <= 50; t++)); do
    printf '    - name: task %d\n      copy:\n        dest: "/etc/kamo/{{ inventory_hostname }}/%d.conf"\n        content: "host={{ inventory_hostname }} task=%d\\n"\n' "$t" "$t" "$t"
  done
} >"$dir/big.yml"
: >"$dir/p"
for ((r = 0; r < runs; r++)); do
  t0=$(now); "$kamo" plan "$dir/big.yml" -i "$dir/big.ini" --output json >/dev/null; t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$dir/p"
done
echo "| kamo plan, 1,000 hosts x 50 tasks | $(stats <"$dir/p") | |"
