"""S3 lifecycle rules derived from backup policies, and the rules S3 puts on transitions.

Per store (``s3://bucket/prefix``) datatier manages, by rule ID (``datatier-*``; other rules
of the bucket are kept as they are):

* ``datatier-housekeeping[-PREFIX]``: under the store's prefix, abort incomplete multipart
  uploads after :data:`ABORT_MPU_DAYS` day, expire *noncurrent* versions (what ``backups
  prune`` deleted, kept by versioning) after :data:`NONCURRENT_DAYS` days, and remove
  expired delete markers. Current objects never expire by lifecycle: retention is prune's
  job, and an expiry rule would delete the newest good backup if backups stopped.
* ``datatier-archive-POLICY``: objects under ``PREFIX/POLICY/`` tagged ``datatier-kind=data``
  (never manifests) move to the policy's ``archive_class`` after ``archive_after_days``.

:func:`validate_transitions` refuses chains S3 rejects or cannot carry out: a class that is
not colder than the one before it (DEEP_ARCHIVE then GLACIER), STANDARD_IA/ONEZONE_IA before
day 30, and leaving an IA class less than 30 days after entering it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datatier.backup.policy import ARCHIVE_ORDER, Policy
from datatier.backup.service import DATA_TAGS
from datatier.errors import ConfigError

ABORT_MPU_DAYS = 1
NONCURRENT_DAYS = 30
MANAGED_PREFIX = "datatier-"
# The tags backups put on data objects (never on manifests), as a lifecycle filter.
DATA_TAG_FILTER = tuple(sorted(DATA_TAGS.items()))
# Coldness of each class as a lifecycle target; a transition must go strictly colder. The
# policy's order, plus the classes a lifecycle may target that a policy may not name.
COLDNESS = {
    **ARCHIVE_ORDER,
    "ONEZONE_IA": ARCHIVE_ORDER["STANDARD_IA"],
    "INTELLIGENT_TIERING": ARCHIVE_ORDER["STANDARD_IA"],
}
IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
IA_MIN_DAYS = 30


@dataclass(frozen=True)
class Transition:
    """Move objects to ``storage_class`` ``days`` days after creation."""

    days: int
    storage_class: str


@dataclass(frozen=True)
class LifecycleRule:
    """One lifecycle rule in a normalised form that S3's answers are compared against."""

    rule_id: str
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    transitions: tuple[Transition, ...] = ()
    abort_mpu_days: int | None = None
    noncurrent_days: int | None = None
    expired_delete_marker: bool = False
    enabled: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        return self.rule_id.startswith(MANAGED_PREFIX)

    def to_json(self) -> dict[str, Any]:
        """A stable, JSON-able form (plans, fingerprints, output)."""
        doc: dict[str, Any] = {"id": self.rule_id, "prefix": self.prefix}
        if self.tags:
            doc["tags"] = dict(self.tags)
        if self.transitions:
            doc["transitions"] = [
                {"days": t.days, "storage_class": t.storage_class} for t in self.transitions
            ]
        if self.abort_mpu_days is not None:
            doc["abort_incomplete_multipart_upload_days"] = self.abort_mpu_days
        if self.noncurrent_days is not None:
            doc["noncurrent_version_expiration_days"] = self.noncurrent_days
        if self.expired_delete_marker:
            doc["expired_object_delete_marker"] = True
        if not self.enabled:
            doc["enabled"] = False
        if self.extra:
            doc["other"] = dict(self.extra)
        return doc

    def to_s3(self) -> dict[str, Any]:
        """The rule as PutBucketLifecycleConfiguration wants it."""
        rule: dict[str, Any] = {"ID": self.rule_id}
        rule["Status"] = "Enabled" if self.enabled else "Disabled"
        if self.tags:
            tags = [{"Key": k, "Value": v} for k, v in self.tags]
            if not self.prefix and len(tags) == 1:
                rule["Filter"] = {"Tag": tags[0]}
            else:
                rule["Filter"] = {"And": {"Prefix": self.prefix, "Tags": tags}}
        else:
            rule["Filter"] = {"Prefix": self.prefix}
        if self.transitions:
            rule["Transitions"] = [
                {"Days": t.days, "StorageClass": t.storage_class} for t in self.transitions
            ]
        if self.abort_mpu_days is not None:
            rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": self.abort_mpu_days}
        if self.noncurrent_days is not None:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": self.noncurrent_days}
        if self.expired_delete_marker:
            rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
        return rule


