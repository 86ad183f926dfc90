"""Column type -> RethinkDB value: the casts, which source types allow which, their risks.

Contract: :func:`default_cast` proposes a cast for a column, :func:`allowed_casts` lists the
possible ones (a mapping file may choose among them, anything else is impossible), and
:func:`converter` returns a function turning one MySQL value (as pymysql returns it, in a
UTC session) into a RethinkDB-ready Python value. A value the cast cannot represent exactly
raises :class:`CastError`: nothing is ever rounded or truncated silently. The one
documented lossy conversion is a zero date (``0000-00-00``), which becomes null and is
counted by the sampler.

RethinkDB facts this relies on: numbers are doubles (integers exact only up to 2^53),
times have millisecond precision and carry a zone, there is no decimal type, binary
values are a pseudo-type, and primary keys are at most 127 bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from datatier.mysql.introspect import INTEGER_TYPES, Column

MAX_SAFE_INT = 2**53
MAX_KEY_BYTES = 127

INTEGERS = INTEGER_TYPES
DECIMALS = frozenset({"decimal", "numeric"})
FLOATS = frozenset({"float", "double", "real"})
TEXTS = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
BINARIES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
TIMES = frozenset({"date", "datetime", "timestamp"})

CASTS = ("int", "number", "scaled_int", "string", "bool", "time", "binary", "json", "array")
"""Every cast a mapping file may name (``skip = true`` drops a column instead)."""

Converter = Callable[[Any], Any]


class CastError(ValueError):
    """A value the chosen cast cannot represent exactly; the message says why."""


class ZeroDate:
    """Marker result: a zero date that became null (counted, never silent)."""


def allowed_casts(col: Column) -> tuple[str, ...]:
    """The casts possible for ``col``'s type (empty: unsupported type, skip it)."""
    t = col.data_type
    if t in INTEGERS:
        return (
            ("int", "number", "string", "bool") if t == "tinyint" else ("int", "number", "string")
        )
    if t in DECIMALS:
        return ("string", "scaled_int", "number")
    if t in FLOATS:
        return ("number", "string")
    if t == "bit":
        return ("bool", "int", "string") if col.bits == 1 else ("int", "string")
    if t == "year":
        return ("int", "string")
    if t in TIMES:
        return ("time", "string")
    if t == "time":
        return ("string",)
    if t in TEXTS or t == "enum":
        return ("string",)
    if t == "set":
        return ("array", "string")
    if t == "json":
        return ("json", "string")
    if t in BINARIES:
        return ("binary",)
    return ()


def default_cast(col: Column) -> str | None:
    """The proposed cast (None: no cast exists for this type)."""
    if col.data_type == "bit":
        return "bool" if col.bits == 1 else ("int" if col.bits <= 53 else "string")
    possible = allowed_casts(col)
    return possible[0] if possible else None


def risks(col: Column, cast: str, tz: str) -> list[str]:
    """What changes or may fail when ``col`` moves with ``cast`` (static, before sampling)."""
    t, out = col.data_type, []
    if t in DECIMALS:
        out.append(
            {
                "string": "no decimal type: kept exact as a string (compares and sorts as text)",
                "scaled_int": "no decimal type: integer x 10^scale; fails beyond 2^53",
                "number": "no decimal type: a double; more than 15 significant digits fail",
            }[cast]
        )
    if t == "bigint" and cast in ("int", "number"):
        out.append("BIGINT: RethinkDB numbers are doubles, values beyond +-2^53 fail (cast string)")
    if t in TIMES and cast == "time":
        if t == "timestamp":
            out.append("TIMESTAMP: read in UTC, stored as a time with zone +00:00")
        else:
            out.append(f"{t.upper()} has no zone: stored as a time in {tz} (mapping: timezone)")
        out.append("zero dates (0000-00-00) become null")
        if (col.datetime_precision or 0) > 3:
            out.append("times keep milliseconds: values with finer fractions fail (cast string)")
    if t in BINARIES:
        out.append("BLOB/BINARY becomes the RethinkDB binary pseudo-type")
    if t == "json" and cast == "json":
        out.append("JSON becomes a nested document; numbers beyond 2^53 fail")
    if t == "enum":
        out.append("ENUM becomes a string: allowed values not enforced, sorts by text not index")
    if t == "set":
        out.append(
            "SET becomes an array of strings" if cast == "array" else "SET kept as 'a,b' text"
        )
    if t == "bit":
        out.append(f"BIT({col.bits}) becomes {cast}")
    if t == "time":
        out.append("TIME becomes a string [-]HH:MM:SS[.ffffff]")
    if cast == "bool":
        out.append("0/1 become false/true; other values fail")
    return out


