"""A click group that imports a subcommand's module only when that subcommand is used.

Each command module pulls in its services (boto3, pymongo, the MySQL drivers...); importing
all of them cost every invocation about a third of a second, which a cron job, a health
check or a 2-second backup pays each time. ``--help`` still lists every command (it loads
them all to show their one-line help), and a mistyped command gets click's "Did you mean"
suggestion from every command's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """``lazy``: command name -> ``"module:attribute"`` of the command object. A command
    added with :meth:`add_command` (or loaded once) is found in ``commands`` as usual."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in self.lazy:
            return found
        module, _, attribute = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # click suggests from ``commands``, which holds no lazy command before its use
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def all_commands(self) -> dict[str, click.Command]:
        """Every subcommand, loading those not loaded yet."""
        ctx = click.Context(self)
        for name in self.lazy:
            self.get_command(ctx, name)
        return dict(self.commands)
