"""The engine registry (datatier.backup.engines): every entry names what exists, and the
one look-up the CLI relies on instead of branching on an engine."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from datatier.backup.engine import BackupEngine, RestoreEngine
from datatier.backup.engines import ENGINES, entry, point_in_time, seed_planner
from datatier.backup.manifest import Manifest
from datatier.errors import UsageError
from datatier.provision.physical_seed import plan_physical_seeding
from datatier.provision.replica import plan_logical_seeding


def load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def manifest(engine: str) -> Manifest:
    return Manifest(
        policy="p", backup_id="20260101T000000Z-abcd", engine=engine, tool_version="0",
        started_at="", finished_at="", source={}, consistency={}, objects=[], tables=[],
    )  # fmt: skip


def test_every_entry_names_classes_and_functions_that_exist() -> None:
    for name, found in ENGINES.items():
        assert issubclass(load(found.backup), BackupEngine), name
        assert issubclass(load(found.restore), RestoreEngine), name
        if found.point_in_time:
            assert issubclass(load(found.point_in_time), RestoreEngine), name
        for hook in (found.restore_test, found.seed):
            assert hook is None or callable(load(hook)), (name, hook)


def test_point_in_time_bases_are_the_mysql_engines() -> None:
    assert point_in_time("mysql") and point_in_time("mariabackup")
    assert not point_in_time("mongo") and not point_in_time("tape")


def test_an_unknown_engine_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"engine 'tape' is not available \(known: "):
        entry("tape")


def test_seeding_a_replica_is_chosen_by_the_backups_engine() -> None:
    assert seed_planner(manifest("mysql")) is plan_logical_seeding
    assert seed_planner(manifest("mariabackup")) is plan_physical_seeding
    with pytest.raises(UsageError, match="is a mongo backup, not MySQL"):
        seed_planner(manifest("mongo"))
