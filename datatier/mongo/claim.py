"""One restore at a time into a MongoDB database: a renewed lease document per target.

Two restores into one database at once interleave their drops and inserts (documents
duplicated or mixed) and may both exit 0. MongoDB has no advisory lock, so a restore holds,
from its first check of the target to its last, one *lease* document per target database in
``datatier.restore_claims`` on the target deployment: ``_id`` a digest of the database name
(any name fits), the owner's random ``token``, ``host``, ``pid``, ``started``, ``renewed``
and ``expires``. Inserting it is the claim; a duplicate-key error means another restore holds
it, and that one is refused at once (NotReadyYet, exit 5, naming holder, start and lapse time)
before it changes anything. A thread renews every lease each ``heartbeat`` seconds (10 s,
lease 60 s); release deletes a lease only while its token is still ours. A restore that is
killed leaves its lease until it lapses; the next restore then takes it over with a
conditional update on the old token *and* ``expires``, so of two restores taking over one
lapsed lease only one succeeds, and a holder that renewed meanwhile keeps it.

Where: a database of datatier's own on the target, not the restored database, whose
``--drop`` and restored collections would meet the leases, and whose backup would carry
them; not ``admin``, the server's own, which a restore's user seldom may write. The
dumper skips ``datatier.restore_claims`` (a backup never carries leases).

Clock: the server's, never a host's. ``localTime`` of the server's handshake is read when
claiming and advanced by this process's monotonic clock, so every ``started``/``expires``
compared is in one clock whatever the skew between the hosts that restore.

A lease that is lost while the restore runs (the heartbeat could not reach the server for a
whole lease, and another restore took it over) fails the restore at the end (exit 1): the
target may then hold both restores' writes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymongo.errors

from datatier.config import MongoServer
from datatier.errors import NotReadyYet, OperationFailed
from datatier.log import get_logger
from datatier.mongo.client import handshake, mongo_client, safe_uri, unreachable

DATABASE = "datatier"
COLLECTION = "restore_claims"
CLAIMS = (DATABASE, COLLECTION)
"""The leases' collection, which no backup carries."""
LEASE = 60.0
HEARTBEAT = 10.0
ATTEMPTS = 5
log = get_logger(__name__)


