"""Value serializers: how the application encodes a cached result.

- ``json``: UTF-8 JSON; result mode stores a list of rows, row mode one row. Rows are objects
  (``row_format = "dict"``) or arrays (``"list"``). Dates and times become ISO 8601 strings,
  DECIMAL a string (exact), bytes base64, sets lists.
- ``pickle``: ``pickle.dumps`` of the same structure with the Python values the MySQL driver
  returns (Decimal, datetime), at the configured protocol.
- ``raw``: the bytes of one value: the column named ``value`` if present, else the only
  column (text as UTF-8, numbers as their decimal text). Result mode needs exactly one row.

Each serializer returns ``(flags, bytes)``; flags are 0 (apps that mark their encodings in
memcached flags use ``cache copy``, which keeps flags as they are).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import orjson

from datatier.cache.warmset import RowFormat, SerializerName


class UnserializableResult(ValueError):
    """The result does not fit the serializer (e.g. raw with two columns)."""


class Serializer(ABC):
    """Encodes one cache value: a whole result (list of rows) or a single row."""

    def __init__(self, columns: Sequence[str], row_format: RowFormat) -> None:
        self.columns = list(columns)
        self.as_dict = row_format == "dict"

    def shape(self, row: Sequence[Any], mapping: dict[str, Any] | None = None) -> Any:
        if not self.as_dict:
            return list(row)
        return mapping if mapping is not None else dict(zip(self.columns, row, strict=True))

    @abstractmethod
    def encode_row(self, row: Sequence[Any], mapping: dict[str, Any] | None = None) -> bytes:
        """One row as the value of a row-mode key (``mapping``: the same row as a dict,
        when the caller has it already)."""

    @abstractmethod
    def encode_result(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """Every row of one execution as the value of a result-mode key."""

    @abstractmethod
    def encode_rows(self, rows: Sequence[Any]) -> list[bytes]:
        """:meth:`encode_row` of each of ``rows``, byte for byte, with less work per row;
        rows are dicts where :func:`takes_dicts` says so, else tuples."""


def _json_default(value: Any) -> Any:
    """What orjson cannot encode itself: DECIMAL first (the common MySQL case)."""
    if type(value) is decimal.Decimal:
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):  # orjson does these itself
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JSONSerializer(Serializer):
    """Compact UTF-8 JSON by orjson (10x the standard library's encoder; same bytes for
    these types)."""

    def _dump(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_json_default)

    def encode_row(self, row: Sequence[Any], mapping: dict[str, Any] | None = None) -> bytes:
        return self._dump(self.shape(row, mapping))

    def encode_result(self, rows: Sequence[Sequence[Any]]) -> bytes:
        return self._dump([self.shape(r) for r in rows])

    def encode_rows(self, rows: Sequence[Any]) -> list[bytes]:
        dumps, default = orjson.dumps, _json_default  # orjson writes a tuple as a list would be
        return [dumps(r, default=default) for r in rows]


class PickleSerializer(Serializer):
    def __init__(self, columns: Sequence[str], row_format: RowFormat, protocol: int) -> None:
        super().__init__(columns, row_format)
        self.protocol = protocol

    def encode_row(self, row: Sequence[Any], mapping: dict[str, Any] | None = None) -> bytes:
        return pickle.dumps(self.shape(row, mapping), protocol=self.protocol)

    def encode_result(self, rows: Sequence[Sequence[Any]]) -> bytes:
        return pickle.dumps([self.shape(r) for r in rows], protocol=self.protocol)

    def encode_rows(self, rows: Sequence[Any]) -> list[bytes]:
        dumps, protocol = pickle.dumps, self.protocol
        if self.as_dict:
            return [dumps(r, protocol=protocol) for r in rows]
        return [dumps(list(r), protocol=protocol) for r in rows]


class RawSerializer(Serializer):
    def __init__(self, columns: Sequence[str], row_format: RowFormat) -> None:
        super().__init__(columns, row_format)
        if "value" in self.columns:
            self.index = self.columns.index("value")
        elif len(self.columns) == 1:
            self.index = 0
        else:
            raise UnserializableResult(
                f"raw needs one column or a column named value, got {len(self.columns)} columns"
            )

    @staticmethod
    def _bytes(value: Any) -> bytes:
        if value is None:
            return b""
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        return str(value).encode()

    def encode_row(self, row: Sequence[Any], mapping: dict[str, Any] | None = None) -> bytes:
        return self._bytes(row[self.index])

    def encode_rows(self, rows: Sequence[Any]) -> list[bytes]:
        index, encode = self.index, self._bytes
        return [encode(r[index]) for r in rows]

    def encode_result(self, rows: Sequence[Sequence[Any]]) -> bytes:
        if len(rows) != 1:
            raise UnserializableResult(f"raw in result mode needs exactly 1 row, got {len(rows)}")
        return self._bytes(rows[0][self.index])


def takes_dicts(name: SerializerName, row_format: RowFormat) -> bool:
    """Whether :meth:`Serializer.encode_rows` of ``name`` takes rows as dicts (raw picks its
    value by position)."""
    return name != "raw" and row_format == "dict"


def serializer_for(
    name: SerializerName, columns: Sequence[str], row_format: RowFormat, pickle_protocol: int
) -> Serializer:
    """The serializer called ``name`` for a result with ``columns``."""
    if name == "json":
        return JSONSerializer(columns, row_format)
    if name == "pickle":
        return PickleSerializer(columns, row_format, pickle_protocol)
    if name == "raw":
        return RawSerializer(columns, row_format)
    raise ValueError(f"unknown serializer {name!r}")
