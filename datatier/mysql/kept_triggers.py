"""Triggers of tables a forced restore keeps, named like one the restore creates.

Trigger names are the database's, not the table's: a table renamed after the backup takes
its trigger along, and the backup's ``DROP TRIGGER IF EXISTS trg`` then drops it from the
kept table before creating it on the restored one, while the plan says the kept table is
left as it is. :func:`check_kept_triggers` refuses that up front (exit 2).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from datatier.errors import UsageError
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.labels import table_label
from datatier.mysql.lettercase import folds_names, name_key


def check_kept_triggers(
    target: Endpoint,
    databases: Iterable[str],
    replaced: Collection[tuple[str, str]],
    created: Collection[tuple[str, str]],
    why: str,
) -> None:
    """UsageError (exit 2) naming each trigger of ``databases`` on ``target`` whose table
    the restore keeps (not ``replaced``) and whose name is one of the triggers it creates
    (``created``); (database, name) pairs in target names, compared as the target compares
    table names (trigger names live in files beside them). ``why`` says why such tables are
    kept. Reads only."""
    if not created:
        return
    clashes = []
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        gone = {(name_key(d, fold), name_key(t, fold)) for d, t in replaced}
        made = {(name_key(d, fold), name_key(n, fold)) for d, n in created}
        for database in sorted(set(databases)):
            cur.execute(
                "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE "
                "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                (database,),
            )
            key = name_key(database, fold)
            for schema, name, table in cur.fetchall():
                if name_key(str(schema), fold) != key or (key, name_key(str(table), fold)) in gone:
                    continue
                if (key, name_key(str(name), fold)) in made:
                    clashes.append((database, str(table), str(name)))
    if clashes:
        listed = ", ".join(f"trigger {n!r} of {table_label(d, t)}" for d, t, n in clashes)
        raise UsageError(
            f"--force keeps table(s) whose triggers are named like ones the restore creates "
            f"({why}): {listed}; trigger names are the database's, so the restore would move "
            "them to the restored table",
            hint="rename or drop those triggers (DROP TRIGGER, then CREATE TRIGGER under "
            "another name) or the tables, or restore under --rename into another database; "
            "nothing was changed",
        )
