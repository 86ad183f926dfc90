"""Point-in-time restores from physical backups of an extra real MariaDB beside the sandbox
(its own server: what would disturb the sandbox's replicas), the sandbox's S3 server.

A server with ``lower_case_table_names=1``.

Such a server names table files lower-cased and folds the names in statements. The replay
ran on a scratch server with the default setting (0): a statement spelling a table
otherwise (``INSERT INTO SHOP.ORDERS``) named no table, and a table created in the window
(``CREATE TABLE Shop.NewT``) got a file the restored server, started as its source was,
would never find. The scratch server now runs with the source's setting, as recorded in
the manifest, and the restore says how to start the server on DIR.

A table created in the window with ``DATA DIRECTORY`` (on the sandbox, its replicas would
create the same file on this host).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.stores import store_for
from datatier.config import load
from datatier.mysql.physical.scratch import ScratchServer, free_port
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.mariadb_support import connect_to, extra_mariadb, own_config
from tests.integration.physical_support import OWNER, connect_port, scratch_ports

POLICY = "ppitr-lctn"
NODE = "folded"
PHYSICAL = f'engine = "mariabackup"\njobs = 2\n[source]\nnode = "{NODE}"\n'


@pytest.fixture
def server(sandbox: SandboxHandle, tmp_path: Path, test_port_base: int) -> Iterator[MariaDBService]:
    """A fresh MariaDB folding table names (binlog and GTID on, as every sandbox node)."""
    port = free_port(range(test_port_base + 320, test_port_base + 330))
    with extra_mariadb(
        sandbox, NODE, port, tmp_path / "server", server_id=12,
        extra_args=["--lower-case-table-names=1"],
    ) as svc:  # fmt: skip
        yield svc


def run(sandbox: SandboxHandle, svc: MariaDBService, *statements: str) -> list[tuple[object, ...]]:
    with connect_to(sandbox, svc) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        return list(cur.fetchall())


@contextlib.contextmanager
def own_policy(sandbox: SandboxHandle, server: MariaDBService, tmp_path: Path) -> Iterator[Path]:
    """A config whose only node is ``server`` and whose only policy, POLICY, is physical
    (it owns the binlog archive); POLICY's objects are removed from the shared S3 server
    after the block."""
    config = own_config(sandbox, server, NODE, tmp_path, {POLICY: PHYSICAL})
    try:
        yield config
    finally:
        loaded = load(str(config), environ={})
        store = store_for(loaded.config.backup.default_store, loaded.config)
        store.delete([o.key for o in store.list_objects(f"{POLICY}/")])


def full_backup(config: Path) -> str:
    taken = cli(config, {}, "backup", "run", POLICY, "--full", "--json")
    assert taken.code == 0, taken.err[-2000:]
    return str(taken.json()["id"])


def restore_to_now(
    sandbox: SandboxHandle, server: MariaDBService, config: Path, datadir: Path, *more: str
) -> str:
    """Archive the binlog and restore POLICY up to the server's last GTID into
    ``datadir`` (``more``: further restore options); the restore's stdout."""
    gtid = str(run(sandbox, server, "SELECT @@gtid_binlog_pos")[0][0])
    archived = cli(config, {}, "binlog", "archive", "--once")
    assert archived.code == 0, archived.err[-2000:]
    done = cli(config, {}, "restore", "--policy", POLICY, "--until-gtid", gtid,
               "--datadir", str(datadir), "--owner", OWNER, *more)  # fmt: skip
    assert done.code == 0, done.err[-2000:]
    return done.out


@contextlib.contextmanager
def restored(sandbox: SandboxHandle, datadir: Path, port_base: int) -> Iterator[Any]:
    """A cursor on ``datadir`` started as its source ran (lower_case_table_names=1)."""
    port = free_port(scratch_ports(port_base))
    with (
        ScratchServer(datadir, port, lower_case_table_names=1) as server,
        connect_port(sandbox, server.port) as conn,
        conn.cursor() as cur,
    ):
        yield cur


