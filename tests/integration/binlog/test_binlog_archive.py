"""The binlog archiver against faults, on a sandbox of its own (real MariaDB, moto S3).

After each fault the archive must hold exactly the server's events: per archived byte
range the same events (positions and GTIDs, from SHOW BINLOG EVENTS), the GTID sequence
complete, nothing twice. Faults: SIGKILL of the archiver mid-file, binlog rotation, a
server restart, the S3 server stopped (SIGSTOP) for 30 s, a binlog purged before it was
archived (a named gap; a restore across it is refused), and a failover (primary stopped,
replica1 promoted, replica2 re-pointed). The sandbox is this module's own (ports
``DATATIER_TEST_PORT_BASE + 70``..``+77``): the failover leaves no primary behind.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import Config, load
from datatier.errors import DatatierError
from datatier.sandbox.supervisor import Sandbox
from tests.integration.binlog_support import (
    ArchiverProcess,
    Load,
    archived,
    binlog_env,
    check_segments_match_server,
    query,
    server_gtids,
    set_env,
    until,
    wait_archived,
)
from tests.integration.conftest import unavailable

SKIP = ("memcached", "memcached2", "mongo")
POLICY = "arch"


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, test_port_base: int) -> Iterator[dict[str, Any]]:
    base = int(os.environ.get("DATATIER_TEST_BINLOG_PORT_BASE") or test_port_base + 70)
    root = tmp_path_factory.mktemp("binlog-sandbox")
    sandbox = Sandbox(root, base)
    try:
        sandbox.up(skip=SKIP)
    except DatatierError as exc:
        sandbox.down()
        unavailable(f"binlog test sandbox did not start: {exc}")
    for name in (POLICY, "failover"):
        (root / "backups" / f"{name}.toml").write_text(
            'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["arch_db"]\n'
        )
    try:
        yield {"sandbox": sandbox, "root": root, "config_path": root / "datatier.toml"}
    finally:
        sandbox.down()


def config_of(own: dict[str, Any], policy: str = POLICY) -> Config:
    return load(str(own["config_path"]), environ=binlog_env(policy)).config


def archiver(own: dict[str, Any], policy: str = POLICY) -> ArchiverProcess:
    return ArchiverProcess(
        own["config_path"], binlog_env(policy), own["root"] / f"archiver-{policy}.log"
    )


def assert_archive_equals_server(
    config: Config, policy: str, node: str, server_id: int
) -> list[Any]:
    segments, events = archived(config, policy)
    mine = [e["gtid"] for e in events if e["gtid"]]
    assert len(mine) == len(set(mine)), "a transaction was archived twice"
    theirs = server_gtids(config, node)
    theirs = theirs[theirs.index(mine[0]) :]
    assert mine == theirs, "the archive's GTIDs differ from the server's binlog"
    assert check_segments_match_server(config, node, server_id, segments, events) > 0
    return segments


def restart_primary(sandbox: Sandbox) -> None:
    sandbox.backend.stop(["primary"])  # a clean shutdown (SIGTERM), then a start
    sandbox.up(skip=SKIP)


def test_kill_rotation_restart_and_s3_outage(own: dict[str, Any]) -> None:
    config = config_of(own)
    sandbox: Sandbox = own["sandbox"]
    load_ = Load(config, "primary", "arch_db", rate=150, tolerate_outages=True)
    load_.create()
    proc = archiver(own)
    load_.start()
    proc.start()
    try:
        time.sleep(2.5)
        assert proc.kill(signal.SIGKILL) == -signal.SIGKILL  # mid-file, a segment pending
        time.sleep(1.0)
        proc.start()
        time.sleep(2.0)
        query(config, "primary", "FLUSH BINARY LOGS")
        time.sleep(1.0)
        query(config, "primary", "FLUSH BINARY LOGS")
        time.sleep(2.0)
        restart_primary(sandbox)
        time.sleep(3.0)
        sandbox.fault("s3", "pause")  # the S3 server stopped (SIGSTOP / frozen) for 30 s
        try:
            time.sleep(30.0)
        finally:
            sandbox.fault("s3", "resume")
        time.sleep(3.0)
        load_.stop()
        wait_archived(config, POLICY, "primary", timeout=180)
    finally:
        proc.stop()
        load_.stop()
    assert load_.outages >= 1  # the restart was real
    segments = assert_archive_equals_server(config, POLICY, "primary", 1)
    files = {s.file for s in segments}
    assert len(files) >= 4  # two rotations and a restart
    assert any(s.file_complete for s in segments)
    assert not any(s.file_complete for s in segments if s.file == max(files))  # still written


def test_purged_binlog_is_a_gap_and_restore_across_it_is_refused(
    own: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_of(own)
    loaded = load(str(own["config_path"]), environ=binlog_env(POLICY))
    Load(config, "primary", "arch_db").create()  # this test's own data, whatever ran before
    position = str(query(config, "primary", "SELECT @@gtid_binlog_pos")[0][0])
    query(config, "replica1", "SELECT MASTER_GTID_WAIT(%s, 30)", (position,))
    proc = archiver(own)
    assert proc.once().returncode == 0
    run_backup(loaded, load_policy(loaded, POLICY))
    for i in range(3):
        query(config, "primary", f"INSERT INTO arch_db.orders (customer, amount) VALUES ({i}, 1)")
        query(config, "primary", "FLUSH BINARY LOGS")
    lost = str(query(config, "primary", "SELECT @@gtid_binlog_pos")[0][0])
    current = query(config, "primary", "SHOW MASTER STATUS")[0][0]

    def purged() -> bool:  # files still needed for crash recovery are kept for a moment
        query(config, "primary", f"PURGE BINARY LOGS TO '{current}'")
        return bool(query(config, "primary", "SHOW BINARY LOGS")[0][0] == current)

    until(purged, 30)
    query(config, "primary", "INSERT INTO arch_db.orders (customer, amount) VALUES (99, 2)")
    after = str(query(config, "primary", "SELECT @@gtid_binlog_pos")[0][0])
    result = proc.once()
    assert result.returncode == 1, result.stderr
    assert "GAP" in result.stderr and "purged" in result.stderr
    set_env(monkeypatch, {"DATATIER_CONFIG": str(own["config_path"]), **binlog_env(POLICY)})
    capsys.readouterr()
    assert main(["binlogs", "status"]) == 1
    out = capsys.readouterr()
    assert "purged" in out.out and lost in out.out
    before = query(config, "primary", "SHOW DATABASES")
    code = main(
        ["restore", "--policy", POLICY, "--until-gtid", after, "--rename", "arch_db=arch_r"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "gap" in err and "purged" in err
    assert query(config, "primary", "SHOW DATABASES") == before


def test_failover_continues_the_archive(own: dict[str, Any]) -> None:
    config = config_of(own, "failover")
    sandbox: Sandbox = own["sandbox"]
    proc = archiver(own, "failover")
    first = Load(config, "primary", "arch_db", rate=150, tolerate_outages=True)
    first.create()  # this test's own data, whatever ran before
    proc.start()
    first.start()
    try:
        time.sleep(3.0)
        sandbox.backend.stop(["primary"])
        first.stop()
        time.sleep(0.5)
        query(config, "replica1", "STOP SLAVE")
        query(config, "replica1", "RESET SLAVE ALL")
        query(config, "replica1", "SET GLOBAL read_only = 0")
        replica1 = config.mysql.nodes["replica1"]
        query(config, "replica2", "STOP SLAVE")
        query(
            config,
            "replica2",
            "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USE_GTID=slave_pos",
            (replica1.host, replica1.port),
        )
        query(config, "replica2", "START SLAVE")
        second = Load(config, "replica1", "arch_db", rate=150)
        second.start()
        time.sleep(3.0)
        second.stop()
        wait_archived(config, "failover", "replica1", timeout=120)
    finally:
        proc.stop()
        first.stop()
    segments = assert_archive_equals_server(config, "failover", "replica1", 2)
    assert {s.server_id for s in segments} == {1, 2}  # followed the new primary
    assert second.transactions > 100
    log = Path(own["root"] / "archiver-failover.log").read_text()
    assert '"node": "replica1"' in log
