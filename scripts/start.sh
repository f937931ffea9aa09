#!/usr/bin/env bash
# Starts the service: SQLite in ./data, dev secrets generated there on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
node_deps

# Build only when what the build reads changed since the last build here: every file under
# src/ (path, size, mtime: an edit, a new file and a deleted one all change it), the
# tsconfigs, package.json and the lockfile. A rebuild starts from an empty dist/, so a
# deleted source leaves nothing behind.
sources_stamp() {
  find src tsconfig.json tsconfig.build.json package.json package-lock.json -type f \
    -printf '%p %s %T@\n' | LC_ALL=C sort | sha256sum | cut -d' ' -f1
}
stamp_file=dist/.sources-stamp
stamp=$(sources_stamp)
if [ ! -f dist/main.js ] || [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
  echo "building (sources changed since the last build)" >&2
  rm -rf dist
  npm run --silent build
  echo "$stamp" >"$stamp_file"
fi
data_dir=${CRONIUM_DATA_DIR:-data}
[[ $data_dir = /* ]] || data_dir="$(pwd)/$data_dir"
echo "service token: $data_dir/service-token (created on first start)" >&2
exec node dist/main.js
