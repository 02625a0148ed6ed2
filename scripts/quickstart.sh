#!/usr/bin/env bash
# The README's quick start in one command: a rehearsal cluster of five nodes (`kamo lab`, real
# OpenSSH servers on this machine), a look at it, a playbook run on it, then the lab is removed.
# Run as root on a Linux machine; installs openssh-server when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/sshd ] || ! command -v sudo >/dev/null; then
  echo "installing openssh-server and sudo"
  apt-get update -qq && apt-get install -y -qq openssh-server openssh-client sudo >/dev/null
fi
cargo build --release --quiet
kamo=target/release/kamo
dir=$(mktemp -d /tmp/kamo-lab.XXXXXX)
trap '"$kamo" lab down --purge --dir "$dir/lab" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$kamo" lab up --nodes 5 --gpu-nodes 1 --dir "$dir/lab"
"$kamo" lab status --dir "$dir/lab"
"$kamo" exec all -i "$dir/lab/inventory.ini" -- 'echo $(hostname) $(. /etc/os-release; echo $PRETTY_NAME)'
"$kamo" run playbooks/preflight.yml -i "$dir/lab/inventory.ini" --state-dir "$dir/state"
