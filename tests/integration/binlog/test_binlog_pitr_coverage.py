"""How far ``restore --until TIME`` trusts the binlog archive to be complete.

A time target past the archive's last event is only safe when the archive is known to hold
every transaction committed before it. Two ways it was not, each a silent wrong restore
(exit 0, a committed transaction missing), on the sandbox's real MariaDB and S3 server:

* the archiver reads a replica (``--node``, as the README suggests to spare the primary)
  whose SQL thread lags: it was caught up *with the replica* and claimed ``safe_until`` =
  now, while the primary had committed transactions the replica had not applied yet;
* the archive ended with an event of second S and the archiver stopped: the archive was
  taken as complete up to S+1, but the primary can commit more in second S after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "pitr_cov_db"
POLICY = "pitr_cov"


@pytest.fixture
def fresh(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PitrWindow]:
    """An empty archive and a database with one table, backed up."""
    with pitr_window(
        use_sandbox_config, POLICY, DB, "pitr_cov_r", monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, at DATETIME(6))",
            f"INSERT INTO {DB}.t VALUES (0, UTC_TIMESTAMP(6))",
        )
        window.backup()
        yield window


@pytest.fixture
def replica2_sql_stopped(use_sandbox_config: SandboxHandle) -> Iterator[None]:
    query(use_sandbox_config.config, "replica2", "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        query(use_sandbox_config.config, "replica2", "START SLAVE")
        use_sandbox_config.wait_replicated(60)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _restore_until(moment: float, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(
        ["restore", "--policy", POLICY, "--until", _iso(moment), "--rename", f"{DB}=pitr_cov_r"]
    )
    return code, capsys.readouterr().err


def _restored_ids(sandbox: SandboxHandle) -> list[int]:
    return [
        r[0] for r in query(sandbox.config, "primary", "SELECT id FROM pitr_cov_r.t ORDER BY 1")
    ]


def test_a_lagging_replica_source_does_not_vouch_for_the_primarys_commits(
    fresh: PitrWindow,
    replica2_sql_stopped: None,
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (1, UTC_TIMESTAMP(6))")
    committed = time.time()
    while time.time() < math.floor(committed) + 2.1:
        time.sleep(0.05)
    # replica2 has not applied row 1; an archiver reading it is caught up with replica2.
    fresh.archive("replica2")
    target = math.floor(time.time())  # row 1 was committed seconds before it
    code, err = _restore_until(target, capsys)
    if code == 0:
        assert _restored_ids(sandbox) == [0, 1], "row 1 was committed before the target"
    else:
        assert code == 2, err
        assert "beyond the binlog archive" in err


def test_a_stopped_archive_is_not_complete_up_to_the_end_of_its_last_second(
    fresh: PitrWindow, use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Row 1 is archived, the archiver stops, row 2 commits in the same second (retried
    until it does). ``--until`` the next second must replay row 2 or refuse."""
    sandbox = use_sandbox_config
    for attempt in range(1, 8):
        second = math.floor(time.time()) + 1
        while time.time() < second + 0.02:
            time.sleep(0.005)
        query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES ({attempt * 10}, NOW(6))")
        fresh.archive()
        query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES ({attempt * 10 + 1}, NOW(6))")
        if time.time() < second + 0.9:
            break
    else:
        pytest.fail("could not archive and commit again within one second")
    while time.time() < second + 1.05:
        time.sleep(0.05)
    code, err = _restore_until(second + 1, capsys)
    if code == 0:
        assert _restored_ids(sandbox)[-2:] == [attempt * 10, attempt * 10 + 1]
    else:
        assert code == 2, err
        assert "beyond the binlog archive" in err
