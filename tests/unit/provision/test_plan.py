"""Plans: saved and loaded as JSON; a plan is refused when what it observed has changed.

The resource here is an in-memory dict (the logic under test is the plan machinery); the
same refusal against the real S3 server is in tests/integration/test_provision_bucket.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from datatier.errors import ExitCode, ServiceUnavailable, UsageError
from datatier.provision.plan import Change, Plan, Provisioner, apply_plan, make_plan


class DictResource(Provisioner):
    kind = "dict"

    def __init__(self, state: dict[str, Any], desired: dict[str, Any]) -> None:
        self.state = state
        self.desired = desired

    @property
    def resource(self) -> str:
        return "dict"

    def observe(self) -> dict[str, Any]:
        return dict(self.state)

    def diff(self, observed: dict[str, Any]) -> list[Change]:
        return [
            Change("dict", k, "update" if k in observed else "create", observed.get(k), v)
            for k, v in self.desired.items()
            if observed.get(k) != v
        ]

    def apply_change(self, change: Change) -> None:
        self.state[change.item] = change.after


def test_plan_round_trip_and_apply(tmp_path: Path) -> None:
    res = DictResource({"a": 1}, {"a": 2, "b": 3})
    plan = make_plan([res])
    assert [(c.item, c.action) for c in plan.changes] == [("a", "update"), ("b", "create")]
    plan.save(tmp_path / "plan.json")
    loaded = Plan.load(tmp_path / "plan.json")
    assert loaded.to_json() == plan.to_json()
    assert len(apply_plan([res], loaded)) == 2
    assert res.state == {"a": 2, "b": 3}
    assert make_plan([res]).changes == []


def test_a_stale_plan_changes_nothing(tmp_path: Path) -> None:
    res = DictResource({"a": 1}, {"a": 2, "b": 3})
    plan = make_plan([res])
    res.state["c"] = "someone else"
    with pytest.raises(UsageError) as err:
        apply_plan([res], plan)
    assert err.value.exit_code == ExitCode.USAGE
    assert "dict changed since the plan was made" in str(err.value)
    assert res.state == {"a": 1, "c": "someone else"}


def test_bad_plan_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        Plan.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1}')
    with pytest.raises(UsageError, match="unreadable plan"):
        Plan.load(bad)
    res = DictResource({}, {"a": 1})
    plan = make_plan([res])
    with pytest.raises(UsageError, match="no longer has"):
        apply_plan([], plan)


def test_a_plan_whose_configuration_changed_changes_nothing() -> None:
    """The world is as observed, but the desired state is not what the plan reviewed."""
    res = DictResource({"a": 1}, {"a": 2, "b": 3})
    plan = make_plan([res])
    res.desired = {"a": 5, "b": 3}  # e.g. a policy edited between plan --out and apply
    with pytest.raises(UsageError) as err:
        apply_plan([res], plan)
    assert err.value.exit_code == ExitCode.USAGE
    assert "the configuration of dict changed since the plan was made" in str(err.value)
    assert "nothing was changed" in str(err.value)
    assert res.state == {"a": 1}


class FailingResource(DictResource):
    """Fails on one item, after the items before it were applied."""

    def __init__(self, state: dict[str, Any], desired: dict[str, Any], bad: str) -> None:
        super().__init__(state, desired)
        self.bad = bad
        self.held = 0

    def apply_change(self, change: Change) -> None:
        assert self.held == 1, "applied inside applying()"
        if change.item == self.bad:
            raise ServiceUnavailable(f"denied {change.item}", hint="grant it")
        super().apply_change(change)

    @contextmanager
    def applying(self) -> Iterator[None]:
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


def test_a_failing_change_says_what_was_applied() -> None:
    res = FailingResource({}, {"a": 1, "b": 2, "c": 3}, bad="c")
    seen: list[Change] = []
    with pytest.raises(ServiceUnavailable) as err:  # the same class: the same exit code
        apply_plan([res], make_plan([res]), on_change=seen.append)
    assert err.value.message == "denied c"
    assert err.value.hint == (
        "grant it; applied 2 of 3 changes (dict a, dict b); dict c failed; "
        "run `datatier provision plan` to see what is left"
    )
    assert [c.item for c in seen] == ["a", "b"] and res.state == {"a": 1, "b": 2}
    assert res.held == 0, "released after the failure"
    first = FailingResource({}, {"a": 1}, bad="a")
    with pytest.raises(ServiceUnavailable, match=r"applied 0 of 1 changes; dict a failed"):
        apply_plan([first], make_plan([first]))
