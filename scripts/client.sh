#!/usr/bin/env bash
# npm run client: regenerates src/client/schema.d.ts (openapi-typescript) from the OpenAPI
# document the service serves, built in-process (no sshd, no port).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
node dist/openapi/client-source.js
