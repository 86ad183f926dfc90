"""Resolve a ``--target`` option: a MySQL endpoint, or a configured MongoDB deployment."""

from __future__ import annotations

from datatier.backup.manifest import Manifest
from datatier.config import LoadedConfig, MongoServer
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


def target_role(loaded: LoadedConfig, target: str | None) -> str | None:
    """The ``[mysql.nodes]`` role of ``--target`` (the primary's without one); None for a
    HOST:PORT that is not a configured node."""
    mysql = loaded.config.mysql
    if target is None:
        primary = mysql.primary()
        return primary[1].role if primary else None
    node = mysql.nodes.get(target)
    return node.role if node else None


def mongo_target(loaded: LoadedConfig, manifest: Manifest, target: str | None) -> MongoServer:
    """``NAME`` of ``[mongo.servers]`` (``default``: ``[mongo]``); without one, the deployment
    the backup was taken from (as its manifest names it), else ``[mongo]``."""
    mongo = loaded.config.mongo
    if target:
        return mongo.server(target)
    source = manifest.source.get("server")
    if source is not None and source not in mongo.servers:
        raise UsageError(
            f"backup {manifest.backup_id} was taken from MongoDB server {source!r}, "
            "which is not in [mongo.servers]",
            hint="name the target with --target NAME (default: [mongo])",
        )
    return mongo.server(source)
