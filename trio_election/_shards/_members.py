"""The members of a shard group: their records, where they are stored, and who is live.

Each member keeps a membership record (`MemberRecord`) of its own in the group's store and
rewrites it every `retry_period`, like a lease. `Membership` follows the store and counts a
member as live while its record is fresh by the engine's rule for expiry: the record was
seen to change less than its `lease_duration_seconds` ago, on this member's own clock (the
wall-clock time in the record is never compared). A deleted record (a graceful leave) ends
the member at once. A record that cannot be read is ignored with one warning; a member
configured with another shard count is logged as an error naming both counts and left out
of the assignment (the shard elections keep every shard to one holder whatever happens).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, final

import anyio

from .._core._clock import loop_span
from .._core._exceptions import LockError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from .._core._clock import ElectionClock
    from .._core._timing import Timing

__all__ = ["MemberEntry", "MemberRecord", "MemberStore", "Membership", "decode", "encode"]

logger = logging.getLogger("trio_election")


@final
@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One member's record: who, with how many shards, for how long it counts as live."""

    identity: str
    shards: int
    lease_duration_seconds: int
    renew_time: _dt.datetime | None = None


@final
@dataclass(frozen=True, slots=True)
class MemberEntry:
    """One record in the store: `record` None when it cannot be read; `raw` as stored (a
    change of `raw` is a renewal)."""

    name: str
    record: MemberRecord | None
    raw: str


def encode(record: MemberRecord) -> str:
    """The stored form of a record (the in-memory group's; Kubernetes stores a Lease)."""
    renewed = None if record.renew_time is None else record.renew_time.isoformat()
    return json.dumps(
        {
            "identity": record.identity,
            "shards": record.shards,
            "leaseDurationSeconds": record.lease_duration_seconds,
            "renewTime": renewed,
        },
        sort_keys=True,
    )


def decode(raw: str) -> MemberRecord | None:
    """The record stored as `raw`, or None when it is not one."""
    try:
        data = json.loads(raw)
        identity, shards = data["identity"], data["shards"]
        duration = data.get("leaseDurationSeconds", 0)
        renewed = data.get("renewTime")
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(identity, str) or not identity:
        return None
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        return None
    if isinstance(duration, bool) or not isinstance(duration, int):
        duration = 0
    try:
        when = None if renewed is None else _dt.datetime.fromisoformat(renewed)
    except (TypeError, ValueError):
        when = None
    return MemberRecord(identity, shards, duration, when)


class MemberStore(Protocol):
    """One member's access to the membership records of its group.

    Every method may raise `LockError` (retried) or another `ElectionError` (fatal).
    """

    @property
    def description(self) -> str: ...

    async def list(self) -> Mapping[str, MemberEntry]:
        """Every record of the group, by name."""
        ...

    def watch(self) -> AsyncGenerator[Mapping[str, MemberEntry]]:
        """Yield every record of the group after each change (the first at once).

        May end; the caller watches again. Callers close it (`aclosing`).
        """
        ...

    async def put(self, record: MemberRecord) -> None:
        """Create or rewrite this member's own record."""
        ...

    async def delete(self, identity: str) -> None:
        """Delete this member's own record (nothing when it is gone)."""
        ...


@dataclass(slots=True)
class _Seen:
    raw: str
    observed: float
    duration: float
    record: MemberRecord | None


