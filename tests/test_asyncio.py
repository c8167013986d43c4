"""The faces behave the same under asyncio as under trio, on a MemoryLock.

Every test here runs on trio, asyncio and asyncio on uvloop (anyio's pytest plugin,
`anyio_backend` below, tests/harness/backends.py); the programs run under `asyncio.run()`
and `uvloop.run()`. In real time the durations are short and the tests wait on what they
can observe (a holder, a callback), never on a sleep; the timing guarantees run exact in
virtual time at the end (`TestVirtualTime`: trio's MockClock, looptime's loop under
asyncio). pytest-trio's `trio_mode` would claim these tests too: tests/conftest.py takes
the trio mark off the tests that carry anyio's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import pytest
import trio.testing
from harness.backends import BACKENDS, Backend, loop_of, running_loop

import trio_election as te
from trio_election.testing import ScaledClock

if TYPE_CHECKING:
    from collections.abc import Coroutine

pytestmark = pytest.mark.anyio


class Timings(TypedDict):
    lease_duration: float
    renew_deadline: float
    retry_period: float


FAST: Timings = {"lease_duration": 5.0, "renew_deadline": 3.0, "retry_period": 0.5}
"""Short terms: a handover that waited the lease out would take 5 s, a release none."""

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


async def wait_for(predicate: Any) -> None:
    """Poll `predicate()` until true (the test fails after 10 seconds)."""
    with anyio.fail_after(10):
        while not predicate():  # noqa: ASYNC110 - what is read has no event of its own
            await anyio.sleep(0.01)


async def test_elect_leads_and_releases_at_exit(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    async with te.elect(lock, identity="a", **FAST) as leadership:
        assert running_loop() == loop_of(anyio_backend)
        assert lock.observe().holder == "a"
        assert not leadership.lost
        assert leadership.deadline > anyio.current_time()
    assert lock.observe().holder is None


async def test_a_second_candidate_takes_over_at_once(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    seen: list[str | None] = []
    led_at: list[float] = []

    async def second() -> None:
        async with te.elect(lock, identity="b", on_leader_change=seen.append, **FAST):
            led_at.append(anyio.current_time())

    released_at = -math.inf
    async with anyio.create_task_group() as tg:
        async with te.elect(lock, identity="a", **FAST):
            tg.start_soon(second)
            await wait_for(lambda: "a" in seen)  # b follows the lock and waits
        released_at = anyio.current_time()
    assert led_at
    # the release hands over: b did not wait the lease (5 s) out
    assert led_at[0] - released_at < FAST["lease_duration"] / 2
    assert lock.observe().holder is None


async def test_a_foreign_write_cancels_the_body_and_raises_leadership_lost(
    anyio_backend: Backend,
) -> None:
    lock = te.MemoryLock()
    caught: list[BaseException] = []
    held: list[te.Leadership] = []
    with pytest.raises(te.LeadershipLost):
        async with te.elect(lock, identity="a", **FAST) as leadership:
            held.append(leadership)
            lock.put_record(te.LeaderRecord("intruder", 15, NOW, NOW, 7))
            try:
                await anyio.sleep_forever()
            except BaseException as exc:
                caught.append(exc)
                raise
    assert held[0].lost
    assert held[0].reason
    # the body saw the backend's own cancellation: asyncio.CancelledError under asyncio
    assert len(caught) == 1
    assert type(caught[0]) is anyio.get_cancelled_exc_class()
    if loop_of(anyio_backend) != "trio":
        assert isinstance(caught[0], asyncio.CancelledError)
    assert lock.observe().holder == "intruder"  # not ours: nothing released


async def test_leadership_lost_even_if_the_body_swallows_the_cancellation(
    anyio_backend: Backend,
) -> None:
    lock = te.MemoryLock()
    held: list[te.Leadership] = []
    with pytest.raises(te.LeadershipLost):
        async with te.elect(lock, identity="a", **FAST) as leadership:
            held.append(leadership)
            lock.put_record(te.LeaderRecord("intruder", 15, NOW, NOW, 7))
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                pass
    assert held[0].cancel_scope.cancel_called


async def test_the_body_exception_comes_out_unchanged(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    error = ValueError("the work failed")
    with pytest.raises(ValueError, match="the work failed") as raised:
        async with te.elect(lock, identity="a", **FAST):
            raise error
    assert raised.value is error  # not wrapped in an ExceptionGroup
    assert lock.observe().holder is None


async def test_open_election_changes_and_leading(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    holders: list[str | None] = []
    async with (
        te.open_election(lock, identity="a", **FAST) as a,
        te.open_election(lock, identity="b", **FAST) as b,
    ):

        async def watch() -> None:
            async for holder in b.changes():
                holders.append(holder)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await wait_for(lambda: holders == [None])
            async with a.leading() as leadership:
                await wait_for(lambda: holders == [None, "a"])
                assert a.is_leader
                assert not b.is_leader
                assert b.leader == "a"
                stats = a.statistics()
                assert stats.leader == "a"
                assert stats.is_leader
                assert stats.terms == 1
                assert te.HealthCheck(a).healthy
                assert leadership.term == a.statistics().term
            await wait_for(lambda: holders == [None, "a", None])
            async with b.leading():
                await wait_for(lambda: holders == [None, "a", None, "b"])
                assert a.leader == "b"
            tg.cancel_scope.cancel()
    assert lock.observe().holder is None


async def test_leader_elector_runs_the_callbacks(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    calls: list[str] = []

    async def on_started_leading(leadership: te.Leadership) -> None:
        calls.append(f"started {leadership.identity}")
        assert elector.is_leader()

    def on_stopped_leading() -> None:
        calls.append("stopped")

    async def on_new_leader(identity: str) -> None:
        calls.append(f"new {identity!r}")

    callbacks = te.LeaderCallbacks(
        on_started_leading, on_stopped_leading=on_stopped_leading, on_new_leader=on_new_leader
    )
    elector = te.LeaderElector(te.ElectionConfig(lock, identity="a", callbacks=callbacks, **FAST))
    await elector.run()
    # on_new_leader is delivered in order in a task of its own, all before run() returns
    assert [c for c in calls if c.startswith("new")] == ["new 'a'", "new ''"]
    assert "started a" in calls
    assert calls.index("started a") < calls.index("stopped")
    assert lock.observe().holder is None
    assert elector.get_leader() in ("", "a")


async def test_run_or_die_with_an_error_of_the_work(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()

    async def on_started_leading(leadership: te.Leadership) -> None:
        raise KeyError("work")

    config = te.ElectionConfig(
        lock,
        identity="a",
        callbacks=te.LeaderCallbacks(on_started_leading),
        **FAST,
    )
    with pytest.raises(KeyError):
        await te.run_or_die(config)
    assert lock.observe().holder is None


async def test_sigterm_cancels_releases_and_raises_terminated(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    before = signal.getsignal(signal.SIGTERM)
    unwound = False
    with pytest.raises(te.Terminated) as raised:
        async with te.elect(lock, identity="a", **FAST):
            assert signal.getsignal(signal.SIGTERM) is not before  # installed
            os.kill(os.getpid(), signal.SIGTERM)
            try:
                await anyio.sleep_forever()
            finally:
                unwound = True
    assert raised.value.code == 143
    assert unwound
    assert lock.observe().holder is None
    assert signal.getsignal(signal.SIGTERM) == before  # put back


async def test_stop_on_sigterm_false_installs_nothing(anyio_backend: Backend) -> None:
    before = signal.getsignal(signal.SIGTERM)
    async with te.elect(te.MemoryLock(), identity="a", stop_on_sigterm=False, **FAST):
        assert signal.getsignal(signal.SIGTERM) == before


SIGTERM_PROGRAM = textwrap.dedent(
    """
    import asyncio, signal, sys
    import uvloop
    import trio_election as te

    lock = te.MemoryLock()

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: print("app handler", flush=True))
        async with te.elect(lock, identity="a", lease_duration=5, renew_deadline=3,
                            retry_period=0.5):
            print("leading", flush=True)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                print("cancelled", flush=True)
                raise

    try:
        RUN(main())
    finally:
        print("holder", lock.observe().holder, flush=True)
    """
)


RUNNERS = ["asyncio.run", "uvloop.run"]
"""How the program starts its loop: asyncio's own, or uvloop's (its own signal handling)."""


def run_and_signal(signum: int, runner: str) -> tuple[int, list[str], str]:
    """Run SIGTERM_PROGRAM with `runner`, send `signum` once it leads; its status, stdout
    lines, stderr."""
    # a suite started in the background (`cmd &`) inherits SIGINT ignored, and so would the
    # program: give it the default disposition a user's terminal gives it
    with subprocess.Popen(
        [sys.executable, "-c", SIGTERM_PROGRAM.replace("RUN(", f"{runner}(")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "leading"
            process.send_signal(signum)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return process.returncode, out.splitlines(), err


@pytest.mark.parametrize("runner", RUNNERS)
def test_sigterm_under_asyncio_run_exits_143_released(runner: str) -> None:
    """The program as a user writes it: asyncio.run(main()), SIGTERM from outside."""
    status, lines, err = run_and_signal(signal.SIGTERM, runner)
    assert status == 143, err
    assert "cancelled" in lines
    assert "app handler" in lines  # the handler installed before is chained
    assert "holder None" in lines  # released
    assert "Traceback" not in err


@pytest.mark.parametrize("runner", RUNNERS)
def test_sigint_under_asyncio_run_is_asyncio_s_own(runner: str) -> None:
    """Ctrl-C: asyncio.run cancels the main task; the block unwinds, the lock is released,
    and KeyboardInterrupt ends the program as asyncio makes it (never caught here)."""
    status, lines, err = run_and_signal(signal.SIGINT, runner)
    assert status in (-signal.SIGINT, 130), err
    assert "cancelled" in lines
    assert "holder None" in lines
    assert "KeyboardInterrupt" in err


async def test_candidates_on_clocks_at_different_rates(anyio_backend: Backend) -> None:
    lock = te.MemoryLock()
    fast = ScaledClock(1.1)
    slow = ScaledClock(0.9, offset=100.0)
    led: list[str] = []

    async def candidate(identity: str, clock: ScaledClock) -> None:
        async with te.elect(lock, identity=identity, clock=clock, **FAST) as leadership:
            led.append(identity)
            assert not leadership.lost
            await anyio.sleep(0.6)  # a renew happens in between (retry_period 0.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(candidate, "fast", fast)
        tg.start_soon(candidate, "slow", slow)
    assert sorted(led) == ["fast", "slow"]
    assert lock.observe().holder is None


def test_outside_the_main_thread_nothing_is_installed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trio_election._sigterm._warned_thread", False)
    before = signal.getsignal(signal.SIGTERM)
    inside: list[object] = []

    async def main() -> None:
        async with te.elect(te.MemoryLock(), identity="a", **FAST):
            inside.append(signal.getsignal(signal.SIGTERM))

    caplog.set_level("INFO", logger="trio_election")
    thread = threading.Thread(target=lambda: asyncio.run(main()))
    thread.start()
    thread.join()
    assert inside == [before]
    notes = [r for r in caplog.records if "main thread" in r.getMessage()]
    assert [r.levelname for r in notes] == ["INFO"]


def test_no_event_loop_is_one_clear_line() -> None:
    """Driven from sync code, the faces say what to do instead of a trio internals error."""

    def enter(coro: Coroutine[Any, Any, Any]) -> BaseException:
        try:
            coro.send(None)
        except BaseException as exc:  # the error under test
            return exc
        finally:
            coro.close()
        raise AssertionError("entered without an event loop")

    async def work(leadership: te.Leadership) -> None:
        raise AssertionError("led without an event loop")

    idle = te.LeaderCallbacks(work)
    for make in (
        lambda: te.elect(te.MemoryLock()).__aenter__(),
        lambda: te.open_election(te.MemoryLock()).__aenter__(),
        lambda: te.LeaderElector(te.ElectionConfig(te.MemoryLock(), callbacks=idle)).run(),
    ):
        error = enter(make())
        assert isinstance(error, RuntimeError)
        assert "trio.run" in str(error)
        assert "asyncio.run" in str(error)
        assert "\n" not in str(error)

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.append(enter(make())))
    thread.start()
    thread.join()
    assert isinstance(errors[0], RuntimeError)
    assert "asyncio.run" in str(errors[0])


# -- virtual time ----------------------------------------------------------------------------
#
# The timing guarantees, exact, on both runtimes: trio's MockClock (autojump) and, under
# asyncio, looptime's event loop (`looptime.new_event_loop`, given to anyio's asyncio
# backend as its `loop_factory`), whose clock jumps to the next timer whenever the loop has
# nothing else to do. looptime's own pytest plugin is for pytest-asyncio, which this project
# does not use (anyio's plugin runs these tests): without pytest-asyncio it fails the setup
# of every fixture of every test (looptime 0.9, `_should_patch` reads the `asyncio` plugin
# that is not there), so pyproject's addopts blocks it with `-p no:looptime_plugin`; the
# loop itself works with anyio unchanged. uvloop's loop is not a selector loop that looptime
# can patch: the virtual-time tests run on asyncio's own loop. Timing: the defaults, lease
# 15 s, renew deadline 10 s, retry 2 s; an expiry-based takeover waits at most 0.2 s more.

MAX_DELAY = 0.2


def virtual_time_loop() -> Any:
    """looptime's `new_event_loop`; the test is skipped without looptime (fails under CI)."""
    try:
        import looptime
    except ImportError:
        message = "looptime is not installed (it is in the test dependency group)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return looptime.new_event_loop


