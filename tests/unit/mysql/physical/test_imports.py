""":func:`imported_files` / :func:`scan` on synthetic tablespace files (page number at 4,
LSN at 16, page type at 24, space id at 34) and :func:`imports_break` on what manifests
record."""

from __future__ import annotations

import os
import time
from pathlib import Path

from datatier.mysql.physical.imports import (
    CTIME_MARGIN,
    FSP_HDR,
    imported_files,
    imports_break,
    positions,
    scan,
)

SIZE = 16384


def page(
    page_no: int, lsn: int, space: int, fill: bytes = b"rows, rows", size: int = SIZE
) -> bytes:
    raw = bytearray(size)
    raw[4:8] = page_no.to_bytes(4, "big")
    raw[16:24] = lsn.to_bytes(8, "big")
    raw[24:26] = (FSP_HDR if page_no == 0 else 0x45BF).to_bytes(2, "big")
    raw[34:38] = space.to_bytes(4, "big")
    raw[100 : 100 + len(fill)] = fill
    return bytes(raw)


def tablespace(
    path: Path, space: int, pages: int, lsn_of: dict[int, int] | None = None, fill: bytes = b"r"
) -> None:
    """``pages`` pages written at LSN 1000 + n (``lsn_of`` overrides); page 5 never written
    (zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lsns = {n: 1000 + n for n in range(pages)} | (lsn_of or {})
    path.write_bytes(b"".join(bytes(SIZE) if n == 5 else page(n, lsns[n], space, fill)
                              for n in range(pages)))  # fmt: skip


def test_the_pages_read_stay_the_same_as_a_file_grows() -> None:
    assert positions(0) == []
    assert positions(6) == [0, 1, 2, 3, 4, 5]
    assert positions(100) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 96]
    assert set(positions(100)) <= set(positions(10_000))


def test_files_with_a_page_at_lsn_0_are_listed_wherever_their_isl_points(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tablespace(data / "shop" / "orders.ibd", 7, 40)  # logged pages, one never written
    tablespace(data / "shop" / "items.ibd", 8, 12, {n: 0 for n in range(12)})  # imported
    tablespace(data / "shop" / "notes.ibd", 9, 300, {256: 0})  # 2^8: read
    tablespace(data / "shop" / "big.ibd", 10, 300, {151: 0})  # not read
    outside = tmp_path / "elsewhere" / "ext.ibd"
    tablespace(outside, 11, 6, {3: 0})
    (data / "shop" / "ext.isl").write_bytes(bytes(outside))
    (data / "shop" / "empty.ibd").write_bytes(b"")
    (data / "shop" / "short.ibd").write_bytes(b"x" * 100)
    found = imported_files(data, SIZE)
    assert [[rel, space, [n for n, _ in pages]] for rel, space, pages in found] == [
        ["shop/ext.ibd", 11, [3]],
        ["shop/items.ibd", 8, [0, 1, 2, 3, 4, 6, 7, 8]],
        ["shop/notes.ibd", 9, [256]],
    ]


def test_page_0_at_lsn_0_counts_only_as_a_tablespace_header(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tablespace(data / "a" / "t.ibd", 3, 4, {0: 0})
    assert [f[:2] for f in imported_files(data, SIZE)] == [["a/t.ibd", 3]]
    zeros = bytearray(page(0, 0, 3))
    zeros[24:26] = b"\x00\x00"  # not an FSP header: a page 0 never written
    (data / "a" / "t.ibd").write_bytes(bytes(zeros) + page(1, 5, 3))
    assert imported_files(data, SIZE) == []


def test_an_incremental_is_refused_for_pages_the_parent_did_not_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tablespace(data / "shop" / "items.ibd", 8, 12, {n: 0 for n in range(12)})
    parent = scan(data, SIZE)
    assert imports_break(scan(data, SIZE, parent)["files"], parent, "P") is None, "the same"
    assert imports_break([], None, "P") is None, "nothing imported"
    tablespace(data / "shop" / "items.ibd", 8, 12, {n: 0 for n in range(12)}, fill=b"again")
    why = imports_break(imported_files(data, SIZE), parent, "P")
    assert why is not None and why.startswith("shop/items.ibd: pages at LSN 0 that P did"), (
        "imported again into the same table: other bytes under LSN 0"
    )
    written = {n: 5000 + n for n in range(6)} | {n: 0 for n in range(6, 12)}
    tablespace(data / "shop" / "items.ibd", 8, 12, written)
    assert imports_break(imported_files(data, SIZE), parent, "P") is None, "pages written since"
    tablespace(data / "shop" / "notes.ibd", 9, 4, {2: 0})
    why = imports_break(imported_files(data, SIZE), parent, "P")
    assert why is not None and why.startswith("shop/notes.ibd: pages at LSN 0"), "a new file"
    other_space = [["shop/items.ibd", 99, parent["files"][0][2]]]
    assert imports_break(imported_files(data, SIZE), other_space, "P") is not None
    assert imports_break(imported_files(data, SIZE), None, "P") is not None, "a manifest before"
    assert imports_break([], {"files": [["junk"], "x", None]}, "P") is None, "junk skipped"


def test_files_unchanged_since_the_parent_keep_its_entry_unread(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tablespace(data / "shop" / "items.ibd", 8, 12, {n: 0 for n in range(12)})
    parent = scan(data, SIZE)
    later = parent["at"] + CTIME_MARGIN + 60
    assert scan(data, SIZE, {**parent, "at": later})["files"] == parent["files"]
    assert scan(data, SIZE, {"at": later, "files": []})["files"] == [], "not read: unchanged"
    os.utime(data / "shop" / "items.ibd")  # a write: its ctime moves on
    assert scan(data, SIZE, {"at": time.time() - 1, "files": []})["files"] == parent["files"]


def test_a_compressed_table_is_read_at_its_own_page_size(tmp_path: Path) -> None:
    """tester10: pages of a ``KEY_BLOCK_SIZE=8`` file read at 16 KiB offsets never matched
    their numbers but page 0's, so an import into such a table was missed once page 0 was
    written again. Its page 0's flags give 8 KiB."""
    data = tmp_path / "data"
    (data / "shop").mkdir(parents=True)
    first = bytearray(page(0, 4000, 12, size=8192))
    first[54:58] = (1 | 4 << 1 | 32).to_bytes(4, "big")  # ZIP_SSIZE 4: 8 KiB
    rest = [page(n, 0 if n in (3, 9) else 4000 + n, 12, size=8192) for n in range(1, 20)]
    (data / "shop" / "z.ibd").write_bytes(bytes(first) + b"".join(rest))
    found = imported_files(data, SIZE)
    assert [[rel, space, [n for n, _ in pages]] for rel, space, pages in found] == [
        ["shop/z.ibd", 12, [3]]
    ], "page 3 at LSN 0 (page 9 is not among the pages read)"
