"""Foreign-key names a restore declares, and the target's keys a forced restore keeps that
already carry one of them.

InnoDB names foreign keys once per database, compared ASCII case-blind (``Fk_X`` and
``fk_x`` clash, ``fk_é`` and ``FK_É`` do not; a key declared without a name is
``<table>_ibfk_<n>``, and ``FOREIGN KEY idx (...)`` without ``CONSTRAINT`` is named ``idx``;
all checked on MariaDB 10.11). Renaming a table takes its keys along. A forced restore
leaves some tables of the target as they are (created after the backup or the target
moment, left out by its policy); one renamed after the backup still holds the key names of
the table the restore recreates, whose ``CREATE TABLE`` then fails (errno 121) after part
of the backup was loaded. :func:`declared_foreign_keys` reads the names a ``CREATE`` or
``ALTER TABLE`` declares; :func:`kept_foreign_keys` lists the target's keys on tables the
restore does not replace; :func:`check_kept_foreign_keys` refuses a clash (exit 2) before
anything changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from datatier.backup.manifest import ObjectRecord
from datatier.errors import UsageError
from datatier.mysql.binlog.created import declared_foreign_keys
from datatier.mysql.binlog.sqlrefs import Token, scan
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.labels import table_label
from datatier.mysql.lettercase import folds_names, name_key
from datatier.mysql.long_key_names import restorable_create
from datatier.mysql.staged_creates import staged_creates
from datatier.mysql.view_deps import TableName

GENERATED = "_ibfk_"
"""What the server puts between a table's name and a number to name a key declared
without one."""


@dataclass
class Declared:
    """The foreign keys a restore declares in one database: ``names`` given, and the tables
    (as the restore names them) declaring one the server names itself (``generated``)."""

    names: set[str] = field(default_factory=set)
    generated: set[str] = field(default_factory=set)

    def add(self, table: str, tokens: list[Token]) -> None:
        """The keys of a ``CREATE`` or ``ALTER TABLE`` of ``table`` scanned as ``tokens``."""
        names, unnamed = declared_foreign_keys(tokens)
        self.names |= names
        if unnamed:
            self.generated.add(table)

    def clashes(self, key: str) -> bool:
        """Whether a key named ``key`` would clash with one of these."""
        folded = _fold(key)
        if any(_fold(n) == folded for n in self.names):
            return True
        return any(folded.startswith(_fold(t + GENERATED)) for t in self.generated)


def staged_declared(
    objects: list[ObjectRecord],
    content: Callable[[str], Iterator[bytes]],
    restored: Collection[TableName],
    targets: Mapping[str, str],
) -> dict[str, Declared]:
    """Per target database (``targets``: source -> target), the foreign keys the
    ``restored`` tables (source names) of ``objects`` declare, read from their CREATE TABLE
    (bytes from ``content``; only definitions that mention a foreign key are parsed), as the
    restore creates them (:func:`~datatier.mysql.long_key_names.restorable_create`)."""
    declared: dict[str, Declared] = {}
    for (database, table), create in staged_creates(objects, content, _FOREIGN_KEY).items():
        if (database, table) in restored and database in targets:
            create, _ = restorable_create(create)  # as the restore will create it
            declared.setdefault(targets[database], Declared()).add(table, scan(create).tokens)
    return declared


_FOREIGN_KEY = re.compile(rb"FOREIGN KEY")
"""As the server writes every foreign key in SHOW CREATE TABLE."""


def _fold(name: str) -> bytes:
    """A key's name as InnoDB compares it: its bytes, ASCII letters lower-cased."""
    return name.encode("utf-8", "surrogateescape").lower()


@dataclass(frozen=True)
class KeptKey:
    """The target's foreign key ``name`` on ``table`` of ``database`` (target names)."""

    database: str
    table: str
    name: str


def kept_foreign_keys(
    target: Endpoint, databases: Iterable[str], replaced: Collection[tuple[str, str]]
) -> list[KeptKey]:
    """The foreign keys of ``databases`` on ``target`` whose tables are not ``replaced``
    ((database, table), target names, compared as the target compares table names): what a
    restore replacing those tables keeps. Reads only."""
    found: list[KeptKey] = []
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        gone = {(name_key(d, fold), name_key(t, fold)) for d, t in replaced}
        for database in sorted(set(databases)):
            cur.execute(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
                (database,),
            )
            key = name_key(database, fold)
            for schema, table, name in cur.fetchall():
                if name_key(str(schema), fold) != key:  # compared as the target does
                    continue
                if (key, name_key(str(table), fold)) not in gone:
                    found.append(KeptKey(database, str(table), str(name)))
    return sorted(found, key=lambda k: (k.database, k.table, k.name))


def check_kept_foreign_keys(
    kept: Iterable[KeptKey], declared: Mapping[str, Declared], why: str
) -> None:
    """UsageError (exit 2) naming each ``kept`` key whose name clashes with one the restore
    declares in its database (``declared``: target database -> :class:`Declared`); ``why``
    says why such tables are kept, for the message."""
    clashes = [k for k in kept if k.database in declared and declared[k.database].clashes(k.name)]
    if not clashes:
        return
    listed = ", ".join(f"{k.name!r} of {table_label(k.database, k.table)}" for k in clashes)
    raise UsageError(
        f"--force keeps table(s) holding foreign keys named like ones the restore creates "
        f"({why}): {listed}; InnoDB names foreign keys once per database, so recreating "
        "them would fail after part of the restore was loaded",
        hint="drop those keys (ALTER TABLE ... DROP FOREIGN KEY name) or the tables, or "
        "restore under --rename into another database; nothing was changed",
    )
