"""A point-in-time restore into a target running the event scheduler (tester3's finding 7,
2026-12-03).

The base's events were restored with their status (ENABLED) before the replay and, with
``event_scheduler=ON``, fired during it: an event inserting into a restored table took the
next AUTO_INCREMENT id, which a replayed row then needed ("Duplicate entry", exit 1 after
the base loaded); without a key clash its rows silently mixed with those of the target
moment. Events kept by ``--force`` (created after T) and events the window creates fire
just the same. Such a restore is now refused up front (exit 2, nothing changed) while the
scheduler runs; the refusal does not depend on an event firing (the events here are
scheduled a day ahead), so the tests are deterministic. Before the fix each refused case
ran (exit 0). With the scheduler OFF the restore runs as before.

The sandbox runs with the scheduler OFF; ``scheduler`` turns it ON for a test and OFF again
whatever happens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, database_rows, pitr_window, query
from tests.integration.conftest import SandboxHandle

DB, POLICY, RENAMED = "pitr_evsched", "pitr_evsched", "pitr_evsched_r"
LATER = "ON SCHEDULE EVERY 1 DAY STARTS CURRENT_TIMESTAMP + INTERVAL 1 DAY"
"""A schedule that never fires during a test: the refusal must not wait for an event."""


@pytest.fixture
def window(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PitrWindow]:
    with pitr_window(use_sandbox_config, POLICY, DB, RENAMED, monkeypatch=monkeypatch) as made:
        yield made


@pytest.fixture
def scheduler(window: PitrWindow) -> Iterator[Callable[[], None]]:
    """A call turning the primary's event scheduler ON; OFF again after the test."""

    def turn_on() -> None:
        window.sql("SET GLOBAL event_scheduler = ON")

    try:
        yield turn_on
    finally:
        window.sql("SET GLOBAL event_scheduler = OFF")
        assert query(window.config, "primary", "SELECT @@GLOBAL.event_scheduler") == [("OFF",)]


def state(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    """The tables of ``database`` with their rows, and its events with their status."""
    events = query(
        sandbox.config,
        "primary",
        "SELECT EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
        (database,),
    )
    return {"rows": database_rows(sandbox, database), "events": sorted(events)}


def databases(sandbox: SandboxHandle) -> set[str]:
    return {str(r[0]) for r in query(sandbox.config, "primary", "SHOW DATABASES")}


def restore(capsys: pytest.CaptureFixture[str], gtid: str, *extra: str) -> tuple[int, str]:
    """``restore --policy POLICY --until-gtid gtid --json`` (and ``extra``): (exit, stderr)."""
    capsys.readouterr()
    code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, "--json", *extra])
    out = capsys.readouterr()
    if code == 0:
        json.loads(out.out)
    return code, out.err


def scenario(
    window: PitrWindow, base: list[str], replayed: list[str], after: list[str]
) -> tuple[str, dict[str, Any]]:
    """``base`` then a backup; ``replayed`` (the window); the target moment; then ``after``;
    the archive caught up: (the target GTID, the database's state at it)."""
    with window.session() as cur:
        for sql in base:
            cur.execute(sql)
    window.backup()
    with window.session() as cur:
        for sql in replayed:
            cur.execute(sql)
    gtid = window.gtid()
    at_t = state(window.sandbox, DB)
    with window.session() as cur:
        for sql in after:
            cur.execute(sql)
    window.archive()
    return gtid, at_t


BASE = [
    "CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))",
    "INSERT INTO log (what) VALUES ('base')",
]
WINDOW = ["INSERT INTO log (what) VALUES ('window')"]


