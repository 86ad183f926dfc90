"""Sandbox image recipes and choices, and which sandbox a command acts on (no engine)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import docker.errors
import pytest

from datatier.cli import main
from datatier.cli.context import AppContext
from datatier.cli.sandbox_cmd import DEFAULT_DIR, sandbox_dir
from datatier.errors import OperationFailed, UsageError
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


class FakeImages:
    """A stand-in for the Docker SDK's ``client.images`` (no registry can be reached on
    these machines, so what a pull does is played here: the only mock in this file)."""

    def __init__(self, present: set[str], pullable: set[str]) -> None:
        self.present, self.pullable = set(present), pullable
        self.pulled: list[str] = []

    def get(self, ref: str) -> object:
        if ref not in self.present:
            raise docker.errors.ImageNotFound(ref)
        return object()

    def pull(self, ref: str) -> None:
        self.pulled.append(ref)
        if ref not in self.pullable:
            raise docker.errors.APIError(f"pull access denied for {ref}")
        self.present.add(ref)


class FakeClient:
    def __init__(self, present: set[str] | None = None, pullable: set[str] | None = None) -> None:
        self.images = FakeImages(present or set(), pullable or set())


def test_image_choice_override_then_local_then_official(tmp_path: Path) -> None:
    spec = images.SPECS["mariadb"]
    local, official = images.local_ref(spec), spec.official()
    assert local is not None
    both = FakeClient({local, official})
    assert images.resolve(both, "mariadb").ref == local
    chosen = images.resolve(FakeClient({official}), "mariadb")
    assert (chosen.ref, chosen.source) == (official, "official")
    pulling = FakeClient(pullable={official})
    assert images.resolve(pulling, "mariadb").source == "official"
    assert pulling.images.pulled == [official]
    override = images.resolve(FakeClient({"my/mariadb:1"}), "mariadb", "my/mariadb:1")
    assert (override.ref, override.source) == ("my/mariadb:1", "override")
    with pytest.raises(OperationFailed) as err:
        images.resolve(FakeClient(), "mariadb")
    message = str(err.value)
    assert local in message and official in message and "make images" in message
    # The MongoDB flavour follows the image: a real mongod officially, FerretDB built here.
    mongo = images.SPECS["mongo"]
    assert images.resolve(FakeClient({mongo.official()}), "mongo").flavour == "mongod"
    ferret = images.resolve(FakeClient({"x/ferretdb:1"}), "mongo", "x/ferretdb:1")
    assert ferret.flavour == "ferretdb"
