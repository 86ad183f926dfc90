"""Where a physical restore puts the files of tables created with ``DATA DIRECTORY``: the
plan, its refusals, the move (a link, or a copy across filesystems) and its undo. Real
files on disk; the servers' side is in tests/integration/backup/test_tester9_findings.py,
test_physical_in_place.py and tests/integration/binlog/test_pitr_physical_own_server.py."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import pytest

from datatier.errors import UsageError
from datatier.mysql.physical.datadir import Owner
from datatier.mysql.physical.external import (
    ASIDE,
    EXTERNAL,
    NEW,
    PARTIAL,
    ExternalFiles,
    Stage,
    destination,
    external_links,
    find_external,
    read_link,
    recorded_links,
    refuse_destinations,
)

ME = Owner(os.getuid(), os.getgid())


def tablespace(path: Path, space: int, body: bytes = b"rows") -> None:
    """A file whose first page header holds ``space`` (FIL_PAGE_SPACE_ID at byte 34)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = bytearray(38)
    struct.pack_into(">I", head, 34, space)
    path.write_bytes(bytes(head) + body)


def prepared(tmp_path: Path, source: Path, space: int = 7, name: str = "db/ext") -> Path:
    """A prepared copy holding ``name`` with an ``.isl`` naming ``source``."""
    data = tmp_path / "datadir" / ".datatier-restore-x" / "data"
    tablespace(data / f"{name}.ibd", space, b"backup rows")
    (data / f"{name}.isl").write_bytes(os.fsencode(str(source)))
    return data


def files(data: Path, root: Path | None = None, force: bool = False) -> ExternalFiles:
    return ExternalFiles(
        find_external(data), data, data.parents[1], root=root, owner=ME, force=force
    )


def test_the_file_goes_to_its_own_path_with_an_isl_naming_it(tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "db" / "ext.ibd"
    data = prepared(tmp_path, dest)
    plan = files(data)
    assert not (data / "db" / "ext.isl").exists()  # read and removed before any replay
    plan.check()
    with plan:
        plan.place()
        plan.installing()
        plan.commit()
    assert dest.read_bytes().endswith(b"backup rows")
    assert not (data / "db" / "ext.ibd").exists()
    assert read_link(data / "db" / "ext.isl") == dest
    assert (dest.parent.stat().st_mode & 0o777) == 0o700


def test_under_a_root_the_file_goes_to_root_db_table(tmp_path: Path) -> None:
    data = prepared(tmp_path, tmp_path / "source" / "db" / "ext.ibd")
    (tmp_path / "source" / "db").mkdir(parents=True)
    (tmp_path / "source" / "db" / "ext.ibd").write_bytes(b"the source's live file")
    plan = files(data, root=tmp_path / "root")
    plan.check()
    with plan:
        plan.place()
    assert plan.tables == {"db/ext": str(tmp_path / "root" / "db" / "ext.ibd")}
    assert (tmp_path / "source" / "db" / "ext.ibd").read_bytes() == b"the source's live file"
    assert (tmp_path / "root" / "db" / "ext.ibd").read_bytes().endswith(b"backup rows")


def test_an_occupied_path_is_refused_and_nothing_moves(tmp_path: Path) -> None:
    dest = tmp_path / "source" / "db" / "ext.ibd"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"live")
    data = prepared(tmp_path, dest)
    with pytest.raises(UsageError, match="something is already") as caught:
        files(data).check()
    assert "--external-dir" in (caught.value.hint or "")
    assert dest.read_bytes() == b"live" and (data / "db" / "ext.ibd").is_file()


@pytest.mark.parametrize("where", ["inside", "root-inside"])
def test_a_destination_inside_the_datadir_is_refused(tmp_path: Path, where: str) -> None:
    datadir = tmp_path / "datadir"
    inside = datadir / "ext" / "db" / "ext.ibd"
    data = prepared(tmp_path, inside if where == "inside" else tmp_path / "x" / "db" / "ext.ibd")
    root = datadir / "tablespaces" if where == "root-inside" else None
    with pytest.raises(UsageError, match=r"(in|out)side --datadir"):
        files(data, root=root).check()


