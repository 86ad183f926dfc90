"""Plan and apply: observe each resource, diff it with its desired state, change only that.

Contract. A :class:`Provisioner` observes one resource as a JSON-able document
(:meth:`~Provisioner.observe`), lists the :class:`Change` items that would bring it to the
desired state (:meth:`~Provisioner.diff`, which changes nothing) and carries out one change
(:meth:`~Provisioner.apply_change`). A :class:`Plan` holds, per resource, the changes and
the SHA-256 *fingerprint* of what was observed. :func:`apply_plan` observes every resource
again first and refuses (UsageError, exit 2, nothing changed) if any fingerprint differs
(the world changed since the plan was made) or if the diff of the *current* configuration
against that world is not the plan's list of changes (the configuration changed: applying
would write what nobody reviewed). Plans are saved as JSON (``--out FILE``) and applied
later with ``apply --plan FILE``. A change that fails after others were made raises its
error with a hint listing what was applied; nothing is rolled back.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datatier.errors import DatatierError, UsageError
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

    def applying(self) -> AbstractContextManager[None]:
        """Held around the staleness check and every change of an apply (e.g. a lock that
        keeps a concurrent apply out); raises a DatatierError if it cannot be had."""
        return nullcontext()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(observed: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an observed document."""
    return hashlib.sha256(_canonical(observed).encode()).hexdigest()


def _label(change: Change) -> str:
    return f"{change.resource} {change.item}"


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

    Every resource is re-observed and re-diffed *before* the first change, so a stale plan
    changes nothing: the observed world must have the plan's fingerprint and the current
    configuration must ask for exactly the plan's changes. Each provisioner's
    :meth:`~Provisioner.applying` context is held from the check to the end. Returns the
    changes made; a failing change re-raises its error with what was applied in the hint.
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
    with ExitStack() as held:
        for rp in plan.resources:
            if rp.changes:
                held.enter_context(by_name[rp.resource].applying())
        for rp in plan.resources:
            prov = by_name[rp.resource]
            observed = prov.observe()
            if fingerprint(observed) != rp.fingerprint:
                raise UsageError(
                    f"{rp.resource} changed since the plan was made ({plan.created_at}); "
                    "refusing to apply a stale plan",
                    hint="run `datatier provision plan` again; nothing was changed",
                )
            wanted = [c.to_json() for c in prov.diff(observed)]
            if _canonical(wanted) != _canonical([c.to_json() for c in rp.changes]):
                raise UsageError(
                    f"the configuration of {rp.resource} changed since the plan was made "
                    f"({plan.created_at}): it now asks for other changes than the plan's",
                    hint="run `datatier provision plan` again and review it; nothing was changed",
                )
        return _apply_all(by_name, plan, on_change)


def _apply_all(
    by_name: dict[str, Provisioner],
    plan: Plan,
    on_change: Callable[[Change], None] | None,
) -> list[Change]:
    total = len(plan.changes)
    done: list[Change] = []
    for rp in plan.resources:
        prov = by_name[rp.resource]
        for change in rp.changes:
            try:
                prov.apply_change(change)
            except DatatierError as exc:
                if done:
                    made = (
                        f"applied {len(done)} of {total} changes ({', '.join(map(_label, done))})"
                    )
                else:
                    made = f"applied 0 of {total} changes"
                made += (
                    f"; {_label(change)} failed; run `datatier provision plan` to see what is left"
                )
                exc.hint = f"{exc.hint}; {made}" if exc.hint else made
                raise
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
