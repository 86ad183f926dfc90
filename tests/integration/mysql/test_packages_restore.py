"""A backup holding MariaDB packages (``sql_mode = ORACLE``: ``CREATE PACKAGE`` and
``CREATE PACKAGE BODY``) restores, and a point-in-time restore over a window creating or
dropping one (tester3 finding 5, data loss: the routines object's ``DROP PACKAGE IF
EXISTS`` ran before the creation session set ORACLE mode, a syntax error after the tables
had loaded: exit 1, and no backup holding a package could be restored).

New backups run a package's DROP in its own sql_mode (:mod:`datatier.mysql.dumpdefs`);
backups written before run so too (:mod:`datatier.mysql.package_drops`, on restore; a
backup of that layout is made here by the old writer). Names with bytes beyond ASCII, a
package made by a latin1 client: the DROP must find it. The stock client loads the routines
object as written. On the sandbox's real servers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from datatier.backup.restore import find_backup
from datatier.config import load
from datatier.mysql import dumpdefs
from datatier.mysql.catalogue import Definition
from tests.integration.binlog_support import PitrWindow, pitr_window
from tests.integration.conftest import SandboxHandle, cli_json
from tests.integration.mysql.conftest import back_up

DB, COPY, POLICY = "pk_restore", "pk_restore_copy", "pk-restore"
PDB, PPOLICY = "pk_inplace", "pk-inplace"
ORACLE = "ORACLE"
PACKAGES = [  # a spec alone, a spec and its body, a name beyond ASCII
    "CREATE PACKAGE pk AS FUNCTION f RETURN INT; END",
    "CREATE PACKAGE pk2 AS FUNCTION f RETURN INT; END",
    "CREATE PACKAGE BODY pk2 AS FUNCTION f RETURN INT AS BEGIN RETURN 2; END; END",
    "CREATE PACKAGE `pâq` AS FUNCTION f RETURN VARCHAR2; END",
    "CREATE PACKAGE BODY `pâq` AS FUNCTION f RETURN VARCHAR2 AS BEGIN RETURN 'é'; END; END",
]
_NEW_LAYOUT = dumpdefs._definition_statements


def run(sandbox: SandboxHandle, *statements: str, sql_mode: str | None = None, **kw: Any) -> None:
    """Each statement on the primary, in ``DB`` when it exists (in ``sql_mode``, if given;
    ``kw`` go to the connection)."""
    with sandbox.connect(**kw) as conn, conn.cursor() as cur:
        if sql_mode is not None:
            cur.execute("SET SESSION sql_mode = %s", (sql_mode,))
        for sql in statements:
            cur.execute(sql)


def state(sandbox: SandboxHandle, database: str = DB) -> dict[str, Any]:
    """Each table's rows and each routine (type, name, definition, sql_mode) of
    ``database``."""

    def q(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args or None)
            return list(cur.fetchall())

    found: dict[str, Any] = {}
    for (name,) in q(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", database
    ):
        found[f"table {name}"] = sorted(q(f"SELECT * FROM `{database}`.`{name}`"))
    found["routines"] = sorted(
        q(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME, ROUTINE_DEFINITION, SQL_MODE "
            "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
            database,
        )
    )
    return found


@pytest.fixture
def clean(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {DB}", f"DROP DATABASE IF EXISTS {COPY}")
    yield use_sandbox_config
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {DB}", f"DROP DATABASE IF EXISTS {COPY}")


def make_source(sandbox: SandboxHandle) -> None:
    """``DB``: table ``t`` (row 1), :data:`PACKAGES`, and ``pâq2`` made by a latin1 client
    (its name's bytes differ from UTF-8's in the creator's charset)."""
    run(sandbox, f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    run(sandbox, f"USE {DB}", *PACKAGES, sql_mode=ORACLE)
    with sandbox.connect(charset="latin1") as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ORACLE'")
        cur.execute(f"USE {DB}")
        conn.query(b"CREATE PACKAGE `p\xe2q2` AS FUNCTION f RETURN INT; END")
    run(sandbox, f"INSERT INTO {DB}.t VALUES (1)")


def old_layout(d: Definition) -> list[str]:
    """A definition's statements as backups before the fix wrote them: a package's DROP
    before its creation session (in whatever sql_mode the session then had)."""
    statements = _NEW_LAYOUT(d)
    if d.kind in ("package", "package body"):
        assert statements[0].startswith("/*!50003 SET sql_mode = "), statements
        assert statements[1].startswith("DROP PACKAGE "), statements
        return statements[1:]
    return statements


@pytest.mark.parametrize("body_later", [False, True])
def test_a_backup_holding_packages_is_restored_over_its_source(
    body_later: bool, clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tester3 finding 5: ``restore --force`` puts the packages back as at the backup
    (exit 0). With ``body_later``, a body for ``pk`` made after the backup: the backup's
    DROP PACKAGE drops it (spec and body go together), so it is not listed as left as it
    is. Was exit 1 after the tables loaded."""
    make_source(clean)
    manifest = back_up(clean, POLICY, [DB])
    at_backup = state(clean)
    run(clean, f"INSERT INTO {DB}.t VALUES (2)", f"DROP PACKAGE BODY {DB}.pk2", sql_mode=ORACLE)
    if body_later:
        run(
            clean,
            f"CREATE PACKAGE BODY {DB}.pk AS FUNCTION f RETURN INT AS BEGIN RETURN 1; END; END",
            sql_mode=ORACLE,
        )
    code, report, err = cli_json(capsys, ["restore", manifest.backup_id, "--force", "--json"])
    assert code == 0, err
    assert state(clean) == at_backup
    assert report.get("left_as_they_are", []) == []


@pytest.mark.parametrize("layout", ["new", "old"])
def test_a_backup_holding_packages_is_restored_into_a_new_database(
    layout: str,
    clean: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Restored under ``--rename`` into a new database, then again with ``--force`` over
    that copy (each DROP then finds its package): the copy's routines are the source's.
    ``old``: a backup written as before the fix (the DROP before the creation session),
    whose restore the loader mends."""
    make_source(clean)
    with monkeypatch.context() as patched:
        if layout == "old":
            patched.setattr(dumpdefs, "_definition_statements", old_layout)
        manifest = back_up(clean, POLICY, [DB])
    at_backup = state(clean)
    argv = ["restore", manifest.backup_id, "--rename", f"{DB}={COPY}", "--json"]
    code, _, err = cli_json(capsys, argv)
    assert code == 0, err
    assert state(clean, COPY) == at_backup
    run(clean, f"DELETE FROM {COPY}.t", f"DROP PACKAGE BODY {COPY}.`pâq`", sql_mode=ORACLE)
    code, report, err = cli_json(capsys, [*argv, "--force"])
    assert code == 0, err
    assert state(clean, COPY) == at_backup
    assert report.get("left_as_they_are", []) == []


def test_the_stock_client_loads_a_backups_routines_as_the_readme_shows(
    clean: SandboxHandle, tmp_path: Path
) -> None:
    """``zstd -dc _routines.sql.zst | mariadb --binary-mode --comments COPY``, twice (the
    second time each DROP finds its package, the latin1 one too): the source's routines.
    The stock client takes the objects as written: no restore mends them."""
    make_source(clean)
    manifest = back_up(clean, POLICY, [DB])
    loaded = load(str(clean.config_path), environ={})
    _, store = find_backup(loaded, manifest.backup_id)
    (routines,) = [o for o in manifest.objects if o.kind == "routines"]
    text = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(routines.key)))
    )
    cfg = loaded.config.mysql
    node = cfg.nodes["primary"]
    cnf = tmp_path / "client.cnf"
    cnf.write_text(
        f"[client]\nhost={node.host}\nport={node.port}\nuser={cfg.user}\n"
        f"password={cfg.password.reveal()}\n"
    )
    run(clean, f"CREATE DATABASE {COPY}")
    for _ in range(2):
        loaded_by_hand = subprocess.run(
            ["mariadb", f"--defaults-file={cnf}", "--binary-mode", "--comments", COPY],
            input=text,
            capture_output=True,
        )
        assert loaded_by_hand.returncode == 0, loaded_by_hand.stderr
    assert state(clean, COPY)["routines"] == state(clean)["routines"]


