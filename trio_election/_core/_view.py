"""What one candidate knows of its lock: `LockView`.

The current observation and when the record last changed (`observed_time`, on the
candidate's own clock), who leads as far as it has seen, the records this process wrote,
and from these the time from which it may take the lock. Every read, write and watch event
goes through `take()`; `wake()` then wakes whoever waits for a change.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import TYPE_CHECKING, final

import anyio

from ._timing import RELEASER_DELAY, SUCCESSOR_FALLBACK

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._clock import ElectionClock
    from ._lock import LeaderRecord, LockHandle, Observation
    from ._metering import Meter
    from ._pacing import Pacer
    from ._timing import Timing

__all__ = ["LockView"]

logger = logging.getLogger("trio_election")

SENT_RECORDS_KEPT = 8
"""How many of the records this process wrote last it recognises as its own."""

RAW_SHOWN = 200
"""How much of an unreadable record a warning shows."""


@final
class LockView:
    """One candidate's knowledge of one lock, kept up to date by every observation.

    `observed_time` is our clock's time at which the record was last seen to change;
    `own_version` is the version of the record this process wrote last (None when none
    of ours is current); the engine sets it after each write.
    """

    __slots__ = (
        "_changed",
        "_clock",
        "_current",
        "_expiry_delay",
        "_handle",
        "_identity",
        "_last_held",
        "_leader",
        "_leader_seq",
        "_max_transitions",
        "_meter",
        "_on_leader_change",
        "_pacer",
        "_release_at",
        "_sent",
        "_timing",
        "_warned_identity",
        "_warned_raw",
        "_written_here",
        "observed_time",
        "own_version",
    )

    def __init__(
        self,
        *,
        handle: LockHandle,
        identity: str,
        timing: Timing,
        clock: ElectionClock,
        pacer: Pacer,
        meter: Meter,
        on_leader_change: Callable[[str | None], None] | None = None,
        written_here: Callable[[Observation], str | None] | None = None,
    ) -> None:
        self._handle = handle  # for its description, in the log
        self._written_here = written_here
        self._identity = identity
        self._timing = timing
        self._clock = clock
        self._pacer = pacer
        self._meter = meter
        self._on_leader_change = on_leader_change
        self._current: Observation | None = None
        self.observed_time = 0.0
        self._expiry_delay = 0.0
        self._release_at = 0.0
        self._last_held: tuple[LeaderRecord | None, float] | None = None
        self.own_version: str | None = None
        self._leader: str | None = None
        self._leader_seq = 0
        self._changed = anyio.Event()
        self._warned_identity = False
        self._warned_raw: str | None = None
        self._sent: deque[LeaderRecord] = deque(maxlen=SENT_RECORDS_KEPT)
        self._max_transitions: int | None = None

    # ------------------------------------------------------------------ queries
    @property
    def current(self) -> Observation | None:
        """The latest observation (None before the first)."""
        return self._current

    @property
    def leader(self) -> str | None:
        """The holder of the latest observation."""
        return self._leader

    @property
    def leader_seq(self) -> int:
        """Counts the changes of `leader`."""
        return self._leader_seq

    @property
    def max_transitions(self) -> int | None:
        """The highest transitions count seen in a record (None: no readable record yet)."""
        return self._max_transitions

    @property
    def changed(self) -> anyio.Event:
        """Set by the next `wake()`."""
        return self._changed

    # ------------------------------------------------------------------ updates
    def take(self, obs: Observation) -> None:
        """Take in one read of the lock, from any source (call `wake()` after)."""
        now = self._clock.now()
        previous = self._current
        if (
            previous is None
            or previous.exists != obs.exists
            or previous.raw != obs.raw
            # an unreadable record names no holder: only its version shows that it was
            # written again (the same garbage twice must not read as no change)
            or (obs.record is None and obs.version != previous.version)
        ):
            self.observed_time = now
            self._expiry_delay = self._pacer.expiry_delay()
            if _released(obs):
                self._release_at = now + self._release_delay(obs)
        elif _released(obs) and obs.successor != previous.successor:
            # a successor named or withdrawn on the released record: every follower's
            # wait starts again from here
            self._release_at = now + self._release_delay(obs)
        if obs.exists and obs.holder is not None:
            self._last_held = (obs.record, self.observed_time)
        if obs.record is not None:
            seen = obs.record.leader_transitions
            if self._max_transitions is None or seen > self._max_transitions:
                self._max_transitions = seen
        elif obs.exists and obs.raw != self._warned_raw:
            self._warned_raw = obs.raw
            shown = obs.raw if len(obs.raw) <= RAW_SHOWN else obs.raw[:RAW_SHOWN] + "..."
            logger.warning(
                "%s: the leader record cannot be read; it counts as held by an unknown holder "
                "and is waited out like any lease: %r",
                self._handle.description,
                shown,
            )
        self._current = obs
        holder = obs.holder
        if holder != self._leader:
            if self._leader is not None and holder is not None:
                self._meter.transitions_seen += 1
            self._leader = holder
            self._leader_seq += 1
            logger.info("%s: %s sees leader %s", self._handle.description, self._identity, holder)
            if self._on_leader_change is not None:
                self._on_leader_change(holder)

    def wake(self) -> None:
        """Wake whoever waits for `changed`; the next waiters wait for the next change."""
        self._changed.set()
        self._changed = anyio.Event()

    def released(self) -> None:
        """We have just released the lock (and `take()`n our release): give the other
        candidates the first turn at it (`RELEASER_DELAY`, and `SUCCESSOR_FALLBACK` more
        when a successor is named)."""
        current = self._current
        named = current is not None and current.successor is not None
        delay = RELEASER_DELAY + (SUCCESSOR_FALLBACK if named else 0.0)
        self._release_at = self._clock.now() + delay

    def _release_delay(self, obs: Observation) -> float:
        """How long to wait before taking the released lock `obs`: none for its named
        successor, the fallback for the other followers, else the short random delay."""
        successor = obs.successor
        if successor is None:
            return self._pacer.release_delay()
        if successor == self._identity:
            return 0.0
        return self._pacer.fallback_delay()

    def wrote(self, obs: Observation) -> bool:
        """True when `obs` holds a record that this candidate wrote (its latest, or one of
        the last it sent)."""
        if obs.record is None or not obs.exists:
            return False
        return (bool(obs.version) and obs.version == self.own_version) or obs.record in self._sent

    def sending(self, record: LeaderRecord) -> None:
        """Remember a record this process is about to write (a write that times out may
        still be applied: seeing it later, we know it is ours)."""
        self._sent.append(record)

    # ------------------------------------------------------------------ expiry
    def may_take_at(self) -> float:
        """The time of our clock from which we may try to take the lock (inf: never now)."""
        obs = self._current
        if obs is None:
            return math.inf
        now = self._clock.now()
        if not obs.exists:
            if self._last_held is None:
                return now
            record, seen_at = self._last_held
            return seen_at + self._duration_of(record) + self._expiry_delay
        record = obs.record
        if record is not None and not record.holder_identity:
            # released: taken at once by the successor named in it; by the other followers
            # after a short random delay (`Pacer.release_delay`) that lets the first of many
            # take it before the others write, or, when a successor is named, after the
            # longer fallback (`Pacer.fallback_delay`) that lets the successor's write reach
            # them first
            return self._release_at
        if record is not None and record.holder_identity == self._identity:
            if obs.version == self.own_version:
                return now
            if record in self._sent:
                logger.warning(
                    "%s: a write of ours that had timed out was applied late by the API "
                    "server; the record is ours, leading again with a conditional write",
                    self._handle.description,
                )
                self.own_version = obs.version
                return now
            if not self._warned_identity:
                self._warned_identity = True
                writer = None if self._written_here is None else self._written_here(obs)
                if writer is not None:
                    logger.warning(
                        "%s names our identity %r, written by another election of this "
                        "process with the same identity (%s): waiting it out (give each "
                        "election a unique identity)",
                        self._handle.description,
                        self._identity,
                        writer,
                    )
                else:
                    logger.warning(
                        "%s names our identity %r but no election of this process wrote it: "
                        "waiting it out (give every candidate process a unique identity)",
                        self._handle.description,
                        self._identity,
                    )
        return self.observed_time + self._duration_of(record) + self._expiry_delay

    def _duration_of(self, record: LeaderRecord | None) -> float:
        if record is None or record.lease_duration_seconds <= 0:
            return self._timing.lease_duration
        return record.lease_duration_seconds


def _released(obs: Observation) -> bool:
    return obs.exists and obs.record is not None and not obs.record.holder_identity
