"""Storage failures during a backup are reported as what they are (issue 12, items 6 and 14).

Real failures, not mocks: a private moto S3 server is killed mid-backup; a ``file://``
store lives on a tiny tmpfs mounted in a private mount namespace (``unshare``) so the disk
really fills up; S3 really refuses a key longer than 1,024 bytes (a legal MariaDB name
pair of 64 CJK characters each). The backup runs as a separate ``datatier`` process so its
exit code and stderr are exactly what cron sees.

Decision (documented in the README): a store that cannot be reached or refuses writes
(S3 down, disk full) is exit 3; a key the store rejects because of the data's names is
exit 1 (the operation failed; retrying will not help). Neither is a dump failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.conftest import SandboxHandle, unavailable
from tests.integration.integrity import (  # noqa: F401  (integ_data: fixture)
    DB,
    TableLock,
    backup_keys,
    clear_prefix,
    default_store,
    failure_line,
    integ_data,
)

MOTO_PORT = int(os.environ.get("DATATIER_TEST_PORT_BASE", "24060")) + 70
BUCKET = "dt-private"

pytestmark = pytest.mark.usefixtures("integ_data")


def datatier(
    sandbox: SandboxHandle, *args: str, env: dict[str, str] | None = None, **kw: Any
) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def private_moto(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A moto S3 server of our own, which the test may kill."""
    if port_open(MOTO_PORT):
        unavailable(f"port {MOTO_PORT} is taken (DATATIER_TEST_PORT_BASE + 70)")
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while not port_open(MOTO_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            unavailable("moto did not start")
        time.sleep(0.05)
    s3().create_bucket(Bucket=BUCKET)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    log.close()


def s3() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{MOTO_PORT}",
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )


@pytest.fixture
def temp_policy(sandbox: SandboxHandle) -> Iterator[Any]:
    """Write policies that exist only for this test (their stores may be gone after it)."""
    written: list[Path] = []

    def write(name: str, text: str) -> str:
        written.append(sandbox.write_policy(name, text))
        return name

    yield write
    for path in written:
        path.unlink(missing_ok=True)


def assert_clean_storage_error(err: str) -> None:
    assert "mariadb-dump failed" not in err, err
    assert "Traceback" not in err and "exception calling callback" not in err, err


