"""The run's checkpoint: per table, the last key written, so an interrupted run resumes.

Contract: :meth:`Checkpoint.save` replaces the file atomically (write, fsync, rename) after
every batch the target acknowledged, so the file never names a key whose batch was not
written. Key values (ints, strings, decimals, dates, bytes...) round-trip exactly.
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


@dataclass
class TableProgress:
    target: str
    last_key: list[Any] | None = None
    rows: int = 0
    done: bool = False


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
                    last_key=None
                    if t["last_key"] is None
                    else [decode_value(v) for v in t["last_key"]],
                    rows=int(t["rows"]),
                    done=bool(t["done"]),
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
                    "last_key": None
                    if t.last_key is None
                    else [encode_value(v) for v in t.last_key],
                    "rows": t.rows,
                    "done": t.done,
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
