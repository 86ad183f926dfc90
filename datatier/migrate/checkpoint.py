"""The run's checkpoint: per table, the last key written, so an interrupted run resumes.

Contract: :meth:`Checkpoint.save` replaces the file atomically (write, fsync, rename).
``last_key`` is saved only once every batch up to and including the one that ends there
is durable in the target (acknowledged with hard durability, or acknowledged and then
synced), so the file never names a key whose rows could still be lost. ``inflight``
([from_key, to_key]) is saved *before* batches are sent - several may be in flight, and
``to_key`` is the last key of any of them - and cleared once all of them are recorded:
when a run dies with it set, documents of that key range (after ``from_key``, up to and
including ``to_key``) may be in the target already, and only that range may be treated as
possibly written by us on resume. Key values (ints, strings, decimals, dates, bytes...)
round-trip exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from datatier.errors import ConfigError


def encode_value(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, int | float | str):
        return v
    if isinstance(v, Decimal):
        return {"decimal": str(v)}
    if isinstance(v, datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, date):
        return {"date": v.isoformat()}
    if isinstance(v, timedelta):
        return {"timedelta": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, bytes | bytearray):
        return {"hex": bytes(v).hex()}
    raise TypeError(f"cannot checkpoint a key value of type {type(v).__name__}")


def _encode_key(key: list[Any] | None) -> list[Any] | None:
    return None if key is None else [encode_value(v) for v in key]


def _decode_key(raw: Any) -> list[Any] | None:
    return None if raw is None else [decode_value(v) for v in raw]


def decode_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    (kind, raw), *_ = v.items()
    if kind == "decimal":
        return Decimal(raw)
    if kind == "datetime":
        return datetime.fromisoformat(raw)
    if kind == "date":
        return date.fromisoformat(raw)
    if kind == "timedelta":
        return timedelta(days=raw[0], seconds=raw[1], microseconds=raw[2])
    if kind == "hex":
        return bytes.fromhex(raw)
    raise ValueError(kind)


def _decode_inflight(raw: Any) -> tuple[list[Any] | None, list[Any]] | None:
    if raw is None:
        return None
    low, high = raw
    to_key = _decode_key(high)
    if to_key is None:
        raise ValueError("inflight without an end key")
    return _decode_key(low), to_key


@dataclass
class TableProgress:
    target: str
    last_key: list[Any] | None = None
    rows: int = 0
    done: bool = False
    inflight: tuple[list[Any] | None, list[Any]] | None = None
    """(from_key, to_key) of a batch sent but not yet recorded; None when none is."""


@dataclass
class Checkpoint:
    """Progress of one run (see module docstring)."""

    path: Path
    source: str = ""
    tables: dict[str, TableProgress] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        """The checkpoint at ``path``, None if there is none; ConfigError if unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tables = {
                name: TableProgress(
                    target=t["target"],
                    last_key=_decode_key(t["last_key"]),
                    rows=int(t["rows"]),
                    done=bool(t["done"]),
                    inflight=_decode_inflight(t.get("inflight")),
                )
                for name, t in data["tables"].items()
            }
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                str(path), None, f"unreadable checkpoint: {exc}", hint="rerun with --restart"
            ) from None
        return cls(path, str(data.get("source", "")), tables)

    def save(self) -> None:
        data = {
            "version": 1,
            "source": self.source,
            "tables": {
                name: {
                    "target": t.target,
                    "last_key": _encode_key(t.last_key),
                    "rows": t.rows,
                    "done": t.done,
                    "inflight": None
                    if t.inflight is None
                    else [_encode_key(t.inflight[0]), _encode_key(t.inflight[1])],
                }
                for name, t in self.tables.items()
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
