"""The page sampler on a real mbstream (``mbstream -c`` of synthetic InnoDB-shaped pages:
page number at 4, LSN at 16, space id at 34), and :func:`pages_break` on the files."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from datatier.mysql.physical.mbstream import StreamIndex
from datatier.mysql.physical.pages import (
    PER_FILE,
    SPREAD,
    PageSampler,
    pages_break,
    physical_size,
)

SIZE = 16384
MBSTREAM = shutil.which("mbstream")


FULL_CRC32_16K = 0x15  # FSP flags of page 0: the full_crc32 marker (bit 4), page ssize 5
ZIP_8K = 0x29  # the older format: POST_ANTELOPE, ZIP_SSIZE 4 (8 KiB), ATOMIC_BLOBS


def page(
    page_no: int, lsn: int, space: int, fill: int = 0, size: int = SIZE, flags: int = 0
) -> bytes:
    """Random bytes with InnoDB's header fields; page 0 with FSP ``flags`` (full_crc32 at
    16 KiB unless given)."""
    raw = bytearray(random.Random(page_no * 7919 + fill).randbytes(size))
    raw[4:8] = page_no.to_bytes(4, "big")
    raw[16:24] = lsn.to_bytes(8, "big")
    raw[34:38] = space.to_bytes(4, "big")
    if page_no == 0:
        raw[54:58] = (flags or FULL_CRC32_16K).to_bytes(4, "big")
    return bytes(raw)


def lsn_of(number: int) -> int:
    return 1000 + (number * 37 % 40) * 10  # a permutation: pages 0..39 written in any order


def datadir(root: Path) -> Path:
    """``shop/orders.ibd`` (40 pages, space 7, page 0 written last), ``shop/items.ibd.delta``
    (pages 3, 9, a copy of page 5 in slot 64, 12 after their header page; ``.meta``:
    space 8), ``shop/orders.frm``.
    Pages other than 0 carry another space id at 34: encryption scrambles that field."""
    (root / "shop").mkdir(parents=True)
    pages = [page(n, 99_999 if n == 0 else lsn_of(n), 7 if n == 0 else 1234) for n in range(40)]
    (root / "shop" / "orders.ibd").write_bytes(b"".join(pages))
    numbers = [3, 9, 64, 12]  # 64: a doublewrite slot holding a copy of page 5
    head = bytearray(SIZE)
    head[:4] = b"XTRA"
    for i, n in enumerate([*numbers, 0xFFFFFFFF]):
        head[4 + 4 * i : 8 + 4 * i] = n.to_bytes(4, "big")
    delta = bytes(head) + b"".join(page(5 if n == 64 else n, 5000 + n, 4321) for n in numbers)
    (root / "shop" / "items.ibd.delta").write_bytes(delta)
    (root / "shop" / "items.ibd.meta").write_text("page_size = 16384\nzip_size = 0\nspace_id = 8\n")
    (root / "shop" / "orders.frm").write_bytes(b"\xfe\x01" + b"x" * 500)
    return root


def sampled(root: Path, rng: random.Random) -> dict[str, object]:
    if MBSTREAM is None:
        pytest.fail("mbstream is not installed (make deps installs mariadb-backup)")
    files = ["shop/orders.frm", "shop/orders.ibd", "shop/items.ibd.delta", "shop/items.ibd.meta"]
    stream = subprocess.run([MBSTREAM, "-c", *files], cwd=root, capture_output=True,
                            check=True).stdout  # fmt: skip
    index = StreamIndex(sampler=PageSampler(SIZE))
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 40_000)
        index.feed(stream[pos : pos + step])
        pos += step
    index.finish()
    assert index.sampler is not None
    return index.sampler.sample()


def test_the_sampler_keeps_each_files_pages_written_last_in_any_piece_size(
    tmp_path: Path,
) -> None:
    root = datadir(tmp_path / "src")
    top = sorted(range(1, 40), key=lsn_of)[-PER_FILE:]
    for seed in range(5):
        sample = sampled(root, random.Random(seed))
        assert sample["page_size"] == SIZE
        pages = sample["pages"]
        assert isinstance(pages, list)
        got = {(rel, n, space, lsn) for rel, n, space, lsn, _ in pages}
        orders = {(n, lsn) for rel, n, _, lsn in got if rel == "shop/orders.ibd"}
        assert {(n, lsn_of(n)) for n in top} <= orders, "the pages written last"
        assert all(lsn == lsn_of(n) and 0 < n < 40 for n, lsn in orders), "page 0 left out"
        assert PER_FILE < len(orders) <= PER_FILE + SPREAD, "and some of any age"
        assert {(rel, space) for rel, _, space, _ in got} == {
            ("shop/orders.ibd", 7),
            ("shop/items.ibd", 8),
        }, "each file's space id: its page 0's, an incremental's .meta"
        assert {(n, lsn) for rel, n, _, lsn in got if rel == "shop/items.ibd"} == {
            (n, 5000 + n) for n in (3, 9, 12)
        }, "the delta's header page and the copy of another page are left out"


def test_pages_break_tells_a_datadir_put_back_from_one_that_went_on(tmp_path: Path) -> None:
    root = datadir(tmp_path / "src")
    sample = sampled(root, random.Random(1))
    live = tmp_path / "live"
    (live / "shop").mkdir(parents=True)
    orders = live / "shop" / "orders.ibd"
    shutil.copy(root / "shop" / "orders.ibd", orders)
    items = bytearray(SIZE * 13)
    items[:SIZE] = page(0, 1, 8)
    for n in (3, 9, 12):
        items[n * SIZE : (n + 1) * SIZE] = page(n, 5000 + n, 4321)
    (live / "shop" / "items.ibd").write_bytes(items)
    assert pages_break(live, sample, "N") is None, "the same pages"
    assert pages_break(live, None, "N") is None, "no sample recorded"
    (tmp_path / "outside").write_bytes(page(1, 1, 7) * 2)
    lying = {
        "page_size": SIZE,
        "pages": [
            ["../outside", 1, 7, 10**9, "x"],
            ["shop/orders.ibd", "1", 7, 10**9, "x"],
            [None] * 5,
            "junk",
            ["shop/orders.ibd", 1, 7, True, "x"],
        ],
    }
    assert pages_break(live, lying, "N") is None, "a manifest's malformed entries: skipped"
    assert pages_break(live, {**sample, "page_size": 1 << 40}, "N") is None, "no such size"
    newest = max(range(1, 40), key=lsn_of)

    def put(number: int, content: bytes) -> None:
        with orders.open("r+b") as f:
            f.seek(number * SIZE)
            f.write(content)

    put(newest, page(newest, lsn_of(newest) + 500, 1234, fill=1))
    assert pages_break(live, sample, "N") is None, "written since: newer LSN"
    assert pages_break(live, sample, "N", checkpoint=lsn_of(newest) + 499) is None, "past N"
    why = pages_break(live, sample, "N", checkpoint=lsn_of(newest) + 500)
    assert (
        why is not None and "at or before checkpoint" in why and "which that copy began from" in why
    ), "written again"
    put(newest, page(newest, lsn_of(newest) - 5, 1234, fill=1))
    why = pages_break(live, sample, "N")
    assert why is not None and f"page {newest} of shop/orders.ibd is at LSN" in why
    assert "older than" in why and "when N was copied" in why
    put(newest, page(newest, lsn_of(newest), 1234, fill=2))
    why = pages_break(live, sample, "N")
    assert why is not None and "holds other bytes under LSN" in why
    put(0, page(0, 1, 99))
    assert pages_break(live, sample, "N") is None, "another space id: rebuilt, not compared"
    orders.unlink()
    assert pages_break(live, sample, "N") is None, "dropped or renamed: not compared"
    (live / "shop" / "items.ibd").write_bytes(items[: 9 * SIZE])
    assert pages_break(live, sample, "N") is None, "a short file: not compared"


def test_a_table_with_a_data_directory_is_compared_where_its_isl_points(tmp_path: Path) -> None:
    """A ``DATA DIRECTORY`` table streams as ``shop/orders.ibd`` beside ``shop/orders.isl``;
    the live file is where the ``.isl`` in the datadir points, not in the datadir. Before,
    the check found no ``shop/orders.ibd`` there and skipped every page of it: a rollback
    of the external file went unseen."""
    root = datadir(tmp_path / "src")
    sample = sampled(root, random.Random(3))
    outside = tmp_path / "elsewhere dir" / "shop"
    outside.mkdir(parents=True)
    external = outside / "orders.ibd"
    shutil.copy(root / "shop" / "orders.ibd", external)
    live = tmp_path / "live"
    (live / "shop").mkdir(parents=True)
    (live / "shop" / "orders.isl").write_bytes(bytes(external))
    assert pages_break(live, sample, "N") is None, "the same pages, through the .isl"
    newest = max(range(1, 40), key=lsn_of)
    with external.open("r+b") as f:
        f.seek(newest * SIZE)
        f.write(page(newest, lsn_of(newest) - 5, 1234, fill=1))
    why = pages_break(live, sample, "N")
    assert why is not None and f"page {newest} of shop/orders.ibd is at LSN" in why
    (live / "shop" / "orders.isl").write_bytes(b"relative/orders.ibd")
    assert pages_break(live, sample, "N") is None, "not an absolute path: not followed"


def test_a_compressed_table_s_pages_are_read_at_their_own_size() -> None:
    """``KEY_BLOCK_SIZE`` from page 0's flags (1 to 16 KiB); full_crc32 files, files of
    the server's page size and flags no server writes: ``innodb_page_size``."""
    for ssize, size in ((1, 1024), (2, 2048), (3, 4096), (4, 8192), (5, 16384)):
        flags = 1 | ssize << 1 | 32
        assert physical_size(page(0, 1, 5, flags=flags), SIZE) == size, size
    assert physical_size(page(0, 1, 5, flags=ZIP_8K), 4096) == 4096, "larger than a page"
    assert physical_size(page(0, 1, 5), SIZE) == SIZE, "full_crc32: never compressed"
    assert physical_size(page(0, 1, 5, flags=1 | 7 << 1), SIZE) == SIZE, "no such zip size"
    assert physical_size(page(0, 1, 5, flags=0x20), SIZE) == SIZE, "not compressed"
    assert physical_size(b"short", SIZE) == SIZE


