"""Hypothesis strategies for `Schedule`s.

Times are multiples of a quarter second (they shrink to round numbers and often coincide
with renewals, which is where races hide); rates have three decimals. Shrinking goes
towards fewer events, faults on the leader, two candidates, rate 1 and the default timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hypothesis import strategies as st

from ._schedule import LEADER, SAFE_FOREIGN, Candidate, Event, Schedule
from ._settings import PROFILE

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["KUBE_KINDS", "MEMORY_KINDS", "TIMINGS", "bound_of", "schedules"]


@dataclass(frozen=True, slots=True)
class Size:
    """How big schedules get: faults within `horizon` lease durations, at most `events`
    faults and `candidates` candidates."""

    horizon: float
    events: int
    candidates: int


SIZE: Final = Size(10, 14, 5) if PROFILE == "chaos" else Size(6, 10, 3)
"""The normal run keeps schedules small (they run in the test suite); chaos goes further."""

TIMINGS: Final = ((15.0, 10.0, 2.0), (4.0, 3.0, 1.0), (30.0, 20.0, 5.0))
"""lease_duration, renew_deadline, retry_period: the defaults first."""

MEMORY_KINDS: Final = ("hang", "crash", "fail", "slow", "conflict", "stop", "foreign")
KUBE_KINDS: Final = (
    "hang",
    "crash",
    "fail",
    "5xx",
    "429",
    "conflict",
    "slow",
    "lag",
    "drop",
    "expire",
    "stall",
    "stop",
    "foreign",
)


def bound_of(timing: tuple[float, float, float]) -> float:
    """The clock-rate ratio below which never two leaders: lease_duration / renew_deadline."""
    return timing[0] / timing[1]


def _quarters(low: float, high: float) -> st.SearchStrategy[float]:
    return st.integers(round(low * 4), round(high * 4)).map(lambda q: q / 4)


def _round_down(x: float) -> float:
    return math.floor(x * 1000) / 1000


@st.composite
def _event(
    draw: st.DrawFn,
    *,
    n: int,
    horizon: float,
    kinds: Collection[str],
    foreign: Collection[int],
    lease: float,
) -> Event:
    unit = lease / 15  # spans scale with the timing: the defaults' lease is 15 s
    at = draw(_quarters(0, horizon))
    order: list[str] = list(KUBE_KINDS)
    kind: str = draw(st.sampled_from(sorted(kinds, key=order.index)))
    target = draw(st.one_of(st.just(LEADER), st.integers(0, n - 1)))
    size, span, code = 0.0, 0.0, 0
    if kind in ("fail", "5xx", "429", "conflict"):
        size = float(draw(st.integers(1, 20)))
        if kind == "5xx":
            code = draw(st.sampled_from([500, 503, 504]))
        elif kind == "429":
            code = draw(st.integers(1, 30))
    elif kind == "hang":
        span = draw(_quarters(0.25, 40 * unit))
    elif kind == "slow":
        size, span = draw(_quarters(0.25, 3 * unit)), draw(_quarters(1, 60 * unit))
    elif kind == "lag":
        size, span = draw(_quarters(0.25, 10 * unit)), draw(_quarters(1, 60 * unit))
    elif kind == "stall":
        size = draw(_quarters(0.25, 20 * unit))
    elif kind in ("crash", "stop"):
        span, code = draw(_quarters(0, 40 * unit)), draw(st.integers(0, 1))
    elif kind == "foreign":
        code = draw(st.sampled_from(sorted(foreign)))
        if code == 0:
            # a holder's lease at least our lease_duration (0: missing, so ours counts)
            whole = math.ceil(lease)
            size = float(draw(st.sampled_from([whole, 0, 2 * whole, whole + 7])))
    return Event(at, kind, target, size, span, code)


@st.composite
def schedules(
    draw: st.DrawFn,
    backend: str,
    *,
    kinds: Collection[str],
    foreign: Collection[int] = SAFE_FOREIGN,
    ratio: tuple[float, float] | None = None,
    horizon: float | None = None,
    max_events: int | None = None,
    max_candidates: int | None = None,
    timings: Collection[tuple[float, float, float]] = TIMINGS,
) -> Schedule:
    """Schedules on `backend` with faults of `kinds`.

    Faults fall in the first `horizon` lease durations. `ratio` is the range of the
    largest clock-rate ratio, as fractions of the bound
    `lease_duration / renew_deadline` (default: (0, 0.97), safely inside it); with a range
    above 1, the first two candidates' rates are that far apart.
    """
    horizon = horizon or SIZE.horizon
    max_events = max_events or SIZE.events
    max_candidates = max_candidates or SIZE.candidates
    timing = draw(st.sampled_from(list(timings)))
    bound = bound_of(timing)
    n = draw(st.integers(2, max_candidates))
    base = draw(st.sampled_from([1.0, 0.5, 0.8, 1.25, 2.0]))
    low, high = ratio if ratio is not None else (0.0, 0.97)
    top = _round_down(bound * high)
    factors = [1.0]
    if low > 1:
        factors.append(_round_down(draw(st.floats(bound * low, top))))
        top = factors[1]
    while len(factors) < n:
        factors.append(_round_down(draw(st.floats(1.0, max(1.0, top)))))
    candidates = tuple(
        Candidate(
            rate=round(base * f, 6),
            watch=not draw(st.booleans()),
            offset=draw(st.sampled_from([0.0, 1000.0, -37.5])),
        )
        for f in factors
    )
    events = draw(
        st.lists(
            _event(n=n, horizon=horizon * timing[0], kinds=kinds, foreign=foreign, lease=timing[0]),
            max_size=max_events,
        )
    )
    return Schedule(
        backend=backend,
        timing=timing,
        candidates=candidates,
        events=tuple(sorted(events, key=lambda e: e.at)),
        seed=draw(st.integers(0, 2**32 - 1)),
        work=float(draw(st.sampled_from([4, 0.4, 1.5, 16]))) * timing[0],
    )


@st.composite
def deletion_races(draw: st.DrawFn, base: st.SearchStrategy[Schedule]) -> Schedule:
    """`base`, plus a deletion of the lock in use with a fresh candidate starting right
    after it (a follower restarted within a couple of seconds: it has never seen a holder)."""
    schedule = draw(base)
    t = draw(_quarters(2 * schedule.lease, 5 * schedule.lease))
    follower = draw(st.integers(0, len(schedule.candidates) - 1))
    before = draw(_quarters(0, 2 * schedule.retry))
    restart_after = draw(_quarters(0, 2 * schedule.retry))
    race = (
        Event(max(0.0, t - before), "crash", follower, span=before + restart_after),
        Event(t, "foreign", code=4),
    )
    return _with(schedule, race)


@st.composite
def releases_while_cut_off(draw: st.DrawFn, base: st.SearchStrategy[Schedule]) -> Schedule:
    """`base`, plus a foreign release while the leader is cut off from the API."""
    schedule = draw(base)
    t = draw(_quarters(2 * schedule.lease, 5 * schedule.lease))
    cut = draw(_quarters(0.25, 2 * schedule.lease))
    release_after = draw(_quarters(0, cut))
    race = (
        Event(t, "hang", LEADER, span=cut),
        Event(t + release_after, "foreign", code=3),
    )
    return _with(schedule, race)


def _with(schedule: Schedule, extra: tuple[Event, ...]) -> Schedule:
    events = tuple(sorted((*schedule.events, *extra), key=lambda e: e.at))
    return Schedule(
        backend=schedule.backend,
        timing=schedule.timing,
        candidates=schedule.candidates,
        events=events,
        seed=schedule.seed,
        work=schedule.work,
    )
