"""``restore`` of views without their base tables, and what a failed restore says, on the
real sandbox: a view named alone in ``--tables`` into a target lacking its base tables is
refused before anything changes (exit 2, naming the missing tables and how to add them),
never leaving a placeholder view behind; a restore that fails before loading anything says
nothing was changed; load errors name databases and tables readably, not as object keys."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.restore import find_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

PREFIX = "rv_views"
SOURCE = f"{PREFIX} src"  # a space: its object keys are percent-encoded
BASE, OTHER, VIEW, VIEW2 = "base t", "other", "v1", "v_on_v"
COPY = f"{PREFIX}_copy"
DATABASES = (SOURCE, COPY)


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def execute(sandbox: SandboxHandle, *statements: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    sandbox.wait_replicated()


def objects_in(sandbox: SandboxHandle, database: str) -> list[str] | None:
    """The tables and views of ``database``, None when it does not exist."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (database,)
        )
        if not cur.fetchone()[0]:
            return None
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
            "ORDER BY TABLE_NAME",
            (database,),
        )
        return [str(r[0]) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[Manifest]:
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in DATABASES))
    s = q(SOURCE)
    execute(
        sandbox,
        f"CREATE DATABASE {s}",
        f"CREATE TABLE {s}.{q(BASE)} (id INT PRIMARY KEY, v VARCHAR(20))",
        f"CREATE TABLE {s}.{q(OTHER)} (id INT PRIMARY KEY)",
        f"INSERT INTO {s}.{q(BASE)} VALUES (1, 'one'), (2, 'two')",
        f"INSERT INTO {s}.{q(OTHER)} VALUES (1)",
        f"CREATE VIEW {s}.{q(VIEW)} AS SELECT b.id, b.v FROM {s}.{q(BASE)} b "
        f"JOIN {s}.{q(OTHER)} o ON o.id = b.id",
        f"CREATE VIEW {s}.{q(VIEW2)} AS SELECT id FROM {s}.{q(VIEW)}",
    )
    yield back_up(sandbox, "views", [SOURCE], "jobs = 2\n")
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in DATABASES))


@pytest.fixture
def clean(use_sandbox_config: SandboxHandle, backup: Manifest) -> Iterator[SandboxHandle]:
    execute(use_sandbox_config, f"DROP DATABASE IF EXISTS {q(COPY)}")
    yield use_sandbox_config
    execute(use_sandbox_config, f"DROP DATABASE IF EXISTS {q(COPY)}")


def restore(backup: Manifest, *args: str) -> int:
    return main(["restore", backup.backup_id, "--rename", f"{SOURCE}={COPY}", *args])


