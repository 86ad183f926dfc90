"""How restore messages name databases, tables and the objects being loaded, for people.

Object keys are percent-encoded (``db%20x/tables/t/data.00001.sql.zst``): messages name what
an object holds instead (``the rows of `db x`.`t`, part 1``), with names backtick-quoted
(a backtick doubled) and every control character, or byte that is not UTF-8, escaped
(``\\n``, ``\\x1b``), so that any name shows on one line and cannot drive a terminal.
"""

from __future__ import annotations

from datatier.backup.manifest import ObjectRecord

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}

WHAT = {
    "schema": "the definition of",
    "data": "the rows of",
    "triggers": "the triggers of",
    "viewstubs": "the placeholder of view",
    "views": "view",
}
"""Per object kind naming one table or view: what the object holds of it."""
PER_DATABASE = {"routines": "the routines of", "events": "the events of", "database": "database"}


def name_label(name: str) -> str:
    """``name`` backtick-quoted, control characters and undecodable bytes escaped."""
    out = []
    for ch in name.replace("`", "``"):
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept: not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "`" + "".join(out) + "`"


def table_label(database: str | None, table: str) -> str:
    """```database`.`table``` (just ```table``` without a database), as :func:`name_label`."""
    return name_label(table) if database is None else f"{name_label(database)}.{name_label(table)}"


def object_label(obj: ObjectRecord, database: str | None) -> str:
    """What ``obj`` holds, in ``database`` (its target name), for a message."""
    if obj.kind == "bundle":
        tables = ", ".join(name_label(s.table) for s in obj.sections[:3])
        more = f" and {len(obj.sections) - 3} more" if len(obj.sections) > 3 else ""
        where = f" in {name_label(database)}" if database is not None else ""
        return f"the bundle of tables {tables}{more}{where}"
    if obj.kind == "grants":
        return "the accounts and grants"
    if obj.kind in WHAT and obj.table is not None:
        label = f"{WHAT[obj.kind]} {table_label(database, obj.table)}"
        return f"{label} (part {obj.part})" if obj.kind == "data" and obj.part else label
    if database is not None:
        return f"{PER_DATABASE.get(obj.kind, f'the {obj.kind} of')} {name_label(database)}"
    return f"the {obj.kind} object"
