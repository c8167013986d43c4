"""The lock protocol: all the engine knows of a lock.

A *lock handle* is one candidate's connection to one lock object. It can read the object,
create it, update it with a precondition, and watch it for changes. Handles know nothing of
timing; the engine knows nothing of HTTP. Kubernetes locks (`LeaseLock`, `EndpointsLock`,
`ConfigMapLock`, `MultiLock`) and `MemoryLock` handles all implement `LockHandle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import AsyncGenerator

__all__ = [
    "UNKNOWN_HOLDER",
    "LeaderRecord",
    "LockHandle",
    "NominatingHandle",
    "Nomination",
    "Observation",
]

UNKNOWN_HOLDER = "leaderelection.k8s.io/unknown"
"""The holder reported for a lock whose record is there but cannot be read (client-go's name)."""


@final
@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """The election record stored in a lock, in client-go's terms.

    `lease_duration_seconds` is 0 when the stored value is missing or not a positive whole
    number; the engine then uses its own lease duration. Times are timezone-aware UTC.
    """

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: _dt.datetime | None = None
    renew_time: _dt.datetime | None = None
    leader_transitions: int = 0


@final
@dataclass(frozen=True, slots=True)
class Nomination:
    """A follower's claim to take the lock next: `identity`, for the term `term` (the
    record's transitions count when it named itself).

    Kept beside the record, never in it (an annotation that client-go does not read), and
    only good for its term: once the holder changes, the count moves on and the nomination
    names no one (`successor`). An empty `identity` names no one but says that the term's
    holder takes nominations: our leaders write it with the record that begins their term
    (`NominatingHandle.take`), because they read the lock again before releasing it. Older
    client-go leaders release with a write based on the object they read last, which a
    nomination since would make fail, so their terms get none.
    """

    identity: str
    term: int


@final
@dataclass(frozen=True, slots=True)
class Observation:
    """One read of a lock object.

    - `exists` is False when the object is missing (404 or a DELETED event).
    - `record` is None when the object exists but its record cannot be read (garbage); an
      object without a record reads as an empty `LeaderRecord` (free).
    - `version` is the object's `resourceVersion` (an opaque token; "" when missing).
    - `raw` is the record as stored, used to tell whether the record changed (client-go
      compares the raw record, not the object's version).
    - `nominee` is the follower named to take the lock next, as stored beside the record
      (None when none is; see `successor` for whether it is still good).
    """

    exists: bool
    record: LeaderRecord | None
    version: str
    raw: str = ""
    nominee: Nomination | None = None

    @property
    def holder(self) -> str | None:
        """The holder's identity, `None` when free or missing, `UNKNOWN_HOLDER` if unreadable."""
        if not self.exists:
            return None
        if self.record is None:
            return UNKNOWN_HOLDER
        return self.record.holder_identity or None

    @property
    def successor(self) -> str | None:
        """The follower named to take the lock next, when its nomination is for the
        current term (the record's transitions count) and names someone other than the
        holder; None otherwise."""
        nominee, record = self.nominee, self.record
        if nominee is None or record is None or not self.exists:
            return None
        if nominee.term != record.leader_transitions or not nominee.identity:
            return None
        if nominee.identity == record.holder_identity:
            return None
        return nominee.identity


MISSING = Observation(exists=False, record=None, version="", raw="")
"""The observation of a lock object that does not exist."""


@runtime_checkable
class LockHandle(Protocol):
    """One candidate's access to one lock object.

    Every method may raise `LockError` (the engine retries) or another `ElectionError`
    (fatal: a missing permission, a broken configuration), and may be cancelled at any
    checkpoint; the engine bounds every call with a timeout.
    """

    @property
    def description(self) -> str:
        """A short name for logs and errors, e.g. ``leases/default/my-app``."""
        ...

    async def get(self) -> Observation:
        """Read the lock object; a missing object reads as `exists=False` (not an error)."""
        ...

    async def create(self, record: LeaderRecord) -> Observation:
        """Create the lock object holding `record`.

        Raises `LockConflict` if it already exists.
        """
        ...

    async def update(self, record: LeaderRecord, based_on: Observation) -> Observation:
        """Replace the record, only if the object is still at `based_on.version`.

        Raises `LockConflict` if the object changed since, `LockNotFound` if it is gone.
        Other parts of the object (labels, other annotations) are kept.
        """
        ...

    def watch(self, after: Observation) -> AsyncGenerator[Observation]:
        """Yield each new state of the lock object after `after` (a missing object too).

        May end when the server closes the stream; the caller then watches again from the
        last observation. Raises `WatchUnavailable` when the lock cannot be watched, so the
        caller polls instead. Callers close the iterator (`contextlib.aclosing`).
        """
        ...


@runtime_checkable
class NominatingHandle(LockHandle, Protocol):
    """A lock handle that can also name the follower who takes the lock next.

    Optional: the engine nominates only through handles that have `nominate`; with any
    other a released lock is taken after the short random release delay alone.
    """

    async def nominate(self, nominee: Nomination | None, based_on: Observation) -> Observation:
        """Store `nominee` beside the record (None: remove it), only if the object is still
        at `based_on.version`; the record itself (the holder fields) is not touched.

        Raises `LockConflict` if the object changed since, `LockNotFound` if it is gone.
        """
        ...

    async def take(
        self, record: LeaderRecord, based_on: Observation, nominee: Nomination
    ) -> Observation:
        """Write `record` and, in the same write, `nominee` beside it: `create` when
        `based_on` is missing, else `update` (only if still at `based_on.version`).

        Raises what `create` and `update` raise.
        """
        ...
