"""Incremental chains over a ``file://`` LocalStore with synthetic physical manifests (no
server): resolving, labelling, prune keeping parents, LSN and server links."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datatier.backup.catalog import Catalog
from datatier.backup.chain import chain_links, needed_parents, resolve_chain
from datatier.backup.manifest import (
    CHAIN_FORMAT_VERSION,
    Manifest,
    ObjectRecord,
    backup_prefix,
    manifest_key,
    new_backup_id,
)
from datatier.backup.policy import Policy, PolicyFile, RetentionSettings
from datatier.backup.prune import prune_execute, prune_plan
from datatier.errors import IntegrityFailure, OperationFailed, UsageError
from datatier.mysql.physical.lineage import binlog_break, check_links, choose_base
from datatier.mysql.physical.server import BinlogPoint, ServerIdentity, binlog_tail
from datatier.mysql.physical.tool import datadir_origin, redo_created_lsn
from datatier.storage.local import LocalStore

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SERVER = {"server_uid": "uid-1", "server_id": 1, "version": "10.11.19-MariaDB"}


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def physical(
    store: LocalStore,
    when: datetime,
    parent: Manifest | None = None,
    *,
    lsns: tuple[int, int] | None = None,
    source: dict[str, object] | None = None,
    policy: str = "db",
    uuid: str | None = None,
    binlog: dict[str, object] | None = None,
) -> Manifest:
    """Store a synthetic physical backup (one stream part), its manifest naming ``parent``."""
    backup_id = new_backup_id(when)
    key = f"{backup_prefix(policy, backup_id)}data/mbstream-000001.zst"
    data = f"{backup_id}\n".encode() * 50
    store.put_bytes(key, data)
    start = parent.consistency["to_lsn"] if parent else 0
    from_lsn, to_lsn = lsns or (start, start + 1000)
    manifest = Manifest(
        policy=policy,
        backup_id=backup_id,
        engine="mariabackup",
        tool_version="test",
        started_at=when.isoformat(),
        finished_at=(when + timedelta(minutes=1)).isoformat(),
        source=dict(source or SERVER),
        consistency={
            "backup_type": "incremental" if parent else "full",
            "from_lsn": from_lsn,
            "to_lsn": to_lsn,
            "last_lsn": to_lsn + 10,
            **({"backup_uuid": uuid} if uuid else {}),
            **(binlog or {}),
        },
        objects=[
            ObjectRecord(
                key,
                "mbstream",
                len(data),
                hashlib.sha256(data).hexdigest(),
                len(data),
                "STANDARD",
                part=1,
            )
        ],
        tables=[],
        parent=parent.backup_id if parent else None,
        format_version=CHAIN_FORMAT_VERSION if parent else 2,
    )
    store.put_bytes(manifest_key(policy, backup_id), manifest.encode())
    return manifest


def policy(store: LocalStore, keep_last: int) -> Policy:
    spec = PolicyFile(
        engine="mariabackup", retention=RetentionSettings(keep_last=keep_last, min_age_days=0)
    )
    return Policy("db", Path("/nonexistent/db.toml"), spec, store.url)


def test_the_manifest_names_its_parent_and_round_trips(store: LocalStore) -> None:
    full = physical(store, NOW - timedelta(days=2))
    inc = physical(store, NOW - timedelta(days=1), full)
    back = Manifest.decode(inc.encode(), "here")
    assert back.parent == full.backup_id and back.format_version == CHAIN_FORMAT_VERSION
    assert Manifest.decode(full.encode(), "here").parent is None


def test_a_parent_that_is_not_a_backup_id_makes_the_manifest_unreadable(
    store: LocalStore,
) -> None:
    inc = physical(store, NOW, physical(store, NOW - timedelta(days=1)))
    text = inc.encode().replace(inc.parent.encode(), b"../../etc")  # type: ignore[union-attr]
    with pytest.raises(IntegrityFailure, match="is not a backup ID"):
        Manifest.decode(text, "here")


def test_resolve_chain_lists_full_first_and_refuses_a_missing_parent(store: LocalStore) -> None:
    full = physical(store, NOW - timedelta(days=3))
    inc1 = physical(store, NOW - timedelta(days=2), full)
    inc2 = physical(store, NOW - timedelta(days=1), inc1)
    catalog = Catalog(store, ["db"])
    chain = resolve_chain(catalog, inc2)
    assert [m.backup_id for m in chain] == [full.backup_id, inc1.backup_id, inc2.backup_id]
    check_links(chain)
    store.delete([manifest_key("db", inc1.backup_id)])  # inc1 is now incomplete
    with pytest.raises(IntegrityFailure, match=r"broken chain.*incomplete"):
        resolve_chain(catalog, inc2)
    store.delete([o.key for o in inc1.objects])  # and now gone entirely
    with pytest.raises(IntegrityFailure, match=f"parent {inc1.backup_id} .* is missing"):
        resolve_chain(catalog, inc2)


def test_chain_labels_for_listing(store: LocalStore) -> None:
    full = physical(store, NOW - timedelta(days=3))
    inc1 = physical(store, NOW - timedelta(days=2), full)
    inc2 = physical(store, NOW - timedelta(days=1), inc1)
    links = chain_links({m.backup_id: m for m in (full, inc1, inc2)})
    assert links[full.backup_id].label == "full"
    assert links[inc2.backup_id].label == f"incremental 2 on {inc1.backup_id}"
    assert links[inc2.backup_id].root == full.backup_id
    orphaned = chain_links({m.backup_id: m for m in (full, inc2)})
    assert orphaned[inc2.backup_id].label == f"broken: parent {inc1.backup_id} is missing"


def test_check_links_refuses_an_lsn_gap_and_a_server_change(store: LocalStore) -> None:
    full = physical(store, NOW - timedelta(days=2), lsns=(0, 5000))
    gap = physical(store, NOW - timedelta(days=1), full, lsns=(6000, 7000))
    with pytest.raises(IntegrityFailure, match=r"starts at LSN 6000.*ends at 5000"):
        check_links([full, gap])
    moved = physical(
        store, NOW, full, source={**SERVER, "version": "11.4.2-MariaDB", "server_uid": "uid-2"}
    )
    with pytest.raises(IntegrityFailure, match=r"another server.*server_uid uid-1 -> uid-2"):
        check_links([full, moved])


def test_needed_parents_walks_back_to_the_full_backup(store: LocalStore) -> None:
    full = physical(store, NOW - timedelta(days=3))
    inc1 = physical(store, NOW - timedelta(days=2), full)
    inc2 = physical(store, NOW - timedelta(days=1), inc1)
    manifests = {m.backup_id: m for m in (full, inc1, inc2)}
    assert needed_parents(manifests, [inc2.backup_id]) == {
        inc1.backup_id: f"parent of {inc2.backup_id}",
        full.backup_id: f"parent of {inc1.backup_id}",
    }
    assert needed_parents(manifests, [full.backup_id]) == {}


def test_prune_keeps_every_parent_a_kept_incremental_needs(store: LocalStore) -> None:
    old_full = physical(store, NOW - timedelta(days=6))
    old_inc = physical(store, NOW - timedelta(days=5), old_full)
    full = physical(store, NOW - timedelta(days=4))
    inc1 = physical(store, NOW - timedelta(days=3), full)
    inc2 = physical(store, NOW - timedelta(days=2), inc1)
    catalog = Catalog(store, ["db"])
    plan = prune_plan(catalog, policy(store, keep_last=1), NOW)
    kept = {k.backup_id: k.reasons for k in plan.keep}
    assert set(kept) == {inc2.backup_id, inc1.backup_id, full.backup_id}
    assert kept[full.backup_id] == (f"parent of {inc1.backup_id}",)
    assert {t.backup_id for t in plan.delete} == {old_full.backup_id, old_inc.backup_id}
    prune_execute(catalog, plan)
    left = [m.backup_id for m in resolve_chain(catalog, inc2)]
    assert left == [full.backup_id, inc1.backup_id, inc2.backup_id]
    assert {e.backup_id for e in catalog.backups()} == set(left)


@pytest.mark.parametrize(
    ("every", "full_age_days", "incremental"),
    [(7, 6, True), (7, 7, False), (7, 8, False), (10**12, 10_000, True)],
)
def test_full_every_days_decides_the_next_backup_even_past_what_a_date_holds(
    store: LocalStore, every: int, full_age_days: int, incremental: bool
) -> None:
    """A full backup at least ``full_every_days`` old makes the next one full. A value too
    large for a timedelta (the loader takes any integer >= 0) raised OverflowError (exit 1,
    "unexpected") on every run; it now means "no full backup by age"."""
    full = physical(store, NOW - timedelta(days=full_age_days))
    spec = PolicyFile(engine="mariabackup", full_every_days=every)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)
    server = ServerIdentity("10.11.19-MariaDB", "uid-1", 1, "db1", 3306, "/var/lib/mysql", True)
    to_lsn = full.consistency["to_lsn"]
    base = choose_base(Catalog(store, ["db"]), chosen, server, to_lsn, None, NOW, origin=None)
    assert (base.parent is not None) is incremental
    if incremental:
        assert base.parent is not None and base.parent.backup_id == full.backup_id
    else:
        assert f"is {full_age_days} days old" in base.reason


IDENTITY = ServerIdentity("10.11.19-MariaDB", "uid-1", 1, "db1", 3306, "/var/lib/mysql", True)


def restored(uuid: str, when: int = 1) -> dict[str, object]:
    """A datadir's origin: restored from backup ``uuid``, the ``when``-th such restore."""
    return {"uuid": uuid, "restored_ns": when}


