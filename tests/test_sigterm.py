"""SIGTERM, how Kubernetes stops a pod: the faces cancel the work, release, and exit 143.

In virtual time on a MemoryLock; the signal is sent to this process with `os.kill` (pytest-
trio runs trio in the main thread, where handlers can be installed). The real-process
handover on a real apiserver is in tests/control_plane/test_operations.py.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._timing import MAX_RELEASE_DELAY


def sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


async def test_sigterm_cancels_the_work_releases_and_raises_terminated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    unwound = False
    with pytest.raises(te.Terminated) as raised:
        async with te.elect(lock, identity="a"):
            await trio.sleep(3)
            sigterm()
            try:
                await trio.sleep_forever()
            finally:
                unwound = True
    assert raised.value.code == 143
    assert isinstance(raised.value, SystemExit)
    assert unwound
    assert lock.observe().holder is None  # released: a stand-by leads at once
    assert trio.current_time() == 3


async def test_a_follower_leads_in_the_instant_the_leader_is_terminated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    started: list[float] = []

    async def follower() -> None:
        async with te.elect(lock, identity="b", stop_on_sigterm=False):
            started.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        with pytest.raises(te.Terminated):
            async with te.elect(lock, identity="a"):
                nursery.start_soon(follower)
                await trio.sleep(5)
                sigterm()
                await trio.sleep_forever()
    (start,) = started
    assert 5 <= start <= 5 + MAX_RELEASE_DELAY  # the follower's release delay only


async def test_sigterm_while_campaigning_stops_the_candidate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    lock.put_record(te.LeaderRecord("x", 15))  # the candidate waits for x's lease

    async def terminate_later() -> None:
        await trio.sleep(3)
        sigterm()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(terminate_later)
        with pytest.raises(te.Terminated):
            async with te.elect(lock, identity="a"):
                pytest.fail("never leads")  # pragma: no cover
    assert trio.current_time() == 3
    assert lock.observe().holder == "x"


async def test_sigterm_reaches_every_election_of_the_process(
    autojump_clock: trio.testing.MockClock,
) -> None:
    locks = [te.MemoryLock(f"lock-{i}") for i in range(3)]
    ended: list[str] = []

    async def lead(lock: te.MemoryLock) -> None:
        try:
            async with te.elect(lock, identity="a"):
                await trio.sleep_forever()
        except te.Terminated:
            ended.append(lock.name)

    async with trio.open_nursery() as nursery:
        for lock in locks:
            nursery.start_soon(lead, lock)
        await trio.sleep(1)
        sigterm()
    assert sorted(ended) == ["lock-0", "lock-1", "lock-2"]
    assert all(lock.observe().holder is None for lock in locks)


async def test_seed_run_calls_on_stopped_leading_and_raises_terminated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = te.MemoryLock()
    events: list[str] = []

    async def work(leadership: te.Leadership) -> None:
        events.append("started")
        await trio.sleep(1)
        sigterm()
        await trio.sleep_forever()

    def stopped() -> None:
        events.append(f"stopped, holder {lock.observe().holder}")

    config = te.ElectionConfig(
        lock, identity="a", callbacks=te.LeaderCallbacks(work, on_stopped_leading=stopped)
    )
    with pytest.raises(te.Terminated):
        await te.LeaderElector(config).run()
    assert events == ["started", "stopped, holder None"]


async def test_the_handler_is_installed_only_while_an_election_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    async with te.elect(te.MemoryLock(), identity="a"):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


async def test_opting_out_installs_nothing(autojump_clock: trio.testing.MockClock) -> None:
    before = signal.getsignal(signal.SIGTERM)
    async with te.elect(te.MemoryLock(), identity="a", stop_on_sigterm=False):
        assert signal.getsignal(signal.SIGTERM) is before


async def test_the_applications_own_handler_is_called_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(te.Terminated):
            async with te.elect(te.MemoryLock(), identity="a"):
                sigterm()
                await trio.sleep_forever()
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_sigterm_is_left_to_the_application() -> None:
    errors: list[BaseException] = []
    handlers: list[object] = []

    async def in_thread() -> None:
        async with te.elect(te.MemoryLock(), identity="a"):
            handlers.append(signal.getsignal(signal.SIGTERM))

    def run() -> None:
        try:
            trio.run(in_thread)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []
    assert handlers == [before]
