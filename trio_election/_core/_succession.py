"""A successor known before the release: one candidate's nominations of itself.

At a graceful handover every watching follower sees the empty holder in the same instant,
and a write takes longer to reach the other watches than any short random delay spreads
them over. So the next holder is chosen before the release: during a term, a watching
follower that sees no successor named for it names itself (`Nomination`, stored beside the
record by the lock's `nominate()`, a write conditional on the object's version that never
touches the record), at a random point of a few seconds (`Pacer.nomination_delay`), unless
another follower did first: about one write per term. Only terms that say they take
nominations get one: our leaders write that with the record that begins their term
(`NominatingHandle.take`), as they read the lock again before releasing; a client-go
leader older than 1.34 releases with a write based on the object it read last, which a
nomination since would make fail (its followers would then wait out the lease). The
leader's next renew is based on the version its watch showed with the nomination (its
record unchanged), and keeps it; only when the two cross is the renew refused, and sent
again after a read (its slow path). The release keeps it too; the successor takes the
empty holder at once, and every other follower waits the fallback first (`LockView`,
`Pacer.fallback_delay`), so a successor that has died costs a handover only the fallback.

A nomination is good for its term only (`Observation.successor`): when the holder changes,
the transitions count moves on and the followers name a new successor. A successor that
stops campaigning (its `leading()` cancelled, SIGTERM, a fatal error) withdraws its name,
so that the others need not wait the fallback and one of them names itself instead.

Nothing here is needed for safety: taking the lock later is always allowed, and every
write is conditional. Locks whose handles have no `nominate` (a user's own lock) are taken
after the short release delay alone, as are locks whose followers poll (`MultiLock`).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, final

import anyio

from ._clock import loop_span
from ._exceptions import ElectionError, LockConflict, LockError, LockNotFound
from ._lock import UNKNOWN_HOLDER, Nomination

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._clock import ElectionClock
    from ._lock import NominatingHandle, Observation
    from ._pacing import Pacer
    from ._timing import Timing
    from ._view import LockView

__all__ = ["Succession"]

logger = logging.getLogger("trio_election")

WITHDRAW_TRIES = 3
"""How many conditional writes a leaving successor tries to withdraw its name with (a
conflict, a renew that landed first, is read and tried again)."""


@final
class Succession:
    """One candidate's nominations of itself as the lock's next holder.

    The engine calls `note()` with every observation, `nominate()` from its campaign when
    `nominate_at()` has come, and `withdraw()` when a campaign ends without the lock.
    `handle` is None when the lock cannot store a nomination; `watching` tells whether the
    candidate follows the lock with a watch that works (only then does naming itself gain
    anything: a polling successor would see the release seconds late).
    """

    __slots__ = (
        "_at",
        "_clock",
        "_handle",
        "_identity",
        "_observe",
        "_pacer",
        "_read",
        "_term",
        "_timing",
        "_view",
        "_watching",
    )

    def __init__(
        self,
        handle: NominatingHandle | None,
        *,
        identity: str,
        view: LockView,
        pacer: Pacer,
        timing: Timing,
        clock: ElectionClock,
        observe: Callable[[Observation], None],
        read: Callable[[], Awaitable[object]],
        watching: Callable[[], bool],
    ) -> None:
        self._handle = handle
        self._identity = identity
        self._view = view
        self._pacer = pacer
        self._timing = timing
        self._clock = clock
        self._observe = observe
        self._read = read
        self._watching = watching
        self._at = math.inf
        """Our clock's time at which to name ourselves (inf: no need seen)."""
        self._term: int | None = None
        """The term a successor is missing for, as last seen (None: none is missing)."""

    def _missing_in(self, obs: Observation | None) -> int | None:
        """The term of `obs` when it is held by another candidate and names no successor."""
        if self._handle is None or obs is None or not obs.exists or obs.record is None:
            return None
        holder = obs.record.holder_identity
        if not holder or holder in (UNKNOWN_HOLDER, self._identity):
            return None
        nominee, term = obs.nominee, obs.record.leader_transitions
        if nominee is None or nominee.term != term or nominee.identity:
            return None  # a term that takes no nominations, or one already named
        return term

    def note(self, obs: Observation) -> None:
        """Take in one observation: when a term begins to miss a successor, draw when to
        name ourselves; when one is named, forget it."""
        term = self._missing_in(obs)
        if term is None:
            self._term = None
            self._at = math.inf
        elif term != self._term:
            self._term = term
            self._at = self._clock.now() + self._pacer.nomination_delay()

    def nominate_at(self) -> float:
        """When to name ourselves, in our clock's time (inf: not now, or not while we do
        not watch)."""
        return self._at if self._watching() else math.inf

    async def nominate(self) -> None:
        """Name ourselves the successor of the current term, with a write conditional on
        the version last seen; bounded by `retry_period`. A conflict (a renew or another
        follower's nomination landed first) is left to the watch to show; a failure waits
        for the next turn. Never raises but cancellation."""
        handle = self._handle
        # the next turn, if this one does not end in a named successor
        self._at = self._clock.now() + self._pacer.nomination_delay()
        obs = self._view.current
        term = self._missing_in(obs)
        if handle is None or obs is None or term is None:
            return
        try:
            with anyio.move_on_after(loop_span(self._clock, self._timing.retry_period)):
                self._observe(await handle.nominate(Nomination(self._identity, term), obs))
                logger.debug("%s: %s named itself successor", handle.description, self._identity)
        except (LockConflict, LockNotFound) as exc:
            logger.debug("%s: nomination not written: %s", handle.description, exc)
        except LockError as exc:
            self._pacer.heed(exc)
            logger.debug("%s: nomination failed: %s", handle.description, exc)
        except ElectionError as exc:
            # the lock takes no nomination (a refused annotation): hand over without
            # one, the release delay alone
            logger.warning(
                "%s: cannot name a successor (%s); handing over without one",
                handle.description,
                exc,
            )
            self._handle = None
            self._term = None
            self._at = math.inf

    async def withdraw(self) -> None:
        """If the lock names us its successor, remove the nomination: we stop campaigning.

        Best effort, up to `WITHDRAW_TRIES` conditional writes (a conflict reads again);
        the caller bounds and shields it. Never raises but cancellation.
        """
        handle = self._handle
        if handle is None:
            return
        for _ in range(WITHDRAW_TRIES):
            obs = self._view.current
            if obs is None or obs.successor != self._identity or obs.record is None:
                return
            opened = Nomination("", obs.record.leader_transitions)  # for another to take up
            try:
                self._observe(await handle.nominate(opened, obs))
            except LockConflict:
                try:
                    await self._read()
                except LockError:
                    return
                continue
            except ElectionError as exc:
                logger.debug("%s: withdrawing the nomination: %s", handle.description, exc)
                return
            logger.debug("%s: %s is no longer successor", handle.description, self._identity)
            return
