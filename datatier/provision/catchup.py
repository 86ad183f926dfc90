"""A seeded replica catching up: follow its progress until it has applied everything the
primary had written when the wait began (the last step of both seeders of
:mod:`datatier.provision.seeding`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from datatier.errors import OperationFailed
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.replica_status import gtid_gap, read_replica_status
from datatier.mysql.replicate import binlog_gtid_pos, wait_for_gtid


@dataclass(frozen=True)
class CatchUp:
    """One look at a new replica catching up (what ``provision replica`` reports)."""

    seconds_behind: int | None
    gtid_gap: int | None
    io: str
    sql: str
    caught_up: bool


LagCallback = Callable[[CatchUp], None]


def wait_caught_up(
    primary: Endpoint,
    target: Endpoint,
    *,
    timeout: float,
    on_lag: LagCallback | None = None,
    poll: float = 1.0,
) -> float:
    """Seconds until ``target`` applied the primary's position as of the call; OperationFailed
    (exit 1) on a replication error or after ``timeout`` seconds."""
    started = time.monotonic()
    with connect(primary) as conn:
        goal = binlog_gtid_pos(conn)
    with connect(target) as conn:
        while True:
            status = read_replica_status(conn)
            if status is None:
                raise OperationFailed(f"{target.label} stopped being a replica")
            if status.last_sql_error or status.last_io_errno not in (0, 2003, 2013):
                raise OperationFailed(
                    f"replication on {target.label} failed: {status.last_error}",
                    hint="see `SHOW SLAVE STATUS` on the target",
                )
            done = wait_for_gtid(conn, goal, poll)
            if on_lag:
                on_lag(
                    CatchUp(
                        seconds_behind=status.seconds_behind,
                        gtid_gap=gtid_gap(goal, status.gtid_executed),
                        io=status.io_running,
                        sql=status.sql_running,
                        caught_up=done,
                    )
                )
            if done:
                return round(time.monotonic() - started, 3)
            if time.monotonic() - started > timeout:
                # exit 1, not 5: running the command again would be refused (a replica now)
                raise OperationFailed(
                    f"{target.label} is seeded and replicates but has not caught up within "
                    f"{timeout:.0f} s",
                    hint="it keeps catching up; watch it with `datatier replication status`",
                )
