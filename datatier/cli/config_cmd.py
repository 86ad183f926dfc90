"""``datatier config``: inspect the effective configuration."""

from __future__ import annotations

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.typedtoml import dumps_toml, to_plain


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration (file + DATATIER_* environment)."""


@config_group.command("show")
@json_option("Print JSON instead of TOML.")
@pass_app
def show(app: AppContext) -> None:
    """Print the effective configuration with every secret shown as ***.

    The first line (a comment in TOML) says which file and environment variables it came from.
    """
    loaded = app.loaded()
    plain = to_plain(loaded.config)
    emit(
        Output(
            {"source": loaded.source, "config": plain},
            lambda: f"# source: {loaded.source}\n" + dumps_toml(plain),
        )
    )
