"""``restore --force`` in place, on the source's host and datadir, of a physical backup
holding a table created with ``DATA DIRECTORY``: the datadir's own external file is part
of what the restore replaces (its ``.isl`` names it), so the backup's copy goes back there,
and the table rebuilds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backup.test_tester7_findings import primary_full_backup, scratch_source
from tests.integration.backup.test_tester8_findings import cleanup
from tests.integration.backup.test_tester9_findings import (
    differing,
    external_tables,
    linked,
    rebuilt_state,
)
from tests.integration.conftest import SandboxHandle
from tests.integration.physical_support import OWNER, connect_port, table_state

POLICY = "inplace-phys"
SOURCE_POLICY = "inplace-src"


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary (the scratch server's
    start)."""
    yield from primary_full_backup(sandbox, SOURCE_POLICY)


def test_a_restore_in_place_replaces_the_datadirs_own_external_file(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Steps (a scratch ``mariadbd`` without binlog): ext (``DATA DIRECTORY`` outside the
    datadir) and t, 3,000 rows 'base' each; full F; ``UPDATE ext SET v = 'later'`` and a
    row more in t; server stopped; ``restore F --datadir DATADIR --force`` (the source's
    own); server started on it; ``ALTER TABLE ext FORCE``.
    Expected: exit 0; ``DATADIR/db/ext.isl`` names the external path, which holds F's copy
    (nothing set aside is left beside it); the server holds ext and t as at F, before and
    after the rebuild. Before 2026-12-05 the copy stayed inside DATADIR without ``.isl``,
    and the rebuild crashed the server."""
    db = "inpl"
    base = tmp_path / "server"
    outside = tmp_path / "outside"
    outside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            external_tables(cur, db, outside, 3000, inside=True)
            taken = src.run("backup", "run", POLICY, "--full", "--json")
            expected = table_state(c, db)
            cur.execute(f"UPDATE {db}.ext SET v = 'later'")
            cur.execute(f"INSERT INTO {db}.t VALUES (3001, 'later')")
        external = outside / db / "ext.ibd"
        live = external.read_bytes()
        src.run("restore", taken, "--datadir", str(base), "--force", "--owner", OWNER)
        assert linked(base, f"{db}/ext") == external
        assert external.read_bytes() != live, "the backup's copy replaced the datadir's own"
        assert sorted(p.name for p in external.parent.iterdir()) == ["ext.ibd"]
        with src.server() as s, connect_port(sandbox, s.port) as c:
            held = table_state(c, db)
            again = rebuilt_state(c, db, "ext")
        assert held == expected, differing(held, expected)
        assert again == expected, differing(again, expected)
    finally:
        cleanup(src)
