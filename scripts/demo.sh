#!/usr/bin/env bash
# npm run demo: one command to see the whole product work against a real sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
apt_install /usr/sbin/sshd:openssh-server ssh-keygen:openssh-client
node_deps
npm run --silent build
npx tsc -p tsconfig.scripts.json
exec node .tmp/scripts/scripts/demo.js
