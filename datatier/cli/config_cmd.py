"""``datatier config``: inspect the effective configuration."""

from __future__ import annotations

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import emit_json
from datatier.typedtoml import dumps_toml, to_plain


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration (file + DATATIER_* environment)."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the effective configuration with every secret shown as ***.

    The first line (a comment in TOML) says which file and environment variables it came from.
    """
    loaded = app.loaded()
    plain = to_plain(loaded.config)
    if as_json:
        emit_json({"source": loaded.source, "config": plain})
        return
    click.echo(f"# source: {loaded.source}")
    click.echo(dumps_toml(plain), nl=False)
