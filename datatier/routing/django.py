"""Django integration (``pip install 'datatier[django]'``): a ``DATABASE_ROUTERS`` class.

Settings::

    DATABASES = datatier.routing.django.databases("datatier.toml", name="app")
    DATABASE_ROUTERS = ["datatier.routing.django.Router"]
    DATATIER_ROUTING = {"config": "datatier.toml", "max_lag": 2.0}   # all keys optional

Contract.

- :func:`databases` makes one Django alias per configured node (the primary is
  ``"default"``, replicas keep their node names; MySQL backend, utf8mb4, replicas mirror
  ``default`` in Django's tests). Other aliases may be added; they are not routed.
- ``DATATIER_ROUTING`` keys: ``aliases`` ({alias: node}; default: each node's alias from
  :func:`databases`), ``router`` (a :class:`~datatier.replication.router.Router` or a
  callable returning one; default: :func:`datatier.routing.open` of ``config``, started
  on first use), ``max_lag`` (seconds, > 0; default ``health.replica_max_lag``) and
  ``read_your_writes`` (default True). Every alias must name a configured node and be in
  ``DATABASES``: else :class:`~datatier.errors.ConfigError` on first use, naming it.
- ``db_for_write``: the alias of the router's write target (a promoted replica's alias
  after a failover). ``db_for_read``: the alias of a replica within ``max_lag``. Both read
  only the monitor's last snapshot: no database query per call. A chosen node without an
  alias is a ConfigError; no fitting node is ServiceUnavailable.
- Read-your-writes, from the snapshots alone: inside an ``atomic`` block that wrote, reads
  use the alias written to. After this thread (context) wrote (seen by a wrapper on the
  routed aliases' connections; at commit inside ``atomic``), reads go to the primary until
  a monitor round that started after the write shows the primary's GTID position, and then
  to a fit replica whose measured position includes it (typically one or two monitor
  intervals).
- ``allow_relation``: True between routed aliases (one dataset). ``allow_migrate``: only on
  the configured primary's alias among routed aliases.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from datatier.config import Config, load
from datatier.errors import ConfigError
from datatier.replication.gtid import contains
from datatier.replication.router import Router as DatatierRouter
from datatier.replication.snapshot import Snapshot

__all__ = ["Router", "databases"]

SETTING = "DATATIER_ROUTING"
WRITES = re.compile(
    r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|TRUNCATE|RENAME|LOAD)\b", re.I
)


def databases(
    config_path: str | os.PathLike[str] | None = None,
    *,
    name: str,
    options: Mapping[str, Any] | None = None,
    conn_max_age: int = 60,
) -> dict[str, dict[str, Any]]:
    """``DATABASES`` entries for every configured node (module doc): database ``name``,
    the configured credentials, ``options`` added to the MySQL backend's OPTIONS."""
    config = load(None if config_path is None else os.fspath(config_path)).config
    primary = config.mysql.primary()
    found: dict[str, dict[str, Any]] = {}
    for node, spec in sorted(config.mysql.nodes.items()):
        alias = _default_alias(node, config)
        entry: dict[str, Any] = {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "HOST": spec.host,
            "PORT": spec.port,
            "USER": config.mysql.user,
            "PASSWORD": config.mysql.password.reveal(),
            "CONN_MAX_AGE": conn_max_age,
            "OPTIONS": {"charset": "utf8mb4", **(options or {})},
        }
        if primary is not None and node != primary[0]:
            entry["TEST"] = {"MIRROR": "default"}
        found[alias] = entry
    return found


def _default_alias(node: str, config: Config) -> str:
    primary = config.mysql.primary()
    return "default" if primary is not None and node == primary[0] else node


