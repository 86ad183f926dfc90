"""Warm sets: named queries whose results the application caches, one TOML file per set in
``cache.warm_sets_dir`` (the file's stem is the set's name). Example
(``schemas/cache/games.toml``)::

    description = "Game pages after a deploy"
    source_node = "replica1"      # default: [cache] source_node, else the first replica

    [queries.top_games]           # one key per result: the app caches whole query results
    sql = "SELECT id, title, plays FROM games.game WHERE id = %(id)s"
    params_sql = "SELECT id FROM games.game ORDER BY plays DESC LIMIT 500"
    key = "games:q:{md5}"         # {md5}: see datatier.cache.keys
    serializer = "json"
    ttl = 3600
    ttl_jitter = 0.1              # each key's TTL is drawn from ttl * (1 +/- 0.1)
    max_rows = 100                # a result with more rows is skipped, never cut (10,000)

    [queries.players]             # one key per row
    mode = "row"
    sql = "SELECT id, name, level FROM games.player ORDER BY last_seen DESC LIMIT 100000"
    key = "player:{id}"
    serializer = "pickle"
    pickle_protocol = 4

Loading validates everything and raises :class:`~datatier.errors.ConfigError` naming the
file and key.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from datatier.errors import ConfigError, UsageError
from datatier.typedtoml import Binder, option, read_toml, required

SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
Mode = Literal["result", "row"]
SerializerName = Literal["json", "pickle", "raw"]
RowFormat = Literal["dict", "list"]
SERIALIZERS: tuple[SerializerName, ...] = get_args(SerializerName)
KEY_BUILTINS = frozenset({"md5", "sha1", "rendered_md5", "query", "set"})


@dataclass(frozen=True)
class WarmQuery:
    """``[queries.NAME]``: one query and how the app keys and encodes its results."""

    sql: str = required()
    mode: Mode = "result"
    params_sql: str | None = None
    key: str | None = None
    key_function: str | None = None
    serializer: SerializerName = "json"
    pickle_protocol: int = option(5, min=0)
    row_format: RowFormat = "dict"
    ttl: int = option(3600, min=0)
    ttl_jitter: float = option(0.0, min=0.0)
    max_rows: int | None = option(None, min=1)

    def row_limit(self) -> int:
        """Result mode: the most rows a cached result may have (default 10,000; a larger
        result is skipped). Row mode: the most rows read (default: all)."""
        if self.max_rows is not None:
            return self.max_rows
        return 10_000 if self.mode == "result" else 1 << 62


@dataclass(frozen=True)
class WarmSetFile:
    """The TOML document of a warm set."""

    description: str = ""
    source_node: str | None = None
    batch_size: int = option(500, min=1)
    queries: dict[str, WarmQuery] = option({})


@dataclass(frozen=True)
class WarmSet:
    """A validated warm set: its name (the file's stem), file and settings."""

    name: str
    path: Path
    spec: WarmSetFile


def template_fields(template: str) -> set[str]:
    """The field names used by a ``str.format`` key template; ValueError if malformed."""
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise ValueError(f"{{{name}}} is not a plain field name")
        if spec or conversion:
            raise ValueError(f"{{{name}}}: format specs and conversions are not supported")
        names.add(name)
    return names


def _check_query(source: str, name: str, q: WarmQuery) -> None:
    key = f"queries.{name}"
    if (q.key is None) == (q.key_function is None):
        raise ConfigError(source, key, "give exactly one of key (a template) or key_function")
    if q.key is not None:
        try:
            fields = template_fields(q.key)
        except ValueError as exc:
            raise ConfigError(source, f"{key}.key", str(exc)) from None
        if q.mode == "result" and q.params_sql is None:
            unknown = fields - KEY_BUILTINS
            if unknown:
                raise ConfigError(
                    source,
                    f"{key}.key",
                    f"uses {', '.join(sorted(unknown))} but the query has no params_sql",
                    hint=f"available: {', '.join(sorted(KEY_BUILTINS))}",
                )
    if q.key_function is not None and not re.fullmatch(
        r"[A-Za-z_][\w.]*[:.][A-Za-z_]\w*", q.key_function
    ):
        raise ConfigError(
            source, f"{key}.key_function", f"{q.key_function!r} is not module.path:function"
        )
    if q.mode == "row" and q.params_sql is not None:
        raise ConfigError(source, f"{key}.params_sql", "row mode runs the query once")
    if q.ttl_jitter >= 1.0:
        raise ConfigError(source, f"{key}.ttl_jitter", "must be below 1.0 (a fraction of ttl)")
    if q.pickle_protocol > 5:
        raise ConfigError(source, f"{key}.pickle_protocol", "Python pickles go up to protocol 5")
    if not q.sql.strip():
        raise ConfigError(source, f"{key}.sql", "empty query")


def load_warm_set(path: Path) -> WarmSet:
    """Read and validate one warm-set file."""
    source = str(path)
    name = path.stem
    if not SET_NAME.match(name):
        raise ConfigError(source, None, f"warm set name {name!r} must match {SET_NAME.pattern}")
    data = read_toml(path, "warm set file")
    spec = Binder(source, path.parent).bind(WarmSetFile, data)
    if not spec.queries:
        raise ConfigError(source, "queries", "a warm set needs at least one [queries.NAME]")
    for qname, query in spec.queries.items():
        if not SET_NAME.match(qname):
            raise ConfigError(source, f"queries.{qname}", "query names are [A-Za-z0-9_.-]")
        _check_query(source, qname, query)
    return WarmSet(name=name, path=path, spec=spec)


def warm_set_path(sets_dir: Path, name: str) -> Path:
    """Where the set called ``name`` lives (a path with a ``/`` or ``.toml`` is used as is)."""
    if "/" in name or name.endswith(".toml"):
        return Path(name)
    return sets_dir / f"{name}.toml"


def list_warm_sets(sets_dir: Path) -> list[Path]:
    """Every ``*.toml`` in ``sets_dir``, sorted; UsageError if the directory is missing."""
    if not sets_dir.is_dir():
        raise UsageError(f"warm sets directory {sets_dir} does not exist")
    return sorted(sets_dir.glob("*.toml"))
