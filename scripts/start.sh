#!/usr/bin/env bash
# Starts the service: SQLite in ./data, dev secrets generated there on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
node_deps
npm run --silent build
echo "service token: $(pwd)/${CRONIUM_DATA_DIR:-data}/service-token (created on first start)" >&2
exec node dist/main.js
