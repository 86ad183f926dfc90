"""Incremental chains: a backup whose manifest names a ``parent`` needs that parent, and its
parent's parent, back to a full backup (no parent).

A chain is listed oldest first: ``[full, incremental 1, ..., the backup]``. It is *broken*
when a member is missing, incomplete or unreadable, belongs to another policy or engine, or
the parents loop. A broken chain is reported (``backups list``, ``verify``: exit 4) and
never restored. Prune keeps every backup that a kept backup depends on
(:func:`needed_parents`). Engine-specific links (LSNs, server identity) are the engine's
to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from datatier.backup.catalog import BackupState, Catalog
from datatier.backup.manifest import Manifest
from datatier.errors import IntegrityFailure

MAX_LENGTH = 1000
"""Longer parent walks are treated as loops."""


@dataclass(frozen=True)
class ChainLink:
    """How one backup stands in its chain, for listings."""

    parent: str | None
    root: str | None  # the full backup at the chain's start; None when broken
    depth: int  # 0 for a full backup
    problem: str | None = None

    @property
    def label(self) -> str:
        if self.problem:
            return f"broken: {self.problem}"
        if self.parent is None:
            return "full"
        return f"incremental {self.depth} on {self.parent}"


def resolve_chain(catalog: Catalog, manifest: Manifest) -> list[Manifest]:
    """``manifest``'s chain, full backup first; IntegrityFailure naming the broken link."""
    chain = [manifest]
    current = manifest
    while current.parent is not None:
        if len(chain) > MAX_LENGTH or current.parent in {m.backup_id for m in chain}:
            raise IntegrityFailure(f"backup {manifest.backup_id}: its chain of parents loops")
        entry = catalog.lookup(current.parent, manifest.policy)
        if entry is None or entry.state is BackupState.INCOMPLETE:
            what = "missing" if entry is None else "incomplete (no manifest)"
            raise IntegrityFailure(
                f"backup {manifest.backup_id} is part of a broken chain: parent "
                f"{current.parent} of {current.backup_id} is {what}",
                hint="a broken chain is never restored; restore an older complete chain, "
                "and take a full backup",
            )
        parent = catalog.complete(entry)
        if parent.engine != manifest.engine:
            raise IntegrityFailure(
                f"backup {manifest.backup_id}: parent {parent.backup_id} is a {parent.engine} "
                f"backup, not {manifest.engine}"
            )
        chain.append(parent)
        current = parent
    chain.reverse()
    return chain


def chain_links(manifests: Mapping[str, Manifest]) -> dict[str, ChainLink]:
    """How each backup of one policy (backup ID -> manifest) stands in its chain."""
    links: dict[str, ChainLink] = {}

    def link(backup_id: str, seen: tuple[str, ...]) -> ChainLink:
        if backup_id in links:
            return links[backup_id]
        parent = manifests[backup_id].parent
        if parent is None:
            found = ChainLink(None, backup_id, 0)
        elif parent in seen or len(seen) > MAX_LENGTH:
            found = ChainLink(parent, None, 0, "its parents loop")
        elif parent not in manifests:
            found = ChainLink(parent, None, 0, f"parent {parent} is missing")
        else:
            up = link(parent, (*seen, backup_id))
            problem = None if up.problem is None else f"ancestor broken ({up.problem})"
            found = ChainLink(parent, up.root if problem is None else None, up.depth + 1, problem)
        links[backup_id] = found
        return found

    for backup_id in manifests:
        link(backup_id, ())
    return links


def needed_parents(manifests: Mapping[str, Manifest | None], kept: Iterable[str]) -> dict[str, str]:
    """Backups that kept backups depend on and that are not kept themselves: backup ID ->
    why (``parent of ID``). Parents that are not in ``manifests`` are skipped (their
    dependants' chains are broken already)."""
    keep = set(kept)
    needed: dict[str, str] = {}
    for backup_id in sorted(keep):
        child = backup_id
        manifest = manifests.get(child)
        steps = 0
        while manifest is not None and manifest.parent is not None and steps < MAX_LENGTH:
            parent = manifest.parent
            if parent not in manifests:
                break
            if parent not in keep and parent not in needed:
                needed[parent] = f"parent of {child}"
            child, manifest, steps = parent, manifests.get(parent), steps + 1
    return needed
