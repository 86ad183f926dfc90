"""``datatier keys check``: which stored backups each available age identity can open.

Read-only and key-free on the store's side: every manifest (and binlog index record)
records the public keys its objects are encrypted to, so the check lists them and matches
them against the public keys of ``encryption.identity`` (no object is read; whether an
object really opens is proven when a restore stages it). A backup is *locked* when it is
encrypted and no available identity opens it: after a key rotation, the old key is still
needed for every backup encrypted to it alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from datatier.backup.encryption import configured_identities
from datatier.backup.service import open_catalogs, usable_policies
from datatier.backup.stores import store_for
from datatier.binlog.chain import read_records
from datatier.config import LoadedConfig
from datatier.storage.base import ObjectStore


@dataclass(frozen=True)
class SealedItem:
    """A backup, or the binlog segments of one archive sharing one set of recipients."""

    kind: str  # "backup" or "binlogs"
    policy: str
    name: str  # the backup ID, or "N segments"
    store: str
    recipients: tuple[str, ...]  # empty: not encrypted
    opened_by: tuple[str, ...]  # our public keys among the recipients

    @property
    def locked(self) -> bool:
        return bool(self.recipients) and not self.opened_by

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "policy": self.policy,
            "name": self.name,
            "store": self.store,
            "encrypted": bool(self.recipients),
            "recipients": list(self.recipients),
            "opened_by": list(self.opened_by),
        }


@dataclass
class KeysReport:
    """Public keys on both sides and what each identity opens."""

    identities: tuple[str, ...]
    recipients: tuple[str, ...]  # what new backups are encrypted to
    items: list[SealedItem] = field(default_factory=list)

    @property
    def locked(self) -> list[SealedItem]:
        return [i for i in self.items if i.locked]

    def opened_by(self, identity: str) -> list[SealedItem]:
        return [i for i in self.items if identity in i.opened_by]

    @property
    def plain(self) -> list[SealedItem]:
        return [i for i in self.items if not i.recipients]

    def to_json(self) -> dict[str, Any]:
        return {
            "identities": [
                {"public_key": k, "opens": [f"{i.policy}/{i.name}" for i in self.opened_by(k)]}
                for k in self.identities
            ],
            "recipients": [
                {"public_key": k, "held_here": k in self.identities} for k in self.recipients
            ],
            "items": [i.to_json() for i in self.items],
            "locked": [f"{i.policy}/{i.name}" for i in self.locked],
            "ok": not self.locked,
        }


def check_keys(loaded: LoadedConfig) -> KeysReport:
    """Match every complete backup of every configured store, and every binlog archive of
    a MySQL policy, against the identities of ``encryption.identity`` (none: every
    encrypted backup is locked). ConfigError for an unreadable identity."""
    config = loaded.config
    identities = configured_identities(config)
    ours = identities.public if identities is not None else ()
    report = KeysReport(ours, tuple(config.encryption.recipients))

    def item(kind: str, policy: str, name: str, store: str, keys: tuple[str, ...]) -> SealedItem:
        return SealedItem(kind, policy, name, store, keys, tuple(k for k in ours if k in keys))

    for catalog in open_catalogs(loaded):
        for entry in catalog.backups():
            assert entry.manifest is not None  # complete backups have one
            report.items.append(
                item(
                    "backup",
                    entry.policy,
                    entry.backup_id,
                    catalog.store.url,
                    entry.manifest.recipients,
                )
            )
    stores: dict[str, ObjectStore] = {}  # one client per URL: each costs ~0.25 s of CPU
    for policy in usable_policies(loaded):
        if policy.spec.engine != "mysql":
            continue
        if policy.store_url not in stores:
            stores[policy.store_url] = store_for(policy.store_url, config)
        store = stores[policy.store_url]
        sets = Counter(r.recipients for r in read_records(store, policy.name) if not r.is_gap)
        for keys, count in sorted(sets.items()):
            name = f"{count} binlog segment{'s' if count != 1 else ''}"
            report.items.append(item("binlogs", policy.name, name, store.url, keys))
    return report
