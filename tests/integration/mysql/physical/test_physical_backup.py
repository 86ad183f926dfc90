"""Physical backups (mariadb-backup) of the sandbox primary: a full and two incrementals
taken while a writer runs, each point restored into a new datadir and started, compared
with a replica held at that backup's GTID; faults, refusals, prune, restore test.

References: replica2's SQL thread is stopped before the first backup, then let through
``START SLAVE UNTIL master_gtid_pos`` = each backup's recorded GTID in turn; its table
checksums there are what a restore of that backup must give.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.stores import store_for
from datatier.mysql.physical import restore as physical_restore
from datatier.mysql.physical import tool as physical_tool
from datatier.mysql.physical.scratch import free_port, port_free
from datatier.storage.base import ObjectStore, StorageClass
from tests.integration.conftest import SandboxHandle, sql, unavailable
from tests.integration.integrity import backup_keys
from tests.integration.physical_support import (
    OWNER,
    Writer,
    cli,
    connect_port,
    hold_until,
    scratch,
    scratch_ports,
    table_state,
)

DB = "phys_db"
POLICY = "phys"
POLICIES = (POLICY, "phys-none", "phys-move", "phys-auto", "phys-kill", "phys-cold")


def policy_text(node: str = "primary", extra: str = "") -> str:
    return (
        f'engine = "mariabackup"\njobs = 2\nchunk_mb = 2\n{extra}\n[source]\nnode = "{node}"\n'
        "[retention]\nkeep_last = 20\nmin_age_days = 0\n"
    )


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def manifest_of(store: ObjectStore, policy: str, backup_id: str) -> Manifest:
    return Manifest.decode(store.get_bytes(manifest_key(policy, backup_id)), "test")


def backup(sandbox: SandboxHandle, policy: str, *flags: str) -> dict[str, Any]:
    result = cli(sandbox, "backup", "run", policy, *flags, "--json")
    assert result.code == 0, result.err
    summary: dict[str, Any] = result.json()
    return summary


def temp_leftovers() -> set[str]:
    root = Path(tempfile.gettempdir())
    return {p.name for p in root.glob("datatier-*")}


@pytest.fixture
def own_tempdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp directory of this test's own (short: scratch servers put sockets there), so
    :func:`temp_leftovers` sees this process's staging alone, not another test run's on
    the same machine (one did, and the check failed)."""
    root = Path(tempfile.mkdtemp(prefix="dt-own-"))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Chain:
    ids: list[str]
    gtids: list[str]
    refs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def chain(sandbox: SandboxHandle) -> Iterator[Chain]:
    """A full backup and two incrementals of the primary with writes (and DDL) between and
    during them, and replica2's table state at each backup's GTID."""
    sandbox.write_policy(POLICY, policy_text())
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE DATABASE {DB}")
    sql(sandbox, "primary", f"CREATE TABLE {DB}.t (id INT AUTO_INCREMENT PRIMARY KEY, "
                            "v VARCHAR(100), n INT, KEY (n))")  # fmt: skip
    sql(sandbox, "primary", f"INSERT INTO {DB}.t (v, n) SELECT REPEAT('x', 60), seq "
                            f"FROM {DB}.seq_1_to_30000")  # fmt: skip
    sql(sandbox, "primary", f"CREATE TABLE {DB}.a (id INT PRIMARY KEY, v TEXT) ENGINE=Aria")
    sql(sandbox, "primary", f"INSERT INTO {DB}.a SELECT seq, 'aria' FROM {DB}.seq_1_to_500")
    sql(sandbox, "primary", f"CREATE TABLE {DB}.gone (id INT PRIMARY KEY)")
    sql(sandbox, "primary", f"INSERT INTO {DB}.gone SELECT seq FROM {DB}.seq_1_to_100")
    sql(sandbox, "primary", f"CREATE VIEW {DB}.v AS SELECT COUNT(*) AS c FROM {DB}.t")
    sandbox.wait_replicated()
    ids: list[str] = []
    gtids: list[str] = []

    def take(flag: str) -> None:
        summary = backup(sandbox, POLICY, flag)
        ids.append(summary["id"])
        gtids.append(summary["consistency"]["gtid_pos"])

    sql(sandbox, "replica2", "STOP SLAVE")
    try:
        with Writer(sandbox, DB) as writer:
            take("--full")
            time.sleep(0.3)
            sql(sandbox, "primary", f"CREATE TABLE {DB}.later (id INT PRIMARY KEY, v TEXT)")
            sql(sandbox, "primary", f"INSERT INTO {DB}.later SELECT seq, 'l' FROM {DB}.seq_1_to_50")
            sql(sandbox, "primary", f"UPDATE {DB}.a SET v = 'changed' WHERE id < 50")
            take("--incremental")
            time.sleep(0.3)
            sql(sandbox, "primary", f"DROP TABLE {DB}.gone")
            sql(sandbox, "primary", f"DELETE FROM {DB}.t WHERE id % 100 = 0")
            take("--incremental")
        assert writer.writes > 20, "the writer ran during the backups"
        refs = []
        for gtid in gtids:
            hold_until(sandbox, "replica2", gtid)
            with sandbox.connect("replica2") as conn:
                refs.append(table_state(conn, DB))
    finally:
        sql(sandbox, "replica2", "START SLAVE")
    sandbox.wait_replicated(timeout=60)
    yield Chain(ids, gtids, refs)
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    store = store_of(sandbox)
    for name in POLICIES:
        store.delete([o.key for o in store.list_objects(f"{name}/")])
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)
    sandbox.wait_replicated()


