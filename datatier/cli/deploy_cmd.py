"""``datatier deploy render``: configuration for the programs around datatier."""

from __future__ import annotations

from pathlib import Path

import click

from datatier.cli.context import AppContext, pass_app
from datatier.replication.haproxy import HAProxyLayout, render_haproxy


@click.group("deploy")
def deploy_group() -> None:
    """Render configuration that other programs consume."""


@deploy_group.group("render")
def render_group() -> None:
    """Write a config for a consumer of datatier (stdout, or --output FILE)."""


@render_group.command("haproxy")
@click.option(
    "--write-bind", default="0.0.0.0:3306", show_default=True, help="Listener for writes."
)
@click.option("--read-bind", default="0.0.0.0:3307", show_default=True, help="Listener for reads.")
@click.option(
    "--health-host", default="127.0.0.1", show_default=True, help="Where `health serve` runs."
)
@click.option(
    "--health-port-base",
    type=click.IntRange(1, 65000),
    default=8008,
    show_default=True,
    help="Health port of the first node; each further node (config order) gets the next.",
)
@click.option("--max-lag", default="2s", show_default=True, help="Read check: /replica?lag=...")
@click.option("--inter-ms", type=click.IntRange(10), default=1000, show_default=True)
@click.option("--fall", type=click.IntRange(1), default=2, show_default=True)
@click.option("--rise", type=click.IntRange(1), default=3, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@pass_app
def haproxy(
    app: AppContext,
    write_bind: str,
    read_bind: str,
    health_host: str,
    health_port_base: int,
    max_lag: str,
    inter_ms: int,
    fall: int,
    rise: int,
    output: Path | None,
) -> None:
    """haproxy.cfg: writes checked with /primary, reads with /replica?lag=MAX_LAG.

    The first lines say how to run the matching endpoint: one `datatier health serve`
    with one --listen HOST:PORT=NODE per node, because HAProxy sends the same check URI to
    every server of a backend. Validate with `haproxy -c -f FILE`.
    """
    mysql = app.loaded().config.mysql
    ports = {node: health_port_base + i for i, node in enumerate(mysql.nodes)}
    layout = HAProxyLayout(
        write_bind=write_bind,
        read_bind=read_bind,
        health_ports=ports,
        health_host=health_host,
        max_lag=max_lag,
        inter_ms=inter_ms,
        fall=fall,
        rise=rise,
    )
    listens = " ".join(f"--listen {health_host}:{p}={n}" for n, p in ports.items())
    text = (
        "# Rendered by `datatier deploy render haproxy`. Run the health endpoint with:\n"
        f"#   datatier health serve {listens}\n" + render_haproxy(mysql, layout)
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")
