"""`provision replica`: a fourth MariaDB, started here from the sandbox's own service code,
is seeded from a real backup of the sandbox and then replicates new writes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter, ensure_table
from datatier.provision import replica
from datatier.sandbox import process
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.conftest import SandboxHandle, sql, unavailable, wait_for
from tests.integration.mariadb_support import extra_mariadb


@pytest.fixture
def fourth(sandbox: SandboxHandle, tmp_path: Path, test_port_base: int) -> Iterator[MariaDBService]:
    """An empty, running MariaDB (server_id 4) with the sandbox's users; stopped afterwards.

    Port ``test_port_base + 60`` (``DATATIER_TEST_FOURTH_MARIADB_PORT`` overrides): +0..+9
    are the sandbox's, +20..+27 test_sandbox's second sandbox, +50..+59 test_cache's."""
    port = int(os.environ.get("DATATIER_TEST_FOURTH_MARIADB_PORT") or test_port_base + 60)
    if not process.port_free("127.0.0.1", port):
        unavailable(f"port {port} for the fourth MariaDB is taken")
    with extra_mariadb(sandbox, "replica3", port, tmp_path, server_id=4) as svc:
        yield svc


def connect(svc: MariaDBService, sandbox: SandboxHandle) -> pymysql.connections.Connection:
    cfg = sandbox.config.mysql
    return pymysql.connect(
        host="127.0.0.1", port=svc.port, user=cfg.user, password=cfg.password.reveal(),
        autocommit=True,
    )  # fmt: skip


@pytest.fixture
def heartbeat(sandbox: SandboxHandle) -> Iterator[None]:
    """The heartbeat writer runs on the primary all along, as in production: its rows in
    datatier.* (never in backups) change between the backup and the seeding."""
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=0.05)
    writer.start()
    try:
        yield
    finally:
        writer.stop()


