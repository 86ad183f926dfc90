"""Rows -> documents, and the per-row checksum both sides are compared with.

Contract: :class:`DocumentBuilder` reads rows in the order of :attr:`select_columns` (the
plan's non-skipped columns) and builds one document per row; :meth:`build` raises
:class:`RowError` naming the table, key, column and value when a cast cannot carry a value
(the run stops there, nothing of that batch is written). :func:`digest` hashes a
document's canonical JSON, so a document read back from RethinkDB (times in any zone,
integral doubles, binary as bytes) hashes like the one that was written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from datatier.errors import OperationFailed
from datatier.migrate.casts import MAX_KEY_BYTES, ZERO_DATE, CastError, Converter
from datatier.migrate.plan import TablePlan


class RowError(OperationFailed):
    """A value its cast cannot carry (exit 1); nothing of the batch was written."""

    def __init__(self, table: str, key: str, column: str, value: Any, problem: str) -> None:
        super().__init__(
            f"{table} row {key}: column {column} value {short(value)}: {problem}",
            hint="choose another cast in the mapping file, or fix the data; then resume",
        )
        self.column = column
        self.problem = problem


def short(value: Any, limit: int = 60) -> str:
    """A value for messages: dates and decimals as text, everything cut at ``limit``."""
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else None
    if text is None:
        text = str(value) if isinstance(value, Decimal | date | timedelta) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical(value: Any) -> Any:
    """A JSON-ready, representation-independent form of a document value."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= 2**53 else value
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return {"$time": moment.isoformat(timespec="milliseconds")}
    if isinstance(value, bytes | bytearray):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def canonical_json(doc: dict[str, Any]) -> str:
    return json.dumps(canonical(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(doc: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of a document."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()[:16]


def key_json(values: Sequence[Any]) -> str:
    """A generated id: the JSON array of the key columns' canonical values."""
    return json.dumps([canonical(v) for v in values], separators=(",", ":"), ensure_ascii=False)


class DocumentBuilder:
    """Builds documents of one table plan (see module docstring)."""

    def __init__(self, plan: TablePlan) -> None:
        self.plan = plan
        active = [f for f in plan.active_fields if f.convert is not None]
        self.select_columns = [f.column.name for f in active]
        self._fields: list[tuple[str, str, Converter]] = []
        for f in active:
            assert f.convert is not None
            self._fields.append((f.column.name, f.field, f.convert))
        pos = {name: i for i, name in enumerate(self.select_columns)}
        self.key_positions = [pos[c] for c in plan.key.columns]
        self._key_fields = [
            next(f for f in active if f.column.name == c).field for c in plan.key.columns
        ]
        self.generated = plan.key.kind == "generated"

    def key_of(self, row: Sequence[Any]) -> str:
        """The row's MySQL key for messages: ``(a=1, b='x')``."""
        return (
            "("
            + ", ".join(
                f"{c}={short(row[i], 40)}"
                for c, i in zip(self.plan.key.columns, self.key_positions, strict=True)
            )
            + ")"
        )

    def build(self, row: Sequence[Any]) -> dict[str, Any]:
        """One document; RowError if a value cannot be carried."""
        doc, problems, _ = self.check(row)
        if problems:
            column, value, problem = problems[0]
            raise RowError(self.plan.name, self.key_of(row), column, value, problem)
        return doc

    def check(
        self, row: Sequence[Any]
    ) -> tuple[dict[str, Any], list[tuple[str, Any, str]], list[str]]:
        """(document, problems as (column, value, why), columns whose zero date became null)."""
        doc: dict[str, Any] = {}
        problems: list[tuple[str, Any, str]] = []
        zeros: list[str] = []
        for value, (column, field, conv) in zip(row, self._fields, strict=True):
            try:
                out = conv(value)
            except CastError as exc:
                problems.append((column, value, str(exc)))
                continue
            except (TypeError, ValueError) as exc:
                problems.append((column, value, f"cannot convert: {exc}"))
                continue
            if out is ZERO_DATE:
                zeros.append(column)
                out = None
            doc[field] = out
        if self.generated and not problems:
            doc["id"] = key_json([doc[f] for f in self._key_fields])
        key = doc.get("id")
        if isinstance(key, str) and len(key.encode("utf-8")) > MAX_KEY_BYTES:
            problems.append(
                (
                    ",".join(self.plan.key.columns),
                    key,
                    f"primary key of {len(key.encode('utf-8'))} bytes; RethinkDB allows "
                    f"{MAX_KEY_BYTES}",
                )
            )
        if key is None and not problems and self.plan.key.kind != "none":
            problems.append((",".join(self.plan.key.columns), None, "the key is null"))
        return doc, problems, zeros
