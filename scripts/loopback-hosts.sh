#!/usr/bin/env bash
# Start N throwaway SSH hosts on loopback addresses (real OpenSSH sshd, one process per 16
# addresses), for the quick start and the benchmarks. Until `kamo lab` exists, this is the
# smallest honest cluster: every host is a real sshd with its own address.
#
#   scripts/loopback-hosts.sh up N DIR [PORT]   # writes DIR/inventory.ini, DIR/known_hosts, DIR/id_ed25519
#   scripts/loopback-hosts.sh down DIR          # stops exactly the sshd processes it started (by PID)
#
# Needs root (sshd switches users) and openssh-server. Hosts are 127.77.X.Y:PORT, user root,
# key auth only. Root's shell rc files are skipped (SetEnv SHLVL=1) so timings measure SSH.
set -euo pipefail

cmd=${1:-}
case "$cmd" in
up)
  n=${2:?N}; dir=${3:?DIR}; port=${4:-22022}
  [ "$(id -u)" = 0 ] || { echo "error: run as root (sshd must switch users)" >&2; exit 1; }
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  [ -x "$sshd" ] || { echo "error: sshd not found: apt-get install -y openssh-server" >&2; exit 1; }
  if [ -f "$dir/pids" ]; then echo "error: $dir already has running hosts; run down first" >&2; exit 1; fi
  mkdir -p "$dir" /run/sshd
  dir=$(cd "$dir" && pwd)
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" <<<y >/dev/null
  ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519" <<<y >/dev/null
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  : >"$dir/known_hosts"; : >"$dir/pids"
  hostkey=$(cut -d' ' -f1,2 "$dir/host_key.pub")
  { echo "[nodes]"; } >"$dir/inventory.ini"
  addrs=()
  for ((i = 0; i < n; i++)); do
    a="127.77.$((i / 250)).$((i % 250 + 1))"
    addrs+=("$a")
    printf 'node%03d ansible_host=%s ansible_port=%s\n' "$((i + 1))" "$a" "$port" >>"$dir/inventory.ini"
    echo "[$a]:$port $hostkey" >>"$dir/known_hosts"
  done
  cat >>"$dir/inventory.ini" <<INI

[all:vars]
ansible_user=root
ansible_ssh_private_key_file=$dir/id_ed25519
INI
  for ((s = 0; s * 16 < n; s++)); do
    cfg="$dir/sshd_config.$s"
    {
      echo "Port $port"
      for a in "${addrs[@]:$((s * 16)):16}"; do echo "ListenAddress $a"; done
      cat <<CFG
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.$s.pid
MaxStartups 2000:30:2000
MaxSessions 100
SetEnv SHLVL=1
Subsystem sftp internal-sftp
LogLevel ERROR
CFG
    } >"$cfg"
    "$sshd" -D -e -f "$cfg" 2>>"$dir/sshd.log" &
    echo $! >>"$dir/pids"
  done
  # Wait (bounded) until every address answers.
  for a in "${addrs[@]}"; do
    for ((t = 0; t < 100; t++)); do
      if timeout 1 bash -c "exec 3<>/dev/tcp/$a/$port" 2>/dev/null; then break; fi
      sleep 0.1
    done
  done
  echo "$n hosts up: inventory $dir/inventory.ini, known_hosts $dir/known_hosts"
  ;;
down)
  dir=${2:?DIR}
  [ -f "$dir/pids" ] || { echo "nothing running in $dir"; exit 0; }
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$dir/pids"
  while read -r pid; do
    for ((t = 0; t < 50; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done <"$dir/pids"
  rm -f "$dir/pids"
  echo "stopped"
  ;;
*)
  sed -n '2,12p' "$0"; exit 5 ;;
esac
