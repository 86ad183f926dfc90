"""``datatier sandbox``: a local topology of real servers for the demo, tests and development."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option, table
from datatier.errors import UsageError
from datatier.sandbox.layout import DEFAULT_PORT_BASE, SERVICE_NAMES

if TYPE_CHECKING:
    from datatier.sandbox.supervisor import Sandbox

DEFAULT_DIR = Path(".sandbox")
BACKENDS = ("processes", "containers")
DIR_OPTION = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="DATATIER_SANDBOX_DIR",
    help="Sandbox directory (data, logs, state, datatier.toml). Default: the directory of "
    "the config in use (--config / $DATATIER_CONFIG) when it is a sandbox's, else .sandbox.",
)
COLUMNS = ("name", "kind", "host", "port", "pid", "state", "io_thread", "sql_thread")


def sandbox_dir(app: AppContext, root: Path | None, *, creating: bool = False) -> Path:
    """Which sandbox a command acts on: ``--dir``, else the one whose ``datatier.toml`` is
    the config in use, else ``.sandbox``. A config in use that no sandbox wrote is a usage
    error for commands that act on a running sandbox; ``up`` then starts ``.sandbox``."""
    if root is not None:
        return root
    if app.config_path:
        config_dir = Path(app.config_path).resolve().parent
        if (config_dir / "state.json").is_file():
            return config_dir
        if not creating:
            raise UsageError(
                f"the config in use ({app.config_path}) is not a sandbox's: "
                f"no state.json in {config_dir}",
                hint="pass --dir, or point --config/DATATIER_CONFIG at DIR/datatier.toml",
            )
    return DEFAULT_DIR


def _images(pairs: tuple[str, ...]) -> dict[str, str]:
    from datatier.sandbox.images import SPECS, overrides_from_env

    found = overrides_from_env(os.environ)
    for pair in pairs:
        kind, sep, ref = pair.partition("=")
        if not sep or not ref or kind not in SPECS:
            raise UsageError(
                f"--image {pair!r}: expected KIND=IMAGE with KIND one of {', '.join(SPECS)}"
            )
        found[kind] = ref
    return found


def _services(sandbox: Sandbox, rows: list[dict[str, Any]], tail: str = "") -> Output:
    """The services' rows as a table (``tail`` after it), or as the JSON object
    ``{"dir", "backend", "services", "running", "ok"}`` (ok: every service runs)."""
    running = sum(r["state"] == "running" for r in rows)
    doc = {
        "dir": str(sandbox.root),
        "backend": sandbox.backend.name,
        "services": rows,
        "running": running,
        "ok": running == len(rows),
    }
    return Output(
        doc, lambda: table(rows, COLUMNS) + (f"\n{tail}" if tail else ""), legacy_list="services"
    )


@click.group("sandbox")
def sandbox_group() -> None:
    """Run MariaDB (primary + 2 GTID replicas), memcached, S3 and two MongoDB servers locally."""


@sandbox_group.command("up")
@DIR_OPTION
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65525),
    default=None,
    help=f"First port; services use BASE..BASE+8. Default: as recorded, else {DEFAULT_PORT_BASE}.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    envvar="DATATIER_SANDBOX_BACKEND",
    help="Local processes, or containers (testcontainers on podman or Docker, host network). "
    "Default: as recorded, else processes.",
)
@click.option(
    "--image",
    "image_pairs",
    multiple=True,
    metavar="KIND=IMAGE",
    help="Container image for a kind of server (mariadb, memcached, s3, mongo); repeatable. "
    "Default: $DATATIER_SANDBOX_IMAGE_<KIND>, else the local build, else the official image.",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(SERVICE_NAMES),
    help="Do not start this service (repeatable).",
)
@json_option("Print the status as JSON.")
@pass_app
def up(
    app: AppContext,
    root: Path | None,
    port_base: int | None,
    backend: str | None,
    image_pairs: tuple[str, ...],
    skip: tuple[str, ...],
) -> None:
    """Start every sandbox server that is not running and write DIR/datatier.toml.

    Idempotent: running servers are left alone. A failed start stops what it started (and
    removes DIR if it created it). Use the written config with
    `datatier --config DIR/datatier.toml ...`.
    """
    from datatier.sandbox.supervisor import Sandbox  # lazy: pymongo & co. only when needed

    started = time.monotonic()
    sandbox = Sandbox(
        sandbox_dir(app, root, creating=True), port_base, backend, _images(image_pairs)
    )
    rows = sandbox.up(skip)
    emit(
        _services(
            sandbox,
            rows,
            f"sandbox up ({sandbox.backend.name}) in {time.monotonic() - started:.1f} s; "
            f"config: {sandbox.root / 'datatier.toml'}",
        )
    )


@sandbox_group.command("status")
@DIR_OPTION
@json_option("Print the services as JSON.")
@pass_app
def status(app: AppContext, root: Path | None) -> None:
    """Show each service: name, kind, host, port, pid, state; replicas' IO/SQL threads.

    Exits 1 when any service is not running.
    """
    from datatier.sandbox.supervisor import Sandbox

    sandbox = Sandbox(sandbox_dir(app, root))
    rows = sandbox.status()
    emit(_services(sandbox, rows))
    if any(r["state"] != "running" for r in rows):
        click.get_current_context().exit(1)


@sandbox_group.command("down")
@DIR_OPTION
@click.option("--purge", is_flag=True, help="Also delete the sandbox directory (all data).")
@json_option()
@pass_app
def down(app: AppContext, root: Path | None, purge: bool) -> None:
    """Stop exactly what `up` started (processes by pid and command line, or this sandbox's
    containers); free their ports."""
    from datatier.sandbox.supervisor import Sandbox

    sandbox = Sandbox(sandbox_dir(app, root))
    stopped = sandbox.down(purge=purge)
    text = f"stopped ({sandbox.root}): {', '.join(stopped) if stopped else 'nothing was running'}"
    emit(Output({"dir": str(sandbox.root), "stopped": stopped, "purged": purge}, text))


@sandbox_group.command("images")
@click.option("--build", is_flag=True, help="Build the local images that are missing.")
@json_option("Print JSON.")
def images_cmd(build: bool) -> None:
    """The container backend's image for each kind of server, and where it comes from.

    --build makes the local ones from Debian packages (debootstrap base, needs root), each
    tagged with a hash of its recipe: an image whose tag exists is not rebuilt.
    """
    from datatier.sandbox import imagebuild, images
    from datatier.sandbox.engine import Engine

    engine = Engine()
    try:
        if build:
            imagebuild.build(engine.client, report=lambda line: click.echo(line, err=True))
        overrides = images.overrides_from_env(os.environ)
        rows = []
        for kind, spec in images.SPECS.items():
            chosen = images.resolve(engine.client, kind, overrides.get(kind), pull=False)
            rows.append(
                {
                    "kind": kind,
                    "image": chosen.ref,
                    "source": chosen.source,
                    "present": images.present(engine.client, chosen.ref),
                    "local": images.local_ref(spec),
                    "official": spec.official(),
                }
            )
    finally:
        engine.close()
    doc = {"images": rows, "missing": [r["kind"] for r in rows if not r["present"]]}
    emit(
        Output(
            doc, lambda: table(rows, ("kind", "image", "source", "present")), legacy_list="images"
        )
    )
