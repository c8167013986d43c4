"""The clock-rate bound, from both sides.

Never two leaders while the rates of the candidates' clocks differ by less than
`lease_duration / renew_deadline` (1.5 at the defaults): every property of
`test_never_two_leaders.py` draws rates up to 0.97 of that bound. Here hypothesis *searches*
for two leaders with rates above it, finds them, and shrinks to a small schedule; that same
schedule with the rates brought back under the bound has none. Deterministic cases at the
edge: a leader cut off right after a renew, a follower faster by 1.45 (never two leaders) and
by 1.55 (two leaders, for about the difference of the two waits).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import trio
import trio.testing
from hypothesis import Phase, find, settings

import trio_election as te
from trio_election.testing import ScaledClock

from ._checks import run
from ._clocks import SpinDetector
from ._runner import run_schedule
from ._schedule import LEADER, Candidate, Event, Schedule
from ._settings import PROFILE, budget
from ._strategies import bound_of, schedules

DEFAULTS = (15.0, 10.0, 2.0)


def with_ratio(schedule: Schedule, ratio: float) -> Schedule:
    """`schedule` with the fastest clock `ratio` times as fast as the slowest (the other
    clocks in between, as they were, scaled)."""
    rates = [c.rate for c in schedule.candidates]
    low, high = min(rates), max(rates)
    scaled = tuple(
        dataclasses.replace(c, rate=low * (1 + (c.rate - low) / (high - low) * (ratio - 1)))
        for c in schedule.candidates
    )
    return dataclasses.replace(schedule, candidates=scaled)


def test_above_the_bound_hypothesis_finds_two_leaders(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    found = find(
        schedules("memory", kinds=("hang", "crash", "slow"), ratio=(1.03, 2.0), timings=[DEFAULTS]),
        lambda schedule: bool(run("rate above the bound", schedule).overlaps()),
        settings=settings(
            max_examples=budget(200),
            database=None,
            derandomize=PROFILE == "ci",
            phases=[Phase.generate, Phase.shrink],
        ),
    )
    bound = bound_of(found.timing)
    assert found.rate_ratio > bound
    overlaps = run_schedule(found).overlap_seconds()
    assert overlaps
    # the same schedule, the clocks brought back under the bound: never two leaders
    assert not run_schedule(with_ratio(found, 0.97 * bound)).overlaps()
    assert not run_schedule(with_ratio(found, 1.0)).overlaps()
    with capsys.disabled():
        print(
            f"\nfound in {time.perf_counter() - started:.1f} s, rate ratio "
            f"{found.rate_ratio:.3f} > {bound:g}, two leaders for {max(overlaps):.3f} s:\n"
            f"{found!r}"
        )


def edge(follower_rate: float) -> Schedule:
    """The worst case for a rate bound: the leader (rate 1) is cut off right after a
    renew and a watching follower's clock runs `follower_rate` times as fast."""
    return Schedule(
        backend="memory",
        timing=DEFAULTS,
        candidates=(Candidate(rate=1.0), Candidate(rate=follower_rate, start=1.0)),
        events=(Event(8.5, "hang", LEADER, span=60.0),),
        work=1000.0,
    )


@pytest.mark.parametrize("follower_rate", [1.0, 1.25, 1.45, 1.49])
def test_just_inside_the_bound_never_two_leaders(follower_rate: float) -> None:
    outcome = run("rate at the edge", edge(follower_rate))
    assert not outcome.overlaps(), outcome.report()
    (first, second) = outcome.history.closed(outcome.end)[:2]
    assert (first.identity, second.identity) == ("c0.1", "c1.1")
    # the leader stops at its renew deadline (8 + 10); the follower starts a lease after it
    # saw that renew, by its own clock (15 / rate), plus a random delay of at most 0.2 s
    assert first.end == 18.0
    assert 8 + 15 / follower_rate <= second.start <= 8 + 15 / follower_rate + 0.2


@pytest.mark.parametrize("follower_rate", [1.55, 2.0, 3.0])
def test_just_outside_the_bound_two_leaders(follower_rate: float) -> None:
    outcome = run("rate at the edge", edge(follower_rate))
    (overlap,) = outcome.overlap_seconds()
    assert 0 < overlap <= 10 - 15 / follower_rate  # the leader's wait minus the follower's


def test_a_leader_on_a_scaled_clock_keeps_renewing() -> None:
    detector = SpinDetector(limit=50_000)

    async def lead() -> None:
        with detector.scope:
            async with te.elect(
                te.MemoryLock(), identity="a", clock=ScaledClock(1.3), stop_on_sigterm=False
            ):
                await trio.sleep(60)

    trio.run(lead, clock=trio.testing.MockClock(autojump_threshold=0), instruments=[detector])
    detector.verdict()
