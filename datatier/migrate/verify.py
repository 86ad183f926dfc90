"""``migrate verify``: counts and per-row checksums on both sides, for a sample or all rows.

Contract: for each table, :func:`verify_table` counts rows in MySQL and documents in the
target, then takes MySQL rows (a sample, or every row in key order), builds the document
each row should have become (the same converters as ``run``), fetches the target's
documents by id with ``get_all`` and compares their :func:`~datatier.migrate.documents.digest`.
It reports missing and different documents (with the fields that differ) and never
writes. Reads are ordered on the MySQL side, so the target needs no range queries
(rethinkdb-mock has no ``between`` on minval/maxval nor ``skip``/``slice``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from datatier.migrate.documents import DocumentBuilder, canonical, digest, short
from datatier.migrate.plan import TablePlan
from datatier.migrate.reader import TableReader
from datatier.migrate.target import MigrationTarget
from datatier.mysql.connection import Connection

EXAMPLES = 5


def _id_key(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True)


def _diff(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    a, b = canonical(want), canonical(got)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def verify_table(
    conn: Connection,
    plan: TablePlan,
    target: MigrationTarget,
    *,
    sample: int | None,
    batch_size: int = 500,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Compare one table (``sample=None``: every row). See module docstring."""
    builder = DocumentBuilder(plan)
    reader = TableReader(plan, builder.select_columns)
    source_rows = reader.count(conn)
    target_docs = target.count(plan.target_table)
    checked = missing = different = 0
    examples: list[dict[str, Any]] = []

    def compare(rows: Sequence[Sequence[Any]]) -> None:
        nonlocal checked, missing, different
        want = [builder.build(row) for row in rows]
        got = {
            _id_key(d["id"]): d for d in target.get_many(plan.target_table, [w["id"] for w in want])
        }
        for doc in want:
            checked += 1
            have = got.get(_id_key(doc["id"]))
            if have is None:
                missing += 1
                if len(examples) < EXAMPLES:
                    examples.append({"id": short(doc["id"]), "problem": "missing"})
            elif digest(have) != digest(doc):
                different += 1
                if len(examples) < EXAMPLES:
                    fields = ", ".join(_diff(doc, have))
                    examples.append({"id": short(doc["id"]), "problem": f"differs in {fields}"})

    if sample is None:
        after = None
        while rows := reader.batch(conn, after, batch_size):
            compare(rows)
            after = [rows[-1][i] for i in builder.key_positions]
    else:
        rows, _ = reader.sample(conn, sample, rng or random.Random())  # noqa: S311 (sampling)
        for start in range(0, len(rows), batch_size):
            compare(rows[start : start + batch_size])
    ok = missing == 0 and different == 0 and source_rows == target_docs
    return {
        "table": plan.name,
        "target": plan.target,
        "source_rows": source_rows,
        "target_documents": target_docs,
        "mode": "all" if sample is None else f"sample of {sample}",
        "checked": checked,
        "missing": missing,
        "different": different,
        "examples": examples,
        "ok": ok,
    }
