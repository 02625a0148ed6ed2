#!/usr/bin/env bash
# The README's quick start in one command: five loopback SSH hosts, `kamo exec` on all of them,
# then the hosts are stopped again. Run as root on a machine with openssh-server.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/sshd ]; then
  echo "installing openssh-server"; apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null
fi
dir=$(mktemp -d /tmp/kamo-demo.XXXXXX)
trap 'scripts/loopback-hosts.sh down "$dir" >/dev/null; rm -rf "$dir"' EXIT
scripts/loopback-hosts.sh up 5 "$dir" "$((24000 + RANDOM % 1000))"
cargo run --release --quiet -- inventory list -i "$dir/inventory.ini" --ssh-config none
cargo run --release --quiet -- exec all -i "$dir/inventory.ini" --known-hosts "$dir/known_hosts" --ssh-config none -- uname -a
