"""Build the sandbox's local images from Debian packages (``make images``).

The base is ``debootstrap --variant=minbase`` of Debian 12 from the mirror apt already uses,
imported as an image (needs root and debootstrap: ``make podman``). Each kind's image is
its Containerfile on that base, built through the engine's API with the host network (apt
and pip reach their mirrors as the host does). A tag that exists is never rebuilt: tags are
content hashes (see :mod:`datatier.sandbox.images`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

import docker.errors

from datatier.errors import OperationFailed
from datatier.sandbox import images
from datatier.sandbox.images import SPECS, ImageSpec

Report = Callable[[str], None]


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise OperationFailed(f"{what} failed (exit {result.returncode}): {tail}")


def build_base(client: Any, report: Report) -> str:
    """Make the Debian base image unless its tag exists; return its reference."""
    ref = images.base_ref()
    if images.present(client, ref):
        return ref
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not os.access(debootstrap, os.X_OK):
        raise OperationFailed("debootstrap is not installed", hint="`make podman` installs it")
    if os.geteuid() != 0:
        raise OperationFailed("building the Debian base image needs root (debootstrap)")
    mirror = images.debian_mirror()
    started = time.monotonic()
    report(f"debootstrap {images.SUITE} from {mirror} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="datatier-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [debootstrap, "--variant=minbase", images.SUITE, str(rootfs), mirror],
            "debootstrap",
        )
        _run(["chroot", str(rootfs), "apt-get", "clean"], "apt-get clean in the new root")
        for leftover in (rootfs / "var/lib/apt/lists").glob("*_*"):
            leftover.unlink()
        archive = Path(tmp) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."], "tar")
        shutil.rmtree(rootfs)
        repository, tag = ref.rsplit(":", 1)
        try:
            reply = client.api.import_image(
                src=str(archive), repository=repository, tag=tag, changes=['CMD ["/bin/bash"]']
            )
            # podman's API ignores the tag of an import: tag the imported id ourselves.
            ids = re.findall(r"(?:sha256:)?([0-9a-f]{64})", str(reply))
            if not ids:
                raise OperationFailed(f"importing the base image gave no image id: {reply!r}")
            client.images.get(ids[-1]).tag(repository, tag)
            with suppress(docker.errors.ImageNotFound):
                if client.images.get(f"{repository}:latest").id.endswith(ids[-1]):
                    client.images.remove(f"{repository}:latest")
        except docker.errors.DockerException as exc:
            raise OperationFailed(f"importing the base image failed: {exc}") from None
    if not images.present(client, ref):
        raise OperationFailed(f"the base image {ref} is missing after its import")
    report(f"built {ref} in {time.monotonic() - started:.0f} s")
    return ref


def _context(spec: ImageSpec, into: Path) -> None:
    """Write the Containerfile and the files the recipe copies or fetches into ``into``."""
    (into / "Containerfile").write_text(images.containerfile(spec))
    for name, source in spec.files().items():
        if source is not None:
            shutil.copy2(source, into / name)
    for name, requirement in spec.fetch.items():
        # pip on the host downloads the wheels (it knows the host's index, proxy and CA);
        # the host and the image share Debian 12's Python 3.11 wheel tags.
        _run(
            [sys.executable, "-m", "pip", "download", "-q", "-d", str(into / name), requirement],
            f"pip download {requirement}",
        )


def build_image(client: Any, spec: ImageSpec, report: Report) -> str:
    """Build ``spec``'s local image unless its tag exists; return its reference."""
    ref = images.local_ref(spec)
    if ref is None:
        missing = ", ".join(name for name, src in spec.files().items() if src is None)
        raise OperationFailed(
            f"cannot build the {spec.kind} image: {missing} is missing",
            hint="`make sandbox-deps` builds it",
        )
    if images.present(client, ref):
        return ref
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"datatier-image-{spec.kind}-") as tmp:
        _context(spec, Path(tmp))
        try:
            client.images.build(
                path=tmp,
                dockerfile="Containerfile",
                tag=ref,
                network_mode="host",
                rm=True,
                forcerm=True,
                labels={"datatier.sandbox.image": spec.kind},
            )
        except docker.errors.BuildError as exc:
            lines = [str(c.get("stream") or c.get("error") or "").strip() for c in exc.build_log]
            tail = " | ".join([ln for ln in lines if ln][-4:])
            raise OperationFailed(f"building the {spec.kind} image failed: {tail}") from None
        except docker.errors.DockerException as exc:
            raise OperationFailed(f"building the {spec.kind} image failed: {exc}") from None
    report(f"built {ref} in {time.monotonic() - started:.0f} s")
    return ref


def build(client: Any, kinds: Iterable[str] | None = None, report: Report = print) -> list[str]:
    """Build the base and every local image (or those of ``kinds``) that is missing."""
    chosen = list(kinds) if kinds is not None else list(SPECS)
    refs = [build_base(client, report)]
    for kind in chosen:
        refs.append(build_image(client, SPECS[kind], report))
    return refs
