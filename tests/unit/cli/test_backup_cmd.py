"""``backup run --dry-run``'s text for people, and the refusal of an unknown policy
(datatier/cli/backup_cmd.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from datatier import log
from datatier.backup.engine import BackupPlan, PlannedTable
from datatier.cli import main
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


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose policies live in ``tmp_path/pol`` (not created), and a terminal."""
    path = tmp_path / "datatier.toml"
    path.write_text('[backup]\npolicies_dir = "pol"\ndefault_store = "file:///nowhere"\n')
    monkeypatch.setenv("DATATIER_CONFIG", str(path))
    return tmp_path


def run_error(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    log.configure()
    assert main(list(args)) == 2
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("make_dir", [False, True])
def test_unknown_policy_when_none_is_defined_says_where_to_create_one(
    config: Path, make_dir: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if make_dir:
        (config / "pol").mkdir()
    for args in (["backup", "run", "nosuch"], ["backup", "run", "nosuch", "--dry-run"]):
        line = run_error(monkeypatch, *args)
        assert line == (
            "datatier: error: no backup policy 'nosuch': no backup policies are defined "
            f"(create one in {config / 'pol'}: a TOML file per policy, e.g. nosuch.toml)"
        )
        assert "known:" not in line


def test_unknown_policy_lists_the_defined_ones_once(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (config / "pol").mkdir()
    for name in ("nightly", "weekly"):
        (config / "pol" / f"{name}.toml").write_text('engine = "mysql"\n')
    line = run_error(monkeypatch, "backup", "run", "nihgtly")
    assert line == (
        f"datatier: error: no backup policy 'nihgtly' in {config / 'pol'} "
        "(did you mean 'nightly'? known: nightly, weekly)"
    )
    monkeypatch.undo()
    monkeypatch.setenv("DATATIER_CONFIG", str(config / "datatier.toml"))
    assert main(["backup", "run", "other", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] == f"no backup policy 'other' in {config / 'pol'} (known: nightly, weekly)"
    assert doc["hint"] == "known: nightly, weekly"