@pytest.fixture
def big_table(sandbox: SandboxHandle) -> Iterator[str]:
    """About 9 MB of rows: with chunk_mb = 1 the dump keeps opening objects for a while."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {DB}.big_s3 (id INT PRIMARY KEY, pad CHAR(150))")
        cur.execute(
            f"INSERT INTO {DB}.big_s3 SELECT seq, REPEAT(CHAR(65 + seq % 26), 150) "
            f"FROM {DB}.seq_1_to_60000"
        )
    yield "big_s3"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE {DB}.big_s3")


def test_s3_stopped_mid_backup_is_exit_3_naming_store_and_object(
    sandbox: SandboxHandle, private_moto: Any, temp_policy: Any, big_table: str
) -> None:
    """Reproduction: reported as `mariadb-dump failed on replica1: exit code -9` (exit 1)
    followed by ~300 lines of callback tracebacks."""
    name = temp_policy(
        "integ-s3-down",
        f'engine = "mysql"\nstore = "s3://{BUCKET}/p"\nchunk_mb = 1\nbundle_tables = false\n'
        f'[source]\nnode = "primary"\ndatabases = ["{DB}"]\n',  # one table's objects, then a lock
    )
    lock = TableLock(sandbox, "b_second")
    env = {
        "DATATIER_S3__ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "DATATIER_S3__MAX_ATTEMPTS": "2",
    }
    proc = datatier(sandbox, "backup", "run", name, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=f"p/{name}/")
            if any("/a_first/schema" in o["Key"] for o in listed.get("Contents", [])):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no object reached S3 before the lock")
        private_moto.send_signal(signal.SIGKILL)
        private_moto.wait(timeout=10)
    finally:
        lock.release()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert_clean_storage_error(err)
    last = failure_line(err)
    assert last.startswith("datatier: error:") and f"s3://{BUCKET}/p/{name}/" in last, last
    assert "cannot reach S3" in last and "/data/" in last, last
    assert "remain" in last and "prune" in last, "it says what was left behind"


def test_a_full_disk_on_a_file_store_is_exit_3_naming_store_and_object(
    sandbox: SandboxHandle, temp_policy: Any, tmp_path: Path
) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        unavailable("unshare (util-linux) is needed to mount a private tmpfs")
    store = tmp_path / "tiny"
    store.mkdir()
    name = temp_policy(
        "integ-disk-full",
        f'engine = "mysql"\nstore = "file://{store}"\ncompression_level = 1\n'
        f'[source]\nnode = "primary"\ndatabases = ["{DB}"]\n',
    )
    namespace = [unshare, "-m"] if os.geteuid() == 0 else [unshare, "-rm"]
    script = f'mount -t tmpfs -o size=16k tmpfs {store} || exit 99; exec "$@"'
    proc = subprocess.run(
        [*namespace, "sh", "-c", script, "sh", sys.executable, "-m", "datatier",
         "--config", str(sandbox.config_path), "backup", "run", name],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    if proc.returncode == 99:
        unavailable(f"cannot mount a tmpfs in a private namespace: {proc.stderr.strip()}")
    assert proc.returncode == 3, proc.stderr
    assert_clean_storage_error(proc.stderr)
    last = failure_line(proc.stderr)
    assert f"file://{store}" in last and "No space left on device" in last, last
    assert f"/{name}/" in last and "/data/" in last, last


def test_a_key_the_store_rejects_is_exit_1_naming_it(
    sandbox: SandboxHandle, temp_policy: Any
) -> None:
    """Keys stay short whatever the names (long segments are shortened with a hash), but a
    store prefix can still push every key past S3's 1,024 bytes: the backup fails, exit 1,
    naming the store, instead of writing objects S3 would refuse."""
    database, table = "库" * 50, "表" * 50
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"CREATE TABLE `{database}`.`{table}` (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO `{database}`.`{table}` VALUES (1)")
    name = temp_policy(
        "integ-long-key",
        f'engine = "mysql"\nstore = "s3://datatier-backups/{"p" * 900}"\n'
        f'[source]\nnode = "primary"\ndatabases = ["{database}"]\n',
    )
    try:
        proc = datatier(sandbox, "backup", "run", name)
        _, err = proc.communicate(timeout=120)
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{database}`")
    assert proc.returncode == 1, err
    assert_clean_storage_error(err)
    last = failure_line(err)
    assert "longer than 1024 bytes" in last and "s3://" in last, last


def test_sigterm_says_truly_what_happened_to_the_objects_already_written(
    sandbox: SandboxHandle, temp_policy: Any
) -> None:
    """Reproduction: SIGTERM printed "nothing half-written was kept" while the objects
    already uploaded stayed in the store until prune's grace period."""
    name = temp_policy(
        "integ-sigterm",  # one table's objects, then a lock
        'engine = "mysql"\nbundle_tables = false\n'
        f'[source]\nnode = "primary"\ndatabases = ["{DB}"]\n',
    )
    store = default_store(sandbox)
    clear_prefix(store, name)
    lock = TableLock(sandbox, "c_third")
    proc = datatier(sandbox, "backup", "run", name)
    try:
        deadline = time.monotonic() + 30
        while not any("/a_first/data-" in o.key for o in store.list_objects(f"{name}/")):
            assert time.monotonic() < deadline, "no object was written before the lock"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        lock.release()
    assert proc.returncode == 143, err
    last = failure_line(err)
    assert last.startswith("datatier: terminated (SIGTERM); "), last
    assert "nothing half-written" not in last
    left = backup_keys(store, name)
    if "were deleted" in last:
        assert left == [], "the message says the objects were deleted"
    else:
        assert "remain" in last and "prune" in last and left, last


def test_sigterm_during_a_restore_says_what_may_be_partly_loaded(sandbox: SandboxHandle) -> None:
    from datatier.backup.service import load_policy, run_backup
    from tests.integration.integrity import loaded_config, policy, waiting_client

    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-restore-term")))
    copy = "integ_term_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {copy}")
        cur.execute(f"CREATE DATABASE {copy}")
        cur.execute(f"CREATE TABLE {copy}.a_first (id INT)")
    blocker = sandbox.connect()  # an open transaction holds a_first's metadata lock
    blocker.cursor().execute("BEGIN")
    blocker.cursor().execute(f"SELECT * FROM {copy}.a_first FOR UPDATE")
    proc = datatier(sandbox, "restore", manifest.backup_id, "--force",
                    "--rename", f"{DB}={copy}", "--jobs", "1")  # fmt: skip
    try:
        waiting_client(sandbox)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        blocker.cursor().execute("COMMIT")
        blocker.close()
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {copy}")
    assert proc.returncode == 143, err
    last = failure_line(err)
    assert last.startswith("datatier: terminated (SIGTERM); the restore was interrupted: "), last
    assert f"`{copy}` on primary" in last and "may be partly loaded" in last
