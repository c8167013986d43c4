"""What every schedule must show, and the runner wrapped for a property."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

from hypothesis import note

from ._runner import Outcome, recovery_bound, run_schedule
from ._stats import record

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._schedule import Schedule

__all__ = ["check_never_two_leaders", "check_settles", "check_terms_grow", "run"]

DESTROYS_THE_COUNT = frozenset({1, 4})
"""Foreign writes that leave no transitions count: garbage, a deletion."""


def run(name: str, schedule: Schedule, *checks: Callable[[Outcome], None]) -> Outcome:
    """Run `schedule`, count it under `name`, apply `checks`; a failing check comes out
    with the run's timeline attached."""
    started = time.perf_counter()
    outcome = run_schedule(schedule)
    record(name, outcome, time.perf_counter() - started)
    try:
        for check in checks:
            check(outcome)
    except AssertionError:
        note(outcome.report())
        raise
    return outcome


def check_never_two_leaders(outcome: Outcome) -> None:
    pairs = outcome.overlaps()
    assert not pairs, f"two leaders at once: {pairs[0][0]} and {pairs[0][1]}"


def check_terms_grow(outcome: Outcome) -> None:
    """The fencing token: every new term's number is above the one before, unless a
    foreign write destroyed the record in between (garbage or a deletion: the count is
    gone with it, and a candidate that missed the last terms counts from what it saw)."""
    destroyed = [
        at
        for at, event, _ in outcome.applied
        if event.kind == "foreign" and event.code in DESTROYS_THE_COUNT
    ]
    terms = sorted(outcome.terms, key=lambda t: t.start)
    for before, after in itertools.pairwise(terms):
        if any(before.start <= at <= after.start for at in destroyed):
            continue
        assert after.leadership.term > before.leadership.term, (
            f"term {after.leadership.term} of {after.process} at {after.start:.3f} does not "
            f"grow past term {before.leadership.term} of {before.process}"
        )


def check_settles(outcome: Outcome) -> None:
    """Once the faults are over, a leader emerges within a lease (by the slowest clock)."""
    settled = outcome.quiet_recovery()
    bound = recovery_bound(outcome.schedule)
    assert settled is not None, f"no leader within {bound:.1f} s after the last fault"
    assert settled <= bound, (settled, bound)
