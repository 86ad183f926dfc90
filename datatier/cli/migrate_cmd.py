"""``datatier migrate``: the MySQL -> RethinkDB move, dry-run first."""

from __future__ import annotations

import click


@click.group("migrate")
def migrate_group() -> None:
    """Plan, rehearse and verify moving MySQL tables to RethinkDB (nothing written unless
    --execute)."""
