"""Backup policy files: validation with file/key/problem, selection rules, cron syntax."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datatier.backup.cron import validate_cron
from datatier.backup.policy import find_policies, get_policy, load_policy
from datatier.errors import ConfigError, UsageError

DEFAULT = "file:///var/backups/datatier"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_full_policy_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "shop",
        """
engine = "mysql"
store = "s3://bucket/prefix"
schedule = "15 2 * * 1-5"
[source]
node = "replica1"
databases = ["shop", "crm"]
exclude_tables = ["shop.sessions"]
[storage]
initial_class = "STANDARD"
archive_class = "DEEP_ARCHIVE"
archive_after_days = 90
[retention]
keep_last = 3
keep_monthly = 12
""",
    )
    policy = load_policy(path, DEFAULT)
    assert policy.name == "shop" and policy.store_url == "s3://bucket/prefix"
    assert policy.includes_database("shop") and not policy.includes_database("other")
    assert policy.includes_table("shop", "orders")
    assert not policy.includes_table("shop", "sessions")
    assert policy.spec.retention.keep_monthly == 12


def test_defaults_every_non_system_database_and_default_store(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "all", '[source]\nnode = "r1"\n'), DEFAULT)
    assert policy.store_url == DEFAULT
    assert policy.includes_database("anything")
    assert not policy.includes_database("mysql")
    assert not policy.includes_database("performance_schema")


def test_tables_list_restricts_to_those_tables(tmp_path: Path) -> None:
    text = '[source]\nnode = "r1"\ntables = ["a.t1", "b.t2"]\n'
    policy = load_policy(write(tmp_path, "some", text), DEFAULT)
    assert policy.includes_database("a") and policy.includes_database("b")
    assert not policy.includes_database("c")
    assert policy.includes_table("a", "t1") and not policy.includes_table("a", "t2")


def test_listed_names_may_quote_dots_and_commas(tmp_path: Path) -> None:
    text = (
        '[source]\nnode = "r1"\ntables = ["`a.b`.c", "`x,y`.`t,1`"]\n'
        'exclude_tables = ["`a.b`.`skip.me`"]\n'
    )
    policy = load_policy(write(tmp_path, "quoted", text), DEFAULT)
    assert policy.includes_database("a.b") and policy.includes_database("x,y")
    assert not policy.includes_database("a")
    assert policy.listed_databases() == ["a.b", "x,y"]
    assert policy.includes_table("a.b", "c") and policy.includes_table("x,y", "t,1")
    assert not policy.includes_table("a", "b.c") and not policy.includes_table("a.b", "skip.me")


def test_a_listed_table_the_source_lacks_or_an_ambiguous_one_is_a_problem(
    tmp_path: Path,
) -> None:
    text = '[source]\nnode = "r1"\ntables = ["a.b.c", "shop.orders", "shop.typo"]\n'
    policy = load_policy(write(tmp_path, "listed", text), DEFAULT)
    assert policy.includes_table("a", "b.c") and policy.includes_table("a.b", "c")
    held = {("a", "b.c"), ("a.b", "c"), ("shop", "orders")}
    assert policy.listing_problems(held) == [
        "'a.b.c' fits `a`.`b.c`, `a.b`.`c`: quote one with backticks",
        "'shop.typo' names no table or view there",
    ]
    assert policy.listing_problems({("a", "b.c"), ("shop", "orders"), ("shop", "typo")}) == []


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            '[source]\nnode = "r1"\n[retention]\nkeep_lsat = 3\n',
            "retention.keep_lsat",
            "unknown key",
        ),
        ('engine = "postgres"\n', "engine", "is not one of"),
        ("[source]\n", "source.node", "missing required value"),
        ('schedule = "61 * * * *"\n[source]\nnode = "r"\n', "schedule", "out of range"),
        ('schedule = "* * *"\n[source]\nnode = "r"\n', "schedule", "needs 5 fields"),
        (
            '[source]\nnode = "r"\n[storage]\ninitial_class = "GLACIER"\n'
            'archive_class = "GLACIER"\narchive_after_days = 3\n',
            "storage.archive_class",
            "not colder",
        ),
        ('[source]\nnode = "r"\ntables = ["nodot"]\n', "source.tables", "expected DB.TABLE"),
        ('compression_level = 30\n[source]\nnode = "r"\n', "compression_level", "1 to 22"),
        ('[source]\nnode = "r"\n[retention]\nkeep_last = 0\n', "retention.keep_last", "minimum"),
        ('[source]\nnode = "r"\nserver = "m2"\n', "source.server", "engine is mysql"),
        ('engine = "mongo"\n[source]\nnode = "r"\n', "source.node", "engine is mongo"),
        (
            '[source]\nnode = "r"\n[retention]\nrecovery_window_days = inf\n',
            "retention.recovery_window_days",
            "finite number",
        ),
        (
            '[source]\nnode = "r"\n[retention]\nrecovery_window_days = -1\n',
            "retention.recovery_window_days",
            "minimum",
        ),
        ('schedule = "@reboot"\n[source]\nnode = "r"\n', "schedule", "unknown schedule alias"),
    ],
)
def test_invalid_policies_name_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, "bad", text)
    with pytest.raises(ConfigError) as info:
        load_policy(path, DEFAULT)
    message = str(info.value)
    assert str(path) in message and key in message and problem in message


def test_lookup_by_name(tmp_path: Path) -> None:
    write(tmp_path, "one", '[source]\nnode = "r"\n')
    write(tmp_path, "two", '[source]\nnode = "r"\n')
    assert [p.name for p in find_policies(tmp_path, DEFAULT)] == ["one", "two"]
    assert get_policy(tmp_path, "two", DEFAULT).name == "two"
    with pytest.raises(UsageError, match="known: one, two"):
        get_policy(tmp_path, "three", DEFAULT)
    with pytest.raises(UsageError, match="not a policy name"):
        get_policy(tmp_path, "../etc/passwd", DEFAULT)
    assert find_policies(tmp_path / "missing", DEFAULT) == []


@pytest.mark.parametrize("expr", ["0 2 * * *", "*/15 * * * *", "0 0 1,15 * 1-5", "5 4 * 12 7"])
def test_valid_cron(expr: str) -> None:
    validate_cron(expr)


@pytest.mark.parametrize(
    "expr", ["", "0 2 * *", "0 24 * * *", "0 0 0 * *", "*/0 * * * *", "5-1 * * * *", "a * * * *"]
)
def test_invalid_cron(expr: str) -> None:
    with pytest.raises(ValueError):
        validate_cron(expr)


def test_an_exclusion_fitting_two_tables_is_a_problem_and_one_fitting_none_is_not(
    tmp_path: Path,
) -> None:
    text = '[source]\nnode = "r1"\nexclude_tables = ["a.b.c", "`x.y`.z", "gone.t"]\n'
    policy = load_policy(write(tmp_path, "excl", text), DEFAULT)
    seen = {("a", "b.c"), ("a.b", "c"), ("x", "y.z"), ("x.y", "z")}
    assert policy.exclusion_problems(seen) == [
        "'a.b.c' fits `a`.`b.c`, `a.b`.`c`: quote one with backticks"
    ]
    assert policy.exclusion_problems({("a", "b.c"), ("x.y", "z")}) == []


@pytest.mark.parametrize(
    ("lists", "key", "problem"),
    [
        ('databases = ["a", "crm"]\ntables = ["a.t"]', "source.databases", "'crm' is named by no"),
        ('databases = ["a"]\ntables = ["a.t", "b.t"]', "source.tables", "'b.t' is in a database"),
        ('exclude_databases = ["b"]\ntables = ["b.t"]', "source.tables", "'b.t' is in a database"),
    ],
)
def test_tables_overriding_databases_silently_is_refused(
    tmp_path: Path, lists: str, key: str, problem: str
) -> None:
    """``tables`` alone picks what is backed up: a database listed beside it that no entry
    names was silently not backed up."""
    path = write(tmp_path, "both", f'[source]\nnode = "r1"\n{lists}\n')
    with pytest.raises(ConfigError, match=re.escape(problem)) as caught:
        load_policy(path, DEFAULT)
    assert caught.value.key == key and "source.tables alone" in (caught.value.hint or "")


def test_databases_agreeing_with_tables_are_accepted(tmp_path: Path) -> None:
    text = '[source]\nnode = "r1"\ndatabases = ["a", "a.b"]\ntables = ["a.b.c", "a.t"]\n'
    policy = load_policy(write(tmp_path, "agree", text), DEFAULT)
    assert policy.includes_table("a", "t") and not policy.includes_table("a", "u")
