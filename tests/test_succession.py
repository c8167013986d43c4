"""The successor named before a release, in virtual time on a `MemoryLock` whose watches lag
its changes by `LAG` (a real apiserver's watches lag its writes by some 20-25 ms).

A watching follower names itself during a term (`Observation.successor`); at the release
it takes the lock at once, and every other follower waits the fallback first. A successor
that has died costs a handover only the fallback; one that stops campaigning withdraws its
name; a nomination is never a renew (an abandoned lease runs out as before).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._timing import (
    MAX_EXPIRY_DELAY_FRACTION,
    NOMINATION_SPREAD,
    RELEASER_DELAY,
    SUCCESSOR_FALLBACK,
    SUCCESSOR_FALLBACK_SPREAD,
)
from trio_election.testing import History, MemoryLockHandle

LAG = 0.025
RETRY = 2.0
FOLLOWERS = 10


@dataclass
class Member:
    identity: str
    handle: MemoryLockHandle
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    step_down: trio.Event = field(default_factory=trio.Event)
    election: te.Election | None = None


@dataclass
class Fleet:
    lock: te.MemoryLock
    members: dict[str, Member]
    history: History

    def writes(self) -> int:
        """Record writes tried at the lock (refused ones too), nominations apart."""
        return sum(
            m.handle.calls["create"] + m.handle.calls["update"] for m in self.members.values()
        )

    def nominations(self) -> tuple[int, int]:
        """Nominations written, and tried (refused ones too)."""
        written = sum(
            m.election.statistics().requests.get(("nominate", "ok"), 0)
            for m in self.members.values()
            if m.election is not None
        )
        return written, sum(m.handle.calls["nominate"] for m in self.members.values())

    async def until(self, condition: object) -> None:
        assert callable(condition)
        while not condition():
            await self.lock.wait_changed()

    async def named(self) -> str:
        """Wait until the lock names a successor for its term; its identity."""
        await self.until(lambda: self.lock.observe().successor is not None)
        successor = self.lock.observe().successor
        assert successor is not None
        return successor

    async def release(self) -> tuple[float, te.Observation]:
        """Make the leader release; when, and the lock as released."""
        holder = self.lock.observe().holder
        assert holder is not None
        self.members[holder].step_down.set()
        await self.until(lambda: self.lock.observe().holder is None)
        return trio.current_time(), self.lock.observe()

    async def next_holder(self) -> tuple[float, str]:
        await self.until(lambda: self.lock.observe().holder is not None)
        holder = self.lock.observe().holder
        assert holder is not None
        return trio.current_time(), holder


async def member(fleet: Fleet, m: Member) -> None:
    with m.scope:
        async with te.open_election(
            m.handle, identity=m.identity, retry_period=RETRY, stop_on_sigterm=False
        ) as m.election:
            while True:
                async with m.election.leading():
                    with fleet.history.leading(m.identity):
                        await m.step_down.wait()
                        m.step_down = trio.Event()


async def open_fleet(stack: AsyncExitStack, size: int = FOLLOWERS + 1) -> Fleet:
    lock = te.MemoryLock()
    fleet = Fleet(lock, {}, History())
    nursery = await stack.enter_async_context(trio.open_nursery())
    stack.callback(nursery.cancel_scope.cancel)
    for i in range(size):
        handle = lock.handle()
        handle.watch_delay = LAG
        m = fleet.members[f"c{i}"] = Member(f"c{i}", handle)
        nursery.start_soon(member, fleet, m)
        if i == 0:
            await fleet.until(lambda: lock.observe().holder == "c0")
    return fleet


async def test_the_named_successor_takes_the_release_at_once_and_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack)
        started = trio.current_time()
        successor = await fleet.named()
        # one nomination in the term, at a random point of its first seconds
        assert trio.current_time() - started <= NOMINATION_SPREAD * RETRY + LAG
        written, tried = fleet.nominations()
        assert written == 1
        # another follower's turn may come before the first one's write reaches it (about
        # one term in thirty here), never the whole fleet's
        assert tried <= FOLLOWERS // 3
        await trio.sleep(2 * RETRY)  # the leader's renewals keep it
        assert fleet.lock.observe().successor == successor
        before = fleet.writes()
        released_at, released = await fleet.release()
        assert released.successor == successor  # the release kept it
        took_at, holder = await fleet.next_holder()
        assert holder == successor
        assert took_at - released_at == pytest.approx(LAG)  # it saw the release, wrote at once
        await trio.sleep(1.0)  # every follower's fallback is long over
        assert fleet.writes() - before == 2  # the release, and the one write that took it
        assert fleet.lock.observe().holder == successor
        # the new term names a successor of its own
        assert await fleet.named() != successor
    fleet.history.assert_one_leader()


async def test_a_dead_successor_costs_the_fallback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack)
        successor = await fleet.named()
        fleet.members[successor].handle.hang()  # it stopped answering: no withdrawal
        released_at, _ = await fleet.release()
        took_at, holder = await fleet.next_holder()
        assert holder != successor
        # the others saw the release LAG after it and waited the fallback, no more
        waited = took_at - released_at - LAG
        assert SUCCESSOR_FALLBACK <= waited <= SUCCESSOR_FALLBACK + SUCCESSOR_FALLBACK_SPREAD
        # and a live follower is named for the new term
        assert await fleet.named() not in (successor, holder)
    fleet.history.assert_one_leader()


async def test_a_successor_that_stops_campaigning_withdraws(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack)
        successor = await fleet.named()
        left_at = trio.current_time()
        fleet.members[successor].scope.cancel()  # e.g. SIGTERM
        await fleet.until(lambda: fleet.lock.observe().successor != successor)
        assert trio.current_time() == left_at  # withdrawn on its way out
        assert fleet.lock.observe().successor is None
        assert fleet.lock.observe().holder == "c0"
        # the others name another one, and the next release is as fast as ever
        other = await fleet.named()
        assert other != successor
        released_at, _ = await fleet.release()
        took_at, holder = await fleet.next_holder()
        assert holder == other
        assert took_at - released_at == pytest.approx(LAG)
    fleet.history.assert_one_leader()


async def test_a_successor_that_leaves_after_the_release_lets_the_others_take_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack)
        successor = await fleet.named()
        fleet.members[successor].handle.watch_delay = 1.0  # it hears of the release late
        released_at, _ = await fleet.release()
        await trio.sleep(LAG)
        fleet.members[successor].scope.cancel()
        await fleet.until(lambda: fleet.lock.observe().successor is None)
        withdrawn_at = trio.current_time()
        took_at, holder = await fleet.next_holder()
        assert holder != successor
        # the others start a short release delay afresh when they see it withdrawn
        assert took_at - withdrawn_at <= LAG + RELEASER_DELAY
        assert took_at - released_at < LAG + SUCCESSOR_FALLBACK
    fleet.history.assert_one_leader()


async def test_a_nomination_is_not_a_renew(autojump_clock: trio.testing.MockClock) -> None:
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack)
        leader = fleet.members["c0"]
        assert leader.election is not None
        await fleet.named()
        leader.handle.hang()  # the leader is cut off right after the nomination
        renewed_at = leader.election.statistics().renewed_at
        assert renewed_at is not None
        await fleet.until(lambda: fleet.lock.observe().holder not in (None, "c0"))
        took_at = trio.current_time()
        # the followers waited out the lease from the last renew they saw, as ever
        expired_at = renewed_at + LAG + 15
        assert expired_at <= took_at <= expired_at + MAX_EXPIRY_DELAY_FRACTION * RETRY + LAG
    fleet.history.assert_one_leader()


async def test_a_term_begun_by_another_client_gets_no_nomination(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An older client-go leader releases with a write based on the object it read last: a
    nomination since would make its release fail. Only terms whose record was written with
    an open nomination (ours) get one."""
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack)
        await fleet.named()
        fleet.members["c0"].handle.hang()  # our leader is cut off; another client takes over
        record = fleet.lock.observe().record
        assert record is not None
        await trio.sleep(20)
        fleet.lock.put_record(
            te.LeaderRecord("go-1", 3600, record.acquire_time, record.renew_time, 99)
        )
        before = fleet.nominations()
        await trio.sleep(10 * NOMINATION_SPREAD * RETRY)
        assert fleet.lock.observe().holder == "go-1"
        assert fleet.nominations() == before
