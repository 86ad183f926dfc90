"""The sandbox's container images: which one each kind of server runs, and their recipes.

Per kind, the image is, in order: an override (``--image KIND=REF`` or
``$DATATIER_SANDBOX_IMAGE_<KIND>``); the locally built image, when present; the official
image (pulled if absent). Local images are built from Debian packages by
``datatier sandbox images --build`` (``make images``, see :mod:`imagebuild`) on a Debian
base made with debootstrap, for machines that reach no registry. Each local tag is a
content hash of its recipe (base, Containerfile, copied files), so an unchanged recipe is
never rebuilt and a changed one never reuses a stale image.

To add a kind of server: one :class:`ImageSpec` in :data:`SPECS` (its official image, its
Containerfile from the Debian base, files it copies) under the service's ``kind``. Every
image must run the service's ``program`` (from its PATH) as root with the sandbox
directory mounted at the same path and the host network.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from datatier.errors import OperationFailed, UsageError
from datatier.sandbox.services.mongo import find_mongo_server

REPOSITORY = "localhost/datatier-sandbox"
ENV_PREFIX = "DATATIER_SANDBOX_IMAGE_"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PROJECT_DIR = Path(__file__).resolve().parents[2]
BUILD_HINT = (
    "`make images` builds the sandbox images locally from Debian packages; "
    f"or name one with --image KIND=REF / ${ENV_PREFIX}KIND"
)

APT = (
    "RUN apt-get update \\\n"
    " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\\n"
    " && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
)


# moto in the local and the official s3 image. Pinned, not read from the running
# interpreter: the tag must not change between the venv that built the images and the tox
# env that runs the tests. Keep it at the release the venv runs (setup.cfg: moto>=5.0).
MOTO_VERSION = "5.2.5"


def ferretdb_binary() -> Path | None:
    """The FerretDB binary the local mongo image copies (the one the process backend runs)."""
    found = find_mongo_server(PROJECT_DIR)
    if found and found[0] == "ferretdb" and os.access(found[1], os.X_OK):
        return Path(found[1])
    return None


@dataclass(frozen=True)
class ImageSpec:
    """One kind of server's images. ``files`` gives the build context's extra files
    (name -> source path, None when unavailable: then the kind cannot be built here);
    ``flavour`` is the MongoDB-protocol flavour of the official / the local image."""

    kind: str
    official: Callable[[], str]
    containerfile: Callable[[], str]
    files: Callable[[], Mapping[str, Path | None]] = dict
    flavour: tuple[str, str] = ("", "")
    # Prepared in the build context by the builder before building (name -> what).
    fetch: Mapping[str, str] = field(default_factory=dict)


def _apt(packages: str, entrypoint: str) -> Callable[[], str]:
    return lambda: APT.format(packages=packages) + f'ENTRYPOINT ["{entrypoint}"]\n'


def _moto_containerfile() -> str:
    """moto in a venv, from wheels the host's pip downloaded (see imagebuild)."""
    return APT.format(packages="python3 python3-venv") + (
        "COPY wheels /tmp/wheels\n"
        "RUN python3 -m venv /opt/moto \\\n"
        " && /opt/moto/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels"
        f" 'moto[server]=={MOTO_VERSION}' \\\n"
        " && rm -rf /tmp/wheels && ln -s /opt/moto/bin/moto_server /usr/local/bin/\n"
        'ENTRYPOINT ["moto_server"]\n'
    )


def _ferretdb_containerfile() -> str:
    return 'COPY ferretdb /usr/local/bin/ferretdb\nENTRYPOINT ["ferretdb"]\n'


