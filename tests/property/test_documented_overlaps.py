"""The two documented overlaps, measured against their bounds under generated schedules.

1. **Deleting the lock in use.** A candidate that has never seen a holder (one that starts
   while the object is gone) cannot tell "deleted" from "never existed" and creates it at
   once; the old leader finds out from its watch at once, or, when it polls, at its next
   renew. So two leaders for at most one `retry_period` (by the leader's clock) plus two
   requests (the renew and the read after it). The schedules delete the lock while
   candidates crash, restart, stop and slow down; the leader is never cut off here (then
   the overlap would last until its renew deadline: two faults at once).
2. **A foreign release while the leader is cut off.** Followers cannot tell another
   process's empty holder from the holder's own release, and take the lock at once; a
   leader cut off from the API cannot see it, and stops at its renew deadline, which
   is at most `renew_deadline` (by its clock) after the release, since its last renew was
   sent before. The schedules mix foreign releases with every other fault.

Every overlap must be explained by such a write and stay within its bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import example, given, settings

from ._checks import check_settles, run
from ._schedule import LEADER, Candidate, Event, Schedule
from ._settings import budget
from ._strategies import (
    KUBE_KINDS,
    MEMORY_KINDS,
    deletion_races,
    releases_while_cut_off,
    schedules,
)

if TYPE_CHECKING:
    from ._runner import Outcome

EPSILON = 1e-6


def check_deletion_overlaps(outcome: Outcome) -> None:
    schedule = outcome.schedule
    slowest_request = max([e.size for e in schedule.events if e.kind == "slow"], default=0.0)
    deletions = [at for at, e, _ in outcome.applied if e.kind == "foreign" and e.code == 4]
    for a, b in outcome.overlaps():
        term = outcome.term_of(a)
        overlap = min(a.end, b.end) - b.start
        bound = schedule.retry / term.rate + 2 * slowest_request
        assert overlap <= bound + EPSILON, (
            f"{a.identity} and {b.identity} led together for {overlap:.3f} s, more than a "
            f"retry period plus two requests ({bound:.3f} s)"
        )
        assert any(a.start <= t <= b.start for t in deletions), (
            f"{a.identity} and {b.identity} overlap with no deletion of the lock before"
        )


def check_release_overlaps(outcome: Outcome) -> None:
    schedule = outcome.schedule
    releases = [at for at, e, _ in outcome.applied if e.kind == "foreign" and e.code == 3]
    for a, b in outcome.overlaps():
        term = outcome.term_of(a)
        window = schedule.renew / term.rate
        explained = [t for t in releases if a.start <= t <= b.start and t < a.end]
        assert explained, f"{a.identity} and {b.identity} overlap with no foreign release"
        assert a.end <= explained[-1] + window + EPSILON, (
            f"{a.identity} led {a.end - explained[-1]:.3f} s after a foreign release, more "
            f"than its renew deadline ({window:.3f} s)"
        )


DELETION_KINDS = ("crash", "stop", "slow", "foreign")
RELEASE_KINDS = tuple(MEMORY_KINDS)


@settings(max_examples=budget(150))
@given(deletion_races(schedules("memory", kinds=DELETION_KINDS, foreign={4})))
def test_deleting_the_lock_in_use(schedule: Schedule) -> None:
    run("deleted lock (memory)", schedule, check_deletion_overlaps, check_settles)


RESTART_AFTER_THE_DELETION = Schedule(
    backend="leases",
    candidates=(Candidate(watch=False), Candidate()),
    events=(
        *[Event(0.0, "crash", LEADER)] * 4,
        Event(15.25, "stop", LEADER, span=0.25, code=1),
        Event(15.25, "foreign", LEADER, code=4),
        Event(30.0, "crash", 0),
        Event(30.0, "foreign", LEADER, code=4),
    ),
)
"""The leader stops (and releases) as its Lease is deleted; its successor with the same
identity creates the Lease again while the old process's release is retried. That release
must not clear the successor's record (a follower would lead beside it)."""


@settings(max_examples=budget(20))
@given(deletion_races(schedules("leases", kinds=DELETION_KINDS, foreign={4})))
@example(RESTART_AFTER_THE_DELETION)
def test_deleting_the_lease_in_use(schedule: Schedule) -> None:
    run("deleted Lease", schedule, check_deletion_overlaps, check_settles)


@settings(max_examples=budget(150))
@given(releases_while_cut_off(schedules("memory", kinds=RELEASE_KINDS, foreign={0, 1, 2, 3})))
def test_a_foreign_release(schedule: Schedule) -> None:
    run("foreign release (memory)", schedule, check_release_overlaps, check_settles)


@settings(max_examples=budget(20))
@given(releases_while_cut_off(schedules("leases", kinds=KUBE_KINDS, foreign={0, 1, 2, 3})))
def test_a_foreign_release_of_a_lease(schedule: Schedule) -> None:
    run("foreign release (Lease)", schedule, check_release_overlaps, check_settles)
