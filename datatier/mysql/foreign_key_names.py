"""Foreign-key names a restore declares, and the target's keys a forced restore keeps that
already carry one of them.

InnoDB names foreign keys once per database, compared as latin1_swedish_ci over their
UTF-8 bytes (``Fk_X`` and ``fk_x`` clash, ``fk_가`` and ``fk_밀`` too, ``fk_é`` and ``FK_É``
do not: asked of the server, :mod:`datatier.mysql.name_weights`; a key declared without a
name is
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
from datatier.mysql.name_weights import FOREIGN_KEYS, weigh
from datatier.mysql.staged_creates import staged_creates
from datatier.mysql.view_deps import TableName

GENERATED = "_ibfk_"
"""What the server puts between a table's name and a number to name a key declared
without one."""


@dataclass
class Declared:
    """The foreign keys a restore declares in one database: (table, name) of those given a
    name, and the tables declaring one the server names itself (``generated``); tables as
    the restore names them."""

    keys: set[tuple[str, str]] = field(default_factory=set)
    generated: set[str] = field(default_factory=set)

    def add(self, table: str, tokens: list[Token]) -> None:
        """The keys of a ``CREATE`` or ``ALTER TABLE`` of ``table`` scanned as ``tokens``."""
        names, unnamed = declared_foreign_keys(tokens)
        self.keys |= {(table, n) for n in names}
        if unnamed:
            self.generated.add(table)

    def merge(self, other: Declared) -> None:
        self.keys |= other.keys
        self.generated |= other.generated

    def clash(
        self, key: str, weight: Callable[[str], bytes], *, besides: str | None = None
    ) -> str | None:
        """The table declaring a key that a key named ``key`` would clash with, names
        compared by their ``weight`` (:data:`~datatier.mysql.name_weights.FOREIGN_KEYS`),
        none of table ``besides`` (lower-cased as compared); None when none does."""
        mine = weight(key)
        for table, name in sorted(self.keys):
            if weight(name) == mine and table.lower() != besides:
                return table
        for table in sorted(self.generated):
            if mine.startswith(weight(table + GENERATED)) and table.lower() != besides:
                return table
        return None

    def weighed(self) -> set[str]:
        """The names :meth:`clash` weighs (a generated one's prefix)."""
        return {n for _, n in self.keys} | {t + GENERATED for t in self.generated}


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


@dataclass(frozen=True)
class KeptKey:
    """The target's foreign key ``name`` on ``table`` of ``database`` (target names)."""

    database: str
    table: str
    name: str


def target_foreign_keys(
    target: Endpoint, databases: Iterable[str], replaced: Collection[tuple[str, str]]
) -> tuple[list[KeptKey], list[KeptKey]]:
    """The foreign keys of ``databases`` on ``target``: those of tables a restore keeps
    and those of tables it ``replaced`` ((database, table), target names, compared as the
    target compares table names). Reads only."""
    kept: list[KeptKey] = []
    gone_keys: list[KeptKey] = []
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
                found = KeptKey(database, str(table), str(name))
                replaced_table = (key, name_key(str(table), fold)) in gone
                (gone_keys if replaced_table else kept).append(found)
    order = lambda k: (k.database, k.table, k.name)  # noqa: E731
    return sorted(kept, key=order), sorted(gone_keys, key=order)


def check_kept_foreign_keys(
    target: Endpoint,
    kept: Iterable[KeptKey],
    declared: Mapping[str, Declared],
    why: str,
    *,
    replaced: Iterable[KeptKey] = (),
) -> list[tuple[str, str]]:
    """UsageError (exit 2) naming each ``kept`` key whose name clashes, as ``target``
    compares key names, with one the restore declares in its database (``declared``:
    target database -> :class:`Declared`); ``why`` says why such tables are kept, for the
    message. Returns the tables of the ``replaced`` keys (those of tables the restore
    drops and creates again) that clash with a key another restored table declares: they
    must go before any table is created (tables load in parallel; two that swapped names
    since the backup each hold the other's keys). Reads only."""
    kept = [k for k in kept if k.database in declared]
    replaced = [k for k in replaced if k.database in declared]
    if not kept and not replaced:
        return []
    names = {k.name for k in (*kept, *replaced)}
    names |= {n for d in declared.values() for n in d.weighed()}
    with connect(target) as conn, conn.cursor() as cur:
        weights = weigh(cur, names, FOREIGN_KEYS)
    weight = weights.__getitem__
    clashes = [k for k in kept if declared[k.database].clash(k.name, weight) is not None]
    if clashes:
        listed = ", ".join(f"{k.name!r} of {table_label(k.database, k.table)}" for k in clashes)
        raise UsageError(
            f"--force keeps table(s) holding foreign keys named like ones the restore creates "
            f"({why}): {listed}; InnoDB names foreign keys once per database, so recreating "
            "them would fail after part of the restore was loaded",
            hint="drop those keys (ALTER TABLE ... DROP FOREIGN KEY name) or the tables, or "
            "restore under --rename into another database; nothing was changed",
        )
    early = {
        (k.database, k.table)
        for k in replaced
        if declared[k.database].clash(k.name, weight, besides=k.table.lower()) is not None
    }
    return sorted(early)
