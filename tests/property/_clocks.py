"""Clocks for the schedules, and a real-time watchdog against a run that stops time.

`RoundTripClock` runs `rate` times as fast as trio's clock, like `trio_election.testing.ScaledClock`, but its
`to_loop()` rounds up, so that at the trio time `to_loop(t)` its `now()` is never short of
`t`. `trio_election.testing.ScaledClock` can fall short by one unit in the last place: then a loop that sleeps
until `to_loop(t)` and checks `now() < t` goes round forever without time passing (see
`test_rate_bound.py::test_a_leader_on_a_scaled_clock_keeps_renewing`). The schedules use
`RoundTripClock` so that they test the election's rules rather than that rounding.

`SpinDetector` stops a `trio.run` that spins without virtual time passing (a busy loop
defeats `autojump_clock`), so that the caller fails with a clear message instead of
hanging.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, final

import trio

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable

__all__ = ["RoundTripClock", "SpinDetector", "Spinning"]


@final
class RoundTripClock:
    """A clock `rate` times as fast as trio's, shifted by `offset` seconds."""

    __slots__ = ("_offset", "_rate", "_wall")

    def __init__(self, rate: float, offset: float, wall: Callable[[], dt.datetime]) -> None:
        self._rate = rate
        self._offset = offset
        self._wall = wall

    def now(self) -> float:
        return self._offset + self._rate * trio.current_time()

    def to_loop(self, t: float) -> float:
        result = (t - self._offset) / self._rate
        while self._offset + self._rate * result < t:
            result = math.nextafter(result, math.inf)
        return result

    def wall(self) -> dt.datetime:
        return self._wall()

    def __repr__(self) -> str:
        return f"RoundTripClock(rate={self._rate!r}, offset={self._offset!r})"


class Spinning(AssertionError):
    """The run went round and round while its virtual time stood still."""


@final
class SpinDetector(trio.abc.Instrument):
    """Cancels `scope` once `limit` task steps ran at one instant of virtual time.

    A loop that sleeps until a time that has already come, again and again, never lets
    `autojump_clock` move time on: without this, the test would hang instead of failing.
    Counting steps (not real seconds) keeps the verdict the same on a slow machine. A run
    with thousands of candidates takes thousands of steps at one instant; `limit` is far
    above that.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.scope = trio.CancelScope()
        self.fired_at: float | None = None
        self._at = -1.0
        self._steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        now = trio.current_time()
        if now != self._at:
            self._at, self._steps = now, 0
            return
        self._steps += 1
        if self._steps == self.limit and self.fired_at is None:
            self.fired_at = now
            self.scope.cancel(reason=f"{self.limit} task steps at {now} s of virtual time")

    def verdict(self) -> None:
        """Raise `Spinning` if the detector fired."""
        if self.fired_at is not None:
            raise Spinning(
                f"{self.limit} task steps ran at {self.fired_at:.6f} s of virtual time: a "
                f"loop goes round without letting time pass"
            )
