# mypy: disable-error-code="unreachable"
"""Writes to our lock that this process did not make, in virtual time on a MemoryLock.

A term ends at once when an observed record stops naming us, whoever wrote it (client-go
leaders healed from a partition release a Lease they no longer hold). A record that is one
this process sent, applied late by the server, is recognised as ours. Timing: the defaults,
lease 15 s, renew deadline 10 s, retry 2 s.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._timing import MAX_RELEASE_DELAY
from trio_election.testing import History, MemoryLockHandle

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def released_by_another(transitions: int) -> te.LeaderRecord:
    """What a client-go leader writes when it releases (holder empty, 1 s lease)."""
    return te.LeaderRecord("", 1, NOW, NOW, transitions)


class CheckedWrites:
    """A follower's handle that runs `check()` the moment one of its writes succeeds."""

    def __init__(self, inner: MemoryLockHandle, check: Callable[[], None]) -> None:
        self.inner = inner
        self.check = check
        self.writes = 0

    @property
    def description(self) -> str:
        return self.inner.description

    async def get(self) -> te.Observation:
        return await self.inner.get()

    async def create(self, record: te.LeaderRecord) -> te.Observation:
        result = await self.inner.create(record)
        self._written()
        return result

    async def update(self, record: te.LeaderRecord, based_on: te.Observation) -> te.Observation:
        result = await self.inner.update(record, based_on)
        self._written()
        return result

    def _written(self) -> None:
        self.writes += 1
        self.check()

    def watch(self, after: te.Observation) -> AsyncGenerator[te.Observation]:
        return self.inner.watch(after)


def empty_holder(lock: te.MemoryLock) -> None:
    lock.put_record(released_by_another(0))


def garbage(lock: te.MemoryLock) -> None:
    lock.put_raw("{not json")


def deleted(lock: te.MemoryLock) -> None:
    lock.delete()


def other_holder(lock: te.MemoryLock) -> None:
    lock.put_record(te.LeaderRecord("x", 15, NOW, NOW, 1))


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (empty_holder, "released the lock"),
        (garbage, "cannot be read"),
        (deleted, "deleted"),
        (other_holder, "x holds the lock"),
    ],
    ids=["empty-holder", "garbage", "deleted", "other-holder"],
)
async def test_a_foreign_write_ends_the_term_in_the_instant_it_is_seen(
    autojump_clock: trio.testing.MockClock, write: Callable[[te.MemoryLock], None], reason: str
) -> None:
    lock = te.MemoryLock()
    cancelled_at = math.nan
    terms: list[te.Leadership] = []
    with pytest.raises(te.LeadershipLost, match=reason), trio.fail_after(60):
        async with te.elect(lock, identity="a") as leadership:
            terms.append(leadership)
            await trio.sleep(3.5)
            write(lock)
            try:
                await trio.sleep_forever()
            finally:
                cancelled_at = trio.current_time()
    assert cancelled_at == 3.5
    assert terms[0].lost


async def test_a_foreign_release_cancels_the_leader_before_a_follower_writes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The client-go overlap: its late release frees our live Lease; a watching follower
    takes it at once. Our leader's work must already be cancelled when that write lands."""
    lock = te.MemoryLock()
    leader: te.Leadership | None = None
    follower_started = math.nan

    def leader_already_stopped() -> None:
        assert leader is not None
        assert leader.cancel_scope.cancel_called, "follower wrote while the leader still led"

    follower_handle = CheckedWrites(lock.handle(), leader_already_stopped)

    async def follower() -> None:
        nonlocal follower_started
        async with te.elect(follower_handle, identity="b"):
            follower_started = trio.current_time()

    async with trio.open_nursery() as nursery:
        with pytest.raises(te.LeadershipLost, match="released the lock"), trio.fail_after(60):
            async with te.elect(lock, identity="a") as leadership:
                leader = leadership
                nursery.start_soon(follower)
                await trio.sleep(5)
                lock.put_record(released_by_another(0))  # the healed client-go leader
                await trio.sleep_forever()
    assert 5 <= follower_started <= 5 + MAX_RELEASE_DELAY  # the release delay only
    assert follower_handle.writes >= 1