def rolled_back_chain(store: LocalStore) -> tuple[Manifest, Manifest]:
    """Full F then incremental N, both taken on a datadir never restored (origin None)."""
    full = physical(store, NOW - timedelta(hours=2), source={**SERVER, "restored_from": None},
                    uuid="uuid-F")  # fmt: skip
    newest = physical(store, NOW - timedelta(hours=1), full,
                      source={**SERVER, "restored_from": None}, uuid="uuid-N")  # fmt: skip
    return full, newest


def decide(
    store: LocalStore, origin: dict[str, object] | None, requested: bool | None
) -> Manifest | None:
    spec = PolicyFile(engine="mariabackup", full_every_days=7)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)
    base = choose_base(Catalog(store, ["db"]), chosen, IDENTITY, 10**9, requested, NOW,
                       origin=origin)  # fmt: skip
    return base.parent


def test_a_datadir_rolled_back_to_an_older_backup_never_continues_the_abandoned_chain(
    store: LocalStore,
) -> None:
    """The server restored F over its own datadir after N: same identity, LSN past N's.
    An incremental on N would keep N's pages of the abandoned timeline (tester6's finding):
    asked for, it is refused naming F; chosen by the policy, a full backup is taken."""
    full, newest = rolled_back_chain(store)
    with pytest.raises(UsageError, match=rf"restored from backup {full.backup_id} "
                       rf"\(uuid uuid-F\) since {newest.backup_id}") as caught:  # fmt: skip
        decide(store, restored("uuid-F"), True)
    assert caught.value.hint == "take a full backup (--full)"
    assert decide(store, restored("uuid-F"), None) is None


