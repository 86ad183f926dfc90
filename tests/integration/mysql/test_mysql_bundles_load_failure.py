"""A bundle (small tables in one object: :mod:`datatier.mysql.load`) that fails part-way, on
the real sandbox: the target holds a table the backup does not (``other``) owning the
foreign key name ``dup_fk`` that one bundled table also uses (InnoDB's names are unique per
database), so that table's ``CREATE TABLE`` fails (a view named like the table did this
until ``--force`` learnt to replace an object of another kind). The restore exits 1 naming
the bundle, the TABLE and where within that table's section: its statement (format-1
bundles, run on datatier's own connection) or the stock client's line (older bundles; the
text the client echoes before its error holds ``at line 1``), whole or with ``--tables``
(whose stream skips sections); the tables before it in the bundle are loaded, those after it
are not; once ``other`` is gone, ``--force`` gives the source.

Since a kept table holding a restored table's key name is refused up front (exit 2,
:mod:`datatier.mysql.foreign_key_names`; it reads framed bundles only), the load failure is
reached with that check switched off, after asserting the refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.test_restore_bundle_frames import old_bundles
from tests.integration.mysql.test_restore_kill import state

SRC, DST = "bf_src", "bf_dst"
TABLES = [f"t{i:02d}" for i in range(12)]
VICTIM = "t07"


@pytest.fixture
def source(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {SRC}")
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
            f"ALTER TABLE {SRC}.{VICTIM} ADD CONSTRAINT dup_fk FOREIGN KEY (id) "
            f"REFERENCES {SRC}.{VICTIM} (id)"
        )
    sandbox.wait_replicated()
    sandbox.write_policy(
        "bundles-failure",
        f'engine = "mysql"\njobs = 1\n[source]\nnode = "replica1"\ndatabases = ["{SRC}"]\n',
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")


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
        cur.execute(
            f"CREATE TABLE {DST}.other (id INT PRIMARY KEY, "
            f"CONSTRAINT dup_fk FOREIGN KEY (id) REFERENCES {DST}.other (id))"
        )
    restore = ["restore", manifest.backup_id, "--rename", f"{SRC}={DST}", "--force"]
    expected = f"in `{DST}` (table `{VICTIM}`, {where}) failed: ERROR 1005"
    partly = f"the restore was interrupted: `{DST}` on primary"

    capsys.readouterr()
    if not old:
        assert main(restore) == 2
        assert "'dup_fk' of `bf_dst`.`other`" in capsys.readouterr().err
        assert set(state(sandbox, DST)) == {"other"}, "nothing changed"
    # the check off, so the load meets the clash (as with a failure no check foresees)
    monkeypatch.setattr("datatier.mysql.restore.kept_foreign_keys", lambda *a: [])
    assert main(restore) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert "errno: 121" in err and partly in err
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
        cur.execute(f"DROP TABLE {DST}.other")
    assert main(restore) == 0
    assert state(sandbox, DST) == source_rows