class Router:
    """The ``DATABASE_ROUTERS`` entry (module doc). Django makes one per process."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._options = dict(getattr(settings, SETTING, {}) if options is None else options)
        unknown = set(self._options) - {
            "aliases",
            "router",
            "config",
            "max_lag",
            "read_your_writes",
        }
        if unknown:
            raise ConfigError(SETTING, sorted(unknown)[0], "unknown key")
        self._router: DatatierRouter | None = None
        self._aliases: dict[str, str] = {}  # alias -> node
        self._by_node: dict[str, str] = {}  # node -> alias
        self._lock = threading.Lock()
        self._written: ContextVar[tuple[float, str | None] | None] = ContextVar(
            f"datatier_written_{id(self)}", default=None
        )
        self._pending: ContextVar[str | None] = ContextVar(
            f"datatier_pending_{id(self)}", default=None
        )
        self.max_lag: float | None = None
        self.read_your_writes = bool(self._options.get("read_your_writes", True))
        connection_created.connect(self._wrap, weak=False, dispatch_uid=f"datatier-{id(self)}")

    # -- set-up ----------------------------------------------------------------------------
    @property
    def router(self) -> DatatierRouter:
        """The datatier router, opened and checked on first use."""
        if self._router is None:
            with self._lock:
                if self._router is None:
                    self._router = self._open()
        return self._router

    def _open(self) -> DatatierRouter:
        given = self._options.get("router")
        if isinstance(given, DatatierRouter):
            router = given
        elif callable(given):
            router = given()
        elif given is None:
            from datatier import routing

            router = routing.open(self._options.get("config"))
        else:
            raise ConfigError(SETTING, "router", "expected a datatier Router or a callable")
        self._aliases = self._check_aliases(router)
        self._by_node = {node: alias for alias, node in self._aliases.items()}
        if "max_lag" in self._options:
            self.max_lag = router.check_max_lag(self._options["max_lag"])
        for connection in connections.all(initialized_only=True):  # opened before us
            self._install(connection)
        return router

    def _check_aliases(self, router: DatatierRouter) -> dict[str, str]:
        nodes = router.config.mysql.nodes
        given = self._options.get("aliases")
        if given is None:
            return {
                _default_alias(n, router.config): n
                for n in nodes
                if _default_alias(n, router.config) in settings.DATABASES
            }
        aliases = dict(given)
        for alias, node in sorted(aliases.items()):
            if alias not in settings.DATABASES:
                raise ConfigError(SETTING, f"aliases.{alias}", "not an alias in DATABASES")
            if node not in nodes:
                known = ", ".join(sorted(nodes)) or "none configured"
                raise ConfigError(
                    SETTING, f"aliases.{alias}", f"unknown node {node!r} (known: {known})"
                )
        return aliases

    def _alias(self, node: str) -> str:
        alias = self._by_node.get(node)
        if alias is None:
            known = ", ".join(f"{a}={n}" for a, n in sorted(self._aliases.items())) or "none"
            raise ConfigError(
                SETTING, "aliases", f"node {node!r} has no Django alias (aliases: {known})"
            )
        return alias

    # -- read-your-writes bookkeeping ------------------------------------------------------
    def _wrap(self, sender: Any, connection: BaseDatabaseWrapper, **kw: Any) -> None:
        """Watch a routed alias's statements for writes (connection_created signal)."""
        self.router  # noqa: B018 (opens the router: the aliases must be known)
        self._install(connection)

    def _install(self, connection: BaseDatabaseWrapper) -> None:
        if connection.alias in self._aliases and self._mark not in connection.execute_wrappers:
            # First in the list: outermost, and never what another wrapper's exit pops.
            connection.execute_wrappers.insert(0, self._mark)

    def _mark(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        result = execute(sql, params, many, context)
        if self.read_your_writes and WRITES.match(sql):
            connection = context["connection"]
            if connection.in_atomic_block:
                self._pending.set(connection.alias)  # reads see it there until the commit
                transaction.on_commit(self._wrote, using=connection.alias)
            else:
                self._wrote()
        return result

    def _wrote(self) -> None:
        self._written.set((time.time(), None))
        self._pending.set(None)

    def _reader(self, snap: Snapshot, max_lag: float | None) -> str | None:
        """The node a read must use to see this context's writes (None: no constraint)."""
        written = self._written.get()
        if written is None:
            return None
        at, target = written
        write_node = self.router.write_route().node
        if target is None:
            primary = snap.nodes[write_node]
            if primary.measured_at - primary.check_seconds <= at or not primary.gtid_position:
                return write_node  # no measurement of the primary since the write yet
            target = primary.gtid_position
            self._written.set((at, target))
        limit = self.router.check_max_lag(max_lag)
        fit, _ = self.router.read_candidates(limit, snap)
        reached = [r.node for r in fit if contains(snap.nodes[r.node].gtid_position, target)]
        if fit and len(reached) == len(fit):
            self._written.set(None)  # every fit replica has it: nothing to remember
        return reached[0] if reached else write_node

    # -- the Django router API -------------------------------------------------------------
    def db_for_read(self, model: Any, **hints: Any) -> str:
        router = self.router
        pending = self._pending.get()
        if pending is not None:
            if connections[pending].in_atomic_block:
                return pending  # this transaction wrote there and has not committed
            self._pending.set(None)  # rolled back (a commit clears it in _wrote)
        snap = router.monitor.snapshot
        if snap is not None and self._written.get() is not None:
            node = self._reader(snap, self.max_lag)
            if node is not None:
                return self._alias(node)
        return self._alias(router.route("read", self.max_lag).node)

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self._alias(self.router.route("write").node)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        self.router  # noqa: B018 (aliases are known once the router is open)
        if obj1._state.db in self._aliases and obj2._state.db in self._aliases:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        router = self.router
        if db not in self._aliases:
            return None
        primary = router.config.mysql.primary()
        return primary is not None and self._aliases[db] == primary[0]
