"""The storage engines a restore's tables need, checked on the target before anything is
applied.

Contract: :func:`needed_engines` reads the ``ENGINE=`` option of each CREATE TABLE of a
restore's schema objects and framed bundles (the option after the column list, as
``SHOW CREATE TABLE`` writes it, so no name, default or comment can pose as one; a bundle
is parsed only when its bytes name an engine other than InnoDB). :func:`check_engines`
refuses (UsageError, exit 2) engines the target does not support
(``information_schema.ENGINES``, SUPPORT YES or DEFAULT), naming the tables: the restore
loads with NO_ENGINE_SUBSTITUTION (:data:`~datatier.mysql.sqltext.RESTORE_SQL_MODE`), so
their CREATE would fail half-way, and without it the server would make them InnoDB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping

from datatier.backup.manifest import ObjectRecord
from datatier.errors import UsageError
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.deferred_keys import table_options
from datatier.mysql.labels import table_label
from datatier.mysql.staged_creates import bundle_creates, mentions, schema_creates
from datatier.mysql.view_deps import TableName

_ENGINE = re.compile(r"\) ENGINE=(\w+)")
_OTHER_ENGINE = re.compile(rb"\) ENGINE=(?!InnoDB\b)\w+")


def needed_engines(
    objects: list[ObjectRecord],
    content: Callable[[str], Iterator[bytes]],
    restored: Collection[TableName],
) -> dict[str, set[TableName]]:
    """Per engine (as written), the tables (source names) of ``objects`` created in it,
    of those ``restored`` (a bundle also holds tables a ``--tables`` restore leaves out)."""
    found: dict[str, set[TableName]] = {}

    def note(name: TableName, create: str) -> None:
        if name not in restored:
            return
        options = table_options(create)
        match = _ENGINE.match(options) if options is not None else None
        if match:
            found.setdefault(match.group(1), set()).add(name)

    for record in objects:
        if record.database is None:
            continue
        if record.kind == "schema" and record.table is not None:
            for create in schema_creates(b"".join(content(record.key))):
                note((record.database, record.table), create)
        elif record.kind == "bundle" and mentions(content(record.key), _OTHER_ENGINE):
            for name, create in bundle_creates(record, content(record.key)):
                note(name, create)
    return found


def check_engines(
    target: Endpoint, needed: Mapping[str, set[TableName]], targets: Mapping[str, str]
) -> None:
    """UsageError (exit 2) naming each table of ``needed`` whose engine ``target`` lacks
    (``targets`` maps source databases to the target's)."""
    if not needed:
        return
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ENGINE FROM information_schema.ENGINES WHERE SUPPORT IN ('YES', 'DEFAULT')"
        )
        supported = {str(row[0]).upper() for row in cur.fetchall()}
    missing = {e: tables for e, tables in needed.items() if e.upper() not in supported}
    if not missing:
        return
    listed = "; ".join(
        f"{engine}: "
        + ", ".join(table_label(targets.get(db, db), t) for db, t in sorted(tables)[:5])
        + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        for engine, tables in sorted(missing.items())
    )
    raise UsageError(
        f"target {target.label} lacks the storage engine of tables the backup holds ({listed})",
        hint="install the engine's plugin on the target (INSTALL SONAME ...), restore to a "
        "server that has it, or leave those tables out with --tables; a restore never puts "
        "another engine in its place. Nothing was changed",
    )
