"""``datatier cache``: warm, copy and inspect the Memcached query cache."""

from __future__ import annotations

import click


@click.group("cache")
def cache_group() -> None:
    """Warm the Memcached query cache from a replica, copy a warm node, show stats."""
