"""Streaming stages: zstd compress/decompress, digests, verification, part cutting."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from datatier.errors import IntegrityFailure, UsageError
from datatier.pipeline import Digester, compress, decompress, read_verified, verify, verify_object
from datatier.storage.base import MiB
from datatier.storage.local import LocalStore
from datatier.storage.s3stream import cut_parts

SQL = b"".join(b"INSERT INTO t VALUES (%d,'name %d',NULL);\n" % (i, i * 7) for i in range(20_000))


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("in_size", [100, 4096, 10 * MiB])
@pytest.mark.parametrize("level", [1, 3, 19])
def test_round_trip(in_size: int, level: int) -> None:
    packed = b"".join(compress(pieces(SQL, in_size), level=level))
    assert len(packed) < len(SQL) // 3
    assert b"".join(decompress(pieces(packed, 1000))) == SQL


def test_empty_input_still_makes_a_frame() -> None:
    packed = b"".join(compress(iter([b"", b""])))
    assert packed and b"".join(decompress([packed])) == b""


def test_compressed_chunk_size_is_bounded() -> None:
    out = list(compress([os.urandom(3 * MiB)], chunk_size=64 * 1024))
    assert max(len(c) for c in out) <= 64 * 1024 and len(out) > 40


def test_output_is_readable_by_the_stock_zstd_library_and_cli() -> None:
    packed = b"".join(compress(pieces(SQL, 65536)))
    reader = zstandard.ZstdDecompressor().stream_reader(packed)
    assert reader.read() == SQL
    zstd_cli = shutil.which("zstd")
    if zstd_cli:  # the design's portability contract: plain zstd -d gives back the SQL
        cli = subprocess.run([zstd_cli, "-d", "-c"], input=packed, capture_output=True, check=True)
        assert cli.stdout == SQL


def test_decompress_accepts_concatenated_frames() -> None:
    first = zstandard.ZstdCompressor().compress(b"hello ")
    second = b"".join(compress([b"world"]))
    assert b"".join(decompress([first + second[:3], second[3:]])) == b"hello world"


def test_decompress_skips_skippable_frames() -> None:
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"meta!"
    packed = skippable + b"".join(compress([b"data"]))
    assert b"".join(decompress(pieces(packed, 3))) == b"data"


def test_decompress_passes_source_errors_through() -> None:
    packed = b"".join(compress(pieces(SQL, 65536)))

    def source() -> Iterator[bytes]:
        yield packed[:1000]
        raise ConnectionResetError("connection dropped")

    with pytest.raises(ConnectionResetError, match="connection dropped"):
        b"".join(decompress(source()))


def test_decompress_output_steps_stay_small() -> None:
    packed = zstandard.ZstdCompressor(level=3).compress(bytes(64 * MiB))  # ~2 KiB of RLE
    assert len(packed) < 16 * 1024
    assert max(len(c) for c in decompress([packed], chunk_size=MiB)) == MiB


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:-3], "truncated"),
        (lambda b: b"", "empty zstd"),
        (lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:], "corrupt zstd"),
        (lambda b: b + b"trailing garbage", "corrupt zstd"),
        (lambda b: b"plain text, not zstd at all", "corrupt zstd"),
        (lambda b: b[:2], "truncated"),
    ],
    ids=["half", "tail", "empty", "flipped", "garbage-after", "not-zstd", "half-magic"],
)
def test_damaged_zstd_raises_integrity_failure(damage: object, message: str) -> None:
    packed = b"".join(compress(pieces(SQL, 65536)))
    broken = damage(packed)  # type: ignore[operator]
    with pytest.raises(IntegrityFailure, match=message) as err:
        b"".join(decompress(pieces(broken, 4096), name="s3://b/p/x.zst"))
    assert "s3://b/p/x.zst" in str(err.value) and err.value.exit_code == 4


def test_bad_level_and_threads_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="level 99"):
        next(compress([b"x"], level=99))
    with pytest.raises(UsageError, match="threads"):
        next(compress([b"x"], threads=-5))


def test_digester_counts_and_hashes_in_passing() -> None:
    digester = Digester(pieces(SQL, 777))
    complete_before = digester.complete
    assert not complete_before
    assert b"".join(digester) == SQL
    assert digester.complete and digester.size == len(SQL)
    assert digester.sha256 == hashlib.sha256(SQL).hexdigest()
    with pytest.raises(RuntimeError):
        iter(digester)


def test_verify_passes_good_data() -> None:
    sha = hashlib.sha256(SQL).hexdigest().upper()
    assert b"".join(verify(pieces(SQL, 1000), name="x", size=len(SQL), sha256=sha)) == SQL


def test_verify_stops_as_soon_as_the_stream_is_too_long() -> None:
    pulled: list[int] = []

    def source() -> Iterator[bytes]:
        for i in range(100):
            pulled.append(i)
            yield b"x" * 10

    with pytest.raises(IntegrityFailure, match="longer than the expected 25 bytes"):
        list(verify(source(), name="obj", size=25, sha256="00"))
    assert len(pulled) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [(SQL[:-1], "truncated"), (SQL[:-1] + b"!", "SHA-256 mismatch")],
    ids=["short", "changed"],
)
def test_verify_rejects_bad_data(data: bytes, message: str) -> None:
    sha = hashlib.sha256(SQL).hexdigest()
    with pytest.raises(IntegrityFailure, match=message) as err:
        list(verify(pieces(data, 4096), name="file:///b/obj", size=len(SQL), sha256=sha))
    assert "file:///b/obj" in str(err.value)


def test_read_verified_from_a_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digester = Digester(compress(pieces(SQL, 65536)))
    store.put_stream("pol/id/data/db.sql.zst", digester)
    key, size, sha = "pol/id/data/db.sql.zst", digester.size, digester.sha256
    verify_object(store, key, size=size, sha256=sha)
    out = read_verified(store, key, size=size, sha256=sha, decompress=True, chunk_size=1000)
    assert b"".join(out) == SQL
    (tmp_path / key).write_bytes(b"".join(compress([SQL[:-5]])))
    with pytest.raises(IntegrityFailure, match=r"pol/id/data/db\.sql\.zst"):
        verify_object(store, key, size=size, sha256=sha)
    with pytest.raises(IntegrityFailure, match=r"pol/id/data/db\.sql\.zst"):
        b"".join(read_verified(store, key, size=size, sha256=sha, decompress=True))


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([], [0]),
        ([3], [3]),
        ([4, 4], [5, 3]),
        ([5], [5]),
        ([10], [5, 5]),
        ([2, 2, 2, 2, 2, 1], [5, 5, 1]),
        ([12], [5, 5, 2]),
    ],
)
def test_cut_parts(sizes: list[int], expected: list[int]) -> None:
    data = os.urandom(sum(sizes))
    chunks, pos = [], 0
    for n in sizes:
        chunks.append(data[pos : pos + n])
        pos += n
    parts = list(cut_parts(iter(chunks), 5))
    assert [len(p) for p in parts] == expected
    assert b"".join(parts) == data
