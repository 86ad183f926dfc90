"""Documents as a ready-built ReQL term, without the driver's object per value.

Contract: :func:`documents_term` returns a term that the ``rethinkdb`` 2.4 driver
serializes to exactly the bytes ``r.expr(docs)`` gives (objects as JSON objects, arrays
and other iterables as ``MAKE_ARRAY``, times as ``ISO8601`` terms of ``isoformat()``,
``bytes`` as the ``BINARY`` pseudo-type, everything else as itself) and raises the
driver's :class:`~rethinkdb.errors.ReqlDriverCompileError` where ``r.expr`` does (a time
without zone, a key that is not a string, nesting beyond its 20 levels). The server sees
no difference; the client skips building one term object per value, whose JSON encoding
calls back into Python for each, and hands plain dicts and lists to the C encoder.

Only the driver's socket connections serialize terms: rethinkdb-mock interprets the
driver's term classes and cannot run this one.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from rethinkdb import ql2_pb2
from rethinkdb.ast import RqlQuery
from rethinkdb.errors import ReqlDriverCompileError

MAKE_ARRAY = ql2_pb2.Term.TermType.MAKE_ARRAY
ISO8601 = ql2_pb2.Term.TermType.ISO8601
NESTING_LIMIT = 20
"""The depth ``r.expr`` allows (its ``nesting_depth`` default); the list of documents is
level 1."""

_PLAIN = frozenset({str, int, float, bool, type(None)})


class Built(RqlQuery):  # type: ignore[misc]
    """A term whose JSON is already built (the driver's encoder asks :meth:`build`)."""

    def __init__(self, data: Any) -> None:
        super().__init__()
        self.data = data

    def build(self) -> Any:
        return self.data

    def compose(self, args: Any, optargs: Any) -> str:
        return "<documents>"


def documents_term(docs: Iterable[Mapping[str, Any]]) -> Built:
    """The term of ``r.expr(docs)`` (see module docstring)."""
    return Built(_value(docs, NESTING_LIMIT))


def _value(v: Any, depth: int) -> Any:
    if depth <= 0:
        raise ReqlDriverCompileError("Nesting depth limit exceeded.")
    if type(v) in _PLAIN:
        return v
    if isinstance(v, date):
        if getattr(v, "tzinfo", None) is None:
            raise ReqlDriverCompileError(f"Cannot convert {type(v).__name__} without timezone")
        return [ISO8601, [v.isoformat()]]
    if isinstance(v, bytes):
        return {"$reql_type$": "BINARY", "data": base64.b64encode(v).decode("utf-8")}
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        return _object(v, depth)
    if isinstance(v, Iterable):
        return [MAKE_ARRAY, [_value(x, depth - 1) for x in v]]
    return v


def _object(obj: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    """A document or nested object; the original when nothing in it needs building."""
    plain = depth > 1
    for k, v in obj.items():
        if not isinstance(k, str):
            raise ReqlDriverCompileError("Object keys must be strings.")
        if type(v) not in _PLAIN:
            plain = False
    if plain and type(obj) is dict:
        return obj
    return {k: _value(v, depth - 1) for k, v in obj.items()}
