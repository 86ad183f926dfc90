#!/usr/bin/env bash
# `make demo`: the main job end to end on the local sandbox of real servers:
# sandbox up -> sample data on the primary -> backup from replica1 to S3 -> list/verify ->
# archive to GLACIER -> restore (archive wait simulated as on AWS: first run exits 5, then
# --wait) -> identical table checksums -> the same for MongoDB (FerretDB, then mongo2 with
# the types FerretDB refuses and an oplog) -> replica health ->
# memcached warmed from a replica and copied to a new node -> provisioning (bucket, lifecycle,
# schemas) and deploy artifacts -> a MySQL -> RethinkDB migration plan (dry run).
# PORT_BASE=N moves every port (sandbox N..N+7, health endpoint N+8); BACKEND=containers runs
# the servers in containers.
set -euo pipefail
cd "$(dirname "$0")/.."
DT=".venv/bin/datatier"
SANDBOX="${DATATIER_SANDBOX_DIR:-.sandbox}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "bring the sandbox up (MariaDB primary + 2 GTID replicas, memcached, S3, MongoDB)"
$DT sandbox up --dir "$SANDBOX" ${PORT_BASE:+--port-base "$PORT_BASE"} ${BACKEND:+--backend "$BACKEND"}
export DATATIER_CONFIG="$SANDBOX/datatier.toml"
CNF="$(mktemp)"
trap 'rm -f "$CNF"' EXIT
S3="$(sed -n 's/^endpoint_url = "\(.*\)"/\1/p' "$SANDBOX/datatier.toml")"
PORT="$(awk '/\[mysql.nodes.primary\]/{f=1} f&&/^port/{print $3; exit}' "$SANDBOX/datatier.toml")"
printf '[client]\nhost=127.0.0.1\nport=%s\nuser=datatier\npassword=%s\n' \
  "$PORT" "$(cat "$SANDBOX/secrets/mysql_password")" > "$CNF"
sql() { mariadb --defaults-file="$CNF" -N -B -e "$1"; }
moto() {  # POST to moto's state-manager API (simulates a slow Glacier restore)
  python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], sys.argv[2].encode(), method="POST")).read()' "$S3/moto-api/state-manager/$1" "$2"
}

step "sample data on the primary: a shop with orders, a view, a trigger, a routine"
sql "DROP DATABASE IF EXISTS demo_shop; DROP DATABASE IF EXISTS demo_shop_restored;
CREATE DATABASE demo_shop CHARACTER SET utf8mb4; USE demo_shop;
CREATE TABLE demo_shop.customers (id INT PRIMARY KEY, name VARCHAR(80), city VARCHAR(40));
CREATE TABLE demo_shop.orders (id BIGINT PRIMARY KEY, customer INT, total DECIMAL(10,2),
  placed DATETIME, note TEXT, KEY (customer));