def test_a_chain_continues_on_an_unchanged_datadir_or_one_restored_from_the_newest_backup(
    store: LocalStore,
) -> None:
    _, newest = rolled_back_chain(store)
    assert decide(store, None, True) == newest, "never restored: the chain goes on"
    assert decide(store, restored("uuid-N"), True) == newest, "restored from N: its state"


def test_a_chain_taken_on_a_restored_datadir_continues_while_it_keeps_that_restore(
    store: LocalStore,
) -> None:
    """Restored from F, then N on F: the chain goes on until the datadir is restored
    again, even from F once more (the second rollback abandons N's timeline too)."""
    first = restored("uuid-F", 1)
    full = physical(store, NOW - timedelta(hours=2), source={**SERVER, "restored_from": None},
                    uuid="uuid-F")  # fmt: skip
    newest = physical(store, NOW - timedelta(hours=1), full,
                      source={**SERVER, "restored_from": first}, uuid="uuid-N")  # fmt: skip
    assert decide(store, first, True) == newest
    with pytest.raises(UsageError, match=r"restored from backup .* \(uuid uuid-F\) since"):
        decide(store, restored("uuid-F", 2), True)
    with pytest.raises(UsageError, match=r"no longer holds the xtrabackup_info it was "
                       r"restored from \(backup uuid uuid-F\)"):  # fmt: skip
        decide(store, None, True)


def test_a_chain_from_before_origins_were_recorded_continues_only_on_a_datadir_never_restored(
    store: LocalStore,
) -> None:
    full = physical(store, NOW - timedelta(hours=2))
    newest = physical(store, NOW - timedelta(hours=1), full)
    assert decide(store, None, True) == newest
    with pytest.raises(UsageError, match=r"predates the recording of restores"):
        decide(store, restored("uuid-X"), True)
    assert decide(store, restored("uuid-X"), None) is None, "the policy takes a full backup"


