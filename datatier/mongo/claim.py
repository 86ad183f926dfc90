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

Losing the lease. A restore paused (SIGSTOP, a VM paused, swapped out) or cut off from the
server for a whole lease loses it once another restore takes it over; its heartbeat, woken
with it, cannot be relied on to notice before its next write. So every write of a restore
(a drop, an insert batch, a collection, index or view created, an oplog batch) is made
inside :meth:`Leases.writing`, which first renews the leases *on the server*: a lease whose
token is gone stops the restore before that write (ClaimLost); a renewed one now has a
whole lease ahead. A check that only looked at this process's clock would not do: the
server's clock is the one that decides when a lease lapses (it may step), and a paused
process learns nothing until it asks. Renewals only push ``expires`` forward (``$max``):
the heartbeat's and the writers' renewals cross on the wire.

The window between the check and the write: a takeover needs the server's time past
``expires``; the writer's renewal set ``expires`` to its own estimate of the server's time
(never ahead of it: the handshake's ``localTime`` is read as it left the server) plus a
lease. A write that returns less than ``SURE`` of a lease (30 s) after its check, by the
monotonic clock, therefore landed before anyone could take over; a slower one (it was
paused in flight, say) is followed at once by another renewal, and if that finds the lease
gone the write is reported as possibly landed after the loss. The check the next write
makes covers the ones before it, so a restore stopped by a lost lease says which of its
writes, if any, may have landed after (none, unless one was paused in flight).

What can still happen: a write that fails (a network error, a timeout) may still be
applied by the server later, after a takeover; the monotonic clock may drift from the
server's (an NTP slew is at most 500 ppm: 18 s in 10 h, inside the 30 s margin), and the
server's clock may be stepped forward, which lapses leases early (renewal checks the token,
so that is caught at the next write, but a write in flight at that moment may land after
the takeover). Only a write made in one transaction with the lease check would close that,
and the servers datatier restores into do not all have transactions. A restore that lost a
lease fails (exit 1) naming the writes that may have landed after, even if it had written
everything before: the target now belongs to the other restore.
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
SURE = 0.5
"""A write that returns within this share of a lease after its check landed inside it."""
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


class ClaimLost(OperationFailed):
    """A lease was taken over by another restore: this one must not write again."""


class Leases:
    """The leases of one restore on one deployment (see module docstring).

    ``take`` claims every database (all or none, in name order); ``writing`` guards each
    write; ``release`` stops the heartbeat and deletes the leases still ours. ``lost``
    names those another restore took over, ``late`` the writes that may have landed after.
    """

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
        self.late: list[str] = []
        self._lock = threading.Lock()
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
        """Push every held lease's expiry a lease ahead of the server's time now (never
        back); a lease no longer ours moves to ``lost``. One round trip while all are ours."""
        held = list(self.held)
        if not held:
            return
        ids = {claim_id(database): database for database in held}
        ours = {"_id": {"$in": list(ids)}, "token": self.token}
        now = self.clock.now()
        done = self.collection.update_many(
            ours, {"$set": {"renewed": now}, "$max": {"expires": now + self.lease}}
        )
        if done.matched_count == len(held):
            return
        kept = {doc["_id"] for doc in self.collection.find(ours, {"_id": 1})}
        with self._lock:
            for key, database in ids.items():
                if key not in kept and database in self.held:
                    self.held.remove(database)
                    self.lost.append(database)
                    log.error("restore.claim_lost", database=database)

    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Guard one write, ``what`` naming it (module docstring): ClaimLost before it when a
        lease is gone, else the leases renewed; after it, if it took more than ``SURE`` of a
        lease, renewed again and, if one is gone then, ClaimLost with ``what`` in ``late``."""
        if self.lost:
            raise ClaimLost(self.lost_message())
        checked = time.monotonic()  # no later than the clock reading the renewal sends
        self.renew()
        if self.lost:
            raise ClaimLost(self.lost_message())
        yield
        if time.monotonic() - checked < self.lease.total_seconds() * SURE:
            return
        try:
            self.renew()
        except pymongo.errors.PyMongoError:
            with self._lock:
                self.late.append(what)  # not known whether it still held the lease
            raise
        if self.lost:
            with self._lock:
                self.late.append(what)
            raise ClaimLost(self.lost_message())

    def lost_message(self) -> str:
        """What exit 1 says of the leases lost, and of the writes that may have landed after."""
        lost = ", ".join(map(repr, self.lost))
        text = (
            f"the restore's claim on {lost} at {self.where} was taken over while it ran by "
            "another restore (this one could not renew it for a whole lease: paused, or cut "
            "off from the server); "
        )
        if self.late:
            return text + (
                "it stopped writing then, but these writes of it took longer than "
                f"{self.lease.total_seconds() * SURE:g} s and may have landed after the "
                f"other restore took over: {'; '.join(self.late)}"
            )
        return text + "it stopped before its next write and wrote nothing after losing it"

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
            leases.renew()  # a loss after the last write: the target is the other's now
        except ClaimLost:
            if not leases.lost:
                raise
            # told below, once every writer has stopped
        except pymongo.errors.PyMongoError as exc:
            raise OperationFailed(f"cannot renew the restore's claim on {where}: {exc}") from None
        finally:
            leases.release()
        if leases.lost:
            raise OperationFailed(
                leases.lost_message(),
                hint="the target holds what the other restore made of it: check it, and "
                "restore again if this restore's backup is the one wanted",
            )