# -- point-in-time restore ------------------------------------------------------------------


@pytest.fixture
def window(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PitrWindow]:
    with pitr_window(use_sandbox_config, PPOLICY, PDB, monkeypatch=monkeypatch) as made:
        yield made


def test_a_window_creating_and_dropping_packages_is_replayed_in_place(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The base holds package ``pa`` (and its body); the window creates ``pw`` with its
    body and drops ``pa``; after the target moment ``pa`` is made again and ``pw``'s body
    replaced. ``restore --until-gtid --force`` in place: the window's packages present on
    the target are dropped first (in ORACLE mode: was a syntax error), the base loaded,
    the replay (its DDL carries its sql_mode) run: the database as at the target moment."""
    with window.session() as cur:
        cur.execute("SET SESSION sql_mode = 'ORACLE'")
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO a VALUES (1)")
        cur.execute("CREATE PACKAGE pa AS FUNCTION f RETURN INT; END")
        cur.execute("CREATE PACKAGE BODY pa AS FUNCTION f RETURN INT AS BEGIN RETURN 1; END; END")
    window.backup()
    with window.session() as cur:
        cur.execute("SET SESSION sql_mode = 'ORACLE'")
        cur.execute("INSERT INTO a VALUES (2)")
        cur.execute("CREATE PACKAGE pw AS FUNCTION f RETURN INT; END")
        cur.execute("CREATE PACKAGE BODY pw AS FUNCTION f RETURN INT AS BEGIN RETURN 2; END; END")
        cur.execute("DROP PACKAGE pa")
    gtid = window.gtid()
    at_t = state(window.sandbox, PDB)
    with window.session() as cur:
        cur.execute("SET SESSION sql_mode = 'ORACLE'")
        cur.execute("INSERT INTO a VALUES (3)")
        cur.execute("CREATE PACKAGE pa AS FUNCTION g RETURN INT; END")
        cur.execute(
            "CREATE OR REPLACE PACKAGE BODY pw AS FUNCTION f RETURN INT AS BEGIN RETURN 3; END; END"
        )
    window.archive()
    argv = ["restore", "--policy", PPOLICY, "--until-gtid", gtid, "--force", "--json"]
    code, report, err = cli_json(capsys, argv)
    assert code == 0, err
    assert state(window.sandbox, PDB) == at_t
    assert report.get("left_as_they_are", []) == []