def test_check_links_refuses_an_incremental_taken_after_its_datadir_left_the_parents_history(
    store: LocalStore,
) -> None:
    full, newest = rolled_back_chain(store)
    check_links([full, newest])
    stray = physical(store, NOW, newest, source={**SERVER, "restored_from": restored("uuid-F")})
    with pytest.raises(IntegrityFailure, match=rf"{stray.backup_id} does not continue "
                       rf"{newest.backup_id}: .*broken chain"):  # fmt: skip
        check_links([full, newest, stray])
    after_f = physical(store, NOW, full, source={**SERVER, "restored_from": restored("uuid-F")})
    check_links([full, after_f])  # restored from F itself, then an incremental on F: whole


def binlogged_chain(store: LocalStore, **recorded: object) -> Manifest:
    """Full F then incremental N copied at ``db-bin.000007:4242``, GTID state ``0-1-90,1-2-5``
    (mariabackup's ``gtid_pos``; ``recorded`` adds or replaces consistency keys); returns N."""
    never = {**SERVER, "restored_from": None}
    full = physical(store, NOW - timedelta(hours=2), source=never, uuid="uuid-F")
    binlog = {"binlog_file": "db-bin.000007", "binlog_pos": 4242, "gtid_pos": "0-1-90,1-2-5"}
    return physical(store, NOW - timedelta(hours=1), full, source=never, uuid="uuid-N",
                    binlog={**binlog, **recorded})  # fmt: skip


def binlog_decide(
    store: LocalStore, files: list[str], gtid: str | None, requested: bool | None = True
) -> Manifest | None:
    """The parent chosen when the server's binlog lists ``files`` and answers ``gtid`` for
    ``BINLOG_GTID_POS('db-bin.000007', 4242)``."""
    spec = PolicyFile(engine="mariabackup", full_every_days=7)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)
    point = BinlogPoint("db-bin.000007", 4242, tuple(files), gtid)
    base = choose_base(Catalog(store, ["db"]), chosen, IDENTITY, 10**9, requested, NOW,
                       origin=None, binlog=point)  # fmt: skip
    return base.parent


def test_a_server_whose_binlog_no_longer_holds_the_parents_point_never_continues_the_chain(
    store: LocalStore,
) -> None:
    """A datadir rolled back without a restore (a cold copy or a snapshot put back): no
    origin tells, the LSN has passed N's. The binlog tells: it ends before N's file, or
    holds no event at N's position, or another GTID state there. Asked for, the
    incremental is refused naming both points; the policy takes a full backup."""
    newest = binlogged_chain(store)
    point = rf"{newest.backup_id} was copied at binlog position db-bin.000007:4242 \(GTID "
    cases = {
        "ends with db-bin.000006, before that file": (["db-bin.000005", "db-bin.000006"], None),
        "has no event there": (["db-bin.000006", "db-bin.000007"], None),
        "at GTID 0-1-91,1-2-5 there": (["db-bin.000007", "db-bin.000008"], "0-1-91,1-2-5"),
        "at GTID 0-1-90 there": (["db-bin.000007"], "0-1-90"),
    }
    for found, (files, gtid) in cases.items():
        with pytest.raises(UsageError, match=rf"{point}0-1-90,1-2-5\), and .*{found}") as caught:
            binlog_decide(store, files, gtid)
        assert caught.value.hint == "take a full backup (--full)"
        assert binlog_decide(store, files, gtid, None) is None, "the policy takes a full one"


def test_a_chain_continues_while_the_binlog_holds_the_parents_point_or_cannot_tell(
    store: LocalStore,
) -> None:
    """The same GTID state (in any order) at N's point: the chain goes on. N's binlog file
    purged since (sorts before the first listed), or no answer: it cannot be checked, and
    the chain goes on (logged)."""
    newest = binlogged_chain(store)
    assert binlog_decide(store, ["db-bin.000007", "db-bin.000009"], "1-2-5,0-1-90") == newest
    assert binlog_decide(store, ["db-bin.000008", "db-bin.000009"], None) == newest, "purged"
    assert binlog_decide(store, [], None) == newest, "no binlog files listed"
    assert binlog_decide(store, ["other.000001"], None) == newest, "another binlog name"
    spec = PolicyFile(engine="mariabackup", full_every_days=7)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)
    base = choose_base(Catalog(store, ["db"]), chosen, IDENTITY, 10**9, True, NOW,
                       origin=None, binlog=None)  # fmt: skip
    assert base.parent == newest, "no answer from the server"
    with pytest.raises(UsageError, match=r"has no event there"):  # missing amid the listed ones
        binlog_decide(store, ["db-bin.000005", "db-bin.000009"], None)


