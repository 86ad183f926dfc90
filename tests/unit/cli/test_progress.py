"""Progress lines: totals, rate and ETA; silent off a terminal; never glued to a log line."""

from __future__ import annotations

import io
import os
import pty
import re
from collections.abc import Iterator

import pytest

from datatier import log
from datatier.cli.progress import Progress, human_seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    screen = Terminal()
    log.configure(level="info", fmt="console", stream=screen)
    yield screen
    log.configure()


def test_total_rate_and_eta(terminal: Terminal) -> None:
    clock = Clock()
    progress = Progress("restore X", total=100 * 2**20, stream=terminal, clock=clock)
    clock.now += 0.5
    progress.advance(10 * 2**20)
    assert "ETA" not in progress.text(clock.now)  # not enough history for a rate yet
    clock.now += 1.5
    progress.advance(15 * 2**20)  # 25 MiB in 2 s: 12.5 MiB/s, 75 MiB to go: 6 s
    line = progress.text(clock.now)
    assert line == "restore X: 25.0 MiB / 100.0 MiB (25%)  12.5 MiB/s  ETA 6s"
    progress.set(100 * 2**20)
    assert progress.text(clock.now).endswith("(100%)  50.0 MiB/s  done in 2s")
    progress.close()
    assert terminal.getvalue().endswith("done in 2s\n")


def test_objects_and_unknown_totals(terminal: Terminal) -> None:
    clock = Clock()
    progress = Progress("archive shop", total=40, unit="objects", stream=terminal, clock=clock)
    clock.now += 10
    progress.advance(10)
    assert progress.text(clock.now) == "archive shop: 10 objects / 40 objects (25%)  1/s  ETA 30s"
    open_ended = Progress("copy a -> b", unit="keys", stream=terminal, clock=clock)
    open_ended.advance(5)
    assert "ETA" not in open_ended.text(clock.now + 5) and "%" not in open_ended.text(clock.now)


def test_human_seconds() -> None:
    assert [human_seconds(s) for s in (4.4, 59.6, 185, 7620)] == ["4s", "1m00s", "3m05s", "2h07m"]


def test_silent_when_not_a_terminal() -> None:
    pipe = io.StringIO()
    progress = Progress("verify", total=10, stream=pipe)
    progress.advance(5)
    progress.close()
    assert pipe.getvalue() == ""


def test_log_lines_never_interleave_with_the_progress_line(terminal: Terminal) -> None:
    clock = Clock()
    progress = Progress("verify B", total=1000, unit="objects", stream=terminal, clock=clock)
    logger = log.get_logger("datatier.test")
    for i in range(5):
        clock.now += 1
        progress.advance(100)
        logger.warning("test.event", n=i)
    progress.close()
    logger.info("test.after")
    # What a terminal shows: each \r\033[K erases the line so far.
    shown = [re.split(r"\r\033\[K", line)[-1] for line in terminal.getvalue().split("\n")]
    events = [line for line in shown if "test.event" in line or "test.after" in line]
    assert len(events) == 6
    for line in events:
        assert "verify B" not in line  # a log line never carries progress text
        assert re.match(r"^\d\d:\d\d:\d\d (warning|info) +test\.", line), line
    progress_lines = [line for line in shown if line.startswith("verify B:")]
    assert progress_lines[-1].startswith("verify B: 500 objects / 1000 objects (50%)")
    # After every log line the progress line is drawn again below it.
    raw = terminal.getvalue()
    for i in range(5):
        after = raw.split(f"n={i}\n", 1)[1]
        assert after.startswith("verify B: ")


def test_on_a_real_pty() -> None:
    """Through a pseudo-terminal: isatty() is true, lines end up separate."""
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w", buffering=1) as screen:
        log.configure(level="info", fmt="console", stream=screen)
        try:
            progress = Progress("load", total=3, unit="objects", stream=screen)
            assert progress.enabled
            progress.advance(1)
            log.get_logger("datatier.test").info("test.midway")
            progress.advance(2)
            progress.close()
        finally:
            log.configure()
    data = b""
    while chunk := _read(leader):
        data += chunk
    os.close(leader)
    text = data.decode().replace("\r\n", "\n")
    shown = [re.split(r"\r\x1b\[K", line)[-1] for line in text.split("\n")]
    assert any(line.endswith("test.midway") for line in shown)
    assert any(line.startswith("load: 3 objects / 3 objects (100%)") for line in shown)


def _read(fd: int) -> bytes:
    import select

    ready, _, _ = select.select([fd], [], [], 0.2)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
