#!/usr/bin/env bash
# The README's first command: install what is needed, then run the one-node demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
echo
exec node dist/src/cli/main.js demo "$@"
