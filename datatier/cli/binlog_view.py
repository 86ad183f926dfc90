"""How binlog retention shows in ``backups prune`` (a line, or JSON)."""

from __future__ import annotations

from typing import Any

from datatier.binlog.retention import BinlogPrunePlan
from datatier.display import human_bytes


def binlog_prune_json(plan: BinlogPrunePlan) -> dict[str, Any]:
    return {
        "horizon": str(plan.horizon),
        "delete": [
            {"seq": r.seq, "key": r.key, "kind": r.kind, "size": r.size, "to": str(r.gtid_end)}
            for r in plan.delete
        ],
        "orphans": [o.key for o in plan.orphans],
        "kept": plan.kept,
        "bytes": plan.bytes,
    }


def binlog_prune_line(plan: BinlogPrunePlan, executed: bool) -> str:
    verb = "deleted" if executed else "would delete"
    return (
        f"binlogs: {verb} {len(plan.delete)} segment record(s) and {len(plan.orphans)} "
        f"unindexed object(s) ({human_bytes(plan.bytes)}) wholly before every kept backup "
        f"(oldest kept position {plan.horizon or '(none)'}); keep {plan.kept}"
    )
