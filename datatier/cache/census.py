"""How many keys a node holds, to check the LRU crawler's ``metadump`` against.

``lru_crawler metadump`` is a live walk, not a snapshot (memcached PR #193): an item the LRU
maintainer relinks while the crawl runs can be listed twice or not at all, and since
memcached 1.5.6 each LRU's walk stops after as many items as it held when the walk started
(PR #339), so a duplicate can push a key out. A copy therefore counts the node's items before
and after each pass and compares them with the entries the dump listed.

Contract: :func:`take_census` first lets the crawler free expired items (they stay in
``curr_items`` until then, while ``metadump`` skips them). :func:`shortfall` gives how many
keys a pass did not list, at least; it is *certain* only when the node was quiet during the
pass (no store, eviction, delete or flush: the key set then only shrank by expiry, which the
second census removed), otherwise it is an estimate (``min(before, after) - listed``; keys set
during the pass are not counted as missed).
"""

from __future__ import annotations

from dataclasses import dataclass

from datatier.cache.protocol import MemcachedNode

QUIET_COUNTERS = ("total_items", "cmd_set", "evictions", "delete_hits", "cmd_flush")


@dataclass(frozen=True)
class Census:
    """A node's live item count and the counters that move when its key set changes."""

    items: int
    counters: tuple[int, ...]


def take_census(node: MemcachedNode) -> Census:
    """Free the node's expired items, then read ``curr_items`` and :data:`QUIET_COUNTERS`."""
    node.reclaim_expired()
    stats = node.stats()
    return Census(
        int(stats.get("curr_items", "0")),
        tuple(int(stats.get(name, "0")) for name in QUIET_COUNTERS),
    )


def shortfall(before: Census, after: Census, listed: int) -> tuple[int, bool]:
    """(keys the pass did not list, at least; whether that is certain). ``listed`` counts
    every dumped entry, duplicates included, so the figure is a lower bound."""
    quiet = before.counters == after.counters
    live = after.items if quiet else min(before.items, after.items)
    missing = max(0, live - listed)
    return missing, quiet and missing > 0
