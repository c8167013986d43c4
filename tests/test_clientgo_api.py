"""client-go's leaderelection API in Python: LeaderElector, ElectionConfig, LeaderCallbacks, run_or_die."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator


def config(lock: object, identity: str = "me", **kwargs: object) -> te.ElectionConfig:
    return te.ElectionConfig(lock=lock, identity=identity, **kwargs)  # type: ignore[arg-type]


async def test_callbacks_in_order(autojump_clock: trio.testing.MockClock) -> None:
    lock = te.MemoryLock()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lock.put_record(te.LeaderRecord("x", 15, now, now, 2))
    events: list[str] = []

    async def started(leadership: te.Leadership) -> None:
        events.append(f"started term={leadership.term}")
        assert elector.is_leader()
        assert elector.get_leader() == "me"
        await trio.sleep(5)

    def stopped() -> None:
        events.append("stopped")

    async def new_leader(identity: str) -> None:
        await trio.sleep(0.5)  # a slow callback must not reorder the calls
        events.append(f"new leader {identity!r}")

    elector = te.LeaderElector(
        config(
            lock,
            callbacks=te.LeaderCallbacks(started, stopped, new_leader),
        )
    )
    assert not elector.is_leader()
    assert elector.get_leader() == ""
    await elector.run()
    assert events == [
        "new leader 'x'",
        "started term=3",
        "new leader 'me'",
        "stopped",
        "new leader ''",
    ]
    assert not elector.is_leader()


class _SlowAnswers:
    """A lock whose writes are applied at once but answered a second later: the watch
    shows our own record before the write returns (as a Kubernetes watch may)."""

    def __init__(self, lock: te.MemoryLock) -> None:
        self._inner = lock.handle()
        self.description = self._inner.description

    async def get(self) -> te.Observation:
        return await self._inner.get()

    async def create(self, record: te.LeaderRecord) -> te.Observation:
        obs = await self._inner.create(record)
        await trio.sleep(1)
        return obs

    async def update(self, record: te.LeaderRecord, based_on: te.Observation) -> te.Observation:
        obs = await self._inner.update(record, based_on)
        await trio.sleep(1)
        return obs

    def watch(self, after: te.Observation) -> AsyncGenerator[te.Observation]:
        return self._inner.watch(after)


async def test_on_started_leading_comes_before_on_new_leader_of_our_identity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The documented order (docs/client-go-api.md), even when the watch shows our record
    before our write has returned: on_new_leader(us) waits until on_started_leading began."""
    events: list[str] = []

    async def started(leadership: te.Leadership) -> None:
        events.append("started")
        await trio.sleep(5)

    def new_leader(identity: str) -> None:
        events.append(f"new leader {identity!r}")

    callbacks = te.LeaderCallbacks(started, on_new_leader=new_leader)
    await te.LeaderElector(config(_SlowAnswers(te.MemoryLock()), callbacks=callbacks)).run()
    assert events[:2] == ["started", "new leader 'me'"]


async def test_returning_work_ends_the_term_and_releases(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()

    async def started(leadership: te.Leadership) -> None:
        await trio.sleep(1)

    await te.run_or_die(config(lock, callbacks=te.LeaderCallbacks(started)))
    assert trio.current_time() == 1
    assert lock.observe().holder is None


async def test_work_exception_comes_out_of_run_after_release_and_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    stopped: list[str | None] = []

    async def started(leadership: te.Leadership) -> None:
        raise ZeroDivisionError("work failed")

    def on_stopped() -> None:
        stopped.append(lock.observe().holder)

    elector = te.LeaderElector(config(lock, callbacks=te.LeaderCallbacks(started, on_stopped)))
    with pytest.raises(ZeroDivisionError, match="work failed"):
        await elector.run()
    assert stopped == [None]  # released before on_stopped_leading


async def test_loss_returns_after_on_stopped_leading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    handle = lock.handle()
    stopped_at: list[float] = []

    async def started(leadership: te.Leadership) -> None:
        handle.fail()
        await trio.sleep_forever()

    async def on_stopped() -> None:
        stopped_at.append(trio.current_time())

    await te.LeaderElector(config(handle, callbacks=te.LeaderCallbacks(started, on_stopped))).run()
    # work cancelled at the deadline (10); after a loss the release is one try, which failed
    # at once
    assert stopped_at == [10]


async def test_on_stopped_leading_not_called_without_leading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lock.put_record(te.LeaderRecord("x", 15, now, now, 0))
    stopped: list[bool] = []

    async def started(leadership: te.Leadership) -> None:
        raise AssertionError("must not lead")

    elector = te.LeaderElector(
        config(lock, callbacks=te.LeaderCallbacks(started, lambda: stopped.append(True)))
    )
    with trio.move_on_after(5):
        await elector.run()
    assert stopped == []


async def test_run_is_one_shot(autojump_clock: trio.testing.MockClock) -> None:
    async def started(leadership: te.Leadership) -> None:
        pass

    elector = te.LeaderElector(config(te.MemoryLock(), callbacks=te.LeaderCallbacks(started)))
    await elector.run()
    with pytest.raises(RuntimeError, match="one-shot"):
        await elector.run()


async def test_cancelled_run_releases_and_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()

    async def started(leadership: te.Leadership) -> None:
        await trio.sleep_forever()

    with trio.move_on_after(7) as scope:
        await te.run_or_die(config(lock, callbacks=te.LeaderCallbacks(started)))
    assert scope.cancelled_caught
    assert lock.observe().holder is None


def test_plain_function_as_on_started_leading_is_rejected() -> None:
    def started(leadership: te.Leadership) -> None:
        pass

    with pytest.raises(te.ConfigError, match="on_started_leading must be an async function"):
        te.LeaderElector(config(te.MemoryLock(), callbacks=te.LeaderCallbacks(started)))  # type: ignore[arg-type]


def test_missing_callbacks_are_rejected() -> None:
    with pytest.raises(te.ConfigError, match="on_started_leading is required"):
        te.LeaderElector(config(te.MemoryLock()))


def test_async_callable_object_is_accepted() -> None:
    class Work:
        async def __call__(self, leadership: te.Leadership) -> None:
            pass

    te.LeaderElector(config(te.MemoryLock(), callbacks=te.LeaderCallbacks(Work())))
