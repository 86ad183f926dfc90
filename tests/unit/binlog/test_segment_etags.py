"""Segment records keep the ETag their upload returned; the chain calls a segment whose
listed ETag differs a gap, by the backup listing's rules (quotes and case aside, records
without an ETag and objects now in a colder class judged by size only)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from datatier.binlog.chain import RecordCache, analyse, read_records
from datatier.binlog.layout import index_key
from datatier.binlog.records import SEGMENT, IndexRecord
from datatier.mysql.binlog.positions import Position
from datatier.storage.base import ObjectInfo
from datatier.storage.local import LocalStore

KEY = "p/_binlogs/data/000000000001-1-mariadb-bin.000001-4-abcd.binlog.zst"


def segment(etag: str | None = '"0f"', storage_class: str = "STANDARD") -> IndexRecord:
    return IndexRecord(
        seq=1,
        kind=SEGMENT,
        gtid_start=Position.parse(""),
        gtid_end=Position.parse("0-1-10"),
        published_at="2026-12-01T12:00:00.000Z",
        key=KEY,
        size=10,
        storage_class=storage_class,
        etag=etag,
    )


def listed(etag: str | None, storage_class: str = "STANDARD") -> dict[str, ObjectInfo]:
    return {KEY: ObjectInfo(KEY, 10, storage_class, etag=etag)}


def test_the_etag_round_trips_and_is_left_out_when_not_recorded() -> None:
    rec = segment('"0f"')
    assert json.loads(rec.encode())["etag"] == '"0f"'
    assert IndexRecord.decode(rec.encode(), "x") == rec
    assert rec.object_record().etag == '"0f"'
    old = segment(None)
    assert "etag" not in json.loads(old.encode())
    assert IndexRecord.decode(old.encode(), "x") == old


def test_a_segment_listed_with_another_etag_is_a_gap_naming_it() -> None:
    chain = analyse([segment('"0f"')], listed('"1e"'))
    assert len(chain.gaps) == 1
    reason = chain.gaps[0].reason
    assert f"object {KEY} was rewritten" in reason and '"1e"' in reason and '"0f"' in reason


@pytest.mark.parametrize("live", ['"0f"', "0f", '"0F"'], ids=["same", "unquoted", "case"])
def test_the_same_etag_as_servers_spell_it_is_no_gap(live: str) -> None:
    assert analyse([segment('"0f"')], listed(live)).gaps == []


def test_a_record_written_before_etags_were_recorded_is_judged_by_size() -> None:
    assert analyse([segment(None)], listed('"1e"')).gaps == []
    resized = {KEY: ObjectInfo(KEY, 11, etag='"0f"')}
    assert "11 bytes" in analyse([segment(None)], resized).gaps[0].reason


def test_a_segment_archived_to_a_colder_class_is_not_judged_by_etag() -> None:
    """Binlog retention re-classes segments by copying; the copy may get another ETag."""
    assert analyse([segment('"0f"')], listed('"1e"', "GLACIER")).gaps == []
    same_class = replace(segment('"0f"'), storage_class="GLACIER")
    assert len(analyse([same_class], listed('"1e"', "GLACIER")).gaps) == 1


def test_the_record_cache_reads_a_record_again_once_it_is_written_anew(tmp_path: Path) -> None:
    """``binlogs accept-etags`` rewrites records: a long-lived reader (the metrics
    collector) must not keep the old one, or the accepted segment stays a gap there."""
    store = LocalStore(tmp_path / "store")
    key = index_key("p", 1)
    store.put_bytes(key, segment('"0f"').encode())
    cache = RecordCache()
    assert [r.etag for r in read_records(store, "p", cache)] == ['"0f"']
    assert [r.etag for r in read_records(store, "p", cache)] == ['"0f"']
    time.sleep(0.01)  # a new mtime at least: the local store's ETag of other bytes differs anyway
    store.put_bytes(key, segment('"1e"').encode())
    assert [r.etag for r in read_records(store, "p", cache)] == ['"1e"']
