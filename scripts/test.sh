#!/usr/bin/env bash
# The whole test suite: unit specs and e2e specs against real OpenSSH sshd processes,
# a real SQLite file and (when reachable) PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
had_promtool=$(command -v promtool || true)
apt_install /usr/sbin/sshd:openssh-server ssh-keygen:openssh-client python3:python3 pgrep:procps setsid:util-linux sudo:sudo redis-server:redis-server promtool:prometheus /usr/bin/chromium:chromium tmux:tmux
# promtool (test/metrics.e2e-spec.ts) comes with Debian's prometheus package, whose install
# also starts a Prometheus server under systemd: the tests want only the tool.
if [ -z "$had_promtool" ] && command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
  as_root systemctl disable --now prometheus
fi
node_deps
# Lint and format first: seconds, and a failure here needs no sshd to explain it.
npm run --silent lint
npm run --silent format:check
npx tsc --noEmit -p tsconfig.json
npx tsc --noEmit -p src/ui/web/tsconfig.json # the live view's browser code (DOM types)
npm run --silent build # the lifecycle e2e runs the built service as a real process
npm run --silent lint:openapi # the served OpenAPI document: redocly and spectral, zero problems
npx jest --config jest.config.js --runInBand "$@"
