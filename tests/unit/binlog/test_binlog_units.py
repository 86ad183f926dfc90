"""Unit tests of the binlog pieces that need no server: GTID positions, event edits,
statement references and renames, transaction boundaries, index records, the chain and its
gaps, the choice of base backup and segments, and the archiver's deploy artifacts."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from datatier.backup.manifest import Manifest
from datatier.binlog.base import choose_base, state_before
from datatier.binlog.chain import analyse
from datatier.binlog.pitr import parse_until, select_segments
from datatier.binlog.records import GAP, SEGMENT, IndexRecord
from datatier.binlog.replay import Target
from datatier.errors import IntegrityFailure, UsageError
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.groups import GroupTracker, ends_transaction
from datatier.mysql.binlog.positions import Gtid, Position, lowest
from datatier.mysql.binlog.query import parse_query
from datatier.mysql.binlog.sqlrefs import referenced_databases, rewrite, scan, statement_tables
from datatier.mysql.binlog.translate import flag_settings
from datatier.storage.base import ObjectInfo

# -- positions ------------------------------------------------------------------------------


def test_positions_parse_compare_and_merge() -> None:
    pos = Position.parse("1-2-7, 0-1-42")
    assert str(pos) == "0-1-42,1-2-7"
    assert pos.includes(Gtid(0, 9, 42)) and not pos.includes(Gtid(0, 1, 43))
    assert pos.covers(Position.parse("0-1-41")) and not pos.covers(Position.parse("2-1-1"))
    assert pos.same_state(Position.parse("0-2-42,1-2-7"))  # a failover keeps the sequence
    assert str(pos.with_gtid(Gtid(0, 2, 43))) == "0-2-43,1-2-7"
    assert str(lowest([pos, Position.parse("0-1-40")])) == "0-1-40"  # domain 1 not in both


@pytest.mark.parametrize("text", ["0-1", "a-b-c", "0-1-2,0-1-3", "0-1-2-3", "1-99999999999-1"])
def test_bad_positions_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Position.parse(text)


# -- events ---------------------------------------------------------------------------------


def event(kind: int, body: bytes, *, log_pos: int = 1000, flags: int = 0) -> bytes:
    size = ev.HEADER_LEN + len(body) + 4
    raw = struct.pack("<IBIIIH", 1_700_000_000, kind, 1, size, log_pos, flags) + body
    return ev.with_crc(raw)


def table_map(database: bytes, table: bytes, table_id: int = 18) -> bytes:
    body = table_id.to_bytes(6, "little") + b"\x01\x00"
    body += bytes([len(database)]) + database + b"\0" + bytes([len(table)]) + table + b"\0"
    return event(ev.TABLE_MAP, body + b"\x02\x03\x0f\x02\x28\x00\x02")


def test_table_map_rename_keeps_the_rest_and_a_valid_crc() -> None:
    original = table_map(b"shop", b"orders")
    renamed = ev.rename_table_map(original, "shop_restored_2026", checksum=True)
    ev.check_crc(renamed, "test")
    assert ev.header(renamed).size == len(renamed)
    mapped = ev.table_map(renamed)
    assert (mapped.table_id, mapped.database, mapped.table) == (18, "shop_restored_2026", "orders")
    assert renamed.endswith(original[-11:-4] + renamed[-4:])  # column data unchanged


def test_crc_mismatch_and_truncation_are_integrity_failures() -> None:
    good = table_map(b"a", b"t")
    with pytest.raises(IntegrityFailure, match="CRC32"):
        ev.check_crc(good[:-1] + bytes([good[-1] ^ 1]), "x")
    with pytest.raises(IntegrityFailure, match="truncated"):
        ev.split_events(good + good[:10], "x")


def test_stmt_end_flag_is_set_with_a_new_crc() -> None:
    rows = event(ev.WRITE_ROWS_V1, (18).to_bytes(6, "little") + b"\x00\x00" + b"\x01\xff")
    flagged = ev.with_stmt_end(rows, checksum=True)
    assert ev.rows_flags(flagged) & ev.STMT_END
    ev.check_crc(flagged, "x")


def query_event(text: bytes, database: bytes = b"shop", flags2: int = 0x01000000) -> bytes:
    status = b"\x00" + struct.pack("<I", flags2) + b"\x01" + struct.pack("<Q", 1411383296)
    status += b"\x04" + struct.pack("<HHH", 33, 33, 224) + b"\x81" + struct.pack("<Q", 7)
    head = struct.pack("<IIBHH", 12, 0, len(database), 0, len(status))
    return event(ev.QUERY, head + status + database + b"\0" + text)


def test_query_events_decode_their_session() -> None:
    decoded = parse_query(query_event(b"ALTER TABLE t ADD c INT"), checksum=True)
    assert decoded.database == "shop" and decoded.text == b"ALTER TABLE t ADD c INT"
    assert decoded.sql_mode == 1411383296 and decoded.charset == (33, 33, 224)
    assert decoded.words == [b"ALTER", b"TABLE"]
    settings = flag_settings(decoded.flags2 or 0, (10, 11, 6))
    assert "@@session.explicit_defaults_for_timestamp=1" in settings
    assert "@@session.foreign_key_checks=1" in settings
    assert not any("insert_history" in s for s in flag_settings(0, (10, 6, 0)))


def gtid_event(seq: int, flags: int = 0) -> bytes:
    return event(ev.GTID, struct.pack("<QIB", seq, 0, flags) + b"\0" * 6)


def test_group_boundaries() -> None:
    tracker = GroupTracker()
    sequence = [
        gtid_event(5),
        table_map(b"a", b"t"),
        event(ev.XID, struct.pack("<Q", 1)),
        gtid_event(6, ev.FL_STANDALONE),
        query_event(b"CREATE TABLE x (i INT)"),
        gtid_event(7),
        query_event(b"ROLLBACK TO SAVEPOINT s"),
        query_event(b"COMMIT"),
    ]
    done = [g for e in sequence if (g := tracker.feed(e, ev.header(e)))]
    assert [g.gtid.seq for g in done] == [5, 6, 7] and tracker.between_groups
    assert ends_transaction([b"ROLLBACK"]) and not ends_transaction([b"ROLLBACK", b"TO"])
    with pytest.raises(IntegrityFailure, match="inside"):
        tracker.feed(gtid_event(8), ev.header(gtid_event(8)))
        tracker.feed(gtid_event(9), ev.header(gtid_event(9)))


# -- statements -----------------------------------------------------------------------------


def test_database_references_and_renames_never_touch_strings_or_comments() -> None:
    text = "ALTER TABLE shop.t ADD c INT DEFAULT 1 COMMENT 'shop.t' /* shop.x */ -- shop.y\n"
    found = scan(text)
    assert referenced_databases(found, "", {"shop"}) == {"shop"}
    assert rewrite(text, found, {"shop": "shop_r"}, {"shop"}) == text.replace(
        "ALTER TABLE shop.t", "ALTER TABLE `shop_r`.t"
    )
    executable = "/*!40000 ALTER TABLE `shop`.`t` DISABLE KEYS */"
    assert "`shop_r`.`t`" in rewrite(executable, scan(executable), {"shop": "shop_r"}, {"shop"})
    drop = "DROP DATABASE IF EXISTS shop"
    assert (
        rewrite(drop, scan(drop), {"shop": "shop_r"}, set()) == "DROP DATABASE IF EXISTS `shop_r`"
    )
    # a two-part name is a database reference only when it names a known database
    alias = "UPDATE t AS shop SET shop.a = 1"
    assert referenced_databases(scan(alias), "crm", {"crm"}) == {"crm"}


def test_rewrite_spells_a_folding_sources_names_lower_cased() -> None:
    """Names a source with lower_case_table_names=1 stored lower-cased, as a case-sensitive
    target needs them: identifiers only (quoted as they were), never strings, comments or
    other names (columns, aliases; a column named as a table is lower-cased too, the same
    column on every server); a renamed qualifier takes its new name as given."""
    text = "UPDATE Shop.`ORDERS` O SET O.Note = 'Shop.ORDERS' /* Shop */ WHERE Qty = 1"
    found = scan(text, fold=True)
    lower = {"shop", "orders", "items"}
    assert rewrite(text, found, {}, {"shop"}, lower) == (
        "UPDATE shop.`orders` O SET O.Note = 'Shop.ORDERS' /* Shop */ WHERE Qty = 1"
    )
    insert = "INSERT INTO Items VALUES (1)"
    assert rewrite(insert, scan(insert, fold=True), {}, set(), lower) == insert.replace(
        "Items", "items"
    )
    assert rewrite(text, found, {"shop": "New_Shop"}, {"shop"}, lower).startswith(
        "UPDATE `New_Shop`.`orders` O"
    )


@pytest.mark.parametrize(
    ("text", "tables"),
    [
        ("ALTER TABLE o ADD x INT", [("db", "o")]),
        ("CREATE TABLE IF NOT EXISTS other.o2 (i INT)", [("other", "o2")]),
        ("DROP TABLE IF EXISTS a, db.b", [("db", "a"), ("db", "b")]),
        ("RENAME TABLE a TO b", [("db", "a"), ("db", "b")]),
        ("ALTER TABLE a RENAME TO b", [("db", "a"), ("db", "b")]),
        ("ALTER TABLE x.a ADD c INT, RENAME AS y.b", [("x", "a"), ("y", "b")]),
        ("ALTER TABLE a RENAME b", [("db", "a"), ("db", "b")]),
        ("ALTER TABLE a RENAME COLUMN c TO d", [("db", "a")]),
        ("ALTER TABLE a RENAME INDEX i TO j, RENAME KEY k TO l", [("db", "a")]),
        ("ALTER TABLE `rename` COMMENT 'rename to x'", [("db", "rename")]),
        ("CREATE OR REPLACE UNIQUE INDEX u ON t (c)", [("db", "t")]),
        ("CREATE OR REPLACE TEMPORARY TABLE t (i INT)", [("db", "t")]),
        (
            "CREATE DEFINER=`a`@`%` TRIGGER g BEFORE INSERT ON x.t FOR EACH ROW SET @a = 1",
            [("x", "t")],
        ),
        ("CREATE DEFINER=`a`@`%` PROCEDURE p() CREATE TRIGGER g BEFORE INSERT ON t", None),
        ("DROP TRIGGER IF EXISTS g", None),
        ("CREATE DEFINER=`a`@`%` VIEW v AS SELECT 1", None),
        ("CREATE UNIQUE INDEX i ON t (c)", [("db", "t")]),
        ("TRUNCATE TABLE t", [("db", "t")]),
        ("CREATE VIEW v AS SELECT 1", None),
    ],
)
def test_statement_tables(text: str, tables: list[tuple[str, str]] | None) -> None:
    assert statement_tables(scan(text), "db") == tables


# -- records, chain, plan -------------------------------------------------------------------


def record(
    seq: int, start: str, end: str, *, kind: str = SEGMENT, first: int = 0, last: int = 0
) -> IndexRecord:
    return IndexRecord(
        seq=seq,
        kind=kind,
        gtid_start=Position.parse(start),
        gtid_end=Position.parse(end),
        published_at="2026-12-01T12:00:00.000Z",
        key=None if kind == GAP else f"p/_binlogs/data/{seq:012d}.binlog.zst",
        size=10,
        first_ts=first,
        last_ts=last,
        reason="purged" if kind == GAP else "",
    )


def test_records_round_trip_and_reject_garbage() -> None:
    rec = record(3, "0-1-10", "0-1-20", first=100, last=200)
    again = IndexRecord.decode(rec.encode(), "x")
    assert again == rec
    with pytest.raises(IntegrityFailure):
        IndexRecord.decode(b'{"format": 1, "seq": "x"}', "x")


def test_chain_names_gaps_missing_objects_and_discontinuities() -> None:
    records = [
        record(1, "", "0-1-10"),
        record(2, "0-1-10", "0-1-20", kind=GAP),
        record(3, "0-1-20", "0-1-30"),
        record(4, "0-1-31", "0-1-40"),
    ]
    objects = {r.key: ObjectInfo(r.key, 10) for r in records if r.key and r.seq != 3}
    chain = analyse(records, objects)
    reasons = [g.reason for g in chain.gaps]
    assert reasons[0] == "purged" and "missing" in reasons[1] and "does not start" in reasons[2]


def test_segments_are_chosen_from_the_backup_to_the_target_and_gaps_refused() -> None:
    records = [record(1, "", "0-1-10", last=10), record(2, "0-1-10", "0-1-20", last=20),
               record(3, "0-1-20", "0-1-30", last=30)]  # fmt: skip
    chain = analyse(records, None)
    start = Position.parse("0-1-12")
    chosen = select_segments(chain, start, Target(until_gtid=Gtid(0, 1, 25)), 0, "B")
    assert [r.seq for r in chosen] == [2, 3]
    assert select_segments(chain, start, Target(until_ts=15), 0, "B") == [records[1]]
    with pytest.raises(UsageError, match="beyond the binlog archive"):
        select_segments(chain, start, Target(until_gtid=Gtid(0, 1, 31)), 0, "B")
    with pytest.raises(UsageError, match="beyond"):
        select_segments(chain, start, Target(until_ts=40), 31, "B")
    assert select_segments(chain, start, Target(until_ts=40), 45, "B")  # archiver said so
    gapped = analyse([records[0], record(2, "0-1-10", "0-1-20", kind=GAP), records[2]], None)
    with pytest.raises(UsageError, match="gap"):
        select_segments(gapped, Position.parse("0-1-5"), Target(until_gtid=Gtid(0, 1, 25)), 0, "B")
    late = analyse(records[1:], None)
    with pytest.raises(UsageError, match="does not reach back"):
        select_segments(late, Position.parse("0-1-5"), Target(until_gtid=Gtid(0, 1, 25)), 0, "B")


def manifest(backup_id: str, gtid: str, snapshot: str) -> Manifest:
    return Manifest(
        policy="p", backup_id=backup_id, engine="mysql", tool_version="0",
        started_at=snapshot, finished_at=snapshot, source={},
        consistency={"gtid_pos": gtid, "snapshot_at": snapshot}, objects=[], tables=[],
    )  # fmt: skip


def test_the_newest_backup_before_the_target_is_the_base() -> None:
    older = manifest("20261201T100000Z-aaaa", "0-1-100", "2026-12-01T10:00:00Z")
    newer = manifest("20261201T110000Z-bbbb", "0-1-200", "2026-12-01T11:00:00Z")
    at = int(datetime(2026, 12, 1, 10, 30, tzinfo=UTC).timestamp())
    assert choose_base([older, newer], Target(until_ts=at), None, "p") is older
    assert choose_base([older, newer], Target(until_gtid=Gtid(0, 1, 250)), None, "p") is newer
    assert choose_base([older, newer], Target(until_gtid=Gtid(0, 1, 200)), None, "p") is newer
    with pytest.raises(UsageError, match="before the oldest backup"):
        choose_base([older, newer], Target(until_gtid=Gtid(0, 1, 50)), None, "p")


def test_a_backup_holding_later_transactions_of_another_domain_is_not_the_base() -> None:
    """G = 0-1-200 was committed, then 1-1-7, then ``late`` was taken: at G in domain 0, but
    holding 1-1-7 from after G. The archive shows domain 1 at 5 where G's segment starts."""
    early = manifest("20261201T100000Z-aaaa", "0-1-100,1-1-5", "2026-12-01T10:00:00Z")
    late = manifest("20261201T110000Z-bbbb", "0-1-200,1-1-7", "2026-12-01T11:00:00Z")
    chain = analyse(
        [record(1, "0-1-90,1-1-5", "0-1-150,1-1-5"), record(2, "0-1-150,1-1-5", "0-1-250,1-1-9")],
        None,
    )
    gtid = Gtid(0, 1, 200)
    before = state_before(chain, gtid)
    assert before == Position.parse("0-1-150,1-1-5")
    assert choose_base([early, late], Target(until_gtid=gtid), None, "p", before) is early
    with pytest.raises(UsageError, match="not a complete backup"):
        choose_base([early, late], Target(until_gtid=gtid), late.backup_id, "p", before)
    with pytest.raises(UsageError, match="other GTID domains"):
        choose_base([late], Target(until_gtid=gtid), None, "p", before)
    with pytest.raises(UsageError, match="other GTID domains"):
        choose_base([late], Target(until_gtid=gtid), None, "p", None)  # the archive cannot tell
    single = manifest("20261201T110000Z-cccc", "0-1-200", "2026-12-01T11:00:00Z")
    assert choose_base([early, single], Target(until_gtid=gtid), None, "p", None) is single
    assert state_before(chain, Gtid(0, 1, 999)) is None


