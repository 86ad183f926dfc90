"""Format-1 bundles (:mod:`datatier.mysql.bundle_frames`: every statement framed) restore on
datatier's own connection, with no stock client; bundles as written before (definitions in
a plain ``DELIMITER`` block, no format line) still restore through the client. Whole and with
``--tables``, hostile names and values, ``--no-binlog``; a frame that lies is exit 4 with
nothing past it applied; a frame holding a second statement is refused by the server. On the
sandbox's real primary and replicas."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import zstandard

from datatier.backup.manifest import Manifest, ObjectRecord, manifest_key
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mysql import dumptasks
from datatier.mysql.bundle_frames import BUNDLE_HEAD
from datatier.mysql.sqltext import block
from tests.integration.conftest import SandboxHandle, q
from tests.integration.mysql.test_restore_kill import state

SRC, DST = "bfr src`;数据", "bfr dst`;数据"
POLICY = "bundle-frames"
SUFFIXES = [" `x`", ";--", "\n)", "数据", "'q'", "$$", ";;", "\\n", "/*", "DELIMITER ;"]
VALUES = [
    "'); DROP TABLE t; --",
    "-- next statement: 3 bytes\n",
    "\nDELIMITER ;;\nDROP TABLE x;;\n",
    "back\\slash",
    "nul\0byte",
    "数据 ✓ 😀\r\n",
    None,
    "",
]
TABLES = [f"b{i:02d}{SUFFIXES[i % len(SUFFIXES)]}" for i in range(30)]


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        cur.execute(f"CREATE DATABASE {q(SRC)}")
        for n, name in enumerate(TABLES):
            cur.execute(
                f"CREATE TABLE {q(SRC)}.{q(name)} (id INT PRIMARY KEY, v TEXT, b VARBINARY(16), "
                "KEY (b)) COMMENT %s",
                (VALUES[n % len(VALUES)] or "",),
            )
            rows = [
                (i, VALUES[(n + i) % len(VALUES)], bytes([n, 0, 39, 92, 10, 59, i]))
                for i in range(n % 7)
            ]
            cur.executemany(f"INSERT INTO {q(SRC)}.{q(name)} VALUES (%s, %s, %s)", rows)
    sandbox.wait_replicated()
    sandbox.write_policy(
        POLICY,
        f'engine = "mysql"\njobs = 2\n[source]\nnode = "replica1"\n'
        f"databases = [{json.dumps(SRC)}]\n",
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


def old_bundles(patch: pytest.MonkeyPatch) -> None:
    """Make the writer write bundles as it did before format 1 (datatier 235975a): no
    format line, each table's DROP and CREATE in a plain ``DELIMITER`` block."""
    patch.setattr(dumptasks, "BUNDLE_HEAD", b"")
    patch.setattr(dumptasks, "framed_block", lambda s: block(s).encode("utf-8", "surrogateescape"))


def backup(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch, *, old: bool) -> Manifest:
    """A backup of SRC; ``old``: its bundles as the writer made them before format 1 (no
    format line, the DROP and CREATE in a plain ``DELIMITER`` block, INSERTs framed)."""
    with monkeypatch.context() as patch:
        if old:
            old_bundles(patch)
        loaded = load(str(sandbox.config_path), environ={})
        manifest = run_backup(loaded, load_policy(loaded, POLICY))
    bundles = [o for o in manifest.objects if o.kind == "bundle"]
    assert len(bundles) >= 2 and sum(len(o.sections) for o in bundles) == len(TABLES)
    store = find_backup(loaded, manifest.backup_id)[1]
    head = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(bundles[0].key)))
    )
    assert (BUNDLE_HEAD in head[:400]) is not old
    return manifest


def restore(backup_id: str, *extra: str) -> list[str]:
    return ["restore", backup_id, "--rename", f"{SRC}={DST}", "--force", *extra]


@pytest.mark.parametrize("old", [False, True], ids=["format1", "older"])
def test_bundles_round_trip_whole_and_by_tables(
    use_sandbox_config: SandboxHandle,
    source: None,
    clients: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    old: bool,
) -> None:
    sandbox = use_sandbox_config
    manifest = backup(sandbox, monkeypatch, old=old)
    bundles = [o for o in manifest.objects if o.kind == "bundle"]
    want = state(sandbox, SRC)
    clients.clear()
    assert main(restore(manifest.backup_id)) == 0
    assert state(sandbox, DST) == want
    assert len(clients) == (len(bundles) if old else 0), "format 1 starts no client"

    # --tables: two tables of one bundle with one between them skipped, one of another.
    first, second = bundles[0].sections, bundles[1].sections
    picked = [first[0].table, first[2].table, second[-1].table]
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {q(DST)}")
    clients.clear()
    names = ",".join(f"{q(SRC)}.{q(t)}" for t in picked)
    assert main(restore(manifest.backup_id, "--tables", names)) == 0
    assert state(sandbox, DST) == {t: want[t] for t in picked}
    assert len(clients) == (2 if old else 0)


def test_no_binlog_keeps_format1_bundles_off_the_replicas(
    use_sandbox_config: SandboxHandle,
    source: None,
    clients: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = use_sandbox_config
    manifest = backup(sandbox, monkeypatch, old=False)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")
    sandbox.wait_replicated()
    clients.clear()
    assert main(restore(manifest.backup_id, "--no-binlog")) == 0
    assert clients == []
    assert state(sandbox, DST) == state(sandbox, SRC)
    sandbox.wait_replicated()
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (DST,))
        assert cur.fetchone() == (0,)


