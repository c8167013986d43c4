"""One clock object for every decision the engine makes about time.

The engine never reads `time.time()` or `time.monotonic()`: it asks an `ElectionClock`. The
default, `LoopClock`, is the running event loop's own clock, read through anyio: trio's clock
under trio (so `autojump_clock` makes tests run in virtual time), the loop's `time()` under
asyncio. `ScaledClock` runs faster or slower than the loop's, to test tolerance to clock-rate
skew. The
wall-clock timestamps written into lock records come from the clock's `wall()` method; they
are informational only (expiry is always judged on the local clock).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Protocol, final

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ElectionClock", "LoopClock", "ScaledClock"]


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class ElectionClock(Protocol):
    """What the engine needs of time: `clock=` of the faces takes any object with these
    three methods (the default reads the event loop's clock;
    `trio_election.testing.ScaledClock` runs fast or slow)."""

    def now(self) -> float:
        """The current time of this clock, in seconds (any origin)."""
        ...

    def to_loop(self, t: float) -> float:
        """Convert a time of this clock to the event loop's clock, for cancel-scope deadlines."""
        ...

    def wall(self) -> _dt.datetime:
        """The wall-clock time (timezone-aware, UTC) written into lock records."""
        ...


@final
class LoopClock:
    """The running event loop's clock (`anyio.current_time()`: trio's clock under trio, the
    loop's `time()` under asyncio), with an injectable wall clock."""

    __slots__ = ("_wall",)

    def __init__(self, wall: Callable[[], _dt.datetime] = _utc_now) -> None:
        self._wall = wall

    def now(self) -> float:
        return anyio.current_time()

    def to_loop(self, t: float) -> float:
        return t

    def wall(self) -> _dt.datetime:
        return self._wall()

    def __repr__(self) -> str:
        return "LoopClock()"


@final
class ScaledClock:
    """A clock that runs `rate` times as fast as the event loop's, shifted by `offset` seconds.

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
        return self._offset + self._rate * anyio.current_time()

    def to_loop(self, t: float) -> float:
        return (t - self._offset) / self._rate

    def wall(self) -> _dt.datetime:
        return self._wall()

    def __repr__(self) -> str:
        return f"ScaledClock(rate={self._rate!r}, offset={self._offset!r})"


def loop_span(clock: ElectionClock, span: float) -> float:
    """Convert a span of `clock`'s time, starting now, into seconds of the event loop's clock."""
    now = clock.now()
    return clock.to_loop(now + span) - clock.to_loop(now)


async def sleep_until(clock: ElectionClock, t: float) -> None:
    """Sleep until `clock.now() >= t` (a checkpoint even when `t` has passed)."""
    await anyio.sleep_until(clock.to_loop(t))