def test_the_replay_and_the_restored_server_fold_names_as_the_source_did(
    sandbox: SandboxHandle, server: MariaDBService, tmp_path: Path, test_port_base: int
) -> None:
    """Steps: on the folding server (the only MySQL-family policy, physical, owns the
    archive): ``Shop.Orders`` with a row; a full backup; in statement format ``INSERT INTO
    SHOP.ORDERS``, ``CREATE TABLE Shop.NewT`` and a row in ``shop.newt``; target G; archive;
    ``restore --policy --until-gtid G --datadir DIR``. Expected: exit 0; the restore names
    ``--lower-case-table-names=1`` for starting DIR; started so, DIR holds both rows of
    shop.orders and the row of shop.newt; the backup's restore test passes. Was: exit 1,
    "Table 'SHOP.ORDERS' doesn't exist" (the scratch server ran with
    lower_case_table_names=0)."""
    assert run(sandbox, server, "SELECT @@lower_case_table_names") == [(1,)]
    run(sandbox, server, "CREATE DATABASE Shop", "CREATE TABLE Shop.Orders (id INT PRIMARY KEY)",
        "INSERT INTO Shop.Orders VALUES (1)")  # fmt: skip
    with own_policy(sandbox, server, tmp_path) as config:
        backup = full_backup(config)
        shown = cli(config, {}, "backups", "show", backup, "--json")
        assert shown.json()["source"]["lower_case_table_names"] == 1, shown.out[-2000:]
        run(sandbox, server, "SET SESSION binlog_format = 'STATEMENT'", "USE Shop",
            "INSERT INTO SHOP.ORDERS VALUES (2)", "CREATE TABLE Shop.NewT (id INT)",
            "INSERT INTO shop.newt VALUES (7)")  # fmt: skip
        datadir = tmp_path / "data"
        out = restore_to_now(sandbox, server, config, datadir)
        assert f"mariadbd --datadir={datadir} --lower-case-table-names=1" in out, out
        with restored(sandbox, datadir, test_port_base) as cur:
            cur.execute("SELECT id FROM Shop.Orders ORDER BY id")
            assert cur.fetchall() == ((1,), (2,))
            cur.execute("SELECT id FROM SHOP.NEWT")
            assert cur.fetchall() == ((7,),)
        verified = cli(config, {}, "backups", "verify", backup, "--restore-test",
                       "--scratch-port", str(free_port(scratch_ports(test_port_base))))  # fmt: skip
        assert verified.code == 0, verified.err[-2000:]


def test_a_data_directory_table_of_the_window_comes_back_inside_the_datadir(
    sandbox: SandboxHandle, server: MariaDBService, tmp_path: Path, test_port_base: int
) -> None:
    """On the database host (here: the source's own server), a table created in the
    window with ``DATA DIRECTORY='EXT'``. Steps: full backup; ``CREATE TABLE ... DATA
    DIRECTORY``, two rows; target; archive; restore. Expected: exit 0; the restored table
    lives inside DIR (no ``.isl``, no file written under EXT by the replay), both rows.
    Was: the replay's server created its file at EXT, the source's live path (here:
    "Tablespace already exists", exit 1; once the source dropped it, a file beside the
    live server's)."""
    external = tmp_path / "external"
    external.mkdir()
    run(sandbox, server, "CREATE DATABASE Shop")
    with own_policy(sandbox, server, tmp_path) as config:
        full_backup(config)
        run(sandbox, server,
            f"CREATE TABLE Shop.dd (id INT PRIMARY KEY) DATA DIRECTORY = '{external}'",
            "INSERT INTO Shop.dd VALUES (1), (2)")  # fmt: skip
        source_files = sorted(p.name for p in external.rglob("*") if p.is_file())
        datadir = tmp_path / "data"
        restore_to_now(sandbox, server, config, datadir)
        assert sorted(p.name for p in external.rglob("*") if p.is_file()) == source_files
        assert not list(datadir.rglob("*.isl")) and list(datadir.glob("shop/dd.ibd"))
        with restored(sandbox, datadir, test_port_base) as cur:
            cur.execute("SELECT COUNT(*) FROM Shop.dd")
            assert cur.fetchone() == (2,)


def shop_ext(sandbox: SandboxHandle, server: MariaDBService, tmp_path: Path) -> tuple[Path, Path]:
    """``Shop.ext`` created with ``DATA DIRECTORY = EXT`` holding row 1; (EXT, a ROOT for
    ``--external-dir``, not made)."""
    external, root = tmp_path / "external", tmp_path / "root"
    external.mkdir()
    run(sandbox, server, "CREATE DATABASE Shop",
        f"CREATE TABLE Shop.ext (id INT PRIMARY KEY) DATA DIRECTORY = '{external}'",
        "INSERT INTO Shop.ext VALUES (1)")  # fmt: skip
    return external, root


