"""`open_shards()` on a `MemoryLockGroup` in virtual time (client-go's default timings).

Every test records each shard's terms in a `History` of its own (on the event loop's one
clock) and ends with `assert_one_leader()` for every shard: never two holders of a shard.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election.testing import History, ScaledClock

if TYPE_CHECKING:
    from trio_election._core._clock import ElectionClock

S = 16
LEASE, RETRY = 15.0, 2.0
SETTLE = LEASE + 2 * RETRY  # membership stable this long: balanced


class Group:
    def __init__(self, shards: int = S, unwind: float = 0.0) -> None:
        self.lock = te.MemoryLockGroup()
        self.unwind = unwind  # seconds a work takes to unwind once cancelled
        self.shards = shards
        self.history = {i: History() for i in range(shards)}
        self.running: dict[int, str] = {}
        self.scopes: dict[str, trio.CancelScope] = {}
        self.fences: dict[int, te.Fence] = {}
        self.leaving: str | None = None
        self.record_at_start: list[bool] = []  # each start: was the leaving one's record there?

    async def member(
        self,
        name: str,
        *,
        shards: int | None = None,
        clock: ElectionClock | None = None,
        release_on_exit: bool = True,
        task_status: trio.TaskStatus[te.Shards],
    ) -> None:
        with trio.CancelScope() as scope:
            self.scopes[name] = scope
            async with te.open_shards(
                self.lock,
                shards=self.shards if shards is None else shards,
                identity=name,
                stop_on_sigterm=False,
                release_on_exit=release_on_exit,
                clock=clock,
            ) as group:

                async def work(shard: int, leadership: te.Leadership) -> None:
                    with self.history[shard].leading(name):
                        if self.leaving is not None:
                            self.record_at_start.append(self.leaving in self.lock.members())
                        self.running[shard] = name
                        self.fences[shard] = leadership.fence
                        try:
                            await trio.sleep_forever()
                        finally:
                            with trio.CancelScope(shield=True):
                                await trio.sleep(self.unwind)
                            del self.running[shard]

                async with trio.open_nursery() as inner:
                    await inner.start(group.serve, work)
                    task_status.started(group)

    async def start(self, nursery: trio.Nursery, name: str, **options: object) -> te.Shards:
        shards: te.Shards = await nursery.start(
            lambda task_status: self.member(name, task_status=task_status, **options)  # type: ignore[arg-type]
        )
        return shards

    def crash(self, name: str) -> None:
        """Cut `name` off from the group, then stop it: nothing it does lands any more."""
        self.lock.connection(name).hang()
        self.scopes[name].cancel()

    def balanced(self, names: set[str]) -> bool:
        counts = Counter(self.running.values())
        low, high = self.shards // len(names), math.ceil(self.shards / len(names))
        return (
            len(self.running) == self.shards
            and set(counts) == names
            and all(low <= c <= high for c in counts.values())
        )

    def check(self) -> None:
        for history in self.history.values():
            history.assert_one_leader()


async def test_join_leave_and_crash(autojump_clock: trio.testing.MockClock) -> None:
    group = Group()
    async with trio.open_nursery() as nursery:
        a = await group.start(nursery, "a")
        await trio.sleep(1)
        assert group.balanced({"a"})
        assert a.owned == frozenset(range(S))
        for name in "bc":
            await group.start(nursery, name)
        await trio.sleep(1)  # a join hands shards over at once (releases)
        assert group.balanced({"a", "b", "c"})
        assert a.members == {"a", "b", "c"}
        before = dict(group.running)
        # graceful leave: b's shards are led by the others within tens of ms
        group.scopes["b"].cancel()
        await trio.sleep(0.05)
        assert group.balanced({"a", "c"}), group.running
        moved = sum(before[i] != group.running[i] for i in range(S))
        assert moved <= math.ceil(S / 3) + 1
        # crash: c cut off, then stopped without a release
        group.crash("c")
        await trio.sleep(LEASE + RETRY + 0.2)
        assert group.balanced({"a"})
        nursery.cancel_scope.cancel()
    group.check()


async def test_a_leaving_members_shards_are_taken_once_its_record_is_gone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A leaving member's delete of its record is slow to land (as behind the releases of
    many shards on a busy connection): the others take its shards only once they see it
    gone, each shard after its work unwound, and are balanced as soon as the delete has
    landed, not when the record runs out."""
    group = Group(shards=64)
    async with trio.open_nursery() as nursery:
        for name in "abc":
            await group.start(nursery, name)
        await trio.sleep(1)
        assert group.balanced({"a", "b", "c"})
        group.leaving = "b"
        group.lock.connection("b").delay_membership_writes(0.5)
        group.scopes["b"].cancel()
        await trio.sleep(0.6)
        assert group.balanced({"a", "c"}), group.running
        assert len(group.record_at_start) >= 64 // 3
        assert not any(group.record_at_start), group.record_at_start
        nursery.cancel_scope.cancel()
    group.check()


