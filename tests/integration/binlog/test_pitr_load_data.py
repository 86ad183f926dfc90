"""A ``LOAD DATA`` logged in statement format between the backup and the target: the
restore is rightly refused before anything changes (exit 2), but the message was
"transaction 0-1-744 holds binlog event type 17", which tells the on-call engineer neither
what the statement was nor what to do. A LOAD DATA into a database *outside* the restore is
refused the same way, so it blocks the point-in-time restore of every other database
(tester's regression tests, sandbox's real MariaDB and S3 server).
Now the refusal names LOAD DATA and the way out, and a LOAD DATA into another database
is left out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "t5load_db"
TARGET = "t5load_r"
OTHER = "t5load_other"
POLICY = "t5load"


@pytest.fixture
def pitr(
    request: pytest.FixtureRequest,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[str]:
    """The GTID after a statement-format LOAD DATA into ``request.param``.t (the restored
    database, or one outside the restore)."""
    with pitr_window(
        use_sandbox_config, POLICY, DB, TARGET, OTHER, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE DATABASE {OTHER}",
            *(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT)" for db in (DB, OTHER)),
        )
        window.backup()
        rows = tmp_path / "rows.csv"
        rows.write_text("".join(f"{i},v{i}\n" for i in range(1, 51)))
        with window.session(request.param, binlog_format="STATEMENT", local_infile=True) as cur:
            cur.execute(f"LOAD DATA LOCAL INFILE '{rows}' INTO TABLE t FIELDS TERMINATED BY ','")
        gtid = window.gtid()
        window.archive()
        yield gtid


@pytest.mark.parametrize("pitr", [DB], indirect=True)
def test_a_statement_format_load_data_is_refused_with_a_message_one_can_act_on(
    pitr: str,
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr, "--rename", f"{DB}={TARGET}"]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert "LOAD DATA" in err, err


@pytest.mark.parametrize("pitr", [OTHER], indirect=True)
def test_a_load_data_into_another_database_does_not_block_the_restore(
    pitr: str, use_sandbox_config: SandboxHandle
) -> None:
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr, "--rename", f"{DB}={TARGET}"]
    assert main(argv) == 0
    assert query(use_sandbox_config.config, "primary", f"SELECT COUNT(*) FROM {TARGET}.t") == [(0,)]
