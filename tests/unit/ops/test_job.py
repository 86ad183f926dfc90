"""The job runner on a file:// store (no server): outcome recorded, textfile written,
notification sent; bookkeeping trouble never masks the job's own result."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier import log
from datatier.backup.jobstatus import read_status, status_key
from datatier.backup.stats import BackupStatsMonitor, read_policy_stats
from datatier.config import load
from datatier.errors import ServiceUnavailable
from datatier.mysql.grants import IDENTIFIED
from datatier.mysql.privileges import NEEDS, OPTIONAL, AccountPrivileges, _like
from datatier.ops.checks.result import CheckResult, Status
from datatier.ops.checks.topology import _verdict
from datatier.ops.job import run_job
from datatier.storage.base import ObjectStore
from datatier.storage.deferred import DeferredStore
from datatier.storage.forwarding import ForwardingStore
from datatier.storage.local import LocalStore


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.configure(level="debug", json_lines=True, stream=stream)
    yield stream
    log.configure()


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, LocalStore, Path]:
    store = LocalStore(tmp_path / "store")
    out = tmp_path / "event.json"
    script = f"import sys, shutil; shutil.copyfileobj(sys.stdin, open({str(out)!r}, 'w'))"
    (tmp_path / "datatier.toml").write_text(
        f'[backup]\ndefault_store = "{store.url}"\n'
        f"[notify]\ncommand = {json.dumps(f'{sys.executable} -c {json.dumps(script)}')}\n"
    )
    return tmp_path / "datatier.toml", store, out


def test_a_failed_job_is_recorded_notified_exported_and_still_raises(
    env: tuple[Path, LocalStore, Path], tmp_path: Path, logs: io.StringIO
) -> None:
    config, store, event_file = env
    loaded = load(str(config), environ={})
    prom = tmp_path / "m.prom"
    reported: set[int] = set()
    with (
        pytest.raises(ServiceUnavailable),
        run_job(loaded, "backup", policy="shop", metrics_file=prom, reported=reported) as job,
    ):
        job.store = store
        raise ServiceUnavailable("cannot connect to MySQL replica1", hint="is it up?")
    assert len(reported) == 1
    status = read_status(store, "shop", "backup")
    assert status.last is not None and status.last.exit_code == 3 and status.failures_total == 1
    assert (
        status.last.error == "cannot connect to MySQL replica1" and status.last.hint == "is it up?"
    )
    event = json.loads(event_file.read_text())
    assert event["event"] == "job.failed" and event["exit_code"] == 3 and event["policy"] == "shop"
    text = prom.read_text()
    assert 'datatier_job_last_attempt_success{job="backup",policy="shop"} 0.0' in text
    assert 'datatier_job_failures_total{job="backup",policy="shop"} 1.0' in text
    lines = [json.loads(x) for x in logs.getvalue().splitlines()]
    (failed,) = [x for x in lines if x["event"] == "job.failed"]
    assert failed["error"] == "cannot connect to MySQL replica1" and failed["exit_code"] == 3
    assert failed["hint"] == "is it up?"


def test_success_is_recorded_and_counters_add_up(env: tuple[Path, LocalStore, Path]) -> None:
    config, store, event_file = env
    loaded = load(str(config), environ={})
    for _ in range(2):
        with run_job(loaded, "prune", policy="shop") as job:
            job.store = store
    with pytest.raises(KeyboardInterrupt), run_job(loaded, "prune", policy="shop") as job:
        job.store = store
        raise KeyboardInterrupt
    status = read_status(store, "shop", "prune")
    assert (status.runs_total, status.failures_total) == (3, 1)
    assert status.last is not None and status.last.exit_code == 130
    assert status.last_success is not None and status.last_success.exit_code == 0
    assert json.loads(event_file.read_text())["error"] == "interrupted"


def test_bookkeeping_trouble_never_masks_the_result(
    env: tuple[Path, LocalStore, Path], tmp_path: Path, logs: io.StringIO
) -> None:
    config, store, _ = env
    loaded = load(str(config), environ={"DATATIER_NOTIFY__COMMAND": "/nonexistent/pager"})
    missing_dir = tmp_path / "nowhere" / "m.prom"
    with run_job(loaded, "verify", policy="shop", metrics_file=missing_dir) as job:
        job.store = store
    with pytest.raises(ValueError, match="boom"), run_job(loaded, "verify", policy="shop") as job:
        job.store = store
        raise ValueError("boom")
    events = [json.loads(x)["event"] for x in logs.getvalue().splitlines()]
    assert "job.metrics_not_written" in events and "notify.failed" in events
    status = read_status(store, "shop", "verify")
    assert status.last is not None and status.last.error == "unexpected ValueError: boom"


def test_a_dry_run_is_not_recorded(env: tuple[Path, LocalStore, Path]) -> None:
    config, store, _ = env
    with run_job(load(str(config), environ={}), "prune", policy="shop", record=False) as job:
        job.store = store
    assert not store.exists(status_key("shop", "prune"))


def test_stats_survive_bad_policies_and_damaged_manifests(
    env: tuple[Path, LocalStore, Path], tmp_path: Path
) -> None:
    _, store, _ = env
    policies = tmp_path / "backups"
    policies.mkdir()
    (policies / "shop.toml").write_text('engine = "mysql"\n[source]\nnode = "r"\n')
    (policies / "broken.toml").write_text("engine = \n")
    store.put_bytes("shop/20261201T010000Z-aaaa/data/x", b"x")
    store.put_bytes("shop/20261201T010000Z-aaaa/manifest.json", b"not json")  # damaged
    monitor = BackupStatsMonitor(policies, store.url, lambda _url: store, interval=60)
    stats = monitor.refresh()
    assert monitor.invalid == ("broken",) and set(stats) == {"shop"}
    assert stats["shop"].error is None and stats["shop"].newest is None
    assert stats["shop"].backups == 1  # listed with a manifest, even if it does not parse
    assert read_policy_stats(store, "other").newest is None


def test_privileges_match_like_patterns_and_alternatives() -> None:
    found = AccountPrivileges(
        "dt@%",
        frozenset({"SELECT", "SLAVE MONITOR"}),
        {"shop\\_%": frozenset({"TRIGGER"}), "crm": frozenset({"EVENT"})},
    )
    assert found.holds(("REPLICATION CLIENT", "SLAVE MONITOR"))
    assert found.holds(("TRIGGER",), ["shop_eu", "shop_us"])
    assert not found.holds(("TRIGGER",), ["shopx"])  # \_ is a literal underscore
    assert not found.holds(("TRIGGER",), ["shop_eu", "crm"])  # needed on every database
    assert not found.holds(("TRIGGER",), [])
    assert [why for _, why in found.missing("dump", ["shop_eu"])] == [
        "dump views (missing: views silently left out)",
        "dump events",
    ]
    assert _like("a%b_c").fullmatch("aXYZbQc") and not _like("a%b_c").fullmatch("ab")


def test_every_optional_privilege_is_one_a_job_needs() -> None:
    """OPTIONAL must name NEEDS entries exactly, or its WARN silently turns back to FAIL."""
    for job, names in OPTIONAL:
        assert names in [need for need, _ in NEEDS[job]], (job, names)


def test_a_missing_optional_privilege_warns_and_a_required_one_fails() -> None:
    def verdict(*held: str) -> CheckResult:
        found = AccountPrivileges("dt@%", frozenset(held))
        return _verdict("privileges", "binlog archive on primary", found, "binlog", [])

    assert verdict("REPLICATION SLAVE", "BINLOG MONITOR", "PROCESS").status is Status.PASS
    warned = verdict("REPLICATION SLAVE", "BINLOG MONITOR")
    assert warned.status is Status.WARN and "PROCESS" in warned.detail and warned.hint
    assert warned.to_json()["ok"] is True
    failed = verdict("BINLOG MONITOR")  # a required one missing, PROCESS too: both listed
    assert failed.status is Status.FAIL and failed.to_json()["ok"] is False
    assert "REPLICATION SLAVE" in failed.detail and "PROCESS" in failed.detail


@pytest.mark.parametrize(
    ("grant", "replayed"),
    [
        (
            "GRANT ALL PRIVILEGES ON *.* TO `u`@`h` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION",
            "GRANT ALL PRIVILEGES ON *.* TO `u`@`h` WITH GRANT OPTION",
        ),
        (
            "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED VIA unix_socket",
            "GRANT USAGE ON *.* TO `u`@`%`",
        ),
        ("GRANT SELECT ON `db`.* TO `u`@`h`", "GRANT SELECT ON `db`.* TO `u`@`h`"),
    ],
)
def test_grant_lines_never_carry_credentials(grant: str, replayed: str) -> None:
    assert IDENTIFIED.sub("", grant).strip() == replayed


def test_a_store_that_failed_to_open_is_not_recorded_in(
    env: tuple[Path, LocalStore, Path], logs: io.StringIO
) -> None:
    """As when the store was never opened: no record attempted, no bookkeeping warning."""
    config, _, _ = env
    loaded = load(str(config), environ={})
    error = ServiceUnavailable("cannot reach the store")

    def opener() -> LocalStore:
        raise error

    with (
        pytest.raises(ServiceUnavailable) as raised,
        run_job(loaded, "backup", policy="shop") as job,
    ):
        job.store = DeferredStore(opener)
        job.store.check()
    assert raised.value is error
    events = [json.loads(x)["event"] for x in logs.getvalue().splitlines()]
    assert "jobstatus.not_recorded" not in events and "job.failed" in events


def test_a_record_read_early_is_the_one_the_end_updates(
    env: tuple[Path, LocalStore, Path],
) -> None:
    config, store, _ = env
    loaded = load(str(config), environ={})
    with run_job(loaded, "backup", policy="shop") as job:
        job.store = store
    with run_job(loaded, "backup", policy="shop") as job:
        job.store = store
        job.read_record_early()
        assert job.early_record() is not None  # read: runs_total 1
        store.delete([status_key("shop", "backup")])  # the end must not read again
    status = read_status(store, "shop", "backup")
    assert status.runs_total == 2 and status.failures_total == 0


class FailsFirstRead(ForwardingStore):
    """``inner`` whose first read fails (a store blip while the job starts)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner, self.reads = inner, 0

    def target(self) -> ObjectStore:
        return self.inner

    def iter_read(
        self, key: str, chunk_size: int = ObjectStore.DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        self.reads += 1
        if self.reads == 1:
            raise ServiceUnavailable("store blip")
        return self.inner.iter_read(key, chunk_size)


def test_an_early_read_that_failed_is_read_again_at_the_end(
    env: tuple[Path, LocalStore, Path],
) -> None:
    config, store, _ = env
    loaded = load(str(config), environ={})
    with run_job(loaded, "backup", policy="shop") as job:
        job.store = store
    flaky = FailsFirstRead(store)
    with run_job(loaded, "backup", policy="shop") as job:
        job.store = flaky
        job.read_record_early()
        assert job.early_record() is None
    assert flaky.reads == 2
    assert read_status(store, "shop", "backup").runs_total == 2
