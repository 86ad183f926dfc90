#!/usr/bin/env bash
# `make demo`: the main job end to end on the local sandbox of real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
DT=".venv/bin/datatier"
SANDBOX="${DATATIER_SANDBOX_DIR:-.sandbox}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "bring the sandbox up (MariaDB primary + 2 GTID replicas, memcached, S3, MongoDB)"
$DT sandbox up --dir "$SANDBOX"
export DATATIER_CONFIG="$SANDBOX/datatier.toml"

step "sandbox status"
$DT sandbox status --dir "$SANDBOX"

step "effective config (secrets redacted)"
$DT config show

echo
echo "The sandbox keeps running: \`make down\` (or \`$DT sandbox down\`) stops it."
