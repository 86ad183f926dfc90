"""Refusing a restore whose names differ only by letter case where the target folds them,
and a point-in-time replay whose statements cannot be spelled for the target.

A backup of a server with ``lower_case_table_names=0`` can hold tables ``Orders`` and
``orders`` of one database, or databases ``Shop`` and ``shop``. A target with 1 or 2 takes
each pair for one name: every table's object starts with DROP TABLE IF EXISTS, so loading
the second would replace the first, rows and all, and two databases would be loaded into
one; a point-in-time replay matching the binlog's names as the target compares them (from a
base not recording its source's setting) would send the statements of both to one.
:func:`check_case_collisions` reads only the target's setting; the caller runs it before
anything is changed there. A point-in-time replay can also write tables created after the
base: :func:`check_replay_collisions`, after the scan of the binlog, before anything is
changed; :func:`check_replay_spelling` refuses a source storing names as created into a
target comparing them as spelled.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from datatier.backup.names import TableName, show
from datatier.errors import UsageError
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.lettercase import collisions, lower_case_table_names


def check_case_collisions(
    target: Endpoint,
    targets: Mapping[str, str],
    tables: Collection[TableName],
    *,
    replay: str | None = None,
) -> None:
    """UsageError (exit 2) naming every group of names the restore creates on ``target``
    that are distinct but one there: target databases (``targets``: source database ->
    target database, renames applied) and tables, views and sequences (``tables``: source
    (database, name) pairs, placed in their database's target). ``details`` carry
    ``lower_case_table_names`` and ``collisions`` (the groups, as source names).

    ``replay`` (the backup's ID) is for a point-in-time restore, given every name of its
    base backup, when the replay matches the binlog's names as the target compares them
    (the base does not record its source's setting): it cannot tell such names apart
    whatever ``--tables`` or ``--rename`` restore."""
    setting = _setting(target)
    groups = _groups(targets, tables) if setting else []
    if not groups:
        return
    said = _said(target, setting)
    listed = _listed(groups)
    if replay is None:
        message = f"{said}differing only by letter case for one, and the restore would "
        message += f"replace one with the other: {listed}"
        hint = (
            "restore one of each at a time (--tables DB.T, --databases DB), give one another "
            "name (--rename SRC=DST), or restore into a server with lower_case_table_names=0"
        )
    else:
        message = f"{said}differing only by letter case for one, so a point-in-time replay "
        message += f"cannot tell apart the statements of backup {replay}'s {listed}"
        hint = (
            "restore into a server with lower_case_table_names=0, or restore the backup "
            f"alone ({replay}, without --until) with --tables or --rename"
        )
    raise _refusal(message, hint, setting, groups)


def check_replay_collisions(
    target: Endpoint,
    targets: Mapping[str, str],
    restored: Collection[TableName],
    replayed: Collection[TableName],
) -> None:
    """UsageError (exit 2, details as :func:`check_case_collisions`) when a point-in-time
    replay writes tables (``replayed``: source (database, name) pairs, as the binlog
    spells them; those of other databases than ``targets``' are ignored) that are
    distinct at the source but one on ``target`` with each other or with a table the base
    restores (``restored``), each placed in its database's target (``targets``): a table
    created after the base beside `Orders` as `orders` would get the rows of both. Asked
    after the scan of the binlog, before anything is changed; a table dropped before the
    other was created is refused too (the scan does not follow what exists when)."""
    setting = _setting(target)
    written = {(db, name) for db, name in replayed if db in targets}
    groups = _groups(targets, {*restored, *written}) if setting else []
    if not groups:
        return
    message = (
        f"{_said(target, setting)}differing only by letter case for one, and the "
        f"point-in-time replay writes tables (created after the base backup) that would be "
        f"one there: {_listed(groups)}"
    )
    hint = (
        "restore into a server with lower_case_table_names=0, or up to before the second "
        "table was created (--until/--until-gtid), or choose one with --tables"
    )
    raise _refusal(message, hint, setting, groups)


def check_replay_spelling(target: Endpoint, source_setting: int) -> None:
    """UsageError (exit 2) for a point-in-time replay from a source with
    ``lower_case_table_names=2`` (names stored as created, compared lower-cased) into a
    target with 0, told by the caller: statements may spell `Orders` as `ORDERS`, which the
    target takes for another table, and the stored spelling cannot be told from them. (A
    source with 1 stored every name lower-cased: the replay spells them so.)"""
    if source_setting != 2:
        return
    message = (
        f"the backup's source has lower_case_table_names=2 (names stored as created, "
        f"compared lower-cased) and target {target.label} has 0: a point-in-time replay "
        "cannot tell how the source stored the names its statements spell"
    )
    hint = (
        "restore into a server with lower_case_table_names 1 or 2, or restore the backup "
        "alone (without --until)"
    )
    error = UsageError(message, hint=hint)
    error.details = {"lower_case_table_names": 0, "source_lower_case_table_names": 2}
    raise error


def _setting(target: Endpoint) -> int:
    with connect(target) as conn, conn.cursor() as cur:
        return lower_case_table_names(cur)


def _said(target: Endpoint, setting: int) -> str:
    return f"target {target.label} has lower_case_table_names={setting}: it takes names "


def _listed(groups: list[list[str]]) -> str:
    return "; ".join(" and ".join(group) for group in groups)


def _refusal(message: str, hint: str, setting: int, groups: list[list[str]]) -> UsageError:
    error = UsageError(message, hint=hint)
    error.details = {"lower_case_table_names": setting, "collisions": groups}
    return error


def _groups(targets: Mapping[str, str], tables: Collection[TableName]) -> list[list[str]]:
    """The colliding groups of target databases, then of tables (as source names)."""
    source_of = {dest: source for source, dest in targets.items()}  # one each (targets())
    placed = {(targets[db], name): (db, name) for db, name in tables}
    databases = [(db,) for db in sorted(source_of)]
    groups = [
        [_database_label(source_of[dest], dest) for (dest,) in group]
        for group in collisions(databases, True)
    ]
    groups += [
        [_table_label(placed[(dest, name)], dest) for dest, name in group]
        for group in collisions(list(placed), True)
    ]
    return groups


def _database_label(source: str, dest: str) -> str:
    return source if source == dest else f"{source} (as {dest})"


def _table_label(source: TableName, dest: str) -> str:
    db, name = source
    return show(db, name) if db == dest else f"{show(db, name)} (as {show(dest, name)})"
