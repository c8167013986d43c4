"""A fenced store accepts only the latest term's writes, under generated schedules, in
virtual time.

Two to four candidates on one `MemoryLock` lead again and again; each term's work first
claims the store (a write of its fence: the pattern of docs/fencing.md), then writes a few
times, and some of its writes are in flight for a while (sent before a freeze or a
partition, they arrive late, after the term may have ended). Candidates are cut off from
the lock at generated times (their lock calls hang), so that others take over while their
writes are still on the way. The store is `harness.fenced_store.FencedStore` on SQLite.

The property: every write the store accepts comes from the holder of the latest term at
that moment (the highest term that has claimed the store: no accepted write's term is
below one already accepted, and each term has one holder); every refused write is one of
an older term.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from harness.fenced_store import FencedStore
from hypothesis import event, given, settings
from hypothesis import strategies as st

import trio_election as te

from ._runner import seed_trio_scheduler, seeded_engines
from ._settings import budget

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from trio_election.testing import MemoryLockHandle

LEASE, RENEW, RETRY = 4.0, 3.0, 1.0
RUN_FOR = 90.0


@dataclass(frozen=True, slots=True)
class Plan:
    candidates: int
    cut_offs: tuple[tuple[float, int, float], ...]
    """(at, candidate, for how long) the candidate's lock calls hang."""
    seed: int


@dataclass(slots=True)
class Ledger:
    acquired: list[te.Fence] = field(default_factory=list[te.Fence])
    writes: list[tuple[float, te.Fence, bool]] = field(
        default_factory=list[tuple[float, te.Fence, bool]]
    )
    """(time, the writer's fence, accepted) in the order the store saw them."""


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    candidates = draw(st.integers(2, 4))
    cut_off = st.tuples(
        st.floats(0, RUN_FOR - 10, allow_nan=False),
        st.integers(0, candidates - 1),
        st.floats(0.5, 3 * LEASE, allow_nan=False),
    )
    cut_offs = draw(st.lists(cut_off, max_size=8))
    return Plan(candidates, tuple(sorted(cut_offs)), draw(st.integers(0, 2**32 - 1)))


async def run_plan(plan: Plan) -> Ledger:
    ledger = Ledger()
    store = FencedStore(":memory:")
    lock = te.MemoryLock("fenced")
    handles = [lock.handle() for _ in range(plan.candidates)]
    rng = random.Random(plan.seed)

    def write(fence: te.Fence) -> None:
        accepted = store.write(fence.term, "key", fence.holder)
        ledger.writes.append((trio.current_time(), fence, accepted))

    async def in_flight(fence: te.Fence, delay: float) -> None:
        await trio.sleep(delay)
        write(fence)

    async def candidate(
        index: int, handle: MemoryLockHandle, work: random.Random, late: trio.Nursery
    ) -> None:
        async with te.open_election(
            handle,
            identity=f"c{index}",
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            stop_on_sigterm=False,
        ) as election:
            while True:
                async with election.leading() as leadership:
                    fence = leadership.fence
                    ledger.acquired.append(fence)
                    write(fence)  # the claim: the term's first act
                    for _ in range(work.randint(1, 4)):
                        await trio.sleep(work.uniform(0, 2 * RETRY))
                        if work.random() < 0.4:  # on its way, outliving the term maybe
                            late.start_soon(in_flight, fence, work.uniform(0, 3 * LEASE))
                        else:
                            write(fence)
                    await trio.sleep(work.uniform(0, 2 * RETRY))

    async def cut(handle: MemoryLockHandle, at: float, duration: float) -> None:
        await trio.sleep(at)
        handle.hang()
        await trio.sleep(duration)
        handle.heal()

    try:
        async with trio.open_nursery() as late:
            with trio.move_on_after(RUN_FOR):
                async with trio.open_nursery() as nursery:
                    for index, handle in enumerate(handles):
                        work = random.Random(rng.getrandbits(64))
                        nursery.start_soon(candidate, index, handle, work, late)
                    for at, index, duration in plan.cut_offs:
                        nursery.start_soon(cut, handles[index], at, duration)
            for handle in handles:
                handle.heal()
    finally:
        store.close()
    return ledger


def run(plan: Plan) -> Ledger:
    seed_trio_scheduler(plan.seed)
    with seeded_engines(plan.seed):
        return trio.run(run_plan, plan, clock=trio.testing.MockClock(autojump_threshold=0))


def check(ledger: Ledger) -> None:
    holders: dict[int, str] = {}
    for fence in ledger.acquired:
        assert holders.setdefault(fence.term, fence.holder) == fence.holder, fence
    latest: te.Fence | None = None
    for at, fence, accepted in ledger.writes:
        if accepted:
            assert latest is None or fence.term >= latest.term, (at, fence, latest)
            assert holders[fence.term] == fence.holder
            latest = fence
        else:
            assert latest is not None
            assert fence.term < latest.term, (at, fence, latest)


@settings(max_examples=budget(200), deadline=None)
@given(plans())
def test_a_fenced_store_accepts_only_the_latest_terms_writes(plan: Plan) -> None:
    ledger = run(plan)
    check(ledger)
    assert len(ledger.acquired) >= 1
    refused = sum(1 for _, _, accepted in ledger.writes if not accepted)
    event(f"refused writes: {'none' if refused == 0 else 'some'}")


async def test_a_late_write_of_a_cut_off_leader_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The case the property is for, on its own: a leads and is cut off with a write on its
    way; b takes over and claims the store; a's write arrives and changes nothing."""
    store = FencedStore(":memory:")
    lock = te.MemoryLock("fenced")
    a, b = lock.handle(), lock.handle()
    landed: list[bool] = []
    old: list[te.Fence] = []

    def elect(
        handle: MemoryLockHandle, identity: str
    ) -> AbstractAsyncContextManager[te.Leadership]:
        return te.elect(
            handle,
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            stop_on_sigterm=False,
        )

    async def late(fence: te.Fence) -> None:
        await trio.sleep(3 * LEASE)
        landed.append(store.write(fence.term, "key", fence.holder))

    async with trio.open_nursery() as nursery:
        with pytest.raises(te.LeadershipLost):
            async with elect(a, "a") as leadership:
                old.append(leadership.fence)
                assert store.write(old[0].term, "key", "a")
                nursery.start_soon(late, old[0])
                a.hang()
                await trio.sleep_forever()
        async with elect(b, "b") as leadership:
            new = leadership.fence
            assert new.term > old[0].term
            assert store.write(new.term, "key", "b")
            await trio.sleep(3 * LEASE)  # past the late write
    assert landed == [False]
    assert store.read("key") == ("b", new.term)
    assert store.term == new.term