@final
class Membership:
    """One member's view of its group, and its own record's renewals.

    `live()` is the set the assignment is computed from; `changed` is set (and replaced)
    at each change of the records seen; `expires_at()` is when the next live member's
    record runs out on our clock, so that the caller wakes then without polling.
    """

    def __init__(
        self,
        store: MemberStore,
        *,
        identity: str,
        shards: int,
        timing: Timing,
        clock: ElectionClock,
    ) -> None:
        self.store = store
        self.identity = identity
        self.shards = shards
        self.timing = timing
        self.clock = clock
        self.joined = False
        self.changed = anyio.Event()
        self._renewing = anyio.CancelScope()
        self._left: anyio.Event | None = None
        self._seen: dict[str, _Seen] = {}
        self._warned: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ view
    def take(self, entries: Mapping[str, MemberEntry]) -> None:
        """Take in one listing of the store."""
        now = self.clock.now()
        for name in list(self._seen):
            if name not in entries:
                del self._seen[name]
        for name, entry in entries.items():
            seen = self._seen.get(name)
            if seen is not None and seen.raw == entry.raw:
                continue
            record = entry.record
            duration = self.timing.lease_duration
            if record is not None and record.lease_duration_seconds > 0:
                duration = float(record.lease_duration_seconds)
            self._seen[name] = _Seen(entry.raw, now, duration, record)
            self._check(name, record, entry.raw)
        self.changed.set()
        self.changed = anyio.Event()

    def _check(self, name: str, record: MemberRecord | None, raw: str) -> None:
        if record is None:
            if (name, "unreadable") not in self._warned:
                self._warned.add((name, "unreadable"))
                logger.warning(
                    "%s: ignoring the record %r of the group, which is not a member's: %.200s",
                    self.store.description,
                    name,
                    raw,
                )
        elif record.shards != self.shards:
            key = (name, str(record.shards))
            if key not in self._warned:
                self._warned.add(key)
                logger.error(
                    "%s: member %s runs with shards=%d but this member (%s) with shards=%d; "
                    "give every member the same shards= (the shards keep one holder each, but "
                    "they are not balanced until the counts agree)",
                    self.store.description,
                    record.identity,
                    record.shards,
                    self.identity,
                    self.shards,
                )

    def live(self) -> frozenset[str]:
        """The live members with our shard count (this one while it has joined)."""
        now = self.clock.now()
        found = {
            seen.record.identity
            for seen in self._seen.values()
            if seen.record is not None
            and seen.record.shards == self.shards
            and now < seen.observed + seen.duration
            and seen.record.identity != self.identity
        }
        if self.joined:
            found.add(self.identity)
        return frozenset(found)

    def expires_at(self) -> float:
        """The loop time at which the next fresh record runs out (inf: none will)."""
        now = self.clock.now()
        ends = [
            seen.observed + seen.duration
            for seen in self._seen.values()
            if seen.record is not None and now < seen.observed + seen.duration
        ]
        return self.clock.to_loop(min(ends)) if ends else math.inf

    # ------------------------------------------------------------------ following
    async def first_read(self) -> None:
        """List the store until it answers."""
        while True:
            try:
                self.take(await self.store.list())
            except LockError as exc:
                logger.warning("%s: cannot list the members yet: %s", self.store.description, exc)
                await anyio.sleep(loop_span(self.clock, self.timing.retry_period))
            else:
                return

    async def follow(self) -> None:
        """Follow the store forever (a watch, listed again after each break)."""
        while True:
            try:
                async with aclosing(self.store.watch()) as stream:
                    async for entries in stream:
                        self.take(entries)
            except LockError as exc:
                logger.info("%s: membership watch broke: %s", self.store.description, exc)
                await anyio.sleep(loop_span(self.clock, self.timing.retry_period))

    # ------------------------------------------------------------------ our own record
    def _record(self) -> MemberRecord:
        return MemberRecord(
            self.identity, self.shards, self.timing.lease_seconds, self.clock.wall()
        )

    async def renew_loop(self) -> None:
        """Write our record now and every `retry_period` after, until cancelled or until
        `leave()`."""
        self._renewing = anyio.CancelScope()
        with self._renewing:
            await self._renew_forever()

    async def _renew_forever(self) -> None:
        while True:
            started = self.clock.now()
            with anyio.move_on_after(loop_span(self.clock, self.timing.renew_deadline)):
                try:
                    await self.store.put(self._record())
                except LockError as exc:
                    logger.warning(
                        "%s: renewing the membership of %s failed: %s",
                        self.store.description,
                        self.identity,
                        exc,
                    )
            await anyio.sleep_until(self.clock.to_loop(started + self.timing.retry_period))

    def join(self) -> None:
        """Count this member in (the next `renew_loop()` writes its record)."""
        self.joined = True
        self._left = None

    async def leave(self) -> None:
        """Stop renewing and delete our record, shielded, within `retry_period`; then no
        shard is ours. Called by each shard about to be released as it leaves, and by
        `serve()`: the first call deletes and the others wait for it, so that the delete
        goes out before any release instead of behind them (many at once with many
        shards). The others see us gone at once (or, if the delete fails, when the record
        runs out) and campaign for our shards, which they take once each is released."""
        with anyio.CancelScope(shield=True):
            if self._left is not None:
                await self._left.wait()
                return
            self._left = left = anyio.Event()
            try:
                await self._delete()
            finally:
                self.joined = False
                self.changed.set()
                self.changed = anyio.Event()
                left.set()

    async def _delete(self) -> None:
        self._renewing.cancel()
        with anyio.move_on_after(loop_span(self.clock, self.timing.retry_period)):
            try:
                await self.store.delete(self.identity)
            except LockError as exc:
                logger.warning(
                    "%s: %s could not delete its membership: %s",
                    self.store.description,
                    self.identity,
                    exc,
                )
            else:
                return
        logger.info("%s: %s leaves when its record runs out", self.store.description, self.identity)