@pytest.mark.parametrize("named", ["relative/db/ext.ibd", "/etc/cron.d/evil", "/x/other/ext.ibd"])
def test_a_link_not_naming_db_table_ibd_is_refused(tmp_path: Path, named: str) -> None:
    data = prepared(tmp_path, Path(named))
    with pytest.raises(UsageError, match=re.escape("not a db/ext.ibd")):
        files(data).check()


def test_force_replaces_the_file_the_replaced_datadirs_own_isl_names(tmp_path: Path) -> None:
    dest = tmp_path / "source" / "db" / "ext.ibd"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    data = prepared(tmp_path, dest)
    old_link = data.parents[1] / "db" / "ext.isl"  # the datadir being replaced links to it
    old_link.parent.mkdir()
    old_link.write_bytes(os.fsencode(str(dest)))
    with pytest.raises(UsageError):
        files(data).check()  # without --force: refused
    data = prepared(tmp_path, dest)
    plan = files(data, force=True)
    plan.check()
    with plan:
        plan.place()
        assert dest.read_bytes() == b"old", "the old datadir's file is untouched until DIR changes"
        waiting = list(dest.parent.glob(f"*{NEW}*"))
        assert [p.read_bytes()[38:] for p in waiting] == [b"backup rows"]
        plan.installing()
        assert dest.read_bytes().endswith(b"backup rows")
        assert [p.read_bytes() for p in dest.parent.glob(f"*{ASIDE}*")] == [b"old"]
        plan.commit()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ext.ibd"]


def test_a_failure_while_swapping_puts_the_replaced_files_back(tmp_path: Path) -> None:
    old_dir = data_dir = None
    for name in ("a", "b"):
        dest = tmp_path / "source" / "db" / f"{name}.ibd"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"old " + name.encode())
        data_dir = prepared(tmp_path, dest, name=f"db/{name}")
        old_dir = data_dir.parents[1] / "db"
        old_dir.mkdir(exist_ok=True)
        (old_dir / f"{name}.isl").write_bytes(os.fsencode(str(dest)))
    assert data_dir is not None and old_dir is not None
    plan = files(data_dir, force=True)
    plan.check()
    second = plan.moves[1].aside
    assert second is not None
    with pytest.raises(FileExistsError), plan:
        plan.place()
        second.write_bytes(b"in the way")  # the second swap's link fails
        plan.installing()
    second.unlink()
    assert [(tmp_path / "source" / "db" / f"{n}.ibd").read_bytes() for n in "ab"] == [
        b"old a",
        b"old b",
    ]
    assert sorted(p.name for p in (tmp_path / "source" / "db").iterdir()) == ["a.ibd", "b.ibd"]


