"""The face of sharded leadership: `open_shards()` and `Shards`.

One election per shard (the engine of `open_election`, so each shard has all of its
guarantees), the group's `Membership`, and one task that keeps the target owner of every
shard (`_assign.assign`) up to date. While `serve()` runs, this member is in the group and
runs one task per shard: it campaigns for the shard only while the shard is assigned to it,
runs the work while it leads, and when the shard is assigned elsewhere cancels the work
and releases the shard once the work has unwound.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, final

import anyio
import anyio.abc

from .._async_with import async_with_only
from .._binding import check_client, load_config
from .._core._clock import LoopClock
from .._core._exceptions import ConfigError, Terminated
from .._core._options import ElectionOptions
from .._core._timing import Timing, check_identity, default_identity
from .._election import open_election_engine, sigterm_scope
from .._kube import KubeClient
from .._kube_locks._spec import check_lock_string
from .._loop import require_event_loop
from ._assign import assign
from ._kube import GROUP_LABEL, KubeMemberStore, shard_locks
from ._members import Membership
from ._memory import MemoryLockGroup

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

    from .._core._clock import ElectionClock
    from .._core._engine import Engine
    from .._core._leadership import Leadership
    from .._core._lock import LockHandle
    from .._core._metering import Statistics
    from .._election import Election
    from ._members import MemberStore

__all__ = ["Shards", "open_shards", "open_shards_with"]

logger = logging.getLogger("trio_election")

_LABEL_VALUE_MAX = 63
"""Kubernetes' limit on a label value (the group's name labels its membership Leases)."""


@final
class Shards:
    """This member's part in a shard group, from `open_shards()`.

    It follows every shard lock and the group's membership while it is open; it joins the
    group, campaigns and works only while a task is inside `serve()`.
    """

    def __init__(
        self,
        *,
        identity: str,
        description: str,
        elections: list[tuple[Election, Engine]],
        membership: Membership,
        nursery: anyio.abc.TaskGroup,
        release_on_exit: bool,
    ) -> None:
        self._identity = identity
        self._description = description
        self._elections = elections
        self._membership = membership
        self._nursery = nursery
        self._release_on_exit = release_on_exit
        self._target: tuple[str | None, ...] = (None,) * len(elections)
        self._members: frozenset[str] = frozenset()
        self._owned: frozenset[int] = frozenset()
        self._owned_seq = 0
        self._moves = {"acquired": 0, "lost": 0}
        self._changed = anyio.Event()
        self._poked = anyio.Event()
        self._serving = False
        self._failure: BaseException | None = None
        self._failed = anyio.Event()

    def __repr__(self) -> str:
        return (
            f"<Shards {self._identity!r} on {self._description} "
            f"owned={sorted(self._owned)!r} members={len(self._members)}>"
        )

    # ------------------------------------------------------------------ queries
    @property
    def identity(self) -> str:
        return self._identity

    @property
    def shards(self) -> int:
        """The shard count S; shards are numbered ``0 .. S - 1``."""
        return len(self._elections)

    @property
    def owned(self) -> frozenset[int]:
        """The shards this member leads now (their work is running or unwinding)."""
        return self._owned

    @property
    def members(self) -> frozenset[str]:
        """The live members this member sees, itself included while it serves."""
        return self._members

    @property
    def owners(self) -> tuple[str | None, ...]:
        """The holder of each shard's lock as last seen (None: free)."""
        return tuple(election.leader for election, _ in self._elections)

    @property
    def targets(self) -> tuple[str | None, ...]:
        """Who should lead each shard, as this member computes it now."""
        return self._target

    @property
    def group(self) -> str:
        """The group: ``leases/<namespace>/<name>``, or ``memory/<name>``."""
        return self._description

    @property
    def moves(self) -> Mapping[str, int]:
        """How many times a shard came to this member (``acquired``: its work started) and
        went (``lost``: its work unwound, whether it moved, its lease was lost, or the member
        left), since `open_shards()` was entered."""
        return dict(self._moves)

    def statistics(self) -> tuple[Statistics, ...]:
        """Each shard's `Election.statistics()`, by shard number (for metrics)."""
        return tuple(election.statistics() for election, _ in self._elections)

    async def changes(self) -> AsyncGenerator[frozenset[int]]:
        """Yield `owned`, then each change of it; a slow reader gets the latest value."""
        seq = self._owned_seq
        last = self._owned
        yield last
        while True:
            while self._owned_seq == seq:
                await self._changed.wait()
            seq = self._owned_seq
            if self._owned != last:
                last = self._owned
                yield last

    # ------------------------------------------------------------------ serving
    async def serve(
        self,
        work: Callable[[int, Leadership], Awaitable[object]],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join the group and run ``await work(shard, leadership)`` for each shard led.

        Runs until cancelled. `work` runs in its shard's cancel scope, which is cancelled when
        the shard can no longer be held safely or is assigned to another member; the shard
        is released after `work` has unwound. A `work` that returns keeps its shard (led, and
        renewed) until the shard moves. On cancellation every work is cancelled, and the
        member leaves the group (its record deleted, so the others rebalance at once) before
        it releases any shard, each after its work unwound. An exception of `work`
        ends `serve()` the same way and comes out unchanged. One task at a time may serve.
        """
        if self._serving:
            raise RuntimeError("another task is already inside serve() of these shards")
        self._serving = True
        membership = self._membership
        membership.join()
        self._poke()
        runners = anyio.CancelScope()
        done = anyio.Event()

        async def run_all() -> None:
            try:
                with runners:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(membership.renew_loop)
                        for shard in range(self.shards):
                            tg.start_soon(self._run_shard, shard, work)
            finally:
                done.set()

        try:
            self._nursery.start_soon(run_all)
            task_status.started()
            await self._failed.wait()
        finally:
            await membership.leave()
            self._poke()
            runners.cancel()
            with anyio.CancelScope(shield=True):
                await done.wait()
            self._serving = False
        if self._failure is not None:
            raise self._failure

    def _mine(self, shard: int) -> bool:
        return self._target[shard] == self._identity and self._membership.joined

    async def _run_shard(
        self, shard: int, work: Callable[[int, Leadership], Awaitable[object]]
    ) -> None:
        election, engine = self._elections[shard]
        while True:
            while not self._mine(shard):
                await self._changed.wait()
            moving = [False]
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._guard, shard, tg.cancel_scope, moving)
                async with election.leading() as leadership:
                    self._set_owned(self._owned | {shard})
                    try:
                        await work(shard, leadership)
                        await anyio.sleep_forever()
                    except Exception as exc:
                        if self._failure is None:
                            self._failure = exc
                        self._failed.set()
                        return
                    finally:
                        self._set_owned(self._owned - {shard})
                        # a shard assigned elsewhere is handed over at once; one left by
                        # leaving or by a cancellation from outside as release_on_exit says,
                        # once the member is out of the group (its record deleted first).
                        # Moving is what the guard saw: the shard may be assigned back to us
                        # while its work unwinds, which is no reason to leave.
                        moved = moving[0] or (
                            self._membership.joined and self._target[shard] != self._identity
                        )
                        engine.release_on_exit = self._release_on_exit or moved
                        if self._release_on_exit and not moved and not leadership.lost:
                            await self._membership.leave()
                tg.cancel_scope.cancel()

    async def _guard(self, shard: int, scope: anyio.CancelScope, moving: list[bool]) -> None:
        """Cancel `scope` (the campaign or the work of `shard`) once it is not ours; set
        ``moving[0]`` when that is because it is assigned elsewhere (not because we leave)."""
        while self._mine(shard):
            await self._changed.wait()
        moving[0] = self._membership.joined
        scope.cancel()

    def _set_owned(self, owned: frozenset[int]) -> None:
        if owned != self._owned:
            self._moves["acquired"] += len(owned - self._owned)
            self._moves["lost"] += len(self._owned - owned)
            self._owned = owned
            self._owned_seq += 1
            self._wake()

    # ------------------------------------------------------------------ the assignment
    def _poke(self) -> None:
        self._poked.set()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def run_assigner(self) -> None:
        """Keep `targets` and `members` up to date: at each change of a shard's holder or of
        the membership, and when a member's record runs out."""
        membership = self._membership
        while True:
            self._poked = anyio.Event()
            changed = membership.changed
            live = membership.live()
            target = assign(live, self.shards, dict(enumerate(self.owners)))
            if target != self._target or live != self._members:
                if live != self._members:
                    logger.info(
                        "%s: %s sees %d members: %s",
                        self._description,
                        self._identity,
                        len(live),
                        ", ".join(sorted(live)),
                    )
                self._target, self._members = target, live
                self._wake()
            with anyio.CancelScope(deadline=membership.expires_at()):
                async with anyio.create_task_group() as tg:

                    async def wait(event: anyio.Event, scope: anyio.CancelScope) -> None:
                        await event.wait()
                        scope.cancel()

                    tg.start_soon(wait, self._poked, tg.cancel_scope)
                    tg.start_soon(wait, changed, tg.cancel_scope)


@async_with_only("open_shards")
@asynccontextmanager
async def open_shards(
    lock: str | MemoryLockGroup,
    *,
    shards: int,
    identity: str | None = None,
    client: KubeClient | None = None,
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
    release_on_exit: bool = True,
    stop_on_sigterm: bool = True,
    events: str | None = None,
    clock: ElectionClock | None = None,
) -> AsyncGenerator[Shards]:
    """Take part in a group that spreads `shards` shards over its live members.

    `lock` names the group: a `MemoryLockGroup`, or a string ``"leases/<namespace>/<name>"``
    (shard Leases ``<name>-shard-<i>``, membership Leases labelled with the group; see
    docs/sharding.md). The options are those of `open_election()` (but `on_leader_change`);
    they apply to every shard's election and to the membership record. Blocks on entry
    until every shard lock and the membership have been read once. `serve()` joins the
    group and runs the work; leaving the block cancels it.

    SIGTERM (`stop_on_sigterm`) cancels the block: the member leaves the group, every work
    unwinds, every shard is released, and `Terminated` is raised. Raises `ConfigError` for
    invalid arguments, and errors that retrying cannot cure unwrapped.
    """
    options: ElectionOptions[KubeClient] = ElectionOptions(
        identity=identity,
        client=client,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        release_on_exit=release_on_exit,
        stop_on_sigterm=stop_on_sigterm,
        events=events,
        clock=clock,
    )
    async with open_shards_with(lock, shards, options) as group:
        yield group


@asynccontextmanager
async def open_shards_with(
    lock: str | MemoryLockGroup, shards: int, options: ElectionOptions[KubeClient]
) -> AsyncGenerator[Shards]:
    """`open_shards(lock, shards=shards, **options)`, for the faces that hold the options as
    one value. `options.on_leader_change` must be None: each shard's is the group's."""
    require_event_loop()
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigError(f"shards must be a whole number of at least 1, got {shards!r}")
    if options.on_leader_change is not None:
        raise ConfigError(
            "open_shards() has no on_leader_change: follow the shards with shards.changes() "
            "or shards.owners"
        )
    check_client(options.client)
    timing = Timing.validate(options.lease_duration, options.renew_deadline, options.retry_period)
    me = default_identity() if options.identity is None else check_identity(options.identity)
    the_clock = LoopClock() if options.clock is None else options.clock
    # every shard's election: one identity and clock, a shard that moves handed over at
    # once, SIGTERM the group's (below), and each change of holder wakes the assignment
    shard_options = dataclasses.replace(
        options,
        identity=me,
        clock=the_clock,
        release_on_exit=True,
        stop_on_sigterm=False,
    )
    raised: BaseException | None = None
    with sigterm_scope(options.stop_on_sigterm) as (scope, watch), scope:
        async with _open_access(lock, me, shards, options.client) as (description, handles, store):
            membership = Membership(
                store, identity=me, shards=shards, timing=timing, clock=the_clock
            )
            await membership.first_read()
            async with AsyncExitStack() as stack:
                pokes: list[Callable[[], None]] = []

                def poke(_: str | None) -> None:
                    for each in pokes:
                        each()

                elections = [
                    await stack.enter_async_context(
                        open_election_engine(handle, _with_callback(shard_options, poke))
                    )
                    for handle in handles
                ]
                async with anyio.create_task_group() as nursery:
                    group = Shards(
                        identity=me,
                        description=description,
                        elections=elections,
                        membership=membership,
                        nursery=nursery,
                        release_on_exit=options.release_on_exit,
                    )
                    pokes.append(group._poke)  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]
                    nursery.start_soon(membership.follow)
                    nursery.start_soon(group.run_assigner)
                    try:
                        yield group
                    except BaseException as exc:  # re-raised below, unwrapped
                        raised = exc
                    finally:
                        nursery.cancel_scope.cancel()
    if watch is not None and watch.received:
        raise Terminated from raised
    if raised is not None:
        raise raised


