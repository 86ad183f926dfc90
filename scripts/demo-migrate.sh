#!/usr/bin/env bash
# Demo section: the MySQL -> RethinkDB rehearsal, dry run only (no RethinkDB server here).
# Called from scripts/demo.sh with DATATIER_CONFIG and DT set and the sandbox up; runs on
# its own too: DATATIER_CONFIG=.sandbox/datatier.toml scripts/demo-migrate.sh
# Loads schemas/rethinkdb/shop.sql (every risky type: DECIMAL, BIGINT beyond 2^53,
# DATETIME(6) with zero dates, TIMESTAMP, BLOB, JSON, ENUM, SET, BIT, a collation-dependent
# 200-char key, a composite key, a table without a key) into `shop` on the primary, then
# shows `datatier migrate plan` without and with the mapping schemas/rethinkdb/shop.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
DT="${DT:-.venv/bin/datatier}"
: "${DATATIER_CONFIG:?set DATATIER_CONFIG to the sandbox config}"
export DATATIER_CONFIG
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

CONF_DIR="$(dirname "$DATATIER_CONFIG")"
port_of() { awk -v n="[mysql.nodes.$1]" '$0==n{f=1} f&&/^port/{print $3; exit}' "$DATATIER_CONFIG"; }
CNF="$(mktemp)"
trap 'rm -f "$CNF" "$CNF.r"' EXIT
printf '[client]\nhost=127.0.0.1\nport=%s\nuser=datatier\npassword=%s\n' \
  "$(port_of primary)" "$(cat "$CONF_DIR/secrets/mysql_password")" > "$CNF"
sed "s/^port=.*/port=$(port_of replica1)/" "$CNF" > "$CNF.r"

step "migrate: a shop schema with every type that is risky in RethinkDB, on the primary"
mariadb --defaults-file="$CNF" -e "DROP DATABASE IF EXISTS shop; CREATE DATABASE shop CHARACTER SET utf8mb4"
mariadb --defaults-file="$CNF" shop < schemas/rethinkdb/shop.sql
GTID="$(mariadb --defaults-file="$CNF" -N -B -e 'SELECT @@gtid_binlog_pos')"
mariadb --defaults-file="$CNF.r" -N -B -e "SELECT MASTER_GTID_WAIT('$GTID', 30)" > /dev/null
mariadb --defaults-file="$CNF" -t -e "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'"

step "migrate plan without a mapping (read-only; reads replica1): what would go wrong"
set +e
$DT migrate plan --tables shop.customers,shop.orders,shop.order_items,shop.sessions,shop.audit_log
code=$?
set -e
echo "(exit $code: 1 = some tables are blocked, nothing was written)"

step "migrate plan --mapping shop: the overrides in schemas/rethinkdb/shop.toml fix the blockers"
sed -n '/^target_db/,$p' schemas/rethinkdb/shop.toml
$DT migrate plan --mapping schemas/rethinkdb/shop.toml

step "migrate run without --execute is the same dry run (no RethinkDB server on this machine)"
$DT migrate run --mapping schemas/rethinkdb/shop.toml | tail -n 2
