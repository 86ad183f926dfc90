"""Lifecycle rules derived from policies, and transitions S3 would refuse or never carry out."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatier.backup.policy import load_policy
from datatier.errors import ConfigError, ExitCode
from datatier.provision.lifecycle import (
    LifecycleRule,
    Transition,
    rule_from_s3,
    store_rules,
    validate_transitions,
)


def check(*chain: tuple[int, str], start: str = "STANDARD") -> None:
    validate_transitions(
        [Transition(d, c) for d, c in chain], start=start, source="p.toml", key="storage"
    )


def test_a_sensible_chain_passes() -> None:
    check((30, "STANDARD_IA"), (60, "GLACIER_IR"), (180, "DEEP_ARCHIVE"))
    check((0, "GLACIER"))
    check((1, "DEEP_ARCHIVE"))


def test_deep_archive_before_glacier_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        check((30, "DEEP_ARCHIVE"), (90, "GLACIER"))
    assert err.value.exit_code == ExitCode.USAGE
    assert "p.toml: storage: GLACIER after 90 days comes after DEEP_ARCHIVE" in str(err.value)


def test_standard_ia_before_30_days_is_refused() -> None:
    with pytest.raises(ConfigError, match="no earlier than 30 days after creation"):
        check((10, "STANDARD_IA"))


def test_leaving_ia_within_30_days_is_refused() -> None:
    with pytest.raises(ConfigError, match="must stay 30 days in STANDARD_IA"):
        check((30, "STANDARD_IA"), (45, "GLACIER"))
    with pytest.raises(ConfigError, match="must stay 30 days in STANDARD_IA"):
        check((10, "GLACIER"), start="STANDARD_IA")


def test_days_must_not_go_backwards() -> None:
    with pytest.raises(ConfigError, match="before day 90"):
        check((90, "GLACIER"), (30, "DEEP_ARCHIVE"))


def test_policy_starting_in_ia_cannot_archive_within_30_days(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        'engine = "mysql"\n[source]\nnode = "r1"\n[storage]\ninitial_class = "STANDARD_IA"\n'
        'archive_class = "GLACIER"\narchive_after_days = 10\n'
    )
    policy = load_policy(path, "s3://b/p")
    with pytest.raises(ConfigError, match=r"shop.toml: storage: GLACIER after 10 days"):
        store_rules("p", [policy])


def test_store_rules_and_the_s3_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        'engine = "mysql"\n[source]\nnode = "r1"\n[storage]\n'
        'archive_class = "DEEP_ARCHIVE"\narchive_after_days = 90\n'
    )
    rules = store_rules("prod", [load_policy(path, "s3://b/prod")])
    assert [r.rule_id for r in rules] == [
        "datatier-housekeeping-prod",
        "datatier-archive-prod-shop",
    ]
    housekeeping, archive = rules
    assert housekeeping.abort_mpu_days == 1 and housekeeping.prefix == "prod/"
    assert archive.tags == (("datatier-kind", "data"),) and archive.prefix == "prod/shop/"
    for rule in rules:
        assert rule_from_s3(rule.to_s3()) == rule
    # a rule of another owner keeps what datatier does not model
    foreign = rule_from_s3(
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Days": 7}}
    )  # fmt: skip
    assert not foreign.managed and foreign.to_json()["other"] == {"Expiration.Days": 7}
    assert LifecycleRule("datatier-x").managed
