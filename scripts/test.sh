#!/usr/bin/env bash
# The whole test suite: unit specs and e2e specs against real OpenSSH sshd processes,
# a real SQLite file and (when reachable) PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
apt_install /usr/sbin/sshd:openssh-server ssh-keygen:openssh-client python3:python3 pgrep:procps setsid:util-linux sudo:sudo
node_deps
# Lint and format first: seconds, and a failure here needs no sshd to explain it.
npm run --silent lint
npm run --silent format:check
npx tsc --noEmit -p tsconfig.json
npm run --silent build # the lifecycle e2e runs the built service as a real process
npx jest --config jest.config.js --runInBand "$@"
