"""Many elections of one process share one watch of their collection.

In virtual time on the in-memory Kubernetes API. Each election's leader watches its Lease
for the whole term; with one `KubeClient`, those watches are one watch of the namespace's
Leases instead of one connection each. What users rely on: every election still sees a
write to its own Lease the moment it lands, nothing is lost when that one watch breaks,
expires or is refused, and a process without the right to watch the whole collection
works as before.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import math
import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._kube_locks._streams import (
    SHARE_RETRY_SECONDS,
    WATCH_TIMEOUT_SECONDS,
    object_events,
)
from trio_election.testing import LoopClock
from trio_election.testing._fake_api import FakeKubeApi

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from trio_election.kube import KubeClient

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
N = 6
ALL_VERBS = {"leases": {"get", "list", "watch", "create", "update", "patch"}}


def virtual_wall() -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=trio.current_time())


@dataclass
class Fleet:
    """`N` elections of one process, one `KubeClient`, each on a Lease of its own."""

    api: FakeKubeApi
    terms: dict[str, list[te.Leadership]] = field(default_factory=dict[str, list[te.Leadership]])
    ended_at: dict[str, float] = field(default_factory=dict[str, float])

    def leading(self) -> set[str]:
        return {name for name, terms in self.terms.items() if terms and not terms[-1].lost}

    def collection_watches(self) -> int:
        return sum(1 for w in self.api.filter("watch") if "fieldSelector" not in w.params)

    def collection_lists(self) -> int:
        return sum(1 for r in self.api.filter("list") if "fieldSelector" not in r.params)

    def own_watches(self) -> int:
        return sum(1 for w in self.api.filter("watch") if "fieldSelector" in w.params)


@pytest.fixture
async def fleet(request: pytest.FixtureRequest) -> AsyncGenerator[Fleet]:
    """(Each test asks for `autojump_clock` itself: pytest-trio takes the clock from the
    test's own arguments.)"""
    verbs = getattr(request, "param", ALL_VERBS)
    api = FakeKubeApi(verbs=verbs)
    fleet = Fleet(api)

    async def one(client: KubeClient, name: str) -> None:
        async with te.open_election(
            f"leases/default/{name}",
            identity="me",
            client=client,
            clock=LoopClock(wall=virtual_wall),
            stop_on_sigterm=False,
        ) as election:
            while True:
                async with election.leading() as leadership:
                    fleet.terms.setdefault(name, []).append(leadership)
                    try:
                        await trio.sleep_forever()
                    finally:
                        fleet.ended_at[name] = trio.current_time()

    async with api.client() as client:
        async with trio.open_nursery() as nursery:
            for i in range(N):
                nursery.start_soon(one, client, f"e-{i}")
            await trio.sleep(5)
            assert fleet.leading() == {f"e-{i}" for i in range(N)}
            yield fleet
            nursery.cancel_scope.cancel()
        # the elections are done, and so is their shared watch: the client can be closed
        assert api.open_watches == 0


def other_holder() -> dict[str, object]:
    now = virtual_wall().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"holderIdentity": "other", "leaseDurationSeconds": 15, "renewTime": now}


def take_over(api: FakeKubeApi, name: str) -> None:
    lease = api.get_object("leases", name)
    assert lease is not None
    lease["spec"] = {**lease["spec"], **other_holder()}
    api.put_object("leases", lease)


async def test_elections_of_one_client_share_one_watch_and_each_sees_its_own_lease(
    autojump_clock: trio.testing.MockClock,
    fleet: Fleet,
) -> None:
    # the first leader watched alone (it was the only one); once its stream ends at the
    # server's timeout, it joins the others: one open watch for all
    await trio.sleep(WATCH_TIMEOUT_SECONDS + 10)
    assert fleet.api.open_watches == 1
    assert fleet.collection_lists() == 1
    assert all(len(terms) == 1 for terms in fleet.terms.values())  # nothing was lost

    fleet.api.clear_requests()
    taken_at = trio.current_time()
    take_over(fleet.api, "e-3")
    await trio.sleep(1)
    assert fleet.ended_at["e-3"] == taken_at  # cancelled in the instant it was written
    assert fleet.terms["e-3"][0].lost
    assert fleet.leading() == {f"e-{i}" for i in range(N)} - {"e-3"}
    assert fleet.own_watches() == 0  # the lost leader follows on the shared watch too