def test_what_a_killed_restore_left_beside_a_destination_is_swept(tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "db" / "ext.ibd"
    dest.parent.mkdir(parents=True)
    (dest.parent / f"ext.ibd{PARTIAL}").write_bytes(b"half")
    (dest.parent / f"ext.ibd{NEW}0123abcd").write_bytes(b"whole")
    (dest.parent / "ext.ibd.keep").write_bytes(b"not ours")
    data = prepared(tmp_path, dest)
    plan = files(data)
    plan.check()
    with plan:
        plan.place()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ext.ibd", "ext.ibd.keep"]


def test_a_root_or_directory_of_some_datadir_is_refused(tmp_path: Path) -> None:
    live = tmp_path / "live"
    (live / "db").mkdir(parents=True)
    (live / "ibdata1").write_bytes(b"")
    data = prepared(tmp_path, tmp_path / "x" / "db" / "ext.ibd")
    with pytest.raises(UsageError, match="is a MariaDB datadir"):
        files(data, root=live).check()
    beside = tmp_path / "other" / "db"
    beside.mkdir(parents=True)
    (beside / "ext.frm").write_bytes(b"")
    data = prepared(tmp_path, beside / "ext.ibd")
    with pytest.raises(UsageError, match="a table of a MariaDB datadir"):
        files(data).check()


def test_force_names_the_replaced_datadirs_files_no_table_takes_over(tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "db" / "ext.ibd"
    data = prepared(tmp_path, dest)
    (data.parents[1] / "db").mkdir()
    gone = tmp_path / "old" / "db" / "gone.ibd"
    (data.parents[1] / "db" / "gone.isl").write_bytes(os.fsencode(str(gone)))
    plan = files(data, force=True)
    plan.check()
    assert plan.orphaned == [str(gone)]


def test_a_failure_before_the_install_undoes_everything(tmp_path: Path) -> None:
    owned = tmp_path / "source" / "db" / "ext.ibd"
    owned.parent.mkdir(parents=True)
    owned.write_bytes(b"old")
    data = prepared(tmp_path, owned)
    tablespace(data / "db2" / "new.ibd", 9)
    made = tmp_path / "made" / "db2" / "new.ibd"
    (data / "db2" / "new.isl").write_bytes(os.fsencode(str(made)))
    (data.parents[1] / "db").mkdir()
    (data.parents[1] / "db" / "ext.isl").write_bytes(os.fsencode(str(owned)))
    plan = files(data, force=True)
    plan.check()
    with pytest.raises(RuntimeError), plan:
        plan.place()
        raise RuntimeError("the install failed")
    assert owned.read_bytes() == b"old"
    assert sorted(p.name for p in owned.parent.iterdir()) == ["ext.ibd"]
    assert not (tmp_path / "made").exists()  # the directories it made are gone too


def test_a_failure_after_the_install_began_keeps_the_placed_files(tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "db" / "ext.ibd"
    data = prepared(tmp_path, dest)
    plan = files(data)
    plan.check()
    with pytest.raises(RuntimeError), plan:
        plan.place()
        plan.installing()
        raise RuntimeError("chown failed")
    assert dest.is_file()  # DIR's .isl may name it


def test_a_replay_works_on_staged_files_and_a_rename_keeps_the_source_directory(
    tmp_path: Path,
) -> None:
    source = tmp_path / "elsewhere" / "db" / "ext.ibd"
    data = prepared(tmp_path, source)
    stage = data.parent / "external"
    staged = Stage(find_external(data), data, stage, ME)
    link = data / "db" / "ext.isl"
    assert read_link(link) == stage / "0" / "db" / "ext.ibd" and not (data / "db/ext.ibd").exists()
    moved = stage / "0" / "db" / "moved.ibd"  # what the replay's RENAME TABLE does
    (stage / "0" / "db" / "ext.ibd").rename(moved)
    link.rename(data / "db" / "moved.isl")
    (data / "db" / "moved.isl").write_bytes(os.fsencode(str(moved)))
    found = staged.collect()
    assert [(t.rel, t.file, t.source_path) for t in found] == [
        ("db/moved", moved, tmp_path / "elsewhere" / "db" / "moved.ibd")
    ]
    assert not list(data.glob("*/*.isl"))


def test_a_link_the_replay_left_elsewhere_is_refused(tmp_path: Path) -> None:
    data = prepared(tmp_path, tmp_path / "elsewhere" / "db" / "ext.ibd")
    staged = Stage(find_external(data), data, data.parent / "external", ME)
    (data / "db" / "ext.isl").write_bytes(os.fsencode(str(tmp_path / "live" / "db" / "ext.ibd")))
    with pytest.raises(UsageError, match="not a staged file"):
        staged.collect()


@pytest.mark.parametrize("raw", [b"/x/db/ext.ibd\0/y", b"/x/db/ext.ibd\n/y/db/ext.ibd", b""])
def test_a_link_holding_more_than_one_path_is_refused(tmp_path: Path, raw: bytes) -> None:
    data = prepared(tmp_path, Path("/x/db/ext.ibd"))
    (data / "db" / "ext.isl").write_bytes(raw)
    with pytest.raises(UsageError, match="not one path"):
        find_external(data)


def test_a_file_that_appears_after_the_check_is_never_overwritten(tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "db" / "ext.ibd"
    data = prepared(tmp_path, dest)
    plan = files(data)
    plan.check()
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"another restore's")
    with pytest.raises(UsageError, match="appeared during the restore"), plan:
        plan.place()
    assert dest.read_bytes() == b"another restore's"
    assert (data / "db" / "ext.ibd").is_file()  # the copy is still the work area's


def test_a_place_the_servers_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    nobody = Owner(65534, 65534)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)  # ours, and not nobody's
    data = prepared(tmp_path, closed / "ext" / "db" / "ext.ibd")
    plan = ExternalFiles(
        find_external(data), data, data.parents[1], root=None, owner=nobody, force=False
    )
    with pytest.raises(UsageError, match=f"cannot reach {re.escape(str(closed))}"):
        plan.check()
    shared = tmp_path / "shared" / "db"
    shared.mkdir(parents=True, mode=0o755)
    shared.chmod(0o755)
    data = prepared(tmp_path, shared / "ext.ibd")
    plan = ExternalFiles(
        find_external(data), data, data.parents[1], root=None, owner=nobody, force=False
    )
    with pytest.raises(UsageError, match="cannot write"):
        plan.check()  # a rebuild makes its new file in db/


def test_force_never_replaces_a_file_a_process_holds_open(tmp_path: Path) -> None:
    dest = tmp_path / "source" / "db" / "ext.ibd"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"live")
    data = prepared(tmp_path, dest)
    (data.parents[1] / "db").mkdir()
    (data.parents[1] / "db" / "ext.isl").write_bytes(os.fsencode(str(dest)))
    with dest.open("rb"), pytest.raises(UsageError, match=r"holds .* open"):
        files(data, force=True).check()
    assert dest.read_bytes() == b"live"


def test_force_never_replaces_a_symlink(tmp_path: Path) -> None:
    dest = tmp_path / "source" / "db" / "ext.ibd"
    dest.parent.mkdir(parents=True)
    (tmp_path / "precious").write_bytes(b"precious")
    dest.symlink_to(tmp_path / "precious")
    data = prepared(tmp_path, dest)
    (data.parents[1] / "db").mkdir()
    (data.parents[1] / "db" / "ext.isl").write_bytes(os.fsencode(str(dest)))
    with pytest.raises(UsageError, match="something is already"):
        files(data, force=True).check()
    assert (tmp_path / "precious").read_bytes() == b"precious"


def test_a_discarded_tablespace_loses_its_link_and_stays_absent(tmp_path: Path) -> None:
    data = prepared(tmp_path, tmp_path / "elsewhere" / "db" / "ext.ibd")
    (data / "db" / "ext.ibd").unlink()
    assert find_external(data) == [] and not (data / "db" / "ext.isl").exists()


def test_across_filesystems_the_file_is_copied_whole(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    assert os.stat(shm).st_dev != os.stat(tmp_path).st_dev, "needs /dev/shm on another fs"
    root = shm / f"datatier-test-{os.getpid()}"
    data = prepared(tmp_path, tmp_path / "elsewhere" / "db" / "ext.ibd")
    big = os.urandom(3 << 20)
    tablespace(data / "db" / "ext.ibd", 7, big)
    try:
        plan = files(data, root=root)
        plan.check()
        with plan:
            plan.place()
        moved = root / "db" / "ext.ibd"
        assert moved.read_bytes()[38:] == big and not (data / "db" / "ext.ibd").exists()
        assert (moved.stat().st_mode & 0o777) == 0o660
        assert not list(moved.parent.glob("*partial*"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_backup_records_its_links_and_a_restore_reads_only_well_formed_ones(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live"
    (live / "db").mkdir(parents=True)
    (live / "db" / "ext.isl").write_bytes(b"/data/ext/db/ext.ibd\n")
    (live / "db" / "t.ibd").write_bytes(b"inside")
    recorded = external_links(live)
    assert recorded == {"db/ext": "/data/ext/db/ext.ibd"}
    source = {EXTERNAL: {**recorded, "db/bad": 7}}
    assert recorded_links(source) == {"db/ext": Path("/data/ext/db/ext.ibd")}
    assert recorded_links({}) == {} and recorded_links({EXTERNAL: ["x"]}) == {}


def test_the_early_check_refuses_an_occupied_path_before_any_copy_exists(
    tmp_path: Path,
) -> None:
    occupied = tmp_path / "ext" / "db" / "t.ibd"
    occupied.parent.mkdir(parents=True)
    occupied.write_bytes(b"live")
    planned = {"db/t": destination("db/t", occupied, None)}
    with pytest.raises(UsageError, match="something is already"):
        refuse_destinations(planned, tmp_path / "new-datadir", root=None, force=True, owner=ME)
    root = tmp_path / "root"
    moved = {"db/t": destination("db/t", occupied, root)}
    assert moved == {"db/t": root / "db" / "t.ibd"}
    assert (
        refuse_destinations(moved, tmp_path / "new-datadir", root=root, force=False, owner=ME)
        == set()
    )
