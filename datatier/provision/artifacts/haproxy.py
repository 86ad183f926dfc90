"""``haproxy.cfg`` for the MySQL topology (see
:mod:`datatier.provision.artifacts.haproxy_config`), headed by the ``datatier health serve``
command line it relies on."""

from __future__ import annotations

from datatier.provision.artifacts.base import RenderContext, Renderer
from datatier.provision.artifacts.haproxy_config import render_haproxy

FILE = "haproxy.cfg"


class HAProxyRenderer(Renderer):
    name = "haproxy"
    description = "HAProxy listeners checked by datatier's health endpoint"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        layout = ctx.layout()
        listens = " ".join(
            f"--listen {layout.health_host}:{p}={n}" for n, p in layout.health_ports.items()
        )
        text = (
            "# Rendered by `datatier deploy render haproxy`. Run the health endpoint with:\n"
            f"#   datatier health serve {listens}\n" + render_haproxy(ctx.mysql, layout)
        )
        return {FILE: text}
