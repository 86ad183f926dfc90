"""The restore claim's watcher (:mod:`datatier.mysql.claim`) on the real primary: a claim
whose lock session is killed is lost at once, runs its hooks (the PITR replay's, which kill
the replay connection), refuses writes, and ends its block with ClaimLost (exit 1)
carrying what the failure it replaces said; a held claim ends promptly and frees its locks.
"""

from __future__ import annotations

import threading
import time

import pytest

from datatier.errors import ExitCode, OperationFailed
from datatier.mysql.binlog.applier import Applier
from datatier.mysql.claim import BEAT, ClaimLost, claim_databases, lock_name
from datatier.mysql.connection import Endpoint, endpoint
from datatier.mysql.interrupt import Interrupter
from tests.integration.conftest import SandboxHandle, wait_for

DB = "claim watch`;数据"


@pytest.fixture
def primary(sandbox: SandboxHandle) -> Endpoint:
    return endpoint(sandbox.config.mysql, "primary")


def holder(sandbox: SandboxHandle) -> int | None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(DB),))
        row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def alive(sandbox: SandboxHandle, conn_id: int) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (conn_id,))
        row = cur.fetchone()
    return bool(row and row[0])


def kill(sandbox: SandboxHandle, conn_id: int, what: str = "") -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"KILL {what} {conn_id}")


def test_a_held_claim_ends_promptly_and_frees_its_lock(
    sandbox: SandboxHandle, primary: Endpoint
) -> None:
    with claim_databases(primary, [DB]) as claim:
        owner = holder(sandbox)
        assert owner is not None
        time.sleep(3 * BEAT)  # several beats: the session is kept busy, and keeps the lock
        assert holder(sandbox) == owner and claim.lost is None
        claim.check()
        ending = time.monotonic()
    assert time.monotonic() - ending < 2 * BEAT + 1, "the end waits one beat at most"
    assert holder(sandbox) is None


def test_the_end_of_a_claim_wakes_the_watcher_instead_of_waiting_out_its_sleep(
    sandbox: SandboxHandle, primary: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every restore ended by waiting for the watcher's SLEEP to run out (half a beat on
    average): the end interrupts it. With a 30-second beat the block must still end at
    once, the lock freed and the session left alive until its connection closes."""
    monkeypatch.setattr("datatier.mysql.claim.BEAT", 30.0)
    with claim_databases(primary, [DB]):
        owner = holder(sandbox)
        assert owner is not None
        wait_for(lambda: sleeping(sandbox, owner), timeout=10)
        ending = time.monotonic()
    assert time.monotonic() - ending < 10, "the end waited for the watcher's 30 s SLEEP"
    assert holder(sandbox) is None


def sleeping(sandbox: SandboxHandle, conn_id: int) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = %s", (conn_id,))
        row = cur.fetchone()
    return bool(row and row[0] and "SLEEP" in str(row[0]))


def test_a_killed_lock_session_loses_the_claim_runs_the_hooks_and_ends_the_block_with_it(
    sandbox: SandboxHandle, primary: Endpoint
) -> None:
    fired = threading.Event()
    with pytest.raises(ClaimLost) as caught, claim_databases(primary, [DB]) as claim:
        claim.on_lost(fired.set)
        owner = holder(sandbox)
        assert owner is not None
        kill(sandbox, owner)
        assert fired.wait(10), "the hook ran when the session was killed"
        assert claim.lost is not None
        with pytest.raises(ClaimLost):
            claim.check()
        late = threading.Event()
        claim.on_lost(late.set)
        assert late.is_set(), "a hook registered after the loss runs at once"
        failure = OperationFailed("a statement killed by the hook")
        failure.add_note("the restore was interrupted: it may be partly loaded")
        raise failure
    assert caught.value.exit_code == ExitCode.FAILED
    assert "was lost" in str(caught.value) and repr(DB) in str(caught.value)
    assert "may be partly loaded" in "".join(caught.value.__notes__), "the failure's notes kept"
    assert isinstance(caught.value.__cause__, OperationFailed)


def test_a_block_that_ended_well_still_fails_when_the_claim_was_lost(
    sandbox: SandboxHandle, primary: Endpoint
) -> None:
    with pytest.raises(ClaimLost), claim_databases(primary, [DB]) as claim:
        owner = holder(sandbox)
        assert owner is not None
        kill(sandbox, owner)
        wait_for(lambda: claim.lost is not None, timeout=10, step=0.05)


def test_kill_query_on_the_lock_session_keeps_the_claim(
    sandbox: SandboxHandle, primary: Endpoint
) -> None:
    with claim_databases(primary, [DB]) as claim:
        owner = holder(sandbox)
        assert owner is not None
        for _ in range(5):
            kill(sandbox, owner, "QUERY")
            time.sleep(0.05)
        time.sleep(2 * BEAT)
        assert claim.lost is None and holder(sandbox) == owner
    assert holder(sandbox) is None


def test_a_lost_claim_kills_a_replay_connection_registered_with_it(
    sandbox: SandboxHandle, primary: Endpoint
) -> None:
    """How the PITR restore stops its replay (datatier/binlog/restore.py): the replay's
    connection, registered with an Interrupter fired by the claim's hook, is killed, and
    the replay fails instead of writing on."""
    with pytest.raises(ClaimLost), claim_databases(primary, [DB]) as claim:
        applier = Applier(primary)
        replay: int = applier.conn.thread_id()  # type: ignore[no-untyped-call]
        stopper = Interrupter(primary)
        stopper.watch(replay)
        claim.on_lost(stopper.fire)
        owner = holder(sandbox)
        assert owner is not None
        kill(sandbox, owner)
        wait_for(lambda: not alive(sandbox, replay), timeout=10, step=0.05)
        with pytest.raises(OperationFailed):
            applier.add("0-1-1", [b"DO 1"])
            applier.close()
