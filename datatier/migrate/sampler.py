"""Run sampled (or all) rows through the real converters and count what would fail.

Contract: :func:`analyse` uses the same :class:`~datatier.migrate.documents.DocumentBuilder`
as ``run``, so a value reported here is exactly one the run would stop on. It keeps up to
3 examples per column (key, value, why) and the average canonical document size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from datatier.migrate.documents import DocumentBuilder, canonical_json, short

EXAMPLES = 3


def analyse(builder: DocumentBuilder, rows: Iterable[Sequence[Any]], method: str) -> dict[str, Any]:
    """Failures, zero dates and sizes over ``rows`` (see module docstring)."""
    casts = {f.column.name: f.cast for f in builder.plan.fields}
    failures: dict[str, dict[str, Any]] = {}
    zero_dates: dict[str, int] = {}
    count = 0
    size = 0
    for row in rows:
        count += 1
        doc, problems, zeros = builder.check(row)
        size += len(canonical_json(doc).encode("utf-8"))
        for column, value, why in problems:
            info = failures.setdefault(
                column, {"cast": casts.get(column, "key"), "count": 0, "examples": []}
            )
            info["count"] += 1
            if len(info["examples"]) < EXAMPLES:
                info["examples"].append(
                    {"key": builder.key_of(row), "value": short(value), "problem": why}
                )
        for column in zeros:
            zero_dates[column] = zero_dates.get(column, 0) + 1
    return {
        "rows": count,
        "method": method,
        "failures": failures,
        "zero_dates": zero_dates,
        "avg_doc_bytes": round(size / count, 1) if count else 0.0,
    }