INSERT INTO demo_shop.customers SELECT seq, CONCAT('Customer ', seq, ' ☕'), ELT(1 + seq % 3, 'Lyon', 'Kraków', 'Zürich') FROM seq_1_to_5000;
INSERT INTO demo_shop.orders SELECT seq, 1 + seq % 5000, (seq % 9999) / 100, '2026-01-01' + INTERVAL seq MINUTE, REPEAT('x', seq % 50) FROM seq_1_to_200000;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 90;
CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = ABS(NEW.total);
CREATE FUNCTION vat(x DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN x * 1.2;"
sql "SELECT COUNT(*), 'orders on the primary' FROM demo_shop.orders"

step "backup policies (sandbox up wrote backups/sandbox-mysql.toml)"
$DT backup policies

step "take a backup from replica1 to s3://datatier-backups/sandbox (what cron runs nightly)"
sleep 1  # let the replicas apply the sample data
ID="$($DT backup run sandbox-mysql --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "backup id: $ID"

step "catalog"
$DT backups list sandbox-mysql
$DT backups show "$ID"
$DT backups verify "$ID"

step "metrics: every job can leave a node_exporter textfile (and health serve exports the same)"
PROM="$(mktemp --suffix=.prom)"
$DT backups verify "$ID" --metrics-file "$PROM" >/dev/null
grep -E '^datatier_(backup_last_success_timestamp|job_last_attempt_success)' "$PROM"
rm -f "$PROM"

step "a newer backup: the newest one always stays in STANDARD, whatever its age"
$DT backup run sandbox-mysql >/dev/null

step "age the data objects into GLACIER (the sandbox S3 keeps lifecycle rules but never applies them)"
$DT backups archive sandbox-mysql --execute --now "$(date -u -d '+31 days' +%Y-%m-%dT%H:%M:%SZ)"
$DT backups list sandbox-mysql

step "restore from GLACIER: the archive restore takes a while (simulated), so the first run exits 5"
moto set-transition '{"model_name":"s3::keyrestore","transition":{"progression":"manual","times":3}}'
set +e
$DT restore "$ID" --databases demo_shop --rename demo_shop=demo_shop_restored --no-wait
code=$?
set -e
echo "exit code: $code (5 = not ready yet: run the same command again later)"
[[ $code == 5 ]]

step "...and run again later, waiting this time"
$DT restore "$ID" --databases demo_shop --rename demo_shop=demo_shop_restored --wait --poll 0.2
moto unset-transition '{"model_name":"s3::keyrestore"}'

step "table checksums: original vs restored"
sql "CHECKSUM TABLE demo_shop.customers, demo_shop_restored.customers, demo_shop.orders, demo_shop_restored.orders"
a="$(sql "CHECKSUM TABLE demo_shop.customers, demo_shop.orders" | cut -f2 | tr '\n' ' ')"
b="$(sql "CHECKSUM TABLE demo_shop_restored.customers, demo_shop_restored.orders" | cut -f2 | tr '\n' ' ')"
[[ "$a" == "$b" ]] && echo "identical: $a" || { echo "MISMATCH: $a vs $b"; exit 1; }
sql "SELECT demo_shop_restored.vat(10), (SELECT COUNT(*) FROM demo_shop_restored.big_orders) AS big_orders"

step "MongoDB on the same pipeline: raw BSON backup, catalog, restore under a new name"
MONGO="$(sed -n '/^uri = "mongodb:/{s/^uri = "\(.*\)"/\1/p;q}' "$SANDBOX/datatier.toml")"  # [mongo]
.venv/bin/python - "$MONGO" <<'PY'
import datetime, sys
import pymongo
client = pymongo.MongoClient(sys.argv[1])
for name in ("demo_ab", "demo_ab_restored"):
    client.drop_database(name)
client.demo_ab.experiments.insert_many(
    [{"_id": i, "variant": "AB"[i % 2], "at": datetime.datetime(2026, 11, 1) + datetime.timedelta(minutes=i), "clicks": i % 17}
     for i in range(5000)]
)
client.demo_ab.experiments.create_index([("variant", 1), ("at", -1)], name="variant_at")
print("demo_ab.experiments:", client.demo_ab.experiments.count_documents({}), "documents")
PY
MID="$($DT backup run sandbox-mongo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
$DT backups list sandbox-mongo
$DT backups verify "$MID"
$DT restore "$MID" --databases demo_ab --rename demo_ab=demo_ab_restored
.venv/bin/python - "$MONGO" <<'PY'
import sys
import pymongo
client = pymongo.MongoClient(sys.argv[1])
a = b"".join(client.demo_ab.experiments.find_raw_batches(sort=[("_id", 1)]))
b = b"".join(client.demo_ab_restored.experiments.find_raw_batches(sort=[("_id", 1)]))
indexes = sorted(ix["name"] for ix in client.demo_ab_restored.experiments.list_indexes())
print("restored documents byte-identical:", a == b, "| indexes:", ", ".join(indexes))
sys.exit(0 if a == b else 1)
PY

step "mongo2 (a replica set with an oplog): Decimal128, MinKey, Code, nested arrays, point in time"
MONGO2="$(sed -n '/^\[mongo.servers.mongo2\]/,/^uri/{s/^uri = "\(.*\)"/\1/p}' "$SANDBOX/datatier.toml")"
.venv/bin/python - "$MONGO2" <<'PY'
import sys
import bson, pymongo
client = pymongo.MongoClient(sys.argv[1])
for name in ("demo_ledger", "demo_ledger_restored"):
    client.drop_database(name)
client.demo_ledger.entries.insert_many(
    [{"_id": i, "amount": bson.Decimal128(f"{i}.10"), "floor": bson.MinKey(), "rule": bson.Code("x > 0"),
      "legs": [[i, [i + 1]]], "delta": -0.0} for i in range(2000)]
)
PY
M2="$($DT backup run sandbox-mongo2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
$DT backups show "$M2" | sed -n '/^consistency/p'
$DT restore "$M2" --databases demo_ledger --rename demo_ledger=demo_ledger_restored
.venv/bin/python - "$MONGO2" <<'PY'
import sys
import pymongo
client = pymongo.MongoClient(sys.argv[1])
a = b"".join(client.demo_ledger.entries.find_raw_batches(sort=[("_id", 1)]))
b = b"".join(client.demo_ledger_restored.entries.find_raw_batches(sort=[("_id", 1)]))
print("restored documents byte-identical:", a == b)
sys.exit(0 if a == b else 1)
PY

step "replica health: heartbeat lag, and the endpoint HAProxy polls"
$DT replication heartbeat --interval 0.2 >/dev/null 2>&1 & HB=$!
HEALTH_PORT="${DATATIER_DEMO_HEALTH_PORT:-$((PORT + 9))}"  # the sandbox uses N..N+8
$DT health serve --listen "127.0.0.1:$HEALTH_PORT" --interval 0.5 >/dev/null 2>&1 & HS=$!
trap 'kill $HB $HS 2>/dev/null || true; rm -f "$CNF"' EXIT
sleep 2.5
$DT replication status
for path in "/primary?node=primary" "/primary?node=replica1" "/replica?node=replica1&lag=2s" "/replica?node=replica2&lag=500ms"; do
  python3 - "http://127.0.0.1:$HEALTH_PORT$path" <<'PY'
import json, sys, urllib.error, urllib.request
try:
    reply = urllib.request.urlopen(sys.argv[1], timeout=5)
    code, body = reply.status, reply.read()
except urllib.error.HTTPError as err:
    code, body = err.code, err.read()
doc = json.loads(body)
print(f"GET {sys.argv[1].split('/', 3)[3]:<32} -> {code}  {doc.get('state') or doc.get('reason') or ''}")
PY
done
kill $HB $HS 2>/dev/null || true

step "cache: a cold memcached (flushed, as after a deploy) warmed from replica1, then copied to a new node"
export DATATIER_CACHE__WARM_SETS_DIR="$PWD/schemas/cache"
MC1="127.0.0.1:$((PORT + 3))"; MC2="127.0.0.1:$((PORT + 7))"
for node in "$MC1" "$MC2"; do
  python3 -c 'import socket, sys; h, p = sys.argv[1].split(":"); s = socket.create_connection((h, int(p))); s.sendall(b"flush_all\r\n"); assert s.recv(64) == b"OK\r\n"' "$node"
done
$DT cache sets
$DT cache warm demo_shop --dry-run | tail -n 4
$DT cache warm demo_shop
$DT cache copy --from "$MC1" --to "$MC2"
$DT cache stats --server "$MC1" --server "$MC2"

export DT
./scripts/demo-provision.sh
./scripts/demo-migrate.sh

step "sandbox status"
$DT sandbox status --dir "$SANDBOX"
echo
echo "The sandbox keeps running: \`make down\` (or \`$DT sandbox down\`) stops it."