@pytest.fixture
def prov_seed(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    """``prov_seed.t`` with 500 rows on the primary; dropped afterwards (with the test's
    heartbeat row 999): every integration test shares one sandbox."""
    sandbox = use_sandbox_config

    def clean() -> None:
        with sandbox.connect() as conn:
            ensure_table(conn)  # the heartbeat table exists whichever tests ran before
        sql(sandbox, "primary", "DROP DATABASE IF EXISTS prov_seed")
        sql(sandbox, "primary", "DELETE FROM datatier.heartbeat WHERE server_id = 999")
        sandbox.wait_replicated()

    clean()
    sql(sandbox, "primary", "CREATE DATABASE prov_seed")
    sql(sandbox, "primary", "CREATE TABLE prov_seed.t (id INT PRIMARY KEY, v VARCHAR(20))")
    sql(
        sandbox,
        "primary",
        "INSERT INTO prov_seed.t SELECT seq, 'before' FROM prov_seed.seq_1_to_500",
    )
    sandbox.wait_replicated()
    try:
        yield sandbox
    finally:
        clean()


def replica_status(svc: MariaDBService, sandbox: SandboxHandle) -> dict[str, Any]:
    with connect(svc, sandbox) as conn, conn.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        cols = [d[0] for d in cur.description]
        row = cur.fetchone()
        assert row is not None, "the target is a replica"
        return dict(zip(cols, row, strict=True))


def test_seed_a_fourth_instance_from_a_backup(
    prov_seed: SandboxHandle,
    fourth: MariaDBService,
    heartbeat: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = prov_seed
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "sandbox-mysql"))
    assert manifest.consistency.get("gtid_pos")
    # a new datatier.* row after the backup: in the copy of datatier, and in the binlog
    # between the backup and the copy (replaying that insert over the copy would break)
    sql(sandbox, "primary", "INSERT INTO datatier.heartbeat VALUES (999, UTC_TIMESTAMP(6), 1)")
    # written after the backup: must arrive through replication, not the restore
    sql(sandbox, "primary", "INSERT INTO prov_seed.t VALUES (501, 'after backup')")
    target = f"127.0.0.1:{fourth.port}"

    code = main(["provision", "replica", "--from-backup", manifest.backup_id, "--target", target])
    out = capsys.readouterr().out
    assert code == 0 and "Dry run: nothing was changed" in out and manifest.backup_id in out
    with connect(fourth, sandbox) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'prov_seed'")
        assert cur.fetchone() is None

    args = ["provision", "replica", "--from-backup", manifest.backup_id, "--target", target]
    assert main([*args, "--execute", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "is a replica of primary" in out and "caught up" in out
    sql(sandbox, "primary", "INSERT INTO prov_seed.t VALUES (502, 'after seeding')")

    def replicated() -> bool:
        with connect(fourth, sandbox) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), MAX(id) FROM prov_seed.t")
            return cur.fetchone() == (502, 502)

    wait_for(replicated, 20)
    status = replica_status(fourth, sandbox)
    assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes"
    assert status["Using_Gtid"] == "Slave_Pos"
    assert status["Master_Port"] == sandbox.config.mysql.nodes["primary"].port
    assert status["Replicate_Wild_Ignore_Table"] == "", "the temporary filter is gone"

    def beats() -> int:
        with connect(fourth, sandbox) as conn, conn.cursor() as cur:
            cur.execute("SELECT MAX(beats) FROM datatier.heartbeat")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

    # the heartbeat keeps replicating into the copied datatier.heartbeat
    before = beats()
    wait_for(lambda: beats() > before, 10, step=0.05)
    # seeding it again is refused: it is a replica now, and not empty
    assert main([*args, "--execute"]) == 2
    assert "already a replica" in capsys.readouterr().err


def test_a_seeding_that_times_out_clears_the_filter_and_says_what_is_left(
    prov_seed: SandboxHandle,
    fourth: MariaDBService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The applier is held up (a table lock on the target) until after --timeout: exit 1
    (a rerun is refused: it is a replica now), the temporary datatier.% filter is gone and
    replication is left stopped, the message says the target is partially seeded."""
    sandbox = prov_seed
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "sandbox-mysql"))
    # after the backup: the replica applies it while replicating UNTIL the datatier copy
    sql(sandbox, "primary", "INSERT INTO prov_seed.t VALUES (501, 'after backup')")
    locker = connect(fourth, sandbox)
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            locker.close()

    # STOP SLAVE waits for the held-up applier: let go once the clean-up has begun
    timer = threading.Timer(0.5, release)
    copy_datatier, restore_filter = replica._copy_datatier, replica._restore_filter

    def locked_copy(*args: Any) -> str:
        with locker.cursor() as cur:  # the restore is done: hold up the applier
            cur.execute("LOCK TABLES prov_seed.t READ")
        return copy_datatier(*args)

    def cleaning_up(*args: Any) -> None:
        timer.start()
        restore_filter(*args)

    monkeypatch.setattr(replica, "_copy_datatier", locked_copy)
    monkeypatch.setattr(replica, "_restore_filter", cleaning_up)
    args = ["provision", "replica", "--from-backup", manifest.backup_id]
    args += ["--target", f"127.0.0.1:{fourth.port}", "--execute"]
    try:
        code = main([*args, "--timeout", "1"])
    finally:
        timer.cancel()
        if timer.ident is not None:
            timer.join()
        release()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "did not reach the position of the datatier copy within 1 s" in err
    assert "left partially seeded; re-initialise it before retrying" in err
    status = replica_status(fourth, sandbox)
    assert status["Replicate_Wild_Ignore_Table"] == "", "the temporary filter is gone"
    assert status["Slave_SQL_Running"] == "No" and status["Slave_IO_Running"] == "No"
    assert main(args) == 2
    assert "already a replica" in capsys.readouterr().err


def test_seeding_a_configured_node_is_refused(
    prov_seed: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = prov_seed  # a database for the backup to hold
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "sandbox-mysql"))
    port = sandbox.config.mysql.nodes["replica2"].port
    args = ["provision", "replica", "--from-backup", manifest.backup_id]
    assert main([*args, "--target", f"127.0.0.1:{port}", "--execute"]) == 2
    assert "is the configured node 'replica2'" in capsys.readouterr().err
    assert main([*args[:3], "20991231T000000Z-beef", "--target", "127.0.0.1:1"]) == 2
