"""``migrate run`` with several batches in flight: the checkpoint never claims rows that are
not durable, and a resume after a kill or a failure at any moment ends equal to MySQL.

The source is the sandbox's real MariaDB (database ``mig_window``, dropped afterwards).
The target is :class:`Store`, a FAKE written for these tests: no RethinkDB server can be
installed here, and rethinkdb-mock (used by ``test_migrate.py``, also with several writer
connections) applies every write at once, so it cannot show the difference between
acknowledged and durable. The fake has RethinkDB's durability model: a ``soft`` insert is
acknowledged from memory, durable only after a later ``sync()`` of the table; a ``hard``
insert is durable when acknowledged; a server crash loses what is not durable; a batch
insert is not atomic (a kill can land after half of it was applied).

Every write, sync and checkpoint save is a numbered step. ``kill_at=N`` makes step N the
moment the process dies (nothing of it happens): the checkpoint file and the store are
frozen there, and everything after raises :class:`Killed`. The tests kill a run at every
step in turn, check the frozen checkpoint against the frozen store, then resume from it
(after a server crash, or with the server's memory intact) and compare the result with
MySQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datatier.config import LoadedConfig, load
from datatier.errors import ServiceUnavailable
from datatier.migrate import service
from datatier.migrate.checkpoint import Checkpoint
from datatier.migrate.mapping import load_mapping
from datatier.migrate.plan import TablePlan
from datatier.migrate.runner import RunOptions, run_tables
from datatier.migrate.target import Conflict, InsertResult, MigrationTarget
from datatier.mysql.connection import Connection
from tests.integration.conftest import SandboxHandle, sql

DB = "mig_window"
ROWS = 120  # ids 3, 6, ... 360
BATCH = 10


class Killed(BaseException):
    """The process died here (a BaseException: nothing in datatier catches it)."""


@dataclass(frozen=True)
class Frozen:
    """What survives a kill: the checkpoint file and the store, as they were then."""

    checkpoint: str | None
    durable: dict[Any, dict[str, Any]]
    visible: dict[Any, dict[str, Any]]  # durable plus what the server holds in memory


class Store:
    """The fake server (see module docstring); one table."""

    def __init__(self, cp_path: Path, durable: dict[Any, dict[str, Any]] | None = None) -> None:
        self.cp_path = cp_path
        self.lock = threading.Lock()
        self.durable = dict(durable or {})
        self.volatile: dict[Any, dict[str, Any]] = {}
        self.steps = 0
        self.kill_at: int | None = None
        self.fail_at: int | None = None
        self.frozen: Frozen | None = None
        self.opened = self.closed = self.syncs = 0
        self.writing = self.most_writing = 0

    def visible(self) -> dict[Any, dict[str, Any]]:
        return {**self.durable, **self.volatile}

    def step(self) -> None:
        """One numbered step (lock held): dies or fails here if told to."""
        if self.frozen is not None:
            raise Killed
        self.steps += 1
        if self.steps == self.kill_at:
            text = self.cp_path.read_text() if self.cp_path.exists() else None
            self.frozen = Frozen(text, dict(self.durable), self.visible())
            raise Killed
        if self.steps == self.fail_at:
            raise ServiceUnavailable("RethinkDB fake: Connection is closed.")


class FakeTarget(MigrationTarget):
    """A handle on :class:`Store`; its writers are handles of their own ("connections")."""

    def __init__(self, store: Store, durability: str = "hard") -> None:
        self.store, self.durability = store, durability

    def describe(self) -> str:
        return "fake"

    def ensure_table(self, table: str) -> bool:
        return False

    def ensure_index(self, table: str, name: str, fields: Sequence[str]) -> bool:
        return False

    def writer(self, durability: str) -> MigrationTarget:
        with self.store.lock:
            self.store.opened += 1
        return FakeTarget(self.store, durability)

    def close(self) -> None:
        with self.store.lock:
            self.store.closed += 1

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: Conflict) -> InsertResult:
        s = self.store
        with s.lock:
            s.step()
            s.writing += 1
            s.most_writing = max(s.most_writing, s.writing)
        try:
            time.sleep(0.005)  # the server's time: lets other writers overlap
            inserted = errors = 0
            half = len(docs) // 2
            for part, chunk in enumerate((docs[:half], docs[half:])):
                with s.lock:
                    if part:
                        s.step()  # a kill or failure here leaves half of the batch applied
                    for doc in chunk:
                        if conflict == "error" and doc["id"] in s.visible():
                            errors += 1
                            continue
                        (s.volatile if self.durability == "soft" else s.durable)[doc["id"]] = doc
                        inserted += 1
            return InsertResult(inserted, 0, 0, errors, "duplicate" if errors else None)
        finally:
            with s.lock:
                s.writing -= 1

    def sync(self, table: str) -> None:
        s = self.store
        with s.lock:
            s.step()
            s.durable.update(s.volatile)
            s.volatile.clear()
            s.syncs += 1

    def get_many(self, table: str, ids: Sequence[Any]) -> list[dict[str, Any]]:
        with self.store.lock:
            seen = self.store.visible()
            return [seen[i] for i in ids if i in seen]

    def count(self, table: str) -> int:
        return len(self.store.visible())


@dataclass
class Source:
    loaded: LoadedConfig
    conn: Connection
    plans: list[TablePlan]
    expected: dict[Any, dict[str, Any]]


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """``mig_window.items`` on the primary, replicated; read from replica1 like a run."""
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE DATABASE {DB}")
    sql(
        sandbox,
        "primary",
        f"CREATE TABLE {DB}.items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
        "amount DECIMAL(8,2), created DATETIME)",
    )
    sql(
        sandbox,
        "primary",
        f"INSERT INTO {DB}.items SELECT seq * 3, CONCAT('item-', seq), seq / 4, "
        f"'2026-01-01' + INTERVAL seq HOUR FROM {DB}.seq_1_to_{ROWS}",
    )
    sandbox.wait_replicated()
    mapping = tmp_path_factory.mktemp("window") / "mapping.toml"
    mapping.write_text(f'target_db = "w"\n[tables."{DB}.items"]\ntarget = "items"\n')
    loaded = load(str(sandbox.config_path), environ={})
    conn = service.open_source(loaded, "replica1")
    plans = service.make_plans(conn, loaded, [f"{DB}.items"], load_mapping(mapping))
    clean = Store(Path("/nonexistent"))
    run_tables(conn, "replica1", plans, FakeTarget(clean), RunOptions(batch_size=BATCH))
    assert len(clean.durable) == ROWS
    try:
        yield Source(loaded, conn, plans, clean.durable)
    finally:
        conn.close()
        sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
        sandbox.wait_replicated()


def options(cp: Path, durability: str) -> RunOptions:
    return RunOptions(
        batch_size=BATCH, checkpoint=cp, connections=3, durability=durability, sync_every=35
    )


def run(source: Source, store: Store, opts: RunOptions) -> Any:
    return run_tables(source.conn, "replica1", source.plans, FakeTarget(store), opts)


def parse(text: str, scratch: Path) -> Checkpoint:
    scratch.write_text(text)
    cp = Checkpoint.load(scratch)
    assert cp is not None
    return cp


def check_claims(
    source: Source, cp: Path, text: str | None, durable: dict[Any, Any], seen: dict[Any, Any]
) -> None:
    """The checkpoint ``text`` against the store: every row up to ``last_key`` is durable
    and right, and nothing beyond it is in the store outside ``inflight``."""
    if text is None:  # killed before the first save: nothing may have been sent
        assert not seen
        return
    progress = parse(text, cp.with_name("frozen.json")).tables[f"{DB}.items"]
    last = progress.last_key[0] if progress.last_key else 0
    claimed = {k: v for k, v in source.expected.items() if k <= last}
    assert {k: durable.get(k) for k in claimed} == claimed, "claims rows that are not durable"
    assert progress.rows == len(claimed)
    end = progress.inflight[1][0] if progress.inflight else None
    beyond = sorted(k for k in seen if k > last)
    if end is None:
        assert not beyond, f"documents {beyond[:3]}... beyond last_key {last} without inflight"
    else:
        assert progress.inflight is not None and progress.inflight[0] == progress.last_key
        assert all(k <= end for k in beyond), f"{beyond[-1]} beyond inflight end {end}"


def resume_and_compare(
    source: Source, cp: Path, text: str | None, survivors: dict[Any, Any], durability: str
) -> None:
    """Rerun from checkpoint ``text`` on a store holding ``survivors``; must end equal."""
    if text is None:
        cp.unlink(missing_ok=True)
    else:
        cp.write_text(text)
    scratch = cp.with_name("frozen.json")
    last = parse(text, scratch).tables[f"{DB}.items"].last_key if text else None
    store = Store(cp, survivors)
    report = run(source, store, options(cp, durability))
    table = report.tables[0]
    assert store.visible() == source.expected and store.durable == source.expected
    redone = sum(1 for k in survivors if last is None or k > last[0])
    assert table.replaced == 0 and table.unchanged == redone
    assert table.inserted == ROWS - len(survivors)
    done = Checkpoint.load(cp)
    assert done is not None and done.tables[f"{DB}.items"].done
    assert done.tables[f"{DB}.items"].inflight is None
    assert store.opened == store.closed == 3


@pytest.fixture
def counted_saves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Store]]:
    """Checkpoint saves are numbered steps of the current store (``stores[-1]``)."""
    stores: list[Store] = []
    real_save = Checkpoint.save

    def save(cp: Checkpoint) -> None:
        if stores:
            with stores[-1].lock:
                stores[-1].step()
        real_save(cp)

    monkeypatch.setattr(Checkpoint, "save", save)
    yield stores


@pytest.mark.parametrize("durability", ["soft", "hard"])
def test_kill_at_every_step_then_resume(
    source: Source, tmp_path: Path, counted_saves: list[Store], durability: str
) -> None:
    """Kill the run at each step in turn (a write, half of a write, a sync, a checkpoint
    save): the checkpoint then never names a row that is not durable, every document
    beyond its last key lies inside its inflight range, and a rerun - after a server crash
    that lost everything not durable, or with the server's memory intact - ends equal to
    MySQL under ``--conflict error``, re-sending only the inflight range."""
    cp = tmp_path / "cp.json"
    kill_at, finished = 0, False
    while not finished:
        kill_at += 1
        cp.unlink(missing_ok=True)
        store = Store(cp)
        store.kill_at = kill_at
        counted_saves.append(store)
        try:
            run(source, store, options(cp, durability))
            finished = True
            continue
        except Killed:
            pass
        assert store.frozen is not None, f"kill {kill_at}: an error other than the kill"
        frozen = store.frozen
        counted_saves.append(Store(cp))  # the rerun's saves count on a store of their own
        for survivors in (frozen.durable, frozen.visible):  # server crash, client death
            where = f"kill at step {kill_at}, {len(survivors)} documents kept"
            try:
                check_claims(source, cp, frozen.checkpoint, frozen.durable, survivors)
                resume_and_compare(source, cp, frozen.checkpoint, survivors, durability)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from exc
    assert kill_at > 2 * (ROWS // BATCH)  # every write was a kill point at least once
    assert store.most_writing == 3  # a window: up to --connections batches at once
    assert store.opened == store.closed == 3
    if durability == "soft":
        assert store.syncs >= 2  # every 35 rows acknowledged (one at a time) and at the end


@pytest.mark.parametrize("durability", ["soft", "hard"])
def test_writer_failure_mid_window_then_resume(
    source: Source, tmp_path: Path, durability: str
) -> None:
    """A writer connection fails (after half of its batch was applied) while other batches
    are in flight and go on being written: the run stops with exit 3 after they have
    finished, its checkpoint covers every document they wrote, and the rerun ends equal."""
    cp = tmp_path / "cp.json"
    for fail_at in range(1, 2 * (ROWS // BATCH), 3):
        cp.unlink(missing_ok=True)
        store = Store(cp)
        store.fail_at = fail_at
        with pytest.raises(ServiceUnavailable, match="Connection is closed"):
            run(source, store, options(cp, durability))
        assert store.opened == store.closed == 3
        text = cp.read_text() if cp.exists() else None
        try:
            check_claims(source, cp, text, store.durable, store.visible())
            resume_and_compare(source, cp, text, store.visible(), durability)
        except AssertionError as exc:
            raise AssertionError(f"failure at step {fail_at}: {exc}") from exc


def test_soft_durability_waits_for_sync_before_claiming(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under soft durability the checkpoint's rows move in steps of syncs, never with the
    acknowledgements: a run with one sync at the end claims nothing before it."""
    cp = tmp_path / "cp.json"
    claims: list[int] = []
    store = Store(cp)
    real_sync = FakeTarget.sync

    def sync(self: FakeTarget, table: str) -> None:
        saved = Checkpoint.load(cp)
        claims.append(saved.tables[f"{DB}.items"].rows if saved else 0)
        real_sync(self, table)

    opts = RunOptions(
        batch_size=BATCH, checkpoint=cp, connections=3, durability="soft", sync_every=10_000
    )
    monkeypatch.setattr(FakeTarget, "sync", sync)
    report = run(source, store, opts)
    assert report.tables[0].rows == ROWS and store.syncs == 1
    assert claims == [0]  # before the only sync: nothing claimed, all of it acknowledged
    assert store.durable == source.expected
