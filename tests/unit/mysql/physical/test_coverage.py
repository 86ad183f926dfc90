""":func:`tablespaces` and :func:`left_out` on a synthetic datadir: which files a backup
must hold (the same inode before and after its copy)."""

from __future__ import annotations

import os
from pathlib import Path

from datatier.mysql.physical.coverage import left_out, tablespaces


def tablespace(path: Path, space: int) -> None:
    """A file whose page 0 names space id ``space`` (at 34)."""
    path.write_bytes(bytes(34) + space.to_bytes(4, "big") + bytes(100))


def datadir(tmp_path: Path) -> Path:
    """``db/a.ibd``, ``db/#sql-alter-1-2.ibd`` (an ALTER's remains), ``db/ext.isl`` pointing
    outside (``DATA DIRECTORY``), ``db/gone.isl`` pointing nowhere, ``db/t.frm``."""
    root = tmp_path / "data"
    (root / "db").mkdir(parents=True)
    tablespace(root / "db" / "a.ibd", 5)
    (root / "db" / "#sql-alter-1-2.ibd").write_bytes(b"tmp")
    (root / "db" / "t.frm").write_bytes(b"frm")
    outside = tmp_path / "far away" / "db"
    outside.mkdir(parents=True)
    tablespace(outside / "ext.ibd", 6)
    (root / "db" / "ext.isl").write_text(f"{outside / 'ext.ibd'}\n")
    (root / "db" / "gone.isl").write_text(f"{outside / 'gone.ibd'}\n")
    return root


def test_tablespaces_lists_table_files_by_inode_and_resolves_links(tmp_path: Path) -> None:
    root = datadir(tmp_path)
    found = tablespaces(root)
    assert sorted(found) == ["db/a.ibd", "db/ext.ibd"]
    st = os.stat(tmp_path / "far away" / "db" / "ext.ibd")
    assert found["db/ext.ibd"] == (st.st_dev, st.st_ino, 6)


def test_left_out_names_only_files_kept_through_the_copy_and_absent_from_the_stream(
    tmp_path: Path,
) -> None:
    root = datadir(tmp_path)
    tablespace(root / "db" / "b.ibd", 7)
    tablespace(root / "db" / "c.ibd", 8)
    before = tablespaces(root)
    (root / "db" / "b.ibd").unlink()  # dropped during the copy
    (root / "db" / "c.ibd").unlink()  # dropped and created again: a new space id
    tablespace(root / "db" / "c.ibd", 9)  # (the filesystem may hand on the inode number)
    tablespace(root / "db" / "d.ibd", 10)  # created during the copy
    after = tablespaces(root)
    assert left_out(before, after, lambda rel: False) == ["db/a.ibd", "db/ext.ibd"]
    assert left_out(before, after, lambda rel: rel == "db/a.ibd") == ["db/ext.ibd"]
    assert left_out(before, after, lambda rel: True) == []
