"""``datatier sandbox``: a local topology of real servers for the demo, tests and development."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from datatier.cli.render import emit_json, table
from datatier.sandbox.layout import DEFAULT_PORT_BASE, SERVICE_NAMES

DIR_OPTION = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".sandbox"),
    show_default=True,
    envvar="DATATIER_SANDBOX_DIR",
    help="Sandbox directory (data, logs, state, datatier.toml).",
)
COLUMNS = ("name", "kind", "host", "port", "pid", "state", "io_thread", "sql_thread")


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(rows)
    else:
        click.echo(table(rows, COLUMNS))


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
    "--skip",
    multiple=True,
    type=click.Choice(SERVICE_NAMES),
    help="Do not start this service (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def up(root: Path, port_base: int | None, skip: tuple[str, ...], as_json: bool) -> None:
    """Start every sandbox server that is not running and write DIR/datatier.toml.

    Idempotent: running servers are left alone. Use the written config with
    `datatier --config DIR/datatier.toml ...`.
    """
    from datatier.sandbox.supervisor import Sandbox  # lazy: pymongo & co. only when needed

    started = time.monotonic()
    sandbox = Sandbox(root, port_base)
    rows = sandbox.up(skip)
    _print(rows, as_json)
    if not as_json:
        click.echo(
            f"sandbox up in {time.monotonic() - started:.1f} s; "
            f"config: {sandbox.root / 'datatier.toml'}"
        )


@sandbox_group.command("status")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of services.")
@click.pass_context
def status(ctx: click.Context, root: Path, as_json: bool) -> None:
    """Show each service: name, kind, host, port, pid, state; replicas' IO/SQL threads.

    Exits 1 when any service is not running.
    """
    from datatier.sandbox.supervisor import Sandbox

    rows = Sandbox(root).status()
    _print(rows, as_json)
    if any(r["state"] != "running" for r in rows):
        ctx.exit(1)


@sandbox_group.command("down")
@DIR_OPTION
@click.option("--purge", is_flag=True, help="Also delete the sandbox directory (all data).")
def down(root: Path, purge: bool) -> None:
    """Stop exactly the processes `up` started (by pid and command line); free their ports."""
    from datatier.sandbox.supervisor import Sandbox

    stopped = Sandbox(root).down(purge=purge)
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