def rule_from_s3(raw: Mapping[str, Any]) -> LifecycleRule:
    """Normalise one rule of GetBucketLifecycleConfiguration (AWS and moto shapes)."""
    prefix = str(raw.get("Prefix") or "")
    tags: list[tuple[str, str]] = []
    filt = raw.get("Filter") or {}
    if "And" in filt:
        prefix = str(filt["And"].get("Prefix") or "")
        tags = [(t["Key"], t["Value"]) for t in filt["And"].get("Tags", [])]
    elif "Tag" in filt:
        tags = [(filt["Tag"]["Key"], filt["Tag"]["Value"])]
    elif "Prefix" in filt:
        prefix = str(filt.get("Prefix") or "")
    transitions = tuple(
        Transition(int(t.get("Days", 0)), str(t["StorageClass"]))
        for t in raw.get("Transitions", [])
        if "StorageClass" in t
    )
    expiration = raw.get("Expiration") or {}
    known = {"ID", "Prefix", "Filter", "Status", "Transitions", "Expiration"}
    known |= {"AbortIncompleteMultipartUpload", "NoncurrentVersionExpiration"}
    extra = {k: v for k, v in raw.items() if k not in known}
    extra.update(
        {f"Expiration.{k}": v for k, v in expiration.items() if k != "ExpiredObjectDeleteMarker"}
    )
    abort = raw.get("AbortIncompleteMultipartUpload")
    noncurrent = raw.get("NoncurrentVersionExpiration")
    return LifecycleRule(
        rule_id=str(raw.get("ID", "")),
        prefix=prefix,
        tags=tuple(sorted(tags)),
        transitions=tuple(sorted(transitions, key=lambda t: t.days)),
        abort_mpu_days=int(abort["DaysAfterInitiation"]) if abort else None,
        noncurrent_days=int(noncurrent["NoncurrentDays"])
        if noncurrent and noncurrent.get("NoncurrentDays") is not None
        else None,
        expired_delete_marker=bool(expiration.get("ExpiredObjectDeleteMarker")),
        enabled=raw.get("Status", "Enabled") == "Enabled",
        extra=extra,
    )


def validate_transitions(
    transitions: Sequence[Transition], *, start: str = "STANDARD", source: str, key: str
) -> None:
    """ConfigError (naming ``source`` and ``key``) unless objects that start in ``start``
    can follow ``transitions`` in order (see module docstring)."""
    current, entered = start, 0
    for t in transitions:
        if t.storage_class not in COLDNESS or t.storage_class == "STANDARD":
            raise ConfigError(source, key, f"{t.storage_class} is not a lifecycle target class")
        if t.days < 0:
            raise ConfigError(source, key, f"{t.storage_class} after {t.days} days: negative")
        if COLDNESS[t.storage_class] <= COLDNESS.get(current, 0):
            raise ConfigError(
                source,
                key,
                f"{t.storage_class} after {t.days} days comes after {current}, which is "
                f"as cold or colder: transitions must go from warmer to colder classes",
            )
        if t.days < entered:
            raise ConfigError(
                source, key, f"{t.storage_class} on day {t.days} is before day {entered}"
            )
        if t.storage_class in IA_CLASSES and t.days < IA_MIN_DAYS:
            raise ConfigError(
                source,
                key,
                f"{t.storage_class} after {t.days} days: S3 moves objects to "
                f"{t.storage_class} no earlier than {IA_MIN_DAYS} days after creation",
            )
        if current in IA_CLASSES and t.days - entered < IA_MIN_DAYS:
            raise ConfigError(
                source,
                key,
                f"{t.storage_class} after {t.days} days: objects must stay "
                f"{IA_MIN_DAYS} days in {current} (from day {entered}) before they move on",
            )
        current, entered = t.storage_class, t.days


def policy_transitions(policy: Policy) -> tuple[Transition, ...]:
    """The transitions of a policy's data objects (validated; empty when it never archives)."""
    storage = policy.spec.storage
    if storage.archive_after_days <= 0:
        return ()
    chain = (Transition(storage.archive_after_days, storage.archive_class),)
    validate_transitions(chain, start=storage.initial_class, source=str(policy.path), key="storage")
    return chain


def store_rules(prefix: str, policies: Iterable[Policy]) -> list[LifecycleRule]:
    """The managed rules for one store (``prefix`` without slashes) and its policies."""
    base = f"{prefix}/" if prefix else ""
    rules = [
        LifecycleRule(
            rule_id=f"{MANAGED_PREFIX}housekeeping" + (f"-{prefix}" if prefix else ""),
            prefix=base,
            abort_mpu_days=ABORT_MPU_DAYS,
            noncurrent_days=NONCURRENT_DAYS,
            expired_delete_marker=True,
        )
    ]
    for policy in sorted(policies, key=lambda p: p.name):
        chain = policy_transitions(policy)
        if chain:
            rules.append(
                LifecycleRule(
                    rule_id=f"{MANAGED_PREFIX}archive-"
                    + (f"{prefix}-" if prefix else "")
                    + policy.name,
                    prefix=f"{base}{policy.name}/",
                    tags=DATA_TAG_FILTER,
                    transitions=chain,
                )
            )
    return rules