def _with_callback(
    options: ElectionOptions[KubeClient], poke: Callable[[str | None], None]
) -> ElectionOptions[KubeClient]:
    return dataclasses.replace(options, on_leader_change=poke)


@asynccontextmanager
async def _open_access(
    lock: object, identity: str, shards: int, client: KubeClient | None
) -> AsyncGenerator[tuple[str, list[LockHandle], MemberStore]]:
    """The group's description, one lock handle per shard, and the membership store."""
    if isinstance(lock, MemoryLockGroup):
        connection = lock.connect(identity)
        handles: list[LockHandle] = [connection.shard_handle(i) for i in range(shards)]
        yield connection.description, handles, connection
        return
    if not isinstance(lock, str):
        raise ConfigError(
            f"the lock of open_shards() must be a MemoryLockGroup or a string like "
            f"'leases/<namespace>/<name>'; got {lock!r}"
        )
    resource, namespace, name = check_lock_string(lock)
    if resource != "leases":
        raise ConfigError(
            f"invalid shard group {lock!r}: shards are Leases; write 'leases/<namespace>/<name>'"
        )
    if len(name) > _LABEL_VALUE_MAX:
        raise ConfigError(
            f"invalid shard group {lock!r}: its name is the value of the label "
            f"{GROUP_LABEL} on the membership Leases, at most {_LABEL_VALUE_MAX} characters; "
            f"use a shorter name"
        )
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(KubeClient(load_config()))
        ns = client.namespace if namespace is None else namespace
        leases: list[LockHandle] = [*shard_locks(ns, name, shards, client)]
        yield f"leases/{ns}/{name}", leases, KubeMemberStore(ns, name, client)
