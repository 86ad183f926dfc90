"""``restore --until`` when the newest backup before the target is corrupt (tester's
finding; the sandbox's real MariaDB and S3 server).

Two backups B1 and B2 and a binlog archive past both. An object of B2 overwritten with bytes
of the same size (its SHA-256 no longer matches) made the restore exit 4 naming the object
and nothing else; an object of B2 deleted (B2 *damaged*) made it restore from B1 without a
word. Now both are refused with exit 4 naming B1, the older backup that could serve, and the
exact command that starts from it; that command works. The overwrite now makes B2 damaged
from the listing (its ETag is not the one recorded); bytes changed under an unchanged ETag
are found by their SHA-256 while staging. The older base is never used unasked. So are a B2
whose manifest does not account for every table it records (refused at planning, nothing
changed) and one whose object matches its SHA-256 yet does not decompress (refused while
loading: the refusal says the target may be partly loaded, to be dropped before the command
is run).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterator
from dataclasses import replace

import pytest

from datatier.backup.manifest import Manifest, TableRecord, manifest_key
from datatier.cli import main
from datatier.storage.base import ObjectStore
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "pitr_corrupt_db"
TARGET = "pitr_corrupt_r"
POLICY = "pitr_corrupt"


@pytest.fixture
def two_backups(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Manifest, Manifest, ObjectStore, str]]:
    """B1 (row 1), B2 (rows 1, 2), row 3 after both, archived: (B1, B2, store, --until);
    with a parameter, the tables it names (one row each) in both (t is then bundled)."""
    others: tuple[str, ...] = getattr(request, "param", ())
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {DB}.t VALUES (1)")
        for name in others:
            window.sql(
                f"CREATE TABLE {DB}.{name} (id INT PRIMARY KEY)",
                f"INSERT INTO {DB}.{name} VALUES (1)",
            )
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


def _rewrite(store: ObjectStore, manifest: Manifest, **changes: object) -> None:
    """Store ``manifest`` with ``changes`` (its objects' listing still matches: complete)."""
    key = manifest_key(manifest.policy, manifest.backup_id)
    current = Manifest.decode(store.get_bytes(key), key)
    store.put_bytes(key, replace(current, **changes).encode())  # type: ignore[arg-type]


def _undecompressable(store: ObjectStore, manifest: Manifest, key: str) -> None:
    """Object ``key`` with its zstd frame's last byte (the content checksum) flipped and its
    manifest record saying so: as if its bytes were wrong when the backup hashed them (a bit
    flipped in memory, a writer's bug) or were altered along with the manifest."""
    raw = store.get_bytes(key)
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    etag = store.put_bytes(key, bad).etag
    sha = hashlib.sha256(bad).hexdigest()
    objects = [replace(o, sha256=sha, etag=etag) if o.key == key else o for o in manifest.objects]
    _rewrite(store, manifest, objects=objects)


def _drop_target(sandbox: SandboxHandle) -> None:
    query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {TARGET}")


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
    """Bytes changed under an unchanged ETag (bit rot the store does not show, or a manifest
    from before ETags were recorded: its record has none): the listing matches, only the
    object's SHA-256 tells, while staging."""
    first, second, store, until = two_backups
    key, size = _data_key(second)
    store.put_bytes(key, b"\0" * size)  # same size
    objects = [replace(o, etag=None) if o.key == key else o for o in second.objects]
    _rewrite(store, second, objects=objects)
    err, doc = _refused(until, capsys)
    assert "SHA-256" in err and key in err and doc["key"] == key
    command = _check_refusal(err, doc, first, second, until)
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(use_sandbox_config)) == [1, 2, 3]


def test_a_rewritten_object_of_the_newest_base_makes_it_damaged_and_names_the_older_one(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An object of B2 overwritten with other bytes of its size: its listed ETag is not the
    one B2's manifest records, so B2 is damaged from the listing alone, before anything is
    fetched."""
    first, second, store, until = two_backups
    key, size = _data_key(second)
    store.put_bytes(key, b"\0" * size)
    err, doc = _refused(until, capsys)
    assert "damaged" in err and f"{key} was rewritten" in err, err
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


def test_a_base_whose_manifest_misses_rows_names_the_older_one(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """B2's record of t counts a row its listed data objects do not hold (a data part left
    out of the manifest: what the completeness check is for, as checksums cannot show an
    object that was never listed); B2 still lists as complete, its objects all match."""
    first, second, store, until = two_backups
    tables = [replace(t, rows=t.rows + 1) if t.name == "t" else t for t in second.tables]
    _rewrite(store, second, tables=tables)
    err, doc = _refused(until, capsys)
    assert f"{DB}.t: data objects hold 2 rows, the table record 3" in err, err
    command = _check_refusal(err, doc, first, second, until)
    assert "partly_loaded" not in doc and "nothing was restored" in err
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(use_sandbox_config)) == [1, 2, 3]


def test_a_base_whose_manifest_misses_a_table_names_the_older_one(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """B2's manifest records a table none of its objects holds: the restore went on and
    left the table out, without a word."""
    first, second, store, until = two_backups
    lost = TableRecord(DB, "t_lost", rows=5, data_sha256="", data_bytes=40)
    _rewrite(store, second, tables=[*second.tables, lost])
    err, doc = _refused(until, capsys)
    assert f"{DB}.t_lost has no definition object" in err, err
    command = _check_refusal(err, doc, first, second, until)
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(use_sandbox_config)) == [1, 2, 3]


def test_an_object_failing_to_decompress_while_loaded_names_the_older_one(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """B2's data object of t matches its SHA-256 and does not decompress
    (:func:`_undecompressable`): staging passes it; loading it fails after t was created
    in the target."""
    first, second, store, until = two_backups
    sandbox = use_sandbox_config
    data = next(o for o in second.objects if o.kind == "data" and o.table == "t")
    _undecompressable(store, second, data.key)
    restore = ["restore", "--policy", POLICY, "--until", until, "--rename", f"{DB}={TARGET}"]
    capsys.readouterr()
    assert main(restore) == 4
    err = capsys.readouterr().err
    assert "corrupt zstd data" in err and data.key in err, err
    assert "may be partly loaded" in err and "nothing was restored" not in err
    assert "drop what this restore loaded there" in err
    _drop_target(sandbox)
    assert main([*restore, "--json"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["key"] == data.key and TARGET in str(doc["partly_loaded"])
    command = _check_refusal(err, doc, first, second, until)
    _drop_target(sandbox)
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(sandbox)) == [1, 2, 3]


@pytest.mark.parametrize("two_backups", [("u",)], indirect=True)
def test_a_bundle_failing_to_decompress_is_refused_before_anything_changes(
    two_backups: tuple[Manifest, Manifest, ObjectStore, str],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """B2's bundle of t and u matches its SHA-256 and does not decompress: found by the
    check of the staged bundles' sections, before anything is applied."""
    first, second, store, until = two_backups
    bundle = next(o for o in second.objects if o.kind == "bundle")
    assert set(bundle.table_names()) == {"t", "u"}
    _undecompressable(store, second, bundle.key)
    err, doc = _refused(until, capsys)
    assert "corrupt zstd data" in err and bundle.key in err and doc["key"] == bundle.key, err
    command = _check_refusal(err, doc, first, second, until)
    assert "partly_loaded" not in doc and "nothing was restored" in err
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    assert main(command) == 0, capsys.readouterr().err
    assert sorted(_rows(use_sandbox_config)) == [1, 2, 3]
