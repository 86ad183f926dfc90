"""Writes batches of items to one or more memcached nodes, riding out a node restart.

Contract:
- keys go to nodes as pymemcache's ``HashClient`` places them (rendezvous hashing over
  ``"host:port"``), so an app using that client with the same server list reads them;
- ``add`` when not overwriting (a present key is left alone and counted as present), ``set``
  with ``overwrite``;
- on a network error, ``on_error="stop"`` raises :class:`NodeUnavailable` at once;
  ``"continue"`` reconnects and retries the same batch for up to ``retry_for`` seconds
  before raising. A node whose pid or uptime shows it restarted is recorded in
  :attr:`restarts` (whatever it held before is gone), and the keys this writer had stored
  on it before the restart are counted in :attr:`lost` (per node): they are not re-written.
  :class:`RestartLosses` is the report part that carries these to a warm's or copy's report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pymemcache.client.rendezvous import RendezvousHash

from datatier import log
from datatier.cache.protocol import MemcachedNode, NodeUnavailable, StoreBatch
from datatier.ratelimit import RateLimit

EVENTS = log.get_logger("cache")

OnError = Literal["continue", "stop"]
"""What a write does when memcached goes away: retry for a while and go on, or stop."""


@dataclass
class WriteOutcome:
    """Counts for one batch."""

    stored: int = 0
    present: int = 0
    too_large: int = 0
    failed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RestartLosses:
    """What riding out memcached failures cost a run: the report fields a warm and a copy
    share (filled from their writer by :meth:`record`)."""

    restarts: list[str] = field(default_factory=list)
    keys_lost: int = 0  # written (and counted as written), then wiped by a restart
    keys_lost_by_node: dict[str, int] = field(default_factory=dict)
    memcached_errors: int = 0

    def record(self, writer: CacheWriter) -> None:
        """Take the restarts, lost keys and errors ``writer`` has seen so far."""
        self.restarts = list(writer.restarts)
        self.keys_lost_by_node = dict(writer.lost)
        self.keys_lost = sum(writer.lost.values())
        self.memcached_errors = writer.errors_seen


@dataclass(frozen=True)
class NodeIdentity:
    pid: str
    uptime: int


class CacheWriter:
    """Routes, rate-limits and stores batches (see module docstring)."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        timeout: float = 2.0,
        on_error: OnError = "continue",
        retry_for: float = 10.0,
        rate: RateLimit | None = None,
    ) -> None:
        if not servers:
            raise ValueError("no memcached servers")
        self.nodes = {s: MemcachedNode(s, timeout=timeout) for s in servers}
        self.hasher = RendezvousHash(list(servers))
        self.only = servers[0] if len(servers) == 1 else None
        self.on_error = on_error
        self.retry_for = retry_for
        self.rate = rate or RateLimit(None)
        self.identity: dict[str, NodeIdentity] = {}
        self.restarts: list[str] = []
        self.stored: dict[str, int] = {}  # keys stored per node since it (re)started
        self.lost: dict[str, int] = {}  # keys stored per node before a restart wiped them
        self.errors_seen = 0
        self.limits: dict[str, int] = {}

    def open(self) -> None:
        """Connect to every node and learn its item size limit (NodeUnavailable if one is
        unreachable: nothing has been written yet)."""
        for address, node in self.nodes.items():
            self.identity[address] = self._identity(node)
            self.limits[address] = node.item_size_max()

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()

    @staticmethod
    def _identity(node: MemcachedNode) -> NodeIdentity:
        stats = node.stats()
        return NodeIdentity(stats.get("pid", ""), int(stats.get("uptime", "0")))

    def node_for(self, key: bytes) -> str:
        if self.only is not None:
            return self.only
        return str(self.hasher.get_node(key.decode("utf-8", "surrogateescape")))

    def uniform_limit(self) -> int | None:
        """The item size limit when every key goes to the same node (else None)."""
        return self.limits.get(self.only, 1 << 20) if self.only is not None else None

    def fits(self, key: bytes, size: int) -> bool:
        """Whether a value of ``size`` bytes fits the item limit of the key's node (the item
        header and key count against the limit too)."""
        limit = self.limits.get(self.node_for(key), 1 << 20)
        return size + len(key) + 64 <= limit

    def write(self, batch: StoreBatch, overwrite: bool) -> WriteOutcome:
        """Store ``batch`` (valid keys, values that fit); counts per answer."""
        outcome = WriteOutcome()
        by_node: dict[str, StoreBatch] = {}
        if self.only is not None:
            by_node[self.only] = batch
        else:
            indexes: dict[str, list[int]] = {}
            for i, key in enumerate(batch.keys):
                indexes.setdefault(self.node_for(key), []).append(i)
            by_node = {address: batch.take(picked) for address, picked in indexes.items()}
        self.rate.take(len(batch))
        for address, part in by_node.items():
            answers = self._store(address, part, "set" if overwrite else "add")
            self.stored[address] = self.stored.get(address, 0) + answers.count(b"STORED")
            if answers.count(b"STORED") == len(answers):  # the common case, counted at C speed
                outcome.stored += len(answers)
                outcome.bytes += sum(map(len, part.values))
                continue
            for value, answer in zip(part.values, answers, strict=True):
                if answer == b"STORED":
                    outcome.stored += 1
                    outcome.bytes += len(value)
                elif answer == b"NOT_STORED":
                    outcome.present += 1
                elif b"too large" in answer:
                    outcome.too_large += 1
                else:
                    outcome.failed += 1
                    if len(outcome.errors) < 3:
                        outcome.errors.append(f"{address}: {answer.decode(errors='replace')}")
        return outcome

    def _store(self, address: str, batch: StoreBatch, command: str) -> list[bytes]:
        node = self.nodes[address]
        deadline: float | None = None
        while True:
            try:
                answers = node.store_batch(batch, command)
            except NodeUnavailable as exc:
                self.errors_seen += 1
                if self.on_error == "stop":
                    raise
                now = time.monotonic()
                deadline = deadline or now + self.retry_for
                if now >= deadline:
                    raise
                EVENTS.warning("memcached_retry", node=address, error=str(exc))
                time.sleep(min(0.2, max(deadline - now, 0.0)))
                continue
            if deadline is not None:
                self._note_restart(address, node)
            return answers

    def _note_restart(self, address: str, node: MemcachedNode) -> None:
        try:
            now = self._identity(node)
        except NodeUnavailable:
            return
        before = self.identity.get(address)
        if before is not None and (now.pid != before.pid or now.uptime < before.uptime):
            self.restarts.append(address)
            gone = self.stored.pop(address, 0)
            self.lost[address] = self.lost.get(address, 0) + gone
            EVENTS.warning("memcached_restarted", node=address, keys_lost=gone)
        self.identity[address] = now
