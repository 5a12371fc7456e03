#!/usr/bin/env bash
# Everything tortie needs on a fresh Debian 12 machine (run as root): system packages,
# bpffs, npm dependencies, and the build (BPF objects, native addon, TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
echo "== system packages"
# Packages whose daemons Debian starts on install: tortie runs its own etcd, BIRD and FRR (the
# lab starts them in its namespaces, the agent runs BIRD per node), never the packages'
# services. An etcd started by its package listens on 127.0.0.1:2379 without authentication, so
# none may start even for a moment: while installing, a policy-rc.d (the Debian way) forbids
# service starts, unless the machine already has one of its own.
DAEMONS="etcd bird frr"
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# tortie install.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
  chmod +x "$policy"
  own_policy=1
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  clang llvm libbpf-dev libelf-dev zlib1g-dev linux-libc-dev bpftool \
  make gcc g++ libc6-dev python3 iproute2 iputils-ping procps util-linux openssl \
  etcd-server podman runc containernetworking-plugins busybox-static tcpdump iptables ipset \
  bird2 frr sockperf iperf3 wrk ethtool >/dev/null
# kubectl, the user's tool against a Kubernetes API server (the lab's, `--datastore kubernetes`):
# Debian's kubernetes-client unless the machine has a kubectl already (a newer one from another
# source owns /usr/bin/kubectl, and the two packages' files would clash).
if ! command -v kubectl >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi
if [ "$own_policy" = 1 ]; then rm -f "$policy"; trap - EXIT; fi
echo "clang $(clang --version | head -1 | sed 's/.*version //'), libbpf $(dpkg-query -W -f='${Version}' libbpf-dev), kernel $(uname -r)"

# Keep the packages' services off for good, boot included. systemd stops only its own unit
# (never a lab's etcd or BIRD); init scripts would stop every process of the name, so without
# systemd the services are only disabled (the policy-rc.d above kept them from starting).
for d in $DAEMONS; do
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$d" >/dev/null 2>&1 || true
  elif command -v systemctl >/dev/null 2>&1; then
    systemctl disable "$d" >/dev/null 2>&1 || true
  fi
  if [ -x "/etc/init.d/$d" ]; then update-rc.d "$d" disable >/dev/null 2>&1 || true; fi
done

echo "== bpffs"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

echo "== npm ci"
# Exactly the locked tree; a lockfile npm ci refuses is a bug of the checkout, not a reason to
# rewrite it here.
npm ci --no-audit --no-fund --loglevel=error

echo "== build"
npm run build

# Every program the repo runs and every kernel feature it uses, checked for real: a missing
# one is named with its package or kernel option here, not found later as a lab timeout.
echo "== checksystem"
node dist/bin/tortie.js node checksystem --for all

# `tortie` on the PATH for the user of this checkout (not in CI, whose clone is temporary).
if [ -z "${CI:-}" ]; then
  chmod +x dist/bin/tortie.js
  ln -sf "$PWD/dist/bin/tortie.js" /usr/local/bin/tortie
  echo "tortie -> $(readlink /usr/local/bin/tortie)"
fi
