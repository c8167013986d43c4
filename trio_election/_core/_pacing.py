"""Retry pacing: how long one candidate waits before it reads or writes its lock again.

Poll delays are client-go's jittered `retry_period`; a server's request to wait (a 429's
Retry-After) stretches the next wait. The random delays that keep many candidates (and
many elections of one process) from acting in the same instant come from here too: every
random draw of an engine comes from its `Pacer`'s one generator, in the order the engine
asks for them (a seeded generator replays a run exactly).
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, final

import anyio

from ._clock import loop_span
from ._timing import (
    JITTER_FACTOR,
    MAX_EXPIRY_DELAY_FRACTION,
    MAX_RELEASE_DELAY,
    NOMINATION_SPREAD,
    RELEASE_DELAY_SHAPE,
    SUCCESSOR_FALLBACK,
    SUCCESSOR_FALLBACK_SPREAD,
)

if TYPE_CHECKING:
    from collections.abc import Generator

    from ._clock import ElectionClock
    from ._exceptions import LockError
    from ._timing import Timing

__all__ = ["RENEW_SPREAD", "Pacer"]

RENEW_SPREAD = 0.5
"""While several elections of one process renew, the first renew of a term comes up to
this fraction of `retry_period` early (at random), spreading their renewals over the
period instead of sending them all in the same instant."""

_RENEWING: anyio.lowlevel.RunVar[int] = anyio.lowlevel.RunVar("trio_election_renewing", default=0)
"""How many terms of this event loop are renewing (inside `Pacer.renewing()`)."""


@final
class Pacer:
    """One candidate's waits between attempts, and its random delays."""

    __slots__ = ("_clock", "_quiet_until", "_random", "_timing")

    def __init__(self, timing: Timing, clock: ElectionClock) -> None:
        self._timing = timing
        self._clock = clock
        self._random = random.Random()
        self._quiet_until = -math.inf  # loop time: the server asked us to wait until then

    def poll_delay(self) -> float:
        """A jittered `retry_period`, in seconds of our clock (client-go's polling)."""
        return self._timing.retry_period * (1 + JITTER_FACTOR * self._random.random())

    def poll_span(self) -> float:
        """A poll delay in seconds of the event loop's clock."""
        return loop_span(self._clock, self.poll_delay())

    def retry_span(self) -> float:
        """Seconds (of the event loop's clock) to wait before the next read or campaign
        write: a poll delay, or longer when the server asked for it (a 429's Retry-After)."""
        asked = self._quiet_until - anyio.current_time()
        return max(self.poll_span(), asked)

    def heed(self, exc: LockError) -> None:
        """Remember a server's request to wait (Retry-After) for the next retry."""
        if exc.retry_after is not None:
            self._quiet_until = max(self._quiet_until, anyio.current_time() + exc.retry_after)

    def expiry_delay(self) -> float:
        """How long after a lease's expiry to wait before taking the lock (seconds of our
        clock): at random, at most `MAX_EXPIRY_DELAY_FRACTION * retry_period`."""
        return self._random.uniform(0.0, MAX_EXPIRY_DELAY_FRACTION * self._timing.retry_period)

    def release_delay(self) -> float:
        """How long after seeing the lock released to wait before taking it (seconds of our
        clock), when no successor is named: at random in `[0, MAX_RELEASE_DELAY]`, more
        likely near the end (`RELEASE_DELAY_SHAPE`), so that the earliest of many
        followers is well ahead of the next (its write reaches their watches first and
        they do not write)."""
        return self._suppressing(MAX_RELEASE_DELAY)

    def fallback_delay(self) -> float:
        """How long after seeing the lock released to wait before taking it when another
        follower is named its successor: `SUCCESSOR_FALLBACK`, then at random at most
        `SUCCESSOR_FALLBACK_SPREAD` more (drawn as `release_delay()` is)."""
        return SUCCESSOR_FALLBACK + self._suppressing(SUCCESSOR_FALLBACK_SPREAD)

    def nomination_delay(self) -> float:
        """How long after seeing a term with no successor named to wait before naming
        ourselves (seconds of our clock): at random at most `NOMINATION_SPREAD *
        retry_period`, drawn as `release_delay()` is."""
        return self._suppressing(NOMINATION_SPREAD * self._timing.retry_period)

    def _suppressing(self, maximum: float) -> float:
        """A random delay in `[0, maximum]` whose density grows as `exp(SHAPE * t / max)`
        (the exponential timers of feedback suppression)."""
        grown = math.expm1(RELEASE_DELAY_SHAPE) * self._random.random()
        return maximum * math.log1p(grown) / RELEASE_DELAY_SHAPE

    @contextmanager
    def renewing(self) -> Generator[float]:
        """Count a term as renewing while inside; give when its first renew comes, in
        seconds of our clock after it began: `retry_period`, or while other elections of
        this event loop are renewing, at random between `1 - RENEW_SPREAD` times that and
        the whole."""
        renewing = _RENEWING.get()
        _RENEWING.set(renewing + 1)
        try:
            first = self._timing.retry_period
            if renewing:
                first *= self._random.uniform(1.0 - RENEW_SPREAD, 1.0)
            yield first
        finally:
            _RENEWING.set(_RENEWING.get() - 1)
