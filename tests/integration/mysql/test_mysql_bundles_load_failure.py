"""A bundle (small tables in one object: :mod:`datatier.mysql.load`) that fails part-way, on
the real sandbox: one bundled table has a foreign key to ``bf_parent.p``, a table of
another database the restore does not touch, whose key column is a VARCHAR on the target,
so that table's ``CREATE TABLE`` fails (errno 150, with foreign_key_checks off too; a
view named like the table did this until ``--force`` learnt to replace an object of
another kind, then a kept table holding its key's name until a forced restore learnt to
refuse that up front). The restore exits 1 naming the bundle, the TABLE and where within
that table's section: its statement (format-1 bundles, run on datatier's own connection)
or the stock client's line (older bundles; the text the client echoes before its error
holds ``at line 1``), whole or with ``--tables`` (whose stream skips sections); the tables
before it in the bundle are loaded, those after it are not; once ``p``'s key is an INT
again, ``--force`` gives the source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.test_restore_bundle_frames import old_bundles
from tests.integration.mysql.test_restore_kill import state

SRC, DST, PARENT = "bf_src", "bf_dst", "bf_parent"
TABLES = [f"t{i:02d}" for i in range(12)]
VICTIM = "t07"


@pytest.fixture
def source(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST, PARENT):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {SRC}")
        cur.execute(f"CREATE DATABASE {PARENT}")
        cur.execute(f"CREATE TABLE {PARENT}.p (id INT PRIMARY KEY)")
        cur.executemany(f"INSERT INTO {PARENT}.p VALUES (%s)", [(i,) for i in range(20)])
        for n, table in enumerate(TABLES):
            cur.execute(  # the client echoes a failing statement: its text is no error
                f"CREATE TABLE {SRC}.{table} (id INT PRIMARY KEY, v TEXT COMMENT %s)",
                (f"ERROR 1 (x) at line {n}\nERROR 2 (y) at line 1",),
            )
            cur.executemany(  # rows of several lines: every section has its own length
                f"INSERT INTO {SRC}.{table} VALUES (%s, %s)",
                [(i, f"{table} {i} ';\n" * (n % 3 + 1)) for i in range(n + 2)],
            )
        cur.execute(
            f"ALTER TABLE {SRC}.{VICTIM} ADD CONSTRAINT victim_fk FOREIGN KEY (id) "
            f"REFERENCES {PARENT}.p (id)"
        )
    sandbox.wait_replicated()
    sandbox.write_policy(
        "bundles-failure",
        f'engine = "mysql"\njobs = 1\n[source]\nnode = "replica1"\ndatabases = ["{SRC}"]\n',
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST, PARENT):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")


def parent_key(cur: Any, kind: str) -> None:
    """``PARENT.p`` made again with a key of SQL type ``kind``."""
    cur.execute("SET SESSION foreign_key_checks = 0")
    cur.execute(f"DROP TABLE {PARENT}.p")
    cur.execute(f"CREATE TABLE {PARENT}.p (id {kind} PRIMARY KEY)")


@pytest.mark.parametrize(("old", "where"), [(False, "its statement 2"), (True, "its line 3")])
def test_a_failing_bundle_names_its_table_and_stops_there(
    use_sandbox_config: SandboxHandle,
    source: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    old: bool,
    where: str,
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    with monkeypatch.context() as patch:
        if old:
            old_bundles(patch)
        manifest: Manifest = run_backup(loaded, load_policy(loaded, "bundles-failure"))
    (bundle,) = [o for o in manifest.objects if o.kind == "bundle"]
    order = [s.table for s in bundle.sections]
    assert sorted(order) == TABLES
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DST}")
        parent_key(cur, "VARCHAR(10)")
    restore = ["restore", manifest.backup_id, "--rename", f"{SRC}={DST}", "--force"]
    expected = f"in `{DST}` (table `{VICTIM}`, {where}) failed: ERROR 1005"
    partly = f"the restore was interrupted: `{DST}` on primary"

    capsys.readouterr()
    assert main(restore) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert "errno: 150" in err and partly in err
    source_rows = state(sandbox, SRC)
    found = state(sandbox, DST)
    before = order[: order.index(VICTIM)]
    assert len(before) >= 2, "the --tables part below skips a section between two"
    assert {t: found.get(t) for t in before} == {t: source_rows[t] for t in before}
    assert not set(found) & set(order[order.index(VICTIM) :]), "the load stopped there"

    # --tables feeds the load the prelude and the chosen sections only.
    earlier = before[-2]
    tables = ["--tables", f"{SRC}.{earlier},{SRC}.{VICTIM}"]
    assert main([*restore, *tables]) == 1
    err = capsys.readouterr().err
    assert expected in err, err

    with sandbox.connect() as conn, conn.cursor() as cur:
        parent_key(cur, "INT")
    assert main(restore) == 0
    assert state(sandbox, DST) == source_rows
