"""Never two leaders, under generated fault schedules, in virtual time.

Each schedule runs two to four candidates on one lock for a couple of virtual minutes of
faults: requests that fail, hang, slow down or conflict; 5xx runs; 429 with Retry-After;
watch streams that break, lag or expire; writes the server applies late; crashes and
restarts (with a new identity or the same one); foreign writes (another holder with at
least our lease, garbage, a record naming one of ours); and a clock rate per candidate,
the largest ratio kept below `lease_duration / renew_deadline`. `History` judges: no two
terms overlap; every new term's number (the fencing token) is larger; after the last fault
a leader emerges within a lease. The two documented overlaps (a deleted lock, a foreign
release while the leader is cut off) have properties of their own
(`test_documented_overlaps.py`); the rate bound from above is `test_rate_bound.py`.
"""

from __future__ import annotations

from hypothesis import example, given, settings

from ._checks import check_never_two_leaders, check_settles, check_terms_grow, run
from ._schedule import LEADER, Candidate, Event, Schedule
from ._settings import budget
from ._strategies import KUBE_KINDS, MEMORY_KINDS, schedules

SAFE_KUBE_KINDS = KUBE_KINDS


def check(name: str, schedule: Schedule) -> None:
    run(name, schedule, check_never_two_leaders, check_terms_grow, check_settles)


@settings(max_examples=budget(1300))
@given(schedules("memory", kinds=MEMORY_KINDS))
def test_memory_lock(schedule: Schedule) -> None:
    check("memory lock", schedule)


@settings(max_examples=budget(120))
@given(schedules("leases", kinds=SAFE_KUBE_KINDS))
def test_lease_lock_over_the_fake_api(schedule: Schedule) -> None:
    check("Lease over FakeKubeApi", schedule)


FAILURES_SPENT_AFTER_THE_LEASE = Schedule(
    backend="configmaps",
    candidates=(Candidate(), Candidate()),
    events=(
        Event(0.0, "hang", LEADER, span=0.25),
        Event(14.5, "crash", LEADER),
        Event(14.5, "fail", LEADER, size=17.0),
        Event(15.0, "fail", 1, size=17.0),
    ),
)
"""Both candidates' next 17 requests fail, injected while they follow a watch: they make
none until the crashed leader's lease runs out, then one per retry. The faults are over
only then, about 50 s after they were injected; a leader must emerge within the quiet tail
from there."""


@settings(max_examples=budget(40))
@given(schedules("configmaps", kinds=SAFE_KUBE_KINDS))
@example(FAILURES_SPENT_AFTER_THE_LEASE)
def test_configmap_lock_over_the_fake_api(schedule: Schedule) -> None:
    check("ConfigMap over FakeKubeApi", schedule)
