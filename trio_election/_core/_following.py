"""Following the lock: one candidate's watch of its lock, or polling where it cannot watch.

The engine's follower task. It keeps the engine's view of the lock fresh (every state it
sees goes through `Engine._observe`), for followers and for the leader alike: a leader must
see a write by anyone else in the instant it lands, so its watch is reopened when it breaks.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from typing import TYPE_CHECKING, final

import trio

from ._exceptions import LockError, WatchUnavailable
from ._timing import JITTER_FACTOR

if TYPE_CHECKING:
    from ._engine import Engine
    from ._lock import Observation

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
    """Watches (or polls) one engine's lock; `watching` is True while a watch is open."""

    __slots__ = ("_engine", "watching")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.watching = False

    async def run(self) -> None:
        """Watch; after a failure wait a poll delay, read, and watch again. Poll for a while
        when watching is refused, or keeps failing while reads work, then try watching
        again. While leading and polling, the renewals read. Runs until cancelled; errors
        that retrying cannot cure come out."""
        engine = self._engine
        description = engine.handle.description
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
                        engine.timing.retry_period,
                        engine.timing.retry_period * (1 + JITTER_FACTOR),
                        POLLS_BEFORE_WATCHING_AGAIN,
                    )
                    refused_before = True
                    polls_left = POLLS_BEFORE_WATCHING_AGAIN
                except LockError as exc:
                    engine._heed(exc)
                    failures += 1
                    logger.info("%s: watch failed: %s", description, exc)
                    if failures >= WATCH_FAILURES_BEFORE_POLLING:
                        logger.warning(
                            "%s: watching keeps failing; polling for a while", description
                        )
                        failures = 0
                        polls_left = POLLS_BEFORE_WATCHING_AGAIN
                finally:
                    self.watching = False
            await trio.sleep(engine._retry_span())
            if polls_left:
                polls_left -= 1
                if engine.term is not None:
                    continue  # the leader's renewals keep its view fresh
            try:
                await engine.read()
            except LockError as exc:
                logger.info("%s: read failed: %s", description, exc)
                failures = 0  # the server is unreachable (a restart): polling would not help

    async def _watch_session(self) -> None:
        """Watch until the stream ends; pause first if the last one ended at once."""
        engine = self._engine
        obs = engine._obs
        assert obs is not None
        opened = engine.clock.now()
        events_seen = 0
        with trio.move_on_after(WATCH_SESSION_LIMIT):
            async with aclosing(engine.handle.watch(obs)) as events:
                self.watching = True
                async for event in events:
                    events_seen += 1
                    if not _is_stale(event, engine._obs):
                        engine._observe(event)
        if not events_seen and engine.clock.now() - opened < engine.timing.retry_period:
            await trio.sleep(engine._trio_span(engine._poll_delay()))


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
