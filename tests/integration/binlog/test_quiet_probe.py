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


def test_a_running_statement_holds_the_bound_at_its_start(sandbox: SandboxHandle) -> None:
    """A statement that has run ~3 s (``SELECT SLEEP(6)``, which could as well be an
    autocommit write stamped with its start) holds the bound before it started."""
    started = time.time()
    sleeper = threading.Thread(target=query, args=(sandbox.config, "primary", "SELECT SLEEP(6)"))
    sleeper.start()
    try:
        time.sleep(3)
        found = probe(endpoint(sandbox.config.mysql, "primary"))
        assert sleeper.is_alive()
    finally:
        sleeper.join()
    assert found.bound is not None, found.why
    assert found.bound <= started - MARGIN + 0.5, (found.bound, started)
    assert found.bound > started - MARGIN - 2


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
