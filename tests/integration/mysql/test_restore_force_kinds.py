"""``restore --force`` onto a target whose object of a backed-up name is of another kind
(table, sequence, view), on the real sandbox: the target's object is replaced whatever its
kind, objects the restore does not create survive, and without ``--force`` the refusal
(exit 2) changes nothing. Reproduction: every pairing of a backed-up
sequence or view with a target object of another kind, and a backed-up table with a target
view, exited 1 half-way ("Table 'x' already exists"), the backup's own ``DROP ... IF
EXISTS`` naming only its own kind (a table over a sequence or a system-versioned table
worked: DROP TABLE drops both)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.cli import main
from datatier.mysql.sqltext import ident as q
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store
from tests.integration.mysql.conftest import back_up

SOURCE = "rfk src`k"
COPY = "rfk copy`k"
TABLE, SEQUENCE, VIEW, TABLE2 = "t", "zs", "v", "t2"
KEEP, KEEP_VIEW = "keep", "keep_v"
NAMES = {"table": TABLE, "sequence": SEQUENCE, "view": VIEW}
TYPES = {
    "table": "BASE TABLE",
    "versioned": "SYSTEM VERSIONED",
    "sequence": "SEQUENCE",
    "view": "VIEW",
}
RESTORED = {TABLE: "BASE TABLE", TABLE2: "BASE TABLE", SEQUENCE: "SEQUENCE", VIEW: "VIEW"}


def execute(sandbox: SandboxHandle, *statements: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def kinds(sandbox: SandboxHandle, database: str, node: str = "primary") -> dict[str, str]:
    """Each table, sequence and view of ``database`` on ``node`` and its TABLE_TYPE."""
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (database,),
        )
        return {str(name): str(kind) for name, kind in cur.fetchall()}


def make(kind: str, name: str) -> str:
    """A statement creating an object ``name`` of ``kind`` in COPY."""
    where = f"{q(COPY)}.{q(name)}"
    if kind == "table":
        return f"CREATE TABLE {where} (other INT)"
    if kind == "versioned":
        return f"CREATE TABLE {where} (other INT) WITH SYSTEM VERSIONING"
    if kind == "sequence":
        return f"CREATE SEQUENCE {where} START WITH 500"
    return f"CREATE VIEW {where} AS SELECT 42 AS answer"


@pytest.fixture(scope="module", params=[True, False], ids=["bundled", "own-objects"])
def backup(sandbox: SandboxHandle, request: pytest.FixtureRequest) -> Iterator[Manifest]:
    """SOURCE: tables ``t`` (two rows) and ``t2``, sequence ``zs`` (drawn to 7) and view
    ``v`` on ``t``; the tables in a bundle or each in its own schema object."""
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in (SOURCE, COPY)))
    s = q(SOURCE)
    execute(
        sandbox,
        f"CREATE DATABASE {s}",
        f"CREATE TABLE {s}.{TABLE} (id INT PRIMARY KEY, w VARCHAR(10))",
        f"INSERT INTO {s}.{TABLE} VALUES (1, 'one'), (2, 'two')",
        f"CREATE TABLE {s}.{TABLE2} (id INT PRIMARY KEY)",
        f"CREATE SEQUENCE {s}.{SEQUENCE} START WITH 7",
        f"CREATE VIEW {s}.{VIEW} AS SELECT id, w FROM {s}.{TABLE}",
    )
    policy = f"force-kinds-{int(request.param)}"
    clear_prefix(default_store(sandbox), policy)
    settings = "" if request.param else "bundle_tables = false\n"
    manifest = back_up(sandbox, policy, [SOURCE], settings)
    bundled = {(o.database, s.table) for o in manifest.objects for s in o.sections}
    assert ((SOURCE, TABLE) in bundled) == request.param
    yield manifest
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in (SOURCE, COPY)))


@pytest.fixture
def target(use_sandbox_config: SandboxHandle, backup: Manifest) -> Iterator[SandboxHandle]:
    """COPY with objects the backup does not hold: table ``keep`` (one row), view
    ``keep_v``."""
    sandbox = use_sandbox_config
    execute(
        sandbox,
        f"DROP DATABASE IF EXISTS {q(COPY)}",
        f"CREATE DATABASE {q(COPY)}",
        f"CREATE TABLE {q(COPY)}.{KEEP} (id INT PRIMARY KEY)",
        f"INSERT INTO {q(COPY)}.{KEEP} VALUES (9)",
        f"CREATE VIEW {q(COPY)}.{KEEP_VIEW} AS SELECT id FROM {q(COPY)}.{KEEP}",
    )
    yield sandbox
    execute(sandbox, f"DROP DATABASE IF EXISTS {q(COPY)}")


def restore(backup: Manifest, *args: str) -> int:
    return main(["restore", backup.backup_id, "--target", "primary",
                 "--rename", f"{SOURCE}={COPY}", *args])  # fmt: skip


PAIRINGS = [(b, t) for b in NAMES for t in TYPES if TYPES[t] != TYPES[b]]


def assert_restored(sandbox: SandboxHandle) -> None:
    """COPY holds the backup's objects with their kinds and content, and the others; so do
    the replicas (the drops went through the binlog, replication runs on)."""
    expected = {**RESTORED, KEEP: "BASE TABLE", KEEP_VIEW: "VIEW"}
    assert kinds(sandbox, COPY) == expected
    sandbox.wait_replicated()
    for node in ("replica1", "replica2"):
        assert kinds(sandbox, COPY, node) == expected, node
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, w FROM {q(COPY)}.{VIEW} ORDER BY id")
        assert cur.fetchall() == ((1, "one"), (2, "two"))
        cur.execute(f"SELECT NEXTVAL({q(COPY)}.{SEQUENCE})")
        assert cur.fetchone()[0] == 7
        cur.execute(f"SELECT id FROM {q(COPY)}.{KEEP}")
        assert cur.fetchall() == ((9,),)


@pytest.mark.parametrize(("backed_up", "present"), PAIRINGS)
def test_force_replaces_an_object_of_another_kind(
    target: SandboxHandle,
    backup: Manifest,
    backed_up: str,
    present: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The backup's ``backed_up`` object meets a ``present`` one of its name in COPY."""
    execute(target, make(present, NAMES[backed_up]))
    capsys.readouterr()
    assert restore(backup, "--force") == 0, capsys.readouterr().err
    assert_restored(target)


