"""Candidates electing through the engine on a real kube-apiserver, in real time.

Short durations: a Lease with lease 2 s, renew deadline 1.5 s, retry 0.5 s. Annotation locks
store whole seconds, so a renew within the same second changes nothing and does not move
the leader's deadline: they get lease 3 s, renew deadline 2.5 s, retry 0.5 s.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import trio

import trio_election as te
from trio_election._kube import KubeClient, KubeConfig
from trio_election.testing import History

from ._transport import Recorder

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

RESOURCES = ("leases", "endpoints", "configmaps")
FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.5}
FAST_SECONDS = {"lease_duration": 3.0, "renew_deadline": 2.5, "retry_period": 0.5}
PROFILES: dict[str, Sequence[str]] = {
    "polling": ("get", "create", "update"),
    "watching": ("get", "create", "update", "patch", "watch", "list"),
}


def timing(lock: str) -> dict[str, float]:
    return FAST if lock.startswith("leases/") else FAST_SECONDS


@dataclass
class Candidate:
    identity: str
    lock: str
    user: TestUser
    control_plane: ControlPlane
    work: tuple[float, float] = (0.3, 1.5)
    rest: float = 0.2
    durations: Mapping[str, float] | None = None
    """lease_duration, renew_deadline, retry_period; by default the lock's `timing()`"""
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    transport: Recorder | None = None

    @property
    def watching(self) -> bool:
        """Whether a watch of the lock has been opened (the apiserver answered 200)."""
        return self.transport is not None and any(
            verb == "watch" and status == 200 for verb, _, status in self.transport.requests
        )

    @property
    def writes_done(self) -> int:
        """Its writes of the lock answered 200 (creates, patches, PUTs)."""
        if self.transport is None:
            return 0
        return sum(
            verb in ("create", "patch", "update") and status in (200, 201)
            for verb, _, status in self.transport.requests
        )

    async def run(self, history: History, rng: random.Random) -> None:
        self.transport = Recorder(self.control_plane)
        config = KubeConfig(
            server=self.control_plane.server, namespace=self.user.namespace, token=self.user.token
        )
        t = timing(self.lock) if self.durations is None else self.durations
        with self.scope:
            async with (
                KubeClient(config, transport=self.transport) as client,
                te.open_election(
                    self.lock,
                    identity=self.identity,
                    client=client,
                    lease_duration=t["lease_duration"],
                    renew_deadline=t["renew_deadline"],
                    retry_period=t["retry_period"],
                ) as election,
            ):
                while True:
                    async with election.leading():
                        with history.leading(self.identity):
                            await trio.sleep(rng.uniform(*self.work))
                    await trio.sleep(self.rest)


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("scenarios")


@pytest.fixture(scope="module")
def users(control_plane: ControlPlane, namespace: str) -> Mapping[str, TestUser]:
    return {
        name: control_plane.user(name, namespace=namespace, verbs=dict.fromkeys(RESOURCES, verbs))
        for name, verbs in PROFILES.items()
    }


_names = itertools.count()


async def wait_until(condition: Callable[[], bool], within: float) -> None:
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await trio.sleep(0.01)


def lock_name(resource: str, namespace: str) -> str:
    return f"{resource}/{namespace}/scenario-{next(_names)}"


async def run_until(
    done: Callable[[], bool], candidates: Sequence[Candidate], history: History, seed: int
) -> None:
    """Run the candidates until `done()` (fails after a minute: a hang, not a timing)."""
    rng = random.Random(seed)
    async with trio.open_nursery() as nursery:
        for candidate in candidates:
            nursery.start_soon(candidate.run, history, random.Random(rng.random()))
        await wait_until(done, within=60)
        nursery.cancel_scope.cancel()


