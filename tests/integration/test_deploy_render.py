"""`deploy render haproxy` for the sandbox topology is a config HAProxy itself accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from datatier.cli import main
from tests.integration.conftest import SandboxHandle, unavailable


def test_rendered_haproxy_config_validates(
    use_sandbox_config: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        unavailable("haproxy is not installed (Debian package haproxy)")
    out = tmp_path / "haproxy.cfg"
    assert main(["deploy", "render", "haproxy", "--max-lag", "3s", "--output", str(out)]) == 0
    text = out.read_text()
    assert "--listen 127.0.0.1:8008=primary" in text and "=replica2" in text
    assert "/replica?lag=3s" in text and "/primary" in text
    checked = subprocess.run([binary, "-c", "-f", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_render_haproxy_rejects_a_topology_without_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "datatier.toml"
    cfg.write_text('[mysql.nodes.only]\nrole = "primary"\n')
    monkeypatch.setenv("DATATIER_CONFIG", str(cfg))
    assert main(["deploy", "render", "haproxy"]) == 2
    assert "at least one replica" in capsys.readouterr().err
