"""One writer per run in MongoDB at a time: an atomic, leased claim kept in MongoDB itself.

Why: two processes mirroring the same run (two ``iwx.resync`` at once, or a resync
beside the run's own MirrorObserver) each read the run's document, each found an
artifact missing, each uploaded it to GridFS, and the last document write won: the
other's uploads stayed behind (240 orphaned GridFS files after two concurrent
resyncs). A file lock keeps apart the processes of one machine only; the database is
what every machine shares, so the claim lives there (collection ``iwx_claims``).

A claim is a document ``{_id: key, owner: {token, host, pid}, until}``. Taking one is
a single atomic operation, so exactly one process holds a key:

- inserting the document: MongoDB's unique ``_id`` refuses a second one;
- or taking over a claim whose lease ran out (``until`` in the past), or whose owner
  is a dead process on this host (``kill -9`` mid-sync), with ``find_one_and_update``
  matching the very owner and lease it read: of two processes taking over at once,
  one matches.

The holder renews the lease before each upload and before its final write
(:meth:`Claims.renew` raises :class:`ClaimLost` if another process took it over
meanwhile — only possible if the holder stalled longer than the lease) and deletes
it when done. Leases compare the wall clocks of the machines involved: they must
agree to well within the lease (120 s; NTP does). Why not upload first and then
compare-and-set the run document, deleting the loser's uploads: two runs share
source files, so two uploads of one source would both be kept, and a process that
dies between upload and set leaves orphans no other process can safely tell apart
from uploads in flight; under a claim, the holder can.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import time
import uuid

import pymongo

COLLECTION = "iwx_claims"
LEASE_S = 120.0


class ClaimBusy(Exception):
    """Another live process holds the claim; ``holder``: its owner {host, pid}."""

    def __init__(self, key: str, holder: dict):
        owner = holder.get("owner") or {}
        super().__init__(f"{key} is being written by process {owner.get('pid')} on "
                         f"{owner.get('host')} (claim held until {holder.get('until')} UTC)")
        self.key, self.holder = key, holder


class ClaimLost(Exception):
    """The claim was taken over while this process held it (its lease ran out)."""


def _now() -> dt.datetime:
    """UTC, naive: how pymongo returns the datetimes it stores (no tz_aware)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True
    return True


class Claims:
    """This process's claims in one database (one token per instance)."""

    def __init__(self, db, lease_s: float = LEASE_S):
        self.coll = db[COLLECTION]
        self.lease = dt.timedelta(seconds=lease_s)
        self.owner = {"token": uuid.uuid4().hex, "host": socket.gethostname(),
                      "pid": os.getpid()}

    def _stale(self, holder: dict, now: dt.datetime) -> bool:
        owner = holder.get("owner") or {}
        if not isinstance(holder.get("until"), dt.datetime) or holder["until"] < now:
            return True
        return owner.get("host") == self.owner["host"] and not _pid_alive(owner.get("pid"))

    def try_take(self, key: str) -> dict | None:
        """Take ``key`` now: None when taken, else the live holder's document."""
        for _ in range(3):     # the holder may release between our insert and our read
            now = _now()
            try:
                self.coll.insert_one({"_id": key, "owner": self.owner, "until": now + self.lease})
                return None
            except pymongo.errors.DuplicateKeyError:
                pass
            holder = self.coll.find_one({"_id": key})
            if holder is None:
                continue
            if (holder.get("owner") or {}).get("token") == self.owner["token"]:
                self.renew(key)
                return None
            if not self._stale(holder, now):
                return holder
            taken = self.coll.find_one_and_update(
                {"_id": key, "owner": holder.get("owner"), "until": holder.get("until")},
                {"$set": {"owner": self.owner, "until": now + self.lease}})
            if taken is not None:
                return None
        return self.coll.find_one({"_id": key}) or {"owner": {}, "until": None}

    def take(self, key: str, wait_s: float = 0.0, poll_s: float = 0.2) -> None:
        """Take ``key``, waiting up to ``wait_s`` seconds; raises :class:`ClaimBusy`."""
        deadline = time.monotonic() + wait_s
        while True:
            holder = self.try_take(key)
            if holder is None:
                return
            if time.monotonic() >= deadline:
                raise ClaimBusy(key, holder)
            time.sleep(poll_s)

    def renew(self, key: str) -> None:
        """Extend the lease of a claim this process holds; :class:`ClaimLost` if it
        does not hold it any more."""
        held = self.coll.find_one_and_update(
            {"_id": key, "owner.token": self.owner["token"]},
            {"$set": {"until": _now() + self.lease}})
        if held is None:
            raise ClaimLost(f"the claim on {key} was taken over by another process "
                            f"(this one held it longer than {self.lease.total_seconds():g} s)")

    def release(self, key: str) -> None:
        self.coll.delete_one({"_id": key, "owner.token": self.owner["token"]})

    @contextlib.contextmanager
    def held(self, key: str, wait_s: float = 0.0):
        """Hold ``key`` for the block (see :meth:`take`)."""
        self.take(key, wait_s)
        try:
            yield
        finally:
            try:
                self.release(key)
            except pymongo.errors.PyMongoError:
                pass     # the lease runs out by itself
