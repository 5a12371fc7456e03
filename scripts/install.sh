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
  etcd-server podman runc containernetworking-plugins busybox-static tcpdump iptables ipset bird2 frr sockperf iperf3 wrk >/dev/null
echo "clang $(clang --version | head -1 | sed 's/.*version //'), libbpf $(dpkg-query -W -f='${Version}' libbpf-dev), kernel $(uname -r)"

# FRR is only the lab's ToR router, run by the lab in its own namespace: never as a service.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now frr >/dev/null 2>&1 || true; fi

echo "== bpffs"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

echo "== npm ci"
# npm ci insists that the lockfile list every platform's optional packages (rollup's
# native binaries). The registry mirror this project's machines use serves only the
# linux-x64 ones, so a lockfile made here cannot list the others and npm ci refuses it.
# npm install from the same lockfile installs exactly the locked versions.
if ! npm ci --no-audit --no-fund --loglevel=error 2>/tmp/tortie-npm-ci.err; then
  if grep -q 'Missing: @rollup/' /tmp/tortie-npm-ci.err; then
    echo "npm ci refused the lockfile for other platforms' optional packages; installing from it with npm install"
    npm install --no-audit --no-fund --loglevel=error
  else
    cat /tmp/tortie-npm-ci.err >&2
    exit 1
  fi
fi

echo "== build"
npm run build

# `tortie` on the PATH for the user of this checkout (not in CI, whose clone is temporary).
if [ -z "${CI:-}" ]; then
  chmod +x dist/src/cli/main.js
  ln -sf "$PWD/dist/src/cli/main.js" /usr/local/bin/tortie
  echo "tortie -> $(readlink /usr/local/bin/tortie)"
fi