@pytest.mark.parametrize(("backed_up", "present"), PAIRINGS)
def test_without_force_the_refusal_changes_nothing(
    target: SandboxHandle,
    backup: Manifest,
    backed_up: str,
    present: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = NAMES[backed_up]
    execute(target, make(present, name))
    before = kinds(target, COPY)
    capsys.readouterr()
    assert restore(backup) == 2
    assert "not empty" in capsys.readouterr().err
    assert (
        kinds(target, COPY)
        == before
        == {name: TYPES[present], KEEP: "BASE TABLE", KEEP_VIEW: "VIEW"}
    )


def test_tables_replaces_only_the_objects_restored(
    target: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tables SRC.zs`` over a table ``zs``: the sequence replaces it; a view named like
    the backup's table ``t`` (not restored) stays as it is."""
    execute(target, make("table", SEQUENCE), make("view", TABLE))
    capsys.readouterr()
    assert restore(backup, "--force", "--tables", f"{q(SOURCE)}.{SEQUENCE}") == 0, (
        capsys.readouterr().err
    )
    assert kinds(target, COPY) == {
        SEQUENCE: "SEQUENCE",
        TABLE: "VIEW",
        KEEP: "BASE TABLE",
        KEEP_VIEW: "VIEW",
    }
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT answer FROM {q(COPY)}.{TABLE}")
        assert cur.fetchall() == ((42,),)


def test_a_view_replaced_by_a_table_of_a_later_schema_version(
    target: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every backed-up name present with another kind at once (the view ``t`` of a later
    schema where the backup has a table, and so on): one ``--force`` replaces them all."""
    execute(target, make("view", TABLE), make("table", SEQUENCE), make("sequence", VIEW))
    capsys.readouterr()
    assert restore(backup, "--force") == 0, capsys.readouterr().err
    assert_restored(target)


def test_a_dry_run_names_what_force_would_replace_and_changes_nothing(
    target: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(target, make("view", TABLE))
    before = kinds(target, COPY)
    capsys.readouterr()
    assert restore(backup, "--force", "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"--force replaces view `{COPY.replace('`', '``')}`.`t` (the backup has a table)" in (
        out
    ), out
    assert restore(backup, "--force", "--dry-run", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    replaced = {"database": COPY, "name": TABLE, "present": "view", "restored": "table"}
    assert doc["replaced"] == [replaced], doc
    assert kinds(target, COPY) == before

    assert restore(backup, "--force", "--json") == 0
    assert json.loads(capsys.readouterr().out)["replaced"] == [replaced]
    assert_restored(target)


def test_without_binlog_the_replacement_stays_on_the_target(
    target: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--no-binlog``: the drop of the target's view is not replicated either (the replicas
    keep their view, replication runs on)."""
    execute(target, make("view", TABLE))
    target.wait_replicated()
    capsys.readouterr()
    assert restore(backup, "--force", "--no-binlog") == 0, capsys.readouterr().err
    assert kinds(target, COPY)[TABLE] == "BASE TABLE"
    execute(target, f"INSERT INTO {q(COPY)}.{KEEP} VALUES (10)")
    target.wait_replicated()
    for node in ("replica1", "replica2"):
        assert kinds(target, COPY, node) == {
            TABLE: "VIEW",
            KEEP: "BASE TABLE",
            KEEP_VIEW: "VIEW",
        }, node


def test_a_refusal_after_staging_drops_nothing(
    target: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--force --tables SRC.v`` where COPY has a table ``v`` but no ``t`` for the view to
    read: the view check refuses (exit 2) after the objects are staged, and the table ``v``
    is still there: the replacement comes after every check."""
    execute(target, make("table", VIEW))
    before = kinds(target, COPY)
    capsys.readouterr()
    assert restore(backup, "--force", "--tables", f"{q(SOURCE)}.{VIEW}") == 2
    err = capsys.readouterr().err
    assert f"`{TABLE}`" in err and "partly loaded" not in err, err
    assert kinds(target, COPY) == before
