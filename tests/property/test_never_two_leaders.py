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

from typing import TYPE_CHECKING

from hypothesis import given, settings

from ._checks import check_never_two_leaders, check_settles, check_terms_grow, run
from ._settings import budget
from ._strategies import KUBE_KINDS, MEMORY_KINDS, schedules

if TYPE_CHECKING:
    from ._schedule import Schedule

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


@settings(max_examples=budget(40))
@given(schedules("configmaps", kinds=SAFE_KUBE_KINDS))
def test_configmap_lock_over_the_fake_api(schedule: Schedule) -> None:
    check("ConfigMap over FakeKubeApi", schedule)
