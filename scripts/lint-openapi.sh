#!/usr/bin/env bash
# npm run lint:openapi: builds the OpenAPI document exactly as the service serves it at
# /docs/json (in-process, no sshd, no port), then lints it with redocly and spectral's
# spectral:oas ruleset. Any error or warning fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dist/openapi/dump.js ] || [ -n "$(find src -name '*.ts' -newer dist/openapi/dump.js -print -quit)" ]; then
  npm run --silent build
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node dist/openapi/dump.js "$tmp/openapi.json"
npx redocly lint --config .redocly.yaml --format stylish "$tmp/openapi.json"
npx spectral lint --ruleset .spectral.yaml --fail-severity warn "$tmp/openapi.json"