# A watcher takes a release at once, a poller at its next poll: to tell them apart on a
# loaded machine, a watcher polls every 3 s, and either would wait 8 s for a lock left
# unreleased to expire
HANDOVER: dict[str, dict[str, float]] = {
    "watching": {"lease_duration": 8.0, "renew_deadline": 6.0, "retry_period": 3.0},
    "polling": {"lease_duration": 8.0, "renew_deadline": 6.0, "retry_period": 0.5},
}


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("profile", list(PROFILES))
async def test_handover(
    control_plane: ControlPlane,
    namespace: str,
    users: Mapping[str, TestUser],
    resource: str,
    profile: str,
) -> None:
    lock = lock_name(resource, namespace)
    history = History()
    durations = HANDOVER[profile]
    candidates = [
        Candidate(f"c{i}", lock, users[profile], control_plane, durations=durations)
        for i in range(3)
    ]
    await run_until(lambda: len(history.closed()) >= 5, candidates, history, seed=1)
    history.assert_one_leader()
    terms = history.closed()
    retry = durations["retry_period"]
    # a release is taken at once by a watcher (well within its 3 s polls), within 2.2 retry
    # periods by a poller; a second and more for a loaded machine, far below the 8 s lease
    bound = 1.0 if profile == "watching" else retry * 2.2 + 1.5
    for before, after in itertools.pairwise(terms):
        assert after.start - before.end < bound, (before, after)


@pytest.mark.parametrize("resource", RESOURCES)
async def test_conflict_storm(
    control_plane: ControlPlane, namespace: str, users: Mapping[str, TestUser], resource: str
) -> None:
    lock = lock_name(resource, namespace)
    history = History()
    candidates = [
        Candidate(f"c{i}", lock, users["watching" if i % 2 else "polling"], control_plane, rest=0.0)
        for i in range(8)
    ]

    def stormed() -> bool:
        conflicts = sum(c.transport.conflicts for c in candidates if c.transport)
        return len(history.closed()) >= 3 and conflicts > 0

    await run_until(stormed, candidates, history, seed=2)
    history.assert_one_leader()


@pytest.mark.parametrize("resource", RESOURCES)
async def test_partitioned_leader(
    control_plane: ControlPlane, namespace: str, users: Mapping[str, TestUser], resource: str
) -> None:
    lock = lock_name(resource, namespace)
    t = timing(lock)
    history = History()
    leader = Candidate("leader", lock, users["watching"], control_plane, work=(100, 100))
    follower = Candidate("follower", lock, users["watching"], control_plane, work=(100, 100))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.run, history, random.Random(1))
        await wait_until(lambda: bool(history.closed()), within=30)  # the leader leads
        nursery.start_soon(follower.run, history, random.Random(2))
        # the follower has read the lock and watches it; the leader has renewed since
        await wait_until(lambda: follower.watching and leader.writes_done >= 2, within=30)
        assert leader.transport is not None
        leader.transport.hanging = True
        cut = trio.current_time()
        await wait_until(lambda: len(history.closed()) >= 2, within=t["lease_duration"] + 30)
        leader.transport.heal()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    first, second = history.closed()[:2]
    assert first.identity == "leader"
    # it stops by its renew deadline (its last renewal was sent before the cut); what a
    # loaded machine adds to that must stay below the lease duration, when the others may
    # take the lock
    assert first.end < cut + t["lease_duration"]
    assert second.identity == "follower"
    assert second.start - cut <= t["lease_duration"] + t["retry_period"] + 1.0


@pytest.mark.parametrize("old", ["endpoints", "configmaps"])
async def test_multilock_migration(
    control_plane: ControlPlane, namespace: str, users: Mapping[str, TestUser], old: str
) -> None:
    """Three replicas move from the old lock to a Lease in two rolling updates: old lock only,
    then both (MultiLock), then the Lease only; never two leaders."""
    name = f"migrate-{next(_names)}"
    history = History()
    rng = random.Random(5)
    generation = itertools.count(1)
    leaders: list[str] = []

    async with trio.open_nursery() as nursery:
        fleet: list[Candidate] = []

        def start(resource: str) -> Candidate:
            c = Candidate(
                f"{resource}-{next(generation)}",
                f"{resource}/{namespace}/{name}",
                users["watching"],
                control_plane,
                work=(0.5, 3.0),
            )
            nursery.start_soon(c.run, history, random.Random(rng.random()))
            return c

        fleet.extend(start(old) for _ in range(3))
        await trio.sleep(2)
        for phase in (f"{old}leases", "leases"):
            for i in range(3):
                fleet[i].scope.cancel()  # SIGTERM: release, then a new replica
                await trio.sleep(rng.uniform(0.1, 1))
                fleet[i] = start(phase)
                await trio.sleep(rng.uniform(0.5, 1.5))
            await trio.sleep(2)
        nursery.cancel_scope.cancel()
    history.assert_one_leader()
    leaders = [iv.identity for iv in history.closed()]
    assert any(n.startswith(f"{old}leases-") for n in leaders), leaders
    assert leaders[-1].startswith("leases-"), leaders
