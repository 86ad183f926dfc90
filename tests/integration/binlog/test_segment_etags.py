"""Binlog segments record their ETag: a segment rewritten since it was archived is a gap
(the sandbox's real MariaDB and S3 server).

A segment object overwritten with other bytes of its size passed every listing check (size
only): `binlogs status` showed no gap and a point-in-time restore planned over it, to fail
only when staging read it. Now its record holds the ETag its upload returned, so the
listing shows the rewrite: `binlogs status` names the gap (exit 1) and `restore --until`
refuses to replay across it (exit 2) before anything changes. Records written before the
ETag was recorded are judged by size, as before, and restore as before.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from datatier.binlog.chain import load_chain
from datatier.binlog.layout import data_prefix, index_key, index_prefix
from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import copy_multipart

DB = "seg_etag_db"
TARGET = "seg_etag_r"
POLICY = "seg_etag"


def _status(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["binlogs", "status", "--json"])
    return code, json.loads(capsys.readouterr().out)["gaps"]


def test_a_rewritten_segment_is_a_gap_and_records_without_an_etag_keep_working(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    with pitr_window(sandbox, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {DB}.t VALUES (1)")
        window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (2)", f"INSERT INTO {DB}.t VALUES (3)")
        until = window.until_now()
        window.archive()
        store = window.store
        chain = load_chain(store, POLICY)
        listed = {o.key: o for o in store.list_objects(data_prefix(POLICY))}
        segments = chain.segments
        assert segments and not chain.gaps
        for record in segments:  # each records the ETag the store lists for it
            assert record.etag is not None and record.etag == listed[str(record.key)].etag

        victim = segments[-1]
        assert victim.key is not None
        original = store.get_bytes(victim.key)
        store.put_bytes(victim.key, os.urandom(len(original)))  # same size, other bytes
        code, gaps = _status(capsys)
        assert code == 1
        assert [g for g in gaps if f"object {victim.key} was rewritten" in g], gaps
        restore = ["restore", "--policy", POLICY, "--until", until, "--rename", f"{DB}={TARGET}"]
        capsys.readouterr()
        assert main(restore) == 2
        err = capsys.readouterr().err
        assert "cannot replay across a gap" in err and "was rewritten" in err, err
        assert not query(sandbox.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'")

        # Records written before the ETag was recorded: judged by size only, as before.
        for record in segments:
            key = index_key(POLICY, record.seq)
            doc = json.loads(store.get_bytes(key))
            del doc["etag"]
            store.put_bytes(key, (json.dumps(doc, sort_keys=True) + "\n").encode())
        assert all(r.etag is None for r in load_chain(store, POLICY).segments)
        assert _status(capsys) == (0, [])
        store.put_bytes(victim.key, original)
        capsys.readouterr()
        assert main(restore) == 0, capsys.readouterr().err
        rows = query(sandbox.config, "primary", f"SELECT id FROM {TARGET}.t ORDER BY id")
        assert [r[0] for r in rows] == [1, 2, 3]


def _accept(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["binlogs", "accept-etags", "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_segments_copied_with_their_bytes_are_accepted_and_other_bytes_never(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bucket copy gives segments multipart ETags: each is a gap and a restore --until
    refuses to replay across it, though the bytes are the binlog's. ``binlogs accept-etags``
    reads them, checks size and SHA-256 against the records and records the new ETags:
    no gap, and the restore replays. A segment of other bytes of its size is exit 4 with
    every index record byte for byte as it was, and stays a gap."""
    sandbox = use_sandbox_config
    with pitr_window(sandbox, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {DB}.t VALUES (1)")
        window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (2)")
        window.archive()
        window.sql(f"INSERT INTO {DB}.t VALUES (3)")
        until = window.until_now()
        window.archive()
        store = window.store
        segments = load_chain(store, POLICY).segments
        assert len(segments) >= 2
        assert _accept(capsys)[0] == 0 and _accept(capsys)[1]["accepted"] == []

        def records() -> dict[str, bytes]:
            return {o.key: store.get_bytes(o.key) for o in store.list_objects(index_prefix(POLICY))}

        # Every segment copied with its own bytes, one of them then spoiled.
        for record in segments:
            copy_multipart(store, str(record.key))
        code, gaps = _status(capsys)
        assert code == 1 and len([g for g in gaps if "was rewritten" in g]) == len(segments)
        victim = segments[-1]
        good = store.get_bytes(str(victim.key))
        copy_multipart(store, str(victim.key), os.urandom(len(good)))
        before = records()
        code, doc = _accept(capsys)
        assert code == 4, doc
        assert records() == before, "nothing written"
        assert _status(capsys)[0] == 1

        copy_multipart(store, str(victim.key), good)  # its bytes back, under yet another ETag
        code, doc = _accept(capsys)
        assert code == 0, doc
        assert sorted(doc["accepted"]) == sorted(str(r.key) for r in segments)
        assert doc["gaps"] == []
        assert _status(capsys) == (0, [])
        listed = {o.key: o.etag for o in store.list_objects(data_prefix(POLICY))}
        assert all(r.etag == listed[str(r.key)] for r in load_chain(store, POLICY).segments)
        capsys.readouterr()
        restore = ["restore", "--policy", POLICY, "--until", until, "--rename", f"{DB}={TARGET}"]
        assert main(restore) == 0, capsys.readouterr().err
        rows = query(sandbox.config, "primary", f"SELECT id FROM {TARGET}.t ORDER BY id")
        assert [r[0] for r in rows] == [1, 2, 3]
