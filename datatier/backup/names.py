"""Database and table names as ``restore --tables`` and ``--databases`` take them.

Names may hold any character, so an entry may quote either part MySQL style: ``db.t``,
```my,db`.`t.1```, ```a.b`.c`` (a doubled backtick inside quotes is one backtick). Commas
outside backticks separate entries. A backtick opens a quote only where a part starts
(elsewhere it is part of the name). A quoted part is taken exactly.

An unquoted ``a.b.c`` can mean `a`.`b.c` or `a.b`.`c`: :func:`parse_tables` keeps every
reading, :func:`resolve_tables` picks the one the backup holds and refuses (UsageError)
an entry more than one of its tables fits. Blanks at an entry's ends (ASCII spaces, tabs
and line breaks, as in ``a.t, b.t``; not a no-break or other Unicode space, which names
may hold) are read both ways: ``' sp.t'`` means `sp`.`t` or ` sp`.`t`, whichever the
backup holds, and is refused when it holds both (:func:`resolve_databases` likewise), so
a name the backup holds is never taken for another. Everything after parsing is a
(database, table) pair; nothing compares ``db.table`` strings.
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


BLANKS = " \t\r\n"
"""What is dropped from an unquoted entry's ends (also read as written: module docstring)."""


@dataclass(frozen=True)
class TableEntry:
    """One ``--tables`` entry: ``text`` as given, the (database, table) pairs it can mean
    (one when a part is quoted; every split at a dot when it is not), and ``spaced``: those
    of the entry with the blanks at its ends kept, when it had any."""

    text: str
    readings: tuple[TableName, ...]
    spaced: tuple[TableName, ...] = ()

    @property
    def candidates(self) -> tuple[TableName, ...]:
        """Every pair the entry can name: ``readings``, then ``spaced``."""
        return tuple(dict.fromkeys(self.readings + self.spaced))


@dataclass(frozen=True)
class DatabaseEntry:
    """One ``--databases`` entry: ``text`` as given, ``name`` without blanks at its ends,
    ``spaced`` the name with them (None when it had none)."""

    text: str
    name: str
    spaced: str | None = None


@dataclass(frozen=True)
class _Piece:
    quoted: bool
    text: str


_Entry = tuple[list[_Piece], list[_Piece]]
"""An entry's pieces without the blanks at its ends, and with them."""


def _entries(value: str, option: str) -> list[_Entry]:
    """``value`` split at the commas outside backticks, each entry as its quoted names and
    the bare text between them, without and with the blanks at its ends (entries that are
    only blanks left out)."""
    entries: list[_Entry] = []
    pieces: list[_Piece] = []
    bare: list[str] = []

    def flush_bare() -> None:
        if bare:
            pieces.append(_Piece(False, "".join(bare)))
            bare.clear()

    def end_entry() -> None:
        flush_bare()
        spaced = list(pieces)
        if pieces and not pieces[0].quoted:
            pieces[0] = _Piece(False, pieces[0].text.lstrip(BLANKS))
        if pieces and not pieces[-1].quoted:
            pieces[-1] = _Piece(False, pieces[-1].text.rstrip(BLANKS))
        kept = [p for p in pieces if p.quoted or p.text]
        if kept:
            entries.append((kept, spaced))
        pieces.clear()

    i = 0
    while i < len(value):
        char = value[i]
        text = "".join(bare)
        if char == ",":
            end_entry()
            i += 1
        elif char == "`" and ((not pieces and not text.strip(BLANKS)) or text.endswith(".")):
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
            if not pieces and not text.strip(BLANKS):
                bare.clear()  # blanks before the entry
            flush_bare()
            pieces.append(_Piece(True, "".join(name)))
            i = close + 1
        else:
            bare.append(char)
            i += 1
    end_entry()
    for entry, _ in entries:
        if any(p.quoted and not p.text for p in entry):
            raise UsageError(f"{option} {value!r}: an empty name (``)", hint=QUOTE_HINT)
    return entries


def _show_entry(entry: list[_Piece]) -> str:
    return "".join(quote(p.text) if p.quoted else p.text for p in entry)


