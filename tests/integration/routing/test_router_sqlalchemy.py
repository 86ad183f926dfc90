"""The SQLAlchemy integration on the sandbox's real MariaDB servers: the ORM example
(``examples/sqlalchemy_notes.py``) runs through the router's pools; writes reach the
primary, reads a replica, and read-your-writes holds while replica2 cannot apply anything
(its table is locked)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from datatier.errors import UsageError
from datatier.replication.router import Router
from datatier.routing.sqlalchemy import session_factory
from examples.sqlalchemy_notes import DATABASE, Note, sessions, write_then_read
from tests.integration.conftest import SandboxHandle
from tests.integration.routing_support import running_monitor, wait_all_routable


@pytest.fixture(scope="module")
def router(sandbox: SandboxHandle) -> Iterator[Router]:
    with running_monitor(sandbox, DATABASE) as mon:
        r = Router(sandbox.config, mon, policy="round_robin", database=DATABASE)
        wait_all_routable(r)
        try:
            yield r
        finally:
            r.close()


def test_orm_writes_go_to_the_primary_and_reads_to_a_replica(
    sandbox: SandboxHandle, router: Router
) -> None:
    make = sessions(router)
    sandbox.wait_replicated()  # the table exists everywhere
    note, node = write_then_read(make, "first")
    assert note.body == "first" and node in ("replica1", "replica2", "primary")
    with make() as session:
        session.add(Note(body="second"))
        session.flush()
        assert session.routes[-1] == ("write", "primary")
        # Once the transaction wrote, its reads stay on the primary (they see the flush).
        found = session.scalars(select(Note).where(Note.body == "second")).one()
        assert found.body == "second" and session.routes[-1] == ("write", "primary")
        server = session.execute(text("SELECT @@server_id")).scalar_one()
        assert server == _server_id(sandbox, "primary")
        session.rollback()
    sandbox.wait_replicated()
    with make() as session:
        session.info["max_lag"] = 0.5
        server = session.execute(text("SELECT @@server_id")).scalar_one()
        assert session.routes[-1][0] == "read"
        assert server == _server_id(sandbox, session.routes[-1][1])
        assert session.routes[-1][1] in ("replica1", "replica2")
        assert session.scalars(select(Note).where(Note.body == "second")).all() == []
        session.info["intent"] = "write"
        assert session.execute(text("SELECT @@read_only")).scalar_one() == 0
    pools = {p.node: p for p in router.stats().pools}
    assert pools["primary"].opened_total <= 2  # the ORM's checkouts reused pooled connections
    assert pools["primary"].in_use == 0


def test_read_your_writes_while_a_replica_is_stuck(sandbox: SandboxHandle, router: Router) -> None:
    make = sessions(router)
    sandbox.wait_replicated()
    locker = sandbox.connect("replica2")
    try:
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES {DATABASE}.notes WRITE")
        used = set()
        for i in range(6):  # round robin: replica2 is asked too, and cannot have the row
            note, node = write_then_read(make, f"ryw-{i}")
            assert note.body == f"ryw-{i}"
            used.add(node)
        assert "replica2" not in used and "replica1" in used, used
        waits = router.stats().read_your_writes
        assert waits.get("reached", 0) >= 1 and waits.get("timeout", 0) >= 1
    finally:
        locker.close()
        sandbox.wait_replicated()


def test_bad_input(router: Router) -> None:
    with pytest.raises(UsageError, match="max_lag must be a finite number > 0"):
        session_factory(router, max_lag=0)
    make = sessions(router)
    with make() as session:
        session.info["intent"] = "delete"
        with pytest.raises(UsageError, match=r"intent'\] = 'delete': expected 'read' or 'write'"):
            session.execute(text("SELECT 1"))
    with make() as session:
        session.info["max_lag"] = -1
        with pytest.raises(UsageError, match="max_lag must be a finite number > 0"):
            session.execute(text("SELECT 1"))


def _server_id(sandbox: SandboxHandle, node: str) -> int:
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        return int(cur.fetchone()[0])