def test_the_binlogs_own_state_recorded_after_the_copy_is_what_the_point_is_checked_against(
    store: LocalStore,
) -> None:
    """mariabackup's ``gtid_pos`` is ``@@gtid_current_pos``, which on a replica without
    ``log_slave_updates`` holds domains its binlog never had; ``binlog_gtid`` (the binlog's
    own ``BINLOG_GTID_POS`` there, read after the copy) is compared when recorded, and a
    recorded None (the file purged before it could be read) cannot be checked."""
    newest = binlogged_chain(store, binlog_gtid="1-2-5")
    assert binlog_decide(store, ["db-bin.000007"], "1-2-5") == newest
    with pytest.raises(UsageError, match=r"\(GTID 1-2-5\), and .*at GTID 0-1-90,1-2-5 there"):
        binlog_decide(store, ["db-bin.000007"], "0-1-90,1-2-5")


def test_a_binlog_state_that_could_not_be_read_after_the_copy_is_not_checked(
    store: LocalStore,
) -> None:
    newest = binlogged_chain(store, binlog_gtid=None)
    assert binlog_decide(store, ["db-bin.000007"], "9-9-9") == newest


def test_the_same_gtids_written_again_at_the_same_position_never_continue_the_chain(
    store: LocalStore, tmp_path: Path
) -> None:
    """A rollback, then the same statements again: the binlog has an event boundary at N's
    point with N's GTID state, but other bytes before it (other timestamps, a file created
    anew). ``binlog_tail`` tells; unreadable now or not recorded then, it is not checked."""
    newest = binlogged_chain(store, binlog_tail="a" * 64)
    spec = PolicyFile(engine="mariabackup", full_every_days=7)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)

    def decide(tail: str | None) -> Manifest | None:
        point = BinlogPoint("db-bin.000007", 4242, ("db-bin.000007",), "0-1-90,1-2-5", tail)
        base = choose_base(Catalog(store, ["db"]), chosen, IDENTITY, 10**9, True, NOW,
                           origin=None, binlog=point)  # fmt: skip
        return base.parent

    assert decide("a" * 64) == newest
    assert decide(None) == newest, "cannot be read here: not checked"
    with pytest.raises(UsageError, match=r"holds other bytes before that point"):
        decide("b" * 64)
    older = binlogged_chain(store)  # recorded no binlog_tail
    other = BinlogPoint("db-bin.000007", 4242, ("db-bin.000007",), "0-1-90,1-2-5", "b" * 64)
    assert binlog_break(older, other) is None, "not recorded: not checked"


def test_a_datadir_whose_redo_log_was_created_anew_never_continues_the_chain(
    store: LocalStore, tmp_path: Path
) -> None:
    """A restore whose ``xtrabackup_info`` was tidied away afterwards, the binlog off: the
    origin is None before and after, but the redo log was created anew (by the restored
    backup's ``--prepare``). Restored from the parent itself, or unknown either side: the
    chain goes on."""
    never = {**SERVER, "restored_from": None, "redo_created_lsn": 7000}
    full = physical(store, NOW - timedelta(hours=2), source=never, uuid="uuid-F")
    newest = physical(store, NOW - timedelta(hours=1), full, source=never, uuid="uuid-N")
    spec = PolicyFile(engine="mariabackup", full_every_days=7)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)

    def decide(redo: int | None, origin: dict[str, object] | None = None) -> Manifest | None:
        base = choose_base(Catalog(store, ["db"]), chosen, IDENTITY, 10**9, True, NOW,
                           origin=origin, redo=redo)  # fmt: skip
        return base.parent

    assert decide(7000) == newest
    assert decide(None) == newest, "cannot be read here: not checked"
    with pytest.raises(UsageError, match=r"redo log was created anew .*then at LSN 7000, now"):
        decide(9000)
    assert decide(9000, {"uuid": "uuid-N", "restored_ns": 1}) == newest, "restored from N"
    log = tmp_path / "ib_logfile0"
    log.write_bytes(b"Phys" + b"\x00" * 4 + (3351514).to_bytes(8, "big") + b"MariaDB 10.11")
    assert redo_created_lsn(tmp_path) == 3351514
    log.write_bytes(b"Phys")
    assert redo_created_lsn(tmp_path) is None, "short"
    assert redo_created_lsn(tmp_path / "elsewhere") is None


