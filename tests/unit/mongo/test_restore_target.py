"""Which MongoDB deployment a restore goes to: --target NAME, else the one backed up."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatier.backup.manifest import Manifest
from datatier.config import LoadedConfig, load
from datatier.errors import UsageError
from datatier.mongo.restore import mongo_target


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
