"""The container backend's own promises: containers on the host network only, an idempotent
``up``, and a ``down`` that leaves no container, network or engine API process behind.

Runs in the containers pass of the suite (``DATATIER_TEST_BACKEND=containers``); the
process pass deselects it (see conftest). Its own sandbox on ``test_port_base + 30``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.cli import main
from datatier.sandbox import images, process
from datatier.sandbox.backends.containers import LABEL
from datatier.sandbox.engine import Engine
from datatier.sandbox.supervisor import Sandbox

pytestmark = pytest.mark.containers


@pytest.fixture
def engine() -> Iterator[Any]:
    opened = Engine()
    yield opened.client
    opened.close()


def api_processes() -> set[int]:
    """Pids of podman API services datatier started (their sockets are its temp dirs)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            argv = process.cmdline(int(proc.name)) or []
            if argv[1:3] == ["system", "service"] and "/datatier-engine-" in argv[-1]:
                found.add(int(proc.name))
    return found


def ours(client: Any, root: Path) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{LABEL}={root.resolve()}"}))


def test_up_is_idempotent_host_networked_and_down_leaves_nothing(
    tmp_path: Path, test_port_base: int, engine: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    base = test_port_base + 30
    root = tmp_path / "ct"
    networks = {n.name for n in engine.networks.list()}
    api_before = api_processes()
    rows = Sandbox(root, base, "containers").up()
    try:
        assert all(r["state"] == "running" for r in rows)
        # every service port (FerretDB's debug port, +6, is not a service's main port)
        assert {r["port"] for r in rows} == {base + o for o in (0, 1, 2, 3, 4, 5, 7, 8)}
        containers = ours(engine, root)
        assert sorted(c.labels[f"{LABEL}.service"] for c in containers) == sorted(
            r["name"] for r in rows
        ), "one container per service, no init container left over"
        for container in containers:
            host_config = container.attrs["HostConfig"]
            assert host_config["NetworkMode"] == "host", container.name
            assert not host_config.get("PortBindings"), "nothing published on any interface"
            assert container.attrs["Config"]["Image"] in {
                images.resolve(engine, kind, pull=False).ref for kind in images.SPECS
            }
        assert {n.name for n in engine.networks.list()} == networks, "no network created"
        assert api_processes() <= api_before, "`up` left its engine API process running"

        # Idempotent: a second `up` (a new supervisor, as from the CLI) changes nothing.
        ids = {c.id for c in containers}
        again = Sandbox(root).up()
        assert {r["name"]: r["pid"] for r in again} == {r["name"]: r["pid"] for r in rows}
        assert {c.id for c in ours(engine, root)} == ids

        # Same status shape as the process backend, plus the container and image.
        capsys.readouterr()
        assert main(["sandbox", "status", "--dir", str(root), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        status = doc["services"]
        assert doc["backend"] == "containers" and doc["ok"] is True
        assert doc["running"] == len(status) == len(rows)
        for row in status:
            assert {"name", "kind", "host", "port", "pid", "state", "container", "image"} <= set(
                row
            )
            assert row["host"] == "127.0.0.1" and row["state"] == "running"
    finally:
        stopped = Sandbox(root).down()
    assert sorted(stopped) == sorted(r["name"] for r in rows)
    assert ours(engine, root) == []
    assert {n.name for n in engine.networks.list()} == networks
    assert api_processes() <= api_before
    for offset in range(9):
        assert process.port_free("127.0.0.1", base + offset), f"port {base + offset} still bound"


def test_a_backend_switch_is_refused_while_the_sandbox_runs(
    sandbox: Any, test_backend: str
) -> None:
    other = "processes" if test_backend == "containers" else "containers"
    with pytest.raises(Exception, match=f"runs on the {test_backend} backend"):
        Sandbox(sandbox.root, None, other)


def test_images_are_content_addressed(engine: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A local image's tag is a hash of its recipe; `sandbox images --build` finds every
    tag present and builds nothing (make images ran before the suite)."""
    for kind, spec in images.SPECS.items():
        ref = images.local_ref(spec)
        assert ref is not None and ref.startswith(f"{images.REPOSITORY}/{kind}:")
        assert images.local_ref(spec) == ref, "the same recipe gives the same tag"
    assert images.present(engine, images.base_ref())
    capsys.readouterr()
    assert main(["sandbox", "images", "--build", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in doc["images"]] == list(images.SPECS)
    assert doc["missing"] == [] and all(r["present"] for r in doc["images"])
