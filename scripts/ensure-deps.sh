#!/usr/bin/env bash
# Installs what the service and its tests need on a fresh Debian machine; a no-op when
# everything is already there. Sourced by start.sh, test.sh, demo.sh and bench.sh.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for spec in "$@"; do
    local bin=${spec%%:*} pkg=${spec##*:}
    [ -e "$bin" ] || command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

node_deps() {
  # Install when node_modules is missing or older than the lockfile. Not `npm ci`: the
  # lockfile lists only the platform packages this registry serves, which npm ci refuses;
  # `npm install --no-save` installs the locked versions and leaves the lockfile alone.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm install --no-save --no-audit --no-fund
  fi
}
