#!/usr/bin/env bash
# Everything tortie needs on a fresh Debian 12 machine (run as root): system packages,
# bpffs, npm dependencies, and the build (BPF objects, native addon, TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
echo "== system packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  clang llvm libbpf-dev libelf-dev zlib1g-dev linux-libc-dev bpftool \
  make g++ python3 iproute2 iputils-ping procps util-linux \
  etcd-server podman runc containernetworking-plugins busybox-static >/dev/null
echo "clang $(clang --version | head -1 | sed 's/.*version //'), libbpf $(dpkg-query -W -f='${Version}' libbpf-dev), kernel $(uname -r)"

echo "== bpffs"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "== build"
npm run build
