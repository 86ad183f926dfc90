"""Which policy owns the binlog archive when ``binlog.policy`` is not set."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatier.binlog.layout import archive_policy
from datatier.config import LoadedConfig, load
from datatier.errors import ConfigError

MYSQL = 'engine = "mysql"\n[source]\nnode = "primary"\n'


def loaded_with(tmp_path: Path, policies: dict[str, str]) -> LoadedConfig:
    (tmp_path / "pol").mkdir()
    for name, text in policies.items():
        (tmp_path / "pol" / f"{name}.toml").write_text(text)
    path = tmp_path / "datatier.toml"
    path.write_text(
        '[backup]\npolicies_dir = "pol"\ndefault_store = "file:///nowhere"\n'
        '[mysql.nodes.primary]\nhost = "127.0.0.1"\n'
    )
    return load(str(path), environ={})


def test_the_only_mysql_policy_owns_it(tmp_path: Path) -> None:
    loaded = loaded_with(tmp_path, {"shop": MYSQL, "docs": 'engine = "mongo"\n'})
    assert archive_policy(loaded).name == "shop"


def test_a_broken_policy_file_makes_the_owner_unknowable_and_says_so(tmp_path: Path) -> None:
    """The broken file may be a second MySQL policy: guessing could split the archive."""
    loaded = loaded_with(tmp_path, {"shop": MYSQL, "typo": "engine = \n"})
    with pytest.raises(ConfigError) as caught:
        archive_policy(loaded)
    assert "typo.toml does not load" in caught.value.message
    assert caught.value.hint is not None and "MySQL policies that load: shop" in caught.value.hint


def test_two_mysql_policies_ask_for_binlog_policy(tmp_path: Path) -> None:
    loaded = loaded_with(tmp_path, {"a": MYSQL, "b": MYSQL})
    with pytest.raises(ConfigError, match="MySQL policies: a, b"):
        archive_policy(loaded)


PHYSICAL = 'engine = "mariabackup"\n[source]\nnode = "primary"\n'


def test_a_logical_policy_owns_it_beside_a_physical_one(tmp_path: Path) -> None:
    """As before physical policies could own it: configs with both keep their owner."""
    loaded = loaded_with(tmp_path, {"shop": MYSQL, "phys": PHYSICAL})
    assert archive_policy(loaded).name == "shop"


def test_the_only_physical_policy_owns_it_when_there_is_no_logical_one(tmp_path: Path) -> None:
    loaded = loaded_with(tmp_path, {"phys": PHYSICAL, "docs": 'engine = "mongo"\n'})
    assert archive_policy(loaded).name == "phys"
    (tmp_path / "two").mkdir()
    two = loaded_with(tmp_path / "two", {"p1": PHYSICAL, "p2": PHYSICAL})
    with pytest.raises(ConfigError, match="MySQL policies: p1, p2"):
        archive_policy(two)


def test_binlog_policy_may_name_a_physical_policy_not_a_mongo_one(tmp_path: Path) -> None:
    loaded = loaded_with(tmp_path, {"shop": MYSQL, "phys": PHYSICAL, "docs": 'engine = "mongo"\n'})
    named = load(str(tmp_path / "datatier.toml"), environ={"DATATIER_BINLOG__POLICY": "phys"})
    assert archive_policy(named).name == "phys"
    mongo = load(str(tmp_path / "datatier.toml"), environ={"DATATIER_BINLOG__POLICY": "docs"})
    with pytest.raises(ConfigError, match="'docs' is a mongo policy"):
        archive_policy(mongo)
    assert archive_policy(loaded).name == "shop"
