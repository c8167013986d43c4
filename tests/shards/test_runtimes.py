"""`open_shards()` on trio, asyncio and asyncio on uvloop, in real time on a
`MemoryLockGroup`: two members split the shards, and a graceful leave hands its shards to
the other at once (a release, not a lease waited out)."""

from __future__ import annotations

from collections import Counter

import anyio
import anyio.abc
import pytest
from harness.backends import BACKENDS, Backend, loop_of, running_loop

import trio_election as te
from trio_election.testing import History, Interval

pytestmark = pytest.mark.anyio

S = 8
FAST = {"lease_duration": 5.0, "renew_deadline": 3.0, "retry_period": 0.5}


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


async def test_two_members_split_the_shards_and_a_leave_hands_them_over(
    anyio_backend: Backend,
) -> None:
    lock = te.MemoryLockGroup()
    terms: dict[int, list[Interval]] = {i: [] for i in range(S)}
    running: dict[int, str] = {}
    scopes: dict[str, anyio.CancelScope] = {}
    changed = anyio.Event()

    def note() -> None:
        nonlocal changed
        changed.set()
        changed = anyio.Event()

    async def member(name: str, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.CancelScope() as scope:
            scopes[name] = scope
            async with te.open_shards(
                lock,
                shards=S,
                identity=name,
                stop_on_sigterm=False,
                lease_duration=FAST["lease_duration"],
                renew_deadline=FAST["renew_deadline"],
                retry_period=FAST["retry_period"],
            ) as shards:

                async def work(shard: int, leadership: te.Leadership) -> None:
                    assert running_loop() == loop_of(anyio_backend)
                    started = anyio.current_time()  # History's own clock is trio's
                    running[shard] = name
                    note()
                    try:
                        await anyio.sleep_forever()
                    finally:
                        del running[shard]
                        terms[shard].append(Interval(name, started, anyio.current_time()))
                        note()

                await shards.serve(work, task_status=task_status)

    async def until(predicate: object) -> None:
        with anyio.fail_after(10):
            while not predicate():  # type: ignore[operator]
                await changed.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(member, "a")
        await tg.start(member, "b")
        await until(lambda: Counter(running.values()) == {"a": S // 2, "b": S // 2})
        scopes["b"].cancel()
        left = anyio.current_time()
        await until(lambda: Counter(running.values()) == {"a": S})
        assert anyio.current_time() - left < FAST["lease_duration"] / 2  # released, not run out
        tg.cancel_scope.cancel()
    for each in terms.values():
        History(intervals=each).assert_one_leader()
