"""`open_shards()` on a `MemoryLockGroup` in virtual time (client-go's default timings)."""

from __future__ import annotations

import math
from collections import Counter

import trio
import trio.testing

import trio_election as te
from trio_election.testing import History

S = 16


class Group:
    def __init__(self) -> None:
        self.lock = te.MemoryLockGroup()
        self.history = {i: History() for i in range(S)}
        self.running: dict[int, str] = {}
        self.scopes: dict[str, trio.CancelScope] = {}

    async def member(self, name: str, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self.scopes[name] = scope
            async with te.open_shards(
                self.lock, shards=S, identity=name, stop_on_sigterm=False
            ) as shards:

                async def work(shard: int, leadership: te.Leadership) -> None:
                    with self.history[shard].leading(name):
                        self.running[shard] = name
                        try:
                            await trio.sleep_forever()
                        finally:
                            del self.running[shard]

                await shards.serve(work, task_status=task_status)

    def balanced(self, names: set[str]) -> bool:
        counts = Counter(self.running.values())
        low, high = S // len(names), math.ceil(S / len(names))
        return (
            len(self.running) == S
            and set(counts) == names
            and all(low <= c <= high for c in counts.values())
        )

    def check(self) -> None:
        for history in self.history.values():
            history.assert_one_leader()


async def test_join_leave_and_crash(autojump_clock: trio.testing.MockClock) -> None:
    group = Group()
    async with trio.open_nursery() as nursery:
        await nursery.start(group.member, "a")
        await trio.sleep(1)
        assert group.balanced({"a"})
        for name in "bc":
            await nursery.start(group.member, name)
        await trio.sleep(1)  # a join hands shards over at once (releases)
        assert group.balanced({"a", "b", "c"})
        before = dict(group.running)
        # graceful leave: b's shards are led by the others within tens of ms
        group.scopes["b"].cancel()
        start = trio.current_time()
        await trio.sleep(0.05)
        assert group.balanced({"a", "c"}), group.running
        moved = sum(before[i] != group.running[i] for i in range(S))
        assert moved <= math.ceil(S / 3) + 1
        # crash: c cut off, then stopped without a release
        group.lock.connection("c").hang()
        group.scopes["c"].cancel()
        crashed = trio.current_time()
        await trio.sleep(15 + 2 + 0.2)
        assert group.balanced({"a"})
        assert trio.current_time() - crashed <= 15 + 2 + 0.2
        del start
        nursery.cancel_scope.cancel()
    group.check()


async def test_unknown_records_are_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = Group()
    group.lock.put_member_raw("junk", "not a member")
    async with trio.open_nursery() as nursery:
        await nursery.start(group.member, "a")
        await trio.sleep(1)
        assert group.balanced({"a"})
        nursery.cancel_scope.cancel()