def test_a_data_directory_table_of_the_base_goes_outside_and_rebuilds(
    sandbox: SandboxHandle, server: MariaDBService, tmp_path: Path, test_port_base: int
) -> None:
    """On the database host: ``Shop.ext`` created with ``DATA DIRECTORY='EXT'`` and a row;
    full backup; a row more in ext and ``Shop.dd`` (``DATA DIRECTORY`` too) in the window;
    restore to the target with ``--external-dir ROOT`` (EXT holds the live file); started;
    both tables rebuilt (``ALTER TABLE ... FORCE``).
    Expected: exit 0; ext's file at ``ROOT/shop/ext.ibd`` named by ``DIR/shop/ext.isl``,
    EXT's files untouched; dd inside DIR (the replay's server ignores DATA DIRECTORY); the
    rows of both, before and after the rebuilds. Was: ext's copy inside DIR without its
    ``.isl``, where the rebuild crashed the restored server."""
    external, root = shop_ext(sandbox, server, tmp_path)
    with own_policy(sandbox, server, tmp_path) as config:
        full_backup(config)
        run(sandbox, server, "INSERT INTO Shop.ext VALUES (2)",
            f"CREATE TABLE Shop.dd (id INT PRIMARY KEY) DATA DIRECTORY = '{external}'",
            "INSERT INTO Shop.dd VALUES (3)")  # fmt: skip
        run(sandbox, server, "FLUSH TABLES")
        live = {p: p.read_bytes() for p in external.rglob("*.ibd")}
        datadir = tmp_path / "data"
        restore_to_now(sandbox, server, config, datadir, "--external-dir", str(root))
        assert {p: p.read_bytes() for p in external.rglob("*.ibd")} == live
        assert (datadir / "shop" / "ext.isl").read_text() == str(root / "shop" / "ext.ibd")
        assert (root / "shop" / "ext.ibd").is_file() and not (datadir / "shop/ext.ibd").exists()
        assert (datadir / "shop" / "dd.ibd").is_file()
        with restored(sandbox, datadir, test_port_base) as cur:
            for _ in range(2):
                cur.execute("SELECT id FROM Shop.ext ORDER BY id")
                assert cur.fetchall() == ((1,), (2,))
                cur.execute("SELECT id FROM Shop.dd")
                assert cur.fetchall() == ((3,),)
                cur.execute("ALTER TABLE Shop.ext FORCE")
                cur.execute("ALTER TABLE Shop.dd FORCE")


@pytest.mark.parametrize(
    ("window", "table"),
    [
        ("ALTER TABLE Shop.ext FORCE", "ext"),
        ("TRUNCATE TABLE Shop.ext", "ext"),
        ("RENAME TABLE Shop.ext TO Shop.moved", "moved"),
    ],
    ids=["rebuilt", "truncated", "renamed"],
)
def test_a_base_data_directory_table_changed_in_the_window_restores_and_rebuilds(
    sandbox: SandboxHandle,
    server: MariaDBService,
    tmp_path: Path,
    test_port_base: int,
    window: str,
    table: str,
) -> None:
    """``Shop.ext`` (``DATA DIRECTORY='EXT'``) with a row; full backup; in the window the
    table rebuilt, truncated or renamed, then a row into it; restore to the target under
    ``--external-dir ROOT``; started; ``ALTER TABLE ... FORCE`` of it.
    Expected: exit 0; the table holds what the source held, before and after the rebuild,
    and its file is not inside DIR without an ``.isl`` (the configuration whose rebuild
    crashed mariadbd)."""
    _, root = shop_ext(sandbox, server, tmp_path)
    with own_policy(sandbox, server, tmp_path) as config:
        full_backup(config)
        run(sandbox, server, window, f"INSERT INTO Shop.{table} VALUES (2)")
        expected = run(sandbox, server, f"SELECT id FROM Shop.{table} ORDER BY id")
        datadir = tmp_path / "data"
        restore_to_now(sandbox, server, config, datadir, "--external-dir", str(root))
        inside = datadir / "shop" / f"{table}.ibd"
        link = datadir / "shop" / f"{table}.isl"
        assert link.is_file() != inside.is_file(), "outside with its .isl, or a table made inside"
        with restored(sandbox, datadir, test_port_base) as cur:
            cur.execute(f"SELECT id FROM Shop.{table} ORDER BY id")
            assert tuple(cur.fetchall()) == tuple(expected)
            cur.execute(f"ALTER TABLE Shop.{table} FORCE")
            cur.execute(f"SELECT id FROM Shop.{table} ORDER BY id")
            assert tuple(cur.fetchall()) == tuple(expected)


def test_a_table_of_an_installed_engine_is_replayed(
    sandbox: SandboxHandle, server: MariaDBService, tmp_path: Path, test_port_base: int
) -> None:
    """``INSTALL SONAME 'ha_archive'`` on the source, an ARCHIVE table with a row; full
    backup; a row more in the window; restore to the target. Expected: exit 0, both rows.
    Was: the replay's server (no grant tables) loads no plugin of ``mysql.plugin``: "Unknown
    storage engine 'ARCHIVE'", exit 1 (or, with a session sql_mode lacking
    NO_ENGINE_SUBSTITUTION, an InnoDB table in its place)."""
    run(sandbox, server, "INSTALL SONAME 'ha_archive'", "CREATE DATABASE arc",
        "CREATE TABLE arc.log (id INT, v VARCHAR(20)) ENGINE=ARCHIVE",
        "INSERT INTO arc.log VALUES (1, 'base')")  # fmt: skip
    with own_policy(sandbox, server, tmp_path) as config:
        full_backup(config)
        run(sandbox, server, "INSERT INTO arc.log VALUES (2, 'window')")
        datadir = tmp_path / "data"
        restore_to_now(sandbox, server, config, datadir)
        with restored(sandbox, datadir, test_port_base) as cur:
            cur.execute("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_NAME = 'log'")
            assert cur.fetchone() == ("ARCHIVE",)
            cur.execute("SELECT id, v FROM arc.log ORDER BY id")
            assert cur.fetchall() == ((1, "base"), (2, "window"))
