#!/usr/bin/env bash
# npm run bench [name]: builds the service and the benches, then runs bench/<name>.ts
# (default: warm-latency) against a real sshd on loopback. Env: BENCH_N (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
apt_install /usr/sbin/sshd:openssh-server ssh-keygen:openssh-client /usr/bin/chromium:chromium
node_deps

name=${1:-warm-latency}
# bench/support.ts holds what the benches share; it is not a bench.
if [[ ! $name =~ ^[A-Za-z0-9_-]+$ ]] || [ "$name" = support ] || [ ! -f "bench/$name.ts" ]; then
  echo "unknown bench '$name'; available:" >&2
  for f in bench/*.ts; do [ "$f" = bench/support.ts ] || echo "  $(basename "$f" .ts)" >&2; done
  exit 2
fi

npm run --silent build
npx tsc -p tsconfig.scripts.json
exec node ".tmp/scripts/bench/$name.js"