def test_each_point_of_the_chain_restores_to_the_source_at_its_gtid(
    sandbox: SandboxHandle, chain: Chain, tmp_path: Path, test_port_base: int
) -> None:
    assert chain.refs[0] != chain.refs[1] != chain.refs[2], "writes happened between backups"
    assert "later" in chain.refs[1] and "later" not in chain.refs[0]
    assert "gone" in chain.refs[1] and "gone" not in chain.refs[2]
    for n, (backup_id, ref) in enumerate(zip(chain.ids, chain.refs, strict=True)):
        datadir = tmp_path / f"point{n}"
        result = cli(sandbox, "restore", backup_id, "--datadir", str(datadir), "--owner", OWNER,
                     "--json")  # fmt: skip
        assert result.code == 0, result.err
        report = result.json()
        assert [m["id"] for m in report["chain"]] == chain.ids[: n + 1]
        assert report["gtid_pos"] == chain.gtids[n]
        assert not list(datadir.glob(".datatier-restore-*")), "the work area is gone"
        assert not list(datadir.rglob("*.delta")), "every delta was applied"
        with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as c:
            assert table_state(c, DB) == ref, f"restore of {backup_id} differs at {chain.gtids[n]}"
            with c.cursor() as cur:
                cur.execute(f"SELECT c FROM {DB}.v")
                assert cur.fetchone()[0] == ref["t"][1], "the view works on the restored copy"


