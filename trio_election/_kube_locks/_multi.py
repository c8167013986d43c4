"""`MultiLock`: one record written to two objects, to move a running fleet to a new lock.

client-go's ``endpointsleases`` and ``configmapsleases`` (1.17 to 1.27): the *primary* is the
old lock (Endpoints or ConfigMap), the *secondary* the new one (a Lease). The migration
takes two rollouts and never has two leaders:

1. the fleet runs ``endpoints`` (old lock only);
2. roll out ``endpointsleases``: the leader writes both objects; candidates still on the old
   lock see the primary as before, new ones see both;
3. roll out ``leases``: candidates on the Lease only see the record the multi-lock leader
   kept writing there.

How it reads and writes (client-go's rules, with preconditions on both objects):

- **get** reads the primary, then the secondary. A missing primary reads as missing. A
  missing secondary leaves the primary's record standing (a leader on the old lock only).
  When the two name different holders, the holder reads as `UNKNOWN_HOLDER`; its lease
  expires like any other, but every change to either object restarts the wait.
- **create** creates the primary, then the secondary. If the primary exists already it is
  accepted only when it names the same holder as the record (client-go ignores the
  conflict; a primary naming someone else is a `LockConflict` here).
- **update** writes the primary (precondition: its version as read), then the secondary
  (precondition too, or created when it was missing). A failure after the primary was
  written leaves the two naming different holders until the next write: readers then see
  `UNKNOWN_HOLDER`, never a free lock.
- **nominate** names the successor on the primary (precondition: its version as read), the
  object whose record stands, then reads the secondary again.
- **watch** is not offered (`WatchUnavailable`): the record lives in two objects and a
  change to either must restart the expiry wait, so candidates poll every
  ``retry_period * (1 + 1.2 * random())``, as client-go always does. Once the fleet is on the Lease
  alone, it watches again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, final

from .._core._exceptions import ConfigError, LockConflict, LockNotFound, WatchUnavailable
from .._core._lock import MISSING, UNKNOWN_HOLDER, LeaderRecord, Nomination, Observation
from ._base import KubeLock
from ._locks import ConfigMapLock, EndpointsLock, LeaseLock

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from .._kube import KubeClient

__all__ = ["MultiLock"]

_SEP = "|"


def _pack(primary: Observation, secondary: Observation) -> str:
    return primary.version + _SEP + (secondary.version if secondary.exists else "")


def _unpack(version: str) -> tuple[str, str]:
    primary, sep, secondary = version.rpartition(_SEP)
    if not sep:
        return version, ""
    return primary, secondary


def _existing(version: str) -> Observation:
    return Observation(exists=True, record=None, version=version)


@final
class MultiLock:
    """The record written to a primary lock and a secondary lock (client-go's MultiLock).

    `primary` is the lock the fleet uses now (usually `EndpointsLock` or `ConfigMapLock`),
    `secondary` the one it moves to (usually `LeaseLock` on the same namespace and name).
    See the module documentation for the exact rules. Implements `LockHandle`.
    """

    __slots__ = ("_primary", "_secondary")

    def __init__(self, primary: KubeLock, secondary: KubeLock) -> None:
        for role, lock in (("primary", primary), ("secondary", secondary)):
            if not isinstance(lock, KubeLock):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ConfigError(
                    f"MultiLock {role} must be a LeaseLock, EndpointsLock or ConfigMapLock, "
                    f"got {lock!r}"
                )
        if (primary.resource, primary.namespace, primary.name) == (
            secondary.resource,
            secondary.namespace,
            secondary.name,
        ):
            raise ConfigError(f"MultiLock needs two different objects, got {primary!r} twice")
        self._primary = primary
        self._secondary = secondary

    def __repr__(self) -> str:
        return f"MultiLock({self._primary!r}, {self._secondary!r})"

    @property
    def primary(self) -> KubeLock:
        return self._primary

    @property
    def secondary(self) -> KubeLock:
        return self._secondary

    @property
    def client(self) -> KubeClient | None:
        return self._primary.client

    @property
    def description(self) -> str:
        """client-go's name when it has one (``endpointsleases/<ns>/<name>``)."""
        p, s = self._primary, self._secondary
        if (
            isinstance(p, EndpointsLock | ConfigMapLock)
            and isinstance(s, LeaseLock)
            and (p.namespace, p.name) == (s.namespace, s.name)
        ):
            return f"{p.resource}{s.resource}/{p.namespace}/{p.name}"
        return f"{p.description}+{s.description}"

    @property
    def lock_key(self) -> tuple[str | None, str]:
        """The API server and the two objects: equal for every handle on this pair."""
        client = self.client
        return (None if client is None else client.config.server, self.description)

    def with_client(self, client: KubeClient) -> MultiLock:
        """A fresh handle on the same two objects through `client`."""
        return MultiLock(self._primary.with_client(client), self._secondary.with_client(client))

    def _combine(self, primary: Observation, secondary: Observation) -> Observation:
        if not primary.exists:
            return MISSING
        version = _pack(primary, secondary)
        if not secondary.exists:
            return Observation(
                exists=True,
                record=primary.record,
                version=version,
                raw=primary.raw,
                nominee=primary.nominee,
            )
        record = primary.record
        theirs = UNKNOWN_HOLDER if secondary.record is None else secondary.record.holder_identity
        if record is not None and record.holder_identity != theirs:
            record = dataclasses.replace(record, holder_identity=UNKNOWN_HOLDER)
        raw = primary.raw + "," + secondary.raw
        return Observation(
            exists=True, record=record, version=version, raw=raw, nominee=primary.nominee
        )

    async def get(self) -> Observation:
        """Read the primary, then the secondary (not when the primary is missing)."""
        primary = await self._primary.get()
        if not primary.exists:
            return MISSING
        return self._combine(primary, await self._secondary.get())

    async def create(self, record: LeaderRecord) -> Observation:
        """Create the primary, then the secondary; `LockConflict` if another got there first."""
        return await self._create(record, None)

    async def take(
        self, record: LeaderRecord, based_on: Observation, nominee: Nomination
    ) -> Observation:
        """`create` or `update` with `record`, with `nominee` beside it on the primary."""
        if based_on.exists:
            return await self._update(record, based_on, nominee)
        return await self._create(record, nominee)

    async def _create(self, record: LeaderRecord, nominee: Nomination | None) -> Observation:
        try:
            if nominee is None:
                primary = await self._primary.create(record)
            else:
                primary = await self._primary.take(record, MISSING, nominee)
        except LockConflict:
            primary = await self._primary.get()
            holder = primary.record.holder_identity if primary.record is not None else None
            if not primary.exists or holder != record.holder_identity:
                raise
        secondary = await self._secondary.create(record)
        return self._combine(primary, secondary)

    async def update(self, record: LeaderRecord, based_on: Observation) -> Observation:
        """Write the primary, then the secondary, each only if unchanged since `based_on`."""
        return await self._update(record, based_on, None)

    async def _update(
        self, record: LeaderRecord, based_on: Observation, nominee: Nomination | None
    ) -> Observation:
        if not based_on.exists:
            raise LockNotFound(f"{self.description}: nothing to update (the object is missing)")
        primary_version, secondary_version = _unpack(based_on.version)
        if nominee is None:
            primary = await self._primary.update(record, _existing(primary_version))
        else:
            primary = await self._primary.take(record, _existing(primary_version), nominee)
        if secondary_version:
            try:
                secondary = await self._secondary.update(record, _existing(secondary_version))
            except LockNotFound:
                secondary = await self._secondary.create(record)
        else:
            secondary = await self._secondary.create(record)
        return self._combine(primary, secondary)

    async def nominate(self, nominee: Nomination | None, based_on: Observation) -> Observation:
        """Name the successor on the primary, only if it is unchanged since `based_on`; the
        secondary is read again for the observation returned."""
        if not based_on.exists:
            raise LockNotFound(f"{self.description}: nothing to update (the object is missing)")
        primary_version, _ = _unpack(based_on.version)
        primary = await self._primary.nominate(nominee, _existing(primary_version))
        return self._combine(primary, await self._secondary.get())

    async def watch(self, after: Observation) -> AsyncGenerator[Observation]:
        """Not offered: raises `WatchUnavailable` at once, so that candidates poll."""
        del after
        raise WatchUnavailable(f"{self.description} spans two objects: it is polled, not watched")
        yield MISSING  # type: ignore[unreachable]  # pragma: no cover - an async generator
