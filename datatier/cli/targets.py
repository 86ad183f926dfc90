"""Resolve a ``--target`` option to a MySQL endpoint."""

from __future__ import annotations

from datatier.config import LoadedConfig
from datatier.errors import UsageError
from datatier.mysql.connection import Endpoint, endpoint, parse_dsn


def target_endpoint(loaded: LoadedConfig, target: str | None) -> Endpoint:
    """``NODE`` or ``HOST:PORT``; without one, the configured primary."""
    mysql = loaded.config.mysql
    if target:
        return parse_dsn(target, mysql)
    primary = mysql.primary()
    if primary is None:
        raise UsageError("no --target given and no primary in [mysql.nodes]")
    return endpoint(mysql, primary[0])
