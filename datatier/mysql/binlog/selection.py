"""What a point-in-time replay restores, and which statements of a replay restoring only some
tables are kept (:func:`tables_kept`); :class:`ReplayRefused`, the refusal of what cannot be
replayed as asked. The translation itself: :mod:`datatier.mysql.binlog.translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from datatier.errors import UsageError
from datatier.mysql.binlog.multibyte import Charset
from datatier.mysql.binlog.qualified import MODE_NO_BACKSLASH_ESCAPES
from datatier.mysql.binlog.reads import read_tables, view_names
from datatier.mysql.binlog.sqlrefs import (
    DATA_VERBS,
    Scan,
    drops_trigger,
    scan,
    statement_tables,
    written_table,
)
from datatier.mysql.lettercase import name_key

DATA_VERBS_B = {v.encode() for v in DATA_VERBS}
ANSI_QUOTES = 0x4  # sql_mode bit: "..." quotes an identifier


class ReplayRefused(UsageError):
    """A transaction in the replay range cannot be replayed as asked."""


@dataclass(frozen=True)
class Selection:
    """What the restore holds: source databases (renamed as ``renames`` says); for a
    ``--tables`` restore, exactly these tables; for a policy that backs up only some tables
    of its databases, those ``includes`` says yes to (tables created later too).

    With ``fold`` (the server's ``lower_case_table_names`` is 1 or 2) names are compared
    lower-cased: every name here is held lower-cased (:meth:`folded`), ``includes`` is
    asked with lower-cased names, and statements are scanned folded.

    ``lowered`` (folded selections only) is for a source storing names lower-cased
    (``lower_case_table_names=1``) replayed into a target comparing them as spelled: the
    restored tables' names, which replayed statements spell lower-cased, as they do the
    restored databases and the tables the replay creates (see
    :class:`~datatier.mysql.binlog.translate.Translator`); None: names as spelled."""

    databases: frozenset[str]
    renames: dict[str, str] = field(default_factory=dict)
    tables: frozenset[tuple[str, str]] | None = None
    known_databases: frozenset[str] = frozenset()
    includes: Callable[[str, str], bool] | None = None
    fold: bool = False
    lowered: frozenset[str] | None = None

    def folded(self, fold: bool) -> Selection:
        """This selection with its names as a server folding them (``fold``) compares
        them; itself when ``fold`` is False (names are case-sensitive there). ``includes``
        is kept: the caller gives one that takes lower-cased names."""
        if not fold:
            return self
        return replace(
            self,
            databases=frozenset(name_key(d, True) for d in self.databases),
            renames={name_key(s, True): d for s, d in self.renames.items()},
            tables=None
            if self.tables is None
            else frozenset((name_key(d, True), name_key(t, True)) for d, t in self.tables),
            known_databases=frozenset(name_key(d, True) for d in self.known_databases),
            fold=True,
        )

    def scan(
        self, text: str, sql_mode: int | None, space: str = "", charset: Charset | None = None
    ) -> Scan:
        """A statement's names (:func:`~datatier.mysql.binlog.sqlrefs.scan`) as this
        selection compares them, read under the statement's ``sql_mode`` (``space``: one
        more whitespace character; ``charset``: the one it is read in, byte for byte)."""
        mode = sql_mode or 0
        return scan(
            text,
            ansi_quotes=bool(mode & ANSI_QUOTES),
            escapes=not mode & MODE_NO_BACKSLASH_ESCAPES,
            fold=self.fold,
            space=space,
            charset=charset,
        )

    def key(self, name: str) -> str:
        """A database name (a statement's default database) as compared here."""
        return name_key(name, self.fold)

    @property
    def by_table(self) -> bool:
        """Whether only some tables of the databases are restored."""
        return self.tables is not None or self.includes is not None

    def holds(self, database: str, table: str) -> bool:
        """Whether ``database.table`` (source names) is restored."""
        database, table = name_key(database, self.fold), name_key(table, self.fold)
        if database not in self.databases:
            return False
        if self.tables is not None and (database, table) not in self.tables:
            return False
        return self.includes is None or self.includes(database, table)

    def target_of(self, database: str, table: str) -> str | None:
        """The target database of rows of ``database.table``, None if not restored."""
        if not self.holds(database, table):
            return None
        return self.renames.get(name_key(database, self.fold), database)


def tables_kept(selection: Selection, found: Scan, default: str, where: str) -> bool:
    """Whether a statement (``found``, run in database ``default``) of a replay restoring
    only some tables (``--tables``, a policy's ``[source] tables``/``exclude_tables``) is
    replayed: a table or view DDL when it acts on restored tables (views) only;
    ReplayRefused (exit 2) for one acting on restored and other tables, one making a
    restored table or view from one not restored
    (:func:`~datatier.mysql.binlog.reads.read_tables`), or a data change that cannot be
    limited."""
    if selection.tables is not None and drops_trigger(found):
        raise ReplayRefused(
            f"DROP TRIGGER {where} names no table, so it cannot be limited to the tables "
            "--tables restores (restore whole databases, or the backup alone)"
        )
    views = view_names(found, default)
    tables = views if views is not None else statement_tables(found, default)
    if tables is None and selection.tables is None:
        # a policy's table selection (no --tables): other DDL (triggers, routines,
        # events, sequences, the database) replays as for whole databases;
        # a data change replays when the one table it writes is restored
        if not found.words or found.words[0].encode() not in DATA_VERBS_B:
            return True
        written = written_table(found, default)
        if written is not None:
            return selection.holds(*written)
    if tables is None:
        if found.words and found.words[0].encode() in DATA_VERBS_B:
            raise ReplayRefused(
                f"statement-format change {where} cannot be limited to the restored tables "
                "(--tables, or the policy's [source] tables; restore whole databases, or "
                "use binlog_format=ROW)"
            )
        return False
    inside = [t for t in tables if selection.holds(*t)]
    if inside and len(inside) != len(tables):
        raise ReplayRefused(f"statement {where} acts on restored and other tables")
    if inside and (missing := [t for t in read_tables(found, default) if not selection.holds(*t)]):
        raise ReplayRefused(
            f"statement {where} makes a restored table or view from "
            f"{', '.join(f'{d}.{t}' for d, t in missing)}, which the restore leaves out: "
            "not replayable (restore that too, or whole databases)"
        )
    return bool(inside)