async def test_a_shard_assigned_back_while_its_work_unwinds_keeps_the_member_in_the_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Members come and go faster than a moving shard's work unwinds (a rollout): the
    shard is assigned away, then back before its work has ended. Its owner stays a member
    (its record kept) and leads every shard again, instead of taking the shard's end for
    its own leaving."""
    group = Group(unwind=0.5)
    async with trio.open_nursery() as nursery:
        a = await group.start(nursery, "a")
        await trio.sleep(1)
        assert group.balanced({"a"})
        await group.start(nursery, "b")  # a's work of the shards that move starts unwinding
        await trio.sleep(0.1)
        assert a.members == {"a", "b"}
        assert len(group.running) == S  # still unwinding: the shards not yet handed over
        group.scopes["b"].cancel()  # b leaves: every shard is assigned to a again
        await trio.sleep(2 * RETRY)
        assert "a" in group.lock.members()
        assert a.members == {"a"}
        assert group.balanced({"a"}), group.running
        nursery.cancel_scope.cancel()
    group.check()


async def test_unknown_records_are_ignored(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    group = Group()
    group.lock.put_member_raw("junk", "not a member")
    async with trio.open_nursery() as nursery:
        await group.start(nursery, "a")
        await trio.sleep(1)
        assert group.balanced({"a"})
        nursery.cancel_scope.cancel()
    assert any("junk" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_a_partitioned_member_stops_its_work_before_anyone_else_starts_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = Group()
    async with trio.open_nursery() as nursery:
        c = None
        for name in "abc":
            c = await group.start(nursery, name)
        assert c is not None
        await trio.sleep(1)
        assert group.balanced({"a", "b", "c"})
        theirs = {i for i, owner in group.running.items() if owner == "c"}
        cut = trio.current_time()
        group.lock.connection("c").hang()
        await trio.sleep(SETTLE)
        assert group.balanced({"a", "b"}), group.running
        assert c.owned == frozenset()  # its work unwound: it cannot renew
        for shard in theirs:
            (c_term,) = [t for t in group.history[shard].closed() if t.identity == "c"]
            assert c_term.end is not None
            assert c_term.end <= cut + 10.0 + 0.1  # renew_deadline after the last renew
            after = group.history[shard].next_start_after(c_term.end - 1e-9)
            assert after is not None
            assert after >= c_term.end  # stopped before anyone else started
        # healed: it sees the group again and takes its part back
        group.lock.connection("c").heal()
        await trio.sleep(SETTLE)
        assert group.balanced({"a", "b", "c"}), group.running
        nursery.cancel_scope.cancel()
    group.check()


async def test_skewed_clocks_keep_one_holder_and_balance(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # rates within lease_duration / renew_deadline (1.5) of each other: the engine's rule
    rates = {"a": 1.0, "b": 1.2, "c": 0.85}
    group = Group()
    async with trio.open_nursery() as nursery:
        for name, rate in rates.items():
            await group.start(nursery, name, clock=ScaledClock(rate, offset=100.0 * rate))
        await trio.sleep(SETTLE)
        assert group.balanced(set(rates)), group.running
        group.crash("b")  # the fast clock: the others judge its expiry on their own
        await trio.sleep(SETTLE / 0.85)
        assert group.balanced({"a", "c"}), group.running
        group.crash("c")  # the slow one
        await trio.sleep(SETTLE / 0.85)
        assert group.balanced({"a"}), group.running
        nursery.cancel_scope.cancel()
    group.check()


async def test_members_that_disagree_on_the_shard_count_are_logged_and_never_share_a_shard(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    group = Group()
    async with trio.open_nursery() as nursery:
        await group.start(nursery, "a")
        await group.start(nursery, "b", shards=8)
        await trio.sleep(SETTLE)
        assert len(group.running) == S  # every shard of the larger count is led
        group.crash("a")
        await trio.sleep(SETTLE)
        assert set(group.running) == set(range(8))
        assert set(group.running.values()) == {"b"}
        nursery.cancel_scope.cancel()
    group.check()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("shards=8" in m and "shards=16" in m for m in errors), errors


async def test_without_release_on_exit_the_shards_are_taken_when_their_leases_run_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = Group()
    async with trio.open_nursery() as nursery:
        a = await group.start(nursery, "a")
        await group.start(nursery, "b", release_on_exit=False)
        await trio.sleep(1)
        assert group.balanced({"a", "b"})
        theirs = {i for i, owner in group.running.items() if owner == "b"}
        group.scopes["b"].cancel()
        stopped = trio.current_time()
        await trio.sleep(0.5)
        assert a.members == {"a"}  # its membership record went at once
        assert all(a.owners[i] == "b" for i in theirs)  # its shard locks are still held
        assert not theirs & set(group.running)
        await trio.sleep(LEASE + RETRY)
        assert group.balanced({"a"})
        for shard in theirs:
            term = max(group.history[shard].closed(), key=lambda t: t.start)
            assert term.identity == "a"
            assert stopped + LEASE - RETRY <= term.start <= stopped + LEASE + RETRY + 0.1
        nursery.cancel_scope.cancel()
    group.check()


async def test_each_shard_has_its_own_fence_naming_its_lock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = Group()
    async with trio.open_nursery() as nursery:
        await group.start(nursery, "a")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert sorted(group.fences) == list(range(S))
    for shard, fence in group.fences.items():
        assert fence.lock == f"memory/memory-shard-{shard}"
        assert fence.holder == "a"


@pytest.mark.parametrize(
    ("lock", "shards", "says"),
    [
        (te.MemoryLockGroup(), 0, "shards must be a whole number of at least 1, got 0"),
        (te.MemoryLockGroup(), True, "shards must be a whole number of at least 1, got True"),
        ("configmaps/default/work", 4, "shards are Leases; write 'leases/<namespace>/<name>'"),
        ("leases/default/" + "w" * 64, 4, "at most 63 characters"),
        ("leases/default/Bad_Name", 4, "invalid lock 'leases/default/Bad_Name'"),
        (object(), 4, "must be a MemoryLockGroup or a string like 'leases/<namespace>/<name>'"),
    ],
)
async def test_bad_configuration_is_one_line_naming_it(
    lock: object, shards: int, says: str
) -> None:
    with pytest.raises(te.ConfigError) as caught:
        async with te.open_shards(lock, shards=shards):  # type: ignore[arg-type]
            pass
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)
