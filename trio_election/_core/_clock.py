"""One clock object for every decision the engine makes about time.

The engine never reads `time.time()` or `time.monotonic()`: it asks an `ElectionClock`. The
default, `TrioClock`, is trio's own clock (so `autojump_clock` makes tests run in virtual time), and
`ScaledClock` runs faster or slower than trio's, to test tolerance to clock-rate skew. The
wall-clock timestamps written into lock records come from the clock's `wall()` method; they
are informational only (expiry is always judged on the local clock).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Protocol, final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ElectionClock", "ScaledClock", "TrioClock"]


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class ElectionClock(Protocol):
    """What the engine needs of time: `clock=` of the faces takes any object with these
    three methods (the default reads trio's clock; `trio_election.testing.ScaledClock` runs
    fast or slow)."""

    def now(self) -> float:
        """The current time of this clock, in seconds (any origin)."""
        ...

    def to_trio(self, t: float) -> float:
        """Convert a time of this clock to trio's clock, for cancel-scope deadlines."""
        ...

    def wall(self) -> _dt.datetime:
        """The wall-clock time (timezone-aware, UTC) written into lock records."""
        ...


@final
class TrioClock:
    """trio's clock (`trio.current_time()`), with an injectable wall clock."""

    __slots__ = ("_wall",)

    def __init__(self, wall: Callable[[], _dt.datetime] = _utc_now) -> None:
        self._wall = wall

    def now(self) -> float:
        return trio.current_time()

    def to_trio(self, t: float) -> float:
        return t

    def wall(self) -> _dt.datetime:
        return self._wall()

    def __repr__(self) -> str:
        return "TrioClock()"


@final
class ScaledClock:
    """A clock that runs `rate` times as fast as trio's, shifted by `offset` seconds.

    `rate=1.1` runs 10 % fast. Used to test the guarantee that holds while the clocks of
    all candidates run at rates within `lease_duration / renew_deadline` of each other.
    """

    __slots__ = ("_offset", "_rate", "_wall")

    def __init__(
        self,
        rate: float,
        offset: float = 0.0,
        wall: Callable[[], _dt.datetime] = _utc_now,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"ScaledClock rate must be greater than zero, got {rate!r}")
        self._rate = rate
        self._offset = offset
        self._wall = wall

    def now(self) -> float:
        return self._offset + self._rate * trio.current_time()

    def to_trio(self, t: float) -> float:
        return (t - self._offset) / self._rate

    def wall(self) -> _dt.datetime:
        return self._wall()

    def __repr__(self) -> str:
        return f"ScaledClock(rate={self._rate!r}, offset={self._offset!r})"


def trio_span(clock: ElectionClock, span: float) -> float:
    """Convert a span of `clock`'s time, starting now, into trio seconds."""
    now = clock.now()
    return clock.to_trio(now + span) - clock.to_trio(now)


async def sleep_until(clock: ElectionClock, t: float) -> None:
    """Sleep until `clock.now() >= t` (a checkpoint even when `t` has passed)."""
    await trio.sleep_until(clock.to_trio(t))