def test_until_times() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_until("2026-12-01T11:00:00", now) == datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert parse_until("2026-12-01T12:30:00+01:00", now).hour == 11
    for bad in ("2026-12-01T12:00:01Z", "noon", "2026-13-01"):
        with pytest.raises(UsageError):
            parse_until(bad, now)


# -- deploy ---------------------------------------------------------------------------------


def test_the_archiver_deployment_is_one_replica_with_the_cronjobs_config() -> None:
    root = Path(__file__).resolve().parents[3] / "deploy"
    (doc,) = yaml.safe_load_all((root / "k8s" / "binlog-archiver.yaml").read_text())
    cronjob = next(yaml.safe_load_all((root / "k8s" / "cronjobs.yaml").read_text()))
    assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] == 1
    assert doc["spec"]["strategy"] == {"type": "Recreate"}
    pod = doc["spec"]["template"]["spec"]
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["volumes"] == job_pod["volumes"]
    assert pod["containers"][0]["env"] == job_pod["containers"][0]["env"]
    assert pod["containers"][0]["args"] == ["binlog", "archive"]
    unit = (root / "systemd" / "datatier-binlog-archive.service").read_text()
    assert "Restart=always" in unit and "Type=simple" in unit


# -- command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a BACKUP_ID"),
        (["--policy", "p", "--until", "soon"], "not an ISO-8601 time"),
        (["--policy", "p", "--until-gtid", "1-2"], "not a MariaDB GTID"),
        (["--policy", "p", "--until", "2001-01-01", "--until-gtid", "0-1-1"], "not both"),
        # it said the time was in the future, not that only one of them is taken
        (["--policy", "p", "--until", "2999-01-01", "--until-gtid", "0-1-1"], "not both"),
        (["--policy", "p", "--until", "2999-01-01T00:00:00"], "give its offset"),
        (["--until", "2001-01-01"], "need --policy"),
    ],
)
def test_restore_arguments_are_checked_first(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from datatier.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    assert main(["restore", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("text", ["0-1-\uff12\uff13", "\u0660-1-5", "0-\u0661-5"])
def test_a_gtid_with_non_ascii_digits_is_refused(text: str) -> None:
    """Reproduction: `--until-gtid` with full-width digits (U+FF12 U+FF13) was read as 0-1-23, while
    MariaDB and `--until` take ASCII digits only."""
    with pytest.raises(UsageError, match="not a MariaDB GTID"):
        Gtid.parse(text)