def rewrite(
    sandbox: SandboxHandle,
    manifest: Manifest,
    bundle: ObjectRecord,
    index: int,
    change: Callable[[bytes], bytes],
) -> Callable[[], None]:
    """Replace section ``index`` of ``bundle`` by ``change`` of its bytes, the manifest's
    record updated to match (sizes, checksum, section offsets: the backup altered along
    with its manifest); returns the undo."""
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, manifest.backup_id)
    mkey = manifest_key(manifest.policy, manifest.backup_id)
    good_manifest = b"".join(store.iter_read(mkey))
    good = b"".join(store.iter_read(bundle.key))
    text = zstandard.ZstdDecompressor().decompressobj().decompress(good)
    victim = bundle.sections[index]
    new = change(text[victim.start : victim.end])
    delta = len(new) - (victim.end - victim.start)
    bad = zstandard.ZstdCompressor().compress(text[: victim.start] + new + text[victim.end :])
    sections = [
        s
        if i < index
        else replace(s, start=s.start + (delta if i > index else 0), end=s.end + delta)
        for i, s in enumerate(bundle.sections)
    ]
    tampered = Manifest.decode(good_manifest, "test")
    tampered.objects = [
        replace(
            o,
            size=len(bad),
            sha256=hashlib.sha256(bad).hexdigest(),
            raw_size=o.raw_size + delta,
            sections=tuple(sections),
        )
        if o.key == bundle.key
        else o
        for o in tampered.objects
    ]
    store.put_bytes(bundle.key, bad)
    store.put_bytes(mkey, tampered.encode())

    def undo() -> None:
        store.put_bytes(bundle.key, good)
        store.put_bytes(mkey, good_manifest)

    return undo


def test_a_lying_frame_in_a_bundle_is_exit_4_and_nothing_past_it_applies(
    use_sandbox_config: SandboxHandle,
    source: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One INSERT's frame in the middle of a bundle claims a byte more: the tables before
    it load, its own DROP and CREATE run, its rows and everything after do not."""
    sandbox = use_sandbox_config
    manifest = backup(sandbox, monkeypatch, old=False)
    bundle = next(o for o in manifest.objects if o.kind == "bundle" and len(o.sections) >= 5)
    index = next(i for i, s in enumerate(bundle.sections[:-1]) if i >= 2 and s.rows > 0)

    def lie(section: bytes) -> bytes:
        at = section.index(b"\nINSERT INTO ") + 1
        line_start = section.rindex(b"-- next statement: ", 0, at)
        size = int(section[line_start:at].split(b": ")[1].split(b" ")[0])
        return section[:line_start] + b"-- next statement: %d bytes\n" % (size + 1) + section[at:]

    undo = rewrite(sandbox, manifest, bundle, index, lie)
    try:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")
        capsys.readouterr()
        assert main(restore(manifest.backup_id, "--jobs", "1")) == 4
        err = capsys.readouterr().err
        assert bundle.key in err and "is not one statement" in err, err
        found, want = state(sandbox, DST), state(sandbox, SRC)
        before = [s.table for s in bundle.sections[:index]]
        assert {t: found[t] for t in before} == {t: want[t] for t in before}
        assert found[bundle.sections[index].table][0] == 0, "created, none of its rows loaded"
        after = {s.table for s in bundle.sections[index + 1 :]}
        assert not after & set(found), "nothing after the lying frame ran"
    finally:
        undo()


def test_a_frame_holding_a_second_statement_is_refused_by_the_server(
    use_sandbox_config: SandboxHandle,
    source: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CREATE's frame holds a second statement too: one query, two statements, which the
    server refuses (multi_statements off); the error names the bundle and the table."""
    sandbox = use_sandbox_config
    manifest = backup(sandbox, monkeypatch, old=False)
    bundle = next(o for o in manifest.objects if o.kind == "bundle")
    index = next(i for i, s in enumerate(bundle.sections) if i and "\n" not in s.table)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS bfr_bystander")

    def smuggle(section: bytes) -> bytes:
        head, drop_frame, drop, create_frame, rest = section.split(b"\n", 4)
        delimiter = head.split(b" ", 1)[1]
        size = int(create_frame.split(b": ")[1].split(b" ")[0])
        create, rest = rest[:size], rest[size:]
        assert drop.endswith(delimiter) and create.endswith(delimiter + b"\n")
        body = create[: -len(delimiter) - 1] + b"; DROP DATABASE bfr_bystander" + delimiter
        body += b"\n"
        kept = b"\n".join([head, drop_frame, drop]) + b"\n"
        return kept + b"-- next statement: %d bytes\n" % len(body) + body + rest

    undo = rewrite(sandbox, manifest, bundle, index, smuggle)
    try:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")
        capsys.readouterr()
        assert main(restore(manifest.backup_id, "--jobs", "1")) == 1
        err = capsys.readouterr().err
        table = bundle.sections[index].table
        assert f"in {q(DST)} (table {q(table)}, its statement 2) failed" in err, err
        assert bundle.key not in err and "the bundle of tables" in err, err
        assert "ERROR 1064" in err
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
                ("bfr_bystander",),
            )
            assert cur.fetchone() == (1,)
        found = set(state(sandbox, DST))
        assert {s.table for s in bundle.sections[:index]} <= found
        assert not {s.table for s in bundle.sections[index:]} & found
    finally:
        undo()
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS bfr_bystander")