async def test_a_broken_shared_watch_is_opened_again_and_costs_no_term(
    autojump_clock: trio.testing.MockClock, fleet: Fleet
) -> None:
    await trio.sleep(WATCH_TIMEOUT_SECONDS + 10)
    for _ in range(2):  # a third failure in a row would make them poll for a while
        fleet.api.break_watches()
        await trio.sleep(20)
        assert fleet.api.open_watches <= 2
    assert all(len(terms) == 1 for terms in fleet.terms.values())
    fleet.api.clear_requests()
    take_over(fleet.api, "e-0")
    taken_at = trio.current_time()
    await trio.sleep(1)
    assert fleet.ended_at["e-0"] == taken_at


async def test_a_shared_watch_past_compaction_lists_again_and_misses_nothing(
    autojump_clock: trio.testing.MockClock,
    fleet: Fleet,
) -> None:
    await trio.sleep(WATCH_TIMEOUT_SECONDS + 10)
    fleet.api.clear_requests()
    fleet.api.compact()
    fleet.api.expire_watches()
    await trio.sleep(5)
    assert fleet.collection_lists() == 1
    take_over(fleet.api, "e-5")
    taken_at = trio.current_time()
    await trio.sleep(1)
    assert fleet.ended_at["e-5"] == taken_at
    assert {name for name, terms in fleet.terms.items() if len(terms) > 1} == set()


@pytest.mark.parametrize(
    "fleet", [{"leases": {"get", "watch", "create", "update", "patch"}}], indirect=True
)
async def test_without_list_on_the_collection_each_lease_is_watched_alone(
    autojump_clock: trio.testing.MockClock, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    await trio.sleep(WATCH_TIMEOUT_SECONDS + 10)
    assert fleet.api.open_watches == N
    assert fleet.collection_watches() == 0
    assert all(len(terms) == 1 for terms in fleet.terms.values())
    # sharing is tried again now and then, not at every reopened watch
    lists = fleet.collection_lists()
    assert lists <= math.ceil((WATCH_TIMEOUT_SECONDS + 15) / SHARE_RETRY_SECONDS) + 1
    take_over(fleet.api, "e-1")
    taken_at = trio.current_time()
    await trio.sleep(1)
    assert fleet.ended_at["e-1"] == taken_at


LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def two_leases() -> FakeKubeApi:
    api = FakeKubeApi(verbs=ALL_VERBS)
    for name in ("a", "b"):
        api.put_object("leases", {"metadata": {"name": name}, "spec": {}})
    return api


async def read_events(
    client: KubeClient, since: str, name: str, task_status: trio.TaskStatus[None]
) -> None:
    """Read the watch events of Lease `name` until cancelled."""
    async with object_events(client, LEASES, name, since) as events:
        task_status.started()
        async for _ in events:
            pass


async def test_a_shared_watch_nobody_waits_for_any_more_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The only lock that wanted to share stops waiting while the collection is still being
    listed: the shared watch must not go on watching for nobody."""
    api = two_leases()
    async with api.client() as client:
        read = partial(read_events, client, str(api.revision))
        async with trio.open_nursery() as nursery:
            await nursery.start(read, "a")  # alone: the first watcher
            await trio.testing.wait_all_tasks_blocked()
            assert api.open_watches == 1
            api.hang_next(1, verb="list")
            with trio.move_on_after(1) as waited:
                await nursery.start(read, "b")
                pytest.fail("joined a shared watch whose LIST never came back")
            assert waited.cancelled_caught
            nursery.cancel_scope.cancel()
        api.heal()
        await trio.sleep(5)
        assert api.open_watches == 0


async def test_a_client_done_with_is_not_kept_by_its_shared_watches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = two_leases()

    async def watch_two() -> weakref.ref[KubeClient]:
        async with api.client() as client, trio.open_nursery() as nursery:
            read = partial(read_events, client, str(api.revision))
            await nursery.start(read, "a")
            await nursery.start(read, "b")
            await trio.testing.wait_all_tasks_blocked()
            assert fleet_watches(api) == (1, 1)  # a alone, then b on the shared one
            nursery.cancel_scope.cancel()
        return weakref.ref(client)

    gone = await watch_two()
    gc.collect()
    assert gone() is None


def fleet_watches(api: FakeKubeApi) -> tuple[int, int]:
    """(watches of one object, watches of the whole collection) opened so far."""
    watches = api.filter("watch")
    own = sum(1 for w in watches if "fieldSelector" in w.params)
    return own, len(watches) - own
