"""Plain-text rendering of plans, runs and verifications for people (JSON is ``to_json``)."""

from __future__ import annotations

from typing import Any

from datatier.display import human_bytes, table
from datatier.migrate.plan import ASSUMED_DOCS_PER_SECOND, TablePlan, Verdict

VERDICTS: dict[Verdict, str] = {
    "ready": "READY", "warnings": "READY WITH WARNINGS", "blocked": "BLOCKED"
}  # fmt: skip


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.1f} min"
    return f"~{seconds / 3600:.1f} h"


def plan_text(plan: TablePlan) -> str:
    """One table's plan: verdict, key, estimates, sample, fields, indexes, findings."""
    lines = [f"{plan.name} -> rethinkdb {plan.target}: {VERDICTS[plan.verdict]}"]
    key = plan.key
    if key.kind == "single":
        lines.append(f"  key: id <- {key.columns[0]} ({key.source})")
    elif key.kind == "generated":
        lines.append(
            f"  key: id <- JSON array of ({', '.join(key.columns)}) ({key.source}), "
            "columns kept, compound index"
        )
    else:
        lines.append("  key: NONE")
    est = plan.estimates
    if est is not None:
        lines.append(
            f"  documents: {est.documents:,} ({'exact' if est.exact else 'estimate'}), "
            f"~{human_bytes(est.bytes)}, {_duration(est.seconds)} at "
            f"{ASSUMED_DOCS_PER_SECOND:,} docs/s (assumed)"
        )
    if plan.sample is not None:
        s = plan.sample
        fails = sum(f["count"] for f in s["failures"].values())
        lines.append(
            f"  sample: {s['rows']:,} rows ({s['method']}): {fails} value(s) would fail, "
            f"{sum(s['zero_dates'].values())} zero date(s) -> null"
        )
    rows = [
        {
            "column": f.column.name,
            "mysql type": f.column.column_type,
            "cast": "skip" if f.skipped else f.cast or "NONE",
            "field": None if f.skipped else f.field,
            "risks": len(f.risks) or None,
        }
        for f in plan.fields
    ]
    body = table(rows, ("column", "mysql type", "cast", "field", "risks"))
    lines.extend("  " + line for line in body.splitlines())
    for idx in plan.indexes:
        kind = "compound" if len(idx.fields) > 1 else "index"
        extra = ", unique NOT enforced" if idx.unique_lost else ""
        lines.append(f"  {kind} {idx.name} on ({', '.join(idx.fields)}) from {idx.source}{extra}")
    order = {"error": 0, "warning": 1, "info": 2}
    for f in sorted(plan.findings, key=lambda f: order[f.level]):
        where = f"{f.column}: " if f.column else ""
        lines.append(f"  {f.level.upper():<7} {where}{f.text}")
    return "\n".join(lines)


def why_blocked(plan: TablePlan) -> str:
    """The short reason a table is blocked: the failing columns, else the first error."""
    columns = sorted({f.column for f in plan.errors() if f.column})
    if columns:
        return "values fail their cast in " + ", ".join(columns)
    return plan.errors()[0].text.split(":")[0]


def plans_summary(plans: list[TablePlan]) -> str:
    """One verdict line per table, then the counts."""
    width = max((len(p.name) for p in plans), default=0)
    lines = ["verdicts:"]
    for p in plans:
        reason = f" ({why_blocked(p)})" if p.verdict == "blocked" else ""
        lines.append(f"  {p.name:<{width}}  {VERDICTS[p.verdict]}{reason}")
    counts = {v: sum(p.verdict == v for p in plans) for v in VERDICTS}
    lines.append(
        f"verdict: {counts['ready']} ready, {counts['warnings']} ready with warnings, "
        f"{counts['blocked']} blocked"
    )
    return "\n".join(lines)


def verify_text(results: list[dict[str, Any]]) -> str:
    rows = [
        {
            **r,
            "result": "OK" if r["ok"] else "MISMATCH",
        }
        for r in results
    ]
    out = table(
        rows,
        (
            "table",
            "target",
            "source_rows",
            "target_documents",
            "checked",
            "missing",
            "different",
            "result",
        ),
    )
    for r in results:
        for e in r["examples"]:
            out += f"\n  {r['table']} id {e['id']}: {e['problem']}"
    return out
