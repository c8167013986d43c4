"""Many elections in one process share one watch of their namespace's Leases, on the real
apiserver: fewer long requests held open, and each election still sees a write to its own
Lease at once, through an apiserver restart, and under a Role that grants the verbs on
some Lease names only (then each Lease is watched on its own, as before).

How many watches the process holds is read from the apiserver's own gauge,
``apiserver_longrunning_requests{resource="leases",verb="WATCH"}``, against a baseline taken
with no election running (the apiserver watches some Leases itself).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

import trio_election as te
from trio_election._kube import KubeClient, KubeConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trio_election.testing import ControlPlane, TestUser

pytestmark = pytest.mark.control_plane

VERBS = ("get", "create", "update", "patch", "watch", "list")
N = 8
_runs = itertools.count()


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.create_namespace("shared-watch")


def lease_watches(control_plane: ControlPlane) -> int:
    """Watches of Leases open on the apiserver now (its own included)."""
    total = 0.0
    pattern = re.compile(r"^apiserver_longrunning_requests\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
    for line in control_plane.metrics().splitlines():
        match = pattern.match(line)
        if match and 'resource="leases"' in match["labels"] and 'verb="WATCH"' in match["labels"]:
            total += float(match["value"])
    return round(total)


async def wait_until(condition: Callable[[], bool], *, within: float, every: float = 0.02) -> None:
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await trio.sleep(every)


async def settled_watches(control_plane: ControlPlane) -> int:
    """The gauge once it has stayed the same for 2 s: watches of earlier tests' clients
    may still be winding down on the server."""
    readings: list[int] = []
    with trio.fail_after(30):
        while len(readings) < 8 or len(set(readings[-8:])) > 1:
            readings.append(lease_watches(control_plane))
            await trio.sleep(0.25)
    return readings[-1]


@dataclass
class Fleet:
    """`N` elections of one process through one `KubeClient`, each on a Lease of its own."""

    names: Sequence[str]
    terms: dict[str, list[te.Leadership]] = field(default_factory=dict[str, list[te.Leadership]])
    ended_at: dict[str, float] = field(default_factory=dict[str, float])
    elections: dict[str, te.Election] = field(default_factory=dict[str, te.Election])

    def leading(self) -> set[str]:
        return {name for name, terms in self.terms.items() if terms and not terms[-1].lost}

    async def run(
        self, user: TestUser, namespace: str, *, task_status: trio.TaskStatus[None]
    ) -> None:
        async with (
            KubeClient(KubeConfig.load(user.kubeconfig)) as client,
            trio.open_nursery() as nursery,
        ):
            for name in self.names:
                nursery.start_soon(self._one, client, f"leases/{namespace}/{name}", name)
            await wait_until(lambda: self.leading() == set(self.names), within=20)
            task_status.started()

    async def _one(self, client: KubeClient, lock: str, name: str) -> None:
        async with te.open_election(
            lock,
            identity="fleet",
            client=client,
            lease_duration=15,
            renew_deadline=12,
            retry_period=1,
            stop_on_sigterm=False,
        ) as election:
            self.elections[name] = election
            while True:
                async with election.leading() as leadership:
                    self.terms.setdefault(name, []).append(leadership)
                    try:
                        await trio.sleep_forever()
                    finally:
                        self.ended_at[name] = trio.current_time()


def lease_names() -> list[str]:
    run = next(_runs)
    return [f"shared-{run}-{i}" for i in range(N)]


async def take_over(control_plane: ControlPlane, namespace: str, name: str) -> None:
    """An admin makes `other` the holder: one unconditional write."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"spec": {"holderIdentity": "other", "leaseDurationSeconds": 15, "renewTime": now}}

    def write() -> None:
        with control_plane.http_client() as admin:
            response = admin.patch(
                f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                content=httpx.Request("PATCH", "/", json=patch).content,
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert response.status_code == 200, response.text

    await trio.to_thread.run_sync(write)


async def test_elections_of_one_process_hold_one_watch_and_see_their_own_lease(
    control_plane: ControlPlane, namespace: str
) -> None:
    user = control_plane.user("fleet", namespace=namespace, verbs={"leases": VERBS})
    baseline = await settled_watches(control_plane)
    fleet = Fleet(lease_names())
    async with trio.open_nursery() as nursery:
        await nursery.start(fleet.run, user, namespace)
        # the first leader watched alone while it was the only one; all others share, and
        # the first moves to the shared watch too once it has started
        await wait_until(lambda: lease_watches(control_plane) - baseline <= 1, within=10, every=0.2)
        held = await settled_watches(control_plane) - baseline
        print(f"{N} elections hold {held} watches of Leases")
        assert held == 1

        victim = fleet.names[3]
        written_at = trio.current_time()
        await take_over(control_plane, namespace, victim)
        await wait_until(lambda: victim in fleet.ended_at, within=2)
        print(f"a foreign write ended the term after {fleet.ended_at[victim] - written_at:.3f} s")
        assert fleet.ended_at[victim] - written_at < 1.0
        assert fleet.leading() == set(fleet.names) - {victim}
        assert all(len(terms) == 1 for terms in fleet.terms.values())
        nursery.cancel_scope.cancel()


async def test_a_shard_group_follows_its_members_on_the_shared_watch(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Two members of one shard group in one process, each with a client of its own: each
    holds one watch of Leases, the shard Leases' and the members' records' both, and a
    member that leaves is seen gone through it (its shards move to the other)."""
    user = control_plane.user("group", namespace=namespace, verbs={"leases": (*VERBS, "delete")})
    baseline = await settled_watches(control_plane)
    group = f"leases/{namespace}/group-{next(_runs)}"
    shards: dict[str, te.Shards] = {}
    scopes: dict[str, trio.CancelScope] = {}

    async def member(name: str, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scopes[name]:
            async with (
                KubeClient(KubeConfig.load(user.kubeconfig)) as client,
                te.open_shards(
                    group,
                    shards=4,
                    identity=name,
                    client=client,
                    lease_duration=15,
                    renew_deadline=12,
                    retry_period=1,
                    stop_on_sigterm=False,
                ) as shards[name],
                trio.open_nursery() as nursery,
            ):

                async def work(shard: int, leadership: te.Leadership) -> None:
                    await trio.sleep_forever()

                await nursery.start(shards[name].serve, work)
                task_status.started()

    async with trio.open_nursery() as nursery:
        for name in ("a", "b"):
            await nursery.start(member, name)

        def split() -> bool:
            return all(
                len(shards[n].owned) == 2 and shards[n].members == frozenset({"a", "b"})
                for n in "ab"
            )

        await wait_until(split, within=30, every=0.1)
        held = await settled_watches(control_plane) - baseline
        print(f"two members of a shard group hold {held} watches of Leases")
        assert held == 2  # one per client: its shards' and its members' records' in one
        scopes["b"].cancel()
        await wait_until(lambda: shards["a"].members == frozenset({"a"}), within=5)
        await wait_until(lambda: len(shards["a"].owned) == 4, within=10)
        nursery.cancel_scope.cancel()


async def test_the_shared_watch_survives_an_apiserver_restart(
    control_plane: ControlPlane, namespace: str
) -> None:
    """The restart breaks the one watch (and 403s for a moment while RBAC warms up): every
    election keeps its term, and a write afterwards is still seen at once."""
    user = control_plane.user("restarted", namespace=namespace, verbs={"leases": VERBS})
    fleet = Fleet(lease_names())
    async with trio.open_nursery() as nursery:
        await nursery.start(fleet.run, user, namespace)
        baseline_terms = {name: terms[0] for name, terms in fleet.terms.items()}
        renewals = {name: e.statistics().renewals for name, e in fleet.elections.items()}
        await trio.to_thread.run_sync(control_plane.restart_apiserver)

        def recovered() -> bool:
            """Every election has renewed twice since and watches again, and the new
            apiserver has a watch of Leases open."""
            return (
                all(
                    e.statistics().renewals >= renewals[name] + 2 and e.statistics().watching
                    for name, e in fleet.elections.items()
                )
                and lease_watches(control_plane) >= 1
            )

        await wait_until(recovered, within=30, every=0.25)
        assert fleet.leading() == set(fleet.names)
        assert {name: terms[-1] for name, terms in fleet.terms.items()} == baseline_terms

        victim = fleet.names[0]
        written_at = trio.current_time()
        await take_over(control_plane, namespace, victim)
        await wait_until(lambda: victim in fleet.ended_at, within=3)
        assert fleet.ended_at[victim] - written_at < 2.0
        nursery.cancel_scope.cancel()


async def test_a_role_limited_to_lease_names_watches_each_lease_alone(
    control_plane: ControlPlane, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """RBAC with ``resourceNames`` refuses to list or watch the whole collection: the
    elections watch their own Leases (a watch each), lead, and see foreign writes at once."""
    caplog.set_level(logging.INFO, logger="trio_election")
    names = lease_names()
    user = control_plane.user(
        "named", namespace=namespace, verbs={"leases": VERBS}, names={"leases": names}
    )
    baseline = await settled_watches(control_plane)
    fleet = Fleet(names)
    async with trio.open_nursery() as nursery:
        await nursery.start(fleet.run, user, namespace)
        await wait_until(lambda: lease_watches(control_plane) - baseline == N, within=10, every=0.2)
        refusals = [r for r in caplog.records if "each lock watches its own object" in r.message]
        assert len(refusals) == 1, [r.message for r in refusals]
        assert refusals[0].levelno == logging.INFO

        victim = names[5]
        written_at = trio.current_time()
        await take_over(control_plane, namespace, victim)
        await wait_until(lambda: victim in fleet.ended_at, within=2)
        assert fleet.ended_at[victim] - written_at < 1.0
        assert all(len(terms) == 1 for terms in fleet.terms.values())
        nursery.cancel_scope.cancel()
