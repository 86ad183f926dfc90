"""The source probe behind the archiver's idle vouch (``datatier.mysql.binlog.quiet``),
against the sandbox's real MariaDB primary and replica: its bound is held back by a running
statement, and it says nothing without PROCESS or on a server that replicates."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest

from datatier.mysql.binlog.quiet import MARGIN, Probe, Prober
from datatier.mysql.connection import Endpoint, endpoint
from tests.integration.binlog_support import query
from tests.integration.conftest import SandboxHandle

USER = "dt_quiet_noproc"


def probe(ep: Endpoint) -> Probe:
    prober = Prober(ep)
    try:
        found = prober.probe()
    finally:
        prober.close()
    assert found is not None, "the probe failed"
    return found


def test_an_idle_primary_is_vouched_up_to_the_probe_less_the_margin(
    sandbox: SandboxHandle,
) -> None:
    ((file, pos, *_),) = query(sandbox.config, "primary", "SHOW MASTER STATUS")
    before = time.time()
    found = probe(endpoint(sandbox.config.mysql, "primary"))
    assert found.bound is not None, found.why
    assert before - MARGIN - 1 < found.bound <= time.time() - MARGIN + 0.5
    assert Probe(str(file), int(pos), None).reached(found.file, found.pos)  # read after
    assert not found.reached(found.file, found.pos - 1)


def probes_while(sandbox: SandboxHandle, statement: str, seconds: int) -> list[Probe]:
    """One prober: a probe before ``statement`` starts (in a thread), then one a second
    while it runs for ``seconds``; the probes, in order."""
    prober = Prober(endpoint(sandbox.config.mysql, "primary"))
    seen: list[Probe] = []
    try:
        first = prober.probe()
        assert first is not None and first.bound is not None, first
        seen.append(first)
        runner = threading.Thread(target=query, args=(sandbox.config, "primary", statement))
        runner.start()
        try:
            for _ in range(seconds):
                time.sleep(1)
                found = prober.probe()
                assert found is not None and runner.is_alive()
                seen.append(found)
        finally:
            runner.join()
    finally:
        prober.close()
    return seen


def test_a_running_statement_holds_the_bound_before_it_started(sandbox: SandboxHandle) -> None:
    """A statement running ~4 s (``SELECT SLEEP(7)``; an autocommit write would be stamped
    with its start) holds every later bound at or before the probe that saw it idle."""
    seen = probes_while(sandbox, "SELECT SLEEP(7)", 4)
    before = seen[0].bound
    assert before is not None
    assert all(p.bound is not None and p.bound <= before for p in seen[1:]), seen


def test_a_trigger_resetting_the_elapsed_time_does_not_move_the_bound(
    sandbox: SandboxHandle,
) -> None:
    """Review: a trigger's statements reset the thread's ``TIME_MS`` at each row while the
    binlog stamps the outer ``INSERT`` with its start. ``INSERT ... SELECT seq, SLEEP(1)``
    into a table whose ``AFTER INSERT`` trigger writes an audit row: every bound taken while
    it runs stays at or before the probe that saw the thread idle."""
    for sql in (
        "DROP DATABASE IF EXISTS dt_quiet_trg",
        "CREATE DATABASE dt_quiet_trg",
        "CREATE TABLE dt_quiet_trg.t (id INT PRIMARY KEY, s INT)",
        "CREATE TABLE dt_quiet_trg.audit (id INT)",
        "CREATE TRIGGER dt_quiet_trg.t_ai AFTER INSERT ON dt_quiet_trg.t FOR EACH ROW "
        "INSERT INTO dt_quiet_trg.audit VALUES (NEW.id)",
    ):
        query(sandbox.config, "primary", sql)
    try:
        seen = probes_while(
            sandbox,
            "INSERT INTO dt_quiet_trg.t SELECT seq, SLEEP(1) FROM dt_quiet_trg.seq_1_to_8",
            5,
        )
    finally:
        query(sandbox.config, "primary", "DROP DATABASE IF EXISTS dt_quiet_trg")
    before = seen[0].bound
    assert before is not None
    assert all(p.bound is not None and p.bound <= before for p in seen[1:]), seen


def test_a_statement_running_before_the_first_probe_holds_every_bound(
    sandbox: SandboxHandle,
) -> None:
    """A connection's first probe cannot tell when an already running statement started
    (its elapsed time may have been reset): no bound until it ends, and why."""
    sleeper = threading.Thread(target=query, args=(sandbox.config, "primary", "SELECT SLEEP(4)"))
    sleeper.start()
    try:
        time.sleep(1)
        found = probe(endpoint(sandbox.config.mysql, "primary"))
        assert sleeper.is_alive()
    finally:
        sleeper.join()
    assert found.bound is None
    assert "before the archiver connected" in found.why


@pytest.fixture
def no_process(sandbox: SandboxHandle) -> Iterator[Endpoint]:
    query(sandbox.config, "primary", f"DROP USER IF EXISTS '{USER}'@'%'")
    query(sandbox.config, "primary", f"CREATE USER '{USER}'@'%' IDENTIFIED BY 'pw-quiet'")
    query(
        sandbox.config, "primary", f"GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO '{USER}'@'%'"
    )
    try:
        yield dataclasses.replace(
            endpoint(sandbox.config.mysql, "primary"), user=USER, password="pw-quiet"
        )
    finally:
        query(sandbox.config, "primary", f"DROP USER IF EXISTS '{USER}'@'%'")


def test_without_process_the_probe_vouches_nothing(no_process: Endpoint) -> None:
    """Without PROCESS the process list shows only the account's own sessions: another
    session's long statement would be invisible, so no bound is given (and why)."""
    found = probe(no_process)
    assert found.bound is None
    assert "PROCESS" in found.why
    assert found.file and found.pos >= 4


def test_a_server_that_replicates_is_vouched_nothing(sandbox: SandboxHandle) -> None:
    """A replica's appliers write its source's transactions with their own (older)
    timestamps: no bound, whatever its read_only."""
    found = probe(endpoint(sandbox.config.mysql, "replica1"))
    assert found.bound is None
    assert "replicates" in found.why
