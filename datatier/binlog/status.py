"""How the binlog archive stands: its window, its lag behind the server, its gaps.

Lag is 0 when the archive holds the source's whole GTID position; otherwise it is how long
ago the archiver last said everything before that moment was archived (``safe_until`` in
``archiver.json``, written with each segment and every few seconds while caught up), or,
without that, since the last segment was published. It grows while the archiver is down
and the server writes, and stays 0 while the server is idle.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datatier.backup.stores import store_for
from datatier.binlog.chain import RecordCache, load_chain
from datatier.binlog.layout import archive_policy
from datatier.binlog.state import read_state
from datatier.config import LoadedConfig
from datatier.errors import DatatierError
from datatier.log import get_logger
from datatier.mysql.binlog.positions import Position
from datatier.mysql.binlog.source import node_facts, writable_node
from datatier.mysql.connection import endpoint
from datatier.storage.base import ObjectStore

log = get_logger(__name__)


@dataclass
class ArchiveStatus:
    """The report of ``datatier binlogs status``."""

    policy: str
    store: str
    window: dict[str, Any]
    gaps: list[str]
    lag_seconds: float | None
    lag_basis: str
    server: dict[str, Any] = field(default_factory=dict)
    archiver: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def server_position(loaded: LoadedConfig) -> tuple[str, Position] | None:
    """The archive source's name and GTID position (None when it cannot be reached)."""
    mysql = loaded.config.mysql
    try:
        if loaded.config.binlog.node:
            facts = node_facts(endpoint(mysql, loaded.config.binlog.node))
        else:
            facts = writable_node([endpoint(mysql, n) for n in mysql.nodes])
    except DatatierError as exc:
        log.debug("binlog.status_server_unknown", error=str(exc))
        return None
    return facts.endpoint.name, facts.gtid_binlog_pos


def archive_status(
    loaded: LoadedConfig,
    *,
    cache: RecordCache | None = None,
    stores: dict[str, ObjectStore] | None = None,
    now: float | None = None,
) -> ArchiveStatus:
    """Read the archive (index, data listing, state) and the source's position. ``stores``
    keeps the store opened per URL for the next call (an S3 client costs ~0.25 s of CPU)."""
    owner = archive_policy(loaded)
    opened = {} if stores is None else stores
    store = opened.get(owner.store_url)
    if store is None:
        store = opened[owner.store_url] = store_for(owner.store_url, loaded.config, lookup=True)
    chain = load_chain(store, owner.name, cache=cache)
    state = read_state(store, owner.name)
    server = server_position(loaded)
    moment = time.time() if now is None else now
    lag: float | None
    if server is not None and chain.records and chain.end.covers(server[1]):
        lag, basis = 0.0, f"the archive holds {server[0]}'s whole position"
    elif state.get("safe_until"):
        lag = max(0.0, moment - float(state["safe_until"]))
        basis = "since the archiver last had everything (archiver.json)"
    elif chain.records:
        published = datetime.fromisoformat(chain.records[-1].published_at).timestamp()
        lag, basis = max(0.0, moment - published), "since the last segment was published"
    else:
        lag, basis = None, "no archive yet"
    return ArchiveStatus(
        policy=owner.name,
        store=store.url,
        window=chain.window(),
        gaps=[g.describe() for g in chain.gaps],
        lag_seconds=None if lag is None else round(lag, 3),
        lag_basis=basis,
        server={"node": server[0], "gtid_binlog_pos": str(server[1])} if server else {},
        archiver=state,
    )


class ArchiveWatch:
    """A thread that refreshes :func:`archive_status` every ``interval`` seconds, so a
    ``/metrics`` scrape reads the last result from memory (and never waits on S3)."""

    def __init__(self, loaded: LoadedConfig, interval: float = 15.0) -> None:
        self.loaded = loaded
        self.interval = interval
        self.cache = RecordCache()
        self.stores: dict[str, ObjectStore] = {}
        self.last: ArchiveStatus | None = None
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binlog-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = archive_status(self.loaded, cache=self.cache, stores=self.stores)
            except DatatierError as exc:
                self.errors += 1
                log.warning("binlog.status_failed", error=str(exc))
            self._stop.wait(self.interval)
