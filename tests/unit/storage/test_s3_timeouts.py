"""[s3] connect/read/lookup timeouts: parsed, validated, and the bound a read-only store gets.

No server here (the store that never answers is tests/integration/storage/
test_lookup_timeout.py); building an S3Store opens no connection.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from datatier.backup.stores import for_transfers, s3_settings, store_for
from datatier.cli import main
from datatier.config import load
from datatier.errors import ConfigError, ExitCode, ServiceUnavailable, UsageError
from datatier.storage.s3 import S3Store
from datatier.storage.s3settings import LOOKUP_ATTEMPTS, S3Settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "datatier.toml"
    path.write_text(text)
    return path


def test_timeouts_from_file_and_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[s3]\nconnect_timeout = 2\nread_timeout = 30.5\nlookup_timeout = 9\n")
    s3 = load(str(path), environ={"DATATIER_S3__LOOKUP_TIMEOUT": "4.5"}).config.s3
    assert (s3.connect_timeout, s3.read_timeout, s3.lookup_timeout) == (2.0, 30.5, 4.5)
    settings = s3_settings(load(str(path), environ={}).config)
    assert (settings.connect_timeout, settings.read_timeout) == (2.0, 30.5)


def test_timeout_defaults(tmp_path: Path) -> None:
    s3 = load(str(write(tmp_path, "")), environ={}).config.s3
    assert (s3.connect_timeout, s3.read_timeout, s3.lookup_timeout) == (10.0, 60.0, 60.0)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[s3]\nread_timeout = 0\n", "s3.read_timeout", "below the minimum"),
        ("[s3]\nconnect_timeout = -1\n", "s3.connect_timeout", "below the minimum"),
        ("[s3]\nlookup_timeout = 0.5\n", "s3.lookup_timeout", "below the minimum"),
        ("[s3]\nlookup_timeout = 'soon'\n", "s3.lookup_timeout", "expected number"),
        ("[s3]\nlookup_timeout = inf\n", "s3.lookup_timeout", "finite"),
        ("[s3]\nread_timeout = nan\n", "s3.read_timeout", "finite"),
    ],
)
def test_bad_timeouts_in_the_file(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={})
    assert str(path) in str(info.value) and key in str(info.value)
    assert problem in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("value", "problem"), [("abc", "expected a number"), ("0", "below"), ("inf", "finite")]
)
def test_bad_timeout_in_the_environment(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(str(write(tmp_path, "")), environ={"DATATIER_S3__READ_TIMEOUT": value})
    assert "DATATIER_S3__READ_TIMEOUT" in str(info.value) and problem in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_a_bad_timeout_fails_a_command_with_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[s3]\nlookup_timeout = -3\n")
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["--config", str(path), "backups", "list"]) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "s3.lookup_timeout" in lines[0], lines
    assert "Traceback" not in err.getvalue()


def test_bounded_settings_fit_the_lookup_timeout() -> None:
    full = S3Settings(max_attempts=8, connect_timeout=10.0, read_timeout=60.0)
    bounded = full.bounded(9.0)
    assert bounded.max_attempts == LOOKUP_ATTEMPTS == 3
    assert (bounded.connect_timeout, bounded.read_timeout, bounded.bound) == (3.0, 3.0, 9.0)
    assert bounded.max_attempts * bounded.read_timeout <= 9.0
    # never longer than the settings themselves
    short = S3Settings(max_attempts=1, connect_timeout=0.5, read_timeout=2.0).bounded(60.0)
    assert (short.max_attempts, short.connect_timeout, short.read_timeout) == (1, 0.5, 2.0)
    with pytest.raises(UsageError, match="lookup_timeout"):
        full.bounded(0.0)
    with pytest.raises(UsageError, match="read_timeout"):
        S3Settings(read_timeout=0.0)


def test_only_lookup_stores_are_bounded(tmp_path: Path) -> None:
    path = write(tmp_path, "[s3]\nendpoint_url = 'http://127.0.0.1:1'\nlookup_timeout = 6\n")
    config = load(str(path), environ={}).config
    lookup = store_for("s3://bucket/p", config, lookup=True)
    full = store_for("s3://bucket/p", config)
    assert isinstance(lookup, S3Store) and isinstance(full, S3Store)
    assert (lookup.settings.max_attempts, lookup.settings.read_timeout) == (3, 2.0)
    wire: Any = lookup.client.meta.config  # botocore's Config: its stubs name no options
    assert wire.read_timeout == 2.0 and wire.retries["total_max_attempts"] == 3
    assert (full.settings.max_attempts, full.settings.read_timeout) == (8, 60.0)
    full_wire: Any = full.client.meta.config
    assert full_wire.read_timeout == 60.0


def test_a_lookup_store_reopened_for_transfers_has_full_settings_on_its_session(
    tmp_path: Path,
) -> None:
    """A restore looks its backup up bounded, then downloads with the full settings; the
    second client shares the first's boto3 session (a new one loaded the S3 model again:
    +16 MB of a restore's peak RSS)."""
    path = write(tmp_path, "[s3]\nendpoint_url = 'http://127.0.0.1:1'\nlookup_timeout = 6\n")
    config = load(str(path), environ={}).config
    lookup = store_for("s3://bucket/p", config, lookup=True)
    full = for_transfers(lookup, config)
    assert isinstance(lookup, S3Store) and isinstance(full, S3Store)
    assert (full.bucket, full.prefix, full.url) == ("bucket", "p", lookup.url)
    assert full.session is lookup.session and full.client is not lookup.client
    assert (full.settings.max_attempts, full.settings.read_timeout) == (8, 60.0)
    wire: Any = full.client.meta.config
    assert wire.read_timeout == 60.0 and wire.retries["total_max_attempts"] == 8
    local = store_for(f"file://{tmp_path}/store", config, lookup=True)
    assert for_transfers(local, config) is local


def test_a_read_timeout_names_the_endpoint_and_the_timeout(tmp_path: Path) -> None:
    settings = S3Settings(
        endpoint_url="http://127.0.0.1:27999", access_key_id="AKIAX", secret_access_key="sk-x"
    )
    store = S3Store("bucket", "p", settings.bounded(6.0))
    with pytest.raises(ServiceUnavailable) as info, store._errors("list", None):
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:27999/bucket")
    text = str(info.value)
    assert info.value.exit_code == ExitCode.UNREACHABLE
    assert "127.0.0.1:27999" in text and "s3://bucket/p" in text
    assert "s3.lookup_timeout 6 s" in text and "3 attempt(s) of 2 s" in text
    assert "\n" not in text and "sk-x" not in text
