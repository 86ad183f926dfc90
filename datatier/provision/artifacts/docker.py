"""A multi-stage Dockerfile for the tool, on any Debian 12 base (``BASE_IMAGE`` build arg).

The builder stage has the compiler and the MariaDB C client headers (mysqlclient has no
manylinux wheel) and installs datatier into a virtualenv at ``/opt/datatier``; the runtime
stage copies only that virtualenv onto the base with what backups and restores run:
Debian's MariaDB client tools (``mariadb-dump``, ``mariadb``, ``mariadb-binlog``), the C
client library, zstd and CA certificates. The base may bring Python (``python:3.11-slim-
bookworm``, the default) or not (a plain Debian 12 image: Debian's python3 is installed).
It runs as uid/gid ``UID`` (non-root, numeric so Kubernetes can check ``runAsNonRoot``),
``datatier`` is the entrypoint and on PATH, and ``DATATIER_CONFIG`` names the config file
where the Kubernetes CronJob mounts it.
"""

from __future__ import annotations

from datatier.provision.artifacts.base import RenderContext, Renderer

FILE = "Dockerfile"
COPIED = ("setup.cfg", "pyproject.toml", "README.md", "datatier")
DEFAULT_BASE = "python:3.11-slim-bookworm"
VENV = "/opt/datatier"
UID = 10001
BUILD_PACKAGES = "build-essential pkg-config libmariadb-dev"
RUNTIME_PACKAGES = "mariadb-client libmariadb3 zstd ca-certificates"


def _apt(packages: str, python: str) -> list[str]:
    """One RUN: apt packages, plus Debian's Python when the base has none."""
    return [
        "RUN apt-get update \\",
        " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\",
        f"      {packages} \\",
        " && if ! command -v python3 >/dev/null; then \\",
        "      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        f"{python}; \\",
        "    fi \\",
        " && rm -rf /var/lib/apt/lists/*",
    ]


class DockerRenderer(Renderer):
    name = "docker"
    description = "multi-stage Dockerfile for the datatier image (build from the repository root)"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        config_dir = ctx.config_path.rsplit("/", 1)[0] or "/"
        text = "\n".join(
            [
                "# Rendered by `datatier deploy render docker`. Build from the repository root:",
                f"#   docker build -f deploy/Dockerfile -t {ctx.image} .",
                "# (or podman build). Any Debian 12 base works, with or without Python:",
                "#   --build-arg BASE_IMAGE=debian:bookworm-slim",
                f"ARG BASE_IMAGE={DEFAULT_BASE}",
                "",
                "# Builder: compiler and MariaDB client headers (mysqlclient has no manylinux",
                f"# wheel); datatier and its dependencies in a virtualenv at {VENV}.",
                "FROM ${BASE_IMAGE} AS builder",
                *_apt(BUILD_PACKAGES, "python3 python3-venv python3-dev"),
                "WORKDIR /src",
                *(f"COPY {src} ./{src}" for src in COPIED),
                f"RUN python3 -m venv {VENV} \\",
                f" && {VENV}/bin/pip install --no-cache-dir . \\",
                f" && {VENV}/bin/datatier --version",
                "",
                "# Runtime: the virtualenv and the client tools backups and restores run.",
                "FROM ${BASE_IMAGE}",
                *_apt(RUNTIME_PACKAGES, "python3"),
                f"RUN groupadd --system --gid {UID} {ctx.user} \\",
                f" && useradd --system --uid {UID} --gid {UID} --no-create-home \\",
                f"      --home-dir /nonexistent --shell /usr/sbin/nologin {ctx.user}",
                f"COPY --from=builder {VENV} {VENV}",
                f"ENV PATH={VENV}/bin:$PATH \\",
                "    PYTHONUNBUFFERED=1 \\",
                f"    DATATIER_CONFIG={ctx.config_path}",
                f"USER {UID}:{UID}",
                f"WORKDIR {config_dir}",
                'ENTRYPOINT ["datatier"]',
                'CMD ["--help"]',
                "",
            ]
        )
        return {FILE: text}