def _splits(entry: list[_Piece]) -> list[TableName]:
    """The (database, table) pairs ``entry`` can mean; none when it is not DB.TABLE."""
    shape = [p.quoted for p in entry]
    if shape == [False]:
        name = entry[0].text
        return [
            (name[:i], name[i + 1 :])
            for i, char in enumerate(name)
            if char == "." and name[:i] and name[i + 1 :]
        ]
    if shape == [True, False] and entry[1].text.startswith(".") and entry[1].text[1:]:
        return [(entry[0].text, entry[1].text[1:])]
    if shape == [False, True] and entry[0].text.endswith(".") and entry[0].text[:-1]:
        return [(entry[0].text[:-1], entry[1].text)]
    if shape == [True, False, True] and entry[1].text == ".":
        return [(entry[0].text, entry[2].text)]
    return []


def _table_entry(entry: _Entry, option: str) -> TableEntry:
    kept, spaced = entry
    text = _show_entry(spaced)
    readings = _splits(kept)
    if not readings:
        raise UsageError(f"{option} {text!r}: expected DB.TABLE", hint=QUOTE_HINT)
    others = [] if kept == spaced else [r for r in _splits(spaced) if r not in readings]
    return TableEntry(text, tuple(readings), tuple(others))


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


def parse_databases(
    values: Iterable[str], option: str = "--databases"
) -> tuple[DatabaseEntry, ...]:
    """Every database entry of the repeated, comma-separated ``values``, in order, once
    each; UsageError for an entry that is not one name, and when values are given but
    hold no name at all. :func:`resolve_databases` tells which name each means."""
    values = tuple(values)
    found: list[DatabaseEntry] = []
    for value in values:
        for kept, spaced in _entries(value, option):
            if len(kept) != 1:
                raise UsageError(f"{option} {_show_entry(kept)!r}: expected one database "
                                 "name", hint=QUOTE_HINT)  # fmt: skip
            name = kept[0].text
            if kept == spaced:
                found.append(DatabaseEntry(_show_entry(kept), name))
            else:
                other = "".join(p.text for p in spaced) if len(spaced) == 1 else None
                found.append(DatabaseEntry(_show_entry(spaced), name, other))
    if values and not found:
        raise _none_named(option, values, "database")
    return tuple(dict.fromkeys(found))


def _fits_one(option: str, text: str, shown: list[str], what: str, backup_id: str) -> None:
    """UsageError when more than one of the backup's ``what`` (``shown`` quoted) fits the
    entry ``text``."""
    if len(shown) > 1:
        raise UsageError(
            f"{option} {text!r} fits {len(shown)} {what} of backup {backup_id}: {', '.join(shown)}",
            hint=f"name one with backticks, e.g. {shown[0]} (outside backticks, blanks at "
            "an entry's ends are dropped)",
        )


def resolve_databases(
    entries: Iterable[DatabaseEntry], held: Collection[str], backup_id: str
) -> tuple[str, ...]:
    """The database each entry names: the one of its name with and without blanks at its
    ends ``held`` (the backup's databases) has; UsageError when it holds both. An entry
    that fits none gives its name (the caller reports it missing)."""
    names: list[str] = []
    for entry in entries:
        fits = [n for n in (entry.name, entry.spaced) if n is not None and n in held]
        _fits_one("--databases", entry.text, [quote(n) for n in fits], "databases", backup_id)
        names.append(fits[0] if fits else entry.name)
    return tuple(dict.fromkeys(names))


def resolve_tables(
    entries: Iterable[TableEntry], held: Collection[TableName], backup_id: str
) -> tuple[TableName, ...]:
    """The (database, table) pair each entry names: its one candidate ``held`` (the
    backup's tables) has; UsageError naming the candidates when more than one fits. An
    entry that fits none gives its first reading (the caller reports it missing)."""
    pairs: list[TableName] = []
    for entry in entries:
        fits = [r for r in entry.candidates if r in held]
        shown = [show(db, t, always=True) for db, t in fits]
        _fits_one("--tables", entry.text, shown, "tables", backup_id)
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


def left_out_tables(manifest: Manifest) -> frozenset[TableName]:
    """The (database, table) pairs the backup's policy left out when it was taken (its
    ``ignored_tables``, ``db.table`` text): every reading of each (``a.b.c`` may be
    `a`.`b.c` or `a.b`.`c`), so a caller asking "was this left out?" errs towards yes."""
    pairs = set()
    for entry in manifest.options.get("ignored_tables") or ():
        text = str(entry)
        pairs |= {(text[:i], text[i + 1 :]) for i, ch in enumerate(text) if ch == "."}
    return frozenset(pairs)
