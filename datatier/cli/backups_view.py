"""How ``datatier backups`` shows catalog data: each command's :class:`Output` (its JSON
document and its text).

Pure functions from catalog, prune and archive objects to outputs; the commands in
:mod:`datatier.cli.backups_cmd` emit them (``--json`` documents are part of the CLI's
interface: keep their keys stable).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from datatier.backup.archive import ArchivePlan
from datatier.backup.catalog import BackupEntry, VerifyReport
from datatier.backup.chain import chain_links
from datatier.backup.manifest import Manifest
from datatier.backup.prune import PrunePlan, PruneResult, PruneTarget
from datatier.binlog.retention import BinlogPrunePlan
from datatier.cli.binlog_view import binlog_prune_json, binlog_prune_line
from datatier.cli.output import Output
from datatier.display import human_bytes, table

LIST_COLUMNS = (
    "id", "policy", "state", "engine", "finished_at", "objects", "size", "classes", "chain"
)  # fmt: skip


def classes(counts: dict[str, int]) -> str:
    """``CLASS:count,...`` for a text table, or ``-`` when there are none."""
    return ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"


def pairs(section: dict[str, Any]) -> str:
    """``key=value`` pairs of the non-empty values of ``section``, or ``-`` (a physical
    backup's page sample as its page count: ``--json`` has it whole)."""

    def shown(value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("pages"), list):
            return f"{len(value['pages'])} pages"
        return value

    return (
        "  ".join(f"{k}={shown(v)}" for k, v in section.items() if v not in (None, "", [], {}))
        or "-"
    )


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
        "encryption": manifest.encryption or None,
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


def list_output(
    shown: list[tuple[BackupEntry, str]],
    chains: dict[tuple[str, str], str],
    hidden: dict[str, int],
) -> Output:
    """``backups list``: one row per backup (entry, store URL) under ``backups``; ``count``;
    ``not_shown``: how many backups of each state were left out (without ``--all``)."""
    rows = [entry_json(e, url, chains.get((e.policy, e.backup_id))) for e, url in shown]
    doc = {"backups": rows, "count": len(rows), "not_shown": dict(sorted(hidden.items()))}

    def text() -> str:
        rows = [
            {
                **entry_json(e, url, chains.get((e.policy, e.backup_id)) or "-"),
                "size": human_bytes(e.bytes),
                "classes": classes(e.storage_classes()),
            }
            for e, url in shown
        ]
        return table(rows, LIST_COLUMNS)

    return Output(doc, text, legacy_list="backups")


def show_output(manifest: Manifest, doc: dict[str, Any], live: dict[str, int]) -> Output:
    """``backups show``: ``doc`` from :func:`show_json` (``live``: data objects per class)."""

    def text() -> str:
        lines = [
            f"backup       {manifest.backup_id}  policy {manifest.policy}  ({doc['store']})",
            f"engine       {manifest.engine} (datatier {manifest.tool_version})",
        ]
        if manifest.parent is not None:
            lines.append(f"chain        {doc.get('chain_problem') or ' -> '.join(doc['chain'])}")
        lines.append(f"started      {manifest.started_at}   finished {manifest.finished_at}")
        for label, section in (("source", manifest.source), ("consistency", manifest.consistency)):
            lines.append(f"{label:<12} {pairs(section)}")
        lines.append(f"timings      {pairs(manifest.timings)}")
        if manifest.recipients:
            lines.append(f"encryption   age, to {', '.join(manifest.recipients)}")
        objects = doc["objects"]
        lines.append(
            f"objects      {objects['count']}: {human_bytes(objects['bytes'])} stored, "
            f"{human_bytes(objects['raw_bytes'])} raw; classes now {classes(live)}"
        )
        kinds = [
            {"kind": kind, "objects": v["count"], "size": human_bytes(v["bytes"])}
            for kind, v in objects["by_kind"].items()
        ]
        lines.append("\n" + table(kinds, ("kind", "objects", "size")))
        rows = [{**t, "size": human_bytes(t["data_bytes"])} for t in doc["tables"]]
        if rows:
            lines.append("\n" + table(rows, ("database", "name", "rows", "size")))
        held = [
            {"database": db, "tables": len(v.get("tables", [])), "views": len(v.get("views", [])),
             "size": human_bytes(int(v.get("bytes") or 0))}
            for db, v in sorted(manifest.databases.items()) if "tables" in v
        ]  # fmt: skip
        if held:  # physical: what the stream holds, per database
            lines.append("\n" + table(held, ("database", "tables", "views", "size")))
        return "\n".join(lines)

    return Output(doc, text)


def verify_output(
    manifest: Manifest,
    store_url: str,
    chain: list[Manifest],
    reports: list[VerifyReport],
    tested: dict[str, Any] | None,
    accepted: dict[str, list[str]] | None = None,
) -> Output:
    """``backups verify``: what was checked (the whole chain of an incremental), the
    restore test's report and, with ``--accept-etags``, the objects whose listed ETag was
    recorded, per backup whose manifest was written again (``accepted``)."""
    objects = sum(r.objects for r in reports)
    checked = sum(r.bytes for r in reports)
    seconds = sum(r.seconds for r in reports)
    doc: dict[str, Any] = {
        "id": manifest.backup_id,
        "policy": manifest.policy,
        "store": store_url,
        "ok": True,
        "objects": objects,
        "bytes": checked,
        "seconds": seconds,
    }
    if len(chain) > 1:
        doc["chain"] = [m.backup_id for m in chain]
    if tested is not None:
        doc["restore_test"] = tested
    whole = f" (chain of {len(chain)} backups)" if len(chain) > 1 else ""
    lines = [
        f"OK {manifest.policy}/{manifest.backup_id}{whole}: {objects} objects, "
        f"{human_bytes(checked)} checked in {seconds:.1f} s"
    ]
    if accepted is not None:
        doc["accepted_etags"] = accepted
        lines += [
            f"ETags accepted: manifest of {backup} rewritten with the listed ETags of "
            f"{len(keys)} object(s)"
            for backup, keys in accepted.items()
        ] or ["ETags: every recorded one matches the listing; no manifest was changed"]
    if tested is not None:
        lines.append(f"OK restore test: {tested['summary']} ({tested['seconds']:.1f} s)")
    return Output(doc, "\n".join(lines))


def prune_output(
    policy: str,
    plan: PrunePlan,
    result: PruneResult | None,
    binlogs: BinlogPrunePlan | None,
    executed: bool,
) -> Output:
    """``backups prune``: the plan, what was done (``result``) and the binlogs' part."""
    doc = prune_json(plan)
    doc["executed"] = executed
    if result is not None:
        doc["result"] = prune_result_json(result)
    if binlogs is not None:
        doc["binlogs"] = binlog_prune_json(binlogs)

    def text() -> str:
        lines = [table(prune_rows(plan), ("action", "id", "size", "why"))]
        if binlogs is not None:
            lines.append(binlog_prune_line(binlogs, executed))
        summary = (
            f"{policy} at {plan.store_url}: keep {len(plan.keep)}, delete {len(plan.delete)} "
            f"({human_bytes(plan.bytes_freed)}), abort {len(plan.uploads)} incomplete upload(s)"
        )
        if plan.damaged:
            summary += f"; {len(plan.damaged)} damaged backup(s) left in place (see above)"
        if result is None:
            lines.append(f"dry run: {summary}; nothing deleted (add --execute)")
        else:
            spared = (
                f"; spared {len(result.spared)} that completed meanwhile" if result.spared else ""
            )
            lines.append(
                f"pruned {summary}: deleted {result.objects} objects, "
                f"aborted {result.uploads_aborted} upload(s){spared}"
            )
        return "\n".join(lines)

    return Output(doc, text)


def archive_output(done: list[tuple[ArchivePlan, int]], executed: bool, now: datetime) -> Output:
    """``backups archive``: per policy (under ``policies``), its plan and how many objects
    were moved; the totals of all of them."""
    docs = [{**archive_json(plan), "executed": executed, "moved": moved} for plan, moved in done]
    summary = {
        "policies": docs,
        "executed": executed,
        "now": now.isoformat(),
        "objects": sum(len(d["objects"]) for d in docs),
        "bytes": sum(plan.bytes for plan, _ in done),
        "moved": sum(moved for _, moved in done),
    }

    def text() -> str:
        rows = [
            {"policy": plan.policy, "id": bid, "objects": n, "to": plan.target}
            for plan, _ in done
            for bid, n in sorted(Counter(m.backup_id for m in plan.moves).items())
        ]
        lines = [table(rows, ("policy", "id", "objects", "to"))] if rows else []
        total = sum(len(d["objects"]) for d in docs)
        verb = "re-classed" if executed else "would re-class (dry run; add --execute)"
        lines.append(f"{verb} {total} object(s) as of {now.isoformat()}")
        for doc in docs:
            if doc["newest_kept"] or doc["small_kept"]:
                lines.append(
                    f"{doc['policy']}: left in place the newest backup ({doc['newest_kept']}) "
                    f"and {doc['small_kept']} object(s) under archive.min_object_kb"
                )
        return "\n".join(lines)

    return Output(summary, text, legacy_list="policies")
