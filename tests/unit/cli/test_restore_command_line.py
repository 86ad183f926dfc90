"""The command a point-in-time refusal suggests (``restore_cmd._this_command``): the
options as given on the command line, another BACKUP_ID, nothing added."""

from __future__ import annotations

import shlex

from datatier.cli.restore_cmd import _this_command, restore


def suggested(*argv: str) -> list[str]:
    with restore.make_context("restore", list(argv)) as ctx, ctx.scope():
        return shlex.split(_this_command("20261201T020000Z-1a2b"))


def test_the_options_given_are_kept_and_the_id_replaced() -> None:
    words = suggested(
        "20261202T020000Z-9f9f", "-p", "shop", "--until", "2026-12-01 11:59:00+01:00",
        "--rename", "shop=a b", "--rename", "crm=crm2", "--keys-with-data", "--jobs", "2",
        "--dry-run",
    )  # fmt: skip
    assert words == [
        "datatier", "restore", "20261201T020000Z-1a2b", "--policy", "shop",
        "--until", "2026-12-01 11:59:00+01:00", "--rename", "shop=a b", "--rename", "crm=crm2",
        "--jobs", "2", "--dry-run", "--keys-with-data",
    ]  # fmt: skip


def test_defaults_not_given_are_not_added() -> None:
    words = suggested("--policy", "shop", "--until-gtid", "0-1-5")
    assert words == [
        "datatier", "restore", "20261201T020000Z-1a2b", "--policy", "shop", "--until-gtid", "0-1-5",
    ]  # fmt: skip
