"""The election engine: one candidate's view of one lock, and its terms as leader.

Pure trio. It sees the lock only through the `LockHandle` protocol and time only through
one `Clock`. Both faces of the library (`open_election`/`elect` and the seed's
`LeaderElector`) drive this one engine.

How it decides (the safety rules):

- It follows the lock (a watch, or client-go's jittered polling when the lock cannot be
  watched) and notes `observed_time = clock.now()` whenever the *record* changes.
- It may take the lock when the holder is empty (at once), when the object is missing and
  no holder was ever seen (at once), or when `observed_time + duration` has passed with no
  change seen; `duration` is the record's `leaseDurationSeconds`, or our own lease duration
  when the record's is missing or invalid, or when the record cannot be read. A record that
  names our identity but was not written by this process is waited out like any other.
  A record that is exactly one this process sent (a write the server applied late) is ours.
  A missing object after a holder was seen is waited out for that holder's lease.
  Expiry-based takeovers wait a random delay of at most
  `MAX_EXPIRY_DELAY_FRACTION * retry_period` first.
- Every write carries the version it was based on; a conflict means someone else wrote first.
- A term's deadline is the send time of the last renew that changed the record, plus
  `renew_deadline`; the leader's cancel scope fires then, even if a lock call hangs.
- A term ends at once when an observed record stops naming us (another holder, an empty
  holder, an unreadable record, a deleted object): the leader keeps watching while it leads.
- Which errors heal is the lock layer's knowledge: `LockError` is retried, any other
  `ElectionError` is fatal.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections import deque
from typing import TYPE_CHECKING, final

import trio

from ._clock import Clock, sleep_until
from ._exceptions import ElectionError, LockConflict, LockError, LockNotFound
from ._following import Follower
from ._leadership import Leadership
from ._lock import UNKNOWN_HOLDER, LeaderRecord, LockHandle, Observation
from ._metering import Meter, MeteredHandle, Statistics
from ._timing import JITTER_FACTOR, MAX_EXPIRY_DELAY_FRACTION, Timing

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Engine"]

logger = logging.getLogger("trio_election")

SENT_RECORDS_KEPT = 8
"""How many of the records this process wrote last it recognises as its own."""

RAW_SHOWN = 200
"""How much of an unreadable record a warning shows."""

RENEW_SPREAD = 0.5
"""While several elections of one process renew, the first renew of a term comes up to
this fraction of `retry_period` early (at random), spreading their renewals over the
period instead of sending them all in the same instant."""

_RENEWING: trio.lowlevel.RunVar[int] = trio.lowlevel.RunVar("trio_election_renewing", default=0)
"""How many terms of this trio run are in `renew_loop`."""


def _why_not_ours(obs: Observation) -> tuple[str, str]:
    """Why an observed state of the lock ends our term: its kind, and the reason."""
    if not obs.exists:
        return "deleted", "the lock object was deleted"
    if obs.holder is None:
        return "released", "another process released the lock (its record has an empty holder)"
    if obs.holder == UNKNOWN_HOLDER:
        return "unreadable", "the lock's record was overwritten with one that cannot be read"
    return "other_holder", f"{obs.holder} holds the lock now"


class _Outcome:
    """What one attempt to write the lock came to."""

    TOOK = "took"
    CONFLICT = "conflict"
    FAILED = "failed"


@final
class Engine:
    """One candidate's state machine for one lock."""

    def __init__(
        self,
        handle: LockHandle,
        *,
        identity: str,
        timing: Timing,
        clock: Clock,
        release_on_exit: bool = True,
        on_leader_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.meter = Meter()
        self.handle: LockHandle = MeteredHandle(handle, self.meter)
        self.identity = identity
        self.timing = timing
        self.clock = clock
        self.release_on_exit = release_on_exit
        self._on_leader_change = on_leader_change
        self._random = random.Random()
        # what we know of the lock
        self._obs: Observation | None = None
        self._observed_time = 0.0
        self._expiry_delay = 0.0
        self._last_held: tuple[LeaderRecord | None, float] | None = None
        self._own_version: str | None = None
        self._leader: str | None = None
        self._leader_seq = 0
        self._changed = trio.Event()
        self._fatal: BaseException | None = None
        self._warned_identity = False
        self._warned_raw: str | None = None
        self._sent: deque[LeaderRecord] = deque(maxlen=SENT_RECORDS_KEPT)
        self._max_transitions: int | None = None
        self._renew_failing = False
        self._last_renew_error = ""
        self._quiet_until = -math.inf  # trio time: the server asked us to wait until then
        # our terms
        self._term: Leadership | None = None
        self._term_ended = trio.Event()
        self._follower = Follower(self)

    # ------------------------------------------------------------------ queries
    @property
    def leader(self) -> str | None:
        return self._leader

    @property
    def leader_seq(self) -> int:
        return self._leader_seq

    @property
    def term(self) -> Leadership | None:
        return self._term

    @property
    def is_leader(self) -> bool:
        term = self._term
        return term is not None and not term.lost

    def statistics(self) -> Statistics:
        term = self._term
        meter = self.meter
        renewed_at = meter.renewed_at
        return Statistics(
            identity=self.identity,
            lock=self.handle.description,
            leader=self._leader,
            is_leader=self.is_leader,
            term=None if term is None else term.term,
            watching=self._follower.watching,
            observed_at=None if self._obs is None else self.clock.to_trio(self._observed_time),
            renewals=meter.renewals,
            failed_renewals=meter.failed_renewals,
            slow_path_renewals=meter.slow_path_renewals,
            transitions_seen=meter.transitions_seen,
            terms=meter.terms,
            renewed_at=None if renewed_at is None else self.clock.to_trio(renewed_at),
            renew_latency_last=meter.renew_latency_last,
            renew_latency_max=meter.renew_latency_max,
            time_leading=meter.time_leading(self.clock.now()),
            conflicts=meter.conflicts,
            requests=dict(meter.requests),
            losses=dict(meter.losses),
        )

    async def wait_changed(self) -> None:
        """Wait for the next observation that changed anything; raise a stored fatal error."""
        self.raise_fatal()
        await self._changed.wait()
        self.raise_fatal()

    @property
    def fatal(self) -> BaseException | None:
        """An error that retrying cannot cure, once one was met."""
        return self._fatal

    def raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # ------------------------------------------------------------------ observing
    def _observe(self, obs: Observation) -> None:
        """Take in one read of the lock, from any source, and wake whoever waits."""
        now = self.clock.now()
        previous = self._obs
        if (
            previous is None
            or previous.exists != obs.exists
            or previous.raw != obs.raw
            # an unreadable record names no holder: only its version shows that it was
            # written again (the same garbage twice must not read as no change)
            or (obs.record is None and obs.version != previous.version)
        ):
            self._observed_time = now
            self._expiry_delay = self._random.uniform(
                0.0, MAX_EXPIRY_DELAY_FRACTION * self.timing.retry_period
            )
        if obs.exists and obs.holder is not None:
            self._last_held = (obs.record, self._observed_time)
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
                self.handle.description,
                shown,
            )
        self._obs = obs
        holder = obs.holder
        if holder != self._leader:
            if self._leader is not None and holder is not None:
                self.meter.transitions_seen += 1
            self._leader = holder
            self._leader_seq += 1
            logger.info("%s: %s sees leader %s", self.handle.description, self.identity, holder)
            if self._on_leader_change is not None:
                self._on_leader_change(holder)
        term = self._term
        if term is not None and holder != self.identity:
            term._lose(*_why_not_ours(obs))
        self._changed.set()
        self._changed = trio.Event()

    def _fail(self, exc: BaseException) -> None:
        """Store an error that retrying cannot cure and wake every waiter to raise it."""
        if self._fatal is None:
            self._fatal = exc
        if self._term is not None:
            self._term._lose("fatal", f"{type(exc).__name__}: {exc}")
        self._changed.set()
        self._changed = trio.Event()

    def _poll_delay(self) -> float:
        return self.timing.retry_period * (1 + JITTER_FACTOR * self._random.random())

    def _retry_span(self) -> float:
        """trio seconds to wait before the next read or campaign write: a poll delay, or
        longer when the server asked for it (a 429's Retry-After)."""
        asked = self._quiet_until - trio.current_time()
        return max(self._trio_span(self._poll_delay()), asked)

    def _heed(self, exc: LockError) -> None:
        """Remember a server's request to wait (Retry-After) for the next retry."""
        if exc.retry_after is not None:
            self._quiet_until = max(self._quiet_until, trio.current_time() + exc.retry_after)

    async def read(self) -> Observation:
        """One GET, bounded by `renew_deadline`; `LockError` on failure or timeout."""
        try:
            with trio.move_on_after(self._trio_span(self.timing.renew_deadline)):
                obs = await self.handle.get()
                self._observe(obs)
                return obs
        except LockError as exc:
            self._heed(exc)
            raise
        raise LockError(f"reading {self.handle.description} timed out")

    async def first_read(self) -> None:
        """Read the lock until it works; transient errors are retried, fatal ones raised."""
        while True:
            try:
                await self.read()
            except LockError as exc:
                logger.warning("%s: cannot read the lock yet: %s", self.handle.description, exc)
                await trio.sleep(self._retry_span())
            else:
                return

    def _trio_span(self, span: float) -> float:
        """Convert a span of our clock into trio seconds."""
        now = self.clock.now()
        return self.clock.to_trio(now + span) - self.clock.to_trio(now)

    async def run_follower(self) -> None:
        """Follow the lock forever: watch it, or poll it when it cannot be watched.

        Needs `first_read()` to have succeeded. Fatal errors are stored and raised to the
        callers of `acquire()`, `wait_changed()` and the faces, not out of this task.
        """
        try:
            await self._follower.run()
        except ElectionError as exc:
            if isinstance(exc, LockError):
                raise  # pragma: no cover - every LockError is handled by the follower
            logger.error("%s: %s", self.handle.description, exc)
            self._fail(exc)

    # ------------------------------------------------------------------ campaigning
    def _may_take_at(self) -> float:
        """The time of our clock from which we may try to take the lock (inf: never now)."""
        obs = self._obs
        if obs is None:
            return math.inf
        now = self.clock.now()
        if not obs.exists:
            if self._last_held is None:
                return now
            record, seen_at = self._last_held
            return seen_at + self._duration_of(record) + self._expiry_delay
        record = obs.record
        if record is not None and not record.holder_identity:
            return now
        if record is not None and record.holder_identity == self.identity:
            if obs.version == self._own_version:
                return now
            if record in self._sent:
                logger.warning(
                    "%s: a write of ours that had timed out was applied late by the API "
                    "server; the record is ours, leading again with a conditional write",
                    self.handle.description,
                )
                self._own_version = obs.version
                return now
            if not self._warned_identity:
                self._warned_identity = True
                logger.warning(
                    "%s names our identity %r but this process did not write it: waiting it "
                    "out (give every candidate process a unique identity)",
                    self.handle.description,
                    self.identity,
                )
        return self._observed_time + self._duration_of(record) + self._expiry_delay

    def _duration_of(self, record: LeaderRecord | None) -> float:
        if record is None or record.lease_duration_seconds <= 0:
            return self.timing.lease_duration
        return record.lease_duration_seconds

    def _new_record(self) -> LeaderRecord:
        """The record that starts a new term: transitions one above any this process saw
        (0 for a lock that was never seen held), acquire and renew time now."""
        wall = self.clock.wall()
        seen = self._max_transitions
        return LeaderRecord(
            holder_identity=self.identity,
            lease_duration_seconds=self.timing.lease_seconds,
            acquire_time=wall,
            renew_time=wall,
            leader_transitions=0 if seen is None else seen + 1,
        )

    async def acquire(self) -> Leadership:
        """Campaign until we hold the lock; return the new term.

        Blocks until then; raises a stored fatal error. The follower task must be running.
        """
        while True:
            self.raise_fatal()
            changed = self._changed
            # compare in trio's time, the time the wait below is measured in: comparing in
            # a scaled clock's time can round just short of `at` and wait for nothing forever
            at = self.clock.to_trio(self._may_take_at())
            if trio.current_time() >= at:
                outcome, term = await self._try_take()
                if term is not None:
                    return term
                if outcome == _Outcome.CONFLICT:
                    continue
                with trio.move_on_after(self._retry_span()):
                    await changed.wait()
                continue
            with trio.move_on_at(at):
                await changed.wait()

    async def _try_take(self) -> tuple[str, Leadership | None]:
        obs = self._obs
        assert obs is not None
        record = self._new_record()
        self._sent.append(record)
        sent = self.clock.now()
        result: Observation | None = None
        try:
            with trio.move_on_after(self._trio_span(self.timing.renew_deadline)):
                if obs.exists:
                    result = await self.handle.update(record, obs)
                else:
                    result = await self.handle.create(record)
            if result is None:
                logger.info("%s: write timed out", self.handle.description)
                return _Outcome.FAILED, None
        except (LockConflict, LockNotFound):
            try:
                await self.read()
            except LockError:
                return _Outcome.FAILED, None
            return _Outcome.CONFLICT, None
        except LockError as exc:
            self._heed(exc)
            logger.info("%s: could not take the lock: %s", self.handle.description, exc)
            return _Outcome.FAILED, None
        self._own_version = result.version
        taken = result.record if result.record is not None else record
        term = Leadership(
            identity=self.identity,
            lock=self.handle.description,
            term=taken.leader_transitions,
            acquired_at=self.clock.to_trio(sent),
            deadline=self.clock.to_trio(sent + self.timing.renew_deadline),
            clock_deadline=sent + self.timing.renew_deadline,
        )
        self._term = term
        self.meter.term_started(sent)
        self._renew_failing = False
        self._term_ended = trio.Event()
        self._observe(result)
        logger.info(
            "%s: %s became leader (term %d)", self.handle.description, self.identity, term.term
        )
        return _Outcome.TOOK, term

    # ------------------------------------------------------------------ leading
    async def renew_loop(self, term: Leadership) -> None:
        """Renew every `retry_period` until cancelled or the term is lost.

        The first renew of a term comes `retry_period` after it began, or, while other
        elections of this trio run are renewing too, at a random point between half a
        `retry_period` and one (`self._random`): elections that began together would
        otherwise renew in the same instant for as long as they lead. A renew is only
        ever moved earlier, never later, so the deadline rule is untouched.

        At the deadline (no renew that changed the record for `renew_deadline`) the term
        is marked lost at once, with the last renew error as the reason.
        """
        renewing = _RENEWING.get()
        _RENEWING.set(renewing + 1)
        try:
            first = self.timing.retry_period
            if renewing:
                first *= self._random.uniform(1.0 - RENEW_SPREAD, 1.0)
            next_at = self.clock.now() + first
            while True:
                await sleep_until(self.clock, min(next_at, term._clock_deadline))
                if term.lost:
                    break
                # compare in trio's time, the time slept in: a scaled clock's round trip
                # can come out just short of `next_at` and go round forever
                if trio.current_time() < self.clock.to_trio(next_at):
                    continue  # a renew moved the deadline while we slept
                started = self.clock.now()
                next_at = started + self.timing.retry_period
                with trio.move_on_at(self.clock.to_trio(term._clock_deadline)):
                    await self._renew_once(term, started)
        finally:
            _RENEWING.set(_RENEWING.get() - 1)
        self._expire(term)

    def _expire(self, term: Leadership) -> None:
        """Give a term that ran past its deadline its reason (and its one WARNING)."""
        if term.lost and not term._lost:
            why = self._last_renew_error or "the renewals did not finish in time"
            term._lose(
                "deadline",
                f"no successful renew for {self.timing.renew_deadline:g} s "
                f"(the renew deadline); last renew error: {why}",
            )

    async def _renew_once(self, term: Leadership, sent: float) -> None:
        cached = self._obs
        assert cached is not None
        base = cached.record if cached.record is not None else self._new_record()
        record = dataclasses.replace(
            base,
            holder_identity=self.identity,
            lease_duration_seconds=self.timing.lease_seconds,
            renew_time=self.clock.wall(),
        )
        self._sent.append(record)
        self._renew_failing = True  # until this attempt succeeds
        self._last_renew_error = "it timed out"
        result: Observation | None = None
        if cached.exists and cached.version == self._own_version:
            try:
                result = await self.handle.update(record, cached)
            except ElectionError as exc:  # the slow path tells transient from fatal
                logger.debug("%s: renew failed, reading: %s", self.handle.description, exc)
        if result is None:
            self.meter.slow_path_renewals += 1
            try:
                result = await self._renew_slow(term, record)
            except LockError as exc:
                self.meter.failed_renewals += 1
                self._last_renew_error = str(exc)
                logger.warning("%s: renew failed: %s", self.handle.description, exc)
                return
            except ElectionError as exc:
                self.meter.failed_renewals += 1
                logger.error("%s: renew failed for good: %s", self.handle.description, exc)
                self._fail(exc)
                return
            if result is None:
                return
        self._renew_failing = False
        self._last_renew_error = ""
        changed = result.version != cached.version and result.raw != cached.raw
        self.meter.renewed(sent, self.clock.now(), moved_deadline=changed and not term.lost)
        self._own_version = result.version
        self._observe(result)
        if changed and not term.lost:
            term._clock_deadline = sent + self.timing.renew_deadline
            term.cancel_scope.deadline = self.clock.to_trio(term._clock_deadline)

    async def _renew_slow(self, term: Leadership, record: LeaderRecord) -> Observation | None:
        """Read, then write if the lock still names us; None when the term is lost (reading
        a record that does not name us ends the term)."""
        fresh = await self.handle.get()
        self._observe(fresh)
        if term.lost:
            return None
        return await self.handle.update(record, fresh)

    def end_term(self, term: Leadership) -> None:
        """Mark the term as over (the leader's body has unwound)."""
        self._expire(term)
        if self._term is term:
            self.meter.term_ended(self.clock.now(), term._loss if term.lost else None)
            self._term = None
            self._term_ended.set()
            self._changed.set()
            self._changed = trio.Event()

    async def release(self, term: Leadership) -> bool:
        """Write an empty holder if the record still names us; True if released.

        Shielded from cancellation. A healthy leader's release is bounded by
        `renew_deadline` and retries conflicts and failures; after a loss, or while the
        renewals were failing (the API server does not answer), it is one try bounded by
        `retry_period`: followers then wait out the lease.
        """
        short = term.lost or self._renew_failing
        budget = self.timing.retry_period if short else self.timing.renew_deadline
        with trio.move_on_after(self._trio_span(budget), shield=True):
            cached = self._obs
            while True:
                try:
                    if cached is None or cached.version != self._own_version:
                        cached = await self.handle.get()
                        self._observe(cached)
                    if cached.holder != self.identity or cached.record is None:
                        return False
                    wall = self.clock.wall()
                    record = dataclasses.replace(
                        cached.record,
                        holder_identity="",
                        lease_duration_seconds=1,
                        acquire_time=wall,
                        renew_time=wall,
                    )
                    result = await self.handle.update(record, cached)
                except LockError as exc:
                    cached = None  # read before the next try
                    if isinstance(exc, LockConflict):
                        continue
                    logger.info("%s: release failed: %s", self.handle.description, exc)
                    if short:
                        break
                    await trio.sleep(self._trio_span(self.timing.retry_period / 4))
                    continue
                except ElectionError as exc:
                    logger.error("%s: cannot release: %s", self.handle.description, exc)
                    return False
                self._own_version = None
                self._observe(result)
                logger.info("%s: %s released the lock", self.handle.description, self.identity)
                return True
        logger.warning(
            "%s: could not release the lock within %.3g s; the other candidates take over "
            "when its lease runs out (at most %.3g s)",
            self.handle.description,
            budget,
            self.timing.lease_seconds,
        )
        return False