class TestVirtualTime:
    @pytest.fixture(params=["trio", "asyncio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> Backend:
        if request.param == "trio":
            return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
        return ("asyncio", {"loop_factory": virtual_time_loop()})

    async def test_the_clock_is_virtual(self, anyio_backend: Backend) -> None:
        start = anyio.current_time()
        await anyio.sleep(3600)
        assert anyio.current_time() - start == pytest.approx(3600)

    @pytest.mark.parametrize(("stored", "waited"), [(15, 15), (30, 30), (0, 15)])
    async def test_a_follower_takes_over_at_observed_time_plus_the_records_duration(
        self, anyio_backend: Backend, stored: int, waited: float
    ) -> None:
        lock = te.MemoryLock()
        lock.put_record(te.LeaderRecord("dead", stored, NOW, NOW, 3))
        start = anyio.current_time()
        async with te.elect(lock, identity="b") as leadership:
            took = anyio.current_time() - start
            assert waited <= took <= waited + MAX_DELAY
            assert leadership.term == 4

    async def test_renewals_keep_the_lease_and_the_follower_out(
        self, anyio_backend: Backend
    ) -> None:
        lock = te.MemoryLock()
        follower_led: list[float] = []

        async def follower() -> None:
            async with te.open_election(lock, identity="b") as election, election.leading():
                follower_led.append(anyio.current_time())

        released_at = math.nan
        async with anyio.create_task_group() as tg:
            async with te.elect(lock, identity="a") as leadership:
                tg.start_soon(follower)
                await anyio.sleep(600)
                assert not leadership.lost
                # renewed every 2 s, each renew moving the deadline to send time + 10 s
                now = anyio.current_time()
                assert now + 8 <= leadership.deadline <= now + 10
                assert follower_led == []
            released_at = anyio.current_time()
        assert follower_led
        assert follower_led[0] - released_at < MAX_DELAY  # the release hands over at once

    async def test_failing_renewals_cancel_the_body_at_the_deadline(
        self, anyio_backend: Backend
    ) -> None:
        handle = te.MemoryLock().handle()
        start = anyio.current_time()
        cancelled_at = math.nan
        with pytest.raises(te.LeadershipLost, match="renew deadline"):
            async with te.elect(handle, identity="a") as leadership:
                await anyio.sleep(5)
                handle.fail()  # renews at 2 and 4 succeeded: deadline 4 + 10
                try:
                    await anyio.sleep_forever()
                finally:
                    cancelled_at = anyio.current_time() - start
                    assert leadership.lost
        assert cancelled_at == pytest.approx(14)

    async def test_a_hanging_lock_call_cannot_delay_the_deadline(
        self, anyio_backend: Backend
    ) -> None:
        handle = te.MemoryLock().handle()
        start = anyio.current_time()
        cancelled_at = math.nan
        with pytest.raises(te.LeadershipLost):
            async with te.elect(handle, identity="a"):
                await anyio.sleep(5)
                handle.hang()
                try:
                    await anyio.sleep_forever()
                finally:
                    cancelled_at = anyio.current_time() - start
        assert cancelled_at == pytest.approx(14)
        # after a loss the release is one try bounded by retry_period: it gave up 2 s later
        assert anyio.current_time() - start == pytest.approx(16)
