"""Text for people, shared by the command line and the reports services render: byte
sizes, durations and aligned tables. Nothing here prints; callers decide where text goes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def human_bytes(n: float) -> str:
    """``512 B``, ``1.5 KiB``, ... up to TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An aligned plain-text table of ``rows`` restricted to ``columns``; '-' for missing."""
    cells = [[str(c).upper() for c in columns]]
    cells += [["-" if r.get(c) is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
