"""The election engine: one candidate's campaign for one lock, its renewals and release.

On anyio (trio or asyncio). It sees the lock only through the `LockHandle` protocol and
time only through one `ElectionClock`. Both faces of the library (`open_election`/`elect`
and client-go's `LeaderElector`) drive this one engine. It is built of parts: a `LockView`
(what the candidate knows of the lock: the current observation, when the record last
changed, who leads, from when the lock may be taken), a `Pacer` (poll delays, Retry-After,
the random delays), a `Follower` (the watch or the polling that keeps the view fresh) and,
while it leads, one `Leadership` per term.

How it decides (the safety rules):

- It follows the lock (a watch, or client-go's jittered polling when the lock cannot be
  watched) and notes `observed_time = clock.now()` whenever the *record* changes.
- It may take the lock (`LockView.may_take_at`) when the holder is empty (at once), when
  the object is missing and no holder was ever seen (at once), or when
  `observed_time + duration` has passed with no change seen; `duration` is the record's
  `leaseDurationSeconds`, or our own lease duration when the record's is missing or
  invalid, or when the record cannot be read. A record that names our identity but was not
  written by this process is waited out like any other. A record that is exactly one this
  process sent (a write the server applied late) is ours. A missing object after a holder
  was seen is waited out for that holder's lease. Expiry-based takeovers wait a random
  delay of at most `MAX_EXPIRY_DELAY_FRACTION * retry_period` first; a released lock is
  taken at once by the successor named in it (a follower that named itself during the
  term, `Succession`), after the fallback (`SUCCESSOR_FALLBACK`) by the others, and where
  none is named after a random delay of at most `MAX_RELEASE_DELAY` (a few milliseconds,
  drawn so that of many watching followers one writes, and the others see its write
  first); by the candidate that released it only after `RELEASER_DELAY`.
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
from typing import TYPE_CHECKING, final

import anyio

from ._campaigns import lock_key, registry
from ._clock import loop_span, sleep_until
from ._exceptions import ElectionError, LockConflict, LockError, LockNotFound
from ._following import Follower
from ._leadership import Leadership, Term, why_not_ours
from ._lock import LeaderRecord, NominatingHandle, Nomination
from ._metering import Meter, MeteredHandle, Statistics
from ._pacing import Pacer
from ._succession import Succession
from ._view import LockView

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Hashable

    from ._clock import ElectionClock
    from ._lock import LockHandle, Observation
    from ._timing import Timing

__all__ = ["Engine"]

logger = logging.getLogger("trio_election")


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
        clock: ElectionClock,
        release_on_exit: bool = True,
        on_leader_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.meter = Meter()
        self.lock_key: Hashable = lock_key(handle)
        """What identifies the lock among the elections of this process (`_campaigns`)."""
        metered = MeteredHandle(handle, self.meter)
        self.handle: LockHandle = metered
        self.identity = identity
        self.timing = timing
        self.clock = clock
        self.release_on_exit = release_on_exit
        self._pacer = Pacer(timing, clock)
        self._view = LockView(
            handle=self.handle,
            identity=identity,
            timing=timing,
            clock=clock,
            pacer=self._pacer,
            meter=self.meter,
            on_leader_change=on_leader_change,
            written_here=self._written_here,
        )
        self._fatal: BaseException | None = None
        self._renew_failing = False
        self._last_renew_error = ""
        # our terms
        self._term: Term | None = None
        self._term_ended = anyio.Event()
        # the acquire time of the record our last write of the current term left: a record
        # naming our identity with another one is a term some other process began
        self._acquired: dt.datetime | None = None
        self._follower = Follower(
            self.handle,
            view=self._view,
            pacer=self._pacer,
            timing=timing,
            clock=clock,
            observe=self._observe,
            read=self.read,
            leading=lambda: self._term is not None,
        )
        self._nominating = metered if isinstance(handle, NominatingHandle) else None
        """The handle, where it can store a successor beside the record."""
        self._succession = Succession(
            self._nominating,
            identity=identity,
            view=self._view,
            pacer=self._pacer,
            timing=timing,
            clock=clock,
            observe=self._observe,
            read=self.read,
            watching=lambda: self._follower.streaming,
        )

    # ------------------------------------------------------------------ queries
    @property
    def description(self) -> str:
        """This election in a few words: ``'<identity>' on <lock>``."""
        return f"{self.identity!r} on {self.handle.description}"

    def wrote(self, obs: Observation) -> bool:
        """True when `obs` holds a record this election wrote."""
        return self._view.wrote(obs)

    def current_is_ours(self) -> bool:
        """True when the lock as last observed holds a record this election wrote."""
        current = self._view.current
        return current is not None and self._view.wrote(current)

    def _written_here(self, obs: Observation) -> str | None:
        """Another election of this process on this lock that wrote `obs`, described."""
        writer = registry.writer_of(self.lock_key, obs, self)
        return None if writer is None else writer.description

    @property
    def leader(self) -> str | None:
        return self._view.leader

    @property
    def leader_seq(self) -> int:
        return self._view.leader_seq

    @property
    def term(self) -> Leadership | None:
        return None if self._term is None else self._term.leadership

    @property
    def is_leader(self) -> bool:
        term = self._term
        return term is not None and not term.lost

    def statistics(self) -> Statistics:
        term = self._term
        meter = self.meter
        view = self._view
        renewed_at = meter.renewed_at
        return Statistics(
            identity=self.identity,
            lock=self.handle.description,
            leader=view.leader,
            is_leader=self.is_leader,
            term=None if term is None else term.number,
            watching=self._follower.watching,
            observed_at=None if view.current is None else self.clock.to_loop(view.observed_time),
            renewals=meter.renewals,
            failed_renewals=meter.failed_renewals,
            slow_path_renewals=meter.slow_path_renewals,
            transitions_seen=meter.transitions_seen,
            terms=meter.terms,
            renewed_at=None if renewed_at is None else self.clock.to_loop(renewed_at),
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
        await self._view.changed.wait()
        self.raise_fatal()

    def wake(self) -> None:
        """Wake every waiter of `wait_changed()` (to look at something other than the lock)."""
        self._view.wake()

    @property
    def fatal(self) -> BaseException | None:
        """An error that retrying cannot cure, once one was met."""
        return self._fatal

    def raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # ------------------------------------------------------------------ observing
    def _observe(self, obs: Observation) -> None:
        """Take in one read of the lock, from any source, end a term that it does not name,
        and wake whoever waits."""
        self._view.take(obs)
        self._succession.note(obs)
        term = self._term
        if term is not None and obs.holder != self.identity:
            term.lose(*why_not_ours(obs))
        self._view.wake()

    def _fail(self, exc: BaseException) -> None:
        """Store an error that retrying cannot cure and wake every waiter to raise it."""
        if self._fatal is None:
            self._fatal = exc
        if self._term is not None:
            self._term.lose("fatal", f"{type(exc).__name__}: {exc}")
        self._view.wake()

    async def read(self) -> Observation:
        """One GET, bounded by `renew_deadline`; `LockError` on failure or timeout."""
        try:
            with anyio.move_on_after(loop_span(self.clock, self.timing.renew_deadline)):
                obs = await self.handle.get()
                self._observe(obs)
                return obs
        except LockError as exc:
            self._pacer.heed(exc)
            raise
        raise LockError(f"reading {self.handle.description} timed out")

    async def first_read(self) -> None:
        """Read the lock until it works; transient errors are retried, fatal ones raised."""
        while True:
            try:
                await self.read()
            except LockError as exc:
                logger.warning("%s: cannot read the lock yet: %s", self.handle.description, exc)
                await anyio.sleep(self._pacer.retry_span())
            else:
                return

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
    def _new_record(self) -> LeaderRecord:
        """The record that starts a new term: transitions one above any this process saw
        (0 for a lock that was never seen held), acquire and renew time now."""
        wall = self.clock.wall()
        seen = self._view.max_transitions
        return LeaderRecord(
            holder_identity=self.identity,
            lease_duration_seconds=self.timing.lease_seconds,
            acquire_time=wall,
            renew_time=wall,
            leader_transitions=0 if seen is None else seen + 1,
        )

    async def acquire(self) -> Term:
        """Campaign until we hold the lock; return the new term.

        Blocks until then; raises a stored fatal error. The follower task must be running.
        While it waits for a term held by another to end, it may name itself that term's
        successor (`_succession`); a campaign that ends without the lock (cancelled, or a
        fatal error) withdraws that name first, shielded, within `retry_period`.
        """
        try:
            while True:
                self.raise_fatal()
                changed = self._view.changed
                # compare in the loop's time, the time the waits below are measured in:
                # comparing in a scaled clock's time can round just short of `at` and wait
                # for nothing forever
                at = self.clock.to_loop(self._view.may_take_at())
                if anyio.current_time() >= at:
                    outcome, term = await self._try_take()
                    if term is not None:
                        return term
                    if outcome == _Outcome.CONFLICT:
                        continue
                    with anyio.move_on_after(self._pacer.retry_span()):
                        await changed.wait()
                    continue
                name_at = self.clock.to_loop(self._succession.nominate_at())
                if anyio.current_time() >= name_at:
                    await self._succession.nominate()
                    continue
                with anyio.CancelScope(deadline=min(at, name_at)):
                    await changed.wait()
        except BaseException:
            with anyio.move_on_after(loop_span(self.clock, self.timing.retry_period), shield=True):
                await self._succession.withdraw()
            raise

    async def _try_take(self) -> tuple[str, Term | None]:
        obs = self._view.current
        assert obs is not None
        record = self._new_record()
        self._view.sending(record)
        sent = self.clock.now()
        result: Observation | None = None
        try:
            with anyio.move_on_after(loop_span(self.clock, self.timing.renew_deadline)):
                if self._nominating is not None:
                    # the term takes nominations (we read the lock again before releasing)
                    opened = Nomination("", record.leader_transitions)
                    result = await self._nominating.take(record, obs, opened)
                elif obs.exists:
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
            self._pacer.heed(exc)
            logger.info("%s: could not take the lock: %s", self.handle.description, exc)
            return _Outcome.FAILED, None
        self._view.own_version = result.version
        taken = result.record if result.record is not None else record
        self._acquired = taken.acquire_time
        term = Term(
            identity=self.identity,
            lock=self.handle.description,
            number=taken.leader_transitions,
            acquired_at=self.clock.to_loop(sent),
            deadline=self.clock.to_loop(sent + self.timing.renew_deadline),
            clock_deadline=sent + self.timing.renew_deadline,
        )
        self._term = term
        self.meter.term_started(sent)
        self._renew_failing = False
        self._term_ended = anyio.Event()
        self._observe(result)
        logger.info(
            "%s: %s became leader (term %d)", self.handle.description, self.identity, term.number
        )
        return _Outcome.TOOK, term

    # ------------------------------------------------------------------ leading
    async def renew_loop(self, term: Term) -> None:
        """Renew every `retry_period` until cancelled or the term is lost.

        The first renew of a term comes `retry_period` after it began, or, while other
        elections of this event loop are renewing too, at a random point between half a
        `retry_period` and one (`Pacer.renewing`): elections that began together would
        otherwise renew in the same instant for as long as they lead. A renew is only
        ever moved earlier, never later, so the deadline rule is untouched.

        At the deadline (no renew that changed the record for `renew_deadline`) the term
        is marked lost at once, with the last renew error as the reason.
        """
        with self._pacer.renewing() as first:
            next_at = self.clock.now() + first
            while True:
                await sleep_until(self.clock, min(next_at, term.clock_deadline))
                if term.lost:
                    break
                # compare in the loop's time, the time slept in: a scaled clock's round trip
                # can come out just short of `next_at` and go round forever
                if anyio.current_time() < self.clock.to_loop(next_at):
                    continue  # a renew moved the deadline while we slept
                started = self.clock.now()
                next_at = started + self.timing.retry_period
                with anyio.CancelScope(deadline=self.clock.to_loop(term.clock_deadline)):
                    await self._renew_once(term, started)
        self._expire(term)

    def _expire(self, term: Term) -> None:
        """Give a term that ran past its deadline its reason (and its one WARNING)."""
        if term.lost and not term.loss:
            why = self._last_renew_error or "the renewals did not finish in time"
            term.lose(
                "deadline",
                f"no successful renew for {self.timing.renew_deadline:g} s "
                f"(the renew deadline); last renew error: {why}",
            )

    async def _renew_once(self, term: Term, sent: float) -> None:
        view = self._view
        cached = view.current
        assert cached is not None
        base = cached.record if cached.record is not None else self._new_record()
        record = dataclasses.replace(
            base,
            holder_identity=self.identity,
            lease_duration_seconds=self.timing.lease_seconds,
            renew_time=self.clock.wall(),
        )
        view.sending(record)
        self._renew_failing = True  # until this attempt succeeds
        self._last_renew_error = "it timed out"
        result: Observation | None = None
        # the object as last written by us, or as our watch showed it since with our record
        # unchanged (a successor named beside it): one conditional write, no read first
        if cached.exists and (cached.version == view.own_version or view.wrote(cached)):
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
        self._acquired = (result.record if result.record is not None else record).acquire_time
        changed = result.version != cached.version and result.raw != cached.raw
        self.meter.renewed(sent, self.clock.now(), moved_deadline=changed and not term.lost)
        view.own_version = result.version
        self._observe(result)
        if changed and not term.lost:
            deadline = sent + self.timing.renew_deadline
            term.extend(deadline, self.clock.to_loop(deadline))

    async def _renew_slow(self, term: Term, record: LeaderRecord) -> Observation | None:
        """Read, then write if the lock still names us; None when the term is lost (reading
        a record that does not name us ends the term)."""
        fresh = await self.handle.get()
        self._observe(fresh)
        if term.lost:
            return None
        return await self.handle.update(record, fresh)

    def end_term(self, term: Term) -> None:
        """Mark the term as over (the leader's body has unwound)."""
        self._expire(term)
        if self._term is term:
            self.meter.term_ended(self.clock.now(), term.loss if term.lost else None)
            self._term = None
            self._term_ended.set()
            self._view.wake()

    async def release(self, term: Term) -> bool:
        """Write an empty holder if the record is still the one our term wrote (it names
        our identity, with our term's acquire time: another process of the same identity
        may have begun a term of its own since, after the lock was deleted); True if
        released.

        Shielded from cancellation. A healthy leader's release is bounded by
        `renew_deadline` and retries conflicts and failures; after a loss, or while the
        renewals were failing (the API server does not answer), it is one try bounded by
        `retry_period`: followers then wait out the lease.
        """
        short = term.lost or self._renew_failing
        budget = self.timing.retry_period if short else self.timing.renew_deadline
        view = self._view
        with anyio.move_on_after(loop_span(self.clock, budget), shield=True):
            cached = view.current
            while True:
                try:
                    if cached is None or cached.version != view.own_version:
                        cached = await self.handle.get()
                        self._observe(cached)
                    if (
                        cached.holder != self.identity
                        or cached.record is None
                        or cached.record.acquire_time != self._acquired
                    ):
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
                    await anyio.sleep(loop_span(self.clock, self.timing.retry_period / 4))
                    continue
                except ElectionError as exc:
                    logger.error("%s: cannot release: %s", self.handle.description, exc)
                    return False
                view.own_version = None
                self._observe(result)
                view.released()  # before any waiter wakes: no checkpoint in between
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
