"""Events backed up from a replica, restored with the status they have on the primary.

A replica holds every event it replicated as ``SLAVESIDE_DISABLED`` (``DISABLE ON SLAVE``),
whether the primary has it ENABLED or DISABLED, so a backup read there would restore every
event disabled, silently. :func:`resolve_on_primary` asks the configured primary for the
status of each such event; :func:`status_statement` is the ``ALTER EVENT`` a restore runs
right after the ``CREATE EVENT`` to give that status back. It names the event's definer:
an ``ALTER EVENT`` without one makes the restoring account the definer. An event the
primary does not have, or every event when the primary cannot be read, keeps ``DISABLE ON
SLAVE``; the caller is told which (to warn).
"""

from __future__ import annotations

from dataclasses import replace

import pymysql

from datatier.errors import ServiceUnavailable
from datatier.mysql.catalogue import Definition
from datatier.mysql.connection import Endpoint, connect, query_dicts
from datatier.mysql.lettercase import apart
from datatier.mysql.sqltext import ident, string_literal

REPLICATED = "SLAVESIDE_DISABLED"
CLAUSES = {"ENABLED": "ENABLE", "DISABLED": "DISABLE"}


def resolve_on_primary(
    events: list[Definition], primary: Endpoint | None
) -> tuple[list[Definition], list[str]]:
    """``events`` (read on a replica) with ``primary_status`` set from ``primary`` for
    those the replica holds as replicated; and ``db.name`` of those left as they are."""
    pending = [e for e in events if e.status == REPLICATED]
    if not pending:
        return events, []
    found: dict[tuple[str, str], str] = {}
    if primary is not None:
        try:
            with connect(primary) as conn:
                for batch in apart(sorted({e.database for e in pending})):  # see lettercase
                    marks = ", ".join(["%s"] * len(batch))
                    for row in query_dicts(
                        conn,
                        "SELECT EVENT_SCHEMA, EVENT_NAME, STATUS FROM information_schema.EVENTS "
                        f"WHERE EVENT_SCHEMA IN ({marks})",
                        batch,
                    ):
                        found[(row["EVENT_SCHEMA"], row["EVENT_NAME"])] = str(row["STATUS"])
        except (ServiceUnavailable, pymysql.MySQLError):  # not worth failing the backup
            found = {}
    resolved = [
        replace(e, primary_status=found.get((e.database, e.name))) if e.status == REPLICATED else e
        for e in events
    ]
    unknown = [
        f"{e.database}.{e.name}" for e in resolved if e.status == REPLICATED and not _known(e)
    ]
    return resolved, unknown


def _known(event: Definition) -> bool:
    return event.primary_status in CLAUSES


def status_statement(event: Definition) -> str | None:
    """``ALTER DEFINER=... EVENT name ENABLE|DISABLE`` giving ``event`` its status on the
    primary; None when there is none to give (not read on a replica, or not known)."""
    if event.kind != "event" or not _known(event) or not event.definer:
        return None
    assert event.primary_status is not None
    user, _, host = event.definer.rpartition("@")
    definer = f"{string_literal(user)}@{string_literal(host)}"
    return f"ALTER DEFINER={definer} EVENT {ident(event.name)} {CLAUSES[event.primary_status]}"
