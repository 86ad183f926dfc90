"""`provision replica --from-backup` with a physical backup: a fresh MariaDB (started here from
the sandbox's own service code) is stopped, its datadir replaced by a full backup and an
incremental, started with the given command, and it then replicates and catches up."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.backup.stores import store_for
from datatier.mysql.physical.scratch import free_port
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.conftest import SandboxHandle, sql
from tests.integration.encryption_support import cli as crypt_cli
from tests.integration.encryption_support import encryption_env, make_key
from tests.integration.mariadb_support import extra_mariadb
from tests.integration.physical_support import cli, connect_port, scratch_ports, table_state

DB = "phys_seed"
POLICY = "phys-seed"


def _stop_pid_file(path: Path, timeout: float = 60.0) -> None:
    """Stop the server whose pid file is ``path`` (it was restarted by the start command,
    so it is not the process the fixture started)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fresh(sandbox: SandboxHandle, tmp_path: Path, test_port_base: int) -> Iterator[MariaDBService]:
    """A freshly initialised, running MariaDB (server_id 5) with the sandbox's users, on a
    free port of this run's scratch range; stopped afterwards, whichever process runs it."""
    port = free_port(scratch_ports(test_port_base))
    with extra_mariadb(
        sandbox, "phys5", port, tmp_path, server_id=5, after_stop=_stop_restarted
    ) as svc:
        yield svc


def _stop_restarted(svc: MariaDBService) -> None:
    _stop_pid_file(svc.workdir / "mysqld.pid")  # a server the restore started, if any


