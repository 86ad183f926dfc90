"""How ``datatier backups`` shows catalog data: JSON documents and text-table rows.

Pure functions from catalog and lifecycle objects to dicts and strings; the commands in
:mod:`datatier.cli.backups_cmd` print them (``--json`` documents are part of the CLI's
interface: keep their keys stable).
"""

from __future__ import annotations

from typing import Any

from datatier.backup.archive import ArchivePlan
from datatier.backup.catalog import BackupEntry
from datatier.backup.chain import chain_links
from datatier.backup.manifest import Manifest
from datatier.backup.prune import PrunePlan, PruneResult, PruneTarget
from datatier.display import human_bytes


def classes(counts: dict[str, int]) -> str:
    """``CLASS:count,...`` for a text table, or ``-`` when there are none."""
    return ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"


def pairs(section: dict[str, Any]) -> str:
    """``key=value`` pairs of the non-empty values of ``section``, or ``-``."""
    return "  ".join(f"{k}={v}" for k, v in section.items() if v not in (None, "", [], {})) or "-"


def chain_labels(entries: list[BackupEntry]) -> dict[tuple[str, str], str]:
    """(policy, backup ID) -> how the backup stands in its chain (``full``,
    ``incremental 2 on ID``, ``broken: ...``), for the complete backups of ``entries``."""
    by_policy: dict[str, dict[str, Manifest]] = {}
    for entry in entries:
        if entry.manifest is not None:
            by_policy.setdefault(entry.policy, {})[entry.backup_id] = entry.manifest
    return {
        (policy, backup_id): link.label
        for policy, manifests in by_policy.items()
        for backup_id, link in chain_links(manifests).items()
    }


def entry_json(entry: BackupEntry, store_url: str, chain: str | None = None) -> dict[str, Any]:
    """One row of ``backups list``; ``chain`` from :func:`chain_labels`."""
    m = entry.manifest
    return {
        "id": entry.backup_id,
        "policy": entry.policy,
        "state": entry.state.value,
        "engine": m.engine if m else None,
        "created_at": entry.created_at.isoformat(),
        "started_at": m.started_at if m else None,
        "finished_at": m.finished_at if m else None,
        "objects": len(entry.data_objects),
        "bytes": entry.bytes,
        "storage_classes": entry.storage_classes(),
        "store": store_url,
        "problem": entry.problem,
        "parent": m.parent if m else None,
        "chain": chain,
    }


def show_json(
    manifest: Manifest, store_url: str, live: dict[str, int], chain: list[str] | None = None
) -> dict[str, Any]:
    """``backups show``: the manifest's summary; ``live`` counts data objects per class now;
    ``chain`` the backup IDs from the full backup to this one."""
    by_kind: dict[str, dict[str, int]] = {}
    for obj in manifest.objects:
        slot = by_kind.setdefault(obj.kind, {"count": 0, "bytes": 0, "raw_bytes": 0})
        slot["count"] += 1
        slot["bytes"] += obj.size
        slot["raw_bytes"] += obj.raw_size
    return {
        "id": manifest.backup_id,
        "policy": manifest.policy,
        "store": store_url,
        "engine": manifest.engine,
        "tool_version": manifest.tool_version,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at,
        "source": manifest.source,
        "consistency": manifest.consistency,
        "timings": manifest.timings,
        "parent": manifest.parent,
        "chain": chain if chain is not None else [manifest.backup_id],
        "databases": sorted({t.database for t in manifest.tables} | set(manifest.databases)),
        "tables": [
            {"database": t.database, "name": t.name, "rows": t.rows, "data_bytes": t.data_bytes}
            for t in manifest.tables
        ],
        "objects": {
            "count": len(manifest.objects),
            "bytes": manifest.total_bytes,
            "raw_bytes": manifest.raw_bytes,
            "by_kind": by_kind,
            "by_class_recorded": manifest.storage_classes(),
            "by_class_live": live,
        },
    }


def prune_json(plan: PrunePlan) -> dict[str, Any]:
    """``backups prune --json``: the plan (the command adds ``executed`` and ``result``)."""

    def target(t: PruneTarget) -> dict[str, Any]:
        return {
            "id": t.backup_id,
            "state": t.state.value,
            "reason": t.reason,
            "objects": len(t.keys),
            "bytes": t.bytes,
        }

    return {
        "policy": plan.policy,
        "store": plan.store_url,
        "now": plan.now.isoformat(),
        "grace_hours": plan.grace.total_seconds() / 3600,
        "keep": [
            {"id": k.backup_id, "reasons": list(k.reasons), "bytes": k.bytes} for k in plan.keep
        ],
        "delete": [target(t) for t in plan.delete],
        "spared": [target(t) for t in plan.spared],
        "uploads": [{"key": u.key, "initiated": u.initiated} for u in plan.uploads],
        "damaged": [
            {"id": d.backup_id, "problem": d.problem, "bytes": d.bytes} for d in plan.damaged
        ],
        "bytes_freed": plan.bytes_freed,
    }


def prune_result_json(result: PruneResult) -> dict[str, Any]:
    return {
        "backups": result.backups,
        "objects": result.objects,
        "bytes": result.bytes,
        "uploads_aborted": result.uploads_aborted,
        "spared_completed": result.spared,
    }


def prune_rows(plan: PrunePlan) -> list[dict[str, Any]]:
    """Rows (action, id, size, why) of the prune plan's text table."""
    rows: list[dict[str, Any]] = [
        {
            "action": "keep",
            "id": k.backup_id,
            "size": human_bytes(k.bytes),
            "why": ", ".join(k.reasons),
        }
        for k in plan.keep
    ]
    rows += [
        {"action": "delete", "id": t.backup_id, "size": human_bytes(t.bytes), "why": t.reason}
        for t in plan.delete
    ]
    rows += [
        {"action": "spare", "id": t.backup_id, "size": human_bytes(t.bytes), "why": t.reason}
        for t in plan.spared
    ]
    rows += [
        {
            "action": "damaged",
            "id": d.backup_id,
            "size": human_bytes(d.bytes),
            "why": f"{d.problem}; kept for inspection, not counted by retention",
        }
        for d in plan.damaged
    ]
    rows += [
        {"action": "abort-upload", "id": u.key, "why": f"started {u.initiated}"}
        for u in plan.uploads
    ]
    return rows


def archive_json(plan: ArchivePlan) -> dict[str, Any]:
    """``backups archive --json``: one policy's plan (the command adds ``executed``, ``moved``)."""
    return {
        "policy": plan.policy,
        "store": plan.store_url,
        "now": plan.now.isoformat(),
        "target": plan.target,
        "after_days": plan.after_days,
        "objects": [
            {"id": m.backup_id, "key": m.key, "bytes": m.size, "from": m.from_class}
            for m in plan.moves
        ],
        "bytes": plan.bytes,
        "skipped": plan.skipped,
        "newest_kept": plan.newest_kept,
        "small_kept": plan.small_kept,
    }
