"""`MemoryLockGroup`: the shard locks and membership records of one group, in memory.

What `MemoryLock` is to one election, for `open_shards()`: shared by the members of one
process (tests, examples). Each member reaches it through its own `MemoryGroupConnection`
(one `MemoryLockHandle` per shard, and the membership store), which tests cut off with
`hang()`, `fail()` and `heal()`, as a partition or a crash would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import anyio

from .._core._exceptions import LockError
from .._core._memory import MemoryLock, MemoryLockHandle
from ._members import MemberEntry, decode, encode

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from ._members import MemberRecord

__all__ = ["MemoryGroupConnection", "MemoryLockGroup"]


@final
class MemoryLockGroup:
    """The shard locks (``<name>-shard-<i>``, each a `MemoryLock`) and the membership
    records of one group, held in this process's memory.

    `put_member_raw()` and `delete_member()` change the records as another process would;
    `connection(identity)` is the latest connection of that member (for its faults).
    """

    __slots__ = ("_changed", "_connections", "_locks", "_members", "_name")

    def __init__(self, name: str = "memory") -> None:
        self._name = name
        self._locks: dict[int, MemoryLock] = {}
        self._members: dict[str, str] = {}
        self._changed = anyio.Event()
        self._connections: dict[str, MemoryGroupConnection] = {}

    def __repr__(self) -> str:
        return f"MemoryLockGroup({self._name!r}, members={sorted(self._members)!r})"

    @property
    def name(self) -> str:
        return self._name

    def shard_lock(self, index: int) -> MemoryLock:
        """The lock of shard `index`."""
        if index not in self._locks:
            self._locks[index] = MemoryLock(f"{self._name}-shard-{index}")
        return self._locks[index]

    def members(self) -> dict[str, str]:
        """The membership records as stored, by name."""
        return dict(self._members)

    def put_member_raw(self, name: str, raw: str) -> None:
        """Store a record under `name` as another process would (any text)."""
        self._members[name] = raw
        self._bump()

    def delete_member(self, name: str) -> None:
        """Delete the record `name`, as another process would."""
        if self._members.pop(name, None) is not None:
            self._bump()

    def connection(self, identity: str) -> MemoryGroupConnection:
        """The connection the member `identity` opened last."""
        return self._connections[identity]

    def connect(self, identity: str) -> MemoryGroupConnection:
        """A new connection for the member `identity`."""
        connection = MemoryGroupConnection(self, identity)
        self._connections[identity] = connection
        return connection

    def entries(self) -> dict[str, MemberEntry]:
        return {name: MemberEntry(name, decode(raw), raw) for name, raw in self._members.items()}

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _bump(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


@final
class MemoryGroupConnection:
    """One member's access to a `MemoryLockGroup`: a handle per shard, and the membership
    store, with faults for all of them at once."""

    __slots__ = (
        "_failing",
        "_group",
        "_hanging",
        "_healed",
        "_identity",
        "_write_delay",
        "handles",
    )

    def __init__(self, group: MemoryLockGroup, identity: str) -> None:
        self._group = group
        self._identity = identity
        self.handles: dict[int, MemoryLockHandle] = {}
        self._failing = False
        self._hanging = False
        self._healed = anyio.Event()
        self._write_delay = 0.0

    def __repr__(self) -> str:
        return f"<MemoryGroupConnection of {self._identity!r} to {self._group!r}>"

    @property
    def description(self) -> str:
        return f"memory/{self._group.name}"

    def shard_handle(self, index: int) -> MemoryLockHandle:
        """This member's handle of shard `index`."""
        if index not in self.handles:
            self.handles[index] = self._group.shard_lock(index).handle()
            if self._hanging:
                self.handles[index].hang()
            if self._failing:
                self.handles[index].fail()
        return self.handles[index]

    # faults
    def hang(self) -> None:
        """Every call of this member blocks until `heal()` (a partition)."""
        self._hanging = True
        for handle in self.handles.values():
            handle.hang()

    def fail(self) -> None:
        """Every call of this member fails until `heal()`."""
        self._failing = True
        for handle in self.handles.values():
            handle.fail()

    def delay_membership_writes(self, seconds: float) -> None:
        """Every write of this member's record (renew, delete) takes `seconds` to land, as
        behind a busy connection; 0 ends it."""
        self._write_delay = seconds

    def heal(self) -> None:
        self._failing = self._hanging = False
        for handle in self.handles.values():
            handle.heal()
        self._healed.set()
        self._healed = anyio.Event()

    async def _enter(self, operation: str) -> None:
        while self._hanging:
            await self._healed.wait()
        await anyio.lowlevel.checkpoint()
        if self._failing:
            raise LockError(f"{self.description}: injected failure of {operation}")

    # the membership store
    async def list(self) -> Mapping[str, MemberEntry]:
        await self._enter("list")
        return self._group.entries()

    async def watch(self) -> AsyncGenerator[Mapping[str, MemberEntry]]:
        await self._enter("watch")
        while True:
            entries = self._group.entries()
            yield entries
            while self._group.entries() == entries:
                await self._group.wait_changed()
            while self._hanging:
                await self._healed.wait()
            if self._failing:
                raise LockError(f"{self.description}: injected failure of the watch stream")

    async def put(self, record: MemberRecord) -> None:
        await self._enter("put")
        await anyio.sleep(self._write_delay)
        self._group.put_member_raw(record.identity, encode(record))

    async def delete(self, identity: str) -> None:
        await self._enter("delete")
        await anyio.sleep(self._write_delay)
        self._group.delete_member(identity)
