"""A Dockerfile for the tool: Debian's MariaDB client tools (mariadb-dump, mariadb) and
zstd, datatier installed from the source tree, an unprivileged user, ``datatier`` as the
entrypoint."""

from __future__ import annotations

from datatier.provision.artifacts.base import RenderContext, Renderer

FILE = "Dockerfile"
COPIED = ("setup.cfg", "pyproject.toml", "README.md", "datatier")


class DockerRenderer(Renderer):
    name = "docker"
    description = "Dockerfile for the datatier image (build from the repository root)"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        config_dir = ctx.config_path.rsplit("/", 1)[0] or "/"
        text = "\n".join(
            [
                "# Rendered by `datatier deploy render docker`. Build from the repository root:",
                f"#   docker build -f deploy/Dockerfile -t {ctx.image} .",
                "FROM python:3.11-slim-bookworm",
                "RUN apt-get update \\",
                " && apt-get install -y --no-install-recommends mariadb-client zstd \\",
                " && rm -rf /var/lib/apt/lists/*",
                "WORKDIR /src",
                *(f"COPY {src} ./{src}" for src in COPIED),
                "RUN pip install --no-cache-dir . \\",
                f" && useradd --system --uid 10001 --no-create-home {ctx.user}",
                f"ENV DATATIER_CONFIG={ctx.config_path}",
                "USER 10001",
                f"WORKDIR {config_dir}",
                'ENTRYPOINT ["datatier"]',
                'CMD ["--help"]',
                "",
            ]
        )
        return {FILE: text}