def test_a_new_datadir_is_owned_by_the_named_owner_with_server_modes(
    sandbox: SandboxHandle, chain: Chain, tmp_path: Path
) -> None:
    datadir = tmp_path / "owned"
    datadir.mkdir()
    owner = (65534, 65534) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    os.chown(datadir, *owner)  # as root: nobody; the directory's owner is the default owner
    result = cli(sandbox, "restore", chain.ids[1], "--datadir", str(datadir))
    assert result.code == 0, result.err
    for path in [datadir, *datadir.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == owner, path
        if path != datadir:
            assert st.st_mode & 0o777 == (0o700 if path.is_dir() else 0o660), path


def test_list_show_verify_and_dry_run_cover_the_chain(
    sandbox: SandboxHandle, chain: Chain, tmp_path: Path
) -> None:
    full, inc1, inc2 = chain.ids
    listed = {
        b["id"]: b for b in cli(sandbox, "backups", "list", POLICY, "--json").json()["backups"]
    }
    assert listed[full]["chain"] == "full" and listed[full]["parent"] is None
    assert listed[inc2]["chain"] == f"incremental 2 on {inc1}" and listed[inc2]["parent"] == inc1
    text = cli(sandbox, "backups", "list", POLICY).out
    assert f"incremental 1 on {full}" in text
    shown = cli(sandbox, "backups", "show", inc2, "--json").json()
    parent = cli(sandbox, "backups", "show", inc1, "--json").json()
    assert shown["chain"] == chain.ids and shown["parent"] == inc1
    assert shown["consistency"]["gtid_pos"] == chain.gtids[2]
    assert shown["consistency"]["backup_type"] == "incremental"
    assert shown["consistency"]["from_lsn"] == parent["consistency"]["to_lsn"]
    assert shown["source"]["server_uid"] and shown["source"]["version"]
    assert DB in shown["databases"]
    sampled = shown["consistency"]["page_sample"]["pages"]
    assert sampled and all(len(p) == 5 for p in sampled), "path, page, space, LSN, digest"
    text = cli(sandbox, "backups", "show", inc2).out
    assert f"page_sample={len(sampled)} pages" in text, "counted, not dumped"
    verified = cli(sandbox, "backups", "verify", inc2, "--json")
    assert verified.code == 0, verified.err
    doc = verified.json()
    store = store_of(sandbox)
    members = [manifest_of(store, POLICY, i) for i in chain.ids]
    assert doc["chain"] == chain.ids and doc["objects"] == sum(len(m.objects) for m in members)
    target = tmp_path / "never"
    dry = cli(sandbox, "restore", inc2, "--datadir", str(target), "--dry-run", "--json")
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert [m["id"] for m in plan["chain"]] == chain.ids and plan["dry_run"]
    assert plan["objects"] == sum(len(m.objects) for m in members)
    assert plan["by_class"] == {"STANDARD": plan["objects"]}
    assert not target.exists()


def test_a_corrupt_object_in_an_incremental_is_exit_4_before_anything_is_prepared(
    sandbox: SandboxHandle,
    chain: Chain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    own_tempdir: Path,
) -> None:
    store = store_of(sandbox)
    key = manifest_of(store, POLICY, chain.ids[1]).objects[0].key
    original = store.get_bytes(key)
    bad = bytearray(original)
    bad[len(bad) // 2] ^= 0xFF
    prepared: list[Any] = []

    def counted_prepare(*a: Any, **k: Any) -> Any:
        prepared.append(a)
        return physical_tool.prepare(*a, **k)

    monkeypatch.setattr(physical_restore, "prepare", counted_prepare)
    before = temp_leftovers()
    datadir = tmp_path / "d"
    store.put_bytes(key, bytes(bad))
    try:
        result = cli(sandbox, "restore", chain.ids[2], "--datadir", str(datadir))
        assert result.code == 4, result.err
        assert key in result.err and "SHA-256" in result.err
        assert prepared == [], "nothing was prepared"
        assert not datadir.exists(), "nothing was written"
        assert temp_leftovers() <= before, "the staged copies are gone"
        assert cli(sandbox, "backups", "verify", chain.ids[2]).code == 4
    finally:
        store.put_bytes(key, original)
    assert cli(sandbox, "backups", "verify", chain.ids[2]).code == 0


def test_restore_test_starts_a_scratch_server_checks_and_compares(
    sandbox: SandboxHandle, chain: Chain, test_port_base: int, own_tempdir: Path
) -> None:
    port = free_port(scratch_ports(test_port_base))
    before = temp_leftovers()
    args = ("backups", "verify", chain.ids[2], "--restore-test", "--scratch-port", str(port))
    result = cli(sandbox, *args, "--json")
    assert result.code == 0, result.err
    tested = result.json()["restore_test"]
    assert tested["checked"] >= 4 and tested["gtid_pos"] == chain.gtids[2]
    assert port_free(port) and temp_leftovers() <= before, "scratch server stopped, removed"
    # A manifest that claims a table the copy does not hold fails the comparison (exit 4).
    store = store_of(sandbox)
    key = manifest_key(POLICY, chain.ids[2])
    original = store.get_bytes(key)
    doctored = manifest_of(store, POLICY, chain.ids[2])
    doctored.databases[DB]["tables"].append("phantom")
    store.put_bytes(key, doctored.encode())
    try:
        result = cli(sandbox, *args)
        assert result.code == 4 and "phantom" in result.err, result.err
    finally:
        store.put_bytes(key, original)
    assert port_free(port) and temp_leftovers() <= before


def test_an_incremental_without_a_full_backup_is_refused(sandbox: SandboxHandle) -> None:
    sandbox.write_policy("phys-none", policy_text())
    result = cli(sandbox, "backup", "run", "phys-none", "--incremental")
    assert result.code == 2 and "no complete physical backup" in result.err, result.err
    assert not backup_keys(store_of(sandbox), "phys-none"), "nothing was written"


def test_a_chain_across_a_server_change_is_refused_and_a_broken_chain_never_restored(
    sandbox: SandboxHandle, chain: Chain, tmp_path: Path
) -> None:
    store = store_of(sandbox)
    sandbox.write_policy("phys-move", policy_text())
    full = backup(sandbox, "phys-move", "--full")["id"]
    before = {o.key for o in store.list_objects("phys-move/")}
    sandbox.write_policy("phys-move", policy_text(node="replica1"))
    result = cli(sandbox, "backup", "run", "phys-move", "--incremental")
    assert result.code == 2 and "another server" in result.err and "server_uid" in result.err
    assert {o.key for o in store.list_objects("phys-move/")} == before, "nothing was written"
    sandbox.write_policy("phys-move", policy_text())
    key = manifest_key("phys-move", full)
    original = store.get_bytes(key)
    upgraded = manifest_of(store, "phys-move", full)
    upgraded.source["version"] = "10.11.0-MariaDB-older"
    store.put_bytes(key, upgraded.encode())
    try:
        result = cli(sandbox, "backup", "run", "phys-move", "--incremental")
        assert result.code == 2 and "version 10.11.0-MariaDB-older ->" in result.err, result.err
        assert {o.key for o in store.list_objects("phys-move/")} == before
    finally:
        store.put_bytes(key, original)
    inc = backup(sandbox, "phys-move", "--incremental")
    assert inc["parent"] == full
    # The full backup's manifest goes: the incremental's chain is broken.
    store.delete([key])
    listed = {
        b["id"]: b for b in cli(sandbox, "backups", "list", "phys-move", "--json").json()["backups"]
    }
    assert listed[inc["id"]]["chain"] == f"broken: parent {full} is missing"
    datadir = tmp_path / "broken"
    result = cli(sandbox, "restore", inc["id"], "--datadir", str(datadir))
    assert result.code == 4 and "broken chain" in result.err and not datadir.exists()
    assert cli(sandbox, "backups", "verify", inc["id"]).code == 4
    result = cli(sandbox, "backup", "run", "phys-move", "--incremental")
    assert result.code == 2 and "broken chain" in result.err


def test_a_datadir_that_is_busy_not_empty_or_too_small_is_refused(
    sandbox: SandboxHandle, chain: Chain, tmp_path: Path, test_port_base: int
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    result = cli(sandbox, "restore", chain.ids[0], "--datadir", str(busy))
    assert result.code == 2 and "is not empty" in result.err and "keep.txt" in result.err
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    live = tmp_path / "live"
    assert cli(sandbox, "restore", chain.ids[0], "--datadir", str(live), "--owner", OWNER).code == 0
    with scratch(live, test_port_base):
        before = sorted(p.name for p in live.iterdir())
        result = cli(sandbox, "restore", chain.ids[0], "--datadir", str(live), "--force")
        assert result.code == 2 and "running server" in result.err, result.err
        after = sorted(p.name for p in live.iterdir())  # the server may add its own files
        assert set(before) <= set(after) and not [n for n in after if n.startswith(".datatier")]
    small = tmp_path / "small"
    small.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]  # make test runs as root or with sudo
    mount = [*sudo, "mount", "-t", "tmpfs", "-o", "size=4m,mode=1777", "tmpfs", str(small)]
    mounted = subprocess.run(mount, capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs to run out of space: {mounted.stderr.strip()}")
    try:
        result = cli(sandbox, "restore", chain.ids[0], "--datadir", str(small / "d"))
        assert result.code == 2 and "not enough space" in result.err, result.err
        assert list(small.iterdir()) == [], "nothing was created"
    finally:
        subprocess.run([*sudo, "umount", str(small)], check=True)


def test_full_every_days_decides_and_prune_keeps_the_parents(sandbox: SandboxHandle) -> None:
    store = store_of(sandbox)
    sandbox.write_policy("phys-auto", policy_text(extra="full_every_days = 7"))
    first = backup(sandbox, "phys-auto")
    second = backup(sandbox, "phys-auto")
    assert first["parent"] is None and second["parent"] == first["id"]
    sandbox.write_policy("phys-auto", policy_text(node="replica1", extra="full_every_days = 7"))
    third = backup(sandbox, "phys-auto")
    assert third["parent"] is None, "another server: a full backup instead of failing"
    reason = manifest_of(store, "phys-auto", third["id"]).options["base_reason"]
    assert "full instead of incremental" in reason and "another server" in reason
    fourth = backup(sandbox, "phys-auto")
    assert fourth["parent"] == third["id"]
    text = policy_text(node="replica1", extra="full_every_days = 7").replace(
        "keep_last = 20", "keep_last = 1"
    )
    sandbox.write_policy("phys-auto", text)
    plan = cli(sandbox, "backups", "prune", "phys-auto", "--json").json()
    kept = {k["id"]: k["reasons"] for k in plan["keep"]}
    assert kept == {
        fourth["id"]: ["newest", "last 1 of 1"],
        third["id"]: [f"parent of {fourth['id']}"],
    }
    result = cli(sandbox, "backups", "prune", "phys-auto", "--execute", "--grace-hours", "0")
    assert result.code == 0, result.err
    left = {
        b["id"] for b in cli(sandbox, "backups", "list", "phys-auto", "--json").json()["backups"]
    }
    assert left == {third["id"], fourth["id"]}
    assert cli(sandbox, "backups", "verify", fourth["id"]).code == 0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_sigkill_mid_backup_leaves_no_manifest(sandbox: SandboxHandle, chain: Chain) -> None:
    store = store_of(sandbox)
    sandbox.write_policy("phys-kill", policy_text().replace("chunk_mb = 2", "chunk_mb = 1"))
    args = ["--config", str(sandbox.config_path), "backup", "run", "phys-kill", "--full"]
    proc = subprocess.Popen([sys.executable, "-m", "datatier", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    children: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not list(store.list_objects("phys-kill/")):
            children = _children(proc.pid) or children
            assert proc.poll() is None, "the backup ended before any object was uploaded"
            assert time.monotonic() < deadline, "no object was uploaded"
            time.sleep(0.01)
        children = _children(proc.pid) or children
        assert children, "mariadb-backup was running"
        assert not [o for o in store.list_objects("phys-kill/") if o.key.endswith("manifest.json")]
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -9
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{c}").exists() for c in children):
        assert time.monotonic() < deadline, "mariadb-backup outlived the killed backup"
        time.sleep(0.1)
    time.sleep(0.5)
    assert not [o for o in store.list_objects("phys-kill/") if o.key.endswith("manifest.json")]
    listed = cli(sandbox, "backups", "list", "phys-kill", "--all", "--json").json()
    assert [b["state"] for b in listed["backups"]] == ["incomplete"] and listed["count"] == 1
    result = cli(sandbox, "backups", "prune", "phys-kill", "--execute", "--grace-hours", "0")
    assert result.code == 0, result.err
    assert not backup_keys(store, "phys-kill"), "prune removed the leftovers"


def test_the_readme_stock_tools_path(
    sandbox: SandboxHandle, chain: Chain, tmp_path: Path, test_port_base: int
) -> None:
    """The README's by-hand restore (stock tools only) of the full backup and the first
    incremental gives the same tables as the reference."""
    store = store_of(sandbox)
    for n, backup_id in enumerate(chain.ids[:2]):
        parts = tmp_path / f"parts{n}"
        parts.mkdir()
        for obj in manifest_of(store, POLICY, backup_id).objects:
            (parts / obj.key.rsplit("/", 1)[1]).write_bytes(store.get_bytes(obj.key))
    full, inc = tmp_path / "full", tmp_path / "inc"
    script = (
        f"cat {tmp_path}/parts0/mbstream-*.zst | zstd -d | mbstream -x -C {full} && "
        f"mariabackup --prepare --target-dir {full} && "
        f"cat {tmp_path}/parts1/mbstream-*.zst | zstd -d | mbstream -x -C {inc} && "
        f"cp {inc}/backup-my.cnf {full}/ && mariabackup --defaults-file={full}/backup-my.cnf "
        f"--prepare --target-dir {full} --incremental-dir {inc}"
    )
    full.mkdir()
    inc.mkdir()
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with scratch(full, test_port_base) as server, connect_port(sandbox, server.port) as conn:
        assert table_state(conn, DB) == chain.refs[1]


def test_a_chain_in_glacier_exits_5_then_restores_with_wait(
    sandbox: SandboxHandle, chain: Chain, slow_glacier: None, tmp_path: Path
) -> None:
    store = store_of(sandbox)
    sandbox.write_policy("phys-cold", policy_text())
    full = backup(sandbox, "phys-cold", "--full")["id"]
    inc = backup(sandbox, "phys-cold", "--incremental")["id"]
    for backup_id in (full, inc):
        for obj in manifest_of(store, "phys-cold", backup_id).objects:
            store.set_storage_class(obj.key, StorageClass.GLACIER)
    datadir = tmp_path / "cold"
    plan = cli(sandbox, "restore", inc, "--datadir", str(datadir), "--dry-run", "--json").json()
    assert set(plan["by_class"]) == {"GLACIER"} and plan["restore_requested"] == 0
    first = cli(sandbox, "restore", inc, "--datadir", str(datadir), "--owner", OWNER)
    assert first.code == 5 and "still being restored" in first.err, first.err
    assert not datadir.exists(), "nothing was written while the archive restore runs"
    done = cli(sandbox, "restore", inc, "--datadir", str(datadir), "--owner", OWNER, "--wait",
               "--poll", "0.05", "--json")  # fmt: skip
    assert done.code == 0, done.err
    assert done.json()["archived"] == done.json()["objects"]
    assert (datadir / "ibdata1").is_file()
