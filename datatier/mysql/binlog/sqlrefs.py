"""Which databases and tables a replayed statement names, and the statement renamed.

A query event (a DDL, or statement-format DML) runs in its default database and may name
others as qualifiers (``db.t``, ``db.t.c``) or as the object of ``CREATE [OR REPLACE]/DROP/
ALTER DATABASE``. A replay with ``--rename`` must point those at the restored copy, and a
replay restricted to some databases must skip statements about others. :func:`scan`
tokenizes the statement the way MariaDB's lexer does for these purposes (whitespace, strings
under the statement's sql_mode, backticks, numbers, comments, with executable ``/*! */`` and
``/*M! */`` comments read as code: one the server skipped for its version it wrote to
the binlog as ``/* NNNNNN``, a plain comment) and reports every such name with its place, so
:func:`rewrite` changes names only where they are identifiers, never inside strings.
A two-part name ``a.b`` counts as a database reference only when ``a`` is a known database.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache

from datatier.mysql.binlog.multibyte import Charset
from datatier.mysql.binlog.qualified import qualified_tables
from datatier.mysql.lettercase import name_key
from datatier.mysql.sqltext import ident

IDENT_CHAR = "A-Za-z0-9_$\u0080-\U0010ffff"  # unquoted identifier characters (U+00A0 too)


@cache
def _token_pattern(escapes: bool, ansi_quotes: bool, space: str = "") -> re.Pattern[str]:
    """The tokenizer for a statement's sql_mode: backslash ``escapes`` in strings (no
    NO_BACKSLASH_ESCAPES); with ``ansi_quotes`` "..." is an identifier, never escaped.
    Whitespace is what MariaDB's lexer skips (ASCII space, \\t \\n \\v \\f \\r, and
    ``space``, a single-byte character set's no-break space), not Unicode spaces. A number
    (``1.50``, ``1e5``, ``1.e5``) is no name, but digits followed by identifier characters
    are (``12abc``), and so is anything right after ``name.``."""
    word = f"(?:(?!{re.escape(space)})[{IDENT_CHAR}])" if space else f"[{IDENT_CHAR}]"
    squote = r"[^'\\]|\\." if escapes else "[^']"
    dquote = r'[^"\\]|\\.' if escapes and not ansi_quotes else '[^"]'
    return re.compile(
        rf"""
        (?P<space>(?:[\ \t\n\r\f\v]{"|" + re.escape(space) if space else ""})+)
      | (?P<comment>(?:--(?=[\x00-\x20\x7f]|$)|\#)[^\n]*|/\*(?!!|M!).*?\*/)
      | (?P<exec_open>/\*M?!\d*)
      | (?P<exec_close>\*/)
      | (?P<squote>'(?:{squote}|'')*')
      | (?P<dquote>"(?:{dquote}|"")*")
      | (?P<backtick>`(?:[^`]|``)*`)
      | (?<![{IDENT_CHAR}`"]\.)
        (?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+(?!{word}))
      | (?P<word>{word}+)
      | (?P<dot>\.)
      | (?P<other>.)
        """,
        re.VERBOSE | re.DOTALL | re.ASCII,
    )


DATABASE_VERBS = {"CREATE", "DROP", "ALTER"}
DATA_VERBS = {"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"}
IDENTS = ("ident", "qident")


@dataclass(frozen=True)
class Name:
    """An identifier or keyword token: where it is, its value, whether it was quoted."""

    start: int
    end: int
    value: str
    quoted: bool = False


@dataclass(frozen=True)
class Scan:
    """What a statement names (see module docstring)."""

    words: list[str]  # leading keywords, upper-cased (CREATE, TABLE, ...)
    qualifiers: list[tuple[Name, int]]  # a name followed by '.', and how many parts follow
    database_objects: list[Name]  # CREATE/DROP/ALTER DATABASE <name>
    names: list[Name]  # every identifier, in order
    tokens: list[Token] = field(default_factory=list)  # (kind, start, end, value), no comments
    conditional: bool = False  # holds an executable comment (/*! */): code the server may skip
    default_database: bool = False  # ALTER DATABASE without a name: of the default database


Token = tuple[str, int, int, str]


def _tokens(
    text: str, escapes: bool, ansi_quotes: bool, fold: bool, space: str, charset: Charset | None
) -> tuple[list[Token], bool]:
    found = []
    conditional = False
    read = text if charset is None else charset.masked(text)
    for match in _token_pattern(escapes, ansi_quotes, space).finditer(read):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment", "exec_open", "exec_close"):
            conditional = conditional or kind == "exec_open"
            continue
        value = match.group()
        if charset is not None:  # the statement's own bytes, read as the server reads them
            value = text[match.start() : match.end()]
            if kind == "word":
                value = charset.decode(value)
        if kind == "dquote" and ansi_quotes:
            kind = "ident"
            value = _unquoted(value, '"', charset)
        elif kind == "backtick":
            kind = "qident"
            value = _unquoted(value, "`", charset)
        elif kind == "word":
            kind = "ident"
        if kind == "ident" and match.lastgroup == "dquote":
            kind = "qident"
        if fold and kind in IDENTS:
            value = name_key(value, True)
        found.append((kind, match.start(), match.end(), value))
    return found, conditional


def _unquoted(token: str, quote: str, charset: Charset | None) -> str:
    """A quoted name's value: ``token`` without its quotes, doubled quotes taken once."""
    if charset is None:
        return token[1:-1].replace(quote * 2, quote)
    return charset.unquoted(token[1:-1], quote)


def scan(
    text: str,
    *,
    ansi_quotes: bool = False,
    escapes: bool = True,
    fold: bool = False,
    space: str = "",
    charset: Charset | None = None,
) -> Scan:
    """Tokenize ``text`` (see module docstring) as the server does under an sql_mode with
    ANSI_QUOTES (``ansi_quotes``) and without NO_BACKSLASH_ESCAPES (``escapes``), ``space``
    one more whitespace character (see :func:`_token_pattern`); ``text`` read byte for
    byte (latin-1) when a ``charset`` is given, its characters and names as the server
    reads them (:class:`~datatier.mysql.binlog.multibyte.Charset`); with
    ``fold`` (a server whose ``lower_case_table_names`` folds names) every identifier's
    value lower-cased as the server lower-cases names
    (:func:`~datatier.mysql.lettercase.name_key`)."""
    tokens, conditional = _tokens(text, escapes, ansi_quotes, fold, space, charset)
    tokens = _statement_part(tokens)
    words = [v.upper() for k, _, _, v in tokens[:6] if k == "ident"]
    names = [Name(s, e, v, k == "qident") for k, s, e, v in tokens if k in IDENTS]
    qualifiers: list[tuple[Name, int]] = []
    i = 0
    while i < len(tokens):
        kind, start, end, value = tokens[i]
        if kind in IDENTS and (i == 0 or tokens[i - 1][0] != "dot"):
            parts = 1
            j = i
            while (
                j + 2 < len(tokens)
                and tokens[j + 1][0] == "dot"
                and (tokens[j + 2][0] in IDENTS or tokens[j + 2][3] == "*")
            ):
                parts += 1
                j += 2
            if parts > 1:
                qualifiers.append((Name(start, end, value, kind == "qident"), parts))
            i = j + 1
            continue
        i += 1
    database, target = _database_object(tokens)
    objects = [] if target is None else [target]
    return Scan(words, qualifiers, objects, names, tokens, conditional, database and not objects)


def _statement_part(tokens: list[Token]) -> list[Token]:
    """The tokens of the statement itself: ``SET STATEMENT var=value[, ...] FOR stmt``
    runs ``stmt`` (``SET STATEMENT foreign_key_checks=0 FOR DROP TABLE ...`` is a DROP
    TABLE; read as a SET, what it names went unseen); any other statement whole."""
    if len(tokens) < 3 or [t[3].upper() for t in tokens[:2] if t[0] == "ident"] != [
        "SET",
        "STATEMENT",
    ]:
        return tokens
    depth = 0
    for i, (kind, _, _, value) in enumerate(tokens):
        if kind == "other" and value == "(":
            depth += 1
        elif kind == "other" and value == ")":
            depth -= 1
        elif depth == 0 and kind == "ident" and value.upper() == "FOR":
            return tokens[i + 1 :]
    return tokens


# ALTER DATABASE's options: a reserved one right after DATABASE means no name (the default
# database); COMMENT and CHARSET are not reserved, so only when followed by "=" or a value
_NAMELESS = {"DEFAULT", "CHARACTER", "CHAR", "COLLATE"}
_OPTIONS = _NAMELESS | {"CHARSET", "COMMENT"}


def _database_object(tokens: list[Token]) -> tuple[bool, Name | None]:
    """Whether the statement is ``CREATE [OR REPLACE] DATABASE|SCHEMA [IF NOT EXISTS] db``,
    ``DROP DATABASE|SCHEMA [IF EXISTS] db`` or ``ALTER DATABASE|SCHEMA [db] ...``, and the
    database it names (None: ALTER DATABASE of the default database)."""

    def keyword(i: int) -> str | None:
        return tokens[i][3].upper() if i < len(tokens) and tokens[i][0] == "ident" else None

    verb = keyword(0)
    i = 1
    if verb == "CREATE" and keyword(1) == "OR" and keyword(2) == "REPLACE":
        i = 3
    if verb not in DATABASE_VERBS or keyword(i) not in ("DATABASE", "SCHEMA"):
        return False, None
    i += 1
    while keyword(i) in ("IF", "NOT", "EXISTS"):
        i += 1
    if i >= len(tokens) or tokens[i][0] not in IDENTS:
        return verb == "ALTER", None
    word = keyword(i)
    if (
        verb == "ALTER"
        and word in _OPTIONS
        and (word in _NAMELESS or keyword(i + 1) not in _OPTIONS | {"UPGRADE"})
    ):
        return True, None
    kind, start, end, value = tokens[i]
    return True, Name(start, end, value, kind == "qident")


SHADOW_BEFORE = {"FROM", "JOIN", "STRAIGHT_JOIN", "INTO", "UPDATE", "TABLE", "AS"}
_NOT_ALIASES = {
    "WHERE", "SET", "ON", "USING", "JOIN", "INNER", "LEFT", "RIGHT", "CROSS", "NATURAL",
    "STRAIGHT_JOIN", "GROUP", "ORDER", "HAVING", "LIMIT", "UNION", "VALUES", "VALUE",
    "SELECT", "PARTITION", "FOR", "LOCK", "WINDOW", "RETURNING", "INTO", "EXCEPT",
    "INTERSECT", "FORCE", "IGNORE", "USE", "OUTER", "AS", "WITH", "ADD", "DROP", "MODIFY",
    "CHANGE", "RENAME", "TO", "ENGINE", "DEFAULT", "CHARACTER", "COLLATE", "COMMENT", "LIKE",
}  # fmt: skip


_TABLE_PARENS = {"FROM", "JOIN", "STRAIGHT_JOIN", "PARTITION", "JSON_TABLE"}


def _alias_after(tokens: list[Token], i: int) -> list[str]:
    """The alias without AS right after token ``i`` (a ``)`` closing a derived table):
    a quoted name, or one that is no keyword here; none else."""
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if after is None or after[0] not in IDENTS:
        return []
    if after[0] == "ident" and after[3].upper() in _NOT_ALIASES:
        return []
    return [after[3]]


def _shadows(tokens: list[Token]) -> set[str]:
    """Unqualified names used as a table or alias: after FROM, JOIN, INTO, UPDATE, TABLE or
    AS, after a comma in such a list, an alias right after a table name, and one right
    after the parenthesis closing a derived table (``FROM (SELECT ...) r``), a partition
    list or ``JSON_TABLE(...)``."""
    found: set[str] = set()
    listing = False  # inside a FROM/UPDATE/JOIN table list
    parens: list[bool] = []  # open parentheses: whether each holds a derived table
    i = 0
    while i < len(tokens):
        kind, _, _, value = tokens[i]
        word = value.upper() if kind == "ident" else None
        if kind == "other" and value == "(":
            before = tokens[i - 1] if i else None
            parens.append(
                before is not None
                and (
                    (before[0] == "ident" and before[3].upper() in _TABLE_PARENS)
                    or (before[0] == "other" and before[3] == "," and listing)
                    or (before[0] == "other" and before[3] == "(" and parens[-1:] == [True])
                )
            )
        elif (kind, value) == ("other", ")") and parens and parens.pop():
            found.update(_alias_after(tokens, i))  # after a derived table
        if word in SHADOW_BEFORE or (listing and kind == "other" and value == ","):
            listing = word != "AS" and (listing or word is not None)
            j = i + 1
            if j < len(tokens) and tokens[j][0] in IDENTS:
                if j + 1 >= len(tokens) or tokens[j + 1][0] != "dot":
                    found.add(tokens[j][3])
                    j += 1
                elif j + 2 < len(tokens) and tokens[j + 2][0] in IDENTS:
                    j += 3
                else:
                    j += 1
                after = tokens[j] if j < len(tokens) else None
                if (
                    word != "AS"
                    and after is not None
                    and after[0] in IDENTS
                    and (after[0] == "qident" or after[3].upper() not in _NOT_ALIASES)
                ):
                    found.add(after[3])  # an alias without AS
            i = j if j > i else i + 1
            continue
        if word in _NOT_ALIASES and word not in ("JOIN", "STRAIGHT_JOIN", "AS", "INTO"):
            listing = False
        i += 1
    return found


def ambiguous_qualifiers(found: Scan, databases: Collection[str]) -> list[str]:
    """Two-part names ``x.y`` whose ``x`` is one of ``databases`` and also, in the same
    statement, an unqualified table or alias (:func:`_shadows`): ``SELECT shop.id FROM
    shop`` means table ``shop``'s column, ``FROM shop.t`` database ``shop``'s table, and
    telling them apart takes the server's parser."""
    shadows = _shadows(found.tokens)
    return sorted(
        {n.value for n, parts in found.qualifiers if parts == 2 and n.value in shadows}
        & set(databases)
    )


def account_statement(found: Scan) -> bool:
    """Whether the statement manages accounts (``CREATE``/``ALTER``/``DROP``/``RENAME USER``
    or ``ROLE``, ``GRANT``, ``REVOKE``, ``SET PASSWORD``, ``SET DEFAULT ROLE``): it acts on
    the server, never on its default database, so a replay of databases leaves it out."""
    words = found.words
    if not words:
        return False
    if words[0] in ("GRANT", "REVOKE"):
        return True
    rest = [w for w in words[1:5] if w not in ("OR", "REPLACE", "IF", "NOT", "EXISTS")]
    if words[0] in ("CREATE", "ALTER", "DROP", "RENAME"):
        return rest[:1] in (["USER"], ["ROLE"])
    return words[0] == "SET" and (rest[:1] == ["PASSWORD"] or rest[:2] == ["DEFAULT", "ROLE"])


def account_text(text: str, found: Scan) -> str:
    """An account statement (``text``, scanned as ``found``) fit for a log or report: its
    string literals after ``IDENTIFIED`` or ``=`` (passwords, hashes, authentication
    strings) masked as ``'***'``, whitespace runs as one space."""
    out, at, secret = [], 0, False
    for kind, start, end, value in found.tokens:
        if (kind == "ident" and value.upper() == "IDENTIFIED") or value == "=":
            secret = True
        elif secret and kind in ("squote", "dquote"):
            out += [text[at:start], "'***'"]
            at = end
    out.append(text[at:])
    return " ".join("".join(out).split())


def referenced_databases(found: Scan, default: str, known: set[str], sql_mode: int = 0) -> set[str]:
    """Databases the statement acts on: its default database (if any, unless
    :func:`~datatier.mysql.binlog.qualified.qualified_tables` proves that nothing in the
    statement is looked up in it), every qualifier that is a known database (three-part
    names always; a table's qualifier always), and database objects."""
    proven = qualified_tables(found, sql_mode, statement_tables(found, ""))
    refs = {default} if default and proven is None else set()
    refs.update(proven or ())
    for name, parts in found.qualifiers:
        if parts >= 3 or name.value in known:
            refs.add(name.value)
    refs.update(n.value for n in found.database_objects)
    return refs


def rewrite(
    text: str,
    found: Scan,
    renames: dict[str, str],
    known: set[str],
    lower: Collection[str] = (),
    charset: Charset | None = None,
) -> str:
    """``text`` with every database reference in ``renames`` replaced by its new name, and
    every other identifier whose value is in ``lower`` spelled lower-cased as the server
    lower-cases names (quoted or not, as it was): for a target comparing names as spelled,
    a source that stored them lower-cased (``lower``: its names, as ``found`` holds them,
    scanned folded). ``charset``: the one ``text`` was scanned in (:func:`scan`), in which
    new and lower-cased names are written (:class:`~datatier.mysql.binlog.multibyte.UnspelledName`
    when one cannot be)."""
    quote = ident if charset is None else charset.quoted
    spots = {
        n.start: (n, quote(renames[n.value]))
        for n, parts in found.qualifiers
        if n.value in renames and (parts >= 3 or n.value in known)
    }
    for n in found.database_objects:
        if n.value in renames:
            spots[n.start] = (n, quote(renames[n.value]))
    if lower:
        for n in found.names:
            if n.start not in spots and n.value in lower:
                spelled = text[n.start : n.end]
                lowered = name_key(spelled, True) if charset is None else charset.lowered(spelled)
                spots[n.start] = (n, lowered)
    out = []
    at = 0
    for start in sorted(spots):
        name, replacement = spots[start]
        out.append(text[at:start])
        out.append(replacement)
        at = name.end
    out.append(text[at:])
    return "".join(out)


_DML_MODIFIERS = {"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "QUICK", "INTO", "FROM"}
_AFTER_TARGET = {
    "INSERT": {"VALUES", "VALUE", "SET", "SELECT", "(", "PARTITION", "ON", "RETURNING"},
    "REPLACE": {"VALUES", "VALUE", "SET", "SELECT", "(", "PARTITION", "RETURNING"},
    "UPDATE": {"SET"},
    "DELETE": {"WHERE", "ORDER", "LIMIT", "RETURNING", "PARTITION", ""},
}


def written_table(found: Scan, default: str) -> tuple[str, str] | None:
    """The one table a single-table ``INSERT``/``REPLACE``/``UPDATE``/``DELETE`` writes, as
    (database, table), unqualified in ``default``; None for anything else (several tables,
    an alias, a join, a subquery source: the caller must not guess)."""
    tokens = found.tokens
    if not tokens or found.conditional or tokens[0][0] != "ident":
        return None
    verb = tokens[0][3].upper()
    if verb not in _AFTER_TARGET:
        return None
    i = 1
    while i < len(tokens) and tokens[i][0] == "ident" and tokens[i][3].upper() in _DML_MODIFIERS:
        if verb == "DELETE" and tokens[i][3].upper() == "FROM":
            i += 1
            break
        i += 1
    if i >= len(tokens) or tokens[i][0] not in IDENTS:
        return None
    database, table, i = default, tokens[i][3], i + 1
    if i + 1 < len(tokens) and tokens[i][0] == "dot" and tokens[i + 1][0] in IDENTS:
        database, table, i = table, tokens[i + 1][3], i + 2
    follower = "" if i >= len(tokens) else tokens[i][3]
    if follower.upper() not in _AFTER_TARGET[verb] or (verb != "DELETE" and not follower):
        return None  # an alias, a comma, JOIN, USING, a third name part...
    if any(t[0] == "ident" and t[3].upper() in ("JOIN", "FROM") for t in tokens[i:]):
        return None  # it reads other tables (INSERT ... SELECT, a subquery)
    return database, table


def statement_tables(found: Scan, default: str) -> list[tuple[str, str]] | None:
    """The tables a table DDL acts on as (database, table), unqualified names in
    ``default``; None when the statement is not a table DDL understood here (``CREATE``,
    ``ALTER``, ``DROP`` or ``TRUNCATE TABLE``, ``RENAME TABLE``, ``CREATE``/``DROP INDEX``).
    An ``ALTER TABLE ... RENAME TO`` acts on its table and on the new name."""
    words = found.words
    names = found.names
    if len(words) < 2:
        return None
    kind = next((w for w in words[1:] if w not in OPTIONS), "")
    if words[0] == "CREATE" and (trigger := _trigger_table(found, default)) is not None:
        return [trigger]
    if words[0] in ("CREATE", "DROP") and kind == "INDEX":
        on = next(
            (i for i, n in enumerate(names) if not n.quoted and n.value.upper() == "ON"), None
        )
        return (
            [_table_at(found, on + 1, default)[0]]
            if on is not None and on + 1 < len(names)
            else None
        )
    if words[0] == "RENAME" and words[1] in ("TABLE", "TABLES"):
        start = 2  # RENAME TABLE IF EXISTS a TO b: IF and EXISTS name no table
        while (
            start < len(names)
            and not names[start].quoted
            and names[start].value.upper() in ("IF", "EXISTS")
        ):
            start += 1
        return _all_tables(found, start, default)
    if words[0] == "TRUNCATE" or (words[0] in ("CREATE", "ALTER", "DROP") and kind == "TABLE"):
        i = next(
            (i for i, n in enumerate(names) if n.quoted or n.value.upper() not in LEADING), None
        )
        if i is None:
            return None
        if words[0] == "DROP":
            return _all_tables(found, i, default)
        table, after = _table_at(found, i, default)
        if words[0] == "ALTER":
            return [table, *_renamed_to(found, after, default)]
        return [table]
    return None


def _renamed_to(found: Scan, i: int, default: str) -> list[tuple[str, str]]:
    """The new name an ``ALTER TABLE`` gives its table (``RENAME [TO|AS] name``, not
    ``RENAME COLUMN|INDEX|KEY``), looked for from name ``i`` on; RENAME is reserved, so
    unquoted it is always the keyword."""
    names = found.names
    renamed = []
    for j in range(i, len(names) - 1):
        if names[j].quoted or names[j].value.upper() != "RENAME":
            continue
        k = j + 1
        if not names[k].quoted and names[k].value.upper() in ("COLUMN", "INDEX", "KEY"):
            continue
        if not names[k].quoted and names[k].value.upper() in ("TO", "AS") and k + 1 < len(names):
            k += 1
        renamed.append(_table_at(found, k, default)[0])
    return renamed


OPTIONS = {
    "OR", "REPLACE", "ONLINE", "OFFLINE", "IGNORE", "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL",
}  # fmt: skip
"""Words between CREATE/ALTER/DROP and the kind of object (``CREATE OR REPLACE UNIQUE
INDEX``: INDEX; they once pushed it out of the words looked at, and the index was left out
of a --tables replay)."""
DEFINER_WORDS = {"CREATE", "OR", "REPLACE", "DEFINER", "CURRENT_USER"}


def _trigger_table(found: Scan, default: str) -> tuple[str, str] | None:
    """The table of a ``CREATE [OR REPLACE] [DEFINER=...] TRIGGER name ... ON table``;
    None for any other statement."""
    words = [None if n.quoted else n.value.upper() for n in found.names]
    if "TRIGGER" not in words:
        return None
    at = words.index("TRIGGER")
    if any(w is not None and w not in DEFINER_WORDS for w in words[:at]):
        return None
    on = next((i for i in range(at + 1, len(words)) if words[i] == "ON"), None)
    if on is None or on + 1 >= len(words):
        return None
    return _table_at(found, on + 1, default)[0]


def drops_trigger(found: Scan) -> bool:
    """Whether the statement is a ``DROP TRIGGER`` (which names no table)."""
    return found.words[:2] == ["DROP", "TRIGGER"]


LEADING = {
    "ALTER", "CREATE", "DROP", "TRUNCATE", "TABLE", "TEMPORARY", "IF", "NOT", "EXISTS",
    "ONLINE", "IGNORE", "OR", "REPLACE",
}  # fmt: skip
TRAILING = {"TO", "RESTRICT", "CASCADE", "WAIT", "NOWAIT"}


def _table_at(found: Scan, i: int, default: str) -> tuple[tuple[str, str], int]:
    names = found.names
    parts = next((p for n, p in found.qualifiers if n.start == names[i].start), 1)
    if parts == 2 and i + 1 < len(names):
        return (names[i].value, names[i + 1].value), i + 2
    return (default, names[i].value), i + 1


def _all_tables(found: Scan, i: int, default: str) -> list[tuple[str, str]]:
    tables = []
    names = found.names
    while i < len(names):
        name = names[i]
        if not name.quoted and name.value.upper() in TRAILING:
            i += 1
            continue
        table, i = _table_at(found, i, default)
        tables.append(table)
    return tables
