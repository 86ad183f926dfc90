"""``backup run --dry-run``'s text for people (datatier/cli/backup_cmd.py)."""

from __future__ import annotations

from datatier.backup.engine import BackupPlan, PlannedTable
from datatier.cli.backup_cmd import _plan_text


def plan(encrypted: bool) -> BackupPlan:
    return BackupPlan(
        engine="mariabackup",
        policy="db1",
        source={},
        consistency="mariabackup BACKUP STAGE",
        tables=[PlannedTable("shop", "orders", "table", rows=10, bytes=2048)],
        kind="incremental",
        parent="20261126T061900Z-3f9c",
        store={
            "url": "s3://b/p",
            "prefix": "db1/",
            "storage_class": "GLACIER_IR",
            "compression": "zstd level 3",
            "encrypted": encrypted,
            "recipients": 2 if encrypted else 0,
        },
        summary=["full backup: no earlier backup"],
    )


def test_the_first_line_says_what_where_and_how_stored() -> None:
    first, second, *_ = _plan_text(plan(encrypted=True)).splitlines()
    assert first == (
        "would back up db1 (mariabackup, incremental on 20261126T061900Z-3f9c) to "
        "s3://b/p/db1/: GLACIER_IR, zstd level 3, encrypted to 2 recipient(s)"
    )
    assert second == "  full backup: no earlier backup"
    assert "plain" in _plan_text(plan(encrypted=False)).splitlines()[0]


def test_tables_show_estimates_and_no_ranges_where_the_engine_does_not_split() -> None:
    lines = _plan_text(plan(encrypted=False)).splitlines()
    assert lines[-3].split() == ["TABLE", "KIND", "ROWS~", "BYTES~", "RANGES"]
    assert lines[-2].split() == ["shop.orders", "table", "10", "2.0", "KiB", "-"]
    assert lines[-1] == "(~: the server's estimates; nothing was written)"
