#!/usr/bin/env bash
# The README's first command: install what is needed, then the main job — a 3-node lab
# (etcd, an agent per node, IPIP in BPF), pods in three namespaces, the reachability
# matrix before and after example policies. The lab stays up: `tortie lab down --id demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
echo
exec node dist/bin/tortie.js lab demo --id demo --replace "$@"
