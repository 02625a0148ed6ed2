#!/usr/bin/env bash
# The README's quick start in one command: a rehearsal cluster of five nodes (`kamo lab`, real
# OpenSSH servers on this machine: 1 master, 1 storage node, 3 compute nodes of which 1 has a
# GPU), KAMONOHASHI 2.0.0 deployed on it from bare nodes, then a whole-infrastructure rebuild
# to 2.1.0 (clean all with the 2.0.0 playbooks, deploy all with the 2.1.0 ones), checked before
# and after; then the lab is removed.
# Run as root on a Linux machine; installs openssh-server and sudo when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/sshd ] || ! command -v sudo >/dev/null; then
  echo "installing openssh-server and sudo"
  apt-get update -qq && apt-get install -y -qq openssh-server openssh-client sudo >/dev/null
fi
cargo build --release --quiet
kamo=$PWD/target/release/kamo
dir=$(mktemp -d /tmp/kamo-lab.XXXXXX)
chmod 755 "$dir"
trap '"$kamo" lab down --purge --dir "$dir/lab" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
inv=(-i "$dir/lab/inventory.ini" --state-dir "$dir/state")
"$kamo" lab up --nodes 5 --gpu-nodes 1 --dir "$dir/lab"
"$kamo" check -i "$dir/lab/inventory.ini"
"$kamo" deploy all --version 2.0.0 --yes "${inv[@]}"
"$kamo" rebuild --to-version 2.1.0 --yes "${inv[@]}"
"$kamo" check -i "$dir/lab/inventory.ini"
"$kamo" lab status --dir "$dir/lab"
"$kamo" history --state-dir "$dir/state"