SPECS: dict[str, ImageSpec] = {
    spec.kind: spec
    for spec in (
        ImageSpec(
            "mariadb",
            official=lambda: "docker.io/library/mariadb:10.11",
            containerfile=_apt("mariadb-server mariadb-client", "mariadbd"),
        ),
        ImageSpec(
            "memcached",
            official=lambda: "docker.io/library/memcached:1.6",
            containerfile=_apt("memcached", "memcached"),
        ),
        ImageSpec(
            "s3",
            official=lambda: f"docker.io/motoserver/moto:{MOTO_VERSION}",
            containerfile=_moto_containerfile,
            fetch={"wheels": f"moto[server]=={MOTO_VERSION}"},
        ),
        ImageSpec(
            # A Java runtime only: the server's build is copied into the sandbox directory.
            "mongo-java-server",
            official=lambda: "docker.io/library/eclipse-temurin:17-jre",
            containerfile=_apt("openjdk-17-jre-headless", "java"),
        ),
        ImageSpec(
            "mongo",
            official=lambda: "docker.io/library/mongo:7.0",
            containerfile=_ferretdb_containerfile,
            files=lambda: {"ferretdb": ferretdb_binary()},
            flavour=("mongod", "ferretdb"),
        ),
    )
}


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt already uses (deb822 or one-line sources), else deb.debian.org."""
    if os.environ.get("DATATIER_DEBIAN_MIRROR"):
        return os.environ["DATATIER_DEBIAN_MIRROR"].rstrip("/")
    texts = []
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*"))]:
        if path.suffix in (".list", ".sources") or path.name == "sources.list":
            try:
                texts.append(path.read_text(errors="replace"))
            except OSError:
                continue
    for text in texts:
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+" + SUITE, text, re.M
        )
        if match:
            return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:12]


def base_ref() -> str:
    """The local Debian base image's tag (a hash of how debootstrap makes it)."""
    return f"{REPOSITORY}/debian:{SUITE}-{_digest('minbase', SUITE, debian_mirror())}"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def containerfile(spec: ImageSpec) -> str:
    return f"FROM {base_ref()}\n" + spec.containerfile()


def local_ref(spec: ImageSpec) -> str | None:
    """The content-addressed tag of the local image; None when a file it copies is missing."""
    parts: list[str] = [base_ref(), containerfile(spec)]
    for name, source in sorted(spec.files().items()):
        if source is None:
            return None
        parts += [name, file_digest(source)]
    parts += [f"{k}={v}" for k, v in sorted(spec.fetch.items())]
    return f"{REPOSITORY}/{spec.kind}:{_digest(*parts)}"


def overrides_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``DATATIER_SANDBOX_IMAGE_<KIND>=REF`` variables as kind -> REF."""
    found = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and value:
            kind = name[len(ENV_PREFIX) :].lower()
            if kind not in SPECS:
                raise UsageError(f"{name}: unknown sandbox image kind {kind!r}")
            found[kind] = value
    return found


@dataclass(frozen=True)
class Resolved:
    """The image one kind of server runs: reference, where it came from, Mongo flavour."""

    kind: str
    ref: str
    source: str  # "override", "local" or "official"
    flavour: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "source": self.source, "flavour": self.flavour}


def present(client: Any, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _flavour(spec: ImageSpec, source: str, ref: str) -> str:
    official, local = spec.flavour
    if source == "override":
        return local if local and local in ref.lower() else official
    return official if source == "official" else local


def resolve(client: Any, kind: str, override: str | None = None, pull: bool = True) -> Resolved:
    """The image for ``kind`` (see module); pulls the official one only when needed.
    OperationFailed when none is present and none can be pulled."""
    spec = SPECS[kind]
    if override:
        source, ref = "override", override
        if not present(client, ref) and pull:
            _pull(client, ref, kind)
        return Resolved(kind, ref, source, _flavour(spec, source, ref))
    local = local_ref(spec)
    if local and present(client, local):
        return Resolved(kind, local, "local", _flavour(spec, "local", local))
    official = spec.official()
    if pull and not present(client, official):
        _pull(client, official, kind, also=local)
    return Resolved(kind, official, "official", _flavour(spec, "official", official))


def _pull(client: Any, ref: str, kind: str, also: str | None = None) -> None:
    try:
        client.images.pull(ref)
        client.images.get(ref)
    except docker.errors.DockerException as exc:
        first = str(exc).splitlines()[0][:160]
        local = f"{also} is not built and " if also else ""
        raise OperationFailed(
            f"no image for the sandbox's {kind}: {local}{ref} cannot be pulled ({first})",
            hint=BUILD_HINT,
        ) from None
