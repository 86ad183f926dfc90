"""``datatier deploy render``: configuration for the programs around datatier.

Each artifact is rendered from ``backups/*.toml`` and the config: to stdout, or into
``--output-dir`` (``render all --output-dir deploy/`` regenerates the examples).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from datatier.backup.policy import find_policies
from datatier.backup.service import policies_dir
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.config import resolve_path
from datatier.provision.artifacts import RenderContext, render_all, renderers, write_files
from datatier.provision.artifacts.haproxy import HAProxyRenderer
from datatier.provision.artifacts.haproxy_config import HAProxyLayout
from datatier.typedtoml import read_toml


@click.group("deploy")
def deploy_group() -> None:
    """Render configuration that other programs consume."""


@deploy_group.group("render")
def render_group() -> None:
    """Write configs for the consumers of datatier (stdout, --output or --output-dir)."""


def _target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where things live on the deployment target (shared by the artifact commands)."""
    options = [
        click.option(
            "--config-path",
            default="/etc/datatier/datatier.toml",
            show_default=True,
            help="The config file on the target.",
        ),
        click.option(
            "--binary",
            default="/usr/local/bin/datatier",
            show_default=True,
            help="The datatier executable on the target (cron, systemd).",
        ),
        click.option("--user", default="datatier", show_default=True, help="Unix user of runs."),
        click.option(
            "--lock-dir", default="/run/lock", show_default=True, help="flock files (cron)."
        ),
        click.option("--image", default="datatier:latest", show_default=True, help="Image (k8s)."),
        click.option("--namespace", default="datatier", show_default=True, help="k8s namespace."),
        click.option(
            "--secret",
            "secret_name",
            default="datatier-secrets",
            show_default=True,
            help="k8s Secret holding the credentials.",
        ),
        click.option(
            "--metrics-dir",
            default="",
            help="node_exporter textfile directory: jobs write --metrics-file there "
            "(e.g. /var/lib/prometheus/node-exporter). Default: no metrics files.",
        ),
        click.option(
            "--health-port-base",
            type=click.IntRange(1, 65000),
            default=8008,
            show_default=True,
            help="Health port of the first node; each further node gets the next "
            "(haproxy.cfg, the health service and Deployment use the same ports).",
        ),
        click.option(
            "--output-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Write the files here (default: print them).",
        ),
        json_option("Print JSON: the files (name -> text), or the paths written."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _context(
    app: AppContext, kw: dict[str, Any], layout: HAProxyLayout | None = None
) -> RenderContext:
    loaded = app.loaded()
    config = loaded.config
    path = resolve_path(app.config_path, os.environ)
    doc = read_toml(path, "config file") if path else {}
    policies = tuple(find_policies(policies_dir(loaded), config.backup.default_store))
    extra: dict[str, Any] = {"haproxy": layout} if layout is not None else {}
    return RenderContext(
        policies=policies,
        mysql=config.mysql,
        config_path=kw["config_path"],
        binary=kw["binary"],
        user=kw["user"],
        lock_dir=kw["lock_dir"],
        image=kw["image"],
        namespace=kw["namespace"],
        secret_name=kw["secret_name"],
        binlog_policy=config.binlog.policy,
        metrics_dir=kw["metrics_dir"].rstrip("/"),
        health_port_base=kw["health_port_base"],
        config_doc=doc,
        **extra,
    )


def _emit(files: dict[str, str], output_dir: Path | None) -> None:
    """Print the rendered files (each headed by its name when there are several), or write
    them into ``output_dir`` and say so."""
    if output_dir is not None:
        written = [str(path) for path in write_files(files, output_dir)]
        emit(Output({"wrote": written}, "\n".join(f"wrote {path}" for path in written)))
        return
    parts = []
    for i, (rel, text) in enumerate(sorted(files.items())):
        if len(files) > 1:
            parts.append(("\n" if i else "") + f"# ===== {rel} =====\n")
        parts.append(text)
    emit(Output({"files": dict(sorted(files.items()))}, "".join(parts)))


def _artifact(name: str) -> None:
    renderer = renderers()[name]

    @_target_options
    @pass_app
    def command(app: AppContext, /, output_dir: Path | None, **kw: Any) -> None:
        _emit(renderer.render(_context(app, kw)), output_dir)

    command.__doc__ = renderer.description[0].upper() + renderer.description[1:] + "."
    render_group.command(name)(command)


for _name in ("crontab", "systemd", "k8s", "docker", "ansible"):
    _artifact(_name)


@render_group.command("all")
@_target_options
@pass_app
def render_all_cmd(app: AppContext, /, output_dir: Path | None, **kw: Any) -> None:
    """Every artifact: crontab, systemd/, k8s/, haproxy.cfg, Dockerfile, ansible/.

    `datatier --config deploy/example/datatier.toml deploy render all --output-dir deploy/`
    regenerates the examples in the repository.
    """
    _emit(render_all(_context(app, kw)), output_dir)


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
@json_option("Print JSON: the file (name -> text), or the path written.")
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
    ctx = RenderContext(policies=(), mysql=mysql, haproxy=layout)
    text = HAProxyRenderer().render(ctx)["haproxy.cfg"]
    if output is None:
        emit(Output({"files": {"haproxy.cfg": text}}, text))
    else:
        output.write_text(text)
        emit(Output({"wrote": [str(output)]}, f"wrote {output}"))
