"""Connecting to a configured MongoDB deployment, and the handshake every server answers."""

from __future__ import annotations

from typing import Any

import pymongo
import pymongo.errors

from datatier.config import MongoServer

COMMAND_NOT_FOUND = 59


def mongo_client(settings: MongoServer) -> pymongo.MongoClient[Any]:
    """A client for one configured deployment (credentials passed apart from the URI)."""
    kwargs: dict[str, Any] = {
        "serverSelectionTimeoutMS": int(settings.server_selection_timeout * 1000),
        "document_class": dict,
    }
    if settings.username:
        kwargs["username"] = settings.username
        kwargs["password"] = settings.password.reveal()
    return pymongo.MongoClient(settings.uri, **kwargs)


def handshake(client: Any) -> dict[str, Any]:
    """The server's ``hello`` reply; servers without ``hello`` (MongoDB before 4.4.2, which
    pymongo still supports, and mongo-java-server) answer the legacy ``isMaster`` instead,
    with the same fields (``setName`` for a replica-set member)."""
    try:
        reply: dict[str, Any] = client.admin.command("hello")
    except pymongo.errors.OperationFailure as exc:
        if exc.code != COMMAND_NOT_FOUND:
            raise
        reply = client.admin.command("isMaster")
    return reply
