"""Following the lock: one candidate's watch of its lock, or polling where it cannot watch.

The engine's follower task. It keeps the candidate's `LockView` fresh (every state it sees
goes to the `observe` it is given, which also ends a term that the state does not name),
for followers and for the leader alike: a leader must see a write by anyone else in the
instant it lands, so its watch is reopened when it breaks. It waits as its `Pacer` says.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from typing import TYPE_CHECKING, final

import anyio

from ._exceptions import LockError, WatchUnavailable
from ._timing import JITTER_FACTOR

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._clock import ElectionClock
    from ._lock import LockHandle, Observation
    from ._pacing import Pacer
    from ._timing import Timing
    from ._view import LockView

__all__ = ["Follower"]

logger = logging.getLogger("trio_election")

WATCH_SESSION_LIMIT = 600.0
"""A watch stream is re-opened at least this often (seconds), in case it died silently."""

WATCH_FAILURES_BEFORE_POLLING = 3
"""Consecutive watch failures (while reads work) after which a follower polls for a while."""

POLLS_BEFORE_WATCHING_AGAIN = 30
"""After falling back to polling (the watch failed or was refused), try watching again."""


@final
class Follower:
    """Watches (or polls) one candidate's lock; `watching` is True while a watch is open,
    `streaming` once it has delivered an event (the server accepted it: it works).

    `observe` takes in each state seen; `read` reads the lock once (and observes it,
    `LockError` on failure); `leading` tells whether a term is on (its renewals then read
    while it polls).
    """

    __slots__ = (
        "_clock",
        "_handle",
        "_leading",
        "_observe",
        "_pacer",
        "_read",
        "_timing",
        "_view",
        "streaming",
        "watching",
    )

    def __init__(
        self,
        handle: LockHandle,
        *,
        view: LockView,
        pacer: Pacer,
        timing: Timing,
        clock: ElectionClock,
        observe: Callable[[Observation], None],
        read: Callable[[], Awaitable[object]],
        leading: Callable[[], bool],
    ) -> None:
        self._handle = handle
        self._view = view
        self._pacer = pacer
        self._timing = timing
        self._clock = clock
        self._observe = observe
        self._read = read
        self._leading = leading
        self.watching = False
        self.streaming = False

    async def run(self) -> None:
        """Watch; after a failure wait a poll delay, read, and watch again. Poll for a while
        when watching is refused, or keeps failing while reads work, then try watching
        again. While leading and polling, the renewals read. Runs until cancelled; errors
        that retrying cannot cure come out."""
        description = self._handle.description
        retry_period = self._timing.retry_period
        failures = 0
        polls_left = 0
        refused_before = False
        while True:
            if polls_left == 0:
                try:
                    await self._watch_session()
                    failures = 0
                    continue
                except WatchUnavailable as exc:
                    log = logger.info if refused_before else logger.warning
                    log(
                        "%s: cannot watch (%s); polling every %.3g-%.3g s, trying to watch "
                        "again after %d polls",
                        description,
                        exc,
                        retry_period,
                        retry_period * (1 + JITTER_FACTOR),
                        POLLS_BEFORE_WATCHING_AGAIN,
                    )
                    refused_before = True
                    polls_left = POLLS_BEFORE_WATCHING_AGAIN
                except LockError as exc:
                    self._pacer.heed(exc)
                    failures += 1
                    logger.info("%s: watch failed: %s", description, exc)
                    if failures >= WATCH_FAILURES_BEFORE_POLLING:
                        logger.warning(
                            "%s: watching keeps failing; polling for a while", description
                        )
                        failures = 0
                        polls_left = POLLS_BEFORE_WATCHING_AGAIN
                finally:
                    self.watching = self.streaming = False
            await anyio.sleep(self._pacer.retry_span())
            if polls_left:
                polls_left -= 1
                if self._leading():
                    continue  # the leader's renewals keep its view fresh
            try:
                await self._read()
            except LockError as exc:
                logger.info("%s: read failed: %s", description, exc)
                failures = 0  # the server is unreachable (a restart): polling would not help

    async def _watch_session(self) -> None:
        """Watch until the stream ends; pause first if the last one ended at once."""
        view = self._view
        obs = view.current
        assert obs is not None
        opened = self._clock.now()
        events_seen = 0
        with anyio.move_on_after(WATCH_SESSION_LIMIT):
            async with aclosing(self._handle.watch(obs)) as events:
                self.watching = True
                async for event in events:
                    events_seen += 1
                    self.streaming = True
                    if not _is_stale(event, view.current):
                        self._observe(event)
        if not events_seen and self._clock.now() - opened < self._timing.retry_period:
            await anyio.sleep(self._pacer.poll_span())


def _is_stale(event: Observation, current: Observation | None) -> bool:
    """True for a watch event older than what we already know from a read or a write.

    A lagging watch can deliver an event after a read or our own write returned a newer
    version; taking it in would move our view backwards (and could make a new leader think
    that the previous holder still holds the lock). Versions are compared as numbers when
    both are numbers (etcd revisions are), otherwise never called stale.
    """
    if current is None or not event.version or not current.version:
        return False
    if not (event.version.isdigit() and current.version.isdigit()):
        return False
    return int(event.version) < int(current.version)