async def test_the_leader_reopens_a_watch_that_breaks_during_its_term(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    async with te.open_election(handle, identity="a") as election, election.leading():
        await trio.sleep(1)
        assert election.statistics().watching
        handle.fail(1)  # the watch stream breaks (an apiserver restart)
        lock.put_record(te.LeaderRecord("a", 15, NOW, NOW, 0))  # wakes the stream to fail
        await trio.testing.wait_all_tasks_blocked()
        assert not election.statistics().watching
        await trio.sleep(2 * 2.2)  # at most one poll delay later it watches again
        assert election.statistics().watching
        assert election.is_leader


async def test_a_renew_applied_late_is_recognised_as_ours(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A renew that timed out here but that the server applied later (after a stall) names
    us with a version we never saw: it is ours, so we lead again at once."""
    lock = te.MemoryLock()
    stalled = StalledWrites(lock.handle())
    async with te.open_election(stalled, identity="a", release_on_exit=False) as election:
        async with election.leading() as first:
            stalled.stall_next(apply_after=13)  # the renew at 2 lands at 15
            await trio.sleep_forever()  # cancelled at the deadline
        assert first.lost
        assert trio.current_time() == 10  # no renew got through
        await trio.sleep(6)
        assert lock.observe().holder == "a"  # the late renew landed at 15
        caplog.clear()
        async with election.leading() as second:
            assert trio.current_time() == 16  # at once, not after a lease
            assert second.term > first.term
    assert "applied late" in caplog.text
    assert "unique identity" not in caplog.text


class StalledWrites:
    """A handle whose next update reaches the server only `apply_after` seconds later,
    while the caller waits for an answer that never comes (a stalled API server)."""

    def __init__(self, inner: MemoryLockHandle) -> None:
        self.inner = inner
        self._stall: float | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def description(self) -> str:
        return self.inner.description

    def stall_next(self, apply_after: float) -> None:
        self._stall = apply_after

    async def get(self) -> te.Observation:
        return await self.inner.get()

    async def create(self, record: te.LeaderRecord) -> te.Observation:
        return await self.inner.create(record)

    async def update(self, record: te.LeaderRecord, based_on: te.Observation) -> te.Observation:
        if self._stall is None:
            return await self.inner.update(record, based_on)
        delay, self._stall = self._stall, None

        async def apply_late() -> None:
            await trio.sleep(delay)
            await self.inner.update(record, based_on)

        trio.lowlevel.spawn_system_task(apply_late)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    def watch(self, after: te.Observation) -> AsyncGenerator[te.Observation]:
        return self.inner.watch(after)


async def test_an_unreadable_record_is_logged_once_per_value(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "trio_election")
    lock = te.MemoryLock()
    lock.put_raw("garbage-1")
    async with te.open_election(lock, identity="b"):
        for _ in range(3):
            await trio.sleep(1)
            lock.put_raw("garbage-2")
        await trio.sleep(1)
        lock.put_raw("x" * 5000)
        await trio.testing.wait_all_tasks_blocked()
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 3, warnings
    assert "memory/memory" in warnings[0]
    assert "garbage-1" in warnings[0]
    assert "garbage-2" in warnings[1]
    assert len(warnings[2]) < 400  # a long value is cut short


async def test_taking_over_an_unreadable_record_never_lowers_the_term(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_record(te.LeaderRecord("x", 15, NOW, NOW, 7))
    async with te.open_election(lock, identity="b") as election:
        await trio.sleep(1)
        lock.put_raw("{garbage")  # the transitions count is gone with it
        async with election.leading() as leadership:
            assert 16 <= trio.current_time() <= 16.2  # waited out as any lease
            assert leadership.term == 8


async def test_a_foreign_release_while_the_leader_is_cut_off_overlaps_until_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The documented limit: two faults at once. The leader cannot see the foreign release
    (it is cut off from the API), a follower takes the freed lock at once, and the leader's
    work stops only at its renew deadline. The overlap is measured, and bounded by it."""
    lock = te.MemoryLock()
    history = History()
    leader_handle = lock.handle()

    async def follower() -> None:
        async with te.elect(lock, identity="f", stop_on_sigterm=False):
            with history.leading("f"):
                await trio.sleep(20)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower)
        with pytest.raises(te.LeadershipLost, match="renew deadline"):
            async with te.elect(leader_handle, identity="l"):
                with history.leading("l"):
                    await trio.sleep(5)  # last renew sent at 4: deadline 14
                    leader_handle.hang()  # cut off
                    lock.put_record(released_by_another(0))  # and released by another
                    await trio.sleep_forever()
    (first, second), *_ = history.overlaps()
    assert (first.identity, second.identity) == ("l", "f")
    overlap = first.end - second.start
    assert 14 - 5 - MAX_RELEASE_DELAY <= overlap <= 14 - 5  # taken after the release delay
    assert overlap <= 10  # at most renew_deadline


async def test_the_same_garbage_written_again_is_waited_out_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Found by the generated schedules: a polling follower that missed a write between two
    identical unreadable records must not think the second one is the first, long expired."""
    lock = te.MemoryLock()
    lock.put_raw("{garbage")
    async with te.open_election(lock.handle(watch=False), identity="b") as election:
        await trio.sleep(10)
        lock.put_record(te.LeaderRecord("x", 15, NOW, NOW, 1))  # missed between two polls
        lock.put_raw("{garbage")  # the same bytes again, a new version
        async with election.leading():
            assert trio.current_time() >= 10 + 15  # counted from the second garbage


async def test_a_release_never_clears_a_term_that_another_process_of_our_identity_began(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The lock of a leader is deleted; while the leader's work unwinds, its successor with
    the same identity (a restarted container keeps its hostname) finds no lock and creates
    it. The old leader's release then reads a record naming its identity, but not of the
    term it led: it must leave it, or a follower would lead beside the successor."""
    lock = te.MemoryLock()
    successor_leads = trio.Event()
    old_cancelled = trio.Event()
    old_released = trio.Event()

    async def old_leader() -> None:
        with pytest.raises(te.LeadershipLost, match="deleted"):
            async with te.elect(lock, identity="pod-0"):
                lock.delete()  # by another process: the work is cancelled
                try:
                    await trio.sleep_forever()
                finally:
                    old_cancelled.set()
                    with trio.CancelScope(shield=True):
                        await successor_leads.wait()  # its clean-up outlasts the restart
        old_released.set()

    async def successor() -> None:
        async with te.elect(lock, identity="pod-0") as leadership:
            successor_leads.set()
            await old_released.wait()
            await trio.sleep(30)
            assert not leadership.lost
            record = lock.observe().record
            assert record is not None
            assert record.holder_identity == "pod-0"

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(old_leader)
            await old_cancelled.wait()  # the deletion was seen (by its watch or a renew)
            assert lock.observe().record is None
            nursery.start_soon(successor)
