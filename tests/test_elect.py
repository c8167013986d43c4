# mypy: disable-error-code="unreachable"
# (the tests assert on properties that change under them; mypy narrows them as constants)
"""The trio face, `elect()` and `open_election()`, in virtual time on a MemoryLock.

Timing used throughout: client-go's defaults, lease 15 s, renew deadline 10 s, retry 2 s.
The random delay before an expiry-based takeover is at most 0.1 * retry = 0.2 s.
"""

from __future__ import annotations

import datetime as dt
import math
from contextlib import aclosing
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._timing import MAX_RELEASE_DELAY
from trio_election.testing import History, LoopClock, MemoryLockHandle

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

MAX_DELAY = 0.2  # MAX_EXPIRY_DELAY_FRACTION * retry_period at the defaults


def held_by(holder: str, transitions: int = 0, duration: int = 15) -> te.LeaderRecord:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return te.LeaderRecord(
        holder_identity=holder,
        lease_duration_seconds=duration,
        acquire_time=now,
        renew_time=now,
        leader_transitions=transitions,
    )


async def test_free_lock_is_taken_at_once(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    start = trio.current_time()
    async with te.elect(lock, identity="a") as leadership:
        assert trio.current_time() == start
        assert leadership.identity == "a"
        assert leadership.term == 0
        assert leadership.acquired_at == start
        assert leadership.deadline == start + 10
        assert not leadership.lost
        record = lock.observe().record
        assert record is not None
        assert record.holder_identity == "a"
        assert record.lease_duration_seconds == 15
    # released on exit: empty holder with a one-second lease, transitions kept
    record = lock.observe().record
    assert record is not None
    assert record.holder_identity == ""
    assert record.lease_duration_seconds == 1
    assert record.leader_transitions == 0


async def test_record_stores_whole_seconds_rounded_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    async with te.elect(lock, identity="a", lease_duration=7.2, renew_deadline=5, retry_period=1):
        record = lock.observe().record
        assert record is not None
        assert record.lease_duration_seconds == 8


@pytest.mark.parametrize(("stored", "waited"), [(15, 15), (30, 30), (0, 15), (-4, 15)])
async def test_follower_takes_over_at_observed_time_plus_the_records_duration(
    autojump_clock: trio.testing.MockClock, stored: int, waited: float
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("dead", transitions=3, duration=stored))
    start = trio.current_time()
    async with te.elect(lock, identity="b") as leadership:
        took = trio.current_time() - start
        assert waited <= took <= waited + MAX_DELAY
        assert leadership.term == 4


async def test_renewals_keep_the_lease(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    history = History()

    async def follower() -> None:
        async with te.open_election(lock, identity="b") as election, election.leading():
            with history.leading("b"):
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        async with te.elect(lock, identity="a") as leadership:
            nursery.start_soon(follower)
            with history.leading("a"):
                await trio.sleep(600)
            assert not leadership.lost
            # renewed every 2 s, each renew moving the deadline to send time + 10 s
            assert trio.current_time() + 8 <= leadership.deadline <= trio.current_time() + 10
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [iv.identity for iv in history.closed()] == ["a", "b"]
    history.assert_one_leader()


async def test_renewals_of_elections_that_began_together_are_spread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # one election renews every 2 s from the start of its term; while another election of
    # the same process renews too, its first renew comes at a random point 1 to 2 s after
    # its term began, then every 2 s: never later than the period, so never nearer the
    # deadline
    deadlines: dict[str, list[float]] = {"a": [], "b": []}

    async def lead(identity: str, lock: te.MemoryLock, started: trio.Event) -> None:
        async with te.elect(lock, identity=identity) as leadership:
            started.set()
            await trio.sleep(0.1)  # between renews: each sample sees the one before it
            for _ in range(3):
                await trio.sleep(2)
                deadlines[identity].append(leadership.deadline)

    async with trio.open_nursery() as nursery:
        a_started, b_started = trio.Event(), trio.Event()
        nursery.start_soon(lead, "a", te.MemoryLock(), a_started)
        await a_started.wait()
        nursery.start_soon(lead, "b", te.MemoryLock(), b_started)
    assert deadlines["a"] == [12, 14, 16]  # renews at 2, 4, 6: deadline = send time + 10
    first = deadlines["b"][0] - 10
    assert 1 <= first < 2
    assert deadlines["b"] == pytest.approx([first + 10, first + 12, first + 14])


async def test_renew_uses_one_write_when_the_cache_is_current(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    async with te.elect(handle, identity="a"):
        handle.calls.clear()
        await trio.sleep(20.5)
    # ten renews, one update each, no reads; then the release: one conditional write from
    # the version this process wrote last, no read first
    assert handle.calls["update"] == 10 + 1
    assert handle.calls["get"] == 0


async def test_failed_fast_renew_falls_back_to_read_and_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    async with te.elect(handle, identity="a") as leadership:
        handle.conflict(1)
        handle.calls.clear()
        await trio.sleep(2.5)
        assert (handle.calls["update"], handle.calls["get"]) == (2, 1)
        assert leadership.deadline == 12
        assert lock.observe().holder == "a"


async def test_failing_renewals_cancel_the_body_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    cancelled_at = math.nan
    with pytest.raises(te.LeadershipLost, match="renew deadline"):
        async with te.elect(handle, identity="a") as leadership:
            await trio.sleep(5)
            handle.fail()  # renews at 2 and 4 succeeded: deadline 4 + 10
            try:
                await trio.sleep_forever()
            finally:
                cancelled_at = trio.current_time()
                assert leadership.lost
    assert cancelled_at == 14


async def test_hanging_lock_call_cannot_delay_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    cancelled_at = math.nan
    with pytest.raises(te.LeadershipLost):
        async with te.elect(handle, identity="a"):
            await trio.sleep(5)
            handle.hang()
            try:
                await trio.sleep_forever()
            finally:
                cancelled_at = trio.current_time()
    assert cancelled_at == 14
    # after a loss the release is one try bounded by retry_period: it gave up 2 s later
    assert trio.current_time() == 16


async def test_lost_is_raised_even_when_the_body_swallows_the_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    swallowed = False
    with pytest.raises(te.LeadershipLost):
        async with te.elect(handle, identity="a"):
            handle.fail()
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                swallowed = True  # bad practice, but elect() must still report the loss
    assert swallowed


async def test_late_successful_renew_does_not_revive_the_term(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    with pytest.raises(te.LeadershipLost):
        async with te.elect(handle, identity="a") as leadership:
            handle.delay = 11.0  # every call now answers after the deadline
            await trio.sleep(30)
            # the calls did succeed, late; the term stays lost
            assert leadership.lost
            assert leadership.deadline == 10


async def test_renew_that_changes_nothing_does_not_move_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    frozen = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lock = te.MemoryLock()
    handle = lock.handle()
    clock = LoopClock(wall=lambda: frozen)
    deadlines: list[float] = []
    with pytest.raises(te.LeadershipLost):
        async with te.elect(handle, identity="a", clock=clock) as leadership:
            deadlines.append(leadership.deadline)
            await trio.sleep_forever()
    # the renews went through but wrote nothing new: followers saw no change
    assert handle.calls["update"] >= 4
    assert deadlines == [10]
    assert trio.current_time() >= 10


async def test_leader_that_sees_another_holder_stops_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    cancelled_at = math.nan
    with pytest.raises(te.LeadershipLost, match="intruder"):
        async with te.elect(lock, identity="a"):
            await trio.sleep(3.5)
            lock.put_record(held_by("intruder", transitions=7))
            try:
                await trio.sleep_forever()
            finally:
                cancelled_at = trio.current_time()
    assert cancelled_at == 3.5
    # no release over someone else's record
    record = lock.observe().record
    assert record is not None
    assert record.holder_identity == "intruder"


@pytest.mark.parametrize("ending", ["return", "raise", "cancel"])
async def test_release_lets_a_watching_follower_lead_at_once(
    autojump_clock: trio.testing.MockClock, ending: str
) -> None:
    lock = te.MemoryLock()
    history = History()
    taken = trio.Event()

    async def follower() -> None:
        async with te.open_election(lock, identity="b") as election, election.leading():
            with history.leading("b"):
                taken.set()
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as outer:
            async with te.elect(lock, identity="a"):
                nursery.start_soon(follower)
                with history.leading("a"):
                    await trio.sleep(7)
                    if ending == "raise":
                        with pytest.raises(ValueError, match="boom"):
                            raise ValueError("boom")
                    if ending == "cancel":
                        outer.cancel()
                        await trio.lowlevel.checkpoint()
        await taken.wait()
        nursery.cancel_scope.cancel()
    first, second = history.closed()
    assert (first.identity, second.identity) == ("a", "b")
    assert first.end == 7
    # taken as soon as its watch delivers the release, after its short release delay
    assert 7 <= second.start <= 7 + MAX_RELEASE_DELAY
    record = lock.observe().record
    assert record is not None
    assert record.leader_transitions == 1


async def test_body_exception_comes_out_unchanged(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    error = KeyError("mine")
    with pytest.raises(KeyError) as caught:
        async with te.elect(lock, identity="a"):
            raise error
    assert caught.value is error
    assert type(caught.value) is KeyError
    record = lock.observe().record
    assert record is not None
    assert record.holder_identity == ""  # released before the exception came out


async def test_polling_follower_leads_within_two_retry_periods_after_release(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    history = History()
    done = trio.Event()

    async def follower() -> None:
        async with (
            te.open_election(lock.handle(watch=False), identity="b") as election,
            election.leading(),
        ):
            with history.leading("b"):
                done.set()

    async with trio.open_nursery() as nursery:
        async with te.elect(lock, identity="a"):
            nursery.start_soon(follower)
            with history.leading("a"):
                await trio.sleep(31)
        await done.wait()
    first, second = history.closed()
    assert first.end == 31
    assert 0 < second.start - first.end <= 2.2 * 2


async def test_no_release_without_release_on_exit(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    async with te.elect(lock, identity="a", release_on_exit=False):
        pass
    assert lock.observe().holder == "a"


async def test_unreadable_record_is_waited_out_not_stolen(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_raw("{not json")
    start = trio.current_time()
    async with te.open_election(lock, identity="b") as election:
        assert election.leader == te.UNKNOWN_HOLDER
        async with election.leading():
            took = trio.current_time() - start
    assert 15 <= took <= 15 + MAX_DELAY


async def test_unreadable_record_that_keeps_changing_is_never_taken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_raw("garbage 0")
    async with te.open_election(lock, identity="b") as election:
        with trio.move_on_after(120):
            async with trio.open_nursery() as nursery:

                async def writer() -> None:
                    for i in range(1, 1000):
                        await trio.sleep(5)
                        lock.put_raw(f"garbage {i}")

                nursery.start_soon(writer)
                async with election.leading():
                    pytest.fail("took a lock that someone keeps writing")
        assert election.leader == te.UNKNOWN_HOLDER


async def test_record_naming_us_written_by_another_process_is_waited_out(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("a"))
    start = trio.current_time()
    async with te.elect(lock, identity="a"):
        assert 15 <= trio.current_time() - start <= 15 + MAX_DELAY
    assert "unique identity" in caplog.text


async def test_deleted_lock_is_recreated_after_the_holders_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("x", transitions=5))
    async with te.open_election(lock, identity="b") as election:
        assert election.leader == "x"
        await trio.sleep(3)
        lock.delete()
        await trio.testing.wait_all_tasks_blocked()
        assert election.leader is None
        async with election.leading() as leadership:
            assert 15 <= trio.current_time() <= 15 + MAX_DELAY
            assert leadership.term == 6


async def test_missing_lock_never_held_is_created_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    async with te.elect(lock, identity="a") as leadership:
        assert trio.current_time() == 0
        assert leadership.term == 0


async def test_leader_stops_at_once_when_its_lock_is_deleted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # a candidate that never saw a holder may create the lock at once: the leader must stop
    lock = te.MemoryLock()
    cancelled_at = math.nan
    with pytest.raises(te.LeadershipLost, match="deleted"):
        async with te.elect(lock, identity="a"):
            await trio.sleep(3)
            lock.delete()
            try:
                await trio.sleep_forever()
            finally:
                cancelled_at = trio.current_time()
    assert cancelled_at == 3


async def test_leader_stops_when_the_deleted_lock_was_recreated_by_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle(watch=False)
    with pytest.raises(te.LeadershipLost, match="y holds the lock"):
        async with te.elect(handle, identity="a"):
            await trio.sleep(2.5)
            lock.delete()
            lock.put_record(held_by("y"))
            await trio.sleep_forever()
    assert trio.current_time() == 4  # the next renew found out


async def test_transitions_count_changes_of_holder(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    terms: list[int] = []
    for who in ["a", "b", "b", "a"]:
        async with te.elect(lock, identity=who) as leadership:
            terms.append(leadership.term)
    # every take-over of a released (empty) record counts, as in client-go
    assert terms == [0, 1, 2, 3]


async def test_leading_again_after_a_loss(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    async with te.open_election(lock, identity="a") as election:
        async with election.leading() as first:
            lock.put_record(held_by("x", transitions=first.term + 1))
            await trio.sleep_forever()
        assert first.lost
        assert not election.is_leader
        assert election.leader == "x"
        async with election.leading() as second:
            assert 15 <= trio.current_time() <= 15 + MAX_DELAY
            assert second.term == first.term + 2
            assert election.is_leader
        assert not second.lost


async def test_only_one_task_inside_leading(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    async with te.open_election(lock, identity="a") as election, election.leading():
        with pytest.raises(RuntimeError, match="already inside leading"):
            async with election.leading():
                pass


async def test_open_election_only_observes_outside_leading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    async with te.open_election(lock, identity="a") as election:
        await trio.sleep(100)
        assert election.leader is None
        assert not lock.observe().exists
        assert not election.is_leader


async def test_changes_yields_current_then_each_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("x"))
    seen: list[str | None] = []

    async def read(election: te.Election) -> None:
        async for leader in election.changes():
            seen.append(leader)

    async with (
        te.open_election(lock, identity="watcher") as election,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(read, election)
        await trio.sleep(1)
        lock.put_record(held_by("y"))
        await trio.sleep(1)
        lock.put_record(held_by("", duration=1))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert seen == ["x", "y", None]


async def test_changes_gives_a_slow_reader_the_latest_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("x"))
    async with te.open_election(lock, identity="watcher") as election:
        changes = election.changes()
        assert await anext(changes) == "x"
        for name in ["y", "z", "w"]:
            lock.put_record(held_by(name))
            await trio.sleep(1)
        assert await anext(changes) == "w"
        await changes.aclose()


async def test_is_leader_is_false_once_the_deadline_fired(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    async with te.open_election(handle, identity="a") as election:
        async with election.leading() as leadership:
            assert election.is_leader
            handle.hang()
            with trio.CancelScope(shield=True):
                await trio.sleep(10)
                assert not election.is_leader
                assert leadership.lost
        assert leadership.lost


async def test_statistics(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    async with te.open_election(lock, identity="a") as election, election.leading():
        await trio.sleep(6.5)
        stats = election.statistics()
    assert stats.identity == "a"
    assert stats.leader == "a"
    assert stats.is_leader
    assert stats.renewals == 3
    assert stats.watching


async def test_statistics_say_what_an_operator_asks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    async with te.open_election(handle, identity="a") as election:
        async with election.leading():
            await trio.sleep(4.5)  # renews at 2 and 4
            handle.conflict(1)  # the renew at 6: a conflict, then read and write
            await trio.sleep(2)
            lock.put_record(held_by("x"))  # taken from us at 6.5
            await trio.sleep_forever()
        stats = election.statistics()
    assert stats.terms == 1
    assert stats.time_leading == 6.5
    assert stats.renewals == 3
    assert stats.renew_latency_last == 0  # virtual time: requests take no time
    assert stats.renew_latency_max == 0
    assert stats.renewed_at == 6
    assert stats.conflicts == 1
    assert stats.losses == {"other_holder": 1}
    assert stats.requests[("create", "ok")] == 1  # the acquiring write
    assert stats.requests[("update", "ok")] == 3  # the renews at 2, 4 and 6 (slow path)
    assert stats.requests[("update", "conflict")] == 1
    assert stats.requests[("get", "ok")] >= 2  # the first read, the slow path


async def test_health_check_fails_while_the_lock_names_us_but_renewals_are_overdue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """client-go's HealthzAdaptor rule: a leader cut off from the API for longer than its
    lease plus the tolerance is unhealthy, although its work was cancelled long before."""
    lock = te.MemoryLock()
    handle = lock.handle()
    async with te.open_election(handle, identity="a") as election:
        health = te.HealthCheck(election, tolerance=20)
        assert health.healthy  # not leading
        async with election.leading():
            await trio.sleep(3)
            assert health.healthy
            handle.hang()  # cut off: the last renew was sent at 2
            await trio.sleep_forever()  # cancelled at the deadline, 12
        assert trio.current_time() == 12 + 2  # the release gave up after a retry period
        await trio.sleep(35 - 14)
        assert health.healthy  # 33 s since the last renew: within 15 + 20
        await trio.sleep(3)
        reason = health.check()
        assert reason is not None
        assert "names a as leader, but its last renew was 36.0 s ago" in reason
        handle.heal()
        await trio.sleep(2.2 * 2 + 1)  # the follower reads the lock again
        assert election.leader == "a"  # the record was never released: still unhealthy
        assert not health.healthy
    lock.put_record(held_by("b"))
    async with te.open_election(lock, identity="a") as election:
        assert te.HealthCheck(election).healthy  # someone else leads


class LaggingWatch:
    """A handle whose watch delivers every event `lag` seconds late."""

    def __init__(self, lock: te.MemoryLock, lag: float) -> None:
        self.inner = lock.handle()
        self.lag = lag
        self.description = self.inner.description
        self.get = self.inner.get
        self.create = self.inner.create
        self.update = self.inner.update

    async def watch(self, after: te.Observation) -> AsyncGenerator[te.Observation]:
        async with aclosing(self.inner.watch(after)) as events:
            async for event in events:
                await trio.sleep(self.lag)
                yield event


async def test_a_lagging_watch_cannot_undo_a_newer_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("x", transitions=1))
    handle = LaggingWatch(lock, lag=20)
    async with te.open_election(handle, identity="b") as election:
        await trio.sleep(1)
        lock.put_record(held_by("x", transitions=1, duration=16))  # x renews
        await trio.sleep(1)
        lock.put_record(held_by("", transitions=1, duration=1))  # x releases
        async with election.leading() as leadership:
            # b's write based on its old view conflicted; its read found the lock free
            # (released: taken after the release delay)
            assert 15 <= trio.current_time() <= 15 + MAX_DELAY + MAX_RELEASE_DELAY
            await trio.sleep(30)  # the watch now delivers x's old renewal, long stale
            assert election.leader == "b"
        assert trio.current_time() >= 45  # the body was not cut short
        assert not leadership.lost


async def test_a_loss_at_the_deadline_is_logged_once_and_raised_within_a_retry_period(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    with pytest.raises(te.LeadershipLost, match="renew deadline"):
        async with te.elect(handle, identity="a"):
            await trio.sleep(5)  # renewed at 2 and 4
            handle.fail()  # the apiserver stops answering
            await trio.sleep_forever()
    losses = [r for r in caplog.records if " lost " in r.getMessage()]
    assert len(losses) == 1
    assert losses[0].levelname == "WARNING"
    assert "injected failure" in losses[0].getMessage()  # the last renew error
    assert trio.current_time() - 14 <= 2  # deadline 4 + 10; the release is one short try


async def test_cancelled_during_an_outage_the_release_gives_up_within_a_retry_period(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C (or SIGTERM) while the apiserver does not answer: no hang of renew_deadline."""
    lock = te.MemoryLock()
    handle = lock.handle()
    with trio.move_on_after(7):
        async with te.elect(handle, identity="a"):
            await trio.sleep(5)
            handle.hang()
            await trio.sleep_forever()
    assert trio.current_time() == 7 + 2
    assert "other candidates take over when its lease runs out" in caplog.text
    assert lock.observe().holder == "a"  # followers wait out the lease


class WatchFaults:
    """A handle whose watch can be made to fail (LockError) or be refused
    (WatchUnavailable) while reads and writes work."""

    def __init__(self, inner: MemoryLockHandle) -> None:
        self.inner = inner
        self.watch_error: type[te.LockError] | None = None
        self.watches = 0

    @property
    def description(self) -> str:
        return self.inner.description

    async def get(self) -> te.Observation:
        return await self.inner.get()

    async def create(self, record: te.LeaderRecord) -> te.Observation:
        return await self.inner.create(record)

    async def update(self, record: te.LeaderRecord, based_on: te.Observation) -> te.Observation:
        return await self.inner.update(record, based_on)

    async def watch(self, after: te.Observation) -> AsyncGenerator[te.Observation]:
        self.watches += 1
        if self.watch_error is not None:
            await trio.lowlevel.checkpoint()
            raise self.watch_error("injected watch fault")
        async with aclosing(self.inner.watch(after)) as events:
            async for event in events:
                yield event


@pytest.mark.parametrize("error", [te.LockError, te.WatchUnavailable])
async def test_a_follower_that_had_to_poll_watches_again_later(
    autojump_clock: trio.testing.MockClock, error: type[te.LockError]
) -> None:
    lock = te.MemoryLock()
    lock.put_record(held_by("x"))
    handle = WatchFaults(lock.handle())
    handle.watch_error = error
    async with te.open_election(handle, identity="b") as election:
        await trio.sleep(30)
        assert not election.statistics().watching  # polling meanwhile
        handle.watch_error = None
        await trio.sleep(30 * 2.2 * 2 + 10)  # 30 polls of at most 2.2 retry periods each
        assert election.statistics().watching


async def test_an_unreachable_server_does_not_make_followers_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """During an apiserver restart reads fail too: watching again is the right thing."""
    lock = te.MemoryLock()
    lock.put_record(held_by("x"))
    handle = lock.handle()
    async with te.open_election(handle, identity="b") as election:
        await trio.sleep(1)
        handle.fail()  # everything fails: the server is down
        lock.put_record(held_by("x", transitions=1))  # wakes the watch stream to fail
        await trio.sleep(20)
        handle.heal()
        await trio.sleep(2 * 2.2 + 1)
        assert election.statistics().watching
        assert election.leader == "x"
