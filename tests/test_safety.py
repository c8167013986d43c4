"""Safety under faults, in virtual time: never two leaders, and a new leader soon after a crash.

The checks read every candidate's leadership intervals (from the start of its work to the
end of its unwinding) with `History`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election.testing import History, MemoryLockHandle, ScaledClock

LEASE, RENEW, RETRY = 15.0, 10.0, 2.0


@dataclass
class Candidate:
    identity: str
    handle: MemoryLockHandle
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


async def campaign(candidate: Candidate, history: History, rng: random.Random) -> None:
    """Lead again and again; each term works a random while, then steps down."""
    with candidate.scope:
        async with te.open_election(
            candidate.handle,
            identity=candidate.identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        ) as election:
            while True:
                async with election.leading():
                    with history.leading(candidate.identity):
                        await trio.sleep(rng.uniform(1, 300))


async def test_fifty_candidates_for_an_hour_with_crashes_hangs_and_conflicts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rng = random.Random(20261123)
    lock = te.MemoryLock()
    history = History()
    crashes: list[float] = []  # times at which the leader crashed (no release)
    generation = 0

    async def start(nursery: trio.Nursery, index: int) -> Candidate:
        nonlocal generation
        generation += 1
        candidate = Candidate(f"c{index}-{generation}", lock.handle(watch=rng.random() < 0.8))
        nursery.start_soon(campaign, candidate, history, random.Random(rng.random()))
        return candidate

    async with trio.open_nursery() as nursery:
        candidates = [await start(nursery, i) for i in range(50)]
        end = trio.current_time() + 3600
        while trio.current_time() < end:
            await trio.sleep(rng.uniform(5, 40))
            index = rng.randrange(len(candidates))
            victim = candidates[index]
            fault = rng.choice(["crash", "crash-leader", "hang", "fail", "conflict", "slow"])
            if fault == "crash-leader":
                leaders = [c for c in candidates if lock.observe().holder == c.identity]
                if not leaders:
                    continue
                index, victim = candidates.index(leaders[0]), leaders[0]
            if fault.startswith("crash"):
                # a crash: the process stops answering and its work stops; no release
                victim.handle.hang()
                victim.scope.cancel()
                if lock.observe().holder == victim.identity:
                    crashes.append(trio.current_time())
                candidates[index] = await start(nursery, index)
            elif fault == "hang":
                victim.handle.hang()
                nursery.start_soon(heal_later, victim.handle, rng.uniform(1, 30))
            elif fault == "fail":
                victim.handle.fail(rng.randrange(1, 20))
            elif fault == "conflict":
                victim.handle.conflict(rng.randrange(1, 5))
            else:
                victim.handle.delay = rng.uniform(0.1, 3)
                nursery.start_soon(heal_later, victim.handle, rng.uniform(5, 60))
        await trio.sleep(LEASE + RETRY + 1)  # time for a failover after the last crash
        nursery.cancel_scope.cancel()

    history.assert_one_leader()
    assert len(history.intervals) > 30  # leadership moved around a lot
    assert len(crashes) >= 5
    for crashed_at in crashes:
        next_start = history.next_start_after(crashed_at)
        assert next_start is not None
        assert next_start - crashed_at <= LEASE + RETRY, (crashed_at, next_start)


async def heal_later(handle: MemoryLockHandle, after: float) -> None:
    await trio.sleep(after)
    handle.heal()


@pytest.mark.parametrize(
    ("leader_rate", "follower_rate"),
    [(1.0, 1.0), (0.8, 1.1), (1.3, 1.0), (1.0, 1.4)],
)
async def test_partitioned_leader_stops_before_a_skewed_follower_starts(
    autojump_clock: trio.testing.MockClock, leader_rate: float, follower_rate: float
) -> None:
    """Within the rate tolerance lease_duration / renew_deadline (1.5), never two leaders."""
    lock = te.MemoryLock()
    history = History()
    leader_handle = lock.handle()

    async def follower() -> None:
        async with te.elect(lock, identity="f", clock=ScaledClock(follower_rate)):
            with history.leading("f"):
                await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower)
        with pytest.raises(te.LeadershipLost):
            async with te.elect(leader_handle, identity="l", clock=ScaledClock(leader_rate)):
                with history.leading("l"):
                    await trio.sleep(7)
                    leader_handle.hang()  # cut off from the API: renewals stop
                    await trio.sleep_forever()
    history.assert_one_leader()
    assert [iv.identity for iv in history.closed()] == ["l", "f"]


async def test_too_much_rate_skew_is_outside_the_guarantee(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A follower clock running twice as fast as the leader's can start too early: the
    documented limit (tolerance to rate skew is lease_duration / renew_deadline)."""
    lock = te.MemoryLock()
    history = History()
    leader_handle = lock.handle()

    async def follower() -> None:
        async with te.elect(lock, identity="f", clock=ScaledClock(2.0)):
            with history.leading("f"):
                await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower)
        with pytest.raises(te.LeadershipLost):
            async with te.elect(leader_handle, identity="l", clock=ScaledClock(0.5)):
                with history.leading("l"):
                    await trio.sleep(7)
                    leader_handle.hang()
                    await trio.sleep_forever()
    assert history.overlaps()
