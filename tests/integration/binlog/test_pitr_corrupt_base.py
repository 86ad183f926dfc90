"""``restore --until`` when the newest backup before the target is corrupt (tester's
finding; the sandbox's real MariaDB and S3 server).

Two backups B1 and B2 and a binlog archive past both. An object of B2 overwritten with bytes
of the same size (the listing still matches, its SHA-256 does not) made the restore exit 4
naming the object and nothing else; an object of B2 deleted (B2 *damaged*) made it restore
from B1 without a word. Now both are refused with exit 4 naming B1, the older backup that
could serve, and the exact command that starts from it; that command works. The older base
is never used unasked.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.cli import main
from datatier.storage.base import ObjectStore
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "pitr_corrupt_db"
TARGET = "pitr_corrupt_r"
POLICY = "pitr_corrupt"


@pytest.fixture
def two_backups(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Manifest, Manifest, ObjectStore, str]]:
    """B1 (row 1), B2 (rows 1, 2), row 3 after both, archived: (B1, B2, store, --until)."""
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {DB}.t VALUES (1)")
        first = window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (2)")
        second = window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (3)")
        until = window.until_now()
        window.archive()
        yield first, second, window.store, until


def _data_key(manifest: Manifest) -> tuple[str, int]:
    obj = next(o for o in manifest.objects if "t" in o.table_names())
    return obj.key, obj.size


def _refused(until: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, object]]:
    """The stderr line and the ``--json`` failure of the restore to ``until`` (exit 4 both)."""
    restore = ["restore", "--policy", POLICY, "--until", until, "--rename", f"{DB}={TARGET}"]
    capsys.readouterr()
    assert main(restore) == 4
    err = capsys.readouterr().err
    assert main([*restore, "--json"]) == 4
    return err, json.loads(capsys.readouterr().out)


def _rows(sandbox: SandboxHandle) -> list[int]:
    return [int(r[0]) for r in query(sandbox.config, "primary", f"SELECT id FROM {TARGET}.t")]


def _check_refusal(
    err: str, doc: dict[str, object], first: Manifest, second: Manifest, until: str
) -> list[str]:
    assert second.backup_id in err and first.backup_id in err, err
    assert doc["exit_code"] == 4 and doc["unusable_base"] == second.backup_id
    assert doc["alternative_bases"] == [first.backup_id]
    command = [
        "datatier", "restore", first.backup_id, "--policy", POLICY, "--until", until,
        "--rename", f"{DB}={TARGET}",
    ]  # fmt: skip
    assert f"run: {shlex.join(command)}" in err  # the command as given, another base
    assert shlex.split(str(doc["command"])) == [*command, "--json"]
    return command[1:]


def test_a_corrupt_object_of_the_newest_base_names_the_older_one(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second, store, until = two_backups
    key, size = _data_key(second)
    store.put_bytes(key, b"\0" * size)  # same size: only its SHA-256 tells
    err, doc = _refused(until, capsys)
    assert "SHA-256" in err and key in err and doc["key"] == key
    command = _check_refusal(err, doc, first, second, until)
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(use_sandbox_config)) == [1, 2, 3]


def test_a_damaged_newest_base_is_not_skipped_silently(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second, store, until = two_backups
    key, _ = _data_key(second)
    store.delete([key])  # the listing no longer matches the manifest: damaged
    err, doc = _refused(until, capsys)
    assert "damaged" in err
    command = _check_refusal(err, doc, first, second, until)
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(use_sandbox_config)) == [1, 2, 3]
