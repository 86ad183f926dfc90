"""``datatier provision``: create and check what the data tier depends on."""

from __future__ import annotations

import click


@click.group("provision")
def provision_group() -> None:
    """Plan and apply buckets, lifecycle rules, schemas and new replicas (plan by default)."""