def test_a_view_alone_into_an_empty_target_is_refused_and_changes_nothing(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: it failed (exit 1) at the view's definition and left the database and
    a placeholder view (``SELECT 1 AS id``) behind."""
    capsys.readouterr()
    assert restore(backup, "--tables", f"{q(SOURCE)}.{VIEW}") == 2
    err = capsys.readouterr().err
    assert f"`{COPY}`.`{BASE}`" in err and f"`{COPY}`.`{OTHER}`" in err, err
    assert "--tables" in err and "partly loaded" not in err, err
    assert objects_in(clean, COPY) is None, "nothing was created"


def test_a_view_on_a_view_alone_names_the_view_it_needs(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert restore(backup, "--tables", f"{q(SOURCE)}.{VIEW2}") == 2
    err = capsys.readouterr().err
    assert f"`{COPY}`.`{VIEW}`" in err, err
    assert objects_in(clean, COPY) is None


def test_a_view_with_its_base_tables_or_beside_them_is_restored(
    clean: SandboxHandle, backup: Manifest
) -> None:
    src = q(SOURCE)
    listed = f"{src}.{VIEW2},{src}.{VIEW},{src}.{q(BASE)},{src}.{OTHER}"
    assert restore(backup, "--tables", listed) == 0
    assert objects_in(clean, COPY) == [BASE, OTHER, VIEW, VIEW2]

    execute(clean, f"DROP VIEW {q(COPY)}.{VIEW2}", f"DROP VIEW {q(COPY)}.{VIEW}")
    assert restore(backup, "--force", "--tables", f"{src}.{VIEW},{src}.{VIEW2}") == 0
    with clean.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {q(COPY)}.{VIEW2}")
        assert [r[0] for r in cur.fetchall()] == [1]


def test_a_failed_load_names_tables_readably_and_says_what_may_be_partly_loaded(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """A view whose base table exists with other columns fails at load: the message names
    the view as `db`.`view`, not as its percent-encoded object key."""
    execute(
        clean,
        f"CREATE DATABASE {q(COPY)}",
        f"CREATE TABLE {q(COPY)}.{q(BASE)} (other_id INT)",
        f"CREATE TABLE {q(COPY)}.{q(OTHER)} (id INT)",
    )
    capsys.readouterr()
    assert restore(backup, "--force", "--tables", f"{q(SOURCE)}.{VIEW}") == 1
    err = capsys.readouterr().err
    assert f"`{COPY}`.`{VIEW}`" in err, err
    assert "%20" not in err, err
    assert "partly loaded" in err, err
    assert objects_in(clean, COPY) == [BASE, OTHER], "no placeholder view left behind"

    assert restore(backup, "--force", "--tables", f"{q(SOURCE)}.{VIEW}", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    (key,) = [o.key for o in backup.objects if o.kind == "views" and o.table == VIEW]
    assert doc["objects"] == [key] and "%20" not in doc["error"], doc


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("127.0.0.1:99999", "port 99999 is out of range (1-65535)"),
        ("127.0.0.1:", "is not a number"),
        ("no_such_node", "is neither a node name"),
    ],
)
def test_a_bad_target_is_bad_input(
    clean: SandboxHandle,
    backup: Manifest,
    target: str,
    problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: ``--target 127.0.0.1:99999`` exited 3 (cannot reach a service)."""
    capsys.readouterr()
    assert restore(backup, "--target", target) == 2
    err = capsys.readouterr().err
    assert problem in err, err
    assert objects_in(clean, COPY) is None


def test_the_manifest_records_what_each_view_reads(backup: Manifest) -> None:
    recorded = backup.options["references"]["views"]
    assert [SOURCE, VIEW, [[None, BASE], [None, OTHER]]] in recorded, recorded
    assert [SOURCE, VIEW2, [[None, VIEW]]] in recorded, recorded


def test_a_dry_run_refuses_a_view_alone_before_fetching_anything(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal comes from the manifest's recorded references: before any object is
    read (or brought back from Glacier), so ``--dry-run`` says it too."""
    capsys.readouterr()
    assert restore(backup, "--tables", f"{q(SOURCE)}.{VIEW}", "--dry-run") == 2
    err = capsys.readouterr().err
    assert f"`{COPY}`.`{BASE}`" in err and "--tables" in err, err
    assert objects_in(clean, COPY) is None


def test_an_older_manifest_without_references_is_refused_from_the_objects(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Backups written before references were recorded: the views' objects are read
    after fetching, and the same restore is refused, nothing changed."""
    loaded = load(str(clean.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    key = manifest_key(backup.policy, backup.backup_id)
    good = b"".join(store.iter_read(key))
    older = Manifest.decode(good, "test")
    del older.options["references"]
    store.put_bytes(key, older.encode())
    try:
        capsys.readouterr()
        assert restore(backup, "--tables", f"{q(SOURCE)}.{VIEW}", "--dry-run") == 0
        assert restore(backup, "--tables", f"{q(SOURCE)}.{VIEW}") == 2
        err = capsys.readouterr().err
        assert f"`{COPY}`.`{BASE}`" in err and "--tables" in err, err
        assert objects_in(clean, COPY) is None
    finally:
        store.put_bytes(key, good)


def test_malformed_references_are_an_integrity_failure(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load(str(clean.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    key = manifest_key(backup.policy, backup.backup_id)
    good = b"".join(store.iter_read(key))
    broken = Manifest.decode(good, "test")
    broken.options["references"] = {"views": [[SOURCE, VIEW, "nope"]], "sequences": []}
    store.put_bytes(key, broken.encode())
    try:
        capsys.readouterr()
        assert restore(backup, "--tables", f"{q(SOURCE)}.{VIEW}") == 4
        assert "options.references" in capsys.readouterr().err
        assert objects_in(clean, COPY) is None
    finally:
        store.put_bytes(key, good)