def claim_id(database: str) -> str:
    """The lease ``_id`` of target database ``database``: a digest, so any name fits."""
    return "restore:" + hashlib.sha256(database.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class ServerClock:
    """The server's time now: its handshake ``localTime`` advanced by the local monotonic
    clock (timezone-aware UTC, millisecond precision as BSON stores it)."""

    at_server: datetime.datetime
    at_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, client: Any) -> ServerClock:
        local = handshake(client).get("localTime")
        if not isinstance(local, datetime.datetime):
            raise OperationFailed("the MongoDB server's handshake gives no localTime")
        return cls(utc(local))

    def now(self) -> datetime.datetime:
        passed = datetime.timedelta(seconds=time.monotonic() - self.at_monotonic)
        exact = self.at_server + passed
        return exact.replace(microsecond=exact.microsecond // 1000 * 1000)


def utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` as aware UTC (pymongo gives naive UTC datetimes by default)."""
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment


def held_message(database: str, where: str, lease: dict[str, Any]) -> str:
    """Exit 5's text: who holds ``database``'s lease, since when, and when it lapses."""
    since = utc(lease["started"]).isoformat(timespec="seconds")
    lapses = utc(lease["expires"]).isoformat(timespec="seconds")
    return (
        f"another restore into {database!r} on {where} is running (host {lease.get('host')}, "
        f"pid {lease.get('pid')}, since {since} server time); its claim lapses at {lapses} "
        "unless that restore renews it"
    )


class Leases:
    """The leases of one restore on one deployment (see module docstring).

    ``take`` claims every database (all or none, in name order); ``release`` stops the
    heartbeat and deletes the leases still ours. ``lost`` names those another restore took
    over."""

    def __init__(
        self, client: Any, where: str, *, lease: float = LEASE, heartbeat: float = HEARTBEAT
    ) -> None:
        self.collection = client[DATABASE][COLLECTION]
        self.where = where
        self.lease = datetime.timedelta(seconds=lease)
        self.heartbeat = heartbeat
        self.token = secrets.token_hex(16)
        self.clock = ServerClock.of(client)
        self.held: list[str] = []
        self.lost: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, databases: Iterable[str]) -> None:
        """Claim each database (NotReadyYet for the first another restore holds, after
        giving back those taken) and start the heartbeat."""
        try:
            for database in sorted(set(databases)):
                self._take_one(database)
        except BaseException:
            self.release()
            raise
        self._thread = threading.Thread(target=self._renew, name="restore-claim", daemon=True)
        self._thread.start()

    def _take_one(self, database: str) -> None:
        for _ in range(ATTEMPTS):
            if self._try(database):
                self.held.append(database)
                return
        raise NotReadyYet(  # released and taken again each time we looked: busy
            f"the restore claim of {database!r} on {self.where} changed hands {ATTEMPTS} "
            "times while this restore tried to take it",
            hint="another restore is starting there; try again",
        )

    def _try(self, database: str) -> bool:
        """Insert our lease, or take over a lapsed one; NotReadyYet while another is live,
        False when the lease changed meanwhile (look again)."""
        now = self.clock.now()
        mine = {
            "_id": claim_id(database),
            "database": database,
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": now,
            "renewed": now,
            "expires": now + self.lease,
        }
        try:
            self.collection.insert_one(mine)
            return True
        except pymongo.errors.DuplicateKeyError:
            pass
        held = self.collection.find_one({"_id": mine["_id"]})
        if held is None:  # released meanwhile
            return False
        if utc(held["expires"]) > now:
            raise NotReadyYet(
                held_message(database, self.where, held),
                hint="wait for it to finish, or restore elsewhere with --rename SRC=DST",
            )
        lapsed = {"_id": mine["_id"], "token": held["token"], "expires": held["expires"]}
        if not self.collection.update_one(lapsed, {"$set": mine}).matched_count:
            return False  # renewed, or taken over by another restore, meanwhile
        log.warning(
            "restore.claim_taken_over",
            database=database,
            host=held.get("host"),
            pid=held.get("pid"),
            expired=utc(held["expires"]).isoformat(),
        )
        return True

    def renew(self) -> None:
        """Push every held lease's expiry a lease ahead; a lease no longer ours moves to
        ``lost``."""
        for database in list(self.held):
            now = self.clock.now()
            done = self.collection.update_one(
                {"_id": claim_id(database), "token": self.token},
                {"$set": {"renewed": now, "expires": now + self.lease}},
            )
            if not done.matched_count:
                self.held.remove(database)
                self.lost.append(database)
                log.error("restore.claim_lost", database=database)

    def _renew(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.renew()
            except pymongo.errors.PyMongoError as exc:  # retried next beat; lapses if it lasts
                log.warning("restore.claim_renew_failed", error=str(exc))

    def release(self) -> None:
        """Stop the heartbeat and delete the leases still ours (a lease that cannot be
        deleted lapses on its own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat + 30)
        for database in self.held:
            try:
                self.collection.delete_one({"_id": claim_id(database), "token": self.token})
            except pymongo.errors.PyMongoError as exc:
                log.warning("restore.claim_release_failed", database=database, error=str(exc))
        self.held = []

    @property
    def running(self) -> bool:
        """Whether the heartbeat thread is alive."""
        return self._thread is not None and self._thread.is_alive()


@contextlib.contextmanager
def claim_databases(
    server: MongoServer,
    databases: Iterable[str],
    *,
    lease: float = LEASE,
    heartbeat: float = HEARTBEAT,
) -> Iterator[Leases | None]:
    """Hold the leases of ``databases`` on ``server`` for the block, released on every way
    out; NotReadyYet naming the first one another restore holds (none is then kept);
    OperationFailed after the block if a lease was lost while it ran."""
    wanted = sorted(set(databases))
    if not wanted:
        yield None
        return
    where = safe_uri(server.uri)
    with mongo_client(server) as client:
        try:
            leases = Leases(client, where, lease=lease, heartbeat=heartbeat)
            leases.take(wanted)
        except pymongo.errors.ConnectionFailure as exc:
            raise unreachable(server.uri, exc) from None
        except pymongo.errors.PyMongoError as exc:
            raise OperationFailed(f"cannot claim the restore's target on {where}: {exc}") from None
        try:
            yield leases
        finally:
            leases.release()
        if leases.lost:
            raise OperationFailed(
                f"the restore's claim on {', '.join(map(repr, leases.lost))} at {where} was "
                "taken over while it ran (its heartbeat could not renew it in time): another "
                "restore may have written into the same database",
                hint="check the target, and restore again",
            )
