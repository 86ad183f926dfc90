"""The target's event scheduler, for a point-in-time restore (reads only).

While ``@@event_scheduler`` is ON, an enabled event of a restored database runs between
the replayed transactions: its writes mix with those of the target moment, or take a key
(the next AUTO_INCREMENT id) that a replayed row then needs and the replay fails half-way.
:func:`scheduler_runs` says whether the scheduler runs; :func:`enabled_events` names the
events that would run; :func:`scheduler_refusal` is the refusal, saying what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from datatier.errors import UsageError
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.labels import table_label
from datatier.mysql.lettercase import folds_names, name_key


def scheduler_runs(target: Endpoint) -> bool:
    """Whether ``target``'s ``@@GLOBAL.event_scheduler`` is ON (OFF and DISABLED run no
    event)."""
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.event_scheduler")
        row = cur.fetchone()
    return row is not None and str(row[0]).upper() in ("ON", "1")


def enabled_events(target: Endpoint, databases: Iterable[str]) -> list[str]:
    """``db.name`` labels of the ENABLED events of ``target``'s ``databases`` (DISABLED
    and SLAVESIDE_DISABLED ones do not run), sorted."""
    found = []
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        for database in sorted(set(databases)):
            cur.execute(
                "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS "
                "WHERE EVENT_SCHEMA = %s AND STATUS = 'ENABLED'",
                (database,),
            )
            key = name_key(database, fold)
            found += [
                table_label(database, str(name))
                for schema, name in cur.fetchall()
                if name_key(str(schema), fold) == key
            ]
    return sorted(found)


def scheduler_refusal(target: Endpoint, found: list[str]) -> UsageError:
    """The refusal (exit 2) of a point-in-time restore into ``target``, whose scheduler
    runs, while events could run during the replay (``found``: why, one clause each). The
    scheduler is the user's to turn off: it holds every database's events."""
    return UsageError(
        f"target {target.label} runs the event scheduler (event_scheduler = ON) and events "
        f"would run in the restored databases during the replay: {'; '.join(found)}. An "
        "event writing between the replayed transactions mixes rows of its own time with "
        "those of the target moment, or takes a key a replayed row needs and the replay "
        "fails half-way",
        hint="SET GLOBAL event_scheduler = OFF on the target for the restore and ON again "
        "after it (every database's events wait meanwhile), or restore into a server that "
        "does not run the scheduler; nothing was changed",
    )
