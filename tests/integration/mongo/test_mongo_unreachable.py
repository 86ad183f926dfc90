"""An unreachable MongoDB is one short line: the deployment's URI and the reason, not
pymongo's whole topology description (that goes to the debug log).

Nothing is mocked: the policy's server is a closed port on loopback (what a stopped mongod
looks like) or a socket that accepts connections and never answers (a hung server); the
rest of the job (config, policy, S3 store) is the sandbox's.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.conftest import SandboxHandle

POLICY = "mongo-unreachable"


@pytest.fixture
def policy(use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATATIER_MONGO__SERVER_SELECTION_TIMEOUT", "0.5")
    path = use_sandbox_config.write_policy(
        POLICY, 'engine = "mongo"\n[source]\ndatabases = ["nowhere"]\n'
    )
    yield POLICY
    path.unlink()


@pytest.fixture
def silent(test_port_base: int) -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", test_port_base + 94))
        sock.listen(8)
        yield test_port_base + 94


def closed_port(port: int) -> int:
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
    return port


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error of the run (stderr is no terminal here: one JSON log line)."""
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    errors = [doc for doc in lines if doc["level"] == "error"]
    assert len(errors) == 1, errors
    return str(errors[0]["error"])


@pytest.mark.parametrize("dry_run", [False, True])
def test_refused_names_the_uri_and_the_reason(
    policy: str,
    test_port_base: int,
    dry_run: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"mongodb://127.0.0.1:{closed_port(test_port_base + 93)}/"
    monkeypatch.setenv("DATATIER_MONGO__URI", uri)
    args = ["backup", "run", policy] + (["--dry-run"] if dry_run else [])
    assert main(args) == 3
    error = error_line(capsys)
    assert error == f"cannot reach MongoDB at {uri}: connection refused"


def test_a_hung_server_times_out_in_one_line(
    policy: str, silent: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"mongodb://127.0.0.1:{silent}/"
    monkeypatch.setenv("DATATIER_MONGO__URI", uri)
    assert main(["backup", "run", policy]) == 3
    assert error_line(capsys) == f"cannot reach MongoDB at {uri}: timed out after 0.5 s"


def test_a_seed_list_names_the_node_and_the_debug_log_keeps_the_whole_text(
    policy: str,
    test_port_base: int,
    silent: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused = closed_port(test_port_base + 93)
    uri = f"mongodb://127.0.0.1:{refused},127.0.0.1:{silent}/?replicaSet=rs0"
    monkeypatch.setenv("DATATIER_MONGO__URI", uri)
    assert main(["--debug", "backup", "run", policy]) == 3
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (error,) = [doc["error"] for doc in lines if doc["level"] == "error"]
    assert error == f"cannot reach MongoDB at {uri}: 127.0.0.1:{refused} connection refused"
    (debug,) = [doc for doc in lines if doc["event"] == "mongo.unreachable"]
    assert "Topology Description" in debug["error"] and debug["uri"] == uri
