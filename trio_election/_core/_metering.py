"""What an election counts for its operator: `Meter` (kept by the engine), `MeteredHandle`
(counts every lock call by verb and outcome) and `Statistics` (a frozen snapshot)."""

from __future__ import annotations

from collections import Counter
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, final

import anyio

from ._exceptions import ElectionError, LockConflict, LockError, LockNotFound

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Mapping

    from ._lock import LeaderRecord, LockHandle, NominatingHandle, Nomination, Observation

T = TypeVar("T")

__all__ = ["LOSS_KINDS", "Meter", "MeteredHandle", "Statistics"]

LOSS_KINDS = ("deadline", "other_holder", "released", "unreadable", "deleted", "fatal")
"""Why terms end by loss, as counted in `Statistics.losses`."""


@final
@dataclass(frozen=True, slots=True)
class Statistics:
    """A snapshot of one candidate's state (`election.statistics()`).

    Times are the event loop's times; durations are seconds. `requests` counts lock calls by
    ``(verb, outcome)``: verbs ``get``, ``create``, ``update``, ``nominate`` (naming this
    candidate the next holder), ``watch``; outcomes ``ok``, ``conflict``, ``not_found``,
    ``error`` (retried), ``fatal``, ``cancelled``. `losses` counts terms lost, by kind
    (`LOSS_KINDS`).
    """

    identity: str
    lock: str
    leader: str | None
    is_leader: bool
    term: int | None
    watching: bool
    observed_at: float | None
    renewals: int
    failed_renewals: int
    slow_path_renewals: int
    transitions_seen: int
    terms: int
    """Terms this candidate has led (the current one included)."""
    renewed_at: float | None
    """When the last renew that moved the deadline (or the acquiring write) was sent."""
    renew_latency_last: float | None
    renew_latency_max: float | None
    time_leading: float
    """Total time spent as leader, the current term included."""
    conflicts: int
    requests: Mapping[tuple[str, str], int]
    losses: Mapping[str, int]


@final
class Meter:
    """The counters behind `Statistics`, updated by the engine."""

    __slots__ = (
        "conflicts",
        "failed_renewals",
        "leading_since",
        "losses",
        "renew_latency_last",
        "renew_latency_max",
        "renewals",
        "renewed_at",
        "requests",
        "slow_path_renewals",
        "terms",
        "time_led",
        "transitions_seen",
    )

    def __init__(self) -> None:
        self.renewals = 0
        self.failed_renewals = 0
        self.slow_path_renewals = 0
        self.transitions_seen = 0
        self.terms = 0
        self.conflicts = 0
        self.renewed_at: float | None = None
        self.renew_latency_last: float | None = None
        self.renew_latency_max: float | None = None
        self.leading_since: float | None = None
        self.time_led = 0.0
        self.requests: Counter[tuple[str, str]] = Counter()
        self.losses: Counter[str] = Counter()

    def term_started(self, now: float) -> None:
        self.terms += 1
        self.leading_since = self.renewed_at = now

    def term_ended(self, now: float, loss: str | None) -> None:
        if self.leading_since is not None:
            self.time_led += now - self.leading_since
            self.leading_since = None
        if loss is not None:
            self.losses[loss] += 1

    def renewed(self, sent: float, now: float, *, moved_deadline: bool) -> None:
        self.renewals += 1
        if moved_deadline:
            self.renewed_at = sent
        latency = now - sent
        self.renew_latency_last = latency
        if self.renew_latency_max is None or latency > self.renew_latency_max:
            self.renew_latency_max = latency

    def time_leading(self, now: float) -> float:
        since = self.leading_since
        return self.time_led + (0.0 if since is None else now - since)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, LockConflict):
        return "conflict"
    if isinstance(exc, LockNotFound):
        return "not_found"
    if isinstance(exc, LockError):
        return "error"
    if isinstance(exc, ElectionError):
        return "fatal"
    return "cancelled"


@final
class MeteredHandle:
    """A lock handle that counts each call of the handle it wraps, by verb and outcome."""

    __slots__ = ("_inner", "_meter")

    def __init__(self, inner: LockHandle, meter: Meter) -> None:
        self._inner = inner
        self._meter = meter

    @property
    def description(self) -> str:
        return self._inner.description

    async def _count(self, verb: str, call: Awaitable[T]) -> T:
        try:
            result = await call
        except BaseException as exc:  # counted, then raised unchanged
            outcome = _outcome(exc)
            self._meter.requests[verb, outcome] += 1
            if outcome == "conflict":
                self._meter.conflicts += 1
            raise
        self._meter.requests[verb, "ok"] += 1
        return result

    async def get(self) -> Observation:
        return await self._count("get", self._inner.get())

    async def create(self, record: LeaderRecord) -> Observation:
        return await self._count("create", self._inner.create(record))

    async def update(self, record: LeaderRecord, based_on: Observation) -> Observation:
        return await self._count("update", self._inner.update(record, based_on))

    async def nominate(self, nominee: Nomination | None, based_on: Observation) -> Observation:
        """The wrapped handle's `nominate` (only for one that has it: `NominatingHandle`)."""
        inner: NominatingHandle = self._inner  # type: ignore[assignment]
        return await self._count("nominate", inner.nominate(nominee, based_on))

    async def take(
        self, record: LeaderRecord, based_on: Observation, nominee: Nomination
    ) -> Observation:
        """The wrapped handle's `take`, counted as the create or update it is."""
        inner: NominatingHandle = self._inner  # type: ignore[assignment]
        verb = "update" if based_on.exists else "create"
        return await self._count(verb, inner.take(record, based_on, nominee))

    async def watch(self, after: Observation) -> AsyncGenerator[Observation]:
        meter = self._meter
        outcome = "ok"  # ended by the server, or closed by us
        try:
            async with aclosing(self._inner.watch(after)) as events:
                async for event in events:
                    yield event
        except (GeneratorExit, anyio.get_cancelled_exc_class()):
            raise
        except BaseException as exc:  # counted, then raised unchanged
            outcome = _outcome(exc)
            raise
        finally:
            meter.requests["watch", outcome] += 1
