"""Database and table names as ``restore --tables`` and ``--databases`` take them.

Names may hold any character, so an entry may quote either part MySQL style: ``db.t``,
```my,db`.`t.1```, ```a.b`.c`` (a doubled backtick inside quotes is one backtick). Commas
outside backticks separate entries; whitespace around an entry is dropped. A backtick
opens a quote only where a part starts (elsewhere it is part of the name).

An unquoted ``a.b.c`` can mean `a`.`b.c` or `a.b`.`c`: :func:`parse_tables` keeps every
reading, :func:`resolve_tables` picks the one the backup holds and refuses (UsageError)
an entry more than one of its tables fits. Everything after parsing is a (database,
table) pair; nothing compares ``db.table`` strings.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datatier.errors import UsageError

if TYPE_CHECKING:
    from datatier.backup.manifest import Manifest

TableName = tuple[str, str]
"""(database, table)."""

QUOTE_HINT = "quote names holding a dot, comma or backtick with backticks: `my,db`.`t.1`"
RENAME_HINT = "--rename SRC=DST; quote a name holding = with backticks: --rename '`e=q`=new'"


@dataclass(frozen=True)
class TableEntry:
    """One ``--tables`` entry: ``text`` as given, and the (database, table) pairs it can
    mean (one when a part is quoted; every split at a dot when it is not)."""

    text: str
    readings: tuple[TableName, ...]


@dataclass(frozen=True)
class _Piece:
    quoted: bool
    text: str


def _entries(value: str, option: str) -> list[list[_Piece]]:
    """``value`` split at the commas outside backticks, each entry as its quoted names and
    the bare text between them (outer whitespace dropped; empty entries left out)."""
    entries: list[list[_Piece]] = []
    pieces: list[_Piece] = []
    bare: list[str] = []

    def flush_bare() -> None:
        if bare:
            pieces.append(_Piece(False, "".join(bare)))
            bare.clear()

    def end_entry() -> None:
        flush_bare()
        if pieces and not pieces[0].quoted:
            pieces[0] = _Piece(False, pieces[0].text.lstrip())
        if pieces and not pieces[-1].quoted:
            pieces[-1] = _Piece(False, pieces[-1].text.rstrip())
        kept = [p for p in pieces if p.quoted or p.text]
        if kept:
            entries.append(kept)
        pieces.clear()

    i = 0
    while i < len(value):
        char = value[i]
        text = "".join(bare)
        if char == ",":
            end_entry()
            i += 1
        elif char == "`" and ((not pieces and not text.strip()) or text.endswith(".")):
            close = i + 1
            name: list[str] = []
            while True:
                if close >= len(value):
                    raise UsageError(f"{option} {value!r}: a backtick is not closed",
                                     hint=QUOTE_HINT)  # fmt: skip
                if value[close] == "`":
                    if value[close + 1 : close + 2] == "`":
                        name.append("`")
                        close += 2
                        continue
                    break
                name.append(value[close])
                close += 1
            if not pieces and not text.strip():
                bare.clear()  # whitespace before the entry
            flush_bare()
            pieces.append(_Piece(True, "".join(name)))
            i = close + 1
        else:
            bare.append(char)
            i += 1
    end_entry()
    for entry in entries:
        if any(p.quoted and not p.text for p in entry):
            raise UsageError(f"{option} {value!r}: an empty name (``)", hint=QUOTE_HINT)
    return entries


def _show_entry(entry: list[_Piece]) -> str:
    return "".join(quote(p.text) if p.quoted else p.text for p in entry)


def _table_entry(entry: list[_Piece], option: str) -> TableEntry:
    text = _show_entry(entry)
    shape = [p.quoted for p in entry]
    readings: list[TableName] = []
    if shape == [False]:
        name = entry[0].text
        readings = [
            (name[:i], name[i + 1 :])
            for i, char in enumerate(name)
            if char == "." and name[:i] and name[i + 1 :]
        ]
    elif shape == [True, False] and entry[1].text.startswith(".") and entry[1].text[1:]:
        readings = [(entry[0].text, entry[1].text[1:])]
    elif shape == [False, True] and entry[0].text.endswith(".") and entry[0].text[:-1]:
        readings = [(entry[0].text[:-1], entry[1].text)]
    elif shape == [True, False, True] and entry[1].text == ".":
        readings = [(entry[0].text, entry[2].text)]
    if not readings:
        raise UsageError(f"{option} {text!r}: expected DB.TABLE", hint=QUOTE_HINT)
    return TableEntry(text, tuple(readings))


def _none_named(option: str, values: tuple[str, ...], what: str) -> UsageError:
    """The refusal of an option given only empty values (``--tables ''``, ``--tables ,``):
    read as "no filter" it would select everything, the opposite of what was meant (an
    empty shell variable, say)."""
    given = ", ".join(repr(v) for v in values)
    return UsageError(
        f"{option} {given} names no {what}",
        hint=f"give at least one name, or leave {option} out to select every {what}",
    )


def parse_tables(values: Iterable[str], option: str = "--tables") -> tuple[TableEntry, ...]:
    """Every entry of the repeated, comma-separated ``values``, in order; UsageError (one
    line) for an entry that is not DB.TABLE, an unclosed backtick or an empty quoted name,
    and when values are given but hold no entry at all."""
    values = tuple(values)
    found = [_table_entry(e, option) for value in values for e in _entries(value, option)]
    if values and not found:
        raise _none_named(option, values, "table")
    return tuple(dict.fromkeys(found))


def parse_databases(values: Iterable[str], option: str = "--databases") -> tuple[str, ...]:
    """Every database name of the repeated, comma-separated ``values``, in order, once
    each; UsageError for an entry that is not one name, and when values are given but
    hold no name at all."""
    values = tuple(values)
    names: list[str] = []
    for value in values:
        for entry in _entries(value, option):
            if len(entry) != 1:
                raise UsageError(f"{option} {_show_entry(entry)!r}: expected one database "
                                 "name", hint=QUOTE_HINT)  # fmt: skip
            names.append(entry[0].text)
    if values and not names:
        raise _none_named(option, values, "database")
    return tuple(dict.fromkeys(names))


def resolve_tables(
    entries: Iterable[TableEntry], held: Collection[TableName], backup_id: str
) -> tuple[TableName, ...]:
    """The (database, table) pair each entry names: its one reading ``held`` (the
    backup's tables) has; UsageError naming the candidates when more than one fits. An
    entry that fits none gives its first reading (the caller reports it missing)."""
    pairs: list[TableName] = []
    for entry in entries:
        fits = [r for r in entry.readings if r in held]
        if len(fits) > 1:
            raise UsageError(
                f"--tables {entry.text!r} fits {len(fits)} tables of backup {backup_id}: "
                f"{', '.join(show(db, t, always=True) for db, t in fits)}",
                hint="name one with backticks, e.g. " + show(*fits[0], always=True),
            )
        pairs.append(fits[0] if fits else entry.readings[0])
    return tuple(dict.fromkeys(pairs))


def parse_rename(pair: str) -> tuple[str, str]:
    """``--rename SRC=DST`` -> (SRC, DST). Either side may be a backtick-quoted name
    (a backtick doubled inside), so a name holding ``=`` can be given: ``--rename "`e=q`=new"``.
    A plain SRC ends at the first ``=``; a plain DST is the rest. UsageError otherwise."""

    def quoted(start: int) -> tuple[str, int]:
        name: list[str] = []
        i = start + 1
        while i < len(pair):
            if pair[i] == "`":
                if pair[i + 1 : i + 2] != "`":
                    return "".join(name), i + 1
                i += 1
            name.append(pair[i])
            i += 1
        raise UsageError(f"--rename {pair!r}: a backtick is not closed", hint=RENAME_HINT)

    if pair.startswith("`"):
        src, end = quoted(0)
        if pair[end : end + 1] != "=":
            raise UsageError(f"--rename {pair!r}: expected = after `{src}`", hint=RENAME_HINT)
        rest = pair[end + 1 :]
    else:
        src, sep, rest = pair.partition("=")
        if not sep:
            raise UsageError(f"--rename {pair!r}: expected SRC=DST", hint=RENAME_HINT)
    dst = rest
    if rest.startswith("`"):
        dst, end = quoted(len(pair) - len(rest))
        if end != len(pair):
            raise UsageError(
                f"--rename {pair!r}: text after the quoted name `{dst}`", hint=RENAME_HINT
            )
    if not src or not dst:
        raise UsageError(f"--rename {pair!r}: expected SRC=DST (a name is empty)", hint=RENAME_HINT)
    return src, dst


def quote(name: str) -> str:
    """``name`` in backticks, a backtick in it doubled."""
    return "`" + name.replace("`", "``") + "`"


def _plain(name: str) -> bool:
    return bool(name) and name == name.strip() and not any(c in name for c in ".,`")


def show(database: str, table: str, *, always: bool = False) -> str:
    """``database.table`` as ``--tables`` takes it back: parts quoted when they need it
    (``always``: both)."""
    parts = (database, table)
    return ".".join(p if _plain(p) and not always else quote(p) for p in parts)


def held_tables(manifest: Manifest) -> frozenset[TableName]:
    """The (database, table) pairs ``manifest`` holds: its table records and its objects'
    tables (a bundle's sections included)."""
    held = {(t.database, t.name) for t in manifest.tables}
    held |= {(o.database, t) for o in manifest.objects if o.database for t in o.table_names()}
    return frozenset(held)