def zipped(root: Path) -> Path:
    """``shop/z.ibd``: 24 pages of 8 KiB (``KEY_BLOCK_SIZE=8``, space 9), and
    ``shop/zd.ibd.delta`` + ``.meta`` (``zip_size = 8192``, space 10; pages 2 and 5)."""
    (root / "shop").mkdir(parents=True)
    small = 8192
    pages = [page(n, 99_999 if n == 0 else lsn_of(n), 9, size=small, flags=ZIP_8K)
             for n in range(24)]  # fmt: skip
    (root / "shop" / "z.ibd").write_bytes(b"".join(pages))
    head = bytearray(small)
    head[:4] = b"XTRA"
    for i, n in enumerate([2, 5, 0xFFFFFFFF]):
        head[4 + 4 * i : 8 + 4 * i] = n.to_bytes(4, "big")
    delta = bytes(head) + page(2, 6002, 10, size=small) + page(5, 6005, 10, size=small)
    (root / "shop" / "zd.ibd.meta").write_text(
        "page_size = 8192\nzip_size = 8192 \nspace_id = 10\n"
    )
    (root / "shop" / "zd.ibd.delta").write_bytes(delta)
    return root


def test_the_pages_of_compressed_tables_are_sampled_and_compared(tmp_path: Path) -> None:
    """tester10: every page of a ``ROW_FORMAT=COMPRESSED`` file was cut at 16 KiB, failed
    the page-number check and was never sampled, so a rollback of such a file was chained.
    mariabackup streams a ``.delta``'s ``.meta`` (its ``zip_size``) before it."""
    if MBSTREAM is None:
        pytest.fail("mbstream is not installed (make deps installs mariadb-backup)")
    root = zipped(tmp_path / "src")
    files = ["shop/z.ibd", "shop/zd.ibd.meta", "shop/zd.ibd.delta"]
    stream = subprocess.run([MBSTREAM, "-c", *files], cwd=root, capture_output=True,
                            check=True).stdout  # fmt: skip
    samples = []
    for step in (5000, 37):  # 37: page 0's flags arrive in pieces, as a pipe may cut them
        index = StreamIndex(sampler=PageSampler(SIZE))
        for pos in range(0, len(stream), step):
            index.feed(stream[pos : pos + step])
        index.finish()
        assert index.sampler is not None
        samples.append(index.sampler.sample())
    sample = samples[0]
    assert samples[1]["sizes"] == sample["sizes"] == {"shop/z.ibd": 8192, "shop/zd.ibd": 8192}
    assert {p[0] for p in samples[1]["pages"]} == {"shop/z.ibd", "shop/zd.ibd"}
    got = {(rel, n, space, lsn) for rel, n, space, lsn, _ in sample["pages"]}
    assert {(n, lsn_of(n)) for rel, n, _, lsn in got if rel == "shop/z.ibd"} >= {
        (n, lsn_of(n)) for n in sorted(range(1, 24), key=lsn_of)[-PER_FILE:]
    }
    assert {(n, lsn) for rel, n, _, lsn in got if rel == "shop/zd.ibd"} == {(2, 6002), (5, 6005)}
    live = tmp_path / "live"
    shutil.copytree(root, live)
    assert pages_break(live, sample, "N") is None, "the same pages"
    newest = max(range(1, 24), key=lsn_of)
    with (live / "shop" / "z.ibd").open("r+b") as f:
        f.seek(newest * 8192)
        f.write(page(newest, lsn_of(newest) - 5, 9, fill=1, size=8192))
    why = pages_break(live, sample, "N")
    assert why is not None and f"page {newest} of shop/z.ibd is at LSN" in why, "rolled back"
    assert pages_break(live, {**sample, "sizes": {}}, "N") is None, "cut at 16 KiB: unseen"
    for odd in (8192.0, "8192", True, 3000):  # a manifest's malformed sizes: skipped
        assert pages_break(live, {**sample, "sizes": {"shop/z.ibd": odd}}, "N") is None