@pytest.fixture
def seed_data(sandbox: SandboxHandle) -> Iterator[None]:
    sandbox.write_policy(
        POLICY,
        'engine = "mariabackup"\njobs = 2\n[source]\nnode = "primary"\n'
        "[retention]\nkeep_last = 5\nmin_age_days = 0\n",
    )
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE DATABASE {DB}")
    sql(sandbox, "primary", f"CREATE DATABASE IF NOT EXISTS {DB}_empty")  # no tables at all
    sql(sandbox, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(40))")
    sql(sandbox, "primary", f"INSERT INTO {DB}.t SELECT seq, 'before' FROM {DB}.seq_1_to_2000")
    sandbox.wait_replicated()
    try:
        yield
    finally:
        sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
        sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}_empty")
        sandbox.wait_replicated()
        store = store_for(sandbox.config.backup.default_store, sandbox.config)
        store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
        (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def test_a_replica_seeded_from_a_physical_chain_catches_up(
    sandbox: SandboxHandle, fresh: MariaDBService, seed_data: None
) -> None:
    full = cli(sandbox, "backup", "run", POLICY, "--full", "--json")
    assert full.code == 0, full.err
    sql(sandbox, "primary", f"INSERT INTO {DB}.t VALUES (2001, 'between backups')")
    inc = cli(sandbox, "backup", "run", POLICY, "--incremental", "--json")
    assert inc.code == 0, inc.err
    backup_id = inc.json()["id"]
    sql(sandbox, "primary", f"INSERT INTO {DB}.t VALUES (2002, 'after the backup')")
    target = f"127.0.0.1:{fresh.port}"
    start = shlex.join(["setsid", "-f", *fresh.argv()])
    args = ["provision", "replica", "--from-backup", backup_id, "--target", target]

    refused = cli(sandbox, *args, "--execute")
    assert refused.code == 2 and "--start-command" in refused.err, refused.err
    refused = cli(sandbox, *args, "--datadir", "/elsewhere", "--start-command", start)
    assert refused.code == 2 and "is not" in refused.err and "datadir" in refused.err
    planned = cli(sandbox, *args, "--start-command", start)
    assert planned.code == 0 and "Dry run: nothing was changed" in planned.out, planned.err
    assert full.json()["id"] in planned.out and str(fresh.datadir) in planned.out
    with connect_port(sandbox, fresh.port) as conn, conn.cursor() as cur:
        cur.execute(f"SHOW DATABASES LIKE '{DB}'")
        assert cur.fetchone() is None, "the dry run changed nothing"

    seeded = cli(sandbox, *args, "--start-command", start, "--execute", "--timeout", "120",
                 "--json")  # fmt: skip
    assert seeded.code == 0, seeded.err
    result = seeded.json()
    assert result["executed"] and result["chain"] == [full.json()["id"], backup_id]
    sql(sandbox, "primary", f"INSERT INTO {DB}.t VALUES (2003, 'after seeding')")
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        goal = cur.fetchone()[0]
    with connect_port(sandbox, fresh.port) as conn, conn.cursor() as cur:
        cur.execute("SELECT MASTER_GTID_WAIT(%s, 60)", (goal,))
        assert cur.fetchone()[0] == 0, "the seeded replica follows the primary"
        cur.execute("SELECT @@server_id")
        assert cur.fetchone()[0] == 5
        cur.execute(f"SHOW DATABASES LIKE '{DB}_empty'")
        assert cur.fetchone() is not None, "an empty database is part of the copy"
        cur.execute("SHOW SLAVE STATUS")
        cols = [d[0] for d in cur.description]
        status = dict(zip(cols, cur.fetchone(), strict=True))
        assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes")
        seeded_state = table_state(conn, DB)
    with sandbox.connect() as conn:
        assert seeded_state == table_state(conn, DB)
    assert seeded_state["t"][1] == 2003


def test_an_encrypted_backup_without_its_identity_is_refused_before_the_target_stops(
    sandbox: SandboxHandle, fresh: MariaDBService, seed_data: None, tmp_path: Path
) -> None:
    """Issue 18: a missing or wrong age identity is exit 2 while planning, so the target
    is never shut down (nothing is changed before step 4)."""
    key, stranger = make_key(tmp_path, "seed"), make_key(tmp_path, "stranger")
    taken = crypt_cli(
        sandbox.config_path, encryption_env([key]), "backup", "run", POLICY, "--full", "--json"
    )
    assert taken.code == 0, taken.err
    args = ["provision", "replica", "--from-backup", taken.json()["id"]]
    args += ["--target", f"127.0.0.1:{fresh.port}", "--execute"]
    args += ["--start-command", shlex.join(["setsid", "-f", *fresh.argv()])]
    for identity, said in ((None, "needs its age identity"), (stranger.path, "no identity")):
        refused = crypt_cli(sandbox.config_path, encryption_env([key], identity), *args)
        assert refused.code == 2 and said in refused.err, refused.err
        with connect_port(sandbox, fresh.port) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            assert cur.fetchone()[0] == 5, "the target still runs"


@pytest.mark.once  # EXT must be this host's path, for the primary and the seeded server
def test_a_data_directory_table_is_refused_before_the_target_stops_then_placed_outside(
    sandbox: SandboxHandle, fresh: MariaDBService, seed_data: None, tmp_path: Path
) -> None:
    """The primary holds ``ext`` (``DATA DIRECTORY = EXT``, created without binlogging: the
    sandbox's replicas share this host and would make the same file); a full backup;
    ``provision replica`` on this host.
    Expected: without ``--external-dir``, exit 2 naming EXT's file (the primary's own),
    while planning: the target still runs; with ``--external-dir ROOT``, the seeded server
    has ext's file at ``ROOT/db/ext.ibd``, named by its datadir's ``.isl``, and ext holds
    the primary's rows, before and after ``ALTER TABLE ext FORCE`` (inside the datadir
    without its ``.isl`` that rebuild crashed the server)."""
    ext, root = tmp_path / "ext", tmp_path / "root"
    ext.mkdir()
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"CREATE TABLE {DB}.ext (id INT PRIMARY KEY) DATA DIRECTORY = '{ext}'")
        cur.execute(f"INSERT INTO {DB}.ext SELECT seq FROM {DB}.seq_1_to_300")
    try:
        taken = cli(sandbox, "backup", "run", POLICY, "--full", "--json")
        assert taken.code == 0, taken.err
        args = ["provision", "replica", "--from-backup", taken.json()["id"], "--execute"]
        args += ["--target", f"127.0.0.1:{fresh.port}", "--timeout", "120"]
        args += ["--start-command", shlex.join(["setsid", "-f", *fresh.argv()])]
        refused = cli(sandbox, *args)
        assert refused.code == 2, refused.err
        assert str(ext / DB / "ext.ibd") in refused.err and "--external-dir" in refused.err
        with connect_port(sandbox, fresh.port) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            assert cur.fetchone()[0] == 5, "the target still runs"
        seeded = cli(sandbox, *args, "--external-dir", str(root), "--json")
        assert seeded.code == 0, seeded.err
        placed = root / DB / "ext.ibd"
        assert seeded.json()["external_tables"] == {f"{DB}/ext": str(placed)}
        assert (fresh.datadir / DB / "ext.isl").read_text() == str(placed) and placed.is_file()
        with connect_port(sandbox, fresh.port) as conn, conn.cursor() as cur:
            for _ in range(2):
                cur.execute(f"SELECT COUNT(*), SUM(id) FROM {DB}.ext")
                assert cur.fetchone() == (300, 45150)
                cur.execute(f"ALTER TABLE {DB}.ext FORCE")
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP TABLE IF EXISTS {DB}.ext")
