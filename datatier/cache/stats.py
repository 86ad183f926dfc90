"""``cache stats``: per-node hit ratio, evictions, items and memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from datatier.cache.protocol import MemcachedNode, NodeUnavailable


@dataclass(frozen=True)
class NodeStats:
    """One node's figures; ``error`` set (and the rest zero) when it cannot be reached."""

    address: str
    up: bool
    version: str = ""
    uptime: int = 0
    items: int = 0
    bytes: int = 0
    limit_bytes: int = 0
    get_hits: int = 0
    get_misses: int = 0
    evictions: int = 0
    connections: int = 0
    error: str | None = None

    @property
    def hit_ratio(self) -> float | None:
        gets = self.get_hits + self.get_misses
        return self.get_hits / gets if gets else None

    @property
    def memory_used(self) -> float | None:
        return self.bytes / self.limit_bytes if self.limit_bytes else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["hit_ratio"] = self.hit_ratio
        doc["memory_used"] = self.memory_used
        return doc


def node_stats(address: str, timeout: float = 2.0) -> NodeStats:
    """The figures of one node (never raises for an unreachable node)."""
    try:
        with MemcachedNode(address, timeout=timeout) as node:
            raw = node.stats()
    except NodeUnavailable as exc:
        return NodeStats(address, up=False, error=str(exc))

    def num(name: str) -> int:
        try:
            return int(raw.get(name, "0"))
        except ValueError:
            return 0

    return NodeStats(
        address,
        up=True,
        version=raw.get("version", ""),
        uptime=num("uptime"),
        items=num("curr_items"),
        bytes=num("bytes"),
        limit_bytes=num("limit_maxbytes"),
        get_hits=num("get_hits"),
        get_misses=num("get_misses"),
        evictions=num("evictions"),
        connections=num("curr_connections"),
    )
