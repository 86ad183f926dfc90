"""Sandbox image recipes and choices, and which sandbox a command acts on (no engine)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from datatier.cli import main
from datatier.cli.context import AppContext
from datatier.cli.sandbox_cmd import DEFAULT_DIR, sandbox_dir
from datatier.errors import UsageError
from datatier.sandbox import images


def test_debian_mirror_from_deb822_one_line_or_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATATIER_DEBIAN_MIRROR", raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    assert images.debian_mirror(apt) == images.DEFAULT_MIRROR
    (apt / "sources.list").write_text(
        "deb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
    )
    assert images.debian_mirror(apt) == "http://mirror.example/debian"
    (apt / "sources.list").write_text("")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian\nSuites: bookworm\nComponents: main\n"
    )
    assert images.debian_mirror(apt) == "http://other.example/debian"
    monkeypatch.setenv("DATATIER_DEBIAN_MIRROR", "http://env.example/debian/")
    assert images.debian_mirror(apt) == "http://env.example/debian"


def test_local_tags_are_content_hashes(tmp_path: Path) -> None:
    binary = tmp_path / "ferretdb"
    binary.write_bytes(b"v1")
    spec = dataclasses.replace(images.SPECS["mongo"], files=lambda: {"ferretdb": binary})
    first = images.local_ref(spec)
    assert first is not None and first.startswith(f"{images.REPOSITORY}/mongo:")
    assert images.local_ref(spec) == first
    binary.write_bytes(b"v2")
    assert images.local_ref(spec) != first, "a changed copied file is a new tag"
    other = dataclasses.replace(spec, containerfile=lambda: "RUN true\n")
    assert images.local_ref(other) not in (first, images.local_ref(spec))
    missing = dataclasses.replace(spec, files=lambda: {"ferretdb": None})
    assert images.local_ref(missing) is None
    assert images.containerfile(spec).startswith(f"FROM {images.base_ref()}\n")


def test_image_overrides_from_env_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DATATIER_SANDBOX_IMAGE_MARIADB": "docker.io/library/mariadb:11.4", "OTHER": "x"}
    assert images.overrides_from_env(env) == {"mariadb": "docker.io/library/mariadb:11.4"}
    with pytest.raises(UsageError, match="DATATIER_SANDBOX_IMAGE_POSTGRES"):
        images.overrides_from_env({"DATATIER_SANDBOX_IMAGE_POSTGRES": "postgres:16"})
    assert main(["sandbox", "up", "--dir", "/nonexistent/x", "--image", "mariadb"]) == 2
    assert "expected KIND=IMAGE" in capsys.readouterr().err
    assert main(["sandbox", "up", "--dir", "/nonexistent/x", "--image", "pg=postgres"]) == 2
    assert main(["sandbox", "up", "--dir", "/nonexistent/x", "--backend", "vm"]) == 2
    assert not Path("/nonexistent/x").exists()


def test_the_sandbox_is_found_from_the_config_in_use(tmp_path: Path) -> None:
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    (sandbox / "datatier.toml").write_text("")
    (sandbox / "state.json").write_text("{}")
    prod = tmp_path / "prod" / "datatier.toml"
    prod.parent.mkdir()
    prod.write_text("")
    explicit = tmp_path / "explicit"
    assert sandbox_dir(AppContext(), None) == DEFAULT_DIR
    assert sandbox_dir(AppContext(config_path=str(sandbox / "datatier.toml")), None) == sandbox
    assert sandbox_dir(AppContext(config_path=str(prod)), explicit) == explicit
    with pytest.raises(UsageError, match="not a sandbox's"):
        sandbox_dir(AppContext(config_path=str(prod)), None)
    assert sandbox_dir(AppContext(config_path=str(prod)), None, creating=True) == DEFAULT_DIR
