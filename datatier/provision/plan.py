"""Plan and apply: observe each resource, diff it with its desired state, change only that.

Contract. A :class:`Provisioner` observes one resource as a JSON-able document
(:meth:`~Provisioner.observe`), lists the :class:`Change` items that would bring it to the
desired state (:meth:`~Provisioner.diff`, which changes nothing) and carries out one change
(:meth:`~Provisioner.apply_change`). A :class:`Plan` holds, per resource, the changes and
the SHA-256 *fingerprint* of what was observed. :func:`apply_plan` observes every resource
again first and refuses (UsageError, exit 2, nothing changed) if any fingerprint differs:
the world changed since the plan was made. Plans are saved as JSON (``--out FILE``) and
applied later with ``apply --plan FILE``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datatier.errors import UsageError
from datatier.log import get_logger

log = get_logger(__name__)

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Change:
    """One difference: ``item`` of ``resource`` goes from ``before`` to ``after``."""

    resource: str
    item: str
    action: str  # create | update | apply
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "item": self.item,
            "action": self.action,
            "before": self.before,
            "after": self.after,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Change:
        return cls(doc["resource"], doc["item"], doc["action"], doc["before"], doc["after"])


class Provisioner(ABC):
    """Abstract base of everything ``provision`` manages (buckets, schemas).

    ``resource`` names it uniquely in a plan (``s3://bucket``, ``mysql primary``). ``observe``
    must not change anything; ``diff`` is a pure function of the observed document and the
    desired state given at construction; ``apply_change`` carries out one change of a diff
    of the current state and raises a :class:`~datatier.errors.DatatierError` on failure.
    """

    kind: str = "resource"

    @property
    @abstractmethod
    def resource(self) -> str:
        """The resource's unique name in a plan."""

    @abstractmethod
    def observe(self) -> dict[str, Any]:
        """What exists now, as a JSON-able document (the fingerprint covers all of it)."""

    @abstractmethod
    def diff(self, observed: dict[str, Any]) -> list[Change]:
        """The changes from ``observed`` to the desired state; empty when in sync."""

    @abstractmethod
    def apply_change(self, change: Change) -> None:
        """Make one change of :meth:`diff`'s list."""


def fingerprint(observed: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an observed document."""
    text = json.dumps(observed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ResourcePlan:
    resource: str
    kind: str
    fingerprint: str
    changes: list[Change]


@dataclass
class Plan:
    """Changes per resource plus the fingerprints of what was observed."""

    resources: list[ResourcePlan]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    config: str = ""

    @property
    def changes(self) -> list[Change]:
        return [c for r in self.resources for c in r.changes]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "created_at": self.created_at,
            "config": self.config,
            "resources": [
                {
                    "resource": r.resource,
                    "kind": r.kind,
                    "fingerprint": r.fingerprint,
                    "changes": [c.to_json() for c in r.changes],
                }
                for r in self.resources
            ],
        }

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, default=str) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a saved plan; UsageError naming the file when it is not one."""
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != PLAN_FORMAT:
                raise UsageError(f"{path}: not a datatier plan (format {doc.get('format')!r})")
            return cls(
                resources=[
                    ResourcePlan(
                        r["resource"],
                        r["kind"],
                        r["fingerprint"],
                        [Change.from_json(c) for c in r["changes"]],
                    )
                    for r in doc["resources"]
                ],
                created_at=doc["created_at"],
                config=doc.get("config", ""),
            )
        except FileNotFoundError:
            raise UsageError(f"plan file {path} not found") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path}: unreadable plan ({exc})") from None


def make_plan(provisioners: Sequence[Provisioner], config: str = "") -> Plan:
    """Observe and diff every provisioner; changes nothing."""
    resources = []
    for prov in provisioners:
        observed = prov.observe()
        resources.append(
            ResourcePlan(prov.resource, prov.kind, fingerprint(observed), prov.diff(observed))
        )
    return Plan(resources, config=config)


def apply_plan(
    provisioners: Sequence[Provisioner],
    plan: Plan,
    on_change: Callable[[Change], None] | None = None,
) -> list[Change]:
    """Carry out ``plan`` after checking nothing changed since it was made (module docstring).

    Every resource is re-observed and checked *before* the first change, so a stale plan
    changes nothing. Returns the changes made.
    """
    by_name = {p.resource: p for p in provisioners}
    unknown = sorted({r.resource for r in plan.resources} - set(by_name))
    if unknown:
        raise UsageError(
            f"the plan names resources the configuration no longer has: {', '.join(unknown)}",
            hint="make a new plan; nothing was changed",
        )
    missing = sorted(set(by_name) - {r.resource for r in plan.resources})
    if missing:
        raise UsageError(
            f"the configuration has resources the plan does not cover: {', '.join(missing)}",
            hint="make a new plan; nothing was changed",
        )
    for rp in plan.resources:
        now = fingerprint(by_name[rp.resource].observe())
        if now != rp.fingerprint:
            raise UsageError(
                f"{rp.resource} changed since the plan was made ({plan.created_at}); "
                "refusing to apply a stale plan",
                hint="run `datatier provision plan` again; nothing was changed",
            )
    done: list[Change] = []
    for rp in plan.resources:
        prov = by_name[rp.resource]
        for change in rp.changes:
            prov.apply_change(change)
            log.info(
                "provision.changed",
                resource=change.resource,
                item=change.item,
                action=change.action,
            )
            done.append(change)
            if on_change:
                on_change(change)
    return done
