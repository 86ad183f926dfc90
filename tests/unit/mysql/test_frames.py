"""Statement frames of data objects: cut where the sizes say, whatever the values hold, and
refused the moment a byte is not where they say."""

from __future__ import annotations

import pytest

from datatier.mysql.frames import (
    HEAD_BYTES,
    FrameError,
    frame,
    is_framed,
    peek,
    statements,
)
from datatier.mysql.sqltext import PRELUDE, prelude_statements

HOSTILE = [
    b"INSERT INTO `t` (`v`) VALUES\n('a;\nb'),\n('-- next statement: 3 bytes\n');\n",
    b"INSERT INTO `t` (`v`) VALUES\n('\\');\nINSERT INTO `t` (`v`) VALUES\n(1);\n');\n",
    b"INSERT INTO `t` (`v`) VALUES\n(X'00FF0A3B'),\n('\xf0\x9f\x98\x80 \r\n');\n",
]


def framed(*texts: bytes) -> bytes:
    return PRELUDE + b"".join(frame(len(t)) + t for t in texts)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 1 << 20])
def test_statements_are_cut_where_the_frames_say_at_any_chunk_size(size: int) -> None:
    got = list(statements(pieces(framed(*HOSTILE), size)))
    assert got == [*prelude_statements(), *HOSTILE]


def test_an_object_of_only_the_prelude_has_only_its_statements() -> None:
    assert list(statements([PRELUDE])) == prelude_statements()


def test_framed_objects_are_told_from_older_ones_by_their_head() -> None:
    assert is_framed(framed(*HOSTILE)[:HEAD_BYTES])
    assert not is_framed((PRELUDE + HOSTILE[0])[:HEAD_BYTES])
    assert not is_framed(PRELUDE)  # empty: the stock client loads it


def test_peek_gives_the_head_and_every_chunk_again() -> None:
    data = framed(*HOSTILE)
    head, again = peek(iter(pieces(data, 5)))
    assert head == data[:HEAD_BYTES]
    assert b"".join(again) == data
    short, rest = peek(iter([b"abc"]))
    assert short == b"abc" and list(rest) == [b"abc"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (HOSTILE[0], "does not start with the session prelude"),
        (PRELUDE + HOSTILE[0], f"no statement frame at byte {len(PRELUDE)}"),
        (PRELUDE + frame(len(HOSTILE[0]) + 5) + HOSTILE[0], "is cut short"),
        (PRELUDE + frame(len(HOSTILE[0]) - 1) + HOSTILE[0], "is not one INSERT"),
        (PRELUDE + frame(8) + b"DROP t;\n", "is not one INSERT"),
        (framed(b"INSERT INTO t VALUES (1); DROP TABLE t;\n"), None),
        (framed(HOSTILE[0]) + b"garbage", "no statement frame at byte"),
        (PRELUDE + b"-- next statement: 0 bytes\n", "no statement frame"),
        (PRELUDE + b"-- next statement: -5 bytes\n", "no statement frame"),
    ],
)
def test_bytes_out_of_frame_are_refused_before_they_are_yielded(
    data: bytes, problem: str | None
) -> None:
    """Statements before the bad byte come out; never one holding it. (A frame holding a
    second statement is the server's to refuse: one statement per query, see direct.py.)"""
    got: list[bytes] = []
    if problem is None:
        got.extend(statements(pieces(data, 3)))
        assert got[-1] == b"INSERT INTO t VALUES (1); DROP TABLE t;\n"
        return
    with pytest.raises(FrameError, match=problem):
        got.extend(statements(pieces(data, 3)))
    prelude = prelude_statements()
    assert got[: len(prelude)] == prelude[: len(got)]
    assert all(s in HOSTILE for s in got[len(prelude) :])


def test_the_restore_session_is_the_prelude_s_with_a_stricter_sql_mode() -> None:
    """One statement per PRELUDE line (bundle errors count them), the same but for the
    sql_mode: no engine substituted, invalid dates the source stored kept."""
    lines = [line[:-1] for line in PRELUDE.splitlines()]
    session = prelude_statements()
    assert len(session) == len(lines)
    changed = [(a, b) for a, b in zip(lines, session, strict=True) if a != b]
    assert changed == [
        (
            b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
            b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,"
            b"ALLOW_INVALID_DATES' */",
        )
    ]
