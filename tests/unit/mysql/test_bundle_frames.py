"""Format-1 bundles: every statement framed (definitions too), told from older bundles by a
fixed head, cut by sizes whatever names and values hold, refused at the first byte that is
not where the layout says."""

from __future__ import annotations

import pytest

from datatier.mysql.bundle_frames import (
    BUNDLE_HEAD,
    BUNDLE_HEAD_BYTES,
    BundleStatements,
    framed_block,
    is_framed_bundle,
)
from datatier.mysql.frames import FrameError, frame
from datatier.mysql.sqltext import PRELUDE, block, ident, prelude_statements

NAMES = ["a;;\nDELIMITER ;\n-- next statement: 3 bytes\n", "t`$$", "数据 ✓"]


def insert(table: str, value: bytes) -> bytes:
    return b"INSERT INTO " + ident(table).encode() + b" VALUES\n(1,'" + value + b"');\n"


def section(table: str, values: list[bytes]) -> bytes:
    q = ident(table)
    create = f"CREATE TABLE {q} (id INT, v TEXT) COMMENT ';;\\nDELIMITER ;\\n'"
    out = framed_block([f"DROP TABLE IF EXISTS {q}", create])
    return out + b"".join(frame(len(s)) + s for s in (insert(table, v) for v in values))


def bundle(*sections: bytes) -> tuple[bytes, list[int]]:
    data, starts = PRELUDE + BUNDLE_HEAD, []
    for s in sections:
        starts.append(len(data))
        data += s
    return data, starts


HOSTILE = [b"x;\\nDELIMITER ;;\\n", b"-- next statement: 9 bytes\\n", b"\\');\\nDROP TABLE t;"]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 64, 1 << 20])
def test_statements_and_their_tables_at_any_chunk_size(size: int) -> None:
    data, starts = bundle(*(section(n, HOSTILE[: i + 1]) for i, n in enumerate(NAMES)))
    parsed = BundleStatements(pieces(data, size), starts)
    seen = [(parsed.section, parsed.number, s) for s in parsed]
    prelude = prelude_statements()
    assert [s for _, _, s in seen[: len(prelude)]] == prelude
    assert {sec for sec, _, _ in seen[: len(prelude)]} == {-1}
    rest = seen[len(prelude) :]
    assert [(sec, n) for sec, n, _ in rest] == [
        (0, 1), (0, 2), (0, 3),
        (1, 1), (1, 2), (1, 3), (1, 4),
        (2, 1), (2, 2), (2, 3), (2, 4), (2, 5),
    ]  # fmt: skip
    drop = rest[3][2]
    assert drop == f"DROP TABLE IF EXISTS {ident(NAMES[1])}".encode()  # no delimiter
    assert rest[5][2] == insert(NAMES[1], HOSTILE[0])[:-2]  # without ";\n"
    assert all(not s.endswith((b";", b"$$", b";;")) for _, _, s in rest)


def test_the_stock_client_layout_is_kept() -> None:
    """The block is what the client reads: a DELIMITER line, frames as comments, and
    ``DELIMITER ;`` before the INSERTs."""
    text = framed_block(["DROP TABLE IF EXISTS `t`", "CREATE TABLE `t` (a INT)"])
    assert text == (
        b"DELIMITER ;;\n"
        b"-- next statement: 27 bytes\nDROP TABLE IF EXISTS `t`;;\n"
        b"-- next statement: 27 bytes\nCREATE TABLE `t` (a INT);;\n"
        b"DELIMITER ;\n"
    )


def test_new_bundles_are_told_from_older_ones_by_their_head() -> None:
    data, _ = bundle(section("t", [b"v"]))
    assert is_framed_bundle(data[:BUNDLE_HEAD_BYTES])
    old = PRELUDE + block(["DROP TABLE IF EXISTS `t`", "CREATE TABLE `t` (a INT)"]).encode()
    assert not is_framed_bundle(old[:BUNDLE_HEAD_BYTES])
    # The format line only counts where the writer puts it: a table or value holding it
    # further on does not make an older bundle look new.
    smuggled = old + insert("t", BUNDLE_HEAD)
    assert not is_framed_bundle(smuggled[:BUNDLE_HEAD_BYTES])
    later = PRELUDE + BUNDLE_HEAD.replace(b"format 1", b"format 2")
    assert not is_framed_bundle(later[:BUNDLE_HEAD_BYTES])


def test_an_older_bundle_given_to_the_parser_is_refused_before_any_statement() -> None:
    old = PRELUDE + block(["DROP TABLE IF EXISTS `t`"]).encode()
    with pytest.raises(FrameError, match="format line"):
        next(iter(BundleStatements([old], [len(PRELUDE)])))


def lies() -> list[tuple[bytes, list[int], str, int]]:
    """(bundle, section starts, problem, statements yielded before it)."""
    good, starts = bundle(section("t", [b"a"]), section("u", [b"b"]))
    prelude = len(prelude_statements())
    first_drop = starts[0] + len(b"DELIMITER ;;\n")
    framed = frame(len(b"DROP TABLE IF EXISTS `t`;;\n"))
    longer = good[:first_drop] + frame(len(framed) + 500) + good[first_drop + len(framed) :]
    shorter = good[:first_drop] + frame(10) + good[first_drop + len(framed) :]
    unframed = good + b"INSERT INTO `u` VALUES (2,'c');\n"
    over = good[: starts[1] - 1]  # cut: the last INSERT of t misses its newline
    across = good[: starts[1]] + good[starts[1] :]
    wrong_delimiter = good.replace(b"`t`$$\n", b"`t`;;\n", 1)
    return [
        (longer, starts, "cut short|runs into", prelude),
        (shorter, starts, "not one statement", prelude),
        (unframed, starts, "no statement frame", prelude + 6),
        (over, starts, "cut short", prelude + 2),
        (across, [starts[0], starts[1] - 5], "runs into the next table", prelude + 2),
        (wrong_delimiter, starts, "not one statement", prelude),
        (good, [starts[0] + 1, starts[1]], "first section", prelude),
    ]


@pytest.mark.parametrize(("data", "starts", "problem", "before"), lies())
def test_a_bundle_that_lies_stops_before_the_bad_statement(
    data: bytes, starts: list[int], problem: str, before: int
) -> None:
    got: list[bytes] = []
    with pytest.raises(FrameError, match=problem):
        for statement in BundleStatements(pieces(data, 5), starts):
            got.append(statement)
    assert len(got) == before