def parse_tz(text: str) -> timezone:
    """``+HH:MM`` / ``-HH:MM`` / ``UTC`` -> a fixed-offset zone; ValueError otherwise."""
    if text.upper() in ("UTC", "Z"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text)
    if not m or int(m.group(2)) > 14 or int(m.group(3)) > 59:
        raise ValueError(f"timezone {text!r} is not UTC or +HH:MM")
    sign = 1 if m.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def _check_int(v: int) -> int:
    if -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
        return v
    raise CastError(f"{v} is beyond +-2^53, not exact as a RethinkDB number")


def _bits(v: Any) -> int:
    return int.from_bytes(v, "big") if isinstance(v, bytes | bytearray) else int(v)


def _is_zero_date(text: str) -> bool:
    head = text.split(" ")[0]
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", head)) and (
        head.startswith("0000") or head[5:7] == "00" or head[8:10] == "00"
    )


def _time_string(v: timedelta) -> str:
    micros = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    sign = "-" if micros < 0 else ""
    secs, frac = divmod(abs(micros), 1_000_000)
    text = f"{sign}{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return text + (f".{frac:06d}" if frac else "")


def _json_safe(value: Any, path: str = "$") -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise CastError(f"JSON number {value} at {path} is beyond 2^53")
        return value
    if isinstance(value, list):
        return [_json_safe(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _json_safe(v, f"{path}.{k}") for k, v in value.items()}
    return value


def converter(col: Column, cast: str, *, scale: int | None = None, tz: str = "+00:00") -> Converter:
    """A function for one value of ``col`` under ``cast`` (see module docstring).

    ``scale`` is for ``scaled_int`` (default: the column's scale); ``tz`` is the zone of
    DATETIME and DATE values. Raises ValueError for an impossible cast.
    """
    if cast not in allowed_casts(col):
        raise ValueError(f"cast {cast!r} is impossible for {col.column_type}")
    t = col.data_type
    zone = UTC if t == "timestamp" else parse_tz(tz)

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if cast == "int":
            return _check_int(_bits(v) if t == "bit" else int(v))
        if cast == "bool":
            n = _bits(v)
            if n not in (0, 1):
                raise CastError(f"{n} is not 0 or 1")
            return n == 1
        if cast == "number":
            if isinstance(v, Decimal):
                f = float(v)
                if Decimal(repr(f)) != v:
                    raise CastError(f"{v} is not exact as a double ({f!r})")
                return f
            return float(v) if isinstance(v, float) else _check_int(int(v))
        if cast == "scaled_int":
            s = (col.scale or 0) if scale is None else scale
            try:
                scaled = Decimal(v).scaleb(s)
            except InvalidOperation as exc:
                raise CastError(f"{v} is not a number") from exc
            if scaled != scaled.to_integral_value():
                raise CastError(f"{v} has more than {s} decimals")
            return _check_int(int(scaled))
        if cast == "string":
            return _to_string(v)
        if cast == "time":
            return _to_time(v, zone)
        if cast == "binary":
            return bytes(v)
        if cast == "json":
            try:
                return _json_safe(json.loads(v))
            except json.JSONDecodeError as exc:
                raise CastError(f"invalid JSON: {exc.msg}") from exc
        if cast == "array":
            return [] if v == "" else str(v).split(",")
        raise AssertionError(cast)

    def _to_string(v: Any) -> str:
        if t == "bit":
            return str(_bits(v))
        if isinstance(v, timedelta):
            return _time_string(v)
        if isinstance(v, datetime):
            return v.isoformat(sep=" ")
        if isinstance(v, bytes | bytearray):
            return bytes(v).decode("utf-8")
        return str(v)

    return conv


def _to_time(v: Any, zone: timezone) -> Any:
    if isinstance(v, str):
        if _is_zero_date(v):
            return ZERO_DATE
        raise CastError(f"{v!r} is not a valid date")
    if isinstance(v, datetime):
        if v.microsecond % 1000:
            raise CastError(f"{v.isoformat(sep=' ')} has sub-millisecond digits")
        return v.replace(tzinfo=zone)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=zone)
    raise CastError(f"{v!r} is not a date")


ZERO_DATE = ZeroDate()
"""What a ``time`` converter returns for a zero date; documents store null."""
