"""Connecting to a configured MongoDB deployment, the handshake every server answers, and
the one-line error for a deployment that cannot be reached."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymongo
import pymongo.errors

from datatier import log
from datatier.config import MongoServer
from datatier.errors import ServiceUnavailable

COMMAND_NOT_FOUND = 59
EVENTS = log.get_logger("mongo")

_REASONS = (
    (re.compile(r"connection refused", re.I), "connection refused"),
    (re.compile(r"timed out|found yet", re.I), "timed out"),
    (
        re.compile(r"not known|nodename nor servname|name resolution|getaddrinfo", re.I),
        "unknown host",
    ),
    (re.compile(r"ssl|tls|certificate", re.I), "TLS handshake failed"),
    (re.compile(r"connection closed|connection reset|broken pipe", re.I), "connection closed"),
)
_NODE_ERROR = re.compile(r"^(?P<node>[^\s,]+:\d+): (?P<text>.*)$")
_TIMEOUTS = re.compile(r"\s*\(configured timeouts:[^)]*\)")
_SELECTION_TIMEOUT = re.compile(r", Timeout: (?P<seconds>[\d.]+)s, Topology Description: ")


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


def safe_uri(uri: str) -> str:
    """``uri`` without a password (the config refuses one there; this is a second guard)."""
    parts = urlsplit(uri)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return uri
    netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(text: str) -> str:
    for pattern, reason in _REASONS:
        if pattern.search(text):
            return reason
    return " ".join(text.split())[:160]


def describe_failure(exc: pymongo.errors.PyMongoError, several_nodes: bool = False) -> str:
    """The short reason of a driver connection error (``connection refused``, ``timed out
    after 5 s``, ``unknown host``...), each node named when ``several_nodes``; without the
    topology description pymongo appends."""
    text = str(exc)
    selection = _SELECTION_TIMEOUT.search(text)
    summary = _TIMEOUTS.sub("", text[: selection.start()] if selection else text)
    parts = []
    for piece in re.split(r",(?=[^\s,]+:\d+: )", summary):
        found = _NODE_ERROR.match(piece.strip())
        node, detail = (found["node"], found["text"]) if found else (None, piece)
        reason = _reason(detail)
        if reason == "timed out" and selection and "found yet" in detail:
            reason += f" after {float(selection['seconds']):g} s"
        parts.append(f"{node} {reason}" if node and several_nodes else reason)
    return "; ".join(dict.fromkeys(parts))


def unreachable(uri: str, exc: pymongo.errors.ConnectionFailure) -> ServiceUnavailable:
    """The one-line error for a deployment the driver could not reach (or that went away
    mid-operation): its URI without password and the short reason. The driver's whole text
    (with the topology description) goes to the debug log."""
    shown = safe_uri(uri)
    EVENTS.debug("mongo.unreachable", uri=shown, error=str(exc))
    reason = describe_failure(exc, several_nodes="," in urlsplit(uri).netloc)
    if isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        return ServiceUnavailable(f"cannot reach MongoDB at {shown}: {reason}")
    return ServiceUnavailable(f"MongoDB at {shown} went away: {reason}")