def test_the_bases_events_are_refused_while_the_scheduler_runs(
    window: PitrWindow, scheduler: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """The base holds an event; restored into a new database (which holds none): refused
    before anything is created, and so in a dry run. Was exit 0 (the event restored
    ENABLED before the replay)."""
    gtid, _ = scenario(window, [*BASE, f"CREATE EVENT ev {LATER} DO DELETE FROM log"], WINDOW, [])
    scheduler()
    for extra in (["--dry-run"], []):
        code, err = restore(capsys, gtid, "--rename", f"{DB}={RENAMED}", *extra)
        assert code == 2, err
        assert "event scheduler" in err and f"the base backup holds events of `{RENAMED}`" in err
        assert "SET GLOBAL event_scheduler = OFF" in err
        assert RENAMED not in databases(window.sandbox)


def test_the_targets_enabled_events_are_refused_while_the_scheduler_runs(
    window: PitrWindow, scheduler: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """In place with ``--force``: an event created after T (kept: neither the base nor the
    window names it) would run during the replay: refused, nothing changed. Was exit 0."""
    gtid, _ = scenario(
        window, BASE, WINDOW, [f"CREATE EVENT later {LATER} DO DELETE FROM log", "DELETE FROM log"]
    )
    before = state(window.sandbox, DB)
    scheduler()
    code, err = restore(capsys, gtid, "--force")
    assert code == 2, err
    assert f"the target holds the enabled events `{DB}`.`later`" in err
    assert state(window.sandbox, DB) == before


def test_a_disabled_target_event_is_no_reason_to_refuse(
    window: PitrWindow, scheduler: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """A kept event that is DISABLED does not run: with no other event, the restore runs
    with the scheduler ON (exit 0, the rows at T, the event left as it is)."""
    gtid, at_t = scenario(
        window,
        BASE,
        WINDOW,
        [f"CREATE EVENT later {LATER} DISABLE DO DELETE FROM log", "DELETE FROM log"],
    )
    scheduler()
    code, err = restore(capsys, gtid, "--force")
    assert code == 0, err
    assert state(window.sandbox, DB) == {**at_t, "events": [("later", "DISABLED")]}


def test_the_windows_events_are_refused_while_the_scheduler_runs(
    window: PitrWindow, scheduler: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """The window creates an event (dropped after T: the target holds none, nor does the
    base): the replay would create it ENABLED and it would run during the rest of the
    replay: refused once the segments are scanned, nothing changed. Was exit 0."""
    gtid, _ = scenario(
        window,
        BASE,
        [*WINDOW, f"CREATE EVENT ev {LATER} DO DELETE FROM log", *WINDOW],
        ["DROP EVENT ev", "DELETE FROM log"],
    )
    before = state(window.sandbox, DB)
    assert before["events"] == []
    scheduler()
    code, err = restore(capsys, gtid, "--force")
    assert code == 2, err
    assert f"the replay window creates, alters or drops `{DB}`.`ev`" in err
    assert state(window.sandbox, DB) == before


def test_without_events_the_scheduler_is_no_reason_to_refuse(
    window: PitrWindow, scheduler: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """No event in the base, the target or the window: the restore runs with the scheduler
    ON (exit 0, the rows at T)."""
    gtid, at_t = scenario(window, BASE, WINDOW, ["DELETE FROM log"])
    scheduler()
    code, err = restore(capsys, gtid, "--force")
    assert code == 0, err
    assert state(window.sandbox, DB) == at_t


def test_with_the_scheduler_off_the_events_are_restored(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scheduler OFF (the sandbox's setting): the base's event, the window's and one
    made after T do not stop the restore (exit 0): the rows and events at T, the later
    event left as it is."""
    gtid, at_t = scenario(
        window,
        [*BASE, f"CREATE EVENT ev {LATER} DO DELETE FROM log"],
        [*WINDOW, f"CREATE EVENT ev2 {LATER} DO DELETE FROM log", *WINDOW],
        [
            "DROP EVENT ev",
            "DROP EVENT ev2",
            f"CREATE EVENT later {LATER} DO DELETE FROM log",
            "DELETE FROM log",
        ],
    )
    assert query(window.config, "primary", "SELECT @@GLOBAL.event_scheduler") == [("OFF",)]
    assert at_t["events"] == [("ev", "ENABLED"), ("ev2", "ENABLED")]
    code, err = restore(capsys, gtid, "--force")
    assert code == 0, err
    got = state(window.sandbox, DB)
    assert got == {**at_t, "events": [*at_t["events"], ("later", "ENABLED")]}
