"""Which MongoDB deployment a restore goes to: --target NAME, else the one backed up."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatier.backup.engine import RestoreOptions
from datatier.backup.manifest import Manifest
from datatier.config import LoadedConfig, load
from datatier.errors import IntegrityFailure, UsageError
from datatier.mongo.restore import created_during_dump, mongo_target


def manifest(server: str | None) -> Manifest:
    source = {"engine": "mongo", "uri": "mongodb://x/"}
    if server is not None:  # backups made before [mongo.servers] have no "server"
        source["server"] = server
    return Manifest("p", "20261201T000000Z-abcd", "mongo", "0", "", "", source, {}, [], [])


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    path = tmp_path / "datatier.toml"
    path.write_text('[mongo]\nuri = "mongodb://main/"\n[mongo.servers.m2]\nuri = "mongodb://m2/"\n')
    return load(str(path), environ={})


def test_default_is_the_server_backed_up(loaded: LoadedConfig) -> None:
    assert mongo_target(loaded, manifest("m2"), None).uri == "mongodb://m2/"
    assert mongo_target(loaded, manifest(None), None).uri == "mongodb://main/"


def test_target_overrides_and_default_names_mongo(loaded: LoadedConfig) -> None:
    assert mongo_target(loaded, manifest("m2"), "default").uri == "mongodb://main/"
    assert mongo_target(loaded, manifest(None), "m2").uri == "mongodb://m2/"
    with pytest.raises(UsageError, match="no MongoDB server 'x'"):
        mongo_target(loaded, manifest(None), "x")


def test_a_source_no_longer_configured_needs_a_target(loaded: LoadedConfig) -> None:
    with pytest.raises(UsageError, match="taken from MongoDB server 'gone'") as info:
        mongo_target(loaded, manifest("gone"), None)
    assert "--target" in str(info.value)
    assert mongo_target(loaded, manifest("gone"), "m2").uri == "mongodb://m2/"


def with_created(listed: object) -> Manifest:
    m = manifest("m2")
    m.consistency = {"point_in_time": True, "created_during_dump": listed}
    m.databases = {"shop": {}, "ab": {}}
    return m


def test_collections_created_during_the_dump_follow_the_database_selection() -> None:
    m = with_created([["shop", "fresh"], ["ab", "new.one"], ["gone", "x"]])
    assert created_during_dump(m, RestoreOptions()) == [("shop", "fresh"), ("ab", "new.one")]
    assert created_during_dump(m, RestoreOptions(databases=("ab",))) == [("ab", "new.one")]
    assert created_during_dump(m, RestoreOptions(tables=(("shop", "orders"),))) == []
    assert created_during_dump(manifest("m2"), RestoreOptions()) == [], "older backups: none"


@pytest.mark.parametrize("listed", ["shop.fresh", [["shop"]], [["shop", 1]], [["", "x"]]])
def test_a_tampered_created_list_is_an_integrity_failure(listed: object) -> None:
    with pytest.raises(IntegrityFailure, match="created_during_dump"):
        created_during_dump(with_created(listed), RestoreOptions())
