"""The sandbox runs real servers: replication works, each answers its protocol, down is clean."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pymongo
import pymysql
import pytest
from bson.decimal128 import Decimal128
from pymemcache.client.base import Client as MemcacheClient

from datatier.backup.service import load_policy
from datatier.cli import main
from datatier.config import load
from datatier.errors import OperationFailed, UsageError
from datatier.sandbox import process
from datatier.sandbox.layout import PORT_OFFSETS
from datatier.sandbox.supervisor import Sandbox
from tests.integration.conftest import SandboxHandle

REPO = Path(__file__).resolve().parents[3]


def mysql(handle: SandboxHandle, node: str, **kw: Any) -> Any:
    return handle.connect(node, **kw)


def test_write_on_primary_reaches_both_replicas(sandbox: SandboxHandle) -> None:
    token = uuid.uuid4().hex
    with mysql(sandbox, "primary") as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS sandbox_check")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS sandbox_check.t "
            "(id INT AUTO_INCREMENT PRIMARY KEY, v CHAR(32))"
        )
        cur.execute("INSERT INTO sandbox_check.t (v) VALUES (%s)", (token,))
    for replica in ("replica1", "replica2"):
        with mysql(sandbox, replica) as conn, conn.cursor() as cur:
            deadline = time.monotonic() + 10
            found = 0
            while time.monotonic() < deadline:
                cur.execute("SELECT COUNT(*) FROM sandbox_check.t WHERE v = %s", (token,))
                found = cur.fetchone()[0]
                if found:
                    break
                time.sleep(0.05)
            assert found == 1, f"{replica} never received the row"


def test_replicas_are_read_only_gtid_row_format(sandbox: SandboxHandle) -> None:
    for node, read_only in (("primary", 0), ("replica1", 1), ("replica2", 1)):
        with mysql(sandbox, node) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@read_only, @@binlog_format, @@gtid_strict_mode, @@server_id")
            ro, fmt, strict, server_id = cur.fetchone()
            assert (ro, fmt, strict) == (read_only, "ROW", 1)
            assert server_id > 0
    with mysql(sandbox, "replica1") as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
        assert row["Using_Gtid"] == "Slave_Pos"
        assert row["Master_Port"] == sandbox.config.mysql.nodes["primary"].port


def test_each_service_answers_its_own_protocol(sandbox: SandboxHandle) -> None:
    cfg = sandbox.config
    for node in cfg.mysql.nodes:
        with mysql(sandbox, node) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            assert "MariaDB" in cur.fetchone()[0]

    host, port = cfg.memcached.servers[0].rsplit(":", 1)
    mc = MemcacheClient((host, int(port)), connect_timeout=2, timeout=2)
    mc.set("sandbox-check", b"hello")
    assert mc.get("sandbox-check") == b"hello"
    mc.close()

    s3 = boto3.client(
        "s3",
        endpoint_url=cfg.s3.endpoint_url,
        region_name=cfg.s3.region,
        aws_access_key_id=cfg.s3.access_key_id.reveal(),
        aws_secret_access_key=cfg.s3.secret_access_key.reveal(),
    )
    bucket = cfg.backup.default_store.removeprefix("s3://").split("/", 1)[0]
    s3.put_object(Bucket=bucket, Key="sandbox-check", Body=b"payload")
    assert s3.get_object(Bucket=bucket, Key="sandbox-check")["Body"].read() == b"payload"

    with pymongo.MongoClient[dict[str, Any]](
        cfg.mongo.uri, serverSelectionTimeoutMS=3000
    ) as client:
        coll = client["sandbox_check"]["things"]
        inserted = coll.insert_one({"token": "abc", "n": 1}).inserted_id
        found = coll.find_one({"_id": inserted})
        assert found is not None and found["token"] == "abc"

    # mongo2: mongo-java-server as replica set rs0, with an oplog that records the write
    uri = cfg.mongo.servers["mongo2"].uri
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as client:
        assert client.admin.command("isMaster")["setName"] == "rs0"
        coll = client["sandbox_check"]["things"]
        inserted = coll.insert_one({"token": "abc", "d": Decimal128("1.10")}).inserted_id
        found = coll.find_one({"_id": inserted})
        assert found is not None and found["d"] == Decimal128("1.10")
        entry = client.local["oplog.rs"].find_one({"o._id": inserted})
        assert entry is not None and entry["op"] == "i" and entry["ns"] == "sandbox_check.things"


def test_status_json_lists_every_service(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str], test_backend: str
) -> None:
    assert main(["sandbox", "status", "--json", "--dir", str(sandbox.root)]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["services"]
    assert doc["dir"] == str(sandbox.root.resolve()) and doc["backend"] == test_backend
    assert doc["ok"] is True and doc["running"] == len(rows) == len(PORT_OFFSETS)
    assert {r["name"] for r in rows} == set(PORT_OFFSETS)
    for row in rows:
        assert {"name", "kind", "host", "port", "pid", "state"} <= row.keys()
        assert row["state"] == "running"
        assert process.port_open(row["host"], row["port"])
    replicas = [r for r in rows if r["name"].startswith("replica")]
    assert all(r["io_thread"] == "Yes" and r["sql_thread"] == "Yes" for r in replicas)


def test_status_legacy_json_list(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DATATIER_JSON_LISTS=1 (deprecated): the bare list of before, a warning on stderr."""
    assert main(["sandbox", "status", "--json", "--dir", str(sandbox.root)]) == 0
    services = json.loads(capsys.readouterr().out)["services"]
    monkeypatch.setenv("DATATIER_JSON_LISTS", "1")
    assert main(["sandbox", "status", "--json", "--dir", str(sandbox.root)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == services
    assert "DATATIER_JSON_LISTS=1 is deprecated" in err and "DATATIER_JSON_LISTS" not in out


def test_up_twice_is_idempotent(sandbox: SandboxHandle) -> None:
    before = {r["name"]: r["pid"] for r in sandbox.sandbox.status()}
    again = Sandbox(sandbox.root)
    after = {r["name"]: r["pid"] for r in again.up()}
    assert before == after


def test_port_in_use_is_refused_naming_the_port(
    tmp_path: Path, test_port_base: int, test_backend: str
) -> None:
    base = test_port_base + 40
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", base + PORT_OFFSETS["memcached"]))
        blocker.listen()
        sb = Sandbox(tmp_path / "sb", base, test_backend)
        with pytest.raises(UsageError, match=f"port {base + 3} \\(sandbox memcached\\)"):
            sb.up()
    assert Sandbox(tmp_path / "sb").status()[0]["state"] == "stopped"
    for offset in PORT_OFFSETS.values():
        assert not process.port_open("127.0.0.1", base + offset)


def test_down_leaves_no_process_or_port(
    tmp_path: Path, test_port_base: int, test_backend: str
) -> None:
    base = test_port_base + 20
    root = tmp_path / "own"
    rows = Sandbox(root, base, test_backend).up()
    try:
        _make_down_stops_everything(root, rows, base)
    except BaseException as failure:  # make down failed (a clone without .venv, say)
        try:
            Sandbox(root).down()  # this test's sandbox only: stopped, the failure reported
        except Exception as cleanup:
            failure.add_note(f"stopping sandbox {root} after the failure failed too: {cleanup}")
        raise


def _make_down_stops_everything(root: Path, rows: list[dict[str, Any]], base: int) -> None:
    pids = [r["pid"] for r in rows]
    ports = [r["port"] for r in rows] + [base + 6]
    assert all(pids) and all(r["state"] == "running" for r in rows)
    # `make down` stops the sandbox named by the config in use (venv assumed built: -o).
    env = {**os.environ, "DATATIER_CONFIG": str(root / "datatier.toml")}
    env.pop("DATATIER_SANDBOX_DIR", None)
    result = subprocess.run(
        ["make", "-s", "-C", str(REPO), "-o", ".venv/bin/.installed", "down"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"stopped ({root.resolve()})" in result.stdout
    for pid in pids:
        assert process.cmdline(pid) is None, f"pid {pid} still runs"
    for port in ports:
        assert process.port_free("127.0.0.1", port), f"port {port} still bound"
    assert Sandbox(root).status()[0]["pid"] is None


def test_bad_config_file_exits_2_with_file_key_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[mysql.nodes.primary]\nport = "not-a-port"\n')
    result = subprocess.run(
        [sys.executable, "-m", "datatier", "--config", str(bad), "config", "show"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(bad) in line and "mysql.nodes.primary.port" in line and "expected integer" in line


def test_sandbox_policies_name_their_servers(sandbox: SandboxHandle) -> None:
    """sandbox up writes one policy per data server; sandbox-mongo2 backs up mongo2."""
    loaded = load(str(sandbox.config_path), environ={})
    assert load_policy(loaded, "sandbox-mysql").spec.source.node == "replica1"
    assert load_policy(loaded, "sandbox-mongo").spec.source.server is None
    mongo2 = load_policy(loaded, "sandbox-mongo2")
    assert (mongo2.spec.engine, mongo2.spec.source.server) == ("mongo", "mongo2")
    assert loaded.config.mongo.server("mongo2").uri.endswith(f":{sandbox.sandbox.port('mongo2')}/")


def test_status_and_down_find_the_sandbox_of_the_config_in_use(
    sandbox: SandboxHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DATATIER_SANDBOX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.sandbox here: only the config can name the sandbox
    capsys.readouterr()
    assert main(["--config", str(sandbox.config_path), "sandbox", "status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["services"]
    ports = {r["name"]: r["port"] for r in rows}
    assert ports["primary"] == sandbox.config.mysql.nodes["primary"].port
    monkeypatch.setenv("DATATIER_CONFIG", str(sandbox.config_path))
    assert main(["sandbox", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"] == rows
    # A config no sandbox wrote: status and down refuse (exit 2), naming it; nothing stops.
    other = tmp_path / "prod.toml"
    other.write_text('[mysql.nodes.db1]\nrole = "primary"\n')
    for command in ("status", "down"):
        assert main(["--config", str(other), "sandbox", command]) == 2
        err = capsys.readouterr().err
        assert "prod.toml" in err and "not a sandbox's" in err
    assert all(r["state"] == "running" for r in sandbox.sandbox.status())


def test_a_failed_up_leaves_nothing_behind(
    tmp_path: Path, test_port_base: int, test_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MongoDB-protocol server cannot start (a program that exits at once, or an image
    without it) after the others did: `up` fails, stops them, and removes the directory it
    created; every port is free again."""
    base = test_port_base + 30
    root = tmp_path / "doomed"
    images: dict[str, str] = {}
    if test_backend == "containers":
        from datatier.sandbox import images as sandbox_images

        images["mongo"] = sandbox_images.base_ref()  # plain Debian: no ferretdb in it
    else:
        monkeypatch.delenv("DATATIER_MONGOD", raising=False)
        monkeypatch.setenv("DATATIER_FERRETDB", "/bin/false")
    with pytest.raises(OperationFailed, match="mongo"):
        Sandbox(root, base, test_backend, images).up()
    assert not root.exists()
    for offset in range(9):
        assert process.port_free("127.0.0.1", base + offset), f"port {base + offset} still bound"
