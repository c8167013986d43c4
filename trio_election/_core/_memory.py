"""`MemoryLock`: an in-process lock, for tests, examples and single-process programs.

One `MemoryLock` object is the shared lock; each candidate talks to it through its own
`MemoryLockHandle` (`elect()` makes one per candidate when given the lock object). A handle
can be told to delay, fail, hang or answer with a conflict, independently of the others, so
tests can break one candidate's connection on demand, and its watch can lag the lock's
changes (`watch_delay`), as a real apiserver's watches lag its writes. The lock behaves like
the Kubernetes API where it matters: every change gets a new version, a write that changes
nothing keeps the version (and wakes no watcher), and writes carry a precondition. A
successor's nomination is kept beside the record, as an annotation would be.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import TYPE_CHECKING, final

import anyio

from ._exceptions import LockConflict, LockError, LockNotFound, WatchUnavailable
from ._lock import MISSING, LeaderRecord, Nomination, Observation

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

__all__ = ["MemoryLock", "MemoryLockHandle"]


def _raw(record: LeaderRecord) -> str:
    def stamp(t: object) -> str:
        return "" if t is None else str(t)

    return (
        f"{record.holder_identity}|{record.lease_duration_seconds}|"
        f"{stamp(record.acquire_time)}|{stamp(record.renew_time)}|{record.leader_transitions}"
    )


@final
class MemoryLock:
    """A lock object held in this process's memory.

    The object starts missing (like a Lease that does not exist yet). The methods
    `put_record`, `put_raw` and `delete` change it as another process would, for tests;
    `wait_changed()` blocks until it changes.
    """

    __slots__ = (
        "_changed",
        "_exists",
        "_name",
        "_nominee",
        "_raw",
        "_record",
        "_revision",
        "_watch",
    )

    def __init__(self, name: str = "memory", *, watch: bool = True) -> None:
        self._name = name
        self._watch = watch
        self._exists = False
        self._record: LeaderRecord | None = None
        self._raw = ""
        self._nominee: Nomination | None = None
        self._revision = 0
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        return f"MemoryLock({self._name!r}, holder={self.observe().holder!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def revision(self) -> int:
        """Counts every change of the object (including deletion)."""
        return self._revision

    def handle(self, *, watch: bool | None = None) -> MemoryLockHandle:
        """A new handle for one candidate; `watch=False` makes it poll instead of watch."""
        return MemoryLockHandle(self, watch=self._watch if watch is None else watch)

    def observe(self) -> Observation:
        """The object as it is now (no faults, no checkpoint)."""
        if not self._exists:
            return MISSING
        return Observation(
            exists=True,
            record=self._record,
            version=str(self._revision),
            raw=self._raw,
            nominee=self._nominee,
        )

    async def wait_changed(self) -> None:
        """Block until the object changes (a write that changed it, or its deletion)."""
        await self._changed.wait()

    def put_record(self, record: LeaderRecord) -> None:
        """Write `record` unconditionally, as another process would."""
        self._store(record, _raw(record))

    def put_raw(self, raw: str) -> None:
        """Store a record that cannot be read (garbage)."""
        self._store(None, raw)

    def put_nominee(self, nominee: Nomination | None) -> None:
        """Store (None: remove) a successor's nomination beside the record, unconditionally;
        the record is kept. Nothing happens while the object is missing."""
        if self._exists and nominee != self._nominee:
            self._nominee = nominee
            self._bump()

    def _store_with(self, record: LeaderRecord, nominee: Nomination) -> None:
        """`put_record` and `put_nominee` as one change."""
        raw = _raw(record)
        if self._exists and (raw, nominee) == (self._raw, self._nominee):
            return
        self._exists = True
        self._record = record
        self._raw = raw
        self._nominee = nominee
        self._bump()

    def delete(self) -> None:
        """Delete the lock object."""
        if self._exists:
            self._exists = False
            self._record = None
            self._raw = ""
            self._nominee = None
            self._bump()

    def _store(self, record: LeaderRecord | None, raw: str) -> None:
        if self._exists and raw == self._raw:
            return  # a write that changes nothing keeps the version
        self._exists = True
        self._record = record
        self._raw = raw
        self._bump()

    def _bump(self) -> None:
        self._revision += 1
        self._changed.set()
        self._changed = anyio.Event()


@final
class MemoryLockHandle:
    """One candidate's access to a `MemoryLock`, with faults that tests switch on and off.

    Faults apply to every call of this handle only: `delay` seconds first, then a hang
    (until `heal()`), a failure (`LockError`) or, for writes, a conflict (`LockConflict`).
    `watch_delay` (seconds, 0 by default) is how long after a change of the lock this
    handle's watch delivers it (reads and writes are not delayed). `calls` counts the calls
    by operation name.
    """

    __slots__ = (
        "_conflicts",
        "_failures",
        "_hanging",
        "_healed",
        "_lock",
        "_watch",
        "calls",
        "delay",
        "watch_delay",
    )

    def __init__(self, lock: MemoryLock, *, watch: bool = True) -> None:
        self._lock = lock
        self._watch = watch
        self.delay = 0.0
        self.watch_delay = 0.0
        self._failures: float = 0
        self._conflicts = 0
        self._hanging = False
        self._healed = anyio.Event()
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<MemoryLockHandle of {self._lock!r}>"

    @property
    def lock(self) -> MemoryLock:
        return self._lock

    @property
    def description(self) -> str:
        return f"memory/{self._lock.name}"

    @property
    def lock_key(self) -> MemoryLock:
        """The lock itself: every handle of one `MemoryLock` is on the same lock."""
        return self._lock

    # faults
    def fail(self, count: int | None = None) -> None:
        """Make the next `count` calls (all calls until `heal()` if None) raise `LockError`."""
        self._failures = math.inf if count is None else count

    def conflict(self, count: int = 1) -> None:
        """Make the next `count` writes raise `LockConflict` without writing."""
        self._conflicts = count

    @property
    def faults_pending(self) -> float:
        """How many injected failures and conflicts are still to come (`math.inf` after
        `fail(None)`): a fault of the next calls is over only once they have been made."""
        return self._failures + self._conflicts

    def hang(self) -> None:
        """Make calls block until `heal()`, like requests to a server that stopped answering."""
        self._hanging = True

    def heal(self) -> None:
        """Clear every fault; hung calls go on."""
        self._failures = 0
        self._conflicts = 0
        self.delay = 0.0
        self._hanging = False
        self._healed.set()
        self._healed = anyio.Event()

    async def _enter(self, operation: str, *, write: bool = False) -> None:
        self.calls[operation] += 1
        if self.delay:
            await anyio.sleep(self.delay)
        while self._hanging:
            await self._healed.wait()
        await anyio.lowlevel.checkpoint()
        if self._failures:
            self._failures -= 1
            raise LockError(f"{self.description}: injected failure of {operation}")
        if write and self._conflicts:
            self._conflicts -= 1
            raise LockConflict(f"{self.description}: injected conflict on {operation}")

    # the lock protocol
    async def get(self) -> Observation:
        await self._enter("get")
        return self._lock.observe()

    async def create(self, record: LeaderRecord) -> Observation:
        await self._enter("create", write=True)
        if self._lock.observe().exists:
            raise LockConflict(f"{self.description} already exists")
        self._lock.put_record(record)
        return self._lock.observe()

    async def update(self, record: LeaderRecord, based_on: Observation) -> Observation:
        await self._enter("update", write=True)
        current = self._lock.observe()
        if not current.exists:
            raise LockNotFound(f"{self.description} does not exist")
        if current.version != based_on.version:
            raise LockConflict(
                f"{self.description} changed since version {based_on.version} "
                f"(now {current.version})"
            )
        self._lock.put_record(record)
        return self._lock.observe()

    async def nominate(self, nominee: Nomination | None, based_on: Observation) -> Observation:
        await self._enter("nominate", write=True)
        current = self._lock.observe()
        if not current.exists:
            raise LockNotFound(f"{self.description} does not exist")
        if current.version != based_on.version:
            raise LockConflict(
                f"{self.description} changed since version {based_on.version} "
                f"(now {current.version})"
            )
        self._lock.put_nominee(nominee)
        return self._lock.observe()

    async def take(
        self, record: LeaderRecord, based_on: Observation, nominee: Nomination
    ) -> Observation:
        await self._enter("update" if based_on.exists else "create", write=True)
        current = self._lock.observe()
        if not based_on.exists:
            if current.exists:
                raise LockConflict(f"{self.description} already exists")
        elif not current.exists:
            raise LockNotFound(f"{self.description} does not exist")
        elif current.version != based_on.version:
            raise LockConflict(
                f"{self.description} changed since version {based_on.version} "
                f"(now {current.version})"
            )
        self._lock._store_with(record, nominee)  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]
        return self._lock.observe()

    async def watch(self, after: Observation) -> AsyncGenerator[Observation]:
        if not self._watch:
            raise WatchUnavailable(f"{self.description} is set to poll, not watch")
        await self._enter("watch")
        seen = self._lock.observe()
        if (seen.exists, seen.version) != (after.exists, after.version):
            yield seen
        revision = self._lock.revision
        lagging: deque[tuple[float, Observation]] = deque()  # changes not yet delivered
        while True:
            while self._lock.revision == revision:
                if lagging and anyio.current_time() >= lagging[0][0]:
                    break
                deadline = lagging[0][0] if lagging else math.inf
                with anyio.move_on_at(deadline):
                    await self._lock.wait_changed()
            if self._lock.revision != revision:
                revision = self._lock.revision
                lagging.append((anyio.current_time() + self.watch_delay, self._lock.observe()))
            if anyio.current_time() < lagging[0][0]:
                continue
            # a broken or silent connection delivers nothing
            while self._hanging:
                await self._healed.wait()
            if self._failures:
                self._failures -= 1
                raise LockError(f"{self.description}: injected failure of the watch stream")
            if self.watch_delay:
                yield lagging.popleft()[1]
            else:  # the state as it is now, what changed while the connection hung included
                lagging.clear()
                revision = self._lock.revision
                yield self._lock.observe()
