"""``restore --force`` in place, on the source's host and datadir, of a physical backup
holding a table created with ``DATA DIRECTORY``: the table comes back inside the datadir
(the restore drops ``.isl`` links), and neither the restore nor the restored server writes
the external file the source left where it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backup.test_tester7_findings import primary_full_backup, scratch_source
from tests.integration.backup.test_tester8_findings import cleanup
from tests.integration.backup.test_tester9_findings import differing, external_tables
from tests.integration.conftest import SandboxHandle
from tests.integration.physical_support import OWNER, connect_port, table_state

POLICY = "inplace-phys"
SOURCE_POLICY = "inplace-src"


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary (the scratch server's
    start)."""
    yield from primary_full_backup(sandbox, SOURCE_POLICY)


def test_a_restore_in_place_brings_a_table_outside_the_datadir_inside(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Steps (a scratch ``mariadbd`` without binlog): ext (``DATA DIRECTORY`` outside the
    datadir) and t, 3,000 rows 'base' each; full F; ``UPDATE ext SET v = 'later'`` and a
    row more in t; server stopped; ``restore F --datadir DATADIR --force`` (the source's
    own); server started on it.
    Expected: exit 0; the server holds ext and t as at F, ext in ``DATADIR/db/ext.ibd``
    and no ``ext.isl``; the external file keeps its bytes (the later rows) throughout."""
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
        assert external.read_bytes() == live, "the restore wrote the source's external file"
        assert (base / db / "ext.ibd").is_file() and not (base / db / "ext.isl").exists()
        with src.server() as s, connect_port(sandbox, s.port) as c:
            held = table_state(c, db)
        assert external.read_bytes() == live, "the restored server wrote the external file"
        assert held == expected, differing(held, expected)
    finally:
        cleanup(src)
