"""A property over generated membership schedules: members join, leave and crash at random
times on a `MemoryLockGroup`, in virtual time.

- never two owners of a shard at any instant (one `History` per shard);
- once the membership has been stable for ``lease_duration + 2 * retry_period``, every
  shard is owned and each member owns ⌊S/N⌋ or ⌈S/N⌉ of them;
- between two such settled states one change apart, at most ⌈S/N⌉ + 1 shards moved.
"""

from __future__ import annotations

import math
from collections import Counter

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_election as te
from trio_election.testing import History

LEASE, RETRY = 15.0, 2.0
SETTLE = LEASE + 2 * RETRY

Step = tuple[str, int, float]
"""(join | leave | crash, which live member, then wait this long)."""

steps = st.lists(
    st.tuples(
        st.sampled_from(["join", "join", "leave", "crash"]),
        st.integers(min_value=0, max_value=7),
        st.sampled_from([0.0, 0.05, 1.0, 5.0, SETTLE]),
    ),
    min_size=1,
    max_size=7,
)


def run_schedule(shards: int, schedule: list[Step]) -> None:
    lock = te.MemoryLockGroup()
    history = {i: History() for i in range(shards)}
    running: dict[int, str] = {}
    scopes: dict[str, trio.CancelScope] = {}
    live: list[str] = []

    async def member(name: str, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            scopes[name] = scope
            async with te.open_shards(
                lock, shards=shards, identity=name, stop_on_sigterm=False
            ) as group:

                async def work(shard: int, leadership: te.Leadership) -> None:
                    with history[shard].leading(name):
                        running[shard] = name
                        try:
                            await trio.sleep_forever()
                        finally:
                            del running[shard]

                await group.serve(work, task_status=task_status)

    def check_balanced() -> None:
        if not live:
            assert running == {}
            return
        counts = Counter(running.values())
        low, high = shards // len(live), math.ceil(shards / len(live))
        assert len(running) == shards, (running, live)
        assert set(counts) <= set(live), (counts, live)
        assert all(low <= counts[m] <= high for m in live), (counts, live)

    async def main() -> None:
        settled: tuple[dict[int, str], int] | None = None
        async with trio.open_nursery() as nursery:
            for n, (action, which, wait) in enumerate(schedule):
                before = len(live)
                if action == "join" or not live:
                    name = f"m{n}"
                    await nursery.start(member, name)
                    live.append(name)
                else:
                    name = live.pop(which % len(live))
                    if action == "crash":
                        lock.connection(name).hang()
                    scopes[name].cancel()
                await trio.sleep(wait)
                if wait < SETTLE:
                    settled = None
                    continue
                check_balanced()
                if settled is not None:
                    owners, _ = settled
                    moved = sum(owners.get(i) != running.get(i) for i in range(shards))
                    bound = math.ceil(shards / max(before, len(live), 1)) + 1
                    assert moved <= bound, (moved, bound, owners, running)
                settled = (dict(running), len(live))
            await trio.sleep(SETTLE)
            check_balanced()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    for each in history.values():
        each.assert_one_leader()


@settings(deadline=None, max_examples=100)
@given(shards=st.sampled_from([1, 5, 16]), schedule=steps)
def test_membership_schedules_keep_one_owner_balance_and_bounded_movement(
    shards: int, schedule: list[Step]
) -> None:
    run_schedule(shards, schedule)