def test_check_links_refuses_an_incremental_whose_redo_log_was_created_anew(
    store: LocalStore,
) -> None:
    """At restore time too: a chain whose incremental recorded another redo log than its
    parent (taken by an older datatier, or a manifest written by hand) is broken, unless
    that incremental's datadir was restored from the parent itself; an LSN not recorded
    on either side is not checked."""
    never = {**SERVER, "restored_from": None, "redo_created_lsn": 7000}
    full = physical(store, NOW - timedelta(hours=2), source=never, uuid="uuid-F")
    same = physical(store, NOW - timedelta(hours=1), full, source=never)
    check_links([full, same])
    anew = {**never, "redo_created_lsn": 9000}
    stray = physical(store, NOW - timedelta(hours=1), full, source=anew)
    with pytest.raises(IntegrityFailure, match=rf"{stray.backup_id} does not continue "
                       r".*redo log was created anew .*broken chain"):  # fmt: skip
        check_links([full, stray])
    from_f = {**anew, "restored_from": {"uuid": "uuid-F", "restored_ns": 1}}
    check_links([full, physical(store, NOW, full, source=from_f)])
    unknown = {**SERVER, "restored_from": None}
    check_links([full, physical(store, NOW, full, source=unknown)])


def test_a_datadir_restored_from_the_parent_itself_is_not_checked_against_its_binlog(
    store: LocalStore,
) -> None:
    """Restored from N in place, the server starts a new binlog, which never holds N's
    point: the chain goes on all the same (every page written since is past N's LSN)."""
    newest = binlogged_chain(store)
    spec = PolicyFile(engine="mariabackup", full_every_days=7)
    chosen = Policy("db", Path("/nonexistent/db.toml"), spec, store.url)
    point = BinlogPoint("db-bin.000007", 4242, ("db-bin.000001",), None)
    origin = {"uuid": "uuid-N", "restored_ns": 1}
    base = choose_base(Catalog(store, ["db"]), chosen, IDENTITY, 10**9, True, NOW,
                       origin=origin, binlog=point)  # fmt: skip
    assert base.parent == newest
    with pytest.raises(UsageError, match=r"ends with db-bin.000001, before that file"):
        binlog_decide(store, ["db-bin.000001"], None)


def test_binlog_tail_reads_the_files_creation_time_and_the_bytes_before_the_position(
    tmp_path: Path,
) -> None:
    binlog = tmp_path / "db-bin.000007"
    header = b"\xfebin" + b"\x01\x00\x00\x00" + b"\x0f" + b"\x00" * 12 + b"\x01\x00"
    binlog.write_bytes(header + b"e" * 1000 + b"later events")
    tail = binlog_tail(binlog, len(header) + 1000)
    assert tail is not None and tail == binlog_tail(binlog, len(header) + 1000)
    closed = bytearray(binlog.read_bytes())
    closed[21] = 0  # the format event's in-use flag, cleared when the file is closed
    binlog.write_bytes(bytes(closed))
    assert binlog_tail(binlog, len(header) + 1000) == tail, "closing changes nothing"
    anew = bytearray(closed)
    anew[4] = 2  # the same events in a file created at another time
    binlog.write_bytes(bytes(anew))
    assert binlog_tail(binlog, len(header) + 1000) != tail
    assert binlog_tail(binlog, 10**6) is None, "shorter than the position"
    assert binlog_tail(tmp_path / "missing", 4) is None


def test_datadir_origin_reads_the_restore_a_datadir_comes_from_and_fails_loudly(
    tmp_path: Path,
) -> None:
    assert datadir_origin(tmp_path) is None, "never restored"
    info = tmp_path / "xtrabackup_info"
    info.write_text("tool_name = mariabackup\nuuid = 1f-2e\n")
    first = datadir_origin(tmp_path)
    assert first == {"uuid": "1f-2e", "restored_ns": info.stat().st_ctime_ns}
    assert datadir_origin(tmp_path) == first, "stable while no one rewrites the file"
    info.unlink()
    time.sleep(0.01)
    info.write_text("tool_name = mariabackup\nuuid = 1f-2e\n")
    again = datadir_origin(tmp_path)
    assert again is not None and again != first, "a second restore of one backup differs"
    info.write_text("tool_name = mariabackup\n")
    assert (datadir_origin(tmp_path) or {}).get("uuid") == "", "restored, uuid unknown"
    odd = tmp_path / "odd"
    (odd / "xtrabackup_info").mkdir(parents=True)
    with pytest.raises(OperationFailed, match=r"cannot read .*xtrabackup_info"):
        datadir_origin(odd)
