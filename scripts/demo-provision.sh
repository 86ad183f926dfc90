#!/usr/bin/env bash
# Demo section: provisioning and deploy artifacts on the running sandbox.
# Called from scripts/demo.sh with DATATIER_CONFIG and DT (the datatier executable) set.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATATIER_CONFIG:?set DATATIER_CONFIG to the sandbox config}"
DT="${DT:-.venv/bin/datatier}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The repository's schema files (the sandbox config's own dirs would be relative to it).
export DATATIER_PROVISION__MYSQL_SCHEMAS_DIR="$PWD/schemas/mysql"
export DATATIER_PROVISION__MONGO_SCHEMAS_DIR="$PWD/schemas/mongo"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

step "provision plan: bucket (versioning, encryption, public access block, lifecycle from the policies), schemas"
$DT provision plan --out "$OUT/plan.json"

step "provision apply --plan --execute: exactly those changes (refused if anything changed since the plan)"
$DT provision apply --plan "$OUT/plan.json" --execute

step "provision plan again: nothing left to do"
$DT provision plan | tee "$OUT/plan2.txt"
grep -q "No changes" "$OUT/plan2.txt"

step "datatier check: privileges per job, store writable, bucket as provisioned, freshness, free space"
$DT check sandbox-mysql --only "privileges,store,bucket,freshness,free space"

step "deploy render: cron (flock, UTC, syslog), systemd timers and always-on units, Kubernetes CronJobs and Deployments, HAProxy, Dockerfile"
$DT deploy render crontab
$DT deploy render all --output-dir "$OUT/deploy" --binary "$PWD/$DT"
haproxy -c -f "$OUT/deploy/haproxy.cfg"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$OUT"/deploy/systemd/* && echo "systemd-analyze verify: OK"
else
  echo "systemd-analyze not installed: systemd units not verified"
fi
