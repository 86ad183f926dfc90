""":func:`imported_files` on synthetic tablespace files (page number at 4, LSN at 16, page
type at 24, space id at 34) and :func:`imports_break` on what manifests record."""

from __future__ import annotations

from pathlib import Path

from datatier.mysql.physical.imports import FSP_HDR, WHOLE_PAGES, imported_files, imports_break

SIZE = 16384


def page(page_no: int, lsn: int, space: int, kind: int = 0x45BF) -> bytes:
    raw = bytearray(SIZE)
    raw[4:8] = page_no.to_bytes(4, "big")
    raw[16:24] = lsn.to_bytes(8, "big")
    raw[24:26] = (FSP_HDR if page_no == 0 else kind).to_bytes(2, "big")
    raw[34:38] = space.to_bytes(4, "big")
    raw[100:110] = b"rows, rows"
    return bytes(raw)


def tablespace(path: Path, space: int, pages: int, lsn_of: dict[int, int] | None = None) -> None:
    """``pages`` pages written at LSN 1000 + n (``lsn_of`` overrides); page 5 never written
    (zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lsns = {n: 1000 + n for n in range(pages)} | (lsn_of or {})
    path.write_bytes(b"".join(bytes(SIZE) if n == 5 else page(n, lsns[n], space)
                              for n in range(pages)))  # fmt: skip


def test_files_with_a_page_at_lsn_0_are_listed_wherever_their_isl_points(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tablespace(data / "shop" / "orders.ibd", 7, 40)  # logged pages, one never written
    tablespace(data / "shop" / "items.ibd", 8, 12, {n: 0 for n in range(12)})  # imported
    tablespace(data / "shop" / "notes.ibd", 9, 300, {299: 0})  # its last page: read
    tablespace(data / "shop" / "big.ibd", 10, 300, {151: 0})  # not a page read across it
    outside = tmp_path / "elsewhere" / "ext.ibd"
    tablespace(outside, 11, 6, {3: 0})
    (data / "shop" / "ext.isl").write_bytes(bytes(outside))
    (data / "shop" / "empty.ibd").write_bytes(b"")
    (data / "shop" / "short.ibd").write_bytes(b"x" * 100)
    assert imported_files(data, SIZE) == [
        ["shop/ext.ibd", 11], ["shop/items.ibd", 8], ["shop/notes.ibd", 9],
    ]  # fmt: skip
    assert WHOLE_PAGES < 300


def test_page_0_at_lsn_0_counts_only_as_a_tablespace_header(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tablespace(data / "a" / "t.ibd", 3, 4, {0: 0})
    assert imported_files(data, SIZE) == [["a/t.ibd", 3]]
    zeros = bytearray(page(0, 0, 3))
    zeros[24:26] = b"\x00\x00"  # not an FSP header: a page 0 never written
    (data / "a" / "t.ibd").write_bytes(bytes(zeros) + page(1, 5, 3))
    assert imported_files(data, SIZE) == []


def test_an_incremental_is_refused_for_files_the_parent_did_not_list() -> None:
    found = [["shop/items.ibd", 8], ["shop/notes.ibd", 9]]
    assert imports_break(found, [["shop/items.ibd", 8], ["shop/notes.ibd", 9]], "P") is None
    assert imports_break([], None, "P") is None, "nothing imported"
    why = imports_break(found, [["shop/items.ibd", 8]], "P")
    assert why is not None and why.startswith("shop/notes.ibd: pages at LSN 0 that P did not have")
    why = imports_break(found, [["shop/items.ibd", 99], "junk", [1, 2]], "P")
    assert why is not None and "shop/items.ibd and 1 other file(s)" in why, "space id differs"
    assert imports_break(found, None, "P") is not None, "a manifest from before: refused once"
