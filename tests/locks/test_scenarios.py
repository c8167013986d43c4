"""Candidates electing through the engine on the in-memory Kubernetes API, in virtual time.

Timing: client-go's defaults (lease 15 s, renew deadline 10 s, retry 2 s). Record times
follow trio's clock, so that second-precision annotation records change on every renew as
they do in real time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import trio_election as te
from trio_election._core._timing import MAX_RELEASE_DELAY
from trio_election._kube_locks._base import PATCH_RETRY_SECONDS, PUT_AFTER_REFUSALS
from trio_election._kube_locks._forbidden import FORBIDDEN_GRACE_SECONDS
from trio_election.testing import History, LoopClock
from trio_election.testing._fake_api import ELECTION_VERBS, FakeKubeApi

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

LEASE, RENEW, RETRY = 15.0, 10.0, 2.0
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LOCKS = ["leases/default/my-app", "endpoints/default/my-app", "configmaps/default/my-app"]
WITH_WATCH = {"get", "create", "update", "patch", "watch", "list"}


def virtual_wall() -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=trio.current_time())


@dataclass
class Candidate:
    identity: str
    lock: str
    verbs: Mapping[str, Collection[str]] | None = None
    work: float = 30.0
    rest: float = 1.0
    terms: int = 0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    election: te.Election | None = None

    async def run(
        self, api: FakeKubeApi, history: History, rng: random.Random | None = None
    ) -> None:
        with self.scope:
            async with (
                api.client(user=self.identity, verbs=self.verbs) as client,
                te.open_election(
                    self.lock,
                    identity=self.identity,
                    client=client,
                    lease_duration=LEASE,
                    renew_deadline=RENEW,
                    retry_period=RETRY,
                    clock=LoopClock(wall=virtual_wall),
                ) as election,
            ):
                self.election = election
                while True:
                    async with election.leading():
                        self.terms += 1
                        with history.leading(self.identity):
                            await trio.sleep(rng.uniform(1, 60) if rng else self.work)
                    await trio.sleep(self.rest)  # let another have a turn


def every(lock: str, verbs: Collection[str]) -> dict[str, Collection[str]]:
    resources = {"leases", lock.split("/")[0].removesuffix("leases") or "leases"}
    return dict.fromkeys(resources, verbs)


@pytest.mark.parametrize("lock", LOCKS)
async def test_handover_on_release_is_immediate_with_watch(
    autojump_clock: trio.testing.MockClock, lock: str
) -> None:
    api = FakeKubeApi()
    history = History()
    candidates = [Candidate(f"c{i}", lock) for i in range(3)]
    async with trio.open_nursery() as nursery:
        for c in candidates:
            nursery.start_soon(c.run, api, history)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    terms = history.closed()
    assert len(terms) >= 6
    for before, after in itertools.pairwise(terms):
        # a released lock is taken as soon as the watch delivers the release, after the
        # short release delay (which the candidate that released it waits out longer)
        assert after.start - before.end <= MAX_RELEASE_DELAY + 0.01, (before, after)
    assert len({iv.identity for iv in terms}) >= 2  # who wins each race is not fixed


@pytest.mark.parametrize("lock", LOCKS)
async def test_polling_when_watch_is_not_allowed(
    autojump_clock: trio.testing.MockClock, lock: str
) -> None:
    api = FakeKubeApi()
    history = History()
    candidates = [Candidate(f"c{i}", lock, verbs=every(lock, ELECTION_VERBS)) for i in range(3)]
    async with trio.open_nursery() as nursery:
        for c in candidates:
            nursery.start_soon(c.run, api, history)
        await trio.sleep(300)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    terms = history.closed()
    assert len(terms) >= 6
    for before, after in itertools.pairwise(terms):
        assert after.start - before.end <= RETRY * 2.2 + 0.01, (before, after)
    patches = api.filter("patch")
    assert all(r.status == 403 for r in patches)  # each found out that it may not patch,
    for c in candidates:  # and PUT from then on, trying patch again only now and then
        tries = [r.at for r in patches if r.user == c.identity][PUT_AFTER_REFUSALS - 1 :]
        assert all(b - a >= PATCH_RETRY_SECONDS for a, b in itertools.pairwise(tries))
    assert api.count("update") >= 20
    watches = api.filter("watch")
    assert all(r.status == 403 for r in watches)
    for c in candidates:
        # a 403 may be an apiserver that has just started: retried within the grace window
        early = [r for r in watches if r.user == c.identity and r.at < FORBIDDEN_GRACE_SECONDS]
        assert len(early) >= 2
    assert len(watches) <= 30  # then polled: no storm of watch requests


@pytest.mark.parametrize("lock", LOCKS)
async def test_one_request_per_renew(autojump_clock: trio.testing.MockClock, lock: str) -> None:
    api = FakeKubeApi()
    history = History()
    leader = Candidate("leader", lock, work=120)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.run, api, history)
        await trio.sleep(1)
        api.clear_requests()
        await trio.sleep(60)
        requests = list(api.requests)
        nursery.cancel_scope.cancel()
    resource = lock.split("/")[0]
    # one write every retry period, nothing else: no reads while the cached object is current
    assert [(r.verb, r.resource, r.status) for r in requests] == [("patch", resource, 200)] * 30


@pytest.mark.parametrize("lock", LOCKS)
async def test_renew_with_put_when_patch_is_not_allowed(
    autojump_clock: trio.testing.MockClock, lock: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_election")
    api = FakeKubeApi()
    history = History()
    leader = Candidate("leader", lock, verbs=every(lock, ELECTION_VERBS), work=120)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.run, api, history)
        await trio.sleep(3)
        writes = [(r.verb, r.status) for r in api.requests if r.verb in ("patch", "update")]
        assert writes[-2:] == [("patch", 403), ("update", 200)]
        api.clear_requests()
        await trio.sleep(60)
        requests = list(api.requests)
        nursery.cancel_scope.cancel()
    writes = [(r.verb, r.status) for r in requests if r.verb in ("patch", "update")]
    # PUT_AFTER_REFUSALS (3) writes with patch refused, then PUT only
    assert writes == [("patch", 403), ("update", 200)] * 2 + [("update", 200)] * 28
    assert len([r for r in caplog.records if "not allowed to patch" in r.getMessage()]) == 1


@pytest.mark.parametrize("lock", LOCKS)
async def test_conflict_storm(autojump_clock: trio.testing.MockClock, lock: str) -> None:
    api = FakeKubeApi()
    history = History()
    rng = random.Random(7)
    candidates = [Candidate(f"c{i}", lock) for i in range(12)]
    async with trio.open_nursery() as nursery:
        for c in candidates:
            nursery.start_soon(c.run, api, history, random.Random(rng.random()))
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    assert len(history.closed()) >= 15
    assert any(r.status == 409 for r in api.requests)  # they did collide


@pytest.mark.parametrize("lock", LOCKS)
async def test_partitioned_leader_is_replaced_after_the_lease(
    autojump_clock: trio.testing.MockClock, lock: str
) -> None:
    api = FakeKubeApi()
    history = History()
    leader = Candidate("leader", lock, work=1000)
    follower = Candidate("follower", lock, work=1000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.run, api, history)
        await trio.sleep(1)
        nursery.start_soon(follower.run, api, history)
        await trio.sleep(20)
        cut = trio.current_time()
        api.hang_next(None, user="leader")  # the leader is cut off from the API
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    first, second = history.closed()
    assert first.identity == "leader"
    assert first.end <= cut + RENEW  # it stops by its renew deadline
    assert second.identity == "follower"
    assert second.start - cut <= LEASE + RETRY  # the last renew was at most RETRY before the cut


@pytest.mark.parametrize("lock", ["leases/default/my-app", "configmaps/default/my-app"])
async def test_watch_survives_gone_and_broken_streams(
    autojump_clock: trio.testing.MockClock, lock: str
) -> None:
    api = FakeKubeApi()
    history = History()
    candidates = [Candidate(f"c{i}", lock, work=17) for i in range(3)]

    async def trouble() -> None:
        while True:
            await trio.sleep(5)
            api.compact()
            api.expire_watches()
            await trio.sleep(5)
            api.break_watches()
            await trio.sleep(3)
            api.bookmark()

    async with trio.open_nursery() as nursery:
        for c in candidates:
            nursery.start_soon(c.run, api, history)
        nursery.start_soon(trouble)
        await trio.sleep(300)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    assert len(history.closed()) >= 12


async def test_transient_errors_do_not_cost_leadership(
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = FakeKubeApi()
    history = History()
    leader = Candidate("leader", "leases/default/my-app", work=1000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.run, api, history)
        await trio.sleep(3)
        api.fail_next(3, user="leader", status=503)  # 6 s of failed renews < 10 s deadline
        await trio.sleep(10)
        api.fail_next(2, user="leader", status=429, retry_after=1)
        await trio.sleep(10)
        api.fail_next(2, user="leader", error=__import__("httpx").ConnectError)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    (term,) = history.closed()
    assert term.identity == "leader"
    assert leader.terms == 1


async def test_missing_rights_are_a_clear_error(autojump_clock: trio.testing.MockClock) -> None:
    api = FakeKubeApi()
    async with api.client(user="nobody", verbs={}) as client:
        with pytest.raises(te.ElectionError, match='cannot get resource "leases"') as caught:
            async with te.elect("leases/default/my-app", identity="x", client=client):
                pytest.fail("never leads")  # pragma: no cover
        assert not isinstance(caught.value, te.LockError)


async def test_lock_objects_are_bound_per_candidate(autojump_clock: trio.testing.MockClock) -> None:
    from trio_election._kube_locks import LeaseLock

    api = FakeKubeApi()
    lock = LeaseLock("default", "my-app")  # one object, no client: elect() binds one per candidate
    order: list[str] = []

    async def lead(identity: str) -> None:
        async with (
            api.client(user=identity) as client,
            te.elect(lock, identity=identity, client=client),
        ):
            order.append(identity)
            await trio.sleep(5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lead, "a")
        await trio.sleep(1)
        nursery.start_soon(lead, "b")
    assert order == ["a", "b"]
    assert lock.client is None
    obj = api.get_object("leases", "my-app")
    assert obj is not None
    assert obj["spec"]["holderIdentity"] == ""
    assert obj["spec"]["leaseTransitions"] == 1


# ---------------------------------------------------------------- migration


@pytest.mark.parametrize("old", ["endpoints", "configmaps"])
async def test_multilock_migration_never_has_two_leaders(
    autojump_clock: trio.testing.MockClock, old: str
) -> None:
    """A fleet of three moves from the old lock to a Lease in two rolling updates:
    old lock only -> both (MultiLock) -> Lease only, one replica at a time."""
    api = FakeKubeApi()
    history = History()
    rng = random.Random(3)
    generation = 0

    async with trio.open_nursery() as nursery:
        fleet: list[Candidate] = []

        def start(lock: str) -> Candidate:
            nonlocal generation
            generation += 1
            c = Candidate(f"{lock.split('/')[0]}-{generation}", lock)
            nursery.start_soon(c.run, api, history, random.Random(rng.random()))
            return c

        for _ in range(3):
            fleet.append(start(f"{old}/default/my-app"))
        await trio.sleep(120)
        for phase in (f"{old}leases/default/my-app", "leases/default/my-app"):
            for i in range(3):
                fleet[i].scope.cancel()  # a rolling update: SIGTERM (release), then a new pod
                await trio.sleep(rng.uniform(1, 20))
                fleet[i] = start(phase)
                await trio.sleep(rng.uniform(20, 90))
            await trio.sleep(120)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    leaders = [iv.identity for iv in history.closed()]
    assert any(name.startswith(f"{old}leases-") for name in leaders)
    assert leaders[-1].startswith("leases-")
    lease = api.get_object("leases", "my-app")
    assert lease is not None
    assert lease["spec"]["leaseTransitions"] >= 1
